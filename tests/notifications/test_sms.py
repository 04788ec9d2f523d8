"""SMS, the second channel: a notice shortened to a signed SMS within its parts, the same lint, windows and
exactly-once rules as mail, the local sink and its page, retries and dead letters, the providers' configuration."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import Engine, select

from kefu.cli import main
from kefu.models.db import unit_of_work
from kefu.models.notifications import OutboxMessage
from kefu.notifications import MessageRejected, MessageType, deliver_due, enqueue, enqueue_sms
from kefu.notifications.messages import Renderer
from kefu.notifications.sms import render_sms, sms_parts
from kefu.notifications.sms_providers import (
    AliyunProvider,
    SinkProvider,
    SmsConfigError,
    SmsSendError,
    TencentProvider,
    sms_dir,
    sms_provider,
    stored_sms,
)
from kefu.notifications.web import outbox_router, queued
from kefu.settings import Settings
from tests.support.clock import SHANGHAI
from tests.support.samples import CONTEXTS

KEFU = str(Path(sys.executable).parent / "kefu")
PHONE = "13800138000"
MONDAY_10 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)  # inside the business window
SATURDAY_20 = dt.datetime(2026, 11, 21, 20, 0, tzinfo=SHANGHAI)  # outside: customer messages wait for Monday 09:00
ACK = MessageType.COMPLAINT_ACKNOWLEDGEMENT


@pytest.fixture
def renderer() -> Renderer:
    return Renderer("Asia/Shanghai")


def sms_settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(var_dir=tmp_path, _env_file=None, **overrides)  # type: ignore[call-arg]


def test_an_sms_is_one_part_up_to_70_characters_and_67_per_part_beyond() -> None:
    assert [sms_parts("字" * n) for n in (1, 70, 71, 134, 135, 201, 202)] == [1, 1, 2, 2, 3, 3, 4]


def test_an_acknowledgement_becomes_a_signed_sms_naming_the_case_and_when_we_will_be_in_touch(
    renderer: Renderer,
) -> None:
    sms = render_sms(renderer, ACK, CONTEXTS[ACK], signature="顺达快运", max_parts=3)
    assert sms.ok, sms.findings
    assert sms.text.startswith("【顺达快运】您好，")
    assert "TS-20261123-0001" in sms.text
    assert "我们将在2026年11月24日18:00（北京时间）之前与您联系" in sms.text  # the next step, no stray spaces
    assert "尊敬的" not in sms.text and "敬上" not in sms.text  # a letter's greeting and sign-off are not an SMS
    assert sms.parts == sms_parts(sms.text) <= 3


def test_a_long_notice_loses_sentences_but_never_the_case_number_or_the_next_step(renderer: Renderer) -> None:
    apology = MessageType.MAJOR_APOLOGY
    full = render_sms(renderer, apology, CONTEXTS[apology], signature="顺达快运", max_parts=3)
    short = render_sms(renderer, apology, CONTEXTS[apology], signature="顺达快运", max_parts=2)
    assert full.ok and short.ok
    assert "全额赔偿破损货物" in full.text and "全额赔偿破损货物" not in short.text
    for text in (full.text, short.text):
        assert "TS-20261123-0001" in text and "我们将在2026年11月24日18:00（北京时间）之前向您提供初步处理方案" in text
    assert short.parts == 2 and "深表歉意" in full.text  # the apology stays while it fits

    too_short = render_sms(renderer, apology, CONTEXTS[apology], signature="顺达快运", max_parts=1)
    assert not too_short.ok
    assert any("短信过长" in f.detail and "上限1条" in f.detail for f in too_short.findings)


@pytest.mark.parametrize(
    ("signature", "says"),
    [
        ("顺", "2至12个字符"),
        ("顺达快运顺达快运顺达快运顺", "2至12个字符"),
        ("【顺达快运】", "不能包含括号"),
        ("顺达[快运]", "不能包含括号"),
    ],
)
def test_a_signature_the_providers_would_refuse_is_refused_when_the_settings_are_read(
    signature: str, says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEFU_SMS_SIGNATURE", signature)
    with pytest.raises(ValidationError, match=says):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_an_sms_the_lint_refuses_is_not_queued(engine: Engine, tmp_path: Path) -> None:
    context = dict(CONTEXTS[MessageType.PROGRESS_UPDATE], progress="这不关我的事，请找承运方。")
    with unit_of_work(engine) as session, pytest.raises(MessageRejected) as rejected:
        enqueue_sms(
            session,
            MessageType.PROGRESS_UPDATE,
            phone=PHONE,
            context=context,
            now=MONDAY_10,
            settings=sms_settings(tmp_path),
        )
    assert rejected.value.reasons == ["推诿、搪塞客户：这不关我的事"]
    with unit_of_work(engine) as session:
        assert session.scalars(select(OutboxMessage)).all() == []


async def test_an_sms_waits_for_the_window_and_reaches_the_sink_once(engine: Engine, tmp_path: Path) -> None:
    settings = sms_settings(tmp_path, sms_signature="顺达快运")
    with unit_of_work(engine) as session:
        for _ in range(2):  # a replayed step queues it again: the same row
            row = enqueue_sms(
                session, ACK, phone="+86 138-0013-8000", context=CONTEXTS[ACK], dedupe_key="case:1:ack",
                now=SATURDAY_20, settings=settings,
            )  # fmt: skip
        urgent = enqueue_sms(
            session, ACK, phone=PHONE, context=CONTEXTS[ACK], urgent=True, now=SATURDAY_20, settings=settings
        )
        row_id, planned, reason = row.id, row.not_before, row.wait_reason
        assert (urgent.not_before, urgent.wait_reason) == (SATURDAY_20, "urgent")
        session.delete(urgent)
    assert planned == dt.datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI) and reason == "window"

    assert (await deliver_due(engine, SATURDAY_20, settings=settings)).as_dict()["sent"] == 0  # not yet
    monday = dt.datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI)
    assert (await deliver_due(engine, monday, settings=settings)).sent == [row_id]
    with unit_of_work(engine) as session:  # a crash after the provider took it: the same row goes again
        again = session.get(OutboxMessage, row_id)
        assert again is not None and again.provider_message_id is not None
        again.status = "queued"
    await deliver_due(engine, monday, settings=settings)
    [stored] = stored_sms(sms_dir(settings))
    assert stored.phone == PHONE and stored.text.startswith("【顺达快运】您好，") and "TS-20261123-0001" in stored.text


class FailingService:
    """The SMS service at the edge: answers with the given failures, one per attempt."""

    name = "failing"

    def __init__(self, *failures: SmsSendError) -> None:
        self.failures = list(failures)

    def send(self, phone: str, text: str, signature: str, *, message_type: str, reference: str) -> str:
        raise self.failures.pop(0)


@pytest.mark.usefixtures("kefu_database_url")  # ``kefu mail dead`` reads the configured database
async def test_a_retryable_failure_waits_and_a_permanent_one_is_a_dead_letter_with_the_phone_masked(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    settings = sms_settings(tmp_path)
    with unit_of_work(engine) as session:
        row_id = enqueue_sms(session, ACK, phone=PHONE, context=CONTEXTS[ACK], now=MONDAY_10, settings=settings).id
    service = FailingService(
        SmsSendError("isv.BUSINESS_LIMIT_CONTROL 触发流控", retryable=True),
        SmsSendError("isv.MOBILE_NUMBER_ILLEGAL 非法手机号", retryable=False),
    )
    first = await deliver_due(engine, MONDAY_10, settings=settings, sms=service)
    assert first.retried == [row_id]
    app = FastAPI()
    app.include_router(outbox_router(settings, engine))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        page = (await client.get("/outbox/sms")).text
    assert "上次投递失败，等待重试" in page and "2026-11-23 10:00 +08:00" in page  # backoff: 30 s, to the minute
    assert "138****8000" in page and PHONE not in page

    with caplog.at_level("INFO", logger="kefu.notifications.sender"):
        second = await deliver_due(engine, MONDAY_10 + dt.timedelta(minutes=5), settings=settings, sms=service)
    assert second.dead == [row_id]
    assert f"sms {row_id} to 138****8000 is a dead letter" in caplog.text
    assert PHONE not in caplog.text
    assert main(["mail", "dead", "--json"]) == 0
    [letter] = json.loads(capsys.readouterr().out)
    assert (letter["channel"], letter["recipient"]) == ("sms", "138****8000")
    assert letter["error"].startswith("isv.MOBILE_NUMBER_ILLEGAL")


async def test_the_outbox_page_shows_queued_mail_and_sms_with_their_send_time_and_why_they_wait(
    engine: Engine, tmp_path: Path
) -> None:
    settings = sms_settings(tmp_path)
    progress = dict(CONTEXTS[MessageType.PROGRESS_UPDATE], progress="<b>已联系承运方</b>")
    with unit_of_work(engine) as session:
        enqueue(session, ACK, recipient_email="zhangsan@example.com", context=CONTEXTS[ACK], now=SATURDAY_20)
        enqueue_sms(
            session, MessageType.PROGRESS_UPDATE, phone=PHONE, context=progress, now=SATURDAY_20, settings=settings
        )
        agreed = dt.datetime(2026, 11, 24, 14, 30, tzinfo=SHANGHAI)
        enqueue(
            session, ACK, recipient_email="lisi@example.com", context=CONTEXTS[ACK], agreed_time=agreed, now=SATURDAY_20
        )
    app = FastAPI()
    app.include_router(outbox_router(settings, engine))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        mail_page = (await client.get("/outbox")).text
        sms_page = (await client.get("/outbox/sms")).text
    assert "待发送（3 条）" in mail_page
    assert mail_page.count("2026-11-23 09:00 +08:00") == 2 and mail_page.count("等待工作日的发送时段") == 2
    assert "2026-11-24 14:30 +08:00" in mail_page and "按与客户约定的时间发送" in mail_page
    assert "待发送（1 条）" in sms_page and "短信" in sms_page and "2026-11-23 09:00 +08:00" in sms_page
    for page in (mail_page, sms_page):
        assert PHONE not in page and "138****8000" in page
        assert "<b>" not in page and "&lt;b&gt;已联系承运方&lt;/b&gt;" in page


def test_the_sink_is_the_default_and_needs_no_keys(tmp_path: Path) -> None:
    provider = sms_provider(sms_settings(tmp_path))
    assert isinstance(provider, SinkProvider) and provider.directory == tmp_path / "sms"


def test_aliyun_and_tencent_name_every_missing_setting_and_build_their_sdk_clients_when_complete(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KEFU_SMS_PROVIDER", "aliyun")
    with pytest.raises(SmsConfigError) as aliyun_missing:
        sms_provider(Settings(_env_file=None))  # type: ignore[call-arg]
    for name in ("KEFU_SMS_ALIYUN_ACCESS_KEY_ID", "KEFU_SMS_ALIYUN_ACCESS_KEY_SECRET", "KEFU_SMS_TEMPLATES"):
        assert name in str(aliyun_missing.value)
    monkeypatch.setenv("KEFU_SMS_ALIYUN_ACCESS_KEY_ID", "LTAI-test")
    monkeypatch.setenv("KEFU_SMS_ALIYUN_ACCESS_KEY_SECRET", "secret")
    monkeypatch.setenv("KEFU_SMS_TEMPLATES", '{"complaint_acknowledgement": "SMS_1234", "no_such_type": "SMS_9"}')
    with pytest.raises(SmsConfigError, match="unknown message type 'no_such_type'"):
        sms_provider(Settings(_env_file=None))  # type: ignore[call-arg]
    monkeypatch.setenv("KEFU_SMS_TEMPLATES", '{"complaint_acknowledgement": "SMS_1234"}')
    assert isinstance(sms_provider(Settings(_env_file=None)), AliyunProvider)  # type: ignore[call-arg]

    monkeypatch.setenv("KEFU_SMS_PROVIDER", "tencent")
    monkeypatch.setenv("KEFU_SMS_TENCENT_SECRET_ID", "AKID-test")
    monkeypatch.setenv("KEFU_SMS_TENCENT_SECRET_KEY", "secret")
    monkeypatch.setenv("KEFU_SMS_TENCENT_SDK_APP_ID", "app-one")
    with pytest.raises(SmsConfigError) as tencent_wrong:
        sms_provider(Settings(_env_file=None))  # type: ignore[call-arg]
    assert "KEFU_SMS_TENCENT_SDK_APP_ID must be the SDK AppID's digits" in str(tencent_wrong.value)
    assert "Tencent template ids are digits, not 'SMS_1234'" in str(tencent_wrong.value)
    monkeypatch.setenv("KEFU_SMS_TENCENT_SDK_APP_ID", "1400000001")
    monkeypatch.setenv("KEFU_SMS_TEMPLATES", '{"complaint_acknowledgement": "123456"}')
    assert isinstance(sms_provider(Settings(_env_file=None)), TencentProvider)  # type: ignore[call-arg]


def test_kefu_up_refuses_to_start_with_an_incomplete_sms_provider(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "KEFU_VAR_DIR": str(tmp_path / "var"),
        "KEFU_SMS_PROVIDER": "tencent",
        "KEFU_SMS_TENCENT_SECRET_ID": "AKID-test",
    }
    done = subprocess.run([KEFU, "up"], env=env, capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path)
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("kefu up: KEFU_SMS_PROVIDER=tencent:")
    assert "KEFU_SMS_TENCENT_SECRET_KEY is not set" in line and "KEFU_SMS_TENCENT_SDK_APP_ID is not set" in line
    assert not (tmp_path / "var" / "pg").exists()  # nothing was started


def test_an_internal_notice_queued_for_a_later_day_says_it_waits_for_that_time_not_that_it_goes_at_once(
    engine: Engine,
) -> None:
    due_day = dt.datetime(2026, 11, 25, 9, 0, tzinfo=SHANGHAI)  # a cadence reminder queued for the day it is due
    context = CONTEXTS[MessageType.CONTACT_CADENCE_REMINDER]
    with unit_of_work(engine) as session:
        enqueue(session, MessageType.CONTACT_CADENCE_REMINDER, recipient_email="chen@kefu.example", context=context,
                now=due_day)  # fmt: skip
    [waiting] = queued(engine, now=SATURDAY_20)
    assert waiting.why == "内部通知，按计划时间发送" and waiting.planned == "2026-11-25 09:00 +08:00"
    [due] = queued(engine, now=due_day)
    assert due.why.startswith("内部通知，立即发送")
