"""Side effects of the complaint case flow, as repository functions (take the session, never commit).

Every function here is idempotent: a resumed case flow re-runs from the top (DESIGN.md §4), so each one
checks the database before it writes. Audit events carry a ``key`` in their data; a step recorded once
under a key is never recorded again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu.models.accounts import KeyAccountMember, TeamRole
from kefu.models.complaints import CaseEvent, Complaint, Milestone
from kefu.models.enums import ComplaintStatus, CustomerTier, MilestoneId, Role, Severity
from kefu.models.people import Staff, StaffRole
from kefu.models.policy import Duration, PausePolicy, Policy, Unit, current_policy
from kefu.tasks.case_notices import send_acknowledgement, send_case_notice
from kefu.tasks.case_policy import followed_policy, stamp
from kefu.worktime import PlannedMilestone, WorkCalendar, calendar_for, local_moment, plan_complaint_milestones

Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CaseNotFound(Exception):
    pass


class StepRejected(ValueError):
    """Input a step cannot accept; nothing is recorded."""


@dataclass(frozen=True)
class CaseFact:
    """Something that happened to a case, to be announced outside Kefu once its unit of work has committed.

    ``event``: the announcement's name after ``kefu.case.`` (``registered``, ``step.completed``,
    ``milestone.warning``, ``milestone.breached``, ``escalated``, ``reopened``, ``closed``); ``key``: the keyed
    audit event it stands for (``action/key``, once per case); ``labels``: ids, severity, milestone, due time,
    step or level only — never a name, phone, address or the complaint's words.
    """

    case_no: str
    event: str
    key: str
    at: dt.datetime
    labels: dict[str, str] = dataclasses.field(default_factory=dict)


FACTS = "kefu.case_facts"


def case_facts(session: Session) -> list[CaseFact]:
    """The facts this session recorded, in order (announced by whoever commits it: ``kefu.engine.events``)."""
    facts: list[CaseFact] = session.info.setdefault(FACTS, [])
    return facts


def yes(value: bool) -> str:
    return "true" if value else "false"


def _iso(value: dt.datetime) -> str:
    return local_moment(value).isoformat(timespec="seconds")


def record_fact(
    session: Session,
    complaint: Complaint,
    event: str,
    key: str,
    at: dt.datetime,
    *,
    milestone: Milestone | None = None,
    labels: Mapping[str, str] | None = None,
) -> None:
    """Note a fact written in this session (call it only when the keyed audit event was written now)."""
    found = {"kefu.severity": complaint.severity.value}
    if milestone is not None:
        found["kefu.milestone"] = milestone.milestone.value
        if milestone.due_at is not None:
            found["kefu.due_at"] = _iso(milestone.due_at)
    found.update(labels or {})
    case_facts(session).append(CaseFact(complaint.case_no, event, key, at, found))


def get_case(session: Session, case_no: str) -> Complaint:
    complaint = session.scalars(select(Complaint).where(Complaint.case_no == case_no)).one_or_none()
    if complaint is None:
        raise CaseNotFound(case_no)
    return complaint


def _event_keys(session: Session, complaint_id: int, action: str) -> set[str]:
    rows = session.scalars(
        select(CaseEvent).where(CaseEvent.complaint_id == complaint_id, CaseEvent.action == action)
    ).all()
    return {str(row.data.get("key")) for row in rows}


def record_event(
    session: Session, complaint: Complaint, action: str, key: str, actor: str, at: dt.datetime, **data: Any
) -> bool:
    """Append an audit event once per (action, key). Returns whether it was written now."""
    if key in _event_keys(session, complaint.id, action):
        return False
    session.add(CaseEvent(complaint_id=complaint.id, actor=actor, action=action, data={"key": key, **data}, at=at))
    session.flush()
    return True


def _staff_with_role(session: Session, role: Role) -> Staff | None:
    return session.scalars(
        select(Staff).join(StaffRole).where(StaffRole.role == role, Staff.active.is_(True)).order_by(Staff.id)
    ).first()


def recipient_for(session: Session, complaint: Complaint, level: str) -> Staff | None:
    """The person at one rung of the ladder (owner → supervisor → senior manager), or the key account's project
    manager (``project_manager``)."""
    owner = complaint.owner
    if level == "owner":
        return owner
    if level == "project_manager":
        return key_account_member(session, complaint, TeamRole.PROJECT_MANAGER)
    if level == "supervisor":
        if owner is not None and owner.supervisor is not None:
            return owner.supervisor
        return _staff_with_role(session, Role.SUPERVISOR)
    return _staff_with_role(session, Role.SENIOR_MANAGER)


def notify(
    session: Session,
    complaint: Complaint,
    *,
    level: str,
    reason: str,
    key: str,
    at: dt.datetime,
    contact_due: tuple[dt.datetime, dt.datetime] | None = None,
    **data: Any,
) -> bool:
    """The one place case notices to staff leave from: a case event (once per key) and the mail it queues.

    Only ids, roles and the mail's outcome are recorded; names and addresses stay in the people tables.
    """
    if key in _event_keys(session, complaint.id, "notified"):
        return False
    person = recipient_for(session, complaint, level)
    mail = send_case_notice(
        session,
        complaint,
        person,
        reason=reason,
        key=key,
        at=at,
        milestone=data.get("milestone"),
        contact_due=contact_due,
    )
    return record_event(
        session,
        complaint,
        "notified",
        key,
        "system",
        at,
        level=level,
        recipient_staff_id=person.id if person else None,
        reason=reason,
        mail=mail,
        **data,
    )


def is_key_account(complaint: Complaint) -> bool:
    return complaint.customer is not None and complaint.customer.tier is CustomerTier.KEY


def key_account_member(session: Session, complaint: Complaint, role: TeamRole) -> Staff | None:
    """The active member of the case's key-account team in ``role`` (none for a customer outside the programme)."""
    if not is_key_account(complaint) or complaint.customer is None:
        return None
    return session.scalars(
        select(Staff)
        .join(KeyAccountMember, KeyAccountMember.staff_id == Staff.id)
        .where(
            KeyAccountMember.customer_id == complaint.customer.id,
            KeyAccountMember.team_role == role,
            Staff.active.is_(True),
        )
    ).first()


