"""Delivery of due outbox rows: mail over SMTP (aiosmtplib), SMS through the configured provider; retries with
backoff, dead letters.

Exactly once: every row carries the Message-ID fixed at enqueue time and becomes ``sent`` only after
the server accepted it; a row is sent at most once per pass, and a crash between acceptance and the
commit re-sends the same Message-ID, which receivers (and Kefu's sink) treat as the same mail. An SMS is handed
to its provider with the row's fixed message id as the provider's reference (the sink stores it once; the cloud
services do not deduplicate by it, so such a crash can repeat an SMS there).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

import aiosmtplib
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from kefu.models.base import utcnow
from kefu.models.db import unit_of_work
from kefu.models.notifications import DEAD, MAIL, QUEUED, SENT, SMS, WAIT_RETRY, OutboxAttachment, OutboxMessage
from kefu.models.policy import current_policy
from kefu.notifications.pii import mask_pii, mask_recipient
from kefu.notifications.sms import split_signed
from kefu.notifications.sms_providers import SmsConfigError, SmsProvider, SmsSendError, sms_provider
from kefu.settings import Settings, get_settings

log = logging.getLogger(__name__)


@dataclass
class DeliveryReport:
    sent: list[int] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {"sent": len(self.sent), "retried": len(self.retried), "dead": len(self.dead)}


class PermanentFailure(Exception):
    """The server refused the mail for good (5xx)."""


def build_email(
    row: OutboxMessage,
    settings: Settings,
    attachments: Sequence[OutboxAttachment] = (),
    *,
    sent_at: dt.datetime | None = None,
) -> EmailMessage:
    """The mail of ``row``. Its ``Date`` is when it leaves (``sent_at``), in the policy's time zone: a customer's
    mail written after hours waits for the next send window, and its reader's inbox should not date it at night."""
    moment = sent_at or row.created_at
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)  # stored as UTC
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = row.recipient
    msg["Subject"] = row.subject
    msg["Message-ID"] = row.message_id
    msg["Date"] = format_datetime(moment.astimezone(ZoneInfo(current_policy().timezone)))
    msg["X-Kefu-Type"] = row.message_type
    msg.set_content(row.body_text, charset="utf-8")
    msg.add_alternative(row.body_html, subtype="html", charset="utf-8")
    for attachment in attachments:
        maintype, _, subtype = attachment.media_type.partition("/")
        msg.add_attachment(attachment.content, maintype=maintype, subtype=subtype, filename=attachment.filename)
    return msg


def attachments_of(session: Session, row_id: int) -> list[OutboxAttachment]:
    return list(
        session.scalars(
            select(OutboxAttachment).where(OutboxAttachment.message_id == row_id).order_by(OutboxAttachment.id)
        )
    )


def backoff(attempts: int, settings: Settings) -> dt.timedelta:
    seconds = min(settings.mail_retry_base_seconds * 2 ** max(attempts - 1, 0), settings.mail_retry_max_seconds)
    return dt.timedelta(seconds=seconds)


