"""Key-account onboarding's side effects (seed 001 §二.1 调研 → 评审 → 审批 → 纳入), each keyed in the database so a
replayed flow writes nothing twice: the audit trail of its steps, the departments' reviews (opened once, decided
once), the senior manager's decision (admit: tier, team, the team told by internal mail; reject: the nomination
closed with the reason), and the sweep of missed review deadlines. Repository functions: they take the session and
never commit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu.models.accounts import TEAM_ROLE_ZH, KeyAccountNomination, OnboardingEvent, OnboardingReview, TeamRole
from kefu.models.base import utcnow
from kefu.models.enums import CustomerTier, Role
from kefu.models.people import Staff, StaffRole
from kefu.models.policy import Policy
from kefu.notifications.messages import MessageType
from kefu.notifications.outbox import MessageRejected, enqueue
from kefu.worktime import WorkCalendar

APPROVED, REJECTED = "approved", "rejected"
ADMITTED = "admitted"  # the nomination's status once the senior manager admits (``rejected`` otherwise)
DECISION_ZH = {APPROVED: "同意", REJECTED: "不同意"}
# The team the senior manager names on admission, by the field of the approval form.
TEAM_FIELDS: dict[str, TeamRole] = {
    "project_manager_staff_id": TeamRole.PROJECT_MANAGER,
    "service_specialist_staff_id": TeamRole.SERVICE_SPECIALIST,
    "dispatcher_staff_id": TeamRole.DISPATCHER,
    "after_sales_staff_id": TeamRole.AFTER_SALES,
}
# The directory role that usually fills each place of the team (客服专员 is a 客服人员): whom the approval form's
# summary offers, with their staff numbers, so that the senior manager need not look them up. A hint, not a rule.
TEAM_CANDIDATE_ROLES: dict[TeamRole, Role] = {
    TeamRole.PROJECT_MANAGER: Role.PROJECT_MANAGER,
    TeamRole.SERVICE_SPECIALIST: Role.AGENT,
    TeamRole.DISPATCHER: Role.DISPATCHER,
    TeamRole.AFTER_SALES: Role.AFTER_SALES,
}


class OnboardingRefused(ValueError):
    """An answer or change onboarding cannot accept; the message (zh-CN / English) says why."""


def system_clock() -> dt.datetime:
    return utcnow()


def get_nomination(session: Session, nomination_id: int) -> KeyAccountNomination:
    row = session.get(KeyAccountNomination, nomination_id)
    if row is None:
        raise OnboardingRefused(f"没有提名 {nomination_id} / no nomination {nomination_id}")
    return row


def nomination_for_code(session: Session, code: str) -> KeyAccountNomination | None:
    """The customer's latest nomination (open or closed), by customer code."""
    from kefu.models.people import Customer

    return session.scalars(
        select(KeyAccountNomination)
        .join(Customer, Customer.id == KeyAccountNomination.customer_id)
        .where(Customer.code == code)
        .order_by(KeyAccountNomination.id.desc())
    ).first()


# --- the audit trail -----------------------------------------------------------------------------------------------


def record_event(
    session: Session, nomination_id: int, action: str, key: str, actor: str, at: dt.datetime, **data: Any
) -> bool:
    """One audit row per (action, key): False when it is there already (a replay)."""
    existing = session.scalar(
        select(OnboardingEvent.id).where(
            OnboardingEvent.nomination_id == nomination_id, OnboardingEvent.action == action, OnboardingEvent.key == key
        )
    )
    if existing is not None:
        return False
    session.add(OnboardingEvent(nomination_id=nomination_id, action=action, key=key, actor=actor, at=at, data=data))
    session.flush()
    return True


def events(session: Session, nomination_id: int) -> list[OnboardingEvent]:
    return list(
        session.scalars(
            select(OnboardingEvent).where(OnboardingEvent.nomination_id == nomination_id).order_by(OnboardingEvent.id)
        )
    )


def step_outcomes(session: Session, nomination_id: int) -> dict[str, str]:
    """Each answered key: ``"completed"`` or ``"refused"`` (a refusal wins)."""
    outcomes: dict[str, str] = {}
    for row in events(session, nomination_id):
        if row.action == "step_refused":
            outcomes[row.key] = "refused"
        elif row.action == "step_completed" and outcomes.get(row.key) != "refused":
            outcomes[row.key] = "completed"
    return outcomes