def tell_key_account_manager(session: Session, complaint: Complaint, now: dt.datetime) -> bool:
    """Issue 15 (what key-account status changes): the key account's project manager hears of every important or
    major complaint — at registration, and again if a person raises it to major later; once per severity."""
    if complaint.severity is Severity.GENERAL:
        return False
    if key_account_member(session, complaint, TeamRole.PROJECT_MANAGER) is None:
        return False
    key = f"key-account:{complaint.severity.value}"
    return notify(session, complaint, level="project_manager", reason="key_account", key=key, at=now)


def propose_severity(policy: Policy, complaint: Complaint) -> tuple[Severity, list[str]]:
    """The policy's proposal for this stored complaint (``ComplaintPolicy.propose_severity``), with the reasons."""
    return policy.complaints.propose_severity(
        complaint.content, complaint.order_amount, key_account=is_key_account(complaint), urgent=complaint.urgent
    )


def plan_milestones(session: Session, complaint: Complaint, policy: Policy, calendar: WorkCalendar) -> None:
    """Create or recompute the case's milestones from receipt time. Met milestones are never moved.

    The milestones follow the policy stamped on the case (``case_policy.followed_policy``), not a policy file
    edited since: only ``kefu policy replan`` moves an open case to another policy."""
    followed = followed_policy(session, complaint, policy)
    if followed is not policy:
        policy, calendar = followed, calendar_for(followed)
    plan = plan_complaint_milestones(
        policy,
        calendar,
        complaint.severity,
        complaint.received_at,
        key_account=is_key_account(complaint),
        resolved_at=complaint.resolved_at,
        promised_at=complaint.promised_resolution_at,
    )
    existing = {m.milestone: m for m in complaint.milestones}
    wanted = {p.id for p in plan.milestones}
    for milestone_id, row in existing.items():
        if milestone_id not in wanted and row.met_at is None:
            complaint.milestones.remove(row)
    for planned in plan.milestones:
        current = existing.get(planned.id)
        if current is not None and current.paused_intervals:
            planned = with_pauses(calendar, planned, current.paused_intervals)
        if current is None:
            complaint.milestones.append(
                Milestone(
                    milestone=planned.id,
                    starts_at=planned.starts_at,
                    due_at=planned.due_at,
                    unit=planned.unit,
                    target=str(planned.target),
                    provisional=planned.provisional,
                    explanation=planned.explanation,
                    paused_intervals=[],
                )
            )
        elif current.met_at is None and (current.due_at != planned.due_at or current.starts_at != planned.starts_at):
            current.starts_at, current.due_at = planned.starts_at, planned.due_at
            current.unit, current.target = planned.unit, str(planned.target)
            current.provisional, current.explanation = planned.provisional, planned.explanation
            current.warned_at = current.breached_at = None
            current.escalation_level = 0
    session.flush()


