"""Key-account service plans and agreements (seed 001 §二.2 服务方案制定): the plan of one key account (the project
manager's needs and draft, the departments' parts worked out in parallel, the senior manager's decision), its audit
trail, and the service agreement signed at its end (dates, document reference, both sides' obligations)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kefu.models.base import Base, utcnow
from kefu.models.people import Customer


class ServicePlan(Base):
    """One service plan of a key account: ``status`` open → approved (the senior manager's yes) → signed (the
    agreement recorded); ``needs`` and ``draft``: the project manager's latest; ``sent_back``: how often the senior
    manager sent it back."""

    __tablename__ = "service_plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    needs: Mapped[str | None] = mapped_column(Text)
    draft: Mapped[str | None] = mapped_column(Text)
    sent_back: Mapped[int] = mapped_column(default=0)
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[dt.datetime | None]

    customer: Mapped[Customer] = relationship()


class ServicePlanPart(Base):
    """One department's part of a plan (市场部、运营部、技术部共同完善), due by the policy's deadline, recorded in its
    own run; ``escalation_level`` as an onboarding review's."""

    __tablename__ = "service_plan_parts"
    __table_args__ = (UniqueConstraint("plan_id", "department"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("service_plans.id", ondelete="CASCADE"), index=True)
    department: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[dt.datetime]
    due_at: Mapped[dt.datetime]
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    part: Mapped[str | None] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    submitted_at: Mapped[dt.datetime | None]
    escalation_level: Mapped[int] = mapped_column(default=0)

    plan: Mapped[ServicePlan] = relationship()


class ServicePlanEvent(Base):
    """The audit trail of one plan (its runs' steps, escalations, the decision, the renewal reminder), one row per
    action and key: a replay writes nothing twice."""

    __tablename__ = "service_plan_events"
    __table_args__ = (UniqueConstraint("plan_id", "action", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("service_plans.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(100))
    actor: Mapped[str] = mapped_column(String(100))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ServiceAgreement(Base):
    """The service agreement signed for a plan (签订服务协议): signing date, term (start and end date), the document's
    reference, what each side undertakes; ``renewal_reminded_at``: when the project manager was reminded of the
    renewal (once)."""

    __tablename__ = "service_agreements"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("service_plans.id", ondelete="CASCADE"), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    signed_on: Mapped[dt.date] = mapped_column(Date)
    starts_on: Mapped[dt.date] = mapped_column(Date)
    ends_on: Mapped[dt.date] = mapped_column(Date, index=True)
    document_ref: Mapped[str] = mapped_column(String(100))
    company_obligations: Mapped[str] = mapped_column(Text)
    customer_obligations: Mapped[str] = mapped_column(Text)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    renewal_reminded_at: Mapped[dt.datetime | None]

    customer: Mapped[Customer] = relationship()
