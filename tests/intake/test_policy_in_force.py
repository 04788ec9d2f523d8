"""The front door follows the policy file in force: its customer wording, its calendar and its time zone,
changed without a restart; and in the embedded default it shows the local mail sink's page."""

from __future__ import annotations

import datetime as dt
import smtplib
import time
from email.message import EmailMessage
from pathlib import Path

import httpx
from pydantic import SecretStr
from sqlalchemy import Engine

from kefu.desk.app import create_app as create_desk
from kefu.intake.app import create_app
from kefu.notifications import sink
from kefu.settings import Settings
from tests.intake.test_form import FORM, case_no, form_key
from tests.support.clock import RECEIVED
from tests.support.databases import edit_policy
from tests.support.desk import signed_in_desk
from tests.support.processes import free_port
from tests.support.samples import intake_settings

GENERAL_FIRST_CONTACT = 'due: 24 hours, customer_facing: true, customer_wording: "我们将在{due}之前与您联系"'


async def submit(http: httpx.AsyncClient, **changes: str) -> httpx.Response:
    key = form_key((await http.get("/")).text)
    return await http.post("/", data={**FORM, **changes, "form_key": key})


async def test_the_confirmation_promises_in_the_policys_words_on_the_policys_calendar_as_the_file_changes(
    engine: Engine, policy_file: Path
) -> None:
    edit_policy(
        policy_file,
        GENERAL_FIRST_CONTACT,
        'due: 4 working_hours, customer_facing: true, customer_wording: "{due}前我们会给您回电话"',
    )
    app = create_app(intake_settings(), engine, clock=lambda: RECEIVED)  # Monday 10:00 in Shanghai
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake.test") as http:
        first = await submit(http)
        # 10:00–12:00 and 15:00–17:00: four working hours
        assert "<strong>2026年11月23日 17:00（北京时间）</strong>前我们会给您回电话。" in first.text
        assert "与客户取得联系" not in first.text  # never the milestone's internal name

        edit_policy(policy_file, '"15:00-18:00"', '"14:00-18:00"')
        second = await submit(http, phone="13700137001")
        # the new calendar
        assert "<strong>2026年11月23日 16:00（北京时间）</strong>前我们会给您回电话。" in second.text


async def test_case_numbers_and_times_on_the_pages_are_in_the_policys_time_zone(
    engine: Engine, policy_file: Path
) -> None:
    edit_policy(policy_file, "timezone: Asia/Shanghai", "timezone: Asia/Tokyo")
    late = dt.datetime(2026, 11, 23, 15, 30, tzinfo=dt.UTC)  # 23:30 in Shanghai, already the 24th in Tokyo
    app = create_app(intake_settings(), engine, clock=lambda: late)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake.test") as http:
        page = await submit(http)
    assert case_no(page.text) == "KF20261124-00001"
    assert "受理时间：2026年11月24日 00:30（UTC+09:00）" in page.text
    assert "<strong>2026年11月25日 00:30（UTC+09:00）</strong>" in page.text  # first contact within 24 h, Tokyo time


async def test_the_embedded_default_shows_the_mails_of_its_own_sink_at_outbox(tmp_path: Path, engine: Engine) -> None:
    settings = Settings(
        var_dir=tmp_path, smtp_port=free_port(), mail_sink_enabled=True, intake_api_tokens=[SecretStr("t")]
    )
    controller = sink.start(settings)
    try:
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = "kefu@example.com", "zhangsan@example.com", "投诉受理通知"
        mail.set_content("您好，您的投诉已受理。")
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=10) as smtp:
            smtp.send_message(mail)
        deadline = time.monotonic() + 10
        while not sink.stored_mails(sink.mail_dir(settings)):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        controller.stop()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(settings, engine)), base_url="http://i.test"
    ) as http:
        assert (await http.get("/outbox")).status_code == 404  # customers' side: the operators' page is not here
    async with signed_in_desk(create_desk(settings, engine), engine) as desk:  # the operators' entrance
        page = await desk.get("/outbox")
    assert page.status_code == 200 and "投诉受理通知" in page.text
    production = intake_settings(sms_provider="aliyun", mail_sink_enabled=False)  # no sink, no such page
    async with signed_in_desk(create_desk(production, engine), engine, "other.agent") as desk:
        assert (await desk.get("/outbox")).status_code == 404