# --- Waiting on the customer: the clock stops (issue 13) ------------------------------------------------------


def paused_hours(intervals: Iterable[Mapping[str, Any]]) -> float:
    """The working hours the ended pauses of a milestone count (each at most the policy's longest pause)."""
    return sum(float(i.get("working_hours") or 0) for i in intervals if i.get("until") is not None)


def with_pauses(calendar: WorkCalendar, planned: PlannedMilestone, intervals: list[dict[str, Any]]) -> PlannedMilestone:
    """The planned milestone moved on by the paused working time of its ended pauses, explained."""
    hours = paused_hours(intervals)
    if hours <= 0 or planned.due_at is None:
        return planned
    due = calendar.due_at(planned.due_at, Duration(amount=hours, unit=Unit.WORKING_HOURS))
    note = f"；等待客户期间暂停计时 {hours:g} 个工作小时，顺延至 {due:%Y-%m-%d %H:%M}"
    return dataclasses.replace(planned, due_at=due, explanation=planned.explanation + note)


def open_pause(complaint: Complaint) -> dict[str, Any] | None:
    """The case's pause under way (its first open interval), if any."""
    for row in complaint.milestones:
        for interval in row.paused_intervals or []:
            if interval.get("until") is None:
                return interval
    return None


def _may_pause(policy: Policy, complaint: Complaint, person: Staff) -> PausePolicy:
    pauses = policy.complaints.pauses
    if pauses is None:
        raise StepRejected("政策未允许暂停计时 / the policy has no complaints.pauses")
    if person.id != complaint.owner_id and not person.roles & set(pauses.roles):
        names = "、".join(policy.roles.names[r] for r in pauses.roles)
        raise StepRejected(f"只有本案负责人或{names}可以暂停计时 / staff {person.login or person.id} may not pause")
    return pauses


def pause_case(
    session: Session, case_no: str, policy: Policy, calendar: WorkCalendar, *, by: Staff, reason: str, now: dt.datetime
) -> list[MilestoneId]:
    """等待客户: stop the clock of the case's open milestones the policy lets pause, with who and why (audited).

    Raises ``StepRejected`` (nothing changed) without a reason, for a closed or already paused case, someone who
    may not, or a case with no open milestone that may pause."""
    complaint = get_case(session, case_no)
    if not reason.strip():
        raise StepRejected("暂停计时须填写原因 / a pause needs a reason")
    if complaint.status is ComplaintStatus.CLOSED:
        raise StepRejected(f"投诉 {case_no} 已结案 / case {case_no} is closed")
    if open_pause(complaint) is not None:
        raise StepRejected(f"投诉 {case_no} 已在等待客户 / case {case_no} is already paused")
    pauses = _may_pause(policy, complaint, by)
    # A deadline already missed stays missed: stopping its clock now would move it on and undo the breach.
    rows = [
        row
        for row in complaint.milestones
        if row.met_at is None and row.due_at is not None and row.due_at > now and row.milestone in pauses.milestones
    ]
    if not rows:
        raise StepRejected(
            f"投诉 {case_no} 没有可暂停的期限（已超时的期限不能暂停） / case {case_no} has no open milestone that may "
            "pause (one already overdue may not)"
        )
    number = len(_event_keys(session, complaint.id, "pause_started")) + 1
    counts_until = calendar.due_at(now, pauses.longest)
    interval = {
        "pause": number,
        "from": _iso(now),
        "until": None,
        "counts_until": _iso(counts_until),
        "by": f"staff:{by.id}",
        "reason": reason.strip(),
    }
    for row in rows:
        row.paused_intervals = [*(row.paused_intervals or []), dict(interval)]
    record_event(
        session,
        complaint,
        "pause_started",
        f"pause-{number}",
        f"staff:{by.id}",
        now,
        reason=reason.strip(),
        milestones=[row.milestone.value for row in rows],
        counts_until=_iso(counts_until),
    )
    session.flush()
    return [row.milestone for row in rows]


