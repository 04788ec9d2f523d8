"""Tables of the notifications part: the outbox of messages Kefu sends (one row = one mail or one SMS)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kefu.models.base import Base, utcnow

QUEUED = "queued"
SENT = "sent"
DEAD = "dead"

# Channels: a row is a mail (recipient an e-mail address) or an SMS (recipient a phone number, no subject or HTML).
MAIL = "mail"
SMS = "sms"

# Why a queued row waits until ``not_before`` (shown on the outbox page).
WAIT_WINDOW = "window"  # a customer message waits for the next business window of a working day
WAIT_URGENT = "urgent"  # urgent: at once
WAIT_AGREED = "agreed"  # the time the customer agreed
WAIT_INTERNAL = "internal"  # a message to staff: at once
WAIT_RETRY = "retry"  # a failed attempt waits for its backoff


class OutboxMessage(Base):
    """One rendered, linted message waiting for (or past) delivery.

    ``message_id`` is fixed when the row is written, so a retry after a crash sends the same
    Message-ID and ``status`` flips to ``sent`` only after the server accepted the mail.
    """

    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_type: Mapped[str] = mapped_column(String(48), index=True)
    channel: Mapped[str] = mapped_column(String(8), default=MAIL, server_default=MAIL)
    complaint_id: Mapped[int | None] = mapped_column(ForeignKey("complaints.id"), index=True)
    recipient: Mapped[str] = mapped_column(String(254))
    internal: Mapped[bool] = mapped_column(default=False)
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(200), unique=True)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=QUEUED, index=True)
    not_before: Mapped[dt.datetime] = mapped_column(index=True)
    wait_reason: Mapped[str | None] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None]
    provider_message_id: Mapped[str | None] = mapped_column(String(100))


class OutboxAttachment(Base):
    """A file sent with an outbox mail (the statistics report's HTML and XLSX): stored with the row, so a resend
    after a crash sends the same bytes under the same Message-ID."""

    __tablename__ = "outbox_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("outbox_messages.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    media_type: Mapped[str] = mapped_column(String(100))
    content: Mapped[bytes] = mapped_column(LargeBinary)
