"""客户满意度调查 (seed 003 §4): opening a campaign, inviting its customers within the fatigue cap, the answer link,
answers entered by staff, the figures (progress and results) and the follow-up (a key account's low score to its
team, a comment turned into a complaint).

Every function works in the caller's session (never commits). Personal data stays out of what they return for
artifacts and logs: customers are named by their code (客户编号), never by name, phone or address.

- ``open_campaign`` records a campaign; its links expire, and it closes, ``link_valid_for`` after it opened.
- ``invite`` decides once about every customer of the campaign's segment: an invitation (a single-use link in the
  ``survey_invitation`` mail, queued for the next business window) or a skipped row with the reason (over the
  fatigue cap, no e-mail address, refused by the lint). A re-run finds the rows and decides nothing again.
- The fatigue cap counts, per customer over the policy's window, every survey invitation of any campaign, every
  complaint whose callback asked the customer (the callback invitation mail or the callback step) and every routine
  callback opened for them (定期回访); the routine callbacks keep to the same cap (``kefu.tasks.callbacks``).
- ``record_answer``: the link's answer, once (one conditional update: of two posts, one records).
  ``enter_answer``: a phone or visit answer, typed by the staff member who collected it. Both take an answer
  checked by ``kefu.intake.surveys.validate_answer``; a comment becomes a complaint through
  ``kefu.intake.surveys.to_complaint`` (the intake's write path).
- ``progress`` and ``results``: the campaign's figures by segment (invited, opened, answered; the average of each
  dimension, NPS = % promoters − % detractors, the response rate).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select, union, update
from sqlalchemy.orm import Session

from kefu.models import registry
from kefu.models.accounts import TEAM_ROLE_ZH, KeyAccountMember
from kefu.models.complaints import CaseEvent, Complaint
from kefu.models.contacts import RoutineCallback
from kefu.models.enums import CustomerTier
from kefu.models.notifications import OutboxMessage
from kefu.models.people import Customer, Staff
from kefu.models.policy import Policy
from kefu.models.surveys import (
    COLLECTED_ZH,
    KIND_ZH,
    SEGMENT_ZH,
    CampaignKind,
    CollectedBy,
    Segment,
    SurveyAnswer,
    SurveyCampaign,
    SurveyInvitation,
)
from kefu.notifications import MessageRejected, MessageType, enqueue
from kefu.settings import get_settings
from kefu.worktime import WorkCalendar, local_time

SURVEY_PATH = "/survey/"
COMMENT_LIMIT = 2000
TOKEN_BYTES = 32

NO_EMAIL = "未留邮箱，无法发送问卷（可电话访谈）"
OVER_CAP = "近{days}天内已被邀请{count}次（调查与回访合计，上限{cap}次）"
REJECTED = "问卷邀请措辞未通过检查"


class SurveyError(ValueError):
    """A request that cannot be done (the message says why; nothing was recorded)."""


class AnswerInvalid(SurveyError):
    """An answer with a bad field: ``field`` names it, the message says what is wrong (zh-CN)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def survey_url(token: str) -> str:
    return get_settings().intake_public_url.rstrip("/") + SURVEY_PATH + token


def campaign_title(campaign: SurveyCampaign) -> str:
    return f"{KIND_ZH[campaign.kind]}（{SEGMENT_ZH[campaign.segment]}）"


# --- campaigns and invitations ---------------------------------------------------------------------------------


def open_campaign(
    session: Session,
    policy: Policy,
    calendar: WorkCalendar,
    *,
    kind: CampaignKind,
    segment: Segment,
    reason: str,
    launched_by: str,
    now: dt.datetime,
) -> SurveyCampaign:
    reason = reason.strip()
    if not reason:
        raise SurveyError("give the campaign's reason (--reason), e.g. 新产品上线后的专项调查")
    if kind is not CampaignKind.AD_HOC:  # a scheduled campaign once a day: a re-run of its flow finds it
        day_start = now.astimezone(calendar.tz).replace(hour=0, minute=0, second=0, microsecond=0)
        found = session.scalars(
            select(SurveyCampaign).where(
                SurveyCampaign.kind == kind,
                SurveyCampaign.segment == segment,
                SurveyCampaign.opened_at >= day_start,
                SurveyCampaign.opened_at < day_start + dt.timedelta(days=1),
            )
        ).first()
        if found is not None:
            return found
    closes_at = calendar.deadline(now, policy.surveys.link_valid_for).due_at
    campaign = SurveyCampaign(
        kind=kind, segment=segment, reason=reason, launched_by=launched_by, opened_at=now, closes_at=closes_at
    )
    session.add(campaign)
    session.flush()
    return campaign


