"""Customer contacts and their cadence (客户沟通, seed 003 §2.3; seed 000 ch.4 沟通记录): a customer's last contacts
and their follow-up items (recorded, whichever door they come in by, by ``kefu.tasks.contacts.record_contact``), and
the daily check of the policy's ``contact_cadence``: who has a gap in the current period (remind its owner before the
period ends) or had one in the period just over (escalate to the owner's supervisor), each told once.

A contact counts for a rule when a staff member is responsible for it (intake's records of a complaint received do
not), its channel is one of the rule's, and — for ``business_review`` — it was recorded as the business review.
Repository functions take the session and never commit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu.models.accounts import KeyAccountMember, TeamRole
from kefu.models.base import utcnow
from kefu.models.cadence import CadenceNotice, ContactFollowUp
from kefu.models.complaints import Complaint
from kefu.models.contacts import CONTACT_CHANNELS, channel_names
from kefu.models.enums import CustomerTier, Role
from kefu.models.people import WEEKDAYS, CommunicationRecord, Customer, Staff, StaffRole
from kefu.models.policy import ContactRule, Policy
from kefu.notifications.messages import MessageType
from kefu.notifications.outbox import MessageRejected, enqueue
from kefu.tasks.contacts import ContactRefused
from kefu.tasks.customer_data import customer_access_reason, mask_name
from kefu.worktime import WorkCalendar

GAP_ZH = {"contact": "联系", "business_review": "业务回顾", "follow_up": "跟进事项"}
FOLLOW_UP = "follow_up"  # a notice's gap for a follow-up item due (its period: the item's number, #12)
SEGMENT_ZH = {"key": "重点客户", "general": "一般客户"}
REMINDED, ESCALATED = "reminded", "escalated"
STAGE_ZH = {REMINDED: "提醒", ESCALATED: "升级"}


# --- a customer's contacts (recorded by ``kefu.tasks.contacts.record_contact``) ------------------------------------


def recent_contacts(session: Session, customer_id: int, limit: int = 5) -> list[CommunicationRecord]:
    return list(
        session.scalars(
            select(CommunicationRecord)
            .where(CommunicationRecord.customer_id == customer_id)
            .order_by(CommunicationRecord.at.desc(), CommunicationRecord.id.desc())
            .limit(limit)
        )
    )


def follow_ups_of(session: Session, record_ids: Sequence[int]) -> list[ContactFollowUp]:
    if not record_ids:
        return []
    return list(
        session.scalars(
            select(ContactFollowUp).where(ContactFollowUp.record_id.in_(record_ids)).order_by(ContactFollowUp.id)
        )
    )


def follow_up_done(session: Session, follow_up_id: int, by: Staff, now: dt.datetime | None = None) -> ContactFollowUp:
    """The item marked done by its owner, or by a supervisor or senior manager; done once (a second time refused)."""
    item = session.get(ContactFollowUp, follow_up_id)
    if item is None:
        raise ContactRefused(f"没有跟进事项 #{follow_up_id} / no follow-up item #{follow_up_id}")
    if by.id != item.owner_id and not by.roles & {Role.SUPERVISOR, Role.SENIOR_MANAGER}:
        raise ContactRefused(
            f"只有负责人或主管可以完成该事项 / only the item's owner or a supervisor marks #{follow_up_id} done"
        )
    if item.done_at is not None:
        raise ContactRefused(f"跟进事项 #{follow_up_id} 已完成 / follow-up item #{follow_up_id} is done already")
    item.done_at = now or utcnow()
    session.flush()
    return item


# --- periods -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """A cadence period: ``every_months`` calendar months from January (``label``: 2026-10, 2026-Q4, 2026-H2)."""

    first: dt.date
    last: dt.date
    label: str

    def previous(self, every_months: int) -> Period:
        return period_of(self.first - dt.timedelta(days=1), every_months)


def period_of(day: dt.date, every_months: int) -> Period:
    index = (day.month - 1) // every_months
    first = dt.date(day.year, index * every_months + 1, 1)
    end_month = first.month + every_months
    after = dt.date(first.year + 1, 1, 1) if end_month > 12 else dt.date(first.year, end_month, 1)
    last = after - dt.timedelta(days=1)
    if every_months == 1:
        label = f"{day.year}-{first.month:02d}"
    elif every_months == 3:
        label = f"{day.year}-Q{index + 1}"
    elif every_months == 6:
        label = f"{day.year}-H{index + 1}"
    elif every_months == 12:
        label = f"{day.year}"
    else:
        label = f"{day.year}-P{index + 1}"
    return Period(first, last, label)


def last_working_day(calendar: WorkCalendar, period: Period) -> dt.date:
    day = period.last
    while day > period.first and not calendar.is_working_day(day):
        day -= dt.timedelta(days=1)
    return day


def nth_working_day_after(calendar: WorkCalendar, day: dt.date, n: int) -> dt.date:
    found = 0
    while found < n:
        day += dt.timedelta(days=1)
        if calendar.is_working_day(day):
            found += 1
    return day


def due_at(policy: Policy, calendar: WorkCalendar, period: Period) -> dt.datetime:
    """When a period's contact is due: the close of business on its last working day (the policy's clock)."""
    close = max(window.end for window in policy.business_windows)
    local = dt.datetime.combine(last_working_day(calendar, period), close, ZoneInfo(policy.timezone))
    return local.astimezone(dt.UTC)


def _bounds_utc(period: Period, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(period.first, dt.time(), zone).astimezone(dt.UTC)
    end = dt.datetime.combine(period.last + dt.timedelta(days=1), dt.time(), zone).astimezone(dt.UTC)
    return start, end


def contacted(
    session: Session, customer_ids: Sequence[int], gap: str, rule: ContactRule, period: Period, zone: ZoneInfo
) -> set[int]:
    """Which of ``customer_ids`` had a qualifying contact in ``period``."""
    start, end = _bounds_utc(period, zone)
    # Records stored before there was one channel vocabulary may name a channel the old way (``mail``,
    # ``face_to_face``): the rule's channels count under every name.
    accepted = set().union(*(channel_names(c) for c in rule.channels))
    query = select(CommunicationRecord.customer_id).where(
        CommunicationRecord.at >= start,
        CommunicationRecord.at < end,
        CommunicationRecord.responsible_staff_id.is_not(None),
        CommunicationRecord.channel.in_(sorted(accepted)),
    )
    if gap == "business_review":
        query = query.where(CommunicationRecord.business_review.is_(True))
    found = set(session.scalars(query.distinct()))
    return found & set(customer_ids)


def segment_of(customer: Customer) -> str:
    return "key" if customer.tier is CustomerTier.KEY else "general"


def cadence_text(gap: str, rule: ContactRule, segment: str) -> str:
    """The requirement in the policy's words: 重点客户每月至少一次电话或拜访联系."""
    every = {1: "每月", 3: "每季度", 6: "每半年", 12: "每年"}.get(rule.every_months, f"每{rule.every_months}个月")
    channels = "或".join(CONTACT_CHANNELS[c] for c in rule.channels)
    what = "全面业务回顾" if gap == "business_review" else "联系"
    return f"{SEGMENT_ZH[segment]}{every}至少一次{channels}{what}"


