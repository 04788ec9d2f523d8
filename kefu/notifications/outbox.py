"""Putting rendered, linted messages into the outbox (in the caller's session; never commits)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu.models.base import utcnow
from kefu.models.notifications import (
    MAIL,
    SMS,
    WAIT_AGREED,
    WAIT_INTERNAL,
    WAIT_URGENT,
    WAIT_WINDOW,
    OutboxMessage,
)
from kefu.models.policy import current_policy
from kefu.notifications.messages import SPECS, MessageType, Rendered, Renderer
from kefu.notifications.sms import SmsRendered, mobile_number, render_sms
from kefu.settings import Settings, get_settings
from kefu.worktime import WorkCalendar, current_calendar


class MessageRejected(Exception):
    """The message failed the phrase lint and nothing was queued.

    ``reasons`` are the findings in words, for the caller to record where it keeps its own history.
    """

    def __init__(self, rendered: Rendered | SmsRendered) -> None:
        self.rendered = rendered
        self.reasons = [str(f) for f in rendered.findings]
        super().__init__(f"{rendered.message_type.value} rejected: " + "; ".join(self.reasons))


def default_calendar() -> WorkCalendar:
    """The calendar of the policy in force (a changed policy file gets a new one, see ``calendar_for``)."""
    return current_calendar()


def default_renderer() -> Renderer:
    """A renderer writing times in the time zone of the policy in force, signing with its signature."""
    policy = current_policy()
    return _renderer(policy.timezone, policy.letters.signature)


@lru_cache(maxsize=4)
def _renderer(timezone: str, signature: str) -> Renderer:
    return Renderer(timezone, signature=signature)


def send_plan(
    message_type: MessageType,
    now: dt.datetime,
    *,
    urgent: bool = False,
    agreed_time: dt.datetime | None = None,
    calendar: WorkCalendar | None = None,
) -> tuple[dt.datetime, str]:
    """When a message may leave and why then: an agreed time as agreed (``agreed``), urgent ones (``urgent``) and
    internal ones (``internal``) at once, any other customer message at the next business window of a working day
    (``window``, seed 002 §二 3). The reason is kept on the row and shown on the outbox page."""
    if agreed_time is not None:
        if agreed_time.tzinfo is None:
            raise ValueError("agreed_time must be timezone-aware")
        return max(agreed_time, now), WAIT_AGREED
    if urgent:
        return now, WAIT_URGENT
    if SPECS[MessageType(message_type)].internal:
        return now, WAIT_INTERNAL
    return (calendar or default_calendar()).next_business_moment(now), WAIT_WINDOW


def send_time(
    message_type: MessageType,
    now: dt.datetime,
    *,
    urgent: bool = False,
    agreed_time: dt.datetime | None = None,
    calendar: WorkCalendar | None = None,
) -> dt.datetime:
    """When a message may leave (see ``send_plan``)."""
    return send_plan(message_type, now, urgent=urgent, agreed_time=agreed_time, calendar=calendar)[0]


def new_message_id() -> str:
    domain = get_settings().mail_from.rpartition("@")[2] or "kefu.local"
    return f"<{uuid.uuid4().hex}@{domain}>"


def _existing(session: Session, dedupe_key: str | None) -> OutboxMessage | None:
    if dedupe_key is None:
        return None
    return session.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == dedupe_key))


def _add(
    session: Session,
    row: OutboxMessage,
    *,
    urgent: bool,
    agreed_time: dt.datetime | None,
    calendar: WorkCalendar | None,
) -> OutboxMessage:
    """Give a new row its id and send plan, add it to the session and flush."""
    row.not_before, row.wait_reason = send_plan(
        MessageType(row.message_type), row.created_at, urgent=urgent, agreed_time=agreed_time, calendar=calendar
    )
    row.message_id, row.status, row.attempts = new_message_id(), "queued", 0
    session.add(row)
    session.flush()
    return row


def enqueue(
    session: Session,
    message_type: MessageType | str,
    *,
    recipient_email: str,
    context: Mapping[str, Any],
    complaint_id: int | None = None,
    urgent: bool = False,
    agreed_time: dt.datetime | None = None,
    dedupe_key: str | None = None,
    now: dt.datetime | None = None,
    calendar: WorkCalendar | None = None,
    renderer: Renderer | None = None,
) -> OutboxMessage:
    """Render, lint and queue one message; see the package docstring."""
    message_type = MessageType(message_type)
    if not recipient_email or "@" not in recipient_email:
        raise ValueError(f"recipient_email {recipient_email!r} is not an email address")
    existing = _existing(session, dedupe_key)
    if existing is not None:
        return existing
    now = now or utcnow()
    not_before = send_time(message_type, now, urgent=urgent, agreed_time=agreed_time, calendar=calendar)
    rendered = (renderer or default_renderer()).render(message_type, context, now=not_before)  # dated as sent
    if not rendered.ok:
        raise MessageRejected(rendered)
    row = OutboxMessage(
        message_type=message_type.value,
        channel=MAIL,
        complaint_id=complaint_id,
        recipient=recipient_email,
        internal=rendered.internal,
        subject=rendered.subject,
        body_text=rendered.text,
        body_html=rendered.html,
        dedupe_key=dedupe_key,
        created_at=now,
    )
    return _add(session, row, urgent=urgent, agreed_time=agreed_time, calendar=calendar)


def enqueue_sms(
    session: Session,
    message_type: MessageType | str,
    *,
    phone: str,
    context: Mapping[str, Any],
    complaint_id: int | None = None,
    urgent: bool = False,
    agreed_time: dt.datetime | None = None,
    dedupe_key: str | None = None,
    now: dt.datetime | None = None,
    calendar: WorkCalendar | None = None,
    renderer: Renderer | None = None,
    settings: Settings | None = None,
) -> OutboxMessage:
    """The SMS twin of ``enqueue``: the same lint, send windows and dedupe key, the text shortened to an SMS
    (``kefu.notifications.sms``) signed with ``sms_signature`` within ``sms_max_parts``; ``MessageRejected`` when
    the lint refuses it or it cannot be shortened enough. ``phone``: a mainland mobile number."""
    message_type = MessageType(message_type)
    mobile = mobile_number([phone])
    if mobile is None:
        raise ValueError("phone is not a mainland mobile number")
    existing = _existing(session, dedupe_key)
    if existing is not None:
        return existing
    settings = settings or get_settings()
    rendered = render_sms(
        renderer or default_renderer(),
        message_type,
        context,
        signature=settings.sms_signature,
        max_parts=settings.sms_max_parts,
    )
    if not rendered.ok:
        raise MessageRejected(rendered)
    row = OutboxMessage(
        message_type=message_type.value,
        channel=SMS,
        complaint_id=complaint_id,
        recipient=mobile,
        internal=rendered.internal,
        subject="",
        body_text=rendered.text,
        body_html="",
        dedupe_key=dedupe_key,
        created_at=now or utcnow(),
    )
    return _add(session, row, urgent=urgent, agreed_time=agreed_time, calendar=calendar)