def segment_customers(session: Session, segment: Segment) -> list[Customer]:
    query = select(Customer).order_by(Customer.id)
    if segment is Segment.KEY:
        query = query.where(Customer.tier == CustomerTier.KEY)
    elif segment is Segment.GENERAL:
        query = query.where(Customer.tier == CustomerTier.GENERAL)
    return list(session.scalars(query).all())


def times_asked(session: Session, since: dt.datetime, *, besides: int | None = None) -> dict[int, int]:
    """How often each customer was asked for their satisfaction since ``since`` (customers asked at least once):
    survey invitations of any campaign (not ``besides``) and complaints whose callback asked them (by mail or the
    callback step), each case once, and routine callbacks opened for them. Three grouped queries for every customer
    at once."""
    invitations = session.execute(
        select(SurveyInvitation.customer_id, func.count())
        .where(
            SurveyInvitation.token_hash.is_not(None),
            SurveyInvitation.created_at >= since,
            SurveyInvitation.campaign_id != (besides if besides is not None else -1),
        )
        .group_by(SurveyInvitation.customer_id)
    ).tuples()
    counts: dict[int, int] = {int(customer): int(n) for customer, n in invitations}
    mailed = select(OutboxMessage.complaint_id.label("cid")).where(
        OutboxMessage.message_type == MessageType.CALLBACK_INVITATION.value, OutboxMessage.created_at >= since
    )
    called = select(CaseEvent.complaint_id.label("cid")).where(CaseEvent.action == "callback", CaseEvent.at >= since)
    asked = union(mailed, called).subquery()  # UNION: a case mailed and called counts once
    callbacks = session.execute(
        select(Complaint.customer_id, func.count())
        .select_from(asked)
        .join(Complaint, Complaint.id == asked.c.cid)
        .where(Complaint.customer_id.is_not(None))
        .group_by(Complaint.customer_id)
    ).tuples()
    for customer, n in callbacks:
        if customer is not None:
            counts[int(customer)] = counts.get(int(customer), 0) + int(n)
    routine = session.execute(
        select(RoutineCallback.customer_id, func.count())
        .where(RoutineCallback.created_at >= since)
        .group_by(RoutineCallback.customer_id)
    ).tuples()
    for customer, n in routine:
        counts[int(customer)] = counts.get(int(customer), 0) + int(n)
    return counts


@dataclass
class InviteReport:
    campaign_id: int
    invited: list[str] = field(default_factory=list)  # customer codes
    skipped: list[tuple[str, str]] = field(default_factory=list)  # customer code, reason (zh-CN)

    def markdown(self, title: str) -> str:
        lines = [f"# 满意度调查 {self.campaign_id}：{title}", "", f"- 已邀请：{len(self.invited)}位客户"]
        lines += [f"- 未邀请：{len(self.skipped)}位客户", "", "## 未邀请的客户", ""]
        if not self.skipped:
            return "\n".join([*lines, "无。"])
        lines += ["| 客户编号 | 原因 |", "|---|---|"]
        lines += [f"| {code} | {why} |" for code, why in self.skipped]
        return "\n".join(lines)


def customer_code(customer: Customer) -> str:
    return customer.code or f"#{customer.id}"


