"""员工月度考核 (seed 004 §5(二)): one sheet per assessed person and month, the month's publication, the sheets' audit
trail (the step kit's records of the self and supervisor steps)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kefu.models.base import Base, utcnow
from kefu.models.people import Staff

PENDING, DONE, MISSING = "pending", "done", "missing"


class AssessmentMonth(Base):
    """A month's assessment: opened once (its sheets), published once (ranks, mails, the report's team view)."""

    __tablename__ = "assessment_months"

    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # "2026-11"
    opened_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    published_at: Mapped[dt.datetime | None]


class AssessmentSheet(Base):
    """考核表: one person's month — Kefu's measured figures, the self and supervisor scores (each step done, missing
    or pending, with its deadline and run), and the combined result once the month is published."""

    __tablename__ = "assessment_sheets"
    __table_args__ = (UniqueConstraint("month", "staff_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    month: Mapped[str] = mapped_column(String(7), ForeignKey("assessment_months.month"), index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    supervisor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    # Kefu's figures for the month: rates 0–1, satisfaction the callbacks' average 1–5; None without data.
    answer_accuracy: Mapped[float | None]
    answers: Mapped[int] = mapped_column(default=0)
    accuracy_source: Mapped[str] = mapped_column(String(16), default="enquiries")
    on_time_rate: Mapped[float | None]
    milestones: Mapped[int] = mapped_column(default=0)
    satisfaction: Mapped[float | None]
    callbacks: Mapped[int] = mapped_column(default=0)
    # The evaluators' steps: status pending / done / missing, the 1–5 scores by item, the comment.
    self_status: Mapped[str] = mapped_column(String(16), default=PENDING)
    self_due_at: Mapped[dt.datetime]
    self_scores: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    self_comment: Mapped[str | None] = mapped_column(Text)
    self_run_id: Mapped[str | None] = mapped_column(String(64))
    supervisor_status: Mapped[str] = mapped_column(String(16), default=PENDING)
    supervisor_due_at: Mapped[dt.datetime]
    supervisor_scores: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    supervisor_comment: Mapped[str | None] = mapped_column(Text)
    supervisor_run_id: Mapped[str | None] = mapped_column(String(64))
    scored_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    # The result (at publication): each evaluator's score 0–100, the total, the rank, what was missing.
    customer_score: Mapped[float | None]
    supervisor_score: Mapped[float | None]
    self_score: Mapped[float | None]
    total: Mapped[float | None]
    rank: Mapped[int | None]
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    staff: Mapped[Staff] = relationship(foreign_keys=[staff_id])
    supervisor: Mapped[Staff | None] = relationship(foreign_keys=[supervisor_id])


class AssessmentEvent(Base):
    """The audit trail of a sheet's steps (waiting, completed, refused, missing, escalated), keyed: written once."""

    __tablename__ = "assessment_events"
    __table_args__ = (UniqueConstraint("sheet_id", "evaluator", "action", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sheet_id: Mapped[int] = mapped_column(ForeignKey("assessment_sheets.id"), index=True)
    evaluator: Mapped[str] = mapped_column(String(16))  # self / supervisor
    action: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime]
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
