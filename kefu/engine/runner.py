"""Kefu's runner: serves the deployments and executes their runs inside this one long-lived process.

Why not ``flow.serve``: Prefect's runner starts a new Python process for every flow run, and a complaint
case is one flow run resumed after every human step, so every step paid a process start (about a second of
CPU on these machines, most of it importing Prefect). Here the Prefect engine executes each claimed run in a
worker thread of this process. The runs are ordinary Prefect runs of ordinary deployments: states, logs,
run inputs, the resume form, "Run" and "Cancel" in the UI all behave as with ``flow.serve``.

What the runner guarantees:

- **claim**: a due Scheduled run is proposed Pending; a run another runner claimed first is left alone. The
  claim is marked on the run (``infrastructure_pid = kefu:<host>:<pid>``) so it can be checked later.
- **orphans**: a Pending or Running run of a *resumable* deployment whose claimant is gone (its process on
  this host is dead, or it is this process but the run is not executing here, or another host's claim is
  older than ``runner_orphan_seconds``) is put back to Scheduled and runs again from the top: every side
  effect of those flows is keyed in the database, so nothing happens twice. This is what makes a kill -9
  of the runner, or a Prefect server restart in the middle of a step, lose no case.
- **cancel**: a Cancelling run that no live runner holds (a case waiting for a person) becomes Cancelled.
- a failing flow fails its own run, never the runner; API outages are logged and retried every poll.

Start it with ``python -m kefu.engine.runner`` (``kefu up`` does). ``main`` first checks the private Prefect
parts Kefu relies on (``kefu.engine.prefect_private``) and stops with the installed Prefect version if one
moved, then serves with Prefect's suspension observer switched off for as long as it runs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from uuid import UUID

from kefu.deployments import Served
from kefu.engine import prefect_private

log = logging.getLogger("kefu.runner")
CLAIM_PREFIX = "kefu:"
CLAIMED_STATES = ["PENDING", "RUNNING"]


def claim_mark(pid: int | None = None) -> str:
    return f"{CLAIM_PREFIX}{socket.gethostname()}:{pid or os.getpid()}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claimant_gone(mark: str | None, *, in_flight: bool, state_age: dt.timedelta, orphan_after: dt.timedelta) -> bool:
    """Whether the process that claimed a Pending/Running run can no longer be executing it."""
    if in_flight:
        return False
    if not mark or not mark.startswith(CLAIM_PREFIX):
        return state_age > orphan_after  # claimed by something else (an old ``flow.serve``): wait it out
    host, _, pid = mark[len(CLAIM_PREFIX) :].rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return state_age > orphan_after
    return int(pid) == os.getpid() or not _process_alive(int(pid))


class InProcessRunner:
    """Polls the Prefect API for the served deployments' runs and executes them in worker threads."""

    def __init__(
        self,
        served: Sequence[Served],
        *,
        workers: int,
        poll_seconds: float,
        orphan_seconds: float,
    ) -> None:
        self._served = list(served)
        self._poll_seconds = poll_seconds
        self._orphan_after = dt.timedelta(seconds=orphan_seconds)
        self._flows: dict[UUID, Any] = {}
        self._resumable: set[UUID] = set()
        self._in_flight: dict[UUID, Future[None]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._wake = threading.Event()  # a worker finished: look for the next run now, not at the next poll
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kefu-run")
        self._workers = workers
        self._mark = claim_mark()
        self._next_sweep = 0.0  # orphans and cancellations: at start-up, then every few polls
        self._profile, self._settings = _engine_settings()

    # --- start-up ------------------------------------------------------------------------------------

    def register(self) -> None:
        """Create or update every deployment on the server (the UI lists them; "Run" works at once)."""
        for item in self._served:
            deployment_id = item.deployment.apply()
            self._flows[deployment_id] = item.flow
            if item.resumable:
                self._resumable.add(deployment_id)
            log.info("serving deployment %s (%s)", item.name, deployment_id)

    # --- the loop ------------------------------------------------------------------------------------

    def run(self) -> None:
        """Poll until ``stop``; then let executing runs reach their next wait and return.

        Runs with the Prefect settings of the thread that built the runner, whichever thread calls it.
        """
        from prefect.context import SettingsContext

        with SettingsContext(profile=self._profile, settings=self._settings):
            self._serve()

    def _serve(self) -> None:
        from prefect.client.orchestration import get_client

        self.register()
        print(f"Kefu runner: serving {len(self._flows)} deployments in process {os.getpid()}", flush=True)
        with get_client(sync_client=True) as client:
            while not self._stopping.is_set():
                try:
                    self.poll_once(client)
                except Exception as exc:  # the API is down or restarting: keep going, nothing is lost
                    log.warning("poll failed (%s); retrying in %.1f s", exc, self._poll_seconds)
                self._wake.wait(self._poll_seconds)
                self._wake.clear()
        self._pool.shutdown(wait=True)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def poll_once(self, client: Any) -> int:
        """One pass: adopt orphans, finish cancellations, claim and start due runs. Returns runs started."""
        if time.monotonic() >= self._next_sweep:
            self._adopt_orphans_and_cancel(client)
            self._next_sweep = time.monotonic() + 5 * self._poll_seconds
        free = self._workers - self.executing()
        if free <= 0:
            return 0
        due = client.get_scheduled_flow_runs_for_deployments(
            deployment_ids=list(self._flows),
            scheduled_before=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1),
            limit=free,
        )
        started = 0
        for flow_run in due:
            if flow_run.id in self._in_flight or not self._claim(client, flow_run):
                continue
            self._start(flow_run)
            started += 1
        return started

    def executing(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def _claim(self, client: Any, flow_run: Any) -> bool:
        from prefect.client.schemas.objects import StateType
        from prefect.states import Pending

        result = client.set_flow_run_state(flow_run.id, Pending(), force=False)
        if result.state is None or result.state.type is not StateType.PENDING:
            return False  # another runner got it, or a concurrency limit holds it back
        client.update_flow_run(flow_run.id, infrastructure_pid=self._mark)
        return True

    def _start(self, flow_run: Any) -> None:
        with self._lock:
            self._in_flight[flow_run.id] = self._pool.submit(self._execute, flow_run)

    def _execute(self, flow_run: Any) -> None:
        from prefect.context import SettingsContext
        from prefect.exceptions import Pause

        try:
            with SettingsContext(profile=self._profile, settings=self._settings):
                outcome = prefect_private.run_flow(self._flows[flow_run.deployment_id], flow_run)
                if inspect.iscoroutine(outcome):  # async flows (deliver-mail) get their own event loop
                    asyncio.run(outcome)
        except Pause:
            pass  # suspended: the run now waits for a person (recorded on the run by the engine)
        except BaseException:  # the engine has recorded the failure on the run; the runner carries on
            log.exception("flow run %s ended with an error", flow_run.id)
        finally:
            with self._lock:
                self._in_flight.pop(flow_run.id, None)
            self._wake.set()

    def _adopt_orphans_and_cancel(self, client: Any) -> None:
        from prefect.states import Cancelled, Scheduled

        # Runs executing here before the query: one that is not among them cannot have been executing here
        # when its state was read (only this thread starts runs), and one that finished since then was in it.
        with self._lock:
            executing_before = set(self._in_flight)
        now = dt.datetime.now(dt.UTC)
        for flow_run in runs_in_states(client, list(self._flows), [*CLAIMED_STATES, "CANCELLING"]):
            if flow_run.id in executing_before or flow_run.state is None:
                continue
            gone = claimant_gone(
                flow_run.infrastructure_pid,
                in_flight=False,
                state_age=now - flow_run.state.timestamp,
                orphan_after=self._orphan_after,
            )
            cancelling = flow_run.state.type.value == "CANCELLING"
            if not (gone or (cancelling and not flow_run.infrastructure_pid)):
                continue  # another live runner has it and will finish or cancel it
            if cancelling:
                client.set_flow_run_state(flow_run.id, Cancelled(message="已取消（操作员在界面中取消）"), force=True)
                log.info("flow run %s cancelled", flow_run.id)
            elif flow_run.deployment_id in self._resumable:
                message = f"重新执行：原执行者 {flow_run.infrastructure_pid or '未知'} 已不在"
                client.set_flow_run_state(flow_run.id, Scheduled(name="Rescheduled", message=message), force=True)
                log.warning("flow run %s orphaned by %s: rescheduled", flow_run.id, flow_run.infrastructure_pid)


def _engine_settings() -> tuple[Any, Any]:
    """Prefect's settings for the runs, computed once (a copy costs ~0.15 s of CPU).

    No heartbeat thread: joining it costs up to a second at the end of every execution, and what it is for
    (finding runs whose process died) is the orphan sweep's job here.
    """
    from prefect.context import get_settings_context
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

    context = get_settings_context()
    return context.profile, context.settings.copy_with_update(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})


