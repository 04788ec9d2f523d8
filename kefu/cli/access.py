"""``kefu access log``: who read customers' personal data in full — when, which case, through what, and why the rule
let them (``kefu.tasks.customer_data``). For supervisors and senior managers only (``--as``)."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from kefu.cli import UsageError
from kefu.models.db import unit_of_work


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("access", help="the access log of customers' personal data")
    actions = parser.add_subparsers(dest="access_action", required=True)
    log = actions.add_parser("log", help="who read a customer's personal data in full (supervisors only)")
    log.add_argument("--case", help="only readings of this case")
    log.add_argument("--staff", help="only readings by this person (sign-in name or staff id)")
    log.add_argument("--since", help="only from this day or time on (YYYY-MM-DD or ISO 8601; Shanghai time)")
    log.add_argument("--as", dest="as_staff", metavar="STAFF", required=True, help="who asks: a supervisor")
    log.set_defaults(handler=run_log)


def parse_since(text: str, tz: str) -> dt.datetime:
    """``2026-12-01`` (the start of that day) or an ISO time; without an offset, in the policy's time zone."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--since {text}: give a day (2026-12-01) or a time (2026-12-01T09:00)") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=ZoneInfo(tz))


def run_log(args: argparse.Namespace) -> int:
    from kefu.models.directory import find_staff
    from kefu.models.policy import current_policy
    from kefu.tasks.casework import CaseNotFound, get_case
    from kefu.tasks.customer_data import AccessLogRefused, access_log, check_access_log_reader
    from kefu.worktime import local_time

    since = None if args.since is None else parse_since(args.since, current_policy().timezone)
    with unit_of_work() as session:
        asker = find_staff(session, args.as_staff)
        if asker is None or not asker.active:
            raise UsageError(f"--as {args.as_staff}: no active staff member by that sign-in name or id")
        try:
            check_access_log_reader(asker)
        except AccessLogRefused as refused:
            raise UsageError(str(refused)) from None
        staff_id = None
        if args.staff is not None:
            person = find_staff(session, args.staff)
            if person is None:
                raise UsageError(f"--staff {args.staff}: no staff member by that sign-in name or id")
            staff_id = person.id
        if args.case is not None:
            try:
                get_case(session, args.case)
            except CaseNotFound:
                raise UsageError(f"no case {args.case}") from None
        rows = access_log(session, case_no=args.case, staff_id=staff_id, since=since)
    if not rows:
        print("no readings of customers' personal data")
    for row in rows:
        print(
            f"{local_time(row.at)}  {row.staff:<16} {row.staff_name:<8} case {row.case_no or '—':<20} "
            f"via {row.through:<16} ({row.reason})"
        )
    return 0
