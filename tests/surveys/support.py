"""A small set of customers for the survey tests: two key accounts (one with a team), two general customers, one
of whom was asked twice lately (a survey invitation and a complaint callback), one without an e-mail address."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu.models.accounts import KeyAccountMember, TeamRole
from kefu.models.complaints import CaseEvent, Complaint
from kefu.models.enums import Channel, ComplaintStatus, CustomerTier, Severity
from kefu.models.notifications import OutboxMessage
from kefu.models.people import Customer, Staff
from kefu.models.policy import Policy
from kefu.models.surveys import CampaignKind, Segment, SurveyCampaign, SurveyInvitation
from kefu.worktime import WorkCalendar
from tests.support.clock import SHANGHAI

LAUNCH = dt.datetime(2026, 12, 2, 10, 0, tzinfo=SHANGHAI)  # a Wednesday, inside a business window


def customers(session: Session) -> dict[str, Customer]:
    """SV01/SV02 key accounts (SV01 has a team), SV03 general, SV04 general and tired, SV05 general without mail."""
    manager = Staff(name="陈项目", login="chen.xiangmu", email="chen@kefu.example.com")
    agent = Staff(name="李客服", login="li.kefu", email="li@kefu.example.com")
    session.add_all([manager, agent])
    made = {
        "SV01": Customer(code="SV01", name="华东建材", tier=CustomerTier.KEY, email="hd@example.com",
                         phones=["13800138001"]),
        "SV02": Customer(code="SV02", name="南方电子", tier=CustomerTier.KEY, email="nf@example.com",
                         phones=["13800138002"]),
        "SV03": Customer(code="SV03", name="张三", email="zs@example.com", phones=["13800138003"]),
        "SV04": Customer(code="SV04", name="李四", email="ls@example.com", phones=["13800138004"]),
        "SV05": Customer(code="SV05", name="王五", phones=["13800138005"]),
    }  # fmt: skip
    session.add_all(made.values())
    session.flush()
    session.add(KeyAccountMember(customer_id=made["SV01"].id, staff_id=manager.id, team_role=TeamRole.PROJECT_MANAGER))
    # SV04 was asked twice in the last 90 days: an earlier survey's invitation and a complaint's callback step.
    earlier = SurveyCampaign(
        kind=CampaignKind.AD_HOC, segment=Segment.GENERAL, reason="上月专项调查", launched_by="cli",
        opened_at=LAUNCH - dt.timedelta(days=40), closes_at=LAUNCH - dt.timedelta(days=26),
        closed_at=LAUNCH - dt.timedelta(days=26),
    )  # fmt: skip
    session.add(earlier)
    session.flush()
    session.add(
        SurveyInvitation(
            campaign_id=earlier.id, customer_id=made["SV04"].id, token_hash="0" * 64,
            created_at=LAUNCH - dt.timedelta(days=40), expires_at=LAUNCH - dt.timedelta(days=26),
        )
    )  # fmt: skip
    case = Complaint(
        case_no="KF20261101-09001", channel=Channel.HOTLINE, received_at=LAUNCH - dt.timedelta(days=30),
        severity=Severity.GENERAL, status=ComplaintStatus.CLOSED, customer_id=made["SV04"].id, content="晚到",
    )  # fmt: skip
    session.add(case)
    session.flush()
    session.add(
        CaseEvent(complaint_id=case.id, actor="staff:1", action="callback", data={}, at=LAUNCH - dt.timedelta(days=20))
    )
    session.flush()
    return made


def survey_tokens(session: Session) -> dict[str, str]:
    """Recipient → the token of the survey link in their invitation mail."""
    mails = session.scalars(select(OutboxMessage).where(OutboxMessage.message_type == "survey_invitation")).all()
    found = {m.recipient: re.search(r"/survey/([A-Za-z0-9_-]+)", m.body_text) for m in mails}
    return {who: match.group(1) for who, match in found.items() if match}


def answer_form(policy: Policy, score: int, nps: int, comment: str = "") -> dict[str, str]:
    return {**{key: str(score) for key in policy.surveys.dimensions}, "nps": str(nps), "comment": comment}


__all__ = ["LAUNCH", "WorkCalendar", "answer_form", "customers", "survey_tokens"]
