"""Key accounts (重点客户, seed 001): the team serving each one, the monthly business figures of every customer and
the nominations for the programme (by the monthly scoring or by hand by the market department)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kefu.models.base import Base, utcnow
from kefu.models.people import Customer, Staff, _enum


class TeamRole(StrEnum):
    """The key-account team's roles (seed 001 重点客户服务团队)."""

    PROJECT_MANAGER = "project_manager"  # 项目经理
    SERVICE_SPECIALIST = "service_specialist"  # 客服专员
    DISPATCHER = "dispatcher"  # 物流调度员
    AFTER_SALES = "after_sales"  # 售后服务人员


TEAM_ROLE_ZH = {
    TeamRole.PROJECT_MANAGER: "项目经理",
    TeamRole.SERVICE_SPECIALIST: "客服专员",
    TeamRole.DISPATCHER: "物流调度员",
    TeamRole.AFTER_SALES: "售后服务人员",
}


class KeyAccountMember(Base):
    """One member of a key account's team: one person per team role."""

    __tablename__ = "key_account_team"
    __table_args__ = (UniqueConstraint("customer_id", "team_role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    team_role: Mapped[TeamRole] = mapped_column(_enum(TeamRole, "team_role"))
    assigned_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    staff: Mapped[Staff] = relationship()


class BusinessFigures(Base):
    """One customer's business in one month (``month``: its first day): orders, business volume (业务量, in the
    company's unit), orders processed on time, deliveries on time, complaints. ``complaints`` is ``None`` when the
    import did not give it: Kefu counts the customer's complaints received that month itself."""

    __tablename__ = "business_figures"
    __table_args__ = (UniqueConstraint("customer_id", "month"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    month: Mapped[dt.date] = mapped_column(Date, index=True)
    orders: Mapped[int]
    volume: Mapped[Decimal] = mapped_column(Numeric(16, 2))
    orders_on_time: Mapped[int]
    deliveries_on_time: Mapped[int]
    complaints: Mapped[int | None]
    imported_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class NominationSource(StrEnum):
    SCORING = "scoring"  # the monthly identification run
    MARKET = "market"  # 市场部 by hand (kefu account nominate)


class KeyAccountNomination(Base):
    """A customer put forward for the key-account programme (seed 001 识别: 收集→筛选→调研→评审→审批→纳入): by the
    monthly scoring (with its score and explanation) or by the market department by hand (with the reason and who).
    Onboarding (research, reviews, senior approval) starts from here; a customer with an open nomination is not
    nominated again."""

    __tablename__ = "key_account_nominations"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    source: Mapped[NominationSource] = mapped_column(_enum(NominationSource, "nomination_source"))
    month: Mapped[dt.date | None] = mapped_column(Date)
    score: Mapped[Decimal | None] = mapped_column(Numeric(6, 2))
    explanation: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    nominated_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open → admitted | rejected (onboarding)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Onboarding (kefu.flows.key_account_onboarding): its run, and how it ended (the senior manager's reason).
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    closed_at: Mapped[dt.datetime | None]
    outcome_reason: Mapped[str | None] = mapped_column(Text)

    customer: Mapped[Customer] = relationship()


class OnboardingReview(Base):
    """One department's review of a nomination (seed 001 §二.1 相关部门评审): due by the policy's deadline, answered
    in its own review run (approve or reject, with comments); ``escalation_level``: how far a missed review climbed
    (1: the department's supervisor, 2: a senior manager)."""

    __tablename__ = "onboarding_reviews"
    __table_args__ = (UniqueConstraint("nomination_id", "department"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    nomination_id: Mapped[int] = mapped_column(ForeignKey("key_account_nominations.id", ondelete="CASCADE"), index=True)
    department: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[dt.datetime]
    due_at: Mapped[dt.datetime]
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    decision: Mapped[str | None] = mapped_column(String(16))  # approved | rejected
    comments: Mapped[str | None] = mapped_column(Text)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    decided_at: Mapped[dt.datetime | None]
    escalation_level: Mapped[int] = mapped_column(default=0)

    nomination: Mapped[KeyAccountNomination] = relationship()


class OnboardingEvent(Base):
    """The audit trail of one onboarding (its runs' steps: waiting, answered, refused; escalations; the outcome),
    one row per action and key: a replayed step writes nothing twice."""

    __tablename__ = "onboarding_events"
    __table_args__ = (UniqueConstraint("nomination_id", "action", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    nomination_id: Mapped[int] = mapped_column(ForeignKey("key_account_nominations.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(100))
    actor: Mapped[str] = mapped_column(String(100))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