def runs_in_states(client: Any, deployment_ids: list[UUID], states: list[str], *, page: int = 200) -> list[Any]:
    """Every run of these deployments in these states, read ``page`` at a time until a short page.

    Every filter is explicit: fastapi 0.151–0.154 rejects nulls. A run whose state changes while the pages are
    read can shift the later pages: it may be missed until the next sweep, and it is reported at most once.
    """
    from prefect.client.schemas.objects import FlowRun

    found: dict[UUID, Any] = {}
    offset = 0
    while True:
        body = {
            "flow_runs": {"state": {"type": {"any_": states}}},
            "deployments": {"id": {"any_": [str(i) for i in deployment_ids]}},
            "sort": "ID_DESC",
            "limit": page,
            "offset": offset,
        }
        response = client.request("POST", "/flow_runs/filter", json=body)
        response.raise_for_status()
        runs = FlowRun.model_validate_list(response.json())
        found.update((run.id, run) for run in runs if run.id not in found)
        if len(runs) < page:
            return list(found.values())
        offset += page


def serve(served: Sequence[Served]) -> None:
    """Serve these deployments with the runner settings until SIGTERM or SIGINT (main thread only).

    Checks the private Prefect parts first (``PrefectChanged`` names the installed version) and keeps Prefect's
    suspension observer switched off while serving.
    """
    from kefu.settings import get_settings

    settings = get_settings()
    runner = InProcessRunner(
        served,
        workers=settings.runner_workers,
        poll_seconds=settings.runner_poll_seconds,
        orphan_seconds=settings.runner_orphan_seconds,
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: runner.stop())
    with prefect_private.without_suspension_observer():  # checks first: raises before anything is registered
        runner.run()


def main() -> None:
    from kefu.deployments import all_deployments
    from kefu.settings import get_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    only = set(get_settings().serve_only)
    try:
        serve([d for d in all_deployments() if not only or d.name in only])
    except prefect_private.PrefectChanged as exc:
        raise SystemExit(f"kefu runner cannot start: {exc}") from exc


if __name__ == "__main__":
    main()
