"""Key-account service plans' side effects (seed 001 §二.2 服务方案制定: 需求与初步方案 → 各部门共同完善 →
高层审批 → 签订服务协议), each keyed in the database so a replayed flow writes nothing twice: the audit trail, the
departments' parts (opened once, recorded once), the senior manager's decision or send-back, the agreement, the
missed-part escalations and the renewal reminder. The onboarding's helpers are reused (staff checks, who a missed
deadline climbs to, the clock). Repository functions: they take the session and never commit."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu.models.accounts import TeamRole
from kefu.models.enums import Role
from kefu.models.people import Customer, Staff
from kefu.models.policy import Policy
from kefu.models.service_plans import ServiceAgreement, ServicePlan, ServicePlanEvent, ServicePlanPart
from kefu.notifications.messages import MessageType
from kefu.notifications.outbox import MessageRejected, enqueue
from kefu.tasks.onboarding import escalation_recipients, system_clock
from kefu.worktime import WorkCalendar

__all__ = ["system_clock"]

OPEN, APPROVED, SIGNED = "open", "approved", "signed"
STATUS_ZH = {OPEN: "制定中", APPROVED: "已批准，待签订协议", SIGNED: "已签订服务协议"}


class PlanRefused(ValueError):
    """A plan change or answer that cannot be accepted; the message (zh-CN / English) says why."""


def code_of(customer: Customer) -> str:
    return customer.code or f"C{customer.id:06d}"


def get_plan(session: Session, plan_id: int) -> ServicePlan:
    row = session.get(ServicePlan, plan_id)
    if row is None:
        raise PlanRefused(f"没有服务方案 {plan_id} / no service plan {plan_id}")
    return row


def plan_for_code(session: Session, code: str) -> ServicePlan | None:
    """The customer's latest plan, by customer code."""
    return session.scalars(
        select(ServicePlan)
        .join(Customer, Customer.id == ServicePlan.customer_id)
        .where(Customer.code == code)
        .order_by(ServicePlan.id.desc())
    ).first()


def project_manager(session: Session, customer_id: int) -> Staff | None:
    from kefu.tasks.accounts import team_members

    return next((p for r, p in team_members(session, customer_id) if r is TeamRole.PROJECT_MANAGER), None)


def open_plan(session: Session, customer: Customer, now: dt.datetime) -> tuple[ServicePlan, bool]:
    """The key account's plan in the making: the open one if there is one (False), else a new one (True). Only a key
    account with a project manager gets a plan (the project manager records the needs and the draft)."""
    if not customer.is_key_account:
        raise PlanRefused(f"客户 {code_of(customer)} 不是重点客户 / customer {code_of(customer)} is not a key account")
    if project_manager(session, customer.id) is None:
        raise PlanRefused(
            f"客户 {code_of(customer)} 没有项目经理 / customer {code_of(customer)} has no project manager "
            "(kefu account assign CODE project_manager STAFF)"
        )
    existing = session.scalars(
        select(ServicePlan).where(ServicePlan.customer_id == customer.id, ServicePlan.status != SIGNED)
    ).first()
    if existing is not None:
        return existing, False
    plan = ServicePlan(customer_id=customer.id, status=OPEN, at=now)
    session.add(plan)
    session.flush()
    return plan, True


# --- the audit trail -----------------------------------------------------------------------------------------------


def record_event(
    session: Session, plan_id: int, action: str, key: str, actor: str, at: dt.datetime, **data: Any
) -> bool:
    """One audit row per (action, key): False when it is there already (a replay)."""
    existing = session.scalar(
        select(ServicePlanEvent.id).where(
            ServicePlanEvent.plan_id == plan_id, ServicePlanEvent.action == action, ServicePlanEvent.key == key
        )
    )
    if existing is not None:
        return False
    session.add(ServicePlanEvent(plan_id=plan_id, action=action, key=key, actor=actor, at=at, data=data))
    session.flush()
    return True


def events(session: Session, plan_id: int) -> list[ServicePlanEvent]:
    return list(
        session.scalars(
            select(ServicePlanEvent).where(ServicePlanEvent.plan_id == plan_id).order_by(ServicePlanEvent.id)
        )
    )