def end_pause(
    session: Session,
    case_no: str,
    policy: Policy,
    calendar: WorkCalendar,
    *,
    actor: str,
    note: str,
    now: dt.datetime,
    by: Staff | None = None,
) -> float:
    """The customer answered (or the longest pause is reached, ``actor`` "system"): the clock runs again and the
    paused working time (up to the policy's longest pause) is added to the paused milestones. Returns the hours."""
    complaint = get_case(session, case_no)
    current = open_pause(complaint)
    if current is None:
        raise StepRejected(f"投诉 {case_no} 没有进行中的暂停 / case {case_no} is not paused")
    if by is not None:
        _may_pause(policy, complaint, by)
    start = dt.datetime.fromisoformat(str(current["from"]))
    counted_until = min(now, dt.datetime.fromisoformat(str(current["counts_until"])))
    hours = round(calendar.working_time_between(start, counted_until).total_seconds() / 3600, 4)
    for row in complaint.milestones:
        row.paused_intervals = [
            {**i, "until": _iso(now), "ended_by": actor, "note": note, "working_hours": hours}
            if i.get("until") is None
            else i
            for i in row.paused_intervals or []
        ]
    record_event(
        session, complaint, "pause_ended", f"pause-{current['pause']}", actor, now, note=note, working_hours=hours
    )
    session.flush()
    plan_milestones(session, complaint, policy, calendar)
    return hours


def register_case(
    session: Session, case_no: str, policy: Policy, calendar: WorkCalendar, *, owner_id: int | None, now: dt.datetime
) -> Complaint:
    """Idempotent: the first receiver owns the case (首问责任制); milestones come from the policy."""
    complaint = get_case(session, case_no)
    if complaint.policy_hash is None:
        stamp(session, complaint, policy)
    if complaint.owner_id is None and owner_id is not None:
        complaint.owner_id = owner_id
        session.flush()
        session.refresh(complaint, ["owner"])
    if not complaint.milestones:
        plan_milestones(session, complaint, policy, calendar)
    if record_event(session, complaint, "registered", "register", "system", now, owner_staff_id=complaint.owner_id):
        urgent = {"kefu.urgent": yes(complaint.urgent)}
        record_fact(session, complaint, "registered", "registered/register", now, labels=urgent)
        notice = send_acknowledgement(session, complaint, now)
        record_event(session, complaint, "acknowledged", "ack", "system", now, **notice)
    if complaint.urgent:
        notify(session, complaint, level="supervisor", reason="urgent", key="urgent", at=now)
    tell_key_account_manager(session, complaint, now)
    return complaint


