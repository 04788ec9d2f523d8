"""``kefu account``: key accounts (重点客户, seed 001) — show one (tier, team, monthly figures and KPIs, the last
contacts and the contact cadence), assign its team, nominate a customer for the programme by hand (the market
department), record a contact with any customer (``kefu account contact log``, seed 003 §2.3 / seed 000 ch.4)."""

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
    parser = subparsers.add_parser("account", help="key accounts (重点客户): show, team, nominate, demote, contact log")
    actions = parser.add_subparsers(dest="account_action", required=True)

    show = actions.add_parser("show", help="tier, team, figures, KPIs, cadence, contacts of a customer")
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

    demote = actions.add_parser("demote", help="take a key account back to general (a senior manager; audited)")
    demote.add_argument("customer", help="customer code")
    demote.add_argument("--as", dest="as_staff", metavar="STAFF", required=True, help="who decides: a senior manager")
    demote.add_argument("--reason", required=True, help="why it leaves the programme (退出原因)")
    demote.set_defaults(handler=run_demote)

    contact = actions.add_parser("contact", help="contacts (沟通记录): log one, mark a follow-up done")
    contact_actions = contact.add_subparsers(dest="contact_action", required=True)
    log = contact_actions.add_parser(
        "log",
        help="record a contact: time, channel, summary, responsible person, follow-up items (the same record as "
        "kefu contact log, which also takes --kind, --satisfaction and --remarks)",
    )
    log.add_argument("customer", help="customer code")
    log.add_argument("--as", dest="as_staff", metavar="STAFF", required=True, help="who made the contact (负责人)")
    log.add_argument(
        "--channel",
        required=True,
        help="phone (电话), visit / face_to_face (拜访), meeting (会议), email / mail (电子邮件), im, sms, hotline, "
        "web, social",
    )
    log.add_argument("--summary", required=True, help="what was discussed: needs, opinions (沟通内容)")
    log.add_argument("--at", help="when (YYYY-MM-DD HH:MM, Shanghai time; default now)")
    log.add_argument(
        "--review", action="store_true", help="this contact was the quarter's business review (业务回顾和需求调研)"
    )
    log.add_argument(
        "--follow-up",
        dest="follow_ups",
        action="append",
        default=[],
        metavar="ITEM;OWNER;YYYY-MM-DD",
        help="a follow-up item, its owner (sign-in name or id) and due date; repeat for more",
    )
    log.set_defaults(handler=run_contact_log)
    done = contact_actions.add_parser("done", help="mark a follow-up item done (its owner or a supervisor)")
    done.add_argument("follow_up", type=int, help="the follow-up item's number (kefu account show lists it)")
    done.add_argument("--as", dest="as_staff", metavar="STAFF", required=True, help="who: the item's owner")
    done.set_defaults(handler=run_contact_done)

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
        lines += contact_lines(session, customer, policy)
        lines += followthrough_lines(session, customer, policy)
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


def contact_lines(session: Any, customer: Any, policy: Any) -> list[str]:
    """The cadence status (this period's requirement met or due when, reminders and escalations sent) and the last
    contacts with their follow-up items."""
    from kefu.models.base import utcnow
    from kefu.models.contacts import channel_zh
    from kefu.models.people import Staff
    from kefu.tasks.cadence import GAP_ZH, cadence_status, follow_ups_of, recent_contacts
    from kefu.worktime import calendar_for, local_time

    lines = ["contact cadence:"]
    for line in cadence_status(session, policy, calendar_for(policy), customer, utcnow()):
        state = "done" if line.met else f"due by {local_time(line.due_at, policy.timezone)}"
        told = f"  ({'; '.join(line.told)})" if line.told else ""
        lines.append(f"  {GAP_ZH[line.gap]} {line.gap:<15} {line.period:<8} {state}{told}")
    contacts = recent_contacts(session, customer.id)
    lines.append("last contacts:" if contacts else "last contacts: none (kefu account contact log)")
    follow_ups: dict[int, list[Any]] = {}
    for item in follow_ups_of(session, [r.id for r in contacts]):
        follow_ups.setdefault(item.record_id, []).append(item)
    for record in contacts:
        person = session.get(Staff, record.responsible_staff_id) if record.responsible_staff_id else None
        who = (person.login or str(person.id)) if person is not None else "—"
        review = " 业务回顾" if record.business_review else ""
        channel = channel_zh(record.channel)
        lines.append(f"  {local_time(record.at, policy.timezone)}  {channel}{review}  {who}: {record.summary}")
        for item in follow_ups.get(record.id, []):
            done = "done" if item.done_at else f"due {item.due_on:%Y-%m-%d}"
            lines.append(f"    follow-up #{item.id}: {item.item} — {item.owner.login or item.owner.id}, {done}")
    return lines