# --- who answers for a customer's cadence -------------------------------------------------------------------------


def _first_with_role(session: Session, role: Role) -> Staff | None:
    return session.scalars(
        select(Staff).join(StaffRole).where(StaffRole.role == role, Staff.active.is_(True)).order_by(Staff.id)
    ).first()


def cadence_owner(
    session: Session,
    policy: Policy,
    customer: Customer,
    day: dt.date,
    rota_cache: dict[dt.date, list[Staff]] | None = None,
) -> tuple[Staff | None, str]:
    """The person reminded of ``customer``'s cadence on ``day`` and why (the policy's ``contact_cadence.owners``).
    ``rota_cache``: the day's on-duty staff, read once for a whole check."""
    owners = policy.contact_cadence.owners
    if customer.tier is CustomerTier.KEY:
        team = dict(
            session.execute(
                select(KeyAccountMember.team_role, Staff)
                .join(Staff, Staff.id == KeyAccountMember.staff_id)
                .where(KeyAccountMember.customer_id == customer.id, Staff.active.is_(True))
            )
            .tuples()
            .all()
        )
        for role in owners.key:
            person = team.get(TeamRole(role))
            if person is not None:
                return person, role
        return None, "no_team"
    for rule in owners.general:
        if rule == "last_complaint_owner":
            person = session.scalars(
                select(Staff)
                .join(Complaint, Complaint.owner_id == Staff.id)
                .where(Complaint.customer_id == customer.id, Staff.active.is_(True))
                .order_by(Complaint.received_at.desc(), Complaint.id.desc())
            ).first()
            if person is not None:
                return person, rule
        else:
            cache = rota_cache if rota_cache is not None else {}
            if day not in cache:
                weekday = WEEKDAYS[day.weekday()]
                cache[day] = [
                    p
                    for p in session.scalars(
                        select(Staff)
                        .join(StaffRole)
                        .where(StaffRole.role == policy.complaints.ownership.rota_role, Staff.active.is_(True))
                        .order_by(Staff.id)
                    )
                    if weekday in (p.on_duty or [])
                ]
            rota = cache[day]
            if rota:
                return rota[customer.id % len(rota)], rule
    return None, "nobody_on_duty"