def _classify(exc: BaseException) -> tuple[bool, str]:
    """(permanent?, reason) for a failed send."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        text = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
        return all(c >= 500 for c in codes), text
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code >= 500, f"{exc.code} {exc.message}"
    return False, f"{type(exc).__name__}: {exc}"


def _client(settings: Settings) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        use_tls=settings.smtp_use_tls,
        start_tls=settings.smtp_starttls if not settings.smtp_use_tls else False,
        timeout=settings.smtp_timeout_seconds,
    )


def _due(engine: Engine, channel: str, now: dt.datetime, settings: Settings) -> list[int]:
    with unit_of_work(engine) as session:
        return list(
            session.scalars(
                select(OutboxMessage.id)
                .where(
                    OutboxMessage.channel == channel, OutboxMessage.status == QUEUED, OutboxMessage.not_before <= now
                )
                .order_by(OutboxMessage.not_before, OutboxMessage.id)
                .limit(settings.mail_batch_size)
            )
        )


def _record_attempt(
    engine: Engine,
    row_id: int,
    *,
    failure: tuple[bool, str] | None,
    provider_id: str | None = None,
    now: dt.datetime,
    settings: Settings,
    report: DeliveryReport,
) -> None:
    """After one attempt: ``sent``, or (``failure`` = (permanent?, reason)) a retry after backoff or a dead letter."""
    with unit_of_work(engine) as session:
        row = session.get(OutboxMessage, row_id)
        assert row is not None
        row.attempts += 1
        if failure is None:
            row.status, row.sent_at, row.last_error = SENT, utcnow(), None
            row.provider_message_id = provider_id
            report.sent.append(row_id)
            return
        permanent, reason = failure
        row.last_error = reason
        if permanent or row.attempts >= settings.mail_max_attempts:
            row.status = DEAD
            report.dead.append(row_id)
            log.warning(
                "%s %s to %s is a dead letter: %s", row.channel, row_id, mask_recipient(row.recipient), mask_pii(reason)
            )
        else:
            row.not_before = now + backoff(row.attempts, settings)
            row.wait_reason = WAIT_RETRY
            report.retried.append(row_id)
            log.info("%s %s will be retried: %s", row.channel, row_id, mask_pii(reason))


async def deliver_due(
    engine: Engine,
    now: dt.datetime | None = None,
    *,
    settings: Settings | None = None,
    sms: SmsProvider | None = None,
) -> DeliveryReport:
    """Send every queued row whose time has come: mails (one SMTP connection per pass, reopened after errors),
    then SMS through ``sms`` (default: the configured provider, ``KEFU_SMS_PROVIDER``)."""
    settings = settings or get_settings()
    now = now or utcnow()
    report = DeliveryReport()
    await _deliver_mail(engine, now, settings, report)
    await _deliver_sms(engine, now, settings, report, sms)
    return report


async def _deliver_mail(engine: Engine, now: dt.datetime, settings: Settings, report: DeliveryReport) -> None:
    ids = _due(engine, MAIL, now, settings)
    client: aiosmtplib.SMTP | None = None
    try:
        for row_id in ids:
            with unit_of_work(engine) as session:
                row = session.get(OutboxMessage, row_id)
                if row is None or row.status != QUEUED:
                    continue
                email = build_email(row, settings, attachments_of(session, row_id), sent_at=now)
            error: BaseException | None = None
            try:
                if client is None or not client.is_connected:
                    client = _client(settings)
                    await client.connect()
                await client.send_message(email)
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                error = exc
                if client is not None:
                    client.close()
                client = None
            failure = None if error is None else _classify(error)
            _record_attempt(engine, row_id, failure=failure, now=now, settings=settings, report=report)
    finally:
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except aiosmtplib.SMTPException:
                client.close()


async def _deliver_sms(
    engine: Engine, now: dt.datetime, settings: Settings, report: DeliveryReport, provider: SmsProvider | None
) -> None:
    ids = _due(engine, SMS, now, settings)
    if not ids:
        return
    if provider is None:
        try:
            provider = sms_provider(settings)
        except SmsConfigError as exc:  # nothing is spent: the rows wait until the configuration is fixed
            log.error("%d SMS not sent: %s", len(ids), exc)
            return
    for row_id in ids:
        with unit_of_work(engine) as session:
            row = session.get(OutboxMessage, row_id)
            if row is None or row.status != QUEUED:
                continue
            phone, reference, message_type = row.recipient, row.message_id, row.message_type
            signature, body = split_signed(row.body_text)
        failure: tuple[bool, str] | None = None
        provider_id: str | None = None
        try:
            provider_id = await asyncio.to_thread(
                provider.send, phone, body, signature, message_type=message_type, reference=reference
            )
        except SmsSendError as exc:
            failure = (not exc.retryable, exc.reason)
        _record_attempt(
            engine, row_id, failure=failure, provider_id=provider_id, now=now, settings=settings, report=report
        )


@dataclass(frozen=True)
class DeadLetter:
    id: int
    message_type: str
    channel: str
    complaint_id: int | None
    recipient: str
    subject: str
    attempts: int
    last_error: str | None
    created_at: dt.datetime


def dead_letters(engine: Engine) -> list[DeadLetter]:
    """The mails and SMS Kefu gave up on, oldest first (operators see them in ``kefu mail dead``)."""
    with unit_of_work(engine) as session:
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.status == DEAD).order_by(OutboxMessage.id))
        return [
            DeadLetter(
                r.id,
                r.message_type,
                r.channel,
                r.complaint_id,
                r.recipient,
                r.subject,
                r.attempts,
                r.last_error,
                r.created_at,
            )
            for r in rows
        ]
