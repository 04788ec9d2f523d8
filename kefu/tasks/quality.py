"""Quality checks of communication records (seed 000 第五章 1: 定期对客服人员的沟通记录进行审核; seed 003 §2.4;
policy ``quality_checks``).

``draw_sample`` draws, for one month, up to ``sample_per_agent`` of each agent's communication records of that month
at random — reproducibly: the draw's seed is the policy's seed and the month (and the agent), so the same month and
seed draw the same records. ``open_reviews`` keeps the sample as ``QualityReview`` rows for the agents' supervisors;
``score_review`` records a supervisor's scores and sends a flagged record back to the agent by internal mail with
the reason (personal data masked); ``quality_scores`` gives each agent's month for the staff assessment (answer
accuracy, seed 004 §五(二)).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from statistics import fmean
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu.models.complaints import CaseEvent, Complaint
from kefu.models.contacts import CONTACT_KIND_ZH, QualityReview, channel_zh
from kefu.models.enums import Role
from kefu.models.people import CommunicationRecord, Customer, Staff, StaffRole
from kefu.models.policy import Policy
from kefu.notifications.messages import MessageType
from kefu.notifications.outbox import enqueue
from kefu.notifications.pii import mask_text
from kefu.tasks.contacts import waiting_records
from kefu.tasks.customer_data import mask_name
from kefu.worktime import WorkCalendar

CRITERIA = {
    "accuracy": "准确性",
    "courtesy": "礼貌",
    "completeness": "完整性",
    "standard_phrases": "标准用语",
}


def month_bounds(year: int, month: int, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    zone = ZoneInfo(timezone)
    start = dt.datetime(year, month, 1, tzinfo=zone)
    end = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
    return start, end


def previous_month(now: dt.datetime, timezone: str) -> tuple[int, int]:
    today = now.astimezone(ZoneInfo(timezone)).date()
    return (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)


# The complaint steps whose texts are checked besides the communication records: the first contact (致歉、承诺) and
# the solution proposal, as their case events keep them (field of the answer that holds the text).
CASE_TEXTS = {"first_contact": "summary", "propose": "solution"}
CASE_TEXT_ZH = {"first_contact": "投诉首次联系", "propose": "投诉解决方案"}


def draw_sample(session: Session, policy: Policy, year: int, month: int) -> dict[int, list[str]]:
    """Each active agent's sampled items of ``year``-``month`` (reproducible; see module): ``record:<id>`` for a
    communication record the agent is responsible for, ``event:<id>`` for a complaint's first-contact or proposal
    text the agent wrote."""
    rules = policy.quality_checks
    start, end = month_bounds(year, month, policy.timezone)
    agents = session.scalars(
        select(Staff.id)
        .join(StaffRole, StaffRole.staff_id == Staff.id)
        .where(StaffRole.role == Role.AGENT, Staff.active.is_(True))
        .order_by(Staff.id)
    ).all()
    sample: dict[int, list[str]] = {}
    for agent in agents:
        records = session.scalars(
            select(CommunicationRecord.id).where(
                CommunicationRecord.responsible_staff_id == agent,
                CommunicationRecord.at >= start,
                CommunicationRecord.at < end,
            )
        )
        events = session.scalars(
            select(CaseEvent.id).where(
                CaseEvent.actor == f"staff:{agent}",
                CaseEvent.action.in_(list(CASE_TEXTS)),
                CaseEvent.at >= start,
                CaseEvent.at < end,
            )
        )
        items = sorted([f"record:{i}" for i in records] + [f"event:{i}" for i in events])
        if not items:
            continue
        draw = random.Random(f"{rules.seed}:{year:04d}-{month:02d}:{agent}")  # noqa: S311 - a sample, not a secret
        sample[agent] = sorted(draw.sample(items, min(rules.sample_per_agent, len(items))))
    return sample


def open_reviews(
    session: Session, policy: Policy, calendar: WorkCalendar, year: int, month: int, now: dt.datetime
) -> list[QualityReview]:
    """The month's sample as reviews for each agent's supervisor, due ``review_within`` (a re-run adds nothing)."""
    due_at = calendar.due_at(now, policy.quality_checks.review_within)
    reviews: list[QualityReview] = []
    for agent_id, items in draw_sample(session, policy, year, month).items():
        supervisor = session.get_one(Staff, agent_id).supervisor_id
        for item in items:
            kind, _, number = item.partition(":")
            column = QualityReview.record_id if kind == "record" else QualityReview.case_event_id
            review = session.scalar(
                select(QualityReview).where(
                    QualityReview.year == year, QualityReview.month == month, column == int(number)
                )
            )
            if review is None:
                review = QualityReview(year=year, month=month, agent_id=agent_id, reviewer_id=supervisor, due_at=due_at)
                if kind == "record":
                    review.record_id = int(number)
                else:
                    review.case_event_id = int(number)
                session.add(review)
                session.flush()
            reviews.append(review)
    return reviews


@dataclass(frozen=True)
class Reviewed:
    """What a review scores, as the supervisor and the agent read it."""

    at: dt.datetime
    how: str  # channel and kind, or the complaint step and case number
    text: str
    customer: Customer | None


def reviewed(session: Session, review: QualityReview) -> Reviewed:
    if review.record_id is not None:
        record = session.get_one(CommunicationRecord, review.record_id)
        channel = channel_zh(record.channel)
        kind = CONTACT_KIND_ZH.get(record.kind, record.kind)  # type: ignore[call-overload]
        return Reviewed(record.at, f"{channel}，{kind}", record.summary, session.get(Customer, record.customer_id))
    event = session.get_one(CaseEvent, review.case_event_id)
    complaint = session.get_one(Complaint, event.complaint_id)
    customer: Customer | None = session.get(Customer, complaint.customer_id) if complaint.customer_id else None
    text = str(event.data.get(CASE_TEXTS.get(event.action, "summary"), ""))
    return Reviewed(
        event.at, f"{CASE_TEXT_ZH.get(event.action, event.action)}，投诉{complaint.case_no}", text, customer
    )


def masked(text: str, customer: Customer | None) -> str:
    """Free text about a customer for staff who need not see their personal data: phones, ID numbers and e-mail
    addresses masked, and the customer's and contact person's names where the text names them."""
    text = mask_text(text)
    for name in (customer.name, customer.contact_person) if customer is not None else ():
        if name and name.strip():
            text = text.replace(name.strip(), mask_name(name))
    return text


class ReviewRefused(ValueError):
    pass


def check_reviewer(session: Session, review: QualityReview, staff_id: int) -> None:
    """The agent's supervisor scores (or, the agent having none, anyone holding the supervisor role); never the
    agent."""
    person = session.get(Staff, staff_id)
    if person is None or not person.active:
        raise ReviewRefused(f"员工编号 {staff_id} 不存在或已停用")
    if staff_id == review.agent_id:
        raise ReviewRefused("不能为自己的沟通记录评分")
    if review.reviewer_id is not None and staff_id != review.reviewer_id and Role.SUPERVISOR not in person.roles:
        raise ReviewRefused("只有该客服人员的主管可以评分")
    if review.reviewer_id is None and Role.SUPERVISOR not in person.roles:
        raise ReviewRefused("只有主管可以评分")


def score_review(
    session: Session,
    policy: Policy,
    review: QualityReview,
    *,
    reviewer_id: int,
    scores: dict[str, int],
    reason: str,
    now: dt.datetime,
) -> None:
    """Record the scores (once); a record with any score at or below the policy's threshold is flagged and goes back
    to the agent by internal mail with the reason."""
    if review.status == "scored":
        return
    flagged = any(score <= policy.quality_checks.flag_at_or_below for score in scores.values())
    if flagged and not reason.strip():
        raise ReviewRefused(f"有评分不高于 {policy.quality_checks.flag_at_or_below} 分，须填写原因")
    review.scores, review.flagged, review.reason = dict(scores), flagged, reason.strip() or None
    review.reviewer_id, review.status, review.scored_at = reviewer_id, "scored", now
    if not flagged:
        return
    agent = session.get_one(Staff, review.agent_id)
    if not agent.email:
        return
    item = reviewed(session, review)
    reviewer = session.get_one(Staff, reviewer_id)
    zone = ZoneInfo(policy.timezone)
    enqueue(
        session,
        MessageType.QUALITY_FLAGGED,
        recipient_email=agent.email,
        context={
            "recipient_name": agent.name,
            "record_at": f"{item.at.astimezone(zone):%Y-%m-%d %H:%M}（{item.how}）",
            "customer_name": mask_name(item.customer.name) if item.customer else "—",
            "summary": masked(item.text, item.customer),
            "scores": "、".join(f"{CRITERIA[k]} {v}" for k, v in scores.items()),
            "reason": masked(reason.strip(), item.customer),
            "reviewer": reviewer.name,
        },
        dedupe_key=f"quality-flagged:{review.id}",
        now=now,
    )


@dataclass(frozen=True)
class QualityScore:
    """One agent's quality check of a month: reviews scored, the mean of each criterion, their overall mean (the
    staff assessment's answer accuracy reads ``accuracy``), and how many were flagged."""

    reviewed: int
    flagged: int
    means: dict[str, float]
    overall: float


