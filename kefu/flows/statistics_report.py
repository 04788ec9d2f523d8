"""The statistics report (seed 003 §3.4: complaint statistics and cause analysis for management), weekly and
monthly: compute the period's figures once, write the HTML report and the XLSX workbook, show the figures on the
run's page (a markdown summary, one table artifact per table, a link to the files) and mail both files to the
policy's management recipients through the outbox.

Re-running a period writes the same files again and queues no second mail (one per period and recipient).
"""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from kefu.models.db import default_engine, reading, unit_of_work
from kefu.models.policy import current_policy
from kefu.settings import get_settings
from kefu.tasks.report_files import (
    ReportFiles,
    artifact_tables,
    file_url,
    load_renderers,
    markdown_summary,
    queue_mail,
    write_files,
)
from kefu.tasks.reports import Figures, Kind, compute, last_complete, parse_period
from kefu.worktime import WorkCalendar


def report_period(kind: Kind, period: str | None, now: dt.datetime) -> str:
    """The period a run reports on: the one given, else the last complete one on the policy's clock."""
    zone = current_policy().timezone
    return (parse_period(kind, period, zone) if period else last_complete(kind, now, zone)).label


@task(task_run_name="compute the {kind} figures of {label}")
def compute_figures(kind: Kind, label: str, now: dt.datetime) -> Figures:
    policy = current_policy()
    period = parse_period(kind, label, policy.timezone)
    load_renderers()
    with reading(default_engine()).connect() as connection:  # on SQLite: no write lock, intake never waits
        return compute(connection, policy, WorkCalendar(policy), period, now=now)


@task(task_run_name="write the report files of {figures.period.label}")
def write_report_files(figures: Figures, now: dt.datetime) -> ReportFiles:
    return write_files(figures, get_settings().resolved_reports_dir, now)


@task(task_run_name="show the figures of {figures.period.label} on the run page")
def publish_artifacts(figures: Figures, files: ReportFiles) -> None:
    slug = figures.period.slug.lower()
    create_markdown_artifact(
        key=f"report-{slug}", markdown=markdown_summary(figures, files), description=figures.period.title
    )
    for key, description, rows in artifact_tables(figures):
        create_table_artifact(key=key, table=rows, description=description)
    create_link_artifact(
        key=f"report-{slug}-files",
        link=file_url(files.html),
        link_text=f"{figures.period.title}（HTML，登录员工入口后打开）",
    )


@task(task_run_name="mail the report of {figures.period.label} to management", retries=2, retry_delay_seconds=30)
def mail_report(figures: Figures, files: ReportFiles, now: dt.datetime) -> int:
    with unit_of_work(default_engine()) as session:
        return len(queue_mail(session, figures, files, current_policy(), now=now))


@flow(name="statistics-report", flow_run_name="{kind} report", log_prints=False)
def statistics_report(kind: Kind = "monthly", period: str | None = None) -> str:
    logger = get_run_logger()
    now = dt.datetime.now(dt.UTC)
    label = report_period(kind, period, now)
    figures = compute_figures(kind, label, now)
    files = write_report_files(figures, now)
    publish_artifacts(figures, files)
    mails = mail_report(figures, files, now)
    logger.info(
        "%s: %d complaints; %s and %s written; %d mail(s) queued", label, figures.total, files.html, files.xlsx, mails
    )
    return str(files.html)
