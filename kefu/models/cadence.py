"""Contact cadence (客户沟通频率, seed 003 §2.3) and the key-account programme's follow-through (seed 001 §三.4):
the follow-up items of a recorded contact (each with its owner and due date), the cadence reminders and escalations
sent (one per customer, gap and period: never twice), the improvement tasks opened by a KPI below its floor (one per
account, month and KPI) and the audited changes of tier (demotion)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kefu.models.base import Base, utcnow
from kefu.models.people import CommunicationRecord, Customer, Staff


class ContactFollowUp(Base):
    """跟进事项: one follow-up item of a communication record, its owner and due date; ``done_at`` once done."""

    __tablename__ = "contact_follow_ups"

    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("communication_records.id", ondelete="CASCADE"), index=True)
    item: Mapped[str] = mapped_column(Text)
    owner_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    due_on: Mapped[dt.date] = mapped_column(Date)
    done_at: Mapped[dt.datetime | None]

    record: Mapped[CommunicationRecord] = relationship()
    owner: Mapped[Staff] = relationship()


class CadenceNotice(Base):
    """A cadence gap told to someone: ``gap`` (the policy's rule: contact, business_review) of ``period`` (2026-10,
    2026-Q4) reminded to its owner (``stage`` reminded) or escalated to the owner's supervisor (escalated). The unique
    key is the dedupe: the daily run never tells the same gap twice."""

    __tablename__ = "cadence_notices"
    __table_args__ = (UniqueConstraint("customer_id", "gap", "period", "stage"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    gap: Mapped[str] = mapped_column(String(32))
    period: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str] = mapped_column(String(16))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    customer: Mapped[Customer] = relationship()


class KpiImprovementTask(Base):
    """改进任务: a key account's month with a KPI below the policy's floor (above its ceiling), opened for its project
    manager, once per account, month and KPI; ``closed_at`` when done."""

    __tablename__ = "kpi_improvement_tasks"
    __table_args__ = (UniqueConstraint("customer_id", "month", "kpi"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    month: Mapped[dt.date] = mapped_column(Date)
    kpi: Mapped[str] = mapped_column(String(32))
    value: Mapped[float | None]
    target: Mapped[float]
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    opened_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[dt.datetime | None]


class AccountChange(Base):
    """The audit trail of a customer's tier changes made by a decision (demotion: who, when, why, the team ended)."""

    __tablename__ = "account_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    by_staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