def hand_over(
    session: Session, case_no: str, policy: Policy, *, to: Staff, by: Staff, reason: str, now: dt.datetime
) -> Complaint:
    """首问责任制: the owner keeps the case until an explicit handover — by the owner, or by a role the policy's
    ``complaints.ownership.hand_over`` lists — to an active staff member, with a reason; audited (``handed_over``).

    Raises ``StepRejected`` (nothing changed) for a closed case, an inactive recipient, the current owner as the
    recipient, no reason, or someone who may not hand the case over."""
    complaint = get_case(session, case_no)
    if not reason.strip():
        raise StepRejected("移交须填写理由 / a handover needs a reason")
    if complaint.status is ComplaintStatus.CLOSED:
        raise StepRejected(f"投诉 {case_no} 已结案，不能移交 / case {case_no} is closed")
    if not to.active:
        raise StepRejected(f"员工 {to.login or to.id} 已停用 / staff {to.login or to.id} is inactive")
    if to.id == complaint.owner_id:
        raise StepRejected(
            f"员工 {to.login or to.id} 已是本案负责人 / staff {to.login or to.id} already owns {case_no}"
        )
    allowed = policy.complaints.ownership.hand_over
    if by.id != complaint.owner_id and not by.roles & set(allowed):
        names = "、".join(policy.roles.names[r] for r in allowed)
        raise StepRejected(
            f"只有本案负责人或{names}可以移交 / only the owner or {', '.join(r.value for r in allowed)} may hand "
            f"{case_no} over"
        )
    previous = complaint.owner_id
    count = len(_event_keys(session, complaint.id, "handed_over"))
    complaint.owner_id = to.id
    record_event(
        session,
        complaint,
        "handed_over",
        f"handover-{count + 1}",
        f"staff:{by.id}",
        now,
        from_staff_id=previous,
        to_staff_id=to.id,
        reason=reason.strip(),
    )
    session.refresh(complaint, ["owner"])
    return complaint


def check_classification(
    policy: Policy, complaint: Complaint, severity: Severity | None, reason: str | None
) -> tuple[Severity, Severity, list[str]]:
    """The rules' proposal, the severity chosen (none given: the proposal) and why the rules proposed it.

    Raises ``StepRejected`` for an override without a reason (the policy wants every override explained).
    """
    proposed, why = propose_severity(policy, complaint)
    chosen = severity or proposed
    if chosen is not proposed and not (reason and reason.strip()):
        names = policy.complaints.severities
        raise StepRejected(
            f"将规则建议的{names[proposed].name}改定为{names[chosen].name}须填写理由 / "
            f"overriding the proposed severity '{proposed.value}' with '{chosen.value}' needs a reason"
        )
    return proposed, chosen, why


def classify_case(
    session: Session,
    case_no: str,
    policy: Policy,
    calendar: WorkCalendar,
    *,
    severity: Severity | None,
    actor: str,
    reason: str | None,
    now: dt.datetime,
) -> Complaint:
    """A person confirms the rules' proposal or overrides it with a reason (audited); milestones follow."""
    complaint = get_case(session, case_no)
    proposed, chosen, why = check_classification(policy, complaint, severity, reason)
    if "classify" in _event_keys(session, complaint.id, "classified"):
        return complaint
    complaint.severity = chosen
    complaint.status = ComplaintStatus.CLASSIFIED
    plan_milestones(session, complaint, policy, calendar)
    record_event(
        session,
        complaint,
        "classified",
        "classify",
        actor,
        now,
        proposed=proposed.value,
        rules=why,
        severity=chosen.value,
        override=chosen is not proposed,
        reason=reason,
    )
    tell_key_account_manager(session, complaint, now)
    return complaint


# The staff an answer names, by field; the task force's leader must also be an active senior manager.
STAFF_FIELDS = ("actor_staff_id", "leader_staff_id", "member_staff_ids")
LEADER_ROLE = {"leader_staff_id": Role.SENIOR_MANAGER}


def check_answer_staff(
    session: Session, answer: Mapping[str, Any], step: str | None = None, policy: Policy | None = None
) -> None:
    """Every staff id a step's answer names must be a known, active staff member (the task force's leader an active
    senior manager), and with ``step`` the person answering (``actor_staff_id``) must hold a role the policy lets
    answer it: checked before anything is recorded, by the case flow and by ``kefu step submit`` alike.

    Raises ``StepRejected`` naming the first id that fails (an unknown id would otherwise fail the case run on a
    foreign key).
    """
    for field in STAFF_FIELDS:
        value = answer.get(field)
        ids = [] if value is None else list(value) if isinstance(value, list | tuple) else [value]
        for staff_id in ids:
            staff = session.get(Staff, staff_id) if isinstance(staff_id, int) else None
            if staff is None or not staff.active:
                raise StepRejected(
                    f"员工编号 {staff_id} 不存在或已停用 / {field}: staff id {staff_id} is unknown or inactive"
                )
            role = LEADER_ROLE.get(field)
            if role is not None and role not in staff.roles:
                raise StepRejected(
                    f"员工编号 {staff_id} 不是高级经理 / {field}: staff id {staff_id} is not a senior manager "
                    f"({role.value})"
                )
            if field == "actor_staff_id" and step is not None:
                check_step_role(staff, step, policy or current_policy())


