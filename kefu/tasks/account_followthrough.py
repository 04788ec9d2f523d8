"""What follows from a key account's figures and decisions (seed 001 §三.4 考核与改进, §二 退出): a KPI below the
policy's floor (above the complaint ceiling) opens an improvement task for the account's project manager — a row
and an internal mail, once per account, month and KPI — and a senior manager's demotion takes a key account back to
the general tier, audited with the reason and the team it had. Repository functions: they take the session and
never commit."""

from __future__ import annotations

import contextlib
import datetime as dt
import math

from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu.models.accounts import TEAM_ROLE_ZH, KeyAccountMember, TeamRole
from kefu.models.base import utcnow
from kefu.models.cadence import AccountChange, KpiImprovementTask
from kefu.models.enums import CustomerTier, Role
from kefu.models.people import Customer, Staff
from kefu.models.policy import Policy
from kefu.notifications.messages import MessageType
from kefu.notifications.outbox import MessageRejected, enqueue
from kefu.tasks.accounts import AccountError

KPI_ZH = {
    "order_on_time_rate": "订单处理及时率",
    "delivery_on_time_rate": "准时交付率",
    "complaint_rate": "投诉率",
}
DEMOTED = "demoted"


def _target(policy: Policy, kpi: str) -> float:
    rules = policy.key_accounts.kpi
    return {
        "order_on_time_rate": rules.order_on_time_floor,
        "delivery_on_time_rate": rules.delivery_on_time_floor,
        "complaint_rate": rules.complaint_rate_ceiling,
    }[kpi]


def project_manager(session: Session, customer: Customer) -> Staff | None:
    """The account's project manager (its team), else the account manager recorded on the customer."""
    person = session.scalars(
        select(Staff)
        .join(KeyAccountMember, KeyAccountMember.staff_id == Staff.id)
        .where(KeyAccountMember.customer_id == customer.id, KeyAccountMember.team_role == TeamRole.PROJECT_MANAGER)
    ).first()
    if person is None and customer.account_manager_id is not None:
        person = session.get(Staff, customer.account_manager_id)
    return person if person is not None and person.active else None


def open_improvement_tasks(
    session: Session, policy: Policy, *, since: dt.date, now: dt.datetime | None = None
) -> list[str]:
    """An improvement task for every key account's month from ``since`` with a KPI past the policy's target, unless
    one is open for that account, month and KPI already; its project manager gets an internal mail. Returns what was
    opened (``CODE:YYYY-MM:kpi``, no personal data)."""
    from kefu.tasks.account_scores import below_floor, monthly_kpis
    from kefu.tasks.accounts import figures_frame

    now = now or utcnow()
    keys = {c.id: c for c in session.scalars(select(Customer).where(Customer.tier == CustomerTier.KEY))}
    if not keys:
        return []
    figures = figures_frame(session, policy=policy)
    if figures.empty:
        return []
    figures = figures[figures["customer_id"].isin(list(keys)) & (figures["month"] >= str(since))]
    if figures.empty:
        return []
    kpis = monthly_kpis(figures)
    misses = below_floor(kpis, policy.key_accounts.kpi)
    existing = {
        (t.customer_id, t.month, t.kpi)
        for t in session.scalars(select(KpiImprovementTask).where(KpiImprovementTask.customer_id.in_(list(keys))))
    }
    opened: list[str] = []
    for (_, row), missed in zip(kpis.iterrows(), misses, strict=True):
        if not missed:
            continue
        customer = keys[int(row["customer_id"])]
        month = row["month"].date().replace(day=1)
        for kpi in missed.split(","):
            if (customer.id, month, kpi) in existing:
                continue
            value = float(row[kpi])
            owner = project_manager(session, customer)
            task = KpiImprovementTask(
                customer_id=customer.id, month=month, kpi=kpi, value=None if math.isnan(value) else value,
                target=_target(policy, kpi), owner_id=owner.id if owner is not None else None, opened_at=now,
            )  # fmt: skip
            session.add(task)
            session.flush()
            existing.add((customer.id, month, kpi))
            code = customer.code or f"C{customer.id:06d}"
            if owner is not None and owner.email:
                with contextlib.suppress(MessageRejected):  # the task stands; `kefu account show` lists it
                    enqueue(
                        session,
                        MessageType.KPI_IMPROVEMENT_TASK,
                        recipient_email=owner.email,
                        context={
                            "recipient_name": owner.name,
                            "customer_code": code,
                            "month": f"{month:%Y年%m月}",
                            "kpi_name": KPI_ZH[kpi],
                            "value": f"{value:.1%}",
                            "target": f"{'不高于' if kpi == 'complaint_rate' else '不低于'}{task.target:.1%}",
                        },
                        dedupe_key=f"kpi-task:{customer.id}:{month:%Y-%m}:{kpi}",
                        now=now,
                    )
            opened.append(f"{code}:{month:%Y-%m}:{kpi}")
    return opened


def improvement_tasks(session: Session, customer_id: int) -> list[KpiImprovementTask]:
    return list(
        session.scalars(
            select(KpiImprovementTask)
            .where(KpiImprovementTask.customer_id == customer_id)
            .order_by(KpiImprovementTask.month.desc(), KpiImprovementTask.id)
        )
    )


def demote(
    session: Session, customer: Customer, by: Staff, reason: str, now: dt.datetime | None = None
) -> AccountChange:
    """退出重点客户: a senior manager's decision with a reason. The tier goes back to general, the team ends (its
    members, by role, kept in the audit row), the account manager is cleared (the team's access to the customer's
    data ends with it) and open improvement tasks are closed. ``AccountError`` (nothing changed) otherwise."""
    now = now or utcnow()
    reason = reason.strip()
    if Role.SENIOR_MANAGER not in by.roles:
        raise AccountError(f"{by.login or by.id}: only a senior manager demotes a key account (高层管理人员)")
    if not reason:
        raise AccountError("--reason: say why the customer leaves the key-account programme (退出原因)")
    if not customer.is_key_account:
        raise AccountError(f"customer {customer.code} is not a key account (一般客户)")
    members = session.scalars(select(KeyAccountMember).where(KeyAccountMember.customer_id == customer.id)).all()
    team = [
        {"role": m.team_role.value, "role_zh": TEAM_ROLE_ZH[m.team_role], "staff_id": m.staff_id,
         "login": m.staff.login, "since": m.assigned_at.isoformat()}
        for m in members
    ]  # fmt: skip
    closed = 0
    for task in session.scalars(
        select(KpiImprovementTask).where(
            KpiImprovementTask.customer_id == customer.id, KpiImprovementTask.closed_at.is_(None)
        )
    ):
        task.closed_at = now
        closed += 1
    for member in members:
        session.delete(member)
    customer.tier = CustomerTier.GENERAL
    customer.account_manager_id = None
    change = AccountChange(
        customer_id=customer.id, action=DEMOTED, reason=reason, by_staff_id=by.id, at=now,
        data={"team": team, "improvement_tasks_closed": closed},
    )  # fmt: skip
    session.add(change)
    session.flush()
    return change


def account_changes(session: Session, customer_id: int) -> list[AccountChange]:
    return list(
        session.scalars(
            select(AccountChange).where(AccountChange.customer_id == customer_id).order_by(AccountChange.at.desc())
        )
    )
