"""Enquiries (咨询, seed 002 §三, seed 004 §四(一)): a customer's question, answered directly or by a department,
with its promise from the policy (``enquiries``), its audit trail, and a supervisor's verdict on the answer."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kefu.models.base import Base, utcnow
from kefu.models.complaints import Complaint
from kefu.models.enums import Channel
from kefu.models.people import Customer, Staff, _enum


class EnquiryStatus(StrEnum):
    OPEN = "open"  # received, nobody has answered yet
    REFERRED = "referred"  # sent to a department (the cross-department target applies)
    ANSWERED = "answered"  # the reply went to the customer; asking whether anything else is open
    CLOSED = "closed"
    CONVERTING = "converting"  # it is a complaint: the intake registers it (``kefu.intake.enquiries``)
    CONVERTED = "converted"  # it was a complaint: registered as one (``complaint_id``)


ENQUIRY_STATUS_ZH = {
    EnquiryStatus.OPEN: "待答复",
    EnquiryStatus.REFERRED: "已转部门",
    EnquiryStatus.ANSWERED: "已答复",
    EnquiryStatus.CLOSED: "已结束",
    EnquiryStatus.CONVERTING: "正在转为投诉",
    EnquiryStatus.CONVERTED: "已转为投诉",
}


class Enquiry(Base):
    """咨询. ``received_at`` is when the customer first spoke: the promise's clock starts there, and so does the
    complaint's when the enquiry turns out to be one. ``due_at`` is the open promise (``target``: ``direct_answer``
    until referred, then ``cross_department_solution``); ``answered_at`` meets it."""

    __tablename__ = "enquiries"

    id: Mapped[int] = mapped_column(primary_key=True)
    enquiry_no: Mapped[str] = mapped_column(String(32), unique=True)
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "channel"))
    received_at: Mapped[dt.datetime] = mapped_column(index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    content: Mapped[str] = mapped_column(Text)
    status: Mapped[EnquiryStatus] = mapped_column(
        _enum(EnquiryStatus, "enquiry_status"), default=EnquiryStatus.OPEN, index=True
    )
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)  # who took it (首问责任制)
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    department: Mapped[str | None] = mapped_column(String(32))  # a role of the policy's ``enquiries.departments``
    department_answer: Mapped[str | None] = mapped_column(Text)
    reply: Mapped[str | None] = mapped_column(Text)
    reply_sent: Mapped[str | None] = mapped_column(String(32))  # how the reply left: mail / sms / no_address
    target: Mapped[str] = mapped_column(String(32), default="direct_answer")
    due_at: Mapped[dt.datetime] = mapped_column(index=True)
    answered_at: Mapped[dt.datetime | None]
    breached_at: Mapped[dt.datetime | None]
    escalation_level: Mapped[int] = mapped_column(default=0)
    closed_at: Mapped[dt.datetime | None]
    complaint_id: Mapped[int | None] = mapped_column(ForeignKey("complaints.id"), index=True)
    marked_wrong_at: Mapped[dt.datetime | None]
    marked_wrong_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    wrong_reason: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    customer: Mapped[Customer | None] = relationship()
    owner: Mapped[Staff | None] = relationship(foreign_keys=[owner_id])
    answered_by: Mapped[Staff | None] = relationship(foreign_keys=[answered_by_id])
    complaint: Mapped[Complaint | None] = relationship()

    @property
    def finished(self) -> bool:
        return self.status in (EnquiryStatus.CLOSED, EnquiryStatus.CONVERTING, EnquiryStatus.CONVERTED)


class EnquiryEvent(Base):
    """The enquiry's audit trail: steps waited on, answered and refused, replies, escalations (one per key)."""

    __tablename__ = "enquiry_events"
    __table_args__ = (UniqueConstraint("enquiry_id", "action", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    enquiry_id: Mapped[int] = mapped_column(ForeignKey("enquiries.id"), index=True)
    action: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(128))
    actor: Mapped[str] = mapped_column(String(100))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class FeedbackKind(StrEnum):
    FEEDBACK = "feedback"  # 反馈
    SUGGESTION = "suggestion"  # 建议


FEEDBACK_KIND_ZH = {FeedbackKind.FEEDBACK: "反馈", FeedbackKind.SUGGESTION: "建议"}


class Feedback(Base):
    """客户反馈与建议 (seed 000 ch.4 §3–4): recorded with the customer, routed to the responsible department (its
    deadline from the policy's ``feedback.department_deadlines``), answered, the answer sent to the customer; a
    suggestion the department finds reasonable (``reasonable``) is reported to management."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    feedback_no: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[FeedbackKind] = mapped_column(_enum(FeedbackKind, "feedback_kind"))
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "channel"))
    received_at: Mapped[dt.datetime] = mapped_column(index=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    content: Mapped[str] = mapped_column(Text)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    department: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[dt.datetime] = mapped_column(index=True)
    department_answer: Mapped[str | None] = mapped_column(Text)
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    reply: Mapped[str | None] = mapped_column(Text)
    reply_sent: Mapped[str | None] = mapped_column(String(32))
    answered_at: Mapped[dt.datetime | None]
    reasonable: Mapped[bool | None]
    breached_at: Mapped[dt.datetime | None]  # the department's deadline passed unanswered (the sweeper)
    escalation_level: Mapped[int] = mapped_column(default=0, server_default="0")
    closed_at: Mapped[dt.datetime | None]  # the follow-up done: the customer informed, nothing else open
    flow_run_id: Mapped[str | None] = mapped_column(String(64))  # its ``feedback`` run (the sweeper starts it)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    @property
    def finished(self) -> bool:
        return self.closed_at is not None


class FeedbackEvent(Base):
    """The feedback's audit trail: steps waited on, answered and refused, the breach and escalations (one per key)."""

    __tablename__ = "feedback_events"
    __table_args__ = (UniqueConstraint("feedback_id", "action", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    feedback_id: Mapped[int] = mapped_column(ForeignKey("feedback.id"), index=True)
    action: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(128))
    actor: Mapped[str] = mapped_column(String(100))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
