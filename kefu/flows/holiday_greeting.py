"""Holiday greeting: every morning, queue the greetings due before the coming public holidays (the policy's
``greetings``), and leave who was greeted and who was skipped, and why, in the run's artifact."""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from kefu.models.db import unit_of_work
from kefu.models.policy import current_policy
from kefu.tasks.greetings import GreetingReport, greet_customers
from kefu.worktime import calendar_for


@flow(name="holiday-greeting", log_prints=False)
def holiday_greeting(at: dt.datetime | None = None) -> dict[str, int]:
    """Queue the greetings due ``at`` (default: now) once per customer and holiday (a re-run queues nothing new)."""
    policy = current_policy()
    with unit_of_work() as session:
        report: GreetingReport = greet_customers(session, policy, calendar_for(policy), at or dt.datetime.now(dt.UTC))
    create_markdown_artifact(
        key="holiday-greeting", markdown=report.markdown(), description="Holiday greetings queued and skipped"
    )
    get_run_logger().info("holiday greetings: %d queued, %d skipped", len(report.queued), len(report.skipped))
    return {"queued": len(report.queued), "skipped": len(report.skipped)}
