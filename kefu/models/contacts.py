"""Routine callbacks and quality checks of communication records (issue 17).

``RoutineCallback``: one callback due for one customer (seed 004 §四(四) 定期回访), made by the daily
``routine-callbacks`` flow, answered in its own ``routine-callback`` run. ``QualityReview``: one communication
record drawn for the monthly quality check (seed 000 第五章 定期对沟通记录进行审核), scored by the agent's supervisor in
its own ``quality-review`` run. ``ContactStepEvent``: the step kit's waiting / completed / refused records of both.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kefu.models.base import Base, utcnow


class ContactKind(StrEnum):
    """What a communication record is (``CommunicationRecord.kind``)."""

    CONTACT = "contact"  # 日常联系
    ROUTINE_CALLBACK = "routine_callback"  # 定期回访
    ENQUIRY_REPLY = "enquiry_reply"  # 咨询答复
    COMPLAINT = "complaint"  # 投诉受理
    KEY_ACCOUNT_CONTACT = "key_account_contact"  # 重点客户定期沟通


CONTACT_KIND_ZH = {
    ContactKind.CONTACT: "日常联系",
    ContactKind.ROUTINE_CALLBACK: "定期回访",
    ContactKind.ENQUIRY_REPLY: "咨询答复",
    ContactKind.COMPLAINT: "投诉受理",
    ContactKind.KEY_ACCOUNT_CONTACT: "重点客户沟通",
}

# The one vocabulary of a communication record's channel (what is stored), with its zh-CN names. The contact cadence's
# rules name these (policy ``contact_cadence``: phone, visit, meeting, email).
CONTACT_CHANNELS = {
    "phone": "电话",
    "visit": "拜访",
    "meeting": "会议",
    "email": "电子邮件",
    "im": "在线客服",
    "sms": "短信",
    "hotline": "客服热线",
    "web": "网站",
    "social": "社交媒体",
}
# Other names people (and older records) give a channel: every door accepts them and stores the channel they name.
# ``mail`` and ``face_to_face`` are also what ``kefu contact log`` and the routine callbacks stored before there was
# one vocabulary: such rows are read as ``email`` and ``visit`` (``stored_channel``).
CHANNEL_ALIASES = {
    "mail": "email",
    "e-mail": "email",
    "face_to_face": "visit",
    "电话": "phone",
    "拜访": "visit",
    "上门拜访": "visit",
    "面谈": "visit",
    "会议": "meeting",
    "邮件": "email",
    "电子邮件": "email",
    "即时通讯": "im",
    "在线客服": "im",
    "短信": "sms",
    "客服热线": "hotline",
    "网站": "web",
    "社交媒体": "social",
}


def stored_channel(value: str) -> str:
    """The channel a stored (or given) name means: ``mail`` of an older row is ``email``; unknown names unchanged."""
    name = value.strip().lower()
    return CHANNEL_ALIASES.get(name, name)


def channel_zh(value: str) -> str:
    """The zh-CN name of a stored channel, older names included (``mail`` → 电子邮件)."""
    return CONTACT_CHANNELS.get(stored_channel(value), value)


def channel_names(channel: str) -> set[str]:
    """Every name rows may carry for ``channel`` (itself and its aliases): what a query on stored rows matches."""
    return {channel} | {alias for alias, meant in CHANNEL_ALIASES.items() if meant == channel}


class RoutineCallback(Base):
    """A routine callback due for a customer on ``due_on`` (the day the daily flow found it due)."""

    __tablename__ = "routine_callbacks"
    __table_args__ = (UniqueConstraint("customer_id", "due_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    due_on: Mapped[dt.date]
    channel: Mapped[str] = mapped_column(String(16))  # phone | mail
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    owned_by: Mapped[str] = mapped_column(String(16))  # key_account | rota | none
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | done
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    record_id: Mapped[int | None] = mapped_column(ForeignKey("communication_records.id"))
    complaint_id: Mapped[int | None] = mapped_column(ForeignKey("complaints.id"))
    # The problem the customer raised, to be registered as a complaint by the intake dispatcher's next pass (the
    # intake's write path sits above the flows); cleared to the complaint's id then.
    complaint_wanted: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class QualityReview(Base):
    """A communication record (or a complaint's first-contact or proposal text) drawn for the quality check of
    ``year``-``month``, scored by the agent's supervisor."""

    __tablename__ = "quality_reviews"
    __table_args__ = (
        UniqueConstraint("year", "month", "record_id"),
        UniqueConstraint("year", "month", "case_event_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    year: Mapped[int]
    month: Mapped[int]
    # What is scored: a communication record, or a complaint's first contact or proposal (its case event's text).
    record_id: Mapped[int | None] = mapped_column(ForeignKey("communication_records.id"), index=True)
    case_event_id: Mapped[int | None] = mapped_column(ForeignKey("case_events.id"), index=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    due_at: Mapped[dt.datetime]
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | scored
    scores: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    flagged: Mapped[bool] = mapped_column(default=False)
    reason: Mapped[str | None] = mapped_column(Text)
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    scored_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ContactStepEvent(Base):
    """A human step's record for a callback or a quality review (``subject``: ``callback:<id>`` or
    ``quality:<id>``): waiting, completed (with the answer) or refused (with the reason). Keyed: nothing twice."""

    __tablename__ = "contact_step_events"
    __table_args__ = (UniqueConstraint("subject", "key", "outcome"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), index=True)
    step: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))  # waiting | completed | refused
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reason: Mapped[str | None] = mapped_column(Text)
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
