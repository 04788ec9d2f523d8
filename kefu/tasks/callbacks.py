"""Routine callbacks (seed 004 §四(四) 定期回访; policy ``callbacks``).

``due_callbacks`` finds, on a working day, every customer with a code whose last routine callback (or, never called
back, whose registration) is the segment's ``every_months`` or more ago and who has no callback open, and skips
those over the fatigue cap. ``open_callbacks`` opens one ``RoutineCallback`` per due customer (keyed by customer and
day) for its owner: the key account's service specialist, else the on-duty agents in turn. ``record_result`` turns
a person's answer into a communication record and routes the problem found: a complaint registered through the
intake's registration path with the callback's time as its receipt time, or a follow-up item.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from kefu.models.accounts import KeyAccountMember, TeamRole
from kefu.models.contacts import ContactKind, RoutineCallback
from kefu.models.enquiries import FeedbackKind
from kefu.models.enums import Channel, CustomerTier
from kefu.models.notifications import OutboxMessage
from kefu.models.people import WEEKDAYS, CommunicationRecord, Customer, Staff, StaffRole
from kefu.models.policy import Policy
from kefu.models.registry import find_customer
from kefu.notifications.messages import MessageType
from kefu.notifications.outbox import enqueue
from kefu.notifications.sms import mobile_number
from kefu.tasks.contacts import active_staff, record_contact, waiting_records
from kefu.tasks.surveys import OVER_CAP as ASKED_OVER_CAP
from kefu.tasks.surveys import times_asked
from kefu.worktime import WorkCalendar

OVER_CAP = "近{days}天内已联系{count}次（上限{cap}次）"
OPEN = "已有未完成的回访"


class ProblemRoute(StrEnum):
    """What a routine callback found and where it goes."""

    NONE = "none"
    COMPLAINT = "complaint"
    FOLLOW_UP = "follow_up"
    FEEDBACK = "feedback"


PROBLEM_WORDS = {
    ProblemRoute.NONE: "未发现问题",
    ProblemRoute.COMPLAINT: "登记为投诉",
    ProblemRoute.FOLLOW_UP: "记为跟进事项",
    ProblemRoute.FEEDBACK: "记为意见反馈（转交部门）",
}


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` ``months`` later, on the same day of the month or the month's last day."""
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def segment(customer: Customer) -> str:
    return "key" if customer.tier is CustomerTier.KEY else "general"


@dataclass
class DueReport:
    """Who is due today, who is skipped and why (for the run's artifact)."""

    day: dt.date
    working_day: bool = True
    due: list[tuple[Customer, dt.date]] = field(default_factory=list)  # customer, the day it fell due
    skipped: list[tuple[str, str]] = field(default_factory=list)  # customer code (or id), why

    def markdown(self) -> str:
        if not self.working_day:
            return f"# 定期回访 {self.day.isoformat()}\n\n非工作日，不安排回访。"
        lines = [
            f"# 定期回访 {self.day.isoformat()}",
            "",
            f"到期 {len(self.due)} 位，跳过 {len(self.skipped)} 位。",
            "",
        ]
        lines += ["| 客户编号 | 到期日 |", "|---|---|"] + [
            f"| {customer_ref(c)} | {d.isoformat()} |" for c, d in self.due
        ]
        if self.skipped:
            lines += ["", "| 客户 | 跳过原因 |", "|---|---|"] + [f"| {c} | {why} |" for c, why in self.skipped]
        return "\n".join(lines)


def recent_contacts(session: Session, customer: Customer, since: dt.datetime) -> int:
    """Contacts from us since ``since``: customer messages to the customer's addresses and communication records."""
    addresses = [a for a in (customer.email, mobile_number(customer.phones or [])) if a]
    messages = 0
    if addresses:
        messages = (
            session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(
                    OutboxMessage.internal.is_(False),
                    or_(*(func.lower(OutboxMessage.recipient) == a.lower() for a in addresses)),
                    OutboxMessage.created_at >= since,
                )
            )
            or 0
        )
    records = (
        session.scalar(
            select(func.count())
            .select_from(CommunicationRecord)
            .where(CommunicationRecord.customer_id == customer.id, CommunicationRecord.at >= since)
        )
        or 0
    )
    return int(messages) + int(records)


