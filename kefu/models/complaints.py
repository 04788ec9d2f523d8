"""Complaints, their milestones and their append-only audit trail."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Numeric, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from kefu.models.base import Base, utcnow
from kefu.models.enums import Channel, ComplaintStatus, MilestoneId, Severity
from kefu.models.people import Customer, Staff, _enum


class Complaint(Base):
    """投诉. The first person who receives it owns it (首问责任制) until it is handed over."""

    __tablename__ = "complaints"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_no: Mapped[str] = mapped_column(String(32), unique=True)
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "channel"))
    received_at: Mapped[dt.datetime] = mapped_column(index=True)
    severity: Mapped[Severity] = mapped_column(_enum(Severity, "severity"))
    category: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[ComplaintStatus] = mapped_column(
        _enum(ComplaintStatus, "complaint_status"), default=ComplaintStatus.REGISTERED, index=True
    )
    urgent: Mapped[bool] = mapped_column(default=False)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    order_ref: Mapped[str | None] = mapped_column(String(64))
    order_amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    product: Mapped[str | None] = mapped_column(String(200))
    place: Mapped[str | None] = mapped_column(String(200))
    problem_at: Mapped[dt.datetime | None]
    content: Mapped[str] = mapped_column(Text)
    # The name the complainant gave (the person who spoke, e.g. 刘女士 of a company on record): letters greet them.
    contact_name: Mapped[str | None] = mapped_column(String(100))
    preferred_contact_time: Mapped[str | None] = mapped_column(String(100))
    promised_resolution_at: Mapped[dt.datetime | None]
    resolved_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]
    reopen_count: Mapped[int] = mapped_column(default=0)
    # The policy the case follows (issue 13): its version and content hash, stamped at registration; the content
    # is kept in policy_snapshots. Only `kefu policy replan` moves an open case to another policy.
    policy_version: Mapped[int | None]
    policy_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    customer: Mapped[Customer | None] = relationship()
    owner: Mapped[Staff | None] = relationship()
    milestones: Mapped[list[Milestone]] = relationship(
        back_populates="complaint", cascade="all, delete-orphan", order_by="Milestone.due_at"
    )


class Milestone(Base):
    """A policy deadline of one case: when it is due, and whether it was met, warned, breached, escalated."""

    __tablename__ = "milestones"
    __table_args__ = (UniqueConstraint("complaint_id", "milestone"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaints.id", ondelete="CASCADE"), index=True)
    milestone: Mapped[MilestoneId] = mapped_column(_enum(MilestoneId, "milestone_id"))
    starts_at: Mapped[dt.datetime]
    due_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    unit: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(32))
    met_at: Mapped[dt.datetime | None]
    warned_at: Mapped[dt.datetime | None]
    breached_at: Mapped[dt.datetime | None]
    escalation_level: Mapped[int] = mapped_column(default=0)
    provisional: Mapped[bool] = mapped_column(default=False)
    paused_intervals: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    explanation: Mapped[str | None] = mapped_column(Text)

    complaint: Mapped[Complaint] = relationship(back_populates="milestones")


class CaseEvent(Base):
    """The audit trail of a case: append-only (who did what, with which data, when)."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaints.id"), index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class PolicySnapshot(Base):
    """A policy a case followed or follows, by its content hash (``kefu.tasks.case_policy``): kept for good."""

    __tablename__ = "policy_snapshots"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int]
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AuditTrailIsAppendOnly(Exception):
    """Case events are never changed or deleted."""


@event.listens_for(Session, "before_flush")
def _case_events_append_only(session: Session, _context: object, _instances: object) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, CaseEvent) and (obj in session.deleted or session.is_modified(obj)):
            raise AuditTrailIsAppendOnly(f"case event {obj.id} cannot be changed or deleted")
