"""``kefu staff``: the staff directory — add, list, import a CSV/XLSX file, deactivate, grant and revoke roles,
give someone a one-time password for the operators' entrance, and read its sign-in audit lines."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sqlalchemy import select

from kefu.cli import UsageError
from kefu.models.db import unit_of_work
from kefu.models.directory import (
    COLUMNS,
    DirectoryError,
    ImportRefused,
    StaffEntry,
    add_people,
    deactivate,
    get_staff,
    parse_role,
    read_rows,
    set_roles,
)
from kefu.models.people import Staff
from kefu.models.policy import current_policy


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("staff", help="the staff directory: people, roles, supervisors, on-duty days")
    actions = parser.add_subparsers(dest="staff_action", required=True)

    add = actions.add_parser("add", help="add one person")
    add.add_argument("login", help="sign-in name: a letter, then letters, digits, '.', '_' or '-'")
    add.add_argument("--name", required=True, help="the person's name (姓名)")
    add.add_argument("--role", action="append", required=True, help="a role of the policy (repeat for more)")
    add.add_argument("--email", default="")
    add.add_argument("--phone", default="")
    add.add_argument("--supervisor", default="", help="the supervisor's sign-in name or staff id")
    add.add_argument("--on-duty", default="", help="weekdays on duty, e.g. mon-fri or mon,wed,fri")
    add.set_defaults(handler=run_add)

    listing = actions.add_parser("list", help="the directory (active people; --all for everyone)")
    listing.add_argument("--all", action="store_true", help="include deactivated people")
    listing.set_defaults(handler=run_list)

    imports = actions.add_parser("import", help="add everyone in a CSV or XLSX file, or nobody")
    imports.add_argument("file", type=Path, help=f"columns: {', '.join(COLUMNS)}")
    imports.set_defaults(handler=run_import)

    off = actions.add_parser("deactivate", help="a person who left: kept on record, accepted on no step")
    off.add_argument("staff", help="sign-in name or staff id")
    off.set_defaults(handler=run_deactivate)

    password = actions.add_parser(
        "password",
        help="a new one-time password for signing in at the entrance (printed once, changed at the next sign-in; "
        "ends the person's sessions and lifts a lock-out)",
    )
    password.add_argument("staff", help="sign-in name or staff id")
    password.set_defaults(handler=run_password)

    signins = actions.add_parser(
        "signins", help="the entrance's sign-in audit lines (var/logs/desk.log), the newest last"
    )
    signins.add_argument("--login", default="", help="only this sign-in name's lines")
    signins.add_argument("--limit", type=int, default=50, help="at most this many lines (default 50)")
    signins.set_defaults(handler=run_signins)

    for action, verb in (("grant", "give"), ("revoke", "take away")):
        sub = actions.add_parser(action, help=f"{verb} roles")
        sub.add_argument("staff", help="sign-in name or staff id")
        sub.add_argument("roles", nargs="+", help="roles of the policy (id or name, e.g. supervisor or 主管)")
        sub.set_defaults(handler=run_roles, grant=action == "grant")


def _mask(phone: str | None) -> str:
    if not phone:
        return "—"
    digits = phone.replace(" ", "").replace("-", "")
    return digits[:3] + "*" * max(len(digits) - 7, 0) + digits[-4:] if len(digits) > 7 else "****"


def run_add(args: argparse.Namespace) -> int:
    entry = StaffEntry(
        name=args.name,
        login=args.login,
        roles=args.role,
        email=args.email,
        phone=args.phone,
        supervisor=args.supervisor,
        on_duty=args.on_duty,
    )
    try:
        with unit_of_work() as session:
            [person] = add_people(session, [(1, entry)], current_policy())
            shown = f"staff {person.id} {person.login}"
    except ImportRefused as refused:
        raise UsageError("; ".join(p.reason for p in refused.problems)) from None
    print(f"kefu staff add: added {shown}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    names = current_policy().roles.names
    with unit_of_work() as session:
        query = select(Staff).order_by(Staff.id)
        if not args.all:
            query = query.where(Staff.active.is_(True))
        people = list(session.scalars(query))
        logins = {p.id: p.login or str(p.id) for p in people}
        for person in people:
            roles = ", ".join(f"{r.value}({names[r]})" for r in sorted(person.roles)) or "—"
            boss = "—"
            if person.supervisor_id is not None:
                boss = logins.get(person.supervisor_id) or str(person.supervisor_id)
            duty = ",".join(person.on_duty) or "—"
            state = "" if person.active else "  [deactivated]"
            print(
                f"{person.id:>5}  {person.login or '—':<16} {person.name:<10} roles: {roles}  supervisor: {boss}  "
                f"on duty: {duty}  email: {person.email or '—'}  phone: {_mask(person.phone)}{state}"
            )
    if not people:
        print("no staff")
    return 0


def run_import(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    try:
        entries = read_rows(path)
        with unit_of_work() as session:
            added = add_people(session, entries, current_policy())
            count = len(added)
    except ImportRefused as refused:
        import sys

        print(f"kefu staff import: {path.name}: nothing imported; fix these rows:", file=sys.stderr)
        for problem in refused.problems:
            print(f"  line {problem.line}: {problem.reason}", file=sys.stderr)
        return 2
    except DirectoryError as exc:
        raise UsageError(f"nothing imported: {exc}") from None
    print(f"kefu staff import: {count} people added from {path.name}")
    return 0


def run_deactivate(args: argparse.Namespace) -> int:
    try:
        with unit_of_work() as session:
            person = get_staff(session, args.staff)
            deactivate(session, person)
            shown = person.login or str(person.id)
    except DirectoryError as exc:
        raise UsageError(str(exc)) from None
    print(f"kefu staff deactivate: {shown} deactivated")
    return 0


def run_roles(args: argparse.Namespace) -> int:
    policy = current_policy()
    try:
        roles = [parse_role(r, policy) for r in args.roles]
        with unit_of_work() as session:
            person = get_staff(session, args.staff)
            set_roles(session, person, roles, grant=args.grant)
            now = ", ".join(sorted(r.value for r in person.roles)) or "none"
            shown = person.login or str(person.id)
    except DirectoryError as exc:
        raise UsageError(str(exc)) from None
    print(f"kefu staff {'grant' if args.grant else 'revoke'}: {shown} now has roles: {now}")
    return 0


def run_password(args: argparse.Namespace) -> int:
    from kefu.models.base import utcnow
    from kefu.models.signin import reset_password

    try:
        with unit_of_work() as session:
            person = get_staff(session, args.staff)
            if not person.active:
                raise UsageError(f"{args.staff} is deactivated: a deactivated person cannot sign in")
            if not person.login:
                raise UsageError(f"staff {person.id} has no sign-in name")
            password = reset_password(session, person, utcnow())
            login = person.login
    except DirectoryError as exc:
        raise UsageError(str(exc)) from None
    print(
        f"kefu staff password: one-time password for '{login}': {password}\n"
        "  (shown only now and stored only as a hash; it must be changed at the first sign-in)"
    )
    return 0


def run_signins(args: argparse.Namespace) -> int:
    """The audit lines ``kefu.desk.audit`` wrote to the entrance's log (``kefu/desk/audit.py``)."""
    from kefu.settings import get_settings

    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    log = get_settings().var_dir / "logs" / "desk.log"
    if not log.exists():
        print(f"no sign-ins recorded: {log} does not exist (the entrance has not run here)")
        return 0
    marker, wanted = "kefu.desk.audit: ", f"login={args.login.strip().lower()} "
    lines = []
    with log.open(encoding="utf-8", errors="replace") as text:
        for line in text:
            if marker in line and (not args.login or wanted in line):
                lines.append(line.rstrip("\n").replace(marker, "", 1))
                del lines[: -args.limit]
    for line in lines:
        print(line)
    if not lines:
        print("no sign-ins recorded" + (f" for {args.login}" if args.login else ""))
    return 0
