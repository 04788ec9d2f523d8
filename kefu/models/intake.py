"""Tables of the intake part: the outbox that starts case flows, idempotency keys and case numbers.

Registering a complaint writes the complaint and its outbox row in one transaction; the dispatcher turns
outbox rows into case flow runs and records which run it got, and the reconciler repairs the rest.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kefu.models.base import Base, utcnow


class IntakeOutbox(Base):
    """One row per complaint: the request to start its case flow run, until Prefect confirms the run."""

    __tablename__ = "intake_outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaints.id"), unique=True)
    case_no: Mapped[str] = mapped_column(String(32), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    flow_run_id: Mapped[str | None] = mapped_column(String(36))
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class IntakeIdempotencyKey(Base):
    """A gateway's ``Idempotency-Key``: a retried submission gets the complaint the first one created."""

    __tablename__ = "intake_idempotency_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaints.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CaseNumberCounter(Base):
    """The last case number handed out on one day (local time in the policy's time zone)."""

    __tablename__ = "intake_case_counters"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(default=0)


class RateLimitHit(Base):
    """How often one client (or one case number) was tried in one window: the status page's rate limit, shared by
    every intake process through the database. Clients are stored as a hash, never as their address."""

    __tablename__ = "rate_limits"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True, index=True)  # epoch seconds
    hits: Mapped[int] = mapped_column(default=0)