def waiting_steps(session: Session, code: str | None = None) -> list[dict[str, Any]]:
    """Onboarding steps a run is suspended on (the shape of ``casework.waiting_steps``; ``case_no`` is the customer's
    code): open nominations only, internal waits (for the reviews) left out."""
    from kefu.models.people import Customer

    query = (
        select(OnboardingEvent, KeyAccountNomination, Customer)
        .join(KeyAccountNomination, KeyAccountNomination.id == OnboardingEvent.nomination_id)
        .join(Customer, Customer.id == KeyAccountNomination.customer_id)
        .where(OnboardingEvent.action == "waiting", KeyAccountNomination.status == "open")
    )
    result: list[dict[str, Any]] = []
    answered: dict[int, dict[str, str]] = {}
    for event, nomination, customer in session.execute(query.order_by(OnboardingEvent.id)).all():
        if event.data.get("internal"):
            continue
        shown_code = customer.code or f"C{customer.id:06d}"
        if code is not None and code != shown_code:
            continue
        outcomes = answered.setdefault(nomination.id, step_outcomes(session, nomination.id))
        if event.key in outcomes:
            continue
        deadlines: dict[str, str] = {}
        department = event.data.get("department")
        if department:
            review = review_of(session, nomination.id, str(department))
            if review is not None and review.decision is None:
                deadlines[f"review_{department}"] = review.due_at.isoformat()
        result.append(
            {
                "case_no": shown_code,
                "step": str(event.data["step"]),
                "key": event.key,
                "flow_run_id": str(event.data["flow_run_id"]),
                "since": event.at.isoformat(),
                "deadlines": deadlines,
            }
        )
    return result


# --- the reviews ---------------------------------------------------------------------------------------------------


def review_of(session: Session, nomination_id: int, department: str) -> OnboardingReview | None:
    return session.scalars(
        select(OnboardingReview).where(
            OnboardingReview.nomination_id == nomination_id, OnboardingReview.department == department
        )
    ).first()


def reviews(session: Session, nomination_id: int) -> list[OnboardingReview]:
    return list(
        session.scalars(
            select(OnboardingReview)
            .where(OnboardingReview.nomination_id == nomination_id)
            .order_by(OnboardingReview.id)
        )
    )


def open_reviews(
    session: Session, nomination_id: int, policy: Policy, calendar: WorkCalendar, now: dt.datetime
) -> list[OnboardingReview]:
    """One review per department the policy lists, due by its deadline from ``now``; a department's review opened
    before keeps its start and deadline."""
    rows = []
    for department, rule in policy.key_accounts.onboarding.reviews.items():
        row = review_of(session, nomination_id, department.value)
        if row is None:
            due = calendar.deadline(now, rule.deadline).due_at
            row = OnboardingReview(nomination_id=nomination_id, department=department.value, started_at=now, due_at=due)
            session.add(row)
            session.flush()
        rows.append(row)
    return rows


def pending_departments(session: Session, nomination_id: int) -> list[str]:
    """Departments whose review is not in yet (every department of the policy until the reviews are opened)."""
    rows = reviews(session, nomination_id)
    return [r.department for r in rows if r.decision is None] if rows else ["*"]


def record_review(
    session: Session, nomination_id: int, department: str, *, approve: bool, comments: str, reviewer_id: int,
    now: dt.datetime,
) -> bool:  # fmt: skip
    """The department's decision, once: False when it was recorded before (a replayed review run)."""
    row = review_of(session, nomination_id, department)
    if row is None:
        raise OnboardingRefused(f"提名 {nomination_id} 没有{department}评审 / no {department} review")
    if row.decision is not None:
        return False
    row.decision = APPROVED if approve else REJECTED
    row.comments, row.reviewer_id, row.decided_at = comments, reviewer_id, now
    session.flush()
    return True


# --- staff checks --------------------------------------------------------------------------------------------------


def check_staff(
    session: Session, answer: Mapping[str, Any], roles: Iterable[Role], role_names: Mapping[Role, str]
) -> None:
    """The person answering (``actor_staff_id``) must be active staff holding one of ``roles``; every team member the
    answer names must be active staff. Raises ``OnboardingRefused`` with the reason."""
    allowed = list(roles)
    actor = answer.get("actor_staff_id")
    person = session.get(Staff, actor) if isinstance(actor, int) else None
    if person is None or not person.active:
        raise OnboardingRefused(
            f"员工编号 {actor} 不存在或已停用 / actor_staff_id: staff id {actor} is unknown or inactive"
        )
    if allowed and not person.roles & set(allowed):
        may = "、".join(role_names.get(r, r.value) for r in allowed)
        raise OnboardingRefused(
            f"员工 {person.login or person.id} 无权处理此步骤，可处理的角色：{may} / actor_staff_id: staff "
            f"{person.login or person.id} may not answer this step (roles that may: "
            f"{', '.join(r.value for r in allowed)})"
        )
    for field in TEAM_FIELDS:
        value = answer.get(field)
        if value is None:
            continue
        member = session.get(Staff, value) if isinstance(value, int) else None
        if member is None or not member.active:
            raise OnboardingRefused(
                f"员工编号 {value} 不存在或已停用 / {field}: staff id {value} is unknown or inactive"
            )


