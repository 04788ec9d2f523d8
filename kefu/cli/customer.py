"""``kefu customer``: the customer registry (客户信息表) — add one, import a CSV/XLSX file (all or nothing), show
one, list them. What a person sees of a customer's personal data is the one rule's
(``kefu.tasks.customer_data.customer_access_reason``): ``--as`` names who reads; without it, everything is masked."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kefu.cli import UsageError
from kefu.models.db import unit_of_work
from kefu.models.people import Staff

NOT_GIVEN = "—"


def register(subparsers: Any) -> None:
    from kefu.models.registry import COLUMNS

    parser = subparsers.add_parser("customer", help="the customer registry (客户信息表): add, import, show, list")
    actions = parser.add_subparsers(dest="customer_action", required=True)

    add = actions.add_parser("add", help="add one customer")
    add.add_argument("name", help="the customer's name (客户名称)")
    add.add_argument("--code", default="", help="customer code (客户编号); default C + the id")
    add.add_argument("--contact", default="", help="contact person (联系人)")
    add.add_argument("--phone", action="append", default=[], help="a phone number (repeat for more)")
    add.add_argument("--email", default="")
    add.add_argument("--address", default="", help="the main address")
    add.add_argument("--more-address", action="append", default=[], help="a further address (repeat for more)")
    add.add_argument("--industry", default="", help="industry (所属行业)")
    add.add_argument("--needs", default="", help="needs (需求描述)")
    add.add_argument("--preferences", default="", help="preferences (服务偏好)")
    add.set_defaults(handler=run_add)

    imports = actions.add_parser("import", help="add every customer of a CSV or XLSX file, or none")
    imports.add_argument("file", type=Path, help=f"columns: {', '.join(COLUMNS)} (name and a phone or e-mail needed)")
    imports.set_defaults(handler=run_import)

    for action, text in (("show", "one customer"), ("list", "every customer")):
        sub = actions.add_parser(action, help=f"{text}, personal data as --as may see it")
        if action == "show":
            sub.add_argument("customer", help="customer code (or id)")
        else:
            sub.add_argument("--key", action="store_true", help="key accounts only")
        sub.add_argument("--as", dest="as_staff", metavar="STAFF", help="who reads (sign-in name or staff id)")
        sub.set_defaults(handler=run_show if action == "show" else run_list)


def reader_named(session: Any, ref: str | None) -> Staff | None:
    """The person ``--as`` names (an unknown or inactive one is an error); ``None`` without ``--as``."""
    from kefu.models.directory import find_staff

    if ref is None:
        return None
    person = find_staff(session, ref)
    if person is None or not person.active:
        raise UsageError(f"--as {ref}: no active staff member by that sign-in name or id")
    return person


def report_refused(command: str, source: str, problems: list[Any]) -> int:
    print(f"{command}: {source}: nothing imported; fix these rows:", file=sys.stderr)
    for problem in problems:
        print(f"  line {problem.line}: {problem.reason}", file=sys.stderr)
    return 2


def run_add(args: argparse.Namespace) -> int:
    from kefu.models.directory import ImportRefused
    from kefu.models.registry import CustomerEntry, add_customers

    entry = CustomerEntry(
        name=args.name,
        code=args.code,
        contact_person=args.contact,
        phones=args.phone,
        email=args.email,
        address=args.address,
        more_addresses=[a.strip() for a in args.more_address if a.strip()],
        industry=args.industry,
        needs=args.needs,
        preferences=args.preferences,
    )
    try:
        with unit_of_work() as session:
            [customer] = add_customers(session, [(1, entry)])
            code = customer.code
    except ImportRefused as refused:
        raise UsageError("; ".join(p.reason for p in refused.problems)) from None
    print(f"kefu customer add: added customer {code}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from kefu.models.directory import DirectoryError, ImportRefused
    from kefu.models.registry import add_customers, read_customers

    path: Path = args.file
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    try:
        entries = read_customers(path)
        with unit_of_work() as session:
            count = len(add_customers(session, entries))
    except ImportRefused as refused:
        return report_refused("kefu customer import", path.name, refused.problems)
    except DirectoryError as exc:
        raise UsageError(f"nothing imported: {exc}") from None
    print(f"kefu customer import: {count} customers added from {path.name}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from kefu.models.accounts import TEAM_ROLE_ZH
    from kefu.models.registry import CustomerNotFound, customer_code, get_customer
    from kefu.notifications.pii import mask_text
    from kefu.tasks.accounts import team_members
    from kefu.tasks.customer_data import read_registered_customer

    with unit_of_work() as session:
        reader = reader_named(session, args.as_staff)
        try:
            customer = get_customer(session, args.customer)
        except CustomerNotFound as exc:
            raise UsageError(str(exc)) from None
        view = read_registered_customer(session, reader, customer, through="kefu customer show")
        plain = (lambda t: t) if view.full else mask_text  # free text may carry a number
        tier = "重点客户 key account" if view.key_account else "一般客户 general"
        lines = [
            f"customer {customer_code(customer)}  {view.name}  ({tier})",
            f"  contact person: {view.contact_person or NOT_GIVEN}",
            f"  phones: {', '.join(view.phones) or NOT_GIVEN}",
            f"  email: {view.email or NOT_GIVEN}",
            f"  address: {view.address or NOT_GIVEN}",
            *(f"  more address: {a}" for a in view.more_addresses),
            f"  industry: {customer.industry or NOT_GIVEN}",
            f"  needs: {plain(customer.needs) if customer.needs else NOT_GIVEN}",
            f"  preferences: {plain(customer.preferences) if customer.preferences else NOT_GIVEN}",
        ]
        for role, member in team_members(session, customer.id):
            lines.append(f"  team: {TEAM_ROLE_ZH[role]} {member.name} ({member.login or member.id})")
        if not view.full:
            lines.append(
                "  (personal data masked: shown in full to the key-account team, supervisors and the policy's "
                "customer_contact roles)"
            )
    print("\n".join(lines))
    return 0


def run_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from kefu.models.enums import CustomerTier
    from kefu.models.people import Customer
    from kefu.models.registry import customer_code
    from kefu.tasks.customer_data import read_registered_customer

    with unit_of_work() as session:
        reader = reader_named(session, args.as_staff)
        query = select(Customer).order_by(Customer.id)
        if args.key:
            query = query.where(Customer.tier == CustomerTier.KEY)
        customers = list(session.scalars(query))
        for customer in customers:
            view = read_registered_customer(session, reader, customer, through="kefu customer list")
            print(f"{customer_code(customer):<10} {view.line()}  industry: {customer.industry or NOT_GIVEN}")
    if not customers:
        print("no customers")
    return 0
