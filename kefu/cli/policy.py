"""``kefu policy check [FILE]``: validate a policy file before it is put in service."""

from __future__ import annotations

import argparse
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from kefu.cli import UsageError
from kefu.models.policy import Duration, Policy, load_policy
from kefu.settings import get_settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("policy", help="the policy file")
    actions = parser.add_subparsers(dest="policy_action", required=True)
    check = actions.add_parser("check", help="validate a policy file (default: the configured one)")
    check.add_argument("file", nargs="?", type=Path)
    check.set_defaults(handler=run_check)
    replan = actions.add_parser(
        "replan",
        help="move the open cases to the configured policy file and re-plan their open deadlines (audited)",
    )
    replan.add_argument("--as", dest="as_staff", required=True, metavar="STAFF", help="sign-in name or staff id")
    replan.set_defaults(handler=run_replan)


def run_check(args: argparse.Namespace) -> int:
    path: Path = args.file or get_settings().policy_file
    policy = load_policy(path)  # PolicyError → one message, exit 2 (kefu.cli.main)
    severities = ", ".join(
        f"{s.value} ({len(r.milestones)} milestones)" for s, r in policy.complaints.severities.items()
    )
    print(f"policy file {path} is valid: {severities}")
    company = policy.company_settings()
    if company:
        print("company settings (the seeds state no value; sources: company):")
        for key, value in company.items():
            print(f"  {key}: {_shown(value)}")
    _show_open_cases(policy)
    return 0


def _show_open_cases(policy: Policy) -> None:
    """What this policy would change for the open cases (nothing changes until ``kefu policy replan``)."""
    from sqlalchemy.exc import SQLAlchemyError

    from kefu.models.db import unit_of_work
    from kefu.tasks.replan import open_cases_changed

    settings = get_settings()
    if not settings.database_url and not settings.embedded_pg_dir.exists():
        print("open cases: none (no database yet)")  # never create the embedded database just to look
        return
    try:
        with unit_of_work() as session:
            changes = open_cases_changed(session, policy)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        print(f"open cases: not checked (the database cannot be read: {reason})")
        return
    if not changes:
        print("open cases: all follow this policy")
        return
    print(f"open cases following another policy: {len(changes)} (kefu policy replan --as STAFF moves them):")
    for change in changes:
        moves = "; ".join(f"{m} {a or '—'} → {b or '—'}" for m, (a, b) in change.moves.items()) or "no deadline moves"
        print(f"  {change.case_no}: {moves}")


def run_replan(args: argparse.Namespace) -> int:
    from kefu.models.db import unit_of_work
    from kefu.models.directory import find_staff
    from kefu.models.policy import current_policy
    from kefu.tasks.casework import StepRejected, system_clock
    from kefu.tasks.replan import replan_open_cases

    policy = current_policy()
    with unit_of_work() as session:
        person = find_staff(session, args.as_staff)
        if person is None or not person.active:
            raise UsageError(f"--as {args.as_staff}: no active staff member by that sign-in name or id")
        try:
            changes = replan_open_cases(session, policy, person, system_clock())
        except StepRejected as refused:
            raise UsageError(f"--as {args.as_staff}: {refused}") from None
    for change in changes:
        moves = "; ".join(f"{m} {a or '—'} → {b or '—'}" for m, (a, b) in change.moves.items()) or "no deadline moves"
        print(f"{change.case_no}: {moves}")
    print(f"re-planned {len(changes)} open case(s) on the policy in {get_settings().policy_file}")
    return 0


def _shown(value: object) -> str:
    """A policy value on one line, as the policy file writes it."""
    if isinstance(value, Duration):
        return str(value)
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    if isinstance(value, BaseModel):
        return _shown(dict(value))
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_shown(k)}: {_shown(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return str(value.value if isinstance(value, Enum) else value)
