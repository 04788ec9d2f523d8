"""Registering a complaint: the complaint, its customer, a communication record, an audit event and the
outbox row that starts its case flow — all in the caller's one transaction (repository style: never commits).

The SLA clock starts at ``received_at`` (the moment the front door accepted the complaint), not when the
case flow starts. A repeated ``idempotency_key`` returns the complaint the first submission created.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import String, bindparam, cast, func, select, text
from sqlalchemy.orm import Session

from kefu.intake.validation import Submission, phone_last4
from kefu.models.complaints import CaseEvent, Complaint, Milestone
from kefu.models.enums import Channel, ComplaintStatus, MilestoneId, Severity
from kefu.models.intake import IntakeIdempotencyKey, IntakeOutbox
from kefu.models.people import CommunicationRecord, Customer
from kefu.models.policy import Policy
from kefu.worktime import WorkCalendar, plan_complaint_milestones

CASE_PREFIX = "KF"
# Milestones whose time is promised to the customer (the others are internal: reports, task forces).
CUSTOMER_FACING = {
    MilestoneId.FIRST_CONTACT,
    MilestoneId.SOLUTION,
    MilestoneId.PROGRESS_UPDATE,
    MilestoneId.PRELIMINARY_PLAN,
    MilestoneId.RESOLUTION,
    MilestoneId.CALLBACK,
}
STATUS_ZH = {
    ComplaintStatus.REGISTERED: "已受理",
    ComplaintStatus.CLASSIFIED: "已分级，待联系",
    ComplaintStatus.INVESTIGATING: "调查处理中",
    ComplaintStatus.PROPOSING: "正在制定解决方案",
    ComplaintStatus.AWAITING_APPROVAL: "解决方案待您确认",
    ComplaintStatus.RESOLVING: "按方案处理中",
    ComplaintStatus.RESOLVED: "已处理完成，待回访",
    ComplaintStatus.CLOSED: "已结案",
}
CHANNEL_ZH = {
    Channel.HOTLINE: "客服热线",
    Channel.EMAIL: "电子邮件",
    Channel.WEB: "网站",
    Channel.IM: "在线客服",
    Channel.FACE_TO_FACE: "面谈",
    Channel.SOCIAL: "社交媒体",
    Channel.PHONE: "电话",
    Channel.VISIT: "上门拜访",
}


class IdempotencyKeyReused(Exception):
    """The same Idempotency-Key came with a different complaint."""

    def __init__(self, case_no: str) -> None:
        super().__init__(f"idempotency key already used for case {case_no} with different content")
        self.case_no = case_no


def fingerprint(submission: Submission, channel: Channel) -> str:
    payload = json.dumps({**submission.fingerprint_fields(), "channel": channel.value}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def propose_severity(policy: Policy, submission: Submission, *, key_account: bool) -> Severity:
    """The severity the policy's rules propose at intake (the case flow asks a person to confirm it)."""
    severity, _why = policy.complaints.classification.propose(
        submission.content,
        submission.order_amount,
        key_account=key_account,
        urgent=is_urgent(policy, submission),
    )
    return severity


def is_urgent(policy: Policy, submission: Submission) -> bool:
    return policy.complaints.classification.is_urgent(submission.content, flagged=submission.urgent)


