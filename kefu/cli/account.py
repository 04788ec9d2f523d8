"""``kefu account``: key accounts (重点客户, seed 001) — show one (tier, team, monthly figures and KPIs), assign its
team, nominate a customer for the programme by hand (the market department)."""

from __future__ import annotations

import argparse
import math
from typing import Any

from kefu.cli import UsageError
from kefu.cli.customer import reader_named
from kefu.models.db import unit_of_work

NOT_GIVEN = "—"
NOMINATORS = ("market", "senior_manager")  # 市场部 nominates (seed 001 §二.1); senior managers may too


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("account", help="key accounts (重点客户): show, team, nominate")
    actions = parser.add_subparsers(dest="account_action", required=True)

    show = actions.add_parser("show", help="tier, team, monthly figures and KPIs of one customer")
    show.add_argument("customer", help="customer code")
    show.add_argument("--months", type=int, default=12, help="how many recent months (default 12)")
    show.set_defaults(handler=run_show)

    team = actions.add_parser("assign", help="put a person in a key account's team")
    team.add_argument("customer", help="customer code")
    team.add_argument(
        "team_role", help="project_manager (项目经理), service_specialist (客服专员), dispatcher, after_sales"
    )
    team.add_argument("staff", help="sign-in name or staff id")
    team.add_argument("--as", dest="as_staff", metavar="STAFF", required=True, help="who assigns: a senior manager")
    team.set_defaults(handler=run_assign)

    nominate = actions.add_parser("nominate", help="the market department puts a customer forward (recorded, audited)")
    nominate.add_argument("customer", help="customer code")
    nominate.add_argument("--as", dest="as_staff", metavar="STAFF", required=True, help="who nominates: market")
    nominate.add_argument("--reason", required=True, help="why (推荐理由)")
    nominate.set_defaults(handler=run_nominate)

    plan = actions.add_parser("plan", help="open the key account's service plan (seed 001 服务方案制定) and its run")
    plan.add_argument("customer", help="customer code")
    plan.add_argument(
        "--as", dest="as_staff", metavar="STAFF", required=True, help="who: its project manager or a senior manager"
    )
    plan.set_defaults(handler=run_plan)


def _rate(value: float) -> str:
    return NOT_GIVEN if math.isnan(value) else f"{value:.1%}"


def run_show(args: argparse.Namespace) -> int:
    from kefu.models.accounts import TEAM_ROLE_ZH
    from kefu.models.policy import current_policy
    from kefu.models.registry import CustomerNotFound, customer_code, get_customer
    from kefu.tasks.account_scores import below_floor, monthly_kpis
    from kefu.tasks.accounts import figures_frame, open_nomination, team_members
    from kefu.worktime import local_time

    policy = current_policy()
    with unit_of_work() as session:
        try:
            customer = get_customer(session, args.customer)
        except CustomerNotFound as exc:
            raise UsageError(str(exc)) from None
        tier = "重点客户 key account" if customer.is_key_account else "一般客户 general"
        lines = [f"customer {customer_code(customer)}  tier: {tier}  industry: {customer.industry or NOT_GIVEN}"]
        nomination = open_nomination(session, customer.id)
        if nomination is not None:
            when = local_time(nomination.at, policy.timezone)
            lines.append(f"  nominated ({nomination.source.value}, {when}): onboarding open")
            lines += onboarding_lines(session, nomination.id, policy)
        team = team_members(session, customer.id)
        lines.append("team:" if team else "team: —")
        lines += [f"  {TEAM_ROLE_ZH[r]:<6} {p.name} ({p.login or p.id})" for r, p in team]
        lines += plan_lines(session, customer, policy)
        figures = figures_frame(session, customer_id=customer.id, policy=policy)
    if figures.empty:
        lines.append("figures: none imported (kefu import business FILE)")
    else:
        figures = figures.sort_values("month").tail(args.months)
        kpis = monthly_kpis(figures)
        misses = below_floor(kpis, policy.key_accounts.kpi)
        lines.append(
            "month     orders      volume  on time  delivered  complaints  order on-time  delivery on-time  "
            "complaint rate"
        )
        for (_, f), (_, k), miss in zip(figures.iterrows(), kpis.iterrows(), misses, strict=True):
            flag = f"  below target: {miss}" if miss and customer.is_key_account else ""
            lines.append(
                f"{f['month']:%Y-%m}  {f['orders']:>6}  {f['volume']:>10,.2f}  {f['orders_on_time']:>7}  "
                f"{f['deliveries_on_time']:>9}  {f['complaints']:>10}  {_rate(k['order_on_time_rate']):>13}  "
                f"{_rate(k['delivery_on_time_rate']):>16}  {_rate(k['complaint_rate']):>14}{flag}"
            )
    print("\n".join(lines))
    return 0


def onboarding_lines(session: Any, nomination_id: int, policy: Any) -> list[str]:
    """The open onboarding's department reviews: decision (or the deadline, marked when missed) and comments."""
    from kefu.models.base import utcnow
    from kefu.tasks.onboarding import reviews
    from kefu.worktime import local_time

    lines = []
    for review in reviews(session, nomination_id):
        if review.decision is not None:
            state = f"{review.decision}: {review.comments or NOT_GIVEN}"
        else:
            late = "  OVERDUE" if review.due_at <= utcnow() else ""
            state = f"pending, due {local_time(review.due_at, policy.timezone)}{late}"
        lines.append(f"  review {review.department:<10} {state}")
    return lines


