"""``kefu assessment``: the monthly staff assessment (员工月度考核, seed 004 §5) — the ranked table of a month."""

from __future__ import annotations

import argparse
from typing import Any

from kefu.cli import UsageError
from kefu.models.db import unit_of_work

# Who sees the whole team's table; anyone else sees only their own row.
SEES_ALL = ("supervisor", "senior_manager", "admin")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("assessment", help="the monthly staff assessment (员工月度考核)")
    actions = parser.add_subparsers(dest="assessment_action", required=True)
    show = actions.add_parser("show", help="a month's ranked table (pass and excellent marks, what was missing)")
    show.add_argument("--month", required=True, help="YYYY-MM, e.g. 2026-11")
    show.add_argument(
        "--as",
        dest="as_staff",
        metavar="LOGIN",
        help="who is looking (sign-in name or staff id): without a supervisor, senior manager or admin role, only "
        "their own row",
    )
    show.set_defaults(handler=run_show)


def run_show(args: argparse.Namespace) -> int:
    from kefu.models.directory import find_staff
    from kefu.models.policy import Role, current_policy
    from kefu.tasks import assessment

    policy = current_policy()
    try:
        assessment.parse_month(args.month)
    except assessment.AssessmentRefused as refused:
        raise UsageError(str(refused)) from None
    with unit_of_work() as session:
        only: int | None = None
        if args.as_staff is not None:
            person = find_staff(session, args.as_staff)
            if person is None or not person.active:
                raise UsageError(f"--as {args.as_staff}: no active staff member by that sign-in name or id")
            if not person.roles & {Role(r) for r in SEES_ALL}:
                only = person.id
        if not assessment.sheets_of(session, args.month):
            print(f"{args.month}: 暂无考核数据 / no assessment for this month")
            return 0
        published = assessment.is_published(session, args.month)
        rows = assessment.table_rows(session, policy, args.month, only_staff=only)
    state = "已公布" if published else "进行中（尚未公布，未排名）"
    print(f"{args.month} 员工月度考核 · {state}")
    widths = [max(_width(str(c)), *(_width(r[i]) for r in rows)) for i, c in enumerate(assessment.COLUMNS)]
    print("  ".join(_pad(c, w) for c, w in zip(assessment.COLUMNS, widths, strict=True)).rstrip())
    for row in rows:
        print("  ".join(_pad(v, w) for v, w in zip(row, widths, strict=True)).rstrip())
    if not rows:
        print("（没有您的考核表 / no sheet of yours this month）")
    print(assessment.marks_note(policy))
    return 0


def _width(text: str) -> int:
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))