def quality_scores(session: Session, year: int, month: int) -> dict[int, QualityScore]:
    """Each agent's scored reviews of ``year``-``month`` by staff id (agents with none scored are left out)."""
    by_agent: dict[int, list[QualityReview]] = {}
    for review in session.scalars(
        select(QualityReview).where(
            QualityReview.year == year, QualityReview.month == month, QualityReview.status == "scored"
        )
    ):
        by_agent.setdefault(review.agent_id, []).append(review)
    result: dict[int, QualityScore] = {}
    for agent_id, reviews in by_agent.items():
        means = {k: round(fmean(r.scores[k] for r in reviews), 2) for k in CRITERIA}
        result[agent_id] = QualityScore(
            reviewed=len(reviews),
            flagged=sum(r.flagged for r in reviews),
            means=means,
            overall=round(fmean(means.values()), 2),
        )
    return result


def review_ref(review: QualityReview) -> str:
    """How people name a review: its month and number (``2026-11#12``, as its run is named)."""
    return f"{review.year}-{review.month:02d}#{review.id}"


def waiting_steps(session: Session, ref: str | None = None) -> list[dict[str, Any]]:
    """Quality-review steps runs are suspended on (waiting, neither completed nor refused): the review
    (``review_ref``), its due time, the agent scored and the reviewer named."""
    rows = []
    for event in waiting_records(session, "quality:"):
        review = session.get(QualityReview, int(event.subject.removeprefix("quality:")))
        if review is None or review.status != "open" or (ref is not None and review_ref(review) != ref):
            continue
        rows.append(
            {
                "review": review_ref(review),
                "review_id": review.id,
                "step": event.step,
                "flow_run_id": str(event.flow_run_id),
                "since": event.at.isoformat(),
                "due_at": review.due_at.isoformat(),
                "agent_id": review.agent_id,
                "reviewer_id": review.reviewer_id,
            }
        )
    return rows
