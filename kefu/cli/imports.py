"""``kefu import business FILE``: monthly business figures per customer, from a CSV or XLSX file, all or nothing."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kefu.cli import UsageError
from kefu.models.db import unit_of_work


def register(subparsers: Any) -> None:
    from kefu.tasks.accounts import FIGURE_COLUMNS

    parser = subparsers.add_parser("import", help="import data files: monthly business figures")
    actions = parser.add_subparsers(dest="import_action", required=True)
    business = actions.add_parser("business", help="monthly figures per customer, every row or none")
    business.add_argument(
        "file",
        type=Path,
        help=f"columns: {', '.join(FIGURE_COLUMNS)}; customer = its code, month = 2026-11; "
        "complaints may stay empty: Kefu counts the customer's complaints of that month",
    )
    business.set_defaults(handler=run_business)


def run_business(args: argparse.Namespace) -> int:
    from kefu.cli.customer import report_refused
    from kefu.models.directory import DirectoryError, ImportRefused
    from kefu.tasks.accounts import import_figures

    path: Path = args.file
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    try:
        with unit_of_work() as session:
            rows = import_figures(session, path)
            count = len(rows)
            customers = len({r.customer_id for r in rows})
    except ImportRefused as refused:
        return report_refused("kefu import business", path.name, refused.problems)
    except DirectoryError as exc:
        raise UsageError(f"nothing imported: {exc}") from None
    print(f"kefu import business: {count} monthly figures of {customers} customers from {path.name}")
    print(open_tasks())
    return 0


def open_tasks() -> str:
    """Improvement tasks for the key accounts' months (from last month on) past a KPI target (seed 001 §三.4)."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from kefu.models.policy import current_policy
    from kefu.tasks.account_followthrough import open_improvement_tasks

    policy = current_policy()
    today = dt.datetime.now(ZoneInfo(policy.timezone)).date()
    last_month = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    with unit_of_work() as session:
        opened = open_improvement_tasks(session, policy, since=last_month)
    if not opened:
        return "improvement tasks: none opened"
    return f"improvement tasks opened ({len(opened)}): {', '.join(opened)}"
