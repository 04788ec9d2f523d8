"""The deadline sweeper: warnings, breaches, escalations and reminders from the database.

The database is the timer: a sweep that runs late, twice, or after a restart fires each notice exactly once
(keyed audit events, the milestone's warned/breached/level columns), and met milestones never fire. What fired is
announced as case events (``kefu.case.milestone.warning``, ``...breached``, ``kefu.case.escalated``) once the
sweep's unit of work has committed.
"""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger

from kefu.engine.events import case_work
from kefu.models.policy import current_policy
from kefu.tasks import casework, escalation
from kefu.worktime import calendar_for


def sweep_deadlines(now: dt.datetime) -> list[str]:
    """One sweep at ``now``: what fired (case numbers and milestone ids), committed, then announced."""
    policy = current_policy()
    with case_work() as session:
        return escalation.sweep(session, policy, calendar_for(policy), now)


@flow(name="case-deadlines", log_prints=False)
def case_deadlines() -> int:
    fired = sweep_deadlines(casework.system_clock())
    for item in fired:
        get_run_logger().info("fired %s", item)
    return len(fired)
