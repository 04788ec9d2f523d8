"""``kefu report monthly --month 2026-11`` / ``kefu report weekly --week 2026-W47``: the statistics report of a
period now, with a progress bar; writes the HTML and XLSX files under ``KEFU_REPORTS_DIR`` (default
``var/reports``) and prints their paths. ``--mail`` also queues the mail to the policy's management recipients
(as the scheduled flows do; once per period)."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from kefu.cli import UsageError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("report", help="the statistics report of a week or a month (HTML and XLSX files)")
    actions = parser.add_subparsers(dest="report_action", required=True)
    monthly = actions.add_parser("monthly", help="the report of one month (default: the last complete month)")
    monthly.add_argument("--month", help="YYYY-MM, e.g. 2026-11")
    weekly = actions.add_parser("weekly", help="the report of one ISO week (default: the last complete week)")
    weekly.add_argument("--week", help="YYYY-Www, e.g. 2026-W47")
    for sub in (monthly, weekly):
        sub.add_argument(
            "--to", type=Path, help="directory for the files (default: KEFU_REPORTS_DIR, else var/reports)"
        )
        sub.add_argument("--mail", action="store_true", help="also mail both files to the policy's recipients")
        sub.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from kefu.models.db import default_engine, reading, unit_of_work
    from kefu.models.policy import current_policy
    from kefu.settings import get_settings
    from kefu.tasks.report_files import load_renderers, queue_mail, write_files
    from kefu.tasks.reports import ReportError, compute, last_complete, parse_period
    from kefu.worktime import WorkCalendar

    policy = current_policy()
    kind = args.report_action
    text = args.month if kind == "monthly" else args.week
    now = dt.datetime.now(dt.UTC)
    try:
        period = parse_period(kind, text, policy.timezone) if text else last_complete(kind, now, policy.timezone)
    except ReportError as exc:
        raise UsageError(str(exc)) from exc
    directory = (args.to or get_settings().resolved_reports_dir).resolve()
    stages = ["counting complaints", "counting departments", "checking milestones", "measuring durations"]
    steps = len(stages) + 2 + (1 if args.mail else 0)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn()
    ) as bar:
        job = bar.add_task(period.title, total=steps)

        def progress(stage: str) -> None:
            if stage in stages:
                bar.update(job, advance=1, description=f"{period.label}: {stage}")

        load_renderers()
        with reading(default_engine()).connect() as connection:
            figures = compute(connection, policy, WorkCalendar(policy), period, now=now, progress=progress)
        bar.update(job, advance=1, description=f"{period.label}: writing the files")
        files = write_files(figures, directory, now)
        bar.update(job, advance=1)
        mailed: list[str] = []
        if args.mail:
            bar.update(job, description=f"{period.label}: queueing the mail")
            with unit_of_work(default_engine()) as session:
                rows = queue_mail(session, figures, files, policy, now=now)
                recipients = policy.reports.recipients
                mailed = [mail_line(row, who, now) for row, who in zip(rows, recipients, strict=True)]
            bar.update(job, advance=1)
        bar.update(job, description=f"{period.label}: done")
    print(f"{period.title}: {figures.total} complaints")
    print(files.html)
    print(files.xlsx)
    for line in mailed:
        print(line)
    return 0


def mail_line(row: Any, recipient: Any, now: dt.datetime) -> str:
    """What --mail did for one recipient: queued now, or queued by an earlier run of the period (not again)."""
    from kefu.worktime import local_time

    who = f"{recipient.name} <{recipient.email}>"
    queued_at = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=dt.UTC)
    if queued_at >= now:
        return f"mail to {who} queued (internal: leaves at once, both files attached)"
    return (
        f"mail to {who} was queued by an earlier run at {local_time(row.created_at)} and is not queued again "
        f"(it carries that run's figures)"
    )
