"""The customer's own answers: single-use links that let a customer accept or reject a proposed solution.

A link is a random token (32 bytes, URL-safe) shown once, in the solution-proposal message; only its SHA-256 is
stored, with the case, the approval step's key it answers (``approve-<round>``), what was proposed, and when it
expires. Why a stored random token and not an HMAC-signed one: a single-use link needs a row anyway (to know it
was used), an expiry and a revocation live naturally on that row, and there is no signing secret to configure,
rotate or leak — a stolen database gives hashes that open nothing. The decision (accepted or not, the customer's
comment, when) is written on the row by one conditional update, so two posts cannot both decide.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kefu.models.base import Base, utcnow
from kefu.models.complaints import Complaint

TOKEN_BYTES = 32


class CustomerAnswerLink(Base):
    """One link for one approval step of one case: what the customer is asked, and their answer once given."""

    __tablename__ = "customer_answer_links"
    __table_args__ = (UniqueConstraint("complaint_id", "step_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaints.id"), index=True)
    step_key: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    solution: Mapped[str] = mapped_column(Text)
    promised_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    decided_at: Mapped[dt.datetime | None]
    accepted: Mapped[bool | None]
    comment: Mapped[str | None] = mapped_column(Text)
    # When the decision reached the case run (resumed its approval step); None: still to be delivered.
    delivered_at: Mapped[dt.datetime | None]

    complaint: Mapped[Complaint] = relationship()


def hash_link_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_link_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)
