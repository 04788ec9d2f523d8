"""The deadline sweeper: warnings, breaches, escalations and reminders from the database, every minute.

The database is the timer: a sweep that runs late, twice, or after a restart fires each notice exactly once
(keyed audit events, the milestone's warned/breached/level columns), and met milestones never fire. What fired is
announced as case events (``kefu.case.milestone.warning``, ``...breached``, ``kefu.case.escalated``) once the
sweep's unit of work has committed. One run a day keeps the shift (``kefu.engine.shift``): a sweep on every minute.
"""

from __future__ import annotations

import datetime as dt

from prefect import flow

from kefu.engine.events import case_work
from kefu.engine.shift import ShiftClock, SystemClock, keep_shift, run_on_shift, shift_logger, shift_until
from kefu.models.policy import current_policy
from kefu.tasks import escalation
from kefu.worktime import calendar_for

DUTY = "case-deadlines"


def sweep_deadlines(now: dt.datetime) -> list[str]:
    """One sweep at ``now``: what fired (case numbers and milestone ids), committed, then announced."""
    policy = current_policy()
    with case_work() as session:
        return escalation.sweep(session, policy, calendar_for(policy), now)


def sweeper_shift(clock: ShiftClock, until: dt.datetime) -> int:
    """A sweep now and on every minute until ``until``; the number of sweeps."""
    return keep_shift(DUTY, sweep_deadlines, clock=clock, until=until, log=shift_logger(), on_shift=run_on_shift)


@flow(name=DUTY, log_prints=False)
def case_deadlines() -> int:
    """Today's shift of the sweeper (the policy's day): a sweep on every minute until midnight."""
    clock = SystemClock()
    return sweeper_shift(clock, shift_until(current_policy().timezone, clock))
