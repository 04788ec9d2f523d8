"""The case page and the case search of the operators' entrance (issue 12: the desk).

One case as a signed-in person may see it: the complaint (content, order, product, place, channel), the customer
by role (``kefu.tasks.customer_data.read_customer``: in full for the case's owner, their supervisors and the
key-account team, the reading recorded in the access log; masked for everyone else), the milestones with their
due times in the policy's time zone and their state, the pause ledger, and the timeline of who did what.

The search finds cases by case number, order number or the customer's phone number. A phone search lists only the
cases whose customer the person may see in full, so it never tells anyone whose number it is.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from kefu.intake.labels import STATUS_ZH
from kefu.models.complaints import CaseEvent, Complaint
from kefu.models.enums import CHANNEL_ZH
from kefu.models.people import CustomerPhone, Staff
from kefu.models.policy import Policy
from kefu.tasks.customer_data import CustomerView, full_access_reason, masked_data, read_customer
from kefu.worktime.display import local_time, local_times_in

THROUGH = "page:case"
SEARCH_LIMIT = 50
_DIGITS = re.compile(r"\D")


@dataclass(frozen=True)
class MilestoneRow:
    name: str
    due: str
    state: str
    breached: bool
    paused: str


@dataclass(frozen=True)
class TimelineRow:
    at: str
    action: str
    actor: str
    details: str


@dataclass(frozen=True)
class CasePage:
    case_no: str
    severity: str
    urgent: bool
    status: str
    channel: str
    received: str
    owner: str
    order_ref: str
    product: str
    place: str
    problem_at: str
    content: str
    customer: CustomerView | None
    milestones: list[MilestoneRow]
    timeline: list[TimelineRow]


@dataclass(frozen=True)
class CaseHit:
    case_no: str
    severity: str
    status: str
    received: str


def _severity_name(policy: Policy, complaint: Complaint) -> str:
    rule = policy.complaints.severities.get(complaint.severity)
    return rule.name if rule is not None else complaint.severity.value


def _milestone_names(policy: Policy, complaint: Complaint) -> dict[str, str]:
    names: dict[str, str] = {}
    for rule in policy.complaints.severities.values():  # a case's own severity last: its names win
        if rule is not policy.complaints.severities.get(complaint.severity):
            names.update({m.id.value: m.name for m in rule.milestones})
    own = policy.complaints.severities.get(complaint.severity)
    if own is not None:
        names.update({m.id.value: m.name for m in own.milestones})
    return names


def _staff_names(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.execute(select(Staff.id, Staff.name, Staff.login).where(Staff.id.in_(ids))).all()
    return {row.id: f"{row.name}（{row.login or row.id}）" for row in rows}


def _actor(actor: str, names: dict[int, str]) -> str:
    if actor == "system":
        return "系统"
    kind, _, ref = actor.partition(":")
    if kind == "staff" and ref.isdigit():
        return names.get(int(ref), actor)
    return actor


def _details(data: dict[str, Any], full: bool) -> str:
    shown = {k: v for k, v in data.items() if k not in ("key", "flow_run_id")}
    shown = shown if full else masked_data(shown)  # answers may quote a phone number or an e-mail
    shown = local_times_in(shown)  # stored as UTC; people read the policy's zone
    return "；".join(f"{k}: {v}" for k, v in shown.items() if v not in (None, "", [], {}))


def case_page(session: Session, reader: Staff, case_no: str, policy: Policy, now: dt.datetime) -> CasePage | None:
    """``case_no`` as ``reader`` may see it, or ``None`` when there is no such case. A full reading of the customer is
    recorded in the access log (by ``read_customer``); the caller commits."""
    complaint = session.scalars(select(Complaint).where(Complaint.case_no == case_no.strip().upper())).first()
    if complaint is None:
        return None
    customer = read_customer(session, reader, complaint, through=THROUGH, policy=policy, now=now)
    full = customer is not None and customer.full
    events = session.scalars(
        select(CaseEvent).where(CaseEvent.complaint_id == complaint.id).order_by(CaseEvent.at, CaseEvent.id)
    ).all()
    staff_ids = {int(e.actor.split(":", 1)[1]) for e in events if re.fullmatch(r"staff:\d+", e.actor)}
    names = _staff_names(session, staff_ids | ({complaint.owner_id} if complaint.owner_id else set()))
    milestone_names = _milestone_names(policy, complaint)
    milestones = []
    for m in complaint.milestones:
        if m.met_at is not None:
            state = f"已完成 {local_time(m.met_at)}" + ("（超时完成）" if m.breached_at else "")
        elif m.breached_at is not None:
            state = "已超时"
        elif m.due_at is not None and m.due_at.replace(tzinfo=m.due_at.tzinfo or dt.UTC) <= now:
            state = "已到期"
        else:
            state = "进行中"
        milestones.append(
            MilestoneRow(
                name=milestone_names.get(m.milestone.value, m.milestone.value),
                due=local_time(m.due_at),
                state=state,
                breached=m.breached_at is not None and m.met_at is None,
                paused=str(m.paused_intervals) if getattr(m, "paused_intervals", None) else "",
            )
        )
    return CasePage(
        case_no=complaint.case_no,
        severity=_severity_name(policy, complaint),
        urgent=complaint.urgent,
        status=STATUS_ZH.get(complaint.status, complaint.status.value),
        channel=CHANNEL_ZH.get(complaint.channel, complaint.channel.value),
        received=local_time(complaint.received_at),
        owner=names.get(complaint.owner_id, "未指定") if complaint.owner_id else "未指定",
        order_ref=complaint.order_ref or "—",
        product=complaint.product or "—",
        place=complaint.place or "—",
        problem_at=local_time(complaint.problem_at) if complaint.problem_at else "—",
        content=complaint.content if full else str(masked_data(complaint.content)),
        customer=customer,
        milestones=milestones,
        timeline=[
            TimelineRow(
                at=local_time(e.at), action=e.action, actor=_actor(e.actor, names), details=_details(e.data, full)
            )
            for e in events
        ],
    )


def search_cases(session: Session, reader: Staff, query: str, policy: Policy) -> list[CaseHit]:
    """Cases by case number (or its beginning), order number, or the customer's phone number — the last only those
    whose customer ``reader`` may see in full. Newest first, at most ``SEARCH_LIMIT``."""
    text = query.strip()
    if not text:
        return []
    by_text = or_(Complaint.case_no.startswith(text.upper()), Complaint.order_ref == text)
    found = list(
        session.scalars(select(Complaint).where(by_text).order_by(Complaint.received_at.desc()).limit(SEARCH_LIMIT))
    )
    digits = _DIGITS.sub("", text)
    if len(digits) >= 7:  # a whole phone number, as given or as digits
        by_phone = (
            select(Complaint)
            .join(CustomerPhone, CustomerPhone.customer_id == Complaint.customer_id)
            .where(CustomerPhone.phone.in_({text, digits}))
            .order_by(Complaint.received_at.desc())
            .limit(SEARCH_LIMIT)
        )
        seen = {c.id for c in found}
        found += [
            c
            for c in session.scalars(by_phone).unique()
            if c.id not in seen and full_access_reason(reader, c, policy) is not None
        ]
    return [
        CaseHit(
            case_no=c.case_no,
            severity=_severity_name(policy, c),
            status=STATUS_ZH.get(c.status, c.status.value),
            received=local_time(c.received_at),
        )
        for c in found[:SEARCH_LIMIT]
    ]
