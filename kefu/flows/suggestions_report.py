"""The reasonable suggestions of the last complete month, for management (seed 000 ch.4 §4: 合理化建议上报管理层): a
markdown artifact ``reasonable-suggestions`` (with the feedback still open past its department's deadline), on
the monthly report's schedule (``reports.monthly_schedule``)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from kefu.models.db import unit_of_work
from kefu.models.policy import current_policy
from kefu.tasks.feedback import month_bounds, suggestions_markdown

ARTIFACT_KEY = "reasonable-suggestions"


@flow(name="suggestions-report", log_prints=False)
def suggestions_report(month: str | None = None, at: dt.datetime | None = None) -> str:
    """``month`` as YYYY-MM (default: the month before ``at``, default now, on the policy's clock); the markdown."""
    policy = current_policy()
    now = at or dt.datetime.now(dt.UTC)
    if month is None:
        first = now.astimezone(ZoneInfo(policy.timezone)).date().replace(day=1)
        last_month = first - dt.timedelta(days=1)
        year, number = last_month.year, last_month.month
    else:
        year, number = (int(part) for part in month.split("-"))
    start, end = month_bounds(year, number, policy.timezone)
    with unit_of_work() as session:
        markdown = suggestions_markdown(session, policy, start, end, now)
    create_markdown_artifact(key=ARTIFACT_KEY, markdown=markdown, description="Reasonable suggestions for management")
    get_run_logger().info("reasonable suggestions of %04d-%02d reported", year, number)
    return markdown