def due_callbacks(session: Session, policy: Policy, calendar: WorkCalendar, now: dt.datetime) -> DueReport:
    """The customers due for a routine callback at ``now`` (nothing on a day that is not a working day)."""
    zone = ZoneInfo(policy.timezone)
    today = now.astimezone(zone).date()
    report = DueReport(day=today, working_day=calendar.is_working_day(today))
    if not report.working_day:
        return report
    rules = policy.callbacks
    last: dict[int, dt.datetime] = dict(
        session.execute(  # type: ignore[arg-type]
            select(CommunicationRecord.customer_id, func.max(CommunicationRecord.at))
            .where(CommunicationRecord.kind == ContactKind.ROUTINE_CALLBACK.value)
            .group_by(CommunicationRecord.customer_id)
        ).all()
    )
    open_for = set(session.scalars(select(RoutineCallback.customer_id).where(RoutineCallback.status == "open")))
    since = now - dt.timedelta(days=rules.fatigue.window_days)
    # A routine callback asks the customer too: it keeps to the surveys' cap on asks (surveys and callbacks together)
    # besides its own cap on contacts.
    asks = policy.surveys.fatigue
    asked = times_asked(session, now - dt.timedelta(days=asks.window_days))
    for customer in session.scalars(select(Customer).order_by(Customer.id)):
        anchor = last.get(customer.id) or customer.created_at
        due_on = add_months(anchor.astimezone(zone).date(), rules.every_months[segment(customer)])  # type: ignore[index]
        if due_on > today:
            continue
        name = customer_ref(customer)
        if customer.id in open_for:
            report.skipped.append((name, OPEN))
            continue
        if asked.get(customer.id, 0) >= asks.max_asks:
            count = asked[customer.id]
            report.skipped.append((name, ASKED_OVER_CAP.format(days=asks.window_days, count=count, cap=asks.max_asks)))
            continue
        count = recent_contacts(session, customer, since)
        if count >= rules.fatigue.max_contacts:
            cap = rules.fatigue.max_contacts
            report.skipped.append((name, OVER_CAP.format(days=rules.fatigue.window_days, count=count, cap=cap)))
            continue
        report.due.append((customer, due_on))
    return report


def _owners(
    session: Session, policy: Policy, customers: list[Customer], today: dt.date
) -> list[tuple[int | None, str]]:
    specialists: dict[int, int] = dict(
        session.execute(  # type: ignore[arg-type]
            select(KeyAccountMember.customer_id, KeyAccountMember.staff_id).where(
                KeyAccountMember.team_role == TeamRole.SERVICE_SPECIALIST,
                KeyAccountMember.customer_id.in_([c.id for c in customers]),
            )
        ).all()
    )
    weekday = WEEKDAYS[today.weekday()]
    on_duty = [
        row.id
        for row in session.execute(
            select(Staff.id, Staff.on_duty)
            .join(StaffRole, StaffRole.staff_id == Staff.id)
            .where(StaffRole.role == policy.complaints.ownership.rota_role, Staff.active.is_(True))
            .order_by(Staff.id)
        )
        if weekday in (row.on_duty or [])
    ]
    owners: list[tuple[int | None, str]] = []
    turn = 0
    for customer in customers:
        if customer.id in specialists:
            owners.append((int(specialists[customer.id]), "key_account"))
        elif on_duty:
            owners.append((on_duty[turn % len(on_duty)], "rota"))
            turn += 1
        else:
            owners.append((None, "none"))
    return owners


def open_callbacks(session: Session, policy: Policy, report: DueReport) -> list[RoutineCallback]:
    """One open callback per due customer today (a re-run opens nothing new)."""
    customers = [c for c, _ in report.due]
    opened: list[RoutineCallback] = []
    for customer, (owner_id, owned_by) in zip(customers, _owners(session, policy, customers, report.day), strict=True):
        existing = session.scalar(
            select(RoutineCallback).where(
                RoutineCallback.customer_id == customer.id, RoutineCallback.due_on == report.day
            )
        )
        if existing is None:
            channel = policy.callbacks.channel[segment(customer)]  # type: ignore[index]
            if channel == "mail" and not customer.email:
                channel = "phone"
            existing = RoutineCallback(
                customer_id=customer.id, due_on=report.day, channel=channel, owner_id=owner_id, owned_by=owned_by
            )
            session.add(existing)
            session.flush()
        opened.append(existing)
    return opened


def customer_ref(customer: Customer) -> str:
    """How a callback names its customer (runs, artifacts): the customer code, or ``C000012`` for a customer on record
    without one (intake's customers), which every ``kefu`` command also takes."""
    return customer.code or f"C{customer.id:06d}"


def callback_of(session: Session, customer_code: str, due_on: str) -> RoutineCallback:
    customer = find_customer(session, customer_code)
    callback = None
    if customer is not None:
        callback = session.scalar(
            select(RoutineCallback).where(
                RoutineCallback.customer_id == customer.id, RoutineCallback.due_on == dt.date.fromisoformat(due_on)
            )
        )
    if callback is None:
        raise LookupError(f"no routine callback for customer {customer_code} on {due_on}")
    return callback


def send_callback_mail(session: Session, callback: RoutineCallback, calendar: WorkCalendar, now: dt.datetime) -> None:
    """邮件回访: the callback mail to the customer, once per callback (within the business windows)."""
    customer = session.get_one(Customer, callback.customer_id)
    owner = session.get(Staff, callback.owner_id) if callback.owner_id else None
    if callback.channel != "mail" or not customer.email:
        return
    enqueue(
        session,
        MessageType.ROUTINE_CALLBACK,
        recipient_email=customer.email,
        context={"customer_name": customer.name, "owner_name": owner.name if owner else "客户服务部"},
        dedupe_key=f"routine-callback:{callback.id}",
        now=now,
        calendar=calendar,
    )