def step_outcomes(session: Session, plan_id: int) -> dict[str, str]:
    """Each answered key: ``"completed"`` or ``"refused"`` (a refusal wins)."""
    outcomes: dict[str, str] = {}
    for row in events(session, plan_id):
        if row.action == "step_refused":
            outcomes[row.key] = "refused"
        elif row.action == "step_completed" and outcomes.get(row.key) != "refused":
            outcomes[row.key] = "completed"
    return outcomes


def waiting_steps(session: Session, code: str | None = None) -> list[dict[str, Any]]:
    """Plan steps a run is suspended on (the shape of ``casework.waiting_steps``; ``case_no`` is the customer's code):
    plans not signed yet, internal waits left out."""
    query = (
        select(ServicePlanEvent, ServicePlan, Customer)
        .join(ServicePlan, ServicePlan.id == ServicePlanEvent.plan_id)
        .join(Customer, Customer.id == ServicePlan.customer_id)
        .where(ServicePlanEvent.action == "waiting", ServicePlan.status != SIGNED)
    )
    result: list[dict[str, Any]] = []
    answered: dict[int, dict[str, str]] = {}
    for event, plan, customer in session.execute(query.order_by(ServicePlanEvent.id)).all():
        if event.data.get("internal") or (code is not None and code != code_of(customer)):
            continue
        outcomes = answered.setdefault(plan.id, step_outcomes(session, plan.id))
        if event.key in outcomes:
            continue
        deadlines: dict[str, str] = {}
        department = event.data.get("department")
        if department:
            part = part_of(session, plan.id, str(department))
            if part is not None and part.part is None:
                deadlines[f"plan_part_{department}"] = part.due_at.isoformat()
        result.append(
            {
                "case_no": code_of(customer),
                "step": str(event.data["step"]),
                "key": event.key,
                "flow_run_id": str(event.data["flow_run_id"]),
                "since": event.at.isoformat(),
                "deadlines": deadlines,
            }
        )
    return result


# --- the project manager's needs and draft, the departments' parts -------------------------------------------------


def record_draft(session: Session, plan_id: int, *, needs: str, draft: str) -> None:
    plan = get_plan(session, plan_id)
    plan.needs, plan.draft = needs, draft
    session.flush()


def part_of(session: Session, plan_id: int, department: str) -> ServicePlanPart | None:
    return session.scalars(
        select(ServicePlanPart).where(ServicePlanPart.plan_id == plan_id, ServicePlanPart.department == department)
    ).first()


def parts(session: Session, plan_id: int) -> list[ServicePlanPart]:
    return list(
        session.scalars(select(ServicePlanPart).where(ServicePlanPart.plan_id == plan_id).order_by(ServicePlanPart.id))
    )


def open_parts(
    session: Session, plan_id: int, policy: Policy, calendar: WorkCalendar, now: dt.datetime
) -> list[ServicePlanPart]:
    """One part per department the policy lists, due by its deadline from ``now``; one opened before keeps its own."""
    rows = []
    for department, rule in policy.key_accounts.service_plan.parts.items():
        row = part_of(session, plan_id, department.value)
        if row is None:
            due = calendar.deadline(now, rule.deadline).due_at
            row = ServicePlanPart(plan_id=plan_id, department=department.value, started_at=now, due_at=due)
            session.add(row)
            session.flush()
        rows.append(row)
    return rows


def pending_departments(session: Session, plan_id: int) -> list[str]:
    """Departments whose part is not in yet (every department until the parts are opened)."""
    rows = parts(session, plan_id)
    return [r.department for r in rows if r.part is None] if rows else ["*"]


def record_part(
    session: Session, plan_id: int, department: str, *, part: str, author_id: int, now: dt.datetime
) -> bool:
    """The department's part, once: False when it was recorded before (a replayed part run)."""
    row = part_of(session, plan_id, department)
    if row is None:
        raise PlanRefused(f"服务方案 {plan_id} 没有{department}部分 / no {department} part")
    if row.part is not None:
        return False
    row.part, row.author_id, row.submitted_at = part, author_id, now
    session.flush()
    return True