def run_contact_log(args: argparse.Namespace) -> int:
    from kefu.models.policy import current_policy
    from kefu.models.registry import customer_code
    from kefu.tasks.contacts import ContactRefused, find_customer, parse_contact_time, parse_follow_up, record_contact

    policy = current_policy()
    try:
        at = parse_contact_time(args.at, policy.timezone) if args.at else None
        entries = [parse_follow_up(text) for text in args.follow_ups]
        with unit_of_work() as session:
            person = reader_named(session, args.as_staff)
            assert person is not None
            customer = find_customer(session, args.customer)
            record = record_contact(
                session, policy, customer, channel=args.channel, summary=args.summary, responsible=person, at=at,
                business_review=args.review, follow_ups=entries,
            )  # fmt: skip
            shown = f"{customer_code(customer)}: contact {record.id} recorded ({record.channel}"
            shown += ", business review)" if args.review else ")"
            if entries:
                shown += f", {len(entries)} follow-up item(s)"
    except ContactRefused as exc:
        raise UsageError(str(exc)) from None
    print(f"kefu account contact log: {shown}")
    return 0


def followthrough_lines(session: Any, customer: Any, policy: Any) -> list[str]:
    """The improvement tasks opened by KPIs past their targets, and the tier changes (demotion) with their reasons."""
    from kefu.models.people import Staff
    from kefu.tasks.account_followthrough import KPI_ZH, account_changes, improvement_tasks
    from kefu.worktime import local_time

    lines = []
    tasks = improvement_tasks(session, customer.id)
    if tasks:
        lines.append("improvement tasks:")
    for task in tasks:
        owner = session.get(Staff, task.owner_id) if task.owner_id else None
        who = (owner.login or str(owner.id)) if owner is not None else "no project manager"
        value = _rate(task.value if task.value is not None else math.nan)
        state = f"closed {local_time(task.closed_at, policy.timezone)}" if task.closed_at else "open"
        lines.append(
            f"  {task.month:%Y-%m} {KPI_ZH[task.kpi]} {task.kpi} {value} (target {task.target:.1%})  {who}  {state}"
        )
    for change in account_changes(session, customer.id):
        by = session.get(Staff, change.by_staff_id)
        who = (by.login or str(by.id)) if by is not None else str(change.by_staff_id)
        team = ", ".join(f"{m['role']} {m['login'] or m['staff_id']}" for m in change.data.get("team", []))
        lines.append(
            f"{change.action} {local_time(change.at, policy.timezone)} by {who}: {change.reason}"
            + (f"  (team ended: {team})" if team else "")
        )
    return lines


def run_demote(args: argparse.Namespace) -> int:
    from kefu.models.directory import DirectoryError
    from kefu.models.registry import customer_code, get_customer
    from kefu.tasks.account_followthrough import demote

    try:
        with unit_of_work() as session:
            asker = reader_named(session, args.as_staff)
            assert asker is not None
            customer = get_customer(session, args.customer)
            change = demote(session, customer, asker, args.reason)
            shown = f"{customer_code(customer)} is a general customer now; team of {len(change.data['team'])} ended"
    except DirectoryError as exc:
        raise UsageError(str(exc)) from None
    print(f"kefu account demote: {shown}")
    return 0


def run_contact_done(args: argparse.Namespace) -> int:
    from kefu.tasks.cadence import follow_up_done
    from kefu.tasks.contacts import ContactRefused

    try:
        with unit_of_work() as session:
            person = reader_named(session, args.as_staff)
            assert person is not None
            item = follow_up_done(session, args.follow_up, person)
            shown = f"follow-up #{item.id} ({item.item}) done"
    except ContactRefused as exc:
        raise UsageError(str(exc)) from None
    print(f"kefu account contact done: {shown}")
    return 0