def _serialize(session: Session, keys: list[str]) -> None:
    """Make concurrent registrations of the same person/key wait for each other (no duplicate customers).

    SQLite: take the database write lock now (pysqlite begins the transaction at the first write).
    PostgreSQL: transaction-scoped advisory locks on the phone, e-mail and idempotency key.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        session.execute(_TAKE_WRITE_LOCK)
        return
    if dialect == "postgresql":
        for key in sorted(set(keys)):
            digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": digest})


_TAKE_WRITE_LOCK = text("UPDATE intake_case_counters SET last = last WHERE day = ''")
# One statement for both backends (SQLite >= 3.35 and PostgreSQL): atomic, and built once.
_NEXT_NUMBER = text(
    "INSERT INTO intake_case_counters (day, last) VALUES (:day, 1) "
    "ON CONFLICT (day) DO UPDATE SET last = intake_case_counters.last + 1 RETURNING last"
)
_CUSTOMER_BY_PHONE = (
    select(Customer).where(cast(Customer.phones, String).like(bindparam("pattern"))).order_by(Customer.id).limit(1)
)
_CUSTOMER_BY_EMAIL = (
    select(Customer).where(func.lower(Customer.email) == bindparam("email")).order_by(Customer.id).limit(1)
)
_KEY_LOOKUP = select(IntakeIdempotencyKey).where(IntakeIdempotencyKey.key == bindparam("key"))


def next_case_no(session: Session, received_at: dt.datetime, timezone: str) -> str:
    """'KF20261123-00042': the day (local time) and its running number, handed out atomically."""
    day = received_at.astimezone(ZoneInfo(timezone)).strftime("%Y%m%d")
    number = session.execute(_NEXT_NUMBER, {"day": day}).scalar_one()
    return f"{CASE_PREFIX}{day}-{number:05d}"


def find_customer(session: Session, phone: str, email: str | None) -> Customer | None:
    """A returning complainant: matched by phone first, then by e-mail."""
    by_phone = session.scalars(_CUSTOMER_BY_PHONE, {"pattern": f'%"{phone}"%'}).first()
    if by_phone is not None:
        return by_phone
    if email:
        return session.scalars(_CUSTOMER_BY_EMAIL, {"email": email.lower()}).first()
    return None


def _customer_for(session: Session, submission: Submission) -> Customer:
    customer = find_customer(session, submission.phone, submission.email)
    if customer is None:
        customer = Customer(
            name=submission.name,
            contact_person=submission.name,
            phones=[submission.phone],
            email=submission.email,
            address=submission.place,
        )
        session.add(customer)  # inserted with the complaint's flush
        return customer
    if submission.phone not in customer.phones:
        customer.phones = [*customer.phones, submission.phone]
    if customer.email is None and submission.email:
        customer.email = submission.email
    return customer


def register_complaint(
    session: Session,
    submission: Submission,
    *,
    received_at: dt.datetime,
    channel: Channel,
    idempotency_key: str | None = None,
    policy: Policy | None = None,
    timezone: str = "Asia/Shanghai",
) -> tuple[Complaint, bool]:
    """Record a complaint (or find the one this idempotency key already created). Never commits.

    Returns the complaint and whether it was created now. Raises ``IdempotencyKeyReused`` when the key
    came before with different content.
    """
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    if policy is None:
        from kefu.models.policy import current_policy

        policy = current_policy()
    lock_keys = [f"phone:{submission.phone}"] + ([f"email:{submission.email}"] if submission.email else [])
    if idempotency_key:
        lock_keys.append(f"idem:{idempotency_key}")
    _serialize(session, lock_keys)
    print_ = fingerprint(submission, channel)
    if idempotency_key:
        existing = session.scalars(_KEY_LOOKUP, {"key": idempotency_key}).one_or_none()
        if existing is not None:
            complaint = session.get_one(Complaint, existing.complaint_id)
            if existing.fingerprint != print_:
                raise IdempotencyKeyReused(complaint.case_no)
            return complaint, False

    customer = _customer_for(session, submission)
    severity = propose_severity(policy, submission, key_account=customer.is_key_account)
    urgent = is_urgent(policy, submission)
    case_no = next_case_no(session, received_at, timezone)
    complaint = Complaint(
        case_no=case_no,
        channel=channel,
        received_at=received_at,
        severity=severity,
        status=ComplaintStatus.REGISTERED,
        urgent=urgent,
        customer=customer,
        order_ref=submission.order_no,
        order_amount=submission.order_amount,
        product=submission.product,
        place=submission.place,
        problem_at=submission.problem_at,
        content=submission.content,
        preferred_contact_time=submission.preferred_contact_time,
    )
    session.add(complaint)
    session.flush()
    session.add(
        CommunicationRecord(
            customer_id=customer.id,
            complaint_id=complaint.id,
            at=received_at,
            channel=channel.value,
            summary=f"通过{CHANNEL_ZH[channel]}受理投诉 {case_no}" + ("（紧急）" if urgent else ""),
            follow_up_items=["首次联系客户"],
        )
    )
    session.add(
        CaseEvent(
            complaint_id=complaint.id,
            actor=f"intake:{channel.value}",
            action="received",
            data={"case_no": case_no, "channel": channel.value, "proposed_severity": severity.value, "urgent": urgent},
            at=received_at,
        )
    )
    session.add(IntakeOutbox(complaint_id=complaint.id, case_no=case_no, created_at=received_at))
    if idempotency_key:
        session.add(IntakeIdempotencyKey(key=idempotency_key, fingerprint=print_, complaint_id=complaint.id))
    session.flush()
    return complaint, True


@dataclass(frozen=True)
class Commitment:
    milestone: MilestoneId
    name: str
    due_at: dt.datetime


def first_commitment(
    policy: Policy, calendar: WorkCalendar, severity: Severity, received_at: dt.datetime, *, key_account: bool
) -> Commitment | None:
    """The first time the policy promises the customer something (e.g. 首次联系 within 24 h)."""
    plan = plan_complaint_milestones(policy, calendar, severity, received_at, key_account=key_account)
    due = [m for m in plan.milestones if m.id in CUSTOMER_FACING and m.due_at is not None]
    if not due:
        return None
    first = min(due, key=lambda m: m.due_at or received_at)
    assert first.due_at is not None
    return Commitment(first.id, first.name, first.due_at)


def next_commitment(
    session: Session, complaint: Complaint, policy: Policy, calendar: WorkCalendar
) -> Commitment | None:
    """The next open customer-facing deadline: from the case's milestones, or the policy plan before they exist."""
    rows = session.scalars(
        select(Milestone).where(
            Milestone.complaint_id == complaint.id, Milestone.met_at.is_(None), Milestone.due_at.is_not(None)
        )
    ).all()
    names = {m.id: m.name for s in policy.complaints.severities.values() for m in s.milestones}
    if rows:
        facing = [r for r in rows if r.milestone in CUSTOMER_FACING]
        if not facing:
            return None
        first = min(facing, key=lambda r: r.due_at or complaint.received_at)
        assert first.due_at is not None
        return Commitment(first.milestone, names.get(first.milestone, first.milestone.value), first.due_at)
    if complaint.status is not ComplaintStatus.REGISTERED:
        return None
    key_account = complaint.customer is not None and complaint.customer.is_key_account
    return first_commitment(policy, calendar, complaint.severity, complaint.received_at, key_account=key_account)


@dataclass(frozen=True)
class CaseStatus:
    case_no: str
    status: str
    status_label: str
    received_at: dt.datetime
    next_commitment: Commitment | None


def case_status_for_customer(
    session: Session, case_no: str, last4: str, policy: Policy, calendar: WorkCalendar
) -> CaseStatus | None:
    """The status a customer may see, or None — the same None for 'no such case' and 'wrong digits'."""
    complaint = session.scalars(select(Complaint).where(Complaint.case_no == case_no)).one_or_none()
    if complaint is None or complaint.customer is None:
        return None
    digits_match = any(phone_last4(p) == last4 for p in complaint.customer.phones)
    if not digits_match:
        return None
    return case_status(session, complaint, policy, calendar)


def case_status(session: Session, complaint: Complaint, policy: Policy, calendar: WorkCalendar) -> CaseStatus:
    return CaseStatus(
        case_no=complaint.case_no,
        status=complaint.status.value,
        status_label=STATUS_ZH.get(complaint.status, complaint.status.value),
        received_at=complaint.received_at,
        next_commitment=next_commitment(session, complaint, policy, calendar),
    )
