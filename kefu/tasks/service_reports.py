"""The monthly service report to each key account's contact (seed 001 §四.1 客户有权获得服务报告): last month's
order-processing on-time rate, on-time delivery rate and complaint rate (``kefu.tasks.account_scores``, the same
numbers as ``kefu account show``) against the policy's floors, a KPI below its floor named with the company's
improvement commitment (``key_accounts.service_report.improvement_commitment``). One linted zh-CN mail per account
and month through the outbox (its dedupe key; send windows as every customer message); each mail carries its own
customer's figures only."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu.models.enums import CustomerTier
from kefu.models.notifications import OutboxMessage
from kefu.models.people import Customer
from kefu.models.policy import Policy
from kefu.notifications.messages import MessageType
from kefu.notifications.outbox import MessageRejected, enqueue

KPI_ZH = {
    "order_on_time_rate": "订单处理及时率",
    "delivery_on_time_rate": "准时交付率",
    "complaint_rate": "投诉率",
}
SENT, ALREADY_SENT, NO_ADDRESS, NO_FIGURES = "sent", "already_sent", "no_address", "no_figures"
ALREADY_QUEUED = "already_queued"  # queued by an earlier run, still waiting for its send window


@dataclass(frozen=True)
class ReportOutcome:
    code: str
    outcome: str  # sent (queued now) | already_sent | already_queued | no_address | no_figures | rejected: …
    below: str  # the KPIs below their floor (ids, comma-separated)
    leaves_at: dt.datetime | None = None  # when the queued mail leaves (the send window), or left


def dedupe_key(customer_id: int, month: dt.date) -> str:
    return f"service-report:{customer_id}:{month:%Y-%m}"


def _rate(value: float) -> str:
    return "—（本月无订单）" if math.isnan(value) else f"{value:.1%}"


def project_manager_line(session: Session, customer_id: int) -> str:
    """How the report names the account's project manager to the customer: name, work phone and e-mail as the staff
    directory has them (their own manager's, so not masked); empty without an active project manager."""
    from kefu.models.accounts import TeamRole
    from kefu.tasks.accounts import team_members

    for role, person in team_members(session, customer_id):
        if role == TeamRole.PROJECT_MANAGER and person.active:
            reach = "，".join(
                f"{label}{value}" for label, value in (("电话", person.phone), ("邮箱", person.email)) if value
            )
            return f"{person.name}（{reach}）" if reach else person.name
    return ""


def send_service_reports(session: Session, policy: Policy, month: dt.date, now: dt.datetime) -> list[ReportOutcome]:
    """Queue the ``month`` report of every key account (once each); what happened to each, by customer code."""
    from kefu.tasks.account_scores import below_floor, monthly_kpis
    from kefu.tasks.accounts import figures_frame

    rules, report = policy.key_accounts.kpi, policy.key_accounts.service_report
    accounts = session.scalars(select(Customer).where(Customer.tier == CustomerTier.KEY).order_by(Customer.id)).all()
    figures = figures_frame(session, policy=policy)
    if not figures.empty:
        figures = figures[figures["month"].dt.date == month]
    kpis = monthly_kpis(figures) if not figures.empty else None
    misses = below_floor(kpis, rules) if kpis is not None else None
    by_customer = {} if kpis is None or misses is None else {
        int(row["customer_id"]): (row, miss) for (_, row), miss in zip(kpis.iterrows(), misses, strict=True)
    }  # fmt: skip
    outcomes = []
    for customer in accounts:
        code = customer.code or f"C{customer.id:06d}"
        key = dedupe_key(customer.id, month)
        earlier = session.scalars(select(OutboxMessage).where(OutboxMessage.dedupe_key == key)).first()
        if earlier is not None:
            left = earlier.sent_at is not None
            outcomes.append(
                ReportOutcome(code, ALREADY_SENT if left else ALREADY_QUEUED, "", earlier.sent_at or earlier.not_before)
            )
            continue
        if customer.id not in by_customer:
            outcomes.append(ReportOutcome(code, NO_FIGURES, ""))
            continue
        row, miss = by_customer[customer.id]
        if not customer.email:
            outcomes.append(ReportOutcome(code, NO_ADDRESS, miss))
            continue
        below = "、".join(KPI_ZH[k] for k in miss.split(",") if k)
        context = {
            "customer_name": customer.contact_person or customer.name,
            "month_title": f"{month:%Y年%-m月}",
            "order_on_time_rate": _rate(row["order_on_time_rate"]),
            "delivery_on_time_rate": _rate(row["delivery_on_time_rate"]),
            "complaint_rate": _rate(row["complaint_rate"]),
            "order_on_time_floor": f"{rules.order_on_time_floor:.0%}",
            "delivery_on_time_floor": f"{rules.delivery_on_time_floor:.0%}",
            "complaint_rate_ceiling": f"{rules.complaint_rate_ceiling:.0%}",
            "below": below,
            "commitment": report.improvement_commitment,
            "project_manager": project_manager_line(session, customer.id),
        }
        try:
            queued = enqueue(session, MessageType.SERVICE_REPORT, recipient_email=customer.email, context=context,
                             dedupe_key=key, now=now)  # fmt: skip
        except MessageRejected as rejected:
            outcomes.append(ReportOutcome(code, f"rejected: {rejected}", miss))
            continue
        outcomes.append(ReportOutcome(code, SENT, miss, queued.not_before))
    session.flush()
    return outcomes
