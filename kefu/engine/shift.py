"""A duty's shift: one flow run a day that does its pass every minute, on the minute, until the day ends.

Why: the sweeper and mail delivery as per-minute deployments put about 2,900 runs a day into the Runs list the
operators work from, burying the cases. A shift keeps them exact to the minute with one run per duty per day:

- **on the minute**: a pass at the start, then one at every minute boundary of the policy's clock until the run's
  day (the local date it was scheduled for) ends; a run that starts after its day has ended does nothing. A pass
  that fails is logged and the next minute tries again (the database is the timer: nothing is lost by a missed
  pass, the next one fires what came due).
- **one at a time**: the duties' deployments have a concurrency limit of 1 (Prefect's lease on the slot, renewed
  by the engine while the run executes; a run whose lease is revoked is stopped by the engine): the next day's run
  starts when the previous one has ended, never beside it.
- **restart after a crash**: the duties' deployments are resumable: a run whose worker died is rescheduled by the
  other workers' orphan sweep (or the restarted worker's) and runs again from the top for the rest of its day;
  ``kefu worker`` also starts a run for today when none is on shift (a fresh install, a run cancelled or failed).
- **the worker stops** (Ctrl-C of ``kefu up``): its shifts end at once (``WORKER_STOPPING``) instead of holding the
  worker's threads until midnight; the next worker to start puts a new run on shift within its first minute.

The passes log only when they do something, and an hourly line says the shift is alive.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from kefu.engine.waiting import run_client

# Set by the Kefu worker when it stops: the shifts executing in its threads end instead of sleeping to midnight.
WORKER_STOPPING = threading.Event()

MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)


class ShiftClock(Protocol):
    """What a shift reads the time from and waits with (the tests' clock jumps instead of sleeping)."""

    def now(self) -> dt.datetime: ...

    def sleep_until(self, moment: dt.datetime) -> None: ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def sleep_until(self, moment: dt.datetime) -> None:
        delay = (moment - self.now()).total_seconds()
        if delay > 0:
            WORKER_STOPPING.wait(delay)  # the shift's own pace, cut short when the worker stops


def day_end(moment: dt.datetime, timezone: str) -> dt.datetime:
    """The next local midnight after ``moment`` (the end of its day in ``timezone``), in UTC."""
    zone = ZoneInfo(timezone)
    local = moment.astimezone(zone)
    midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    return midnight.astimezone(dt.UTC)


def next_minute(moment: dt.datetime) -> dt.datetime:
    return moment.replace(second=0, microsecond=0) + MINUTE


def keep_shift(
    duty: str,
    do_pass: Callable[[dt.datetime], Any],
    *,
    clock: ShiftClock,
    until: dt.datetime,
    log: logging.Logger | logging.LoggerAdapter[Any],
    on_shift: Callable[[], bool] = lambda: True,
) -> int:
    """Call ``do_pass(now)`` now and at every minute boundary before ``until``; returns the number of passes.

    A pass's truthy result is logged (what it did); an exception is logged and the shift goes on. Before each pass
    ``on_shift()`` is asked: False (the run was cancelled, or taken over) ends the shift.
    """
    passes = 0
    alive_at = clock.now()
    moment = alive_at
    while moment < until:
        if WORKER_STOPPING.is_set():
            log.info("%s: the worker is stopping; this shift ends (the next worker starts another)", duty)
            break
        if not on_shift():
            log.warning("%s: this run is no longer on shift; stopping", duty)
            break
        try:
            done = do_pass(moment)
        except Exception:
            log.exception("%s: the pass at %s failed; the next minute tries again", duty, moment.isoformat())
        else:
            if done:
                log.info("%s: %s", duty, done)
        passes += 1
        if moment - alive_at >= HOUR:
            log.info("%s: on shift until %s, %d passes so far", duty, until.isoformat(), passes)
            alive_at = moment
        following = next_minute(moment)
        if following >= until:
            break
        clock.sleep_until(following)
        moment = clock.now()
    return passes


def shift_until(timezone: str, clock: ShiftClock) -> dt.datetime:
    """The end of the day this run was scheduled for (a run rescheduled after a crash keeps its day); outside a
    flow run, the end of today."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    run = context.flow_run if context is not None else None
    start = run.expected_start_time if run is not None and run.expected_start_time is not None else clock.now()
    return day_end(start, timezone)


def run_on_shift() -> bool:
    """Whether the current flow run is still Running (not cancelled, not rescheduled by a worker that believed
    its executor dead): one read of the run per pass. Outside a flow run, or when the API does not answer, True."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return True
    try:
        state = run_client().read_flow_run(context.flow_run.id).state
    except Exception as exc:  # the API is restarting: keep the shift, the database is the timer
        logging.getLogger("kefu.shift").warning("could not read the run's state (%s)", exc)
        return True
    return state is None or state.is_running()


def shift_logger() -> logging.Logger | logging.LoggerAdapter[Any]:
    """The run's logger inside a flow run (the run's page shows it), else this module's."""
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("kefu.shift")
