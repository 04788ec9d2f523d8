"""What a changed policy would do to the open cases, and the explicit, audited re-plan (``kefu policy check``,
``kefu policy replan``): an open case keeps the policy stamped on it until a person re-plans it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu.models.complaints import Complaint
from kefu.models.enums import ComplaintStatus
from kefu.models.people import Staff
from kefu.models.policy import Policy
from kefu.tasks.case_policy import policy_hash, stamp
from kefu.tasks.casework import StepRejected, is_key_account, plan_milestones, record_event
from kefu.worktime import calendar_for, local_time, plan_complaint_milestones


@dataclass(frozen=True)
class CaseChange:
    """An open case that follows another policy than ``policy``: its open deadlines that would move (milestone ->
    (due now, due under the policy); None: no such milestone / no time yet)."""

    case_no: str
    from_hash: str | None
    moves: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)


def _when(value: dt.datetime | None) -> str | None:
    return None if value is None else local_time(value)


def open_cases_changed(session: Session, policy: Policy) -> list[CaseChange]:
    """Every open case not stamped with ``policy``, and which of its open deadlines ``policy`` would move."""
    digest, calendar = policy_hash(policy), calendar_for(policy)
    query = select(Complaint).where(Complaint.status != ComplaintStatus.CLOSED).order_by(Complaint.case_no)
    changes = []
    for complaint in session.scalars(query):
        if complaint.policy_hash == digest:
            continue
        plan = plan_complaint_milestones(
            policy,
            calendar,
            complaint.severity,
            complaint.received_at,
            key_account=is_key_account(complaint),
            resolved_at=complaint.resolved_at,
            promised_at=complaint.promised_resolution_at,
        )
        now_due = {m.milestone.value: m.due_at for m in complaint.milestones if m.met_at is None}
        met = {m.milestone.value for m in complaint.milestones if m.met_at is not None}
        then_due = {m.id.value: m.due_at for m in plan.milestones if m.id.value not in met}
        moves = {
            milestone: (_when(now_due.get(milestone)), _when(then_due.get(milestone)))
            for milestone in sorted(set(now_due) | set(then_due))
            if milestone not in now_due
            or milestone not in then_due
            or _when(now_due[milestone]) != _when(then_due[milestone])
        }
        changes.append(CaseChange(complaint.case_no, complaint.policy_hash, moves))
    return changes


def replan_open_cases(session: Session, policy: Policy, person: Staff, now: dt.datetime) -> list[CaseChange]:
    """Move every open case to ``policy`` and re-plan its open deadlines; one audit event per case, with who did it,
    the policies' hashes and the deadlines that moved. Raises ``StepRejected`` (nothing changed) for someone whose
    roles the policy's ``roles.policy_replan`` does not list."""
    allowed = policy.roles.policy_replan
    if not person.roles & set(allowed):
        raise StepRejected(
            f"重新排期须由{'、'.join(policy.roles.names[r] for r in allowed)}执行 / re-planning open cases needs one "
            f"of the roles {', '.join(r.value for r in allowed)}"
        )
    changes = open_cases_changed(session, policy)
    digest, calendar = policy_hash(policy), calendar_for(policy)
    for change in changes:
        complaint = session.scalars(select(Complaint).where(Complaint.case_no == change.case_no)).one()
        stamp(session, complaint, policy)
        plan_milestones(session, complaint, policy, calendar)
        record_event(
            session,
            complaint,
            "policy_replanned",
            f"replan-{digest}",
            f"staff:{person.id}",
            now,
            from_policy=change.from_hash,
            to_policy=digest,
            version=policy.version,
            moved={k: list(v) for k, v in change.moves.items()},
        )
    return changes