def plan_lines(session: Any, customer: Any, policy: Any) -> list[str]:
    """The latest service plan (its state, the departments' parts) and the latest signed agreement."""
    from kefu.models.base import utcnow
    from kefu.tasks import service_plans as plans
    from kefu.worktime import local_time

    lines = []
    plan = plans.plan_for_code(session, plans.code_of(customer))
    if plan is not None and plan.status != plans.SIGNED:
        backs = f", sent back {plan.sent_back}x" if plan.sent_back else ""
        lines.append(f"service plan: {plan.status} ({plans.STATUS_ZH[plan.status]}){backs}")
        for part in plans.parts(session, plan.id):
            if part.part is not None:
                state = f"in: {part.part}"
            else:
                late = "  OVERDUE" if part.due_at <= utcnow() else ""
                state = f"pending, due {local_time(part.due_at, policy.timezone)}{late}"
            lines.append(f"  part {part.department:<10} {state}")
    agreement = plans.agreement_of(session, customer.id)
    if agreement is not None:
        lines.append(
            f"agreement: {agreement.document_ref} signed {agreement.signed_on}, term {agreement.starts_on} to "
            f"{agreement.ends_on}"
            + (f", renewal reminded {local_time(agreement.renewal_reminded_at, policy.timezone)}"
               if agreement.renewal_reminded_at else "")
        )  # fmt: skip
        lines.append(f"  our obligations: {agreement.company_obligations}")
        lines.append(f"  customer's obligations: {agreement.customer_obligations}")
    elif plan is None:
        lines.append("service plan: none (kefu account plan CODE --as STAFF)")
    return lines


def run_plan(args: argparse.Namespace) -> int:
    from kefu.models.enums import Role
    from kefu.models.registry import CustomerNotFound, customer_code, get_customer
    from kefu.tasks import service_plans as plans

    with unit_of_work() as session:
        asker = reader_named(session, args.as_staff)
        assert asker is not None
        try:
            customer = get_customer(session, args.customer)
        except CustomerNotFound as exc:
            raise UsageError(str(exc)) from None
        manager = plans.project_manager(session, customer.id)
        if Role.SENIOR_MANAGER not in asker.roles and (manager is None or manager.id != asker.id):
            raise UsageError(f"--as {args.as_staff}: only the account's project manager or a senior manager")
        code = customer_code(customer)
    try:
        from kefu.engine.connection import kefu_prefect

        with kefu_prefect():
            from kefu.flows.service_plan import open_service_plan

            plan_id, run_id = open_service_plan(code)
    except plans.PlanRefused as refused:
        raise UsageError(str(refused)) from None
    if run_id is None:
        print(f"kefu account plan: {code} plan {plan_id}; its run opens when Prefect answers (case-deadlines duty)")
    else:
        print(
            f"kefu account plan: {code} plan {plan_id}, run {run_id}: the project manager records the needs and a "
            f"draft first (kefu step list --case {code})"
        )
    return 0


def run_assign(args: argparse.Namespace) -> int:
    from kefu.models.directory import DirectoryError, get_staff
    from kefu.models.enums import Role
    from kefu.models.registry import customer_code, get_customer
    from kefu.tasks.accounts import assign_member, parse_team_role

    try:
        with unit_of_work() as session:
            asker = reader_named(session, args.as_staff)
            assert asker is not None
            if Role.SENIOR_MANAGER not in asker.roles:
                raise UsageError(f"--as {args.as_staff}: only a senior manager assigns a key account's team")
            role = parse_team_role(args.team_role)
            customer = get_customer(session, args.customer)
            person = get_staff(session, args.staff)
            assign_member(session, customer, role, person)
            shown = f"{customer_code(customer)}: {role.value} is {person.login or person.id}"
    except DirectoryError as exc:
        raise UsageError(str(exc)) from None
    print(f"kefu account assign: {shown}")
    return 0


def run_nominate(args: argparse.Namespace) -> int:
    from kefu.models.accounts import NominationSource
    from kefu.models.directory import DirectoryError
    from kefu.models.registry import customer_code, get_customer
    from kefu.tasks.accounts import nominate

    reason = args.reason.strip()
    if not reason:
        raise UsageError("--reason: say why the customer should be a key account")
    try:
        with unit_of_work() as session:
            asker = reader_named(session, args.as_staff)
            assert asker is not None
            if not {r.value for r in asker.roles} & set(NOMINATORS):
                raise UsageError(
                    f"--as {args.as_staff}: only the market department nominates ({', '.join(NOMINATORS)})"
                )
            customer = get_customer(session, args.customer)
            row = nominate(session, customer, source=NominationSource.MARKET, by=asker, reason=reason)
            code, nomination_id = customer_code(customer), row.id
            shown = f"{code} nominated (nomination {nomination_id})"
    except DirectoryError as exc:
        raise UsageError(str(exc)) from None
    print(f"kefu account nominate: {shown}")
    print(open_onboarding(nomination_id, code))
    return 0


def open_onboarding(nomination_id: int, code: str) -> str:
    """The nomination's onboarding run, opened now; when Prefect does not answer, the nomination stays open and the
    deadline duty opens the run once it does (the nomination is recorded either way)."""
    from kefu.engine.connection import kefu_prefect

    try:
        with kefu_prefect():
            from kefu.flows.key_account_onboarding import start_onboarding

            run_id = start_onboarding(nomination_id, code)
    except Exception as exc:  # Prefect down or without the deployment: the run is opened later; say so
        return f"onboarding run not opened now ({exc}); it opens when Prefect answers (case-deadlines duty)"
    return (
        f"onboarding run {run_id} opened: research by the market department comes first (kefu step list --case {code})"
    )
