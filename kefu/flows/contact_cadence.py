"""Contact cadence (客户沟通频率, seed 003 §2.3): every working day, find the key accounts without a phone or
face-to-face contact this month or without a business review this quarter, and the general customers without a
contact this quarter (the policy's ``contact_cadence``); remind each gap's owner before its period ends, escalate a
gap still open when its period is over to the owner's supervisor, never tell the same gap twice, and leave who was
told and why (customer codes, no personal data) in the run's artifact. On a day off the run does nothing."""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from kefu.models.db import unit_of_work
from kefu.models.policy import current_policy
from kefu.tasks.cadence import CadenceReport, check_cadence
from kefu.worktime import calendar_for

ARTIFACT_KEY = "contact-cadence"


@task(task_run_name="find the cadence gaps and tell their owners")
def remind_and_escalate(at: dt.datetime) -> CadenceReport:
    """Each reminder and escalation written once (customer, gap, period, stage), its mail in the same unit of work."""
    policy = current_policy()
    with unit_of_work() as session:
        return check_cadence(session, policy, calendar_for(policy), at)


def publish_summary(report: CadenceReport) -> None:
    create_markdown_artifact(key=ARTIFACT_KEY, markdown=report.markdown(), description="Contact cadence: who was told")


@flow(name="contact-cadence", log_prints=False)
def contact_cadence(at: dt.datetime | None = None) -> dict[str, int]:
    """The day's check (``at``: default now); a re-run the same day tells nobody again."""
    report = remind_and_escalate(at or dt.datetime.now(dt.UTC))
    publish_summary(report)
    reminded = sum(1 for n in report.notices if n.stage == "reminded")
    escalated = len(report.notices) - reminded
    logger = get_run_logger()
    if not report.working_day:
        logger.info("%s is not a working day: no cadence reminders", report.day)
    logger.info("contact cadence %s: %d reminded, %d escalated", report.day, reminded, escalated)
    return {"reminded": reminded, "escalated": escalated}