def invite(
    session: Session,
    policy: Policy,
    calendar: WorkCalendar,
    campaign: SurveyCampaign,
    now: dt.datetime,
    on_progress: Callable[[int, int], None] | None = None,
) -> InviteReport:
    """Invite the campaign's customers (see the module docstring); returns who was invited and who skipped, why.
    ``on_progress(done, total)`` is told after each customer."""
    report = InviteReport(campaign.id)
    decided = {
        row.customer_id: row
        for row in session.scalars(select(SurveyInvitation).where(SurveyInvitation.campaign_id == campaign.id))
    }
    cap = policy.surveys.fatigue
    asked = times_asked(session, now - dt.timedelta(days=cap.window_days), besides=campaign.id)
    customers = segment_customers(session, campaign.segment)
    for done, customer in enumerate(customers, start=1):
        if on_progress is not None:
            on_progress(done - 1, len(customers))
        code = customer_code(customer)
        found = decided.get(customer.id)
        if found is not None:
            if found.skipped_reason:
                report.skipped.append((code, found.skipped_reason))
            else:
                report.invited.append(code)
            continue
        reason = None
        count = asked.get(customer.id, 0)
        if count >= cap.max_asks:
            reason = OVER_CAP.format(days=cap.window_days, count=count, cap=cap.max_asks)
        elif not customer.email:
            reason = NO_EMAIL
        token = secrets.token_urlsafe(TOKEN_BYTES)
        invitation = SurveyInvitation(campaign_id=campaign.id, customer_id=customer.id, created_at=now)
        if reason is None:
            assert customer.email is not None
            try:  # a rejected message writes nothing (kefu.notifications.enqueue)
                enqueue(
                    session,
                    MessageType.SURVEY_INVITATION,
                    recipient_email=customer.email,
                    context={
                        "customer_name": customer.name,
                        "survey_title": campaign_title(campaign),
                        "survey_url": survey_url(token),
                        "reply_by": campaign.closes_at,
                    },
                    dedupe_key=f"survey:{campaign.id}:customer:{customer.id}",
                    now=now,
                    calendar=calendar,
                )
            except MessageRejected:
                reason = REJECTED
        if reason is None:
            invitation.token_hash = hash_token(token)
            invitation.expires_at = campaign.closes_at
            report.invited.append(code)
        else:
            invitation.skipped_reason = reason
            report.skipped.append((code, reason))
        session.add(invitation)
        session.flush()
    if on_progress is not None:
        on_progress(len(customers), len(customers))
    return report


# --- answers -----------------------------------------------------------------------------------------------------


class LinkState(StrEnum):
    OPEN = "open"
    ANSWERED = "answered"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


def find_invitation(session: Session, token: str) -> SurveyInvitation | None:
    if not token or len(token) > 128:
        return None
    return session.scalars(select(SurveyInvitation).where(SurveyInvitation.token_hash == hash_token(token))).first()


def link_state(session: Session, invitation: SurveyInvitation | None, now: dt.datetime) -> LinkState:
    if invitation is None or invitation.expires_at is None:
        return LinkState.UNKNOWN
    if invitation.answered_at is not None or _answer_of(session, invitation) is not None:
        return LinkState.ANSWERED
    if now >= invitation.expires_at or invitation.campaign.closed_at is not None:
        return LinkState.EXPIRED
    return LinkState.OPEN


def _answer_of(session: Session, invitation: SurveyInvitation) -> SurveyAnswer | None:
    return session.scalars(
        select(SurveyAnswer).where(
            SurveyAnswer.campaign_id == invitation.campaign_id, SurveyAnswer.customer_id == invitation.customer_id
        )
    ).first()


def mark_opened(session: Session, invitation: SurveyInvitation, now: dt.datetime) -> None:
    """The first opening (a mail scanner counts too: it only shows the form)."""
    session.execute(
        update(SurveyInvitation)
        .where(SurveyInvitation.id == invitation.id, SurveyInvitation.opened_at.is_(None))
        .values(opened_at=now)
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True)
class Answer:
    scores: dict[str, int]
    nps: int
    comment: str


