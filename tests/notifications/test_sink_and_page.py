"""The embedded SMTP sink stores each mail once, /outbox shows it escaped, operators see dead letters."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from kefu.cli import main
from kefu.cli.up import components
from kefu.models.db import unit_of_work
from kefu.notifications import MessageType, deliver_due, enqueue, sink
from kefu.notifications.web import outbox_router
from kefu.settings import Settings
from tests.support.processes import free_port
from tests.support.samples import CONTEXTS
from tests.support.smtp import SMTPServer

NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)


@pytest.fixture
def sink_settings(tmp_path: Path) -> Iterator[Settings]:
    settings = Settings(var_dir=tmp_path, smtp_host="127.0.0.1", smtp_port=free_port(), smtp_timeout_seconds=2)
    controller = sink.start(settings)
    try:
        yield settings
    finally:
        controller.stop()


async def test_the_sink_stores_a_mail_once_and_the_outbox_page_shows_it_escaped(
    engine: Engine, sink_settings: Settings
) -> None:
    context = dict(CONTEXTS[MessageType.PROGRESS_UPDATE], progress="<script>alert('x')</script>")
    with unit_of_work(engine) as session:
        row = enqueue(
            session, MessageType.PROGRESS_UPDATE, recipient_email="zhangsan@example.com", context=context, now=NOW
        )
        row_id = row.id
    await deliver_due(engine, NOW, settings=sink_settings)
    with unit_of_work(engine) as session:  # a crash after acceptance: the same row is sent again
        from kefu.models.notifications import OutboxMessage

        again = session.get(OutboxMessage, row_id)
        assert again is not None
        again.status = "queued"
    await deliver_due(engine, NOW, settings=sink_settings)
    assert len(sink.stored_mails(sink.mail_dir(sink_settings))) == 1

    app = FastAPI()
    app.include_router(outbox_router(sink_settings, engine))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        page = await client.get("/outbox")
    assert page.status_code == 200
    assert "投诉处理进展" in page.text and "z***@example.com" in page.text and "zhangsan@example.com" not in page.text
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text


async def test_the_outbox_page_shows_when_each_mail_arrived_in_shanghai_time(engine: Engine, tmp_path: Path) -> None:
    """A mail dated in UTC (as Kefu dated them before, or another sender does) is listed in Shanghai time like every
    other time of the page, not as its raw header (a walk through found "Wed, 02 Dec 2026 11:02:08 +0000" there)."""
    settings = Settings(var_dir=tmp_path)
    directory = sink.mail_dir(settings)
    directory.mkdir(parents=True)
    (directory / "a.eml").write_bytes(
        b"From: kefu@example.com\r\nTo: li.kefu@example.com\r\nSubject: =?utf-8?b?5o+Q6YaS?=\r\n"
        b"Date: Wed, 02 Dec 2026 11:02:08 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n"
    )
    [mail] = sink.stored_mails(directory)
    assert mail.date == "2026-12-02 19:02 +08:00"
    app = FastAPI()
    app.include_router(outbox_router(settings, engine))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        page = await client.get("/outbox")
    assert "时间：2026-12-02 19:02 +08:00" in page.text and "+0000" not in page.text


def test_the_sink_is_started_by_kefu_up_only_in_the_embedded_default() -> None:
    assert "mail-sink" in [c.name for c in components(Settings(mail_sink_enabled=True))]
    assert "mail-sink" not in [c.name for c in components(Settings(mail_sink_enabled=False))]


@pytest.mark.usefixtures("kefu_database_url")  # ``kefu mail dead`` reads the configured database
async def test_operators_see_dead_letters_with_masked_recipients(
    engine: Engine,
    smtp_server: SMTPServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with unit_of_work(engine) as session:
        enqueue(
            session,
            MessageType.SUPERVISOR_ESCALATION,
            recipient_email="zhao.boss@example.com",
            context=CONTEXTS[MessageType.SUPERVISOR_ESCALATION],
            now=NOW,
        )
    smtp_server.handler.faults["zhao.boss@example.com"] = ["550"]
    await deliver_due(engine, NOW, settings=smtp_server.settings)
    assert main(["mail", "dead", "--json"]) == 0
    [letter] = json.loads(capsys.readouterr().out)
    assert letter["type"] == "supervisor_escalation"
    assert letter["recipient"] == "z***@example.com"
    assert letter["error"].startswith("550")