# --- the decision --------------------------------------------------------------------------------------------------


def admit(
    session: Session, nomination_id: int, team: Mapping[TeamRole, int], *, decided_by: int, reason: str,
    now: dt.datetime,
) -> bool:  # fmt: skip
    """纳入: the customer becomes a key account, the team is assigned and each member told by internal mail (once);
    the nomination is closed as admitted. False when it was closed before (a replay)."""
    from kefu.tasks.accounts import assign_member

    nomination = get_nomination(session, nomination_id)
    if nomination.status != "open":
        return False
    customer = nomination.customer
    customer.tier = CustomerTier.KEY
    session.flush()
    for role, staff_id in team.items():
        person = session.get(Staff, staff_id)
        assert person is not None
        assign_member(session, customer, role, person)
        mail = tell_member(session, nomination, role, person, now)
        record_event(
            session, nomination_id, "team_assigned", role.value, f"staff:{decided_by}", now, staff_id=staff_id,
            mail=mail,
        )  # fmt: skip
    nomination.status, nomination.closed_at, nomination.outcome_reason = ADMITTED, now, reason
    record_event(session, nomination_id, "admitted", "decision", f"staff:{decided_by}", now, reason=reason)
    session.flush()
    return True


def reject(session: Session, nomination_id: int, *, decided_by: int, reason: str, now: dt.datetime) -> bool:
    """不予纳入: the nomination is closed with the senior manager's reason. False when it was closed before."""
    nomination = get_nomination(session, nomination_id)
    if nomination.status != "open":
        return False
    nomination.status, nomination.closed_at, nomination.outcome_reason = REJECTED, now, reason
    record_event(session, nomination_id, "rejected", "decision", f"staff:{decided_by}", now, reason=reason)
    session.flush()
    return True


def tell_member(
    session: Session, nomination: KeyAccountNomination, role: TeamRole, person: Staff, now: dt.datetime
) -> str:
    """The internal mail telling ``person`` their place in the new key account's team (once per role and person)."""
    if not person.email:
        return "no_address"
    customer = nomination.customer
    try:
        enqueue(
            session,
            MessageType.KEY_ACCOUNT_TEAM_ASSIGNMENT,
            recipient_email=person.email,
            context={
                "recipient_name": person.name,
                "customer_code": customer.code or f"C{customer.id:06d}",
                "customer_name": customer.name,
                "team_role": TEAM_ROLE_ZH[role],
            },
            dedupe_key=f"onboarding:{nomination.id}:team:{role.value}:staff:{person.id}",
            now=now,
        )
    except MessageRejected as rejected:
        return f"rejected: {rejected}"
    return "queued"


# --- missed review deadlines ---------------------------------------------------------------------------------------


def _first_with_role(session: Session, role: Role) -> Staff | None:
    return session.scalars(
        select(Staff).join(StaffRole).where(StaffRole.role == role, Staff.active.is_(True)).order_by(Staff.id)
    ).first()


def escalation_recipients(session: Session, department: str, level: int) -> list[Staff]:
    """Level 1: the supervisors of the reviewing department (every active member's active supervisor, each once; a
    department without one: a supervisor, else a senior manager); level 2 and above: a senior manager."""
    if level == 1:
        members = session.scalars(
            select(Staff)
            .join(StaffRole)
            .where(StaffRole.role == Role(department), Staff.active.is_(True))
            .order_by(Staff.id)
        ).all()
        bosses: dict[int, Staff] = {}
        for member in members:
            if member.supervisor is not None and member.supervisor.active:
                bosses.setdefault(member.supervisor.id, member.supervisor)
        if bosses:
            return list(bosses.values())
        fallback = _first_with_role(session, Role.SUPERVISOR) or _first_with_role(session, Role.SENIOR_MANAGER)
    else:
        fallback = _first_with_role(session, Role.SENIOR_MANAGER)
    return [fallback] if fallback is not None else []