def supervisor_of(session: Session, person: Staff | None) -> Staff | None:
    """The owner's supervisor; without one (or without an owner): a supervisor, else a senior manager."""
    if person is not None and person.supervisor is not None and person.supervisor.active:
        return person.supervisor
    return _first_with_role(session, Role.SUPERVISOR) or _first_with_role(session, Role.SENIOR_MANAGER)


# --- the daily check -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """One line of the run's summary: customer code, gap, period, stage, who, why (no personal data)."""

    code: str
    segment: str
    gap: str
    period: str
    stage: str
    staff: str
    reason: str
    mail: str


@dataclass
class CadenceReport:
    day: dt.date
    working_day: bool
    notices: list[Notice] = field(default_factory=list)
    rota: dict[dt.date, list[Staff]] = field(default_factory=dict, repr=False)  # the day's on-duty staff, read once

    def markdown(self) -> str:
        head = f"## 客户联系频率检查 {self.day:%Y-%m-%d}\n\n"
        if not self.working_day:
            return head + "非工作日：不提醒、不升级。\n"
        if not self.notices:
            return head + "无新的提醒或升级（已提醒过的缺口不再重复）。\n"
        lines = ["| 客户编号 | 客户类别 | 要求 | 周期 | 动作 | 通知对象 | 原因 | 邮件 |", "|---" * 8 + "|"]
        for n in self.notices:
            lines.append(
                f"| {n.code} | {SEGMENT_ZH[n.segment]} | {GAP_ZH[n.gap]} | {n.period} | {STAGE_ZH[n.stage]} | "
                f"{n.staff} | {n.reason} | {n.mail} |"
            )
        return head + "\n".join(lines) + "\n"


def _customers(session: Session, segment: str) -> list[Customer]:
    tier = CustomerTier.KEY if segment == "key" else CustomerTier.GENERAL
    return list(session.scalars(select(Customer).where(Customer.tier == tier).order_by(Customer.id)))


def _told(session: Session, gap: str, period: str, stage: str) -> set[int]:
    """The customers already told of this gap of this period at this stage (one query, not one per customer)."""
    found = session.scalars(
        select(CadenceNotice.customer_id).where(
            CadenceNotice.gap == gap, CadenceNotice.period == period, CadenceNotice.stage == stage
        )
    )
    return set(found)


