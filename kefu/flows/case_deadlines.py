"""The deadline sweeper: every minute, warnings, breaches, escalations and reminders from the database.

The database is the timer: a sweep that runs late, twice, or after a restart fires each notice exactly once
(keyed audit events, the milestone's warned/breached/level columns), and met milestones never fire.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from kefu.models.db import unit_of_work
from kefu.models.policy import current_policy
from kefu.tasks import casework, escalation
from kefu.worktime import WorkCalendar


@flow(name="case-deadlines", log_prints=False)
def case_deadlines() -> int:
    policy = current_policy()
    with unit_of_work() as session:
        fired = escalation.sweep(session, policy, WorkCalendar(policy), casework.system_clock())
    for item in fired:
        get_run_logger().info("fired %s", item)
    return len(fired)