def check_step_role(person: Staff, step: str, policy: Policy) -> None:
    """The policy's ``roles.complaint_steps``: ``person`` may answer ``step`` only with one of the roles listed."""
    allowed = policy.roles.may_answer(step)
    if person.roles & set(allowed):
        return
    names = policy.roles.names
    held = "、".join(names[r] for r in sorted(person.roles)) or "无角色"
    may = "、".join(names[r] for r in allowed) or "无人"
    raise StepRejected(
        f"员工 {person.login or person.id}（{held}）无权处理此步骤，可处理的角色：{may} / actor_staff_id: staff "
        f"{person.login or person.id} (roles: {', '.join(sorted(r.value for r in person.roles)) or 'none'}) may not "
        f"answer step '{step}' (roles that may: {', '.join(r.value for r in allowed) or 'none'})"
    )


def step_outcomes(session: Session, case_no: str, steps: Iterable[str]) -> dict[str, str]:
    """What the case recorded for each answered key of its ``steps`` (names): ``"refused"`` or ``"completed"``
    (a refusal wins: a case that recorded both under one key refused that answer)."""
    complaint = get_case(session, case_no)
    rows = session.scalars(select(CaseEvent).where(CaseEvent.complaint_id == complaint.id)).all()
    names = set(steps)
    outcomes: dict[str, str] = {}
    for row in rows:
        key = str(row.data.get("key"))
        if row.action == "step_refused":
            outcomes[key] = "refused"
        elif row.action in names and outcomes.get(key) != "refused":
            outcomes[key] = "completed"
    return outcomes


def refuse_step(
    session: Session, case_no: str, step: str, key: str, reason: str, answer: dict[str, Any] | None = None
) -> None:
    """An answer the policy cannot accept (e.g. an override without a reason, an unknown staff id): the refusal is
    recorded with the answer (``kefu recover`` gives it back to a new run, which refuses it again), and the step
    is asked again."""
    complaint = get_case(session, case_no)
    data = {} if answer is None else {"answer": answer}
    record_event(session, complaint, "step_refused", key, "system", system_clock(), step=step, reason=reason, **data)


def meet_milestone(session: Session, complaint: Complaint, milestone: MilestoneId, at: dt.datetime) -> None:
    for row in complaint.milestones:
        if row.milestone is milestone and row.met_at is None:
            row.met_at = at
    session.flush()


def complete_step(
    session: Session,
    case_no: str,
    step: str,
    key: str,
    actor: str,
    now: dt.datetime,
    *,
    meets: tuple[MilestoneId, ...] = (),
    status: ComplaintStatus | None = None,
    data: dict[str, Any] | None = None,
) -> bool:
    """Record a completed human step once (by its suspend key), meet its milestones, move the status."""
    complaint = get_case(session, case_no)
    written = record_event(session, complaint, step, key, actor, now, **(data or {}))
    if written:
        for milestone in meets:
            meet_milestone(session, complaint, milestone, now)
        if status is not None:
            complaint.status = status
        session.flush()
        met = ",".join(m.milestone.value for m in complaint.milestones if m.milestone in meets and m.met_at == now)
        labels = {"kefu.step": step, "kefu.step.key": key, "kefu.status": complaint.status.value}
        if met:
            labels["kefu.milestone"] = met
        record_fact(session, complaint, "step.completed", f"{step}/{key}", now, labels=labels)
    return written


def _event_at(session: Session, complaint: Complaint, action: str, key: str) -> dt.datetime | None:
    rows = session.scalars(
        select(CaseEvent).where(CaseEvent.complaint_id == complaint.id, CaseEvent.action == action)
    ).all()
    return next((row.at for row in rows if row.data.get("key") == key), None)


