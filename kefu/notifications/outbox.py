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
from kefu.models.notifications import OutboxMessage
from kefu.models.policy import current_policy
from kefu.notifications.messages import SPECS, MessageType, Rendered, Renderer
from kefu.settings import get_settings
from kefu.worktime import WorkCalendar, current_calendar


class MessageRejected(Exception):
    """The message failed the phrase lint and nothing was queued.

    ``reasons`` are the findings in words, for the caller to record where it keeps its own history.
    """

    def __init__(self, rendered: Rendered) -> None:
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


def send_time(
    message_type: MessageType,
    now: dt.datetime,
    *,
    urgent: bool = False,
    agreed_time: dt.datetime | None = None,
    calendar: WorkCalendar | None = None,
) -> dt.datetime:
    """When a message may leave: internal and urgent ones at once, an agreed time as agreed,
    any other customer message at the next business window of a working day (seed 002 §二 3)."""
    if agreed_time is not None:
        if agreed_time.tzinfo is None:
            raise ValueError("agreed_time must be timezone-aware")
        return max(agreed_time, now)
    if urgent or SPECS[MessageType(message_type)].internal:
        return now
    return (calendar or default_calendar()).next_business_moment(now)


def new_message_id() -> str:
    domain = get_settings().mail_from.rpartition("@")[2] or "kefu.local"
    return f"<{uuid.uuid4().hex}@{domain}>"


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
    if dedupe_key is not None:
        existing = session.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == dedupe_key))
        if existing is not None:
            return existing
    now = now or utcnow()
    not_before = send_time(message_type, now, urgent=urgent, agreed_time=agreed_time, calendar=calendar)
    rendered = (renderer or default_renderer()).render(message_type, context, now=not_before)  # dated as sent
    if not rendered.ok:
        raise MessageRejected(rendered)
    row = OutboxMessage(
        message_type=message_type.value,
        complaint_id=complaint_id,
        recipient=recipient_email,
        internal=rendered.internal,
        subject=rendered.subject,
        body_text=rendered.text,
        body_html=rendered.html,
        message_id=new_message_id(),
        dedupe_key=dedupe_key,
        status="queued",
        not_before=not_before,
        attempts=0,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row