# --- the decision and the agreement --------------------------------------------------------------------------------


def send_back(session: Session, plan_id: int, round_no: int, *, by: int, reason: str, now: dt.datetime) -> bool:
    """退回项目经理修改 (the ``round_no``-th send-back, once)."""
    if not record_event(session, plan_id, "sent_back", str(round_no), f"staff:{by}", now, reason=reason):
        return False
    get_plan(session, plan_id).sent_back += 1
    session.flush()
    return True


def approve(session: Session, plan_id: int, *, by: int, reason: str, now: dt.datetime) -> bool:
    plan = get_plan(session, plan_id)
    if plan.status != OPEN:
        return False
    plan.status, plan.decision_reason = APPROVED, reason
    record_event(session, plan_id, "approved", "decision", f"staff:{by}", now, reason=reason)
    session.flush()
    return True


def check_agreement_dates(signed_on: dt.date, starts_on: dt.date, ends_on: dt.date, today: dt.date) -> None:
    """A term that ends after it starts, signed no later than it starts, not signed in the future, not over already.
    Raises ``PlanRefused`` with the reason."""
    problems = []
    if ends_on <= starts_on:
        problems.append("协议到期日须晚于生效日 / ends_on must be after starts_on")
    if signed_on > starts_on:
        problems.append("签订日期不能晚于生效日 / signed_on must not be after starts_on")
    if signed_on > today:
        problems.append("签订日期不能是将来的日期 / signed_on is in the future")
    if ends_on <= today:
        problems.append("协议到期日已过 / ends_on has passed")
    if problems:
        raise PlanRefused("；".join(problems))


def sign(
    session: Session, plan_id: int, *, signed_on: dt.date, starts_on: dt.date, ends_on: dt.date, document_ref: str,
    company_obligations: str, customer_obligations: str, by: int, now: dt.datetime,
) -> bool:  # fmt: skip
    """签订服务协议: the agreement row, the plan signed. False when it was signed before (a replay)."""
    plan = get_plan(session, plan_id)
    if plan.status == SIGNED:
        return False
    session.add(
        ServiceAgreement(
            plan_id=plan_id,
            customer_id=plan.customer_id,
            signed_on=signed_on,
            starts_on=starts_on,
            ends_on=ends_on,
            document_ref=document_ref,
            company_obligations=company_obligations,
            customer_obligations=customer_obligations,
            recorded_by_id=by,
            recorded_at=now,
        )
    )
    plan.status, plan.closed_at = SIGNED, now
    record_event(session, plan_id, "signed", "agreement", f"staff:{by}", now, document_ref=document_ref)
    session.flush()
    return True


def agreement_of(session: Session, customer_id: int) -> ServiceAgreement | None:
    """The customer's latest agreement."""
    return session.scalars(
        select(ServiceAgreement).where(ServiceAgreement.customer_id == customer_id).order_by(ServiceAgreement.id.desc())
    ).first()


# --- the duty: missed parts, renewals ------------------------------------------------------------------------------


def sweep(session: Session, policy: Policy, calendar: WorkCalendar, now: dt.datetime) -> list[str]:
    """Parts past their deadline, not in: at the deadline to the department's supervisor, one
    ``escalation.reminder_interval`` later to a senior manager, each level once (as onboarding reviews climb)."""
    fired: list[str] = []
    rows = session.scalars(
        select(ServicePlanPart)
        .join(ServicePlan, ServicePlan.id == ServicePlanPart.plan_id)
        .where(
            ServicePlanPart.part.is_(None),
            ServicePlanPart.due_at <= now,
            ServicePlanPart.escalation_level < 2,
            ServicePlan.status == OPEN,
        )
    ).all()
    for row in rows:
        second_at = calendar.deadline(row.due_at, policy.escalation.reminder_interval).due_at
        target = 2 if now >= second_at else 1
        code = code_of(row.plan.customer)
        while row.escalation_level < target:
            level = row.escalation_level + 1
            row.escalation_level = level
            mails = {}
            for person in escalation_recipients(session, row.department, level):
                mails[str(person.id)] = _mail(
                    session, MessageType.SERVICE_PLAN_PART_OVERDUE, person,
                    {"customer_code": code, "department": policy.roles.names.get(Role(row.department), row.department),
                     "due_at": row.due_at},
                    f"service-plan:{row.plan_id}:overdue:{row.department}:{level}:staff:{person.id}", now, urgent=True,
                )  # fmt: skip
            record_event(
                session, row.plan_id, "part_escalated", f"{row.department}:{level}", "system", now,
                department=row.department, level=level, mails=mails or {"-": "no_recipient"},
            )  # fmt: skip
            fired.append(f"{code}:plan_part_{row.department}:escalated:{level}")
    session.flush()
    return fired


