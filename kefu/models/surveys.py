"""客户满意度调查 (seed 003 §4): campaigns, the invitation each customer of a campaign gets (or why not), and the
answers, whether given through the invitation's link or entered by staff after a phone interview or a visit.

An invitation's link is a random token shown once, in the invitation mail; only its SHA-256 is stored (the
pattern of ``kefu.models.answers``: a single-use link needs a row anyway, so there is no signing secret to keep).
A customer skipped by a campaign (the fatigue cap, no e-mail address, a message refused by the lint) still has
an invitation row, without a token, carrying the reason: the campaign's summary lists them from there, and a
re-run of the campaign finds everyone it already decided about.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kefu.models.base import Base, utcnow
from kefu.models.people import Customer, Staff, _enum


class CampaignKind(StrEnum):
    YEARLY = "yearly"  # 每年至少一次全面调查
    KEY_ACCOUNT = "key_account"  # 重点客户，按策略的频率
    AD_HOC = "ad_hoc"  # 专项调查：新产品、重大调整后


class Segment(StrEnum):
    ALL = "all"
    KEY = "key"
    GENERAL = "general"


class CollectedBy(StrEnum):
    LINK = "link"  # the customer, through the invitation's link
    PHONE = "phone"  # 电话访谈, entered by staff
    VISIT = "visit"  # 现场访谈, entered by staff


KIND_ZH = {
    CampaignKind.YEARLY: "年度全面调查",
    CampaignKind.KEY_ACCOUNT: "重点客户调查",
    CampaignKind.AD_HOC: "专项调查",
}
SEGMENT_ZH = {Segment.ALL: "全部客户", Segment.KEY: "重点客户", Segment.GENERAL: "一般客户"}
COLLECTED_ZH = {CollectedBy.LINK: "问卷链接", CollectedBy.PHONE: "电话访谈", CollectedBy.VISIT: "现场访谈"}


class SurveyCampaign(Base):
    """One survey campaign: which customers (``segment``), why, and when it opened and closes (its links expire at
    ``closes_at``; ``closed_at`` once its results were published)."""

    __tablename__ = "survey_campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[CampaignKind] = mapped_column(_enum(CampaignKind, "survey_kind"))
    segment: Mapped[Segment] = mapped_column(_enum(Segment, "survey_segment"))
    reason: Mapped[str] = mapped_column(Text)
    launched_by: Mapped[str] = mapped_column(String(64))  # a staff login, or "schedule"
    opened_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    closes_at: Mapped[dt.datetime]
    closed_at: Mapped[dt.datetime | None]


class SurveyInvitation(Base):
    """A customer of a campaign: invited (a token hash, until ``expires_at``), or skipped (``skipped_reason``, no
    token). ``opened_at``: the link was first opened (a scanner counts too: opening decides nothing)."""

    __tablename__ = "survey_invitations"
    __table_args__ = (UniqueConstraint("campaign_id", "customer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("survey_campaigns.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    expires_at: Mapped[dt.datetime | None]
    opened_at: Mapped[dt.datetime | None]
    answered_at: Mapped[dt.datetime | None]
    skipped_reason: Mapped[str | None] = mapped_column(Text)

    campaign: Mapped[SurveyCampaign] = relationship()
    customer: Mapped[Customer] = relationship()


class SurveyAnswer(Base):
    """A customer's answer in a campaign (one per customer and campaign): a score per policy dimension
    (``scores``: dimension key → 1–5), the NPS answer (0–10), a comment; how it was collected and, when staff
    entered it, by whom. ``complaint_id``: the complaint its comment became (``kefu survey to-complaint``);
    ``alerted_at``: when a key account's low score was sent to its team."""

    __tablename__ = "survey_answers"
    __table_args__ = (UniqueConstraint("campaign_id", "customer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("survey_campaigns.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    invitation_id: Mapped[int | None] = mapped_column(ForeignKey("survey_invitations.id"), unique=True)
    scores: Mapped[dict[str, Any]] = mapped_column(JSON)
    nps: Mapped[int]
    comment: Mapped[str] = mapped_column(Text, default="")
    collected_by: Mapped[CollectedBy] = mapped_column(_enum(CollectedBy, "survey_collected_by"))
    entered_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    answered_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    complaint_id: Mapped[int | None] = mapped_column(ForeignKey("complaints.id"))
    alerted_at: Mapped[dt.datetime | None]

    campaign: Mapped[SurveyCampaign] = relationship()
    customer: Mapped[Customer] = relationship()
    entered_by: Mapped[Staff | None] = relationship()