def check_cadence(session: Session, policy: Policy, calendar: WorkCalendar, now: dt.datetime) -> CadenceReport:
    """The day's reminders and escalations, each written once (``cadence_notices``) with its internal mail. A gap is
    escalated when its owner was reminded of it and the period ended without the contact (a customer admitted or
    registered after its period's reminders is not escalated for that period)."""
    zone = ZoneInfo(policy.timezone)
    today = now.astimezone(zone).date()
    report = CadenceReport(today, calendar.is_working_day(today))
    if not report.working_day:
        return report
    cadence = policy.contact_cadence
    for segment, rules in (("key", cadence.key), ("general", cadence.general)):
        customers = _customers(session, segment)
        if not customers:
            continue
        ids = [c.id for c in customers]
        for gap, rule in rules.items():
            current = period_of(today, rule.every_months)
            closing = last_working_day(calendar, current)
            left = len(calendar.working_days_between(today, closing)) if today <= closing else 0
            if 0 < left <= cadence.remind_working_days_before:
                done = contacted(session, ids, gap, rule, current, zone)
                told = _told(session, gap, current.label, REMINDED)
                for customer in customers:
                    if customer.id not in done and customer.id not in told:
                        _tell(session, policy, calendar, customer, segment, gap, rule, current, REMINDED, now, report)
            previous = current.previous(rule.every_months)
            after = cadence.escalate_after_working_days
            escalate_on = nth_working_day_after(calendar, last_working_day(calendar, previous), after)
            if today >= escalate_on:
                escalated = _told(session, gap, previous.label, ESCALATED)
                reminded = _told(session, gap, previous.label, REMINDED) - escalated
                done = contacted(session, list(reminded), gap, rule, previous, zone)
                for customer in customers:
                    if customer.id in reminded and customer.id not in done:
                        _tell(session, policy, calendar, customer, segment, gap, rule, previous, ESCALATED, now, report)
    remind_follow_ups(session, today, now, report)
    session.flush()
    report.rota.clear()  # rows of this session: not part of the report handed back
    return report


def remind_follow_ups(session: Session, today: dt.date, now: dt.datetime, report: CadenceReport) -> None:
    """Follow-up items due today or earlier and not done: their owner is told once per item."""
    told = set(
        session.scalars(
            select(CadenceNotice.period).where(CadenceNotice.gap == FOLLOW_UP, CadenceNotice.stage == REMINDED)
        )
    )
    rows = session.execute(
        select(ContactFollowUp, Customer)
        .join(CommunicationRecord, CommunicationRecord.id == ContactFollowUp.record_id)
        .join(Customer, Customer.id == CommunicationRecord.customer_id)
        .where(ContactFollowUp.done_at.is_(None), ContactFollowUp.due_on <= today)
        .order_by(ContactFollowUp.id)
    ).tuples()
    for item, customer in rows:
        key = f"#{item.id}"
        if key in told:
            continue
        owner = item.owner
        code = customer.code or f"C{customer.id:06d}"
        mail = "no_address"
        if owner.active and owner.email:
            try:
                enqueue(
                    session,
                    MessageType.FOLLOW_UP_DUE,
                    recipient_email=owner.email,
                    context={
                        "recipient_name": owner.name,
                        "customer_code": code,
                        "item": item.item,
                        "due_on": f"{item.due_on:%Y年%m月%d日}",
                        "follow_up_id": item.id,
                    },
                    dedupe_key=f"follow-up:{item.id}:due",
                    now=now,
                )
                mail = "queued"
            except MessageRejected as rejected:
                mail = f"rejected: {rejected}"
        reason = f"跟进事项 #{item.id} 应于{item.due_on:%Y-%m-%d}前完成"
        session.add(
            CadenceNotice(customer_id=customer.id, gap=FOLLOW_UP, period=key, stage=REMINDED, staff_id=owner.id,
                          reason=reason, at=now)
        )  # fmt: skip
        session.flush()
        segment = segment_of(customer)
        report.notices.append(
            Notice(code, segment, FOLLOW_UP, key, REMINDED, owner.login or str(owner.id), reason, mail)
        )