def promise_resolution(
    session: Session, case_no: str, policy: Policy, calendar: WorkCalendar, promised_at: dt.datetime
) -> None:
    """General complaints: the completion time promised in the solution becomes the resolution milestone."""
    complaint = get_case(session, case_no)
    if complaint.promised_resolution_at != promised_at:
        complaint.promised_resolution_at = promised_at
        plan_milestones(session, complaint, policy, calendar)


def mark_resolved(session: Session, case_no: str, policy: Policy, calendar: WorkCalendar, round_no: int) -> None:
    """The resolution time is the recorded resolve step's; the callback clock starts there."""
    complaint = get_case(session, case_no)
    resolved = _event_at(session, complaint, "resolve", f"resolve-{round_no}")
    if resolved is not None and complaint.resolved_at is None:
        complaint.resolved_at = resolved
        plan_milestones(session, complaint, policy, calendar)


def reopen_case(session: Session, case_no: str, reopen_no: int, now: dt.datetime) -> None:
    """An unsatisfied customer reopens the case to investigation (counted once per reopen)."""
    complaint = get_case(session, case_no)
    if record_event(session, complaint, "reopened", f"reopen-{reopen_no}", "system", now, reopen=reopen_no):
        count = {"kefu.reopen": str(reopen_no)}
        record_fact(session, complaint, "reopened", f"reopened/reopen-{reopen_no}", now, labels=count)
        complaint.reopen_count = reopen_no
        complaint.resolved_at = None
        complaint.status = ComplaintStatus.INVESTIGATING
        for row in list(complaint.milestones):
            if row.milestone is MilestoneId.CALLBACK:
                complaint.milestones.remove(row)
        session.flush()


def close_case(session: Session, case_no: str, now: dt.datetime) -> None:
    complaint = get_case(session, case_no)
    if record_event(session, complaint, "closed", "close", "system", now):
        count = {"kefu.reopen": str(complaint.reopen_count)}
        record_fact(session, complaint, "closed", "closed/close", now, labels=count)
        complaint.status = ComplaintStatus.CLOSED
        complaint.closed_at = now
        session.flush()


RECOVERED = "recovered"


def current_run_id(session: Session, complaint_id: int) -> str | None:
    """The case's run since its latest recovery (``kefu recover``), if it was ever recovered.

    A recovered run waits at the step the lost run waited at, under the same key, whose "waiting" event (keyed,
    append-only) still names the lost run: the recovery event names the run that now holds the case.
    """
    row = session.scalars(
        select(CaseEvent)
        .where(CaseEvent.complaint_id == complaint_id, CaseEvent.action == RECOVERED)
        .order_by(CaseEvent.id.desc())
        .limit(1)
    ).first()
    return None if row is None else str(row.data["flow_run_id"])


def waiting_steps(session: Session, case_no: str | None = None) -> list[dict[str, Any]]:
    """Steps a case run is suspended on (waiting, not yet completed), with the case's open deadlines."""
    query = select(CaseEvent, Complaint).join(Complaint, Complaint.id == CaseEvent.complaint_id)
    query = query.where(CaseEvent.action == "waiting")
    if case_no is not None:
        query = query.where(Complaint.case_no == case_no)
    result = []
    for event, complaint in session.execute(query.order_by(CaseEvent.id)).all():
        step, key = str(event.data["step"]), str(event.data["key"])
        if key in _event_keys(session, complaint.id, step) or key in _event_keys(session, complaint.id, "step_refused"):
            continue
        run_id = current_run_id(session, complaint.id) or event.data["flow_run_id"]
        open_deadlines = {
            m.milestone.value: m.due_at.isoformat() for m in complaint.milestones if m.met_at is None and m.due_at
        }
        result.append(
            {
                "case_no": complaint.case_no,
                "step": step,
                "key": key,
                "flow_run_id": run_id,
                "since": event.at.isoformat(),
                "deadlines": open_deadlines,
            }
        )
    return result