def record_answer(
    session: Session, invitation: SurveyInvitation, answer: Answer, now: dt.datetime
) -> tuple[LinkState, SurveyAnswer | None]:
    """The link's answer, written once: ``OPEN`` and the answer when recorded now, else why not."""
    state = link_state(session, invitation, now)
    if state is not LinkState.OPEN:
        return state, None
    claimed = session.execute(
        update(SurveyInvitation)
        .where(
            SurveyInvitation.id == invitation.id,
            SurveyInvitation.answered_at.is_(None),
            SurveyInvitation.expires_at > now,
        )
        .values(answered_at=now, opened_at=func.coalesce(SurveyInvitation.opened_at, now))
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        return LinkState.ANSWERED, None
    row = SurveyAnswer(
        campaign_id=invitation.campaign_id,
        customer_id=invitation.customer_id,
        invitation_id=invitation.id,
        scores=answer.scores,
        nps=answer.nps,
        comment=answer.comment,
        collected_by=CollectedBy.LINK,
        answered_at=now,
    )
    session.add(row)
    session.flush()
    return LinkState.OPEN, row


def find_customer(session: Session, code: str) -> Customer:
    """The customer by the code `kefu customer list` shows: its own code, or C + its id for one without."""
    customer = registry.find_customer(session, code)
    if customer is None:
        raise SurveyError(f"no customer with code '{code}' (kefu customer list shows the codes)")
    return customer


def find_staff(session: Session, login: str) -> Staff:
    staff = session.scalars(select(Staff).where(Staff.login == login, Staff.active.is_(True))).first()
    if staff is None:
        raise SurveyError(f"no active staff member with login '{login}'")
    return staff


def enter_answer(
    session: Session,
    policy: Policy,
    *,
    campaign_id: int,
    customer_code_: str,
    via: CollectedBy,
    login: str,
    answer: Answer,
    now: dt.datetime,
) -> SurveyAnswer:
    """A phone-interview or visit answer, entered by the staff member who collected it (once per customer and
    campaign; an open invitation of the customer is answered by it)."""
    if via is CollectedBy.LINK:
        raise SurveyError("staff enter phone or visit answers (--via phone|visit); a link's answer comes by itself")
    campaign = session.get(SurveyCampaign, campaign_id)
    if campaign is None:
        raise SurveyError(f"no survey campaign {campaign_id} (kefu survey list shows them)")
    closed = campaign.closed_at or (campaign.closes_at if now >= campaign.closes_at else None)
    if closed is not None:
        raise SurveyError(f"campaign {campaign_id} closed at {local_time(closed, policy.timezone)}")
    staff = find_staff(session, login)
    customer = find_customer(session, customer_code_)
    if campaign.segment is not Segment.ALL and customer.tier.value != campaign.segment.value:
        raise SurveyError(f"customer {customer_code(customer)} is not in campaign {campaign_id}'s segment")
    existing = session.scalars(
        select(SurveyAnswer).where(SurveyAnswer.campaign_id == campaign.id, SurveyAnswer.customer_id == customer.id)
    ).first()
    if existing is not None:
        how = COLLECTED_ZH[existing.collected_by]
        raise SurveyError(
            f"customer {customer_code(customer)} already answered campaign {campaign_id} ({how}, answer "
            f"{existing.id}); nothing recorded"
        )
    invitation = session.scalars(
        select(SurveyInvitation).where(
            SurveyInvitation.campaign_id == campaign.id, SurveyInvitation.customer_id == customer.id
        )
    ).first()
    if invitation is not None and invitation.token_hash is not None:
        invitation.answered_at = now
    row = SurveyAnswer(
        campaign_id=campaign.id,
        customer_id=customer.id,
        invitation_id=invitation.id if invitation is not None and invitation.token_hash else None,
        scores=answer.scores,
        nps=answer.nps,
        comment=answer.comment,
        collected_by=via,
        entered_by_id=staff.id,
        answered_at=now,
    )
    session.add(row)
    session.flush()
    return row


# --- figures --------------------------------------------------------------------------------------------------


def _segment_of(tier: CustomerTier) -> str:
    return SEGMENT_ZH[Segment.KEY] if tier is CustomerTier.KEY else SEGMENT_ZH[Segment.GENERAL]


def open_campaigns(session: Session) -> list[SurveyCampaign]:
    return list(
        session.scalars(select(SurveyCampaign).where(SurveyCampaign.closed_at.is_(None)).order_by(SurveyCampaign.id))
    )


def progress(session: Session, campaign_id: int) -> list[tuple[str, int, int, int]]:
    """Invited, opened and answered customers by segment (key, general, total); answers entered by staff count
    as answered (and their customers as reached)."""
    rows = session.execute(
        select(
            Customer.tier,
            func.count(SurveyInvitation.id).filter(SurveyInvitation.token_hash.is_not(None)),
            func.count(SurveyInvitation.opened_at),
        )
        .join(Customer, Customer.id == SurveyInvitation.customer_id)
        .where(SurveyInvitation.campaign_id == campaign_id)
        .group_by(Customer.tier)
    ).all()
    answered = dict(
        session.execute(
            select(Customer.tier, func.count(SurveyAnswer.id))
            .join(Customer, Customer.id == SurveyAnswer.customer_id)
            .where(SurveyAnswer.campaign_id == campaign_id)
            .group_by(Customer.tier)
        )
        .tuples()
        .all()
    )
    counts = {tier: (int(invited), int(opened)) for tier, invited, opened in rows}
    table = []
    for tier in (CustomerTier.KEY, CustomerTier.GENERAL):
        invited, opened = counts.get(tier, (0, 0))
        table.append((_segment_of(tier), invited, opened, int(answered.get(tier, 0))))
    table.append(("合计", sum(r[1] for r in table), sum(r[2] for r in table), sum(r[3] for r in table)))
    return table


def nps_of(values: list[int]) -> float | None:
    """NPS: % promoters (9–10) − % detractors (0–6), one decimal; None without answers."""
    if not values:
        return None
    promoters = sum(1 for v in values if v >= 9)
    detractors = sum(1 for v in values if v <= 6)
    return round(100.0 * (promoters - detractors) / len(values), 1)


@dataclass(frozen=True)
class Results:
    campaign_id: int
    invited: int
    answered: int
    by_dimension: list[tuple[str, float | None, int]]  # label, average, answers
    nps: float | None
    by_collection: dict[str, int]

    @property
    def response_rate(self) -> float:
        """Answers (through the link or entered by staff) per invited customer, in % (one decimal)."""
        return round(100.0 * self.answered / self.invited, 1) if self.invited else 0.0

    def table(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = [
            {"指标": f"{label}（平均分）", "数值": avg if avg is not None else "—", "答卷数": n}
            for label, avg, n in self.by_dimension
        ]
        rows.append(
            {"指标": "净推荐值（NPS）", "数值": self.nps if self.nps is not None else "—", "答卷数": self.answered}
        )
        rows.append({"指标": "回复率（%）", "数值": self.response_rate, "答卷数": self.answered})
        return rows


def answers_between(session: Session, start: dt.datetime, end: dt.datetime) -> list[SurveyAnswer]:
    return list(
        session.scalars(
            select(SurveyAnswer).where(SurveyAnswer.answered_at >= start, SurveyAnswer.answered_at < end)
        ).all()
    )


def summarise(policy: Policy, answers: list[SurveyAnswer], invited: int, campaign_id: int = 0) -> Results:
    by_dimension = []
    for key, label in policy.surveys.dimensions.items():
        values = [int(a.scores[key]) for a in answers if key in a.scores]
        average = round(sum(values) / len(values), 2) if values else None
        by_dimension.append((label, average, len(values)))
    collected: dict[str, int] = {}
    for a in answers:
        collected[COLLECTED_ZH[a.collected_by]] = collected.get(COLLECTED_ZH[a.collected_by], 0) + 1
    return Results(campaign_id, invited, len(answers), by_dimension, nps_of([a.nps for a in answers]), collected)


def results(session: Session, policy: Policy, campaign_id: int) -> Results:
    answers = list(session.scalars(select(SurveyAnswer).where(SurveyAnswer.campaign_id == campaign_id)).all())
    invited = int(
        session.scalar(
            select(func.count())
            .select_from(SurveyInvitation)
            .where(SurveyInvitation.campaign_id == campaign_id, SurveyInvitation.token_hash.is_not(None))
        )
        or 0
    )
    # A customer reached by phone or visit without an invitation was asked too.
    uninvited = sum(1 for a in answers if a.invitation_id is None)
    return summarise(policy, answers, invited + uninvited, campaign_id)


# --- follow-up ------------------------------------------------------------------------------------------------


def low_scores(policy: Policy, answer: SurveyAnswer) -> list[str]:
    """The answer's scores under the policy's thresholds, in words (``服务态度 2分``, ``推荐意愿 5分``)."""
    rules = policy.surveys
    low = [
        f"{label}{answer.scores[k]}分"
        for k, label in rules.dimensions.items()
        if answer.scores.get(k, 99) < rules.low_score_below
    ]
    if answer.nps < rules.low_nps_below:
        low.append(f"推荐意愿{answer.nps}分")
    return low


def alert_low_score(
    session: Session, policy: Policy, answer: SurveyAnswer, now: dt.datetime, calendar: WorkCalendar | None = None
) -> list[str]:
    """A key account's low score: an internal mail to each member of its team (personal data masked), once per
    answer. Returns the team members' logins it went to (empty: not a key account, nothing low, or sent before)."""
    customer = session.get(Customer, answer.customer_id)
    if customer is None or customer.tier is not CustomerTier.KEY or answer.alerted_at is not None:
        return []
    low = low_scores(policy, answer)
    if not low:
        return []
    team = session.scalars(select(KeyAccountMember).where(KeyAccountMember.customer_id == customer.id)).all()
    sent = []
    for member in team:
        staff = member.staff
        if not staff.email or not staff.active:
            continue
        enqueue(
            session,
            MessageType.SURVEY_LOW_SCORE,
            recipient_email=staff.email,
            context={
                "recipient_name": staff.name,
                "customer_code": customer_code(customer),
                "customer_name": customer.name,
                "team_role": TEAM_ROLE_ZH[member.team_role],
                "low_scores": "、".join(low),
                "comment": answer.comment or "（无）",
                "answer_id": str(answer.id),
                "collected_by": COLLECTED_ZH[answer.collected_by],
            },
            dedupe_key=f"survey-low:{answer.id}:staff:{staff.id}",
            now=now,
            calendar=calendar,
        )
        sent.append(staff.login or str(staff.id))
    answer.alerted_at = now
    return sent