def _tell(
    session: Session,
    policy: Policy,
    calendar: WorkCalendar,
    customer: Customer,
    segment: str,
    gap: str,
    rule: ContactRule,
    period: Period,
    stage: str,
    now: dt.datetime,
    report: CadenceReport,
) -> None:
    today = now.astimezone(ZoneInfo(policy.timezone)).date()
    owner, why = cadence_owner(session, policy, customer, today, report.rota)
    code = customer.code or f"C{customer.id:06d}"
    owner_name = (owner.login or str(owner.id)) if owner is not None else "—"
    if stage == REMINDED:
        target = owner if owner is not None else supervisor_of(session, None)
        reason = f"{period.label}尚无{GAP_ZH[gap]}记录；负责人：{why}"
        message = MessageType.CONTACT_CADENCE_REMINDER
    else:
        target = supervisor_of(session, owner)
        reason = f"{period.label}已结束仍无{GAP_ZH[gap]}记录；负责人：{owner_name}（{why}）"
        message = MessageType.CONTACT_CADENCE_OVERDUE
    mail = "no_recipient"
    # The customer's name in full only to whom the one rule shows it (the team, supervisors, …); masked otherwise.
    shown_name = customer.name if customer_access_reason(target, customer, policy) else mask_name(customer.name)
    if target is not None and target.email:
        try:
            enqueue(
                session,
                message,
                recipient_email=target.email,
                context={
                    "recipient_name": target.name,
                    "customer_code": code,
                    "customer_name": shown_name,
                    "cadence": cadence_text(gap, rule, segment),
                    "period": period.label,
                    "due_at": due_at(policy, calendar, period),
                    "owner_name": owner.name if owner is not None else "未指定",
                },
                dedupe_key=f"cadence:{customer.id}:{gap}:{period.label}:{stage}",
                now=now,
            )
            mail = "queued"
        except MessageRejected as rejected:
            mail = f"rejected: {rejected}"
    elif target is not None:
        mail = "no_address"
    notice = CadenceNotice(
        customer_id=customer.id, gap=gap, period=period.label, stage=stage,
        staff_id=target.id if target is not None else None, reason=reason, at=now,
    )  # fmt: skip
    session.add(notice)
    session.flush()
    shown = (target.login or str(target.id)) if target is not None else "—"
    report.notices.append(Notice(code, segment, gap, period.label, stage, shown, reason, mail))


@dataclass(frozen=True)
class CadenceLine:
    """One rule's state for ``kefu account show``."""

    gap: str
    period: str
    met: bool
    due_at: dt.datetime
    told: list[str]


def cadence_status(
    session: Session, policy: Policy, calendar: WorkCalendar, customer: Customer, now: dt.datetime
) -> list[CadenceLine]:
    zone = ZoneInfo(policy.timezone)
    today = now.astimezone(zone).date()
    segment = segment_of(customer)
    rules = policy.contact_cadence.key if segment == "key" else policy.contact_cadence.general
    lines = []
    for gap, rule in rules.items():
        period = period_of(today, rule.every_months)
        met = customer.id in contacted(session, [customer.id], gap, rule, period, zone)
        told = [
            f"{STAGE_ZH[n.stage]} {n.period}"
            for n in session.scalars(
                select(CadenceNotice)
                .where(CadenceNotice.customer_id == customer.id, CadenceNotice.gap == gap)
                .order_by(CadenceNotice.at.desc(), CadenceNotice.id.desc())
                .limit(2)
            )
        ]
        lines.append(CadenceLine(gap, period.label, met, due_at(policy, calendar, period), told))
    return lines
