"""Delivery to a real SMTP server: nothing lost, nothing sent twice, dead letters where they belong."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, select

from kefu.models.db import unit_of_work
from kefu.models.notifications import OutboxMessage
from kefu.notifications import MessageType, dead_letters, deliver_due, enqueue
from tests.support.samples import CONTEXTS
from tests.support.smtp import SMTPServer

NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)  # Monday 10:00 in Shanghai, inside a window


def queue(engine: Engine, message_type: MessageType, recipient: str) -> int:
    with unit_of_work(engine) as session:
        row = enqueue(session, message_type, recipient_email=recipient, context=CONTEXTS[message_type], now=NOW)
        return row.id


def statuses(engine: Engine) -> dict[str, str]:
    with unit_of_work(engine) as session:
        return {r.recipient: r.status for r in session.scalars(select(OutboxMessage))}


async def test_every_message_type_arrives_exactly_once(engine: Engine, smtp_server: SMTPServer) -> None:
    for t in MessageType:
        queue(engine, t, f"{t.value}@example.com")
    report = await deliver_due(engine, NOW + dt.timedelta(days=3), settings=smtp_server.settings)
    again = await deliver_due(engine, NOW + dt.timedelta(days=4), settings=smtp_server.settings)
    assert len(report.sent) == len(MessageType) and again.sent == []
    received = smtp_server.handler.received
    assert sorted(m["To"] for m in received) == sorted(f"{t.value}@example.com" for t in MessageType)
    assert len(set(smtp_server.handler.message_ids())) == len(MessageType)
    ack = next(m for m in received if m["X-Kefu-Type"] == MessageType.COMPLAINT_ACKNOWLEDGEMENT.value)
    assert ack.is_multipart()
    parts = {p.get_content_type(): bytes(p.get_payload(decode=True)) for p in ack.walk() if not p.is_multipart()}
    assert b"TS-20261123-0001" in parts["text/plain"] and b"TS-20261123-0001" in parts["text/html"]


async def test_a_customers_mail_written_after_hours_is_dated_when_it_leaves_in_shanghai_time(
    engine: Engine, smtp_server: SMTPServer
) -> None:
    """Queued at 20:00, a customer's letter waits for the next morning's window; its Date header says when it left,
    with the +08:00 offset (it said the evening before, in UTC: a walk through found the mails in the sink dated so)."""
    evening = NOW + dt.timedelta(hours=10)  # Monday 20:00 in Shanghai
    with unit_of_work(engine) as session:
        row = enqueue(
            session, MessageType.COMPLAINT_ACKNOWLEDGEMENT, recipient_email="late@example.com",
            context=CONTEXTS[MessageType.COMPLAINT_ACKNOWLEDGEMENT], now=evening,
        )  # fmt: skip
        assert row.not_before > evening
    morning = dt.datetime(2026, 11, 24, 1, 5, tzinfo=dt.UTC)  # Tuesday 09:05 in Shanghai
    report = await deliver_due(engine, morning, settings=smtp_server.settings)
    assert len(report.sent) == 1
    [mail] = smtp_server.handler.received
    assert mail["Date"] == "Tue, 24 Nov 2026 09:05:00 +0800"


@pytest.mark.parametrize("fault", ["421", "451", "drop", "slow"])
async def test_a_temporary_failure_is_retried_later_and_the_mail_arrives_once(
    engine: Engine, smtp_server: SMTPServer, fault: str
) -> None:
    queue(engine, MessageType.SUPERVISOR_ESCALATION, "boss@example.com")
    queue(engine, MessageType.PRE_BREACH_WARNING, "agent@example.com")
    smtp_server.handler.faults["boss@example.com"] = [fault]
    first = await deliver_due(engine, NOW, settings=smtp_server.settings)
    assert len(first.retried) == 1 and len(first.sent) == 1
    assert statuses(engine)["boss@example.com"] == "queued"
    early = await deliver_due(engine, NOW + dt.timedelta(seconds=30), settings=smtp_server.settings)
    assert early.sent == []  # backoff: not before the retry delay
    later = await deliver_due(engine, NOW + dt.timedelta(minutes=5), settings=smtp_server.settings)
    assert len(later.sent) == 1
    assert statuses(engine) == {"boss@example.com": "sent", "agent@example.com": "sent"}
    assert sorted(m["To"] for m in smtp_server.handler.received) == ["agent@example.com", "boss@example.com"]


async def test_a_permanent_refusal_becomes_a_dead_letter_at_once(engine: Engine, smtp_server: SMTPServer) -> None:
    row_id = queue(engine, MessageType.SUPERVISOR_ESCALATION, "gone@example.com")
    smtp_server.handler.faults["gone@example.com"] = ["550"]
    report = await deliver_due(engine, NOW, settings=smtp_server.settings)
    assert report.dead == [row_id]
    later = await deliver_due(engine, NOW + dt.timedelta(days=1), settings=smtp_server.settings)
    assert later.sent == [] and smtp_server.handler.received == []
    [letter] = dead_letters(engine)
    assert letter.id == row_id and letter.last_error is not None and letter.last_error.startswith("550")


async def test_a_mail_that_keeps_failing_temporarily_ends_as_a_dead_letter(
    engine: Engine, smtp_server: SMTPServer
) -> None:
    row_id = queue(engine, MessageType.SUPERVISOR_ESCALATION, "busy@example.com")
    smtp_server.handler.faults["busy@example.com"] = ["451"] * 10
    moment = NOW
    for _ in range(smtp_server.settings.mail_max_attempts):
        await deliver_due(engine, moment, settings=smtp_server.settings)
        moment += dt.timedelta(hours=1)
    assert [d.id for d in dead_letters(engine)] == [row_id]
    assert smtp_server.handler.received == []


async def test_a_server_that_is_down_loses_nothing(engine: Engine, smtp_server: SMTPServer) -> None:
    queue(engine, MessageType.PRE_BREACH_WARNING, "agent@example.com")
    down = smtp_server.settings.model_copy(update={"smtp_port": 1})
    report = await deliver_due(engine, NOW, settings=down)
    assert len(report.retried) == 1
    back = await deliver_due(engine, NOW + dt.timedelta(hours=1), settings=smtp_server.settings)
    assert len(back.sent) == 1 and len(smtp_server.handler.received) == 1


async def test_the_message_id_is_fixed_when_queued(engine: Engine, smtp_server: SMTPServer) -> None:
    queue(engine, MessageType.PRE_BREACH_WARNING, "agent@example.com")
    with unit_of_work(engine) as session:
        message_id = session.scalars(select(OutboxMessage.message_id)).one()
    smtp_server.handler.faults["agent@example.com"] = ["drop"]
    await deliver_due(engine, NOW, settings=smtp_server.settings)
    await deliver_due(engine, NOW + dt.timedelta(hours=1), settings=smtp_server.settings)
    assert smtp_server.handler.message_ids() == [message_id]