def sweep(session: Session, policy: Policy, calendar: WorkCalendar, now: dt.datetime) -> list[str]:
    """Reviews past their deadline, undecided: at the deadline to the department's supervisor, one
    ``escalation.reminder_interval`` later to a senior manager; each level once (the review's ``escalation_level``
    and keyed events). Returns what fired (customer codes and departments only)."""
    fired: list[str] = []
    rows = session.scalars(
        select(OnboardingReview)
        .join(KeyAccountNomination, KeyAccountNomination.id == OnboardingReview.nomination_id)
        .where(
            OnboardingReview.decision.is_(None),
            OnboardingReview.due_at <= now,
            OnboardingReview.escalation_level < 2,
            KeyAccountNomination.status == "open",
        )
    ).all()
    for review in rows:
        second_at = calendar.deadline(review.due_at, policy.escalation.reminder_interval).due_at
        target = 2 if now >= second_at else 1
        while review.escalation_level < target:
            level = review.escalation_level + 1
            review.escalation_level = level
            people = escalation_recipients(session, review.department, level)
            mails = {str(p.id): tell_overdue(session, review, p, level, now) for p in people}
            record_event(
                session, review.nomination_id, "review_escalated", f"{review.department}:{level}", "system", now,
                department=review.department, level=level, mails=mails or {"-": "no_recipient"},
            )  # fmt: skip
            code = review.nomination.customer.code or str(review.nomination.customer_id)
            fired.append(f"{code}:review_{review.department}:escalated:{level}")
    session.flush()
    return fired


def tell_overdue(session: Session, review: OnboardingReview, person: Staff, level: int, now: dt.datetime) -> str:
    if not person.email:
        return "no_address"
    from kefu.models.policy import current_policy

    customer = review.nomination.customer
    try:
        enqueue(
            session,
            MessageType.ONBOARDING_REVIEW_OVERDUE,
            recipient_email=person.email,
            context={
                "recipient_name": person.name,
                "customer_code": customer.code or f"C{customer.id:06d}",
                "department": current_policy().roles.names.get(Role(review.department), review.department),
                "due_at": review.due_at,
            },
            urgent=True,
            dedupe_key=f"onboarding:{review.nomination_id}:overdue:{review.department}:{level}:staff:{person.id}",
            now=now,
        )
    except MessageRejected as rejected:
        return f"rejected: {rejected}"
    return "queued"


def waiting_for_reviews(session: Session) -> list[tuple[int, str]]:
    """Open nominations whose reviews are all in while their run may still wait for them: (nomination id, run id).
    The review run that decides last resumes its onboarding run; this is the mend when that resume did not land."""
    rows = session.scalars(
        select(KeyAccountNomination).where(
            KeyAccountNomination.status == "open", KeyAccountNomination.flow_run_id.is_not(None)
        )
    ).all()
    found = []
    for nomination in rows:
        decided = reviews(session, nomination.id)
        if not decided or any(r.decision is None for r in decided) or not nomination.flow_run_id:
            continue
        waits = [e.key for e in events(session, nomination.id) if e.action == "waiting" and e.data.get("internal")]
        if waits and waits[-1] not in step_outcomes(session, nomination.id):
            found.append((nomination.id, nomination.flow_run_id))
    return found


def unopened(session: Session, older_than: dt.datetime) -> list[tuple[int, str]]:
    """Open nominations whose onboarding run never started (Prefect was down when they were made)."""
    from kefu.models.people import Customer

    rows = session.execute(
        select(KeyAccountNomination.id, Customer.code, Customer.id)
        .join(Customer, Customer.id == KeyAccountNomination.customer_id)
        .where(
            KeyAccountNomination.status == "open",
            KeyAccountNomination.flow_run_id.is_(None),
            KeyAccountNomination.at <= older_than,
        )
    ).all()
    return [(nid, code or f"C{cid:06d}") for nid, code, cid in rows]


def team_candidates(session: Session) -> dict[TeamRole, list[Staff]]:
    """For each place of the team, the active staff holding its usual directory role (``TEAM_CANDIDATE_ROLES``)."""
    found: dict[TeamRole, list[Staff]] = {}
    for place, role in TEAM_CANDIDATE_ROLES.items():
        found[place] = list(
            session.scalars(
                select(Staff).join(StaffRole).where(StaffRole.role == role, Staff.active.is_(True)).order_by(Staff.id)
            )
        )
    return found