@dataclass(frozen=True)
class CallbackResult:
    actor_staff_id: int
    contacted_at: dt.datetime
    satisfaction: int | None
    summary: str
    remarks: str
    problem: ProblemRoute
    problem_text: str
    follow_up_due_at: dt.datetime | None
    department: str = ""  # feedback's department (a role code or the policy's name of it)


def record_result(session: Session, callback: RoutineCallback, result: CallbackResult, policy: Policy) -> None:
    """The callback's communication record and its problem routed; once (a replay finds the record)."""
    if callback.record_id is not None:
        return
    customer = session.get_one(Customer, callback.customer_id)
    if result.problem is ProblemRoute.COMPLAINT:
        # registered as a complaint by the intake dispatcher's next pass (``kefu.intake.callbacks``), its receipt time
        # the callback's: the complaint clock starts when the customer spoke
        callback.complaint_wanted = result.problem_text
    follow_up = None
    if result.problem is ProblemRoute.FOLLOW_UP:
        follow_up = result.problem_text
    if result.problem is ProblemRoute.FEEDBACK:
        follow_up = route_feedback(session, customer, callback, result, policy)
    actor = active_staff(session, result.actor_staff_id)
    record = record_contact(
        session,
        policy,
        customer,
        at=result.contacted_at,
        channel=callback.channel,  # ``mail`` by the policy's callbacks.channel: stored as ``email``
        summary=result.summary,
        responsible=actor,
        kind=ContactKind.ROUTINE_CALLBACK,
        satisfaction=result.satisfaction,
        remarks=result.remarks,
        follow_up=follow_up,
        follow_up_owner=actor if follow_up else None,
        follow_up_due_at=result.follow_up_due_at if follow_up else None,
    )
    callback.record_id, callback.status = record.id, "done"


def complaints_wanted(session: Session) -> list[int]:
    """The routine callbacks whose problem is still to be registered as a complaint (``kefu.intake.callbacks``)."""
    return list(
        session.scalars(
            select(RoutineCallback.id)
            .where(RoutineCallback.complaint_wanted.is_not(None), RoutineCallback.complaint_id.is_(None))
            .order_by(RoutineCallback.id)
        )
    )


def route_feedback(
    session: Session, customer: Customer, callback: RoutineCallback, result: CallbackResult, policy: Policy
) -> str | None:
    """意见反馈 a callback found: a feedback record routed to its department with the department's deadline (its run
    started by the deadline sweep, like feedback recorded without one); the step checked the department and the
    customer's phone first. Should the record still be refused, it stays an open follow-up on the callback's record
    (returned) rather than failing the run."""
    from kefu.tasks.feedback import FeedbackRefused, NewFeedback, record_feedback
    from kefu.worktime import calendar_for

    phones = customer.phones or []
    try:
        record_feedback(
            session,
            NewFeedback(
                kind=FeedbackKind.FEEDBACK,
                name=customer.contact_person or customer.name,
                phone=phones[0] if phones else "",
                content=result.problem_text,
                department=result.department,
                channel=Channel.PHONE if callback.channel == "phone" else Channel.EMAIL,
                received_at=result.contacted_at,
                email=customer.email,
                recorded_by=result.actor_staff_id,
            ),
            policy,
            calendar_for(policy),
            dt.datetime.now(dt.UTC),
        )
    except FeedbackRefused as refused:
        return f"意见反馈（未能登记：{refused}）：{result.problem_text}"
    return None


def due_at(policy: Policy, callback: RoutineCallback) -> dt.datetime:
    """When a callback is due: the end of the last business window of the day it fell due (the policy's clock)."""
    end = max(window.end for window in policy.business_windows)
    return dt.datetime.combine(callback.due_on, end, tzinfo=ZoneInfo(policy.timezone))


def waiting_steps(session: Session, policy: Policy, code: str | None = None) -> list[dict[str, Any]]:
    """Callback steps runs are suspended on (waiting, neither completed nor refused): the customer's code, the
    callback's owner (``None``: the on-duty agents') and its due time."""
    rows = []
    for event in waiting_records(session, "callback:"):
        callback = session.get(RoutineCallback, int(event.subject.removeprefix("callback:")))
        if callback is None or callback.status != "open":
            continue
        customer = session.get_one(Customer, callback.customer_id)
        if code is not None and customer_ref(customer) != code:
            continue
        rows.append(
            {
                "code": customer_ref(customer),
                "step": event.step,
                "flow_run_id": str(event.flow_run_id),
                "since": event.at.isoformat(),
                "due_at": due_at(policy, callback).isoformat(),
                "owner_id": callback.owner_id,
            }
        )
    return rows