def remind_renewals(session: Session, policy: Policy, today: dt.date, now: dt.datetime) -> list[str]:
    """Agreements whose end date is within ``renewal_lead_days`` of ``today`` (the policy's day): the project manager
    is reminded of the renewal, once per agreement (``renewal_reminded_at`` and the outbox's dedupe key)."""
    lead = dt.timedelta(days=policy.key_accounts.service_plan.renewal_lead_days)
    rows = session.scalars(
        select(ServiceAgreement).where(
            ServiceAgreement.renewal_reminded_at.is_(None), ServiceAgreement.ends_on <= today + lead
        )
    ).all()
    fired = []
    for agreement in rows:
        code = code_of(agreement.customer)
        manager = project_manager(session, agreement.customer_id)
        outcome = "no_project_manager"
        if manager is not None:
            outcome = _mail(
                session, MessageType.SERVICE_AGREEMENT_RENEWAL, manager,
                {"customer_code": code, "customer_name": agreement.customer.name,
                 "document_ref": agreement.document_ref, "ends_on": f"{agreement.ends_on:%Y年%m月%d日}"},
                f"service-agreement:{agreement.id}:renewal", now,
            )  # fmt: skip
        agreement.renewal_reminded_at = now
        record_event(
            session, agreement.plan_id, "renewal_reminded", str(agreement.id), "system", now,
            ends_on=agreement.ends_on.isoformat(), mail=outcome,
        )  # fmt: skip
        fired.append(f"{code}:agreement_renewal")
    session.flush()
    return fired


def _mail(
    session: Session, message_type: MessageType, person: Staff, context: dict[str, Any], key: str, now: dt.datetime,
    *, urgent: bool = False,
) -> str:  # fmt: skip
    if not person.email:
        return "no_address"
    try:
        enqueue(
            session, message_type, recipient_email=person.email, context={"recipient_name": person.name, **context},
            urgent=urgent, dedupe_key=key, now=now,
        )  # fmt: skip
    except MessageRejected as rejected:
        return f"rejected: {rejected}"
    return "queued"


def waiting_for_parts(session: Session) -> list[tuple[int, str]]:
    """Open plans whose parts are all in while their run may still wait for them: (plan id, run id) — the mend when
    the last part run's resume did not land."""
    found = []
    for plan in session.scalars(
        select(ServicePlan).where(ServicePlan.status == OPEN, ServicePlan.flow_run_id.is_not(None))
    ).all():
        rows = parts(session, plan.id)
        if not rows or any(r.part is None for r in rows) or not plan.flow_run_id:
            continue
        waits = [e.key for e in events(session, plan.id) if e.action == "waiting" and e.data.get("internal")]
        if waits and waits[-1] not in step_outcomes(session, plan.id):
            found.append((plan.id, plan.flow_run_id))
    return found


def unopened(session: Session, older_than: dt.datetime) -> list[tuple[int, str]]:
    """Open plans whose run never started (Prefect was down when they were made)."""
    rows = session.scalars(
        select(ServicePlan).where(
            ServicePlan.status == OPEN, ServicePlan.flow_run_id.is_(None), ServicePlan.at <= older_than
        )
    ).all()
    return [(p.id, code_of(p.customer)) for p in rows]
