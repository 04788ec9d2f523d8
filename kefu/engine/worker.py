"""Kefu's worker type on a Prefect work pool: each flow run executes in a thread of one long-lived process.

Why not Prefect's process worker (or ``flow.serve``): they start a new Python process for every flow run, and a
complaint case is one flow run resumed after every human step, so every step paid a process start (about a
second of CPU on these machines, most of it importing Prefect). A ``KefuWorker`` is an ordinary Prefect worker
(type ``kefu``, found through the ``prefect.collections`` entry point, so ``prefect worker start --pool kefu
--type kefu`` starts one too): it polls its pool, claims runs, sends heartbeats, obeys the pool's and queues'
concurrency limits and shows on the Work Pools page. Only ``run()`` differs: the Prefect engine executes the
claimed run in one of the worker's threads. Runs stay ordinary Prefect runs (states, logs, run inputs, the resume
form, "Run" and "Cancel" in the UI).

What the worker guarantees, with any number of workers on any number of machines sharing the pool:

- **claim**: Prefect's worker proposes Pending (a run another worker claimed first is left alone). The claim is
  marked on the run: ``infrastructure_pid = kefu:<host>:<pid>``, which is also the worker's name in the pool, so
  the Work Pools page shows who holds a run and the sweep below can tell whether that worker is still alive.
- **orphans**: a Pending or Running run of a *resumable* deployment (job variable ``resumable``) whose claimant is
  gone is put back to Scheduled and runs again from the top: every side effect of those flows is keyed in the
  database, so nothing happens twice. Gone means: its process on this host is dead; or it is this process but the
  run is not executing here; or the claimant is a worker of the pool on another host whose heartbeats stopped
  (Prefect marks it offline); or, for a claimant the pool does not know, the state is older than
  ``worker_orphan_seconds``. A state younger than ``CLAIM_GRACE`` is never touched: another worker may be
  between its Pending proposal and marking the run (the old mark of the previous execution is still on it).
- **cancel**: a Cancelling run that no live worker holds (a case waiting for a person) becomes Cancelled.
- a failing flow fails its own run, never the worker; API outages are logged and retried.

Start it with ``kefu worker`` (``kefu up`` does). At start it checks the private Prefect parts Kefu relies on
(``kefu.engine.prefect_private``) and refuses to start, naming the installed Prefect version, if one moved; while
it runs, Prefect's suspension observer is switched off in its process.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import logging
import os
import socket
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from uuid import UUID

import anyio
from prefect.workers.base import BaseJobConfiguration, BaseVariables, BaseWorker, BaseWorkerResult
from pydantic import Field

from kefu.engine import prefect_private
from kefu.engine.contract import WORK_POOL
from kefu.engine.shift import WORKER_STOPPING

if TYPE_CHECKING:
    from kefu.deployments import Served

log = logging.getLogger("kefu.worker")
WORKER_TYPE = "kefu"
CLAIM_PREFIX = "kefu:"
CLAIMED_STATES = ["PENDING", "RUNNING"]
CLAIM_GRACE = dt.timedelta(seconds=10)
SWEEP_EVERY_POLLS = 5
SHIFT_CHECK_SECONDS = 60.0


def claim_mark(pid: int | None = None) -> str:
    """``kefu:<host>:<pid>``: the mark a worker puts on the runs it claims, and its name in the pool."""
    return f"{CLAIM_PREFIX}{socket.gethostname()}:{pid or os.getpid()}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claimant_gone(
    mark: str | None,
    *,
    executing_here: bool,
    state_age: dt.timedelta,
    orphan_after: dt.timedelta,
    workers_online: dict[str, bool] | None = None,
) -> bool:
    """Whether the worker that claimed a Pending/Running run can no longer be executing it.

    ``workers_online``: the pool's workers by name, True while Prefect counts them online (heartbeats).
    """
    if executing_here:
        return False
    if not mark or not mark.startswith(CLAIM_PREFIX):
        return state_age > orphan_after  # claimed by something else (a process worker?): wait it out
    host, _, pid = mark[len(CLAIM_PREFIX) :].rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        return int(pid) == os.getpid() or not _process_alive(int(pid))
    online = (workers_online or {}).get(mark)
    if online is None:
        return state_age > orphan_after  # a claimant the pool does not know
    return not online


def engine_settings() -> tuple[Any, Any]:
    """Prefect's settings for the runs, computed once (a copy costs ~0.15 s of CPU).

    No flow heartbeat thread: joining it costs up to a second at the end of every execution, and what it is for
    (finding runs whose process died) is the orphan sweep's job here.
    """
    from prefect.context import get_settings_context
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

    context = get_settings_context()
    return context.profile, context.settings.copy_with_update(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})


class KefuJobConfiguration(BaseJobConfiguration):
    resumable: bool = Field(default=False)
    duty: bool = Field(default=False)


class KefuVariables(BaseVariables):
    resumable: bool = Field(
        default=False,
        description="The flow may run again from the top at any moment (every side effect keyed): a run whose "
        "worker died is rescheduled.",
    )
    duty: bool = Field(
        default=False,
        description="A day-long shift (one run a day that works every minute): the workers keep one run on shift.",
    )


class KefuWorkerResult(BaseWorkerResult):
    """How a run's execution in a worker thread ended (0: the engine recorded the run's own state)."""


@prefect_private.with_lean_submission
class KefuWorker(BaseWorker[KefuJobConfiguration, KefuVariables, KefuWorkerResult]):
    """Executes its pool's flow runs in threads of this process with Prefect's engine."""

    type = WORKER_TYPE
    job_configuration = KefuJobConfiguration
    job_configuration_variables = KefuVariables
    _description = "Kefu: executes flow runs in threads of one long-lived process (no process start per run)."
    _documentation_url = "https://example.invalid/kefu#worker"

    def __init__(
        self,
        work_pool_name: str = WORK_POOL,
        work_queues: list[str] | None = None,
        name: str | None = None,
        prefetch_seconds: float | None = None,
        create_pool_if_not_found: bool = True,
        limit: int | None = None,
        heartbeat_interval_seconds: int | None = None,
        *,
        base_job_template: dict[str, Any] | None = None,
        orphan_seconds: float | None = None,
        duties: Sequence[str] = (),
    ) -> None:
        from kefu.notifications.pii import install_log_masking
        from kefu.settings import get_settings

        install_log_masking()  # also when started as ``prefect worker start --type kefu``
        settings = get_settings()
        self.mark = claim_mark()
        self.pool_name = work_pool_name
        limit = limit or settings.worker_limit
        super().__init__(
            work_pool_name,
            work_queues,
            name or self.mark,
            prefetch_seconds if prefetch_seconds is not None else 1,  # a cron run starts on time, not early
            create_pool_if_not_found,
            # No claim limit of Prefect's own: a run that finds every thread busy waits in this worker's queue for
            # the next free thread (a fraction of a second) instead of for the next poll. ``limit`` is the number
            # of threads; the pool's and queues' concurrency limits still bound what all workers claim.
            None,
            heartbeat_interval_seconds,
            base_job_template=base_job_template,
        )
        self._threads = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="kefu-run")
        self._executing: set[UUID] = set()
        self._orphan_after = dt.timedelta(seconds=orphan_seconds or settings.worker_orphan_seconds)
        self._deployments: dict[UUID, tuple[Any, bool]] = {}  # deployment id -> (flow, resumable)
        self._polls = 0
        self._duties = tuple(duties)  # the duty deployments this worker keeps on shift (by name)
        self._shift_checked = -SHIFT_CHECK_SECONDS
        self._process_wide = contextlib.ExitStack()
        self._profile, self._settings = engine_settings()
        self._clients = prefect_private.RunClients()  # one API client per thread, for every run it executes

    # --- life ----------------------------------------------------------------------------------------

    async def setup(self) -> None:
        # Checks the private parts first: raises PrefectChanged before anything is claimed.
        self._process_wide.enter_context(prefect_private.without_suspension_observer())
        WORKER_STOPPING.clear()
        await super().setup()

    async def teardown(self, *exc_info: Any) -> None:
        try:
            await super().teardown(*exc_info)
        finally:
            # Executing runs reach their next wait (a human step suspends in a fraction of a second); the duties'
            # shifts end at once instead of at midnight.
            WORKER_STOPPING.set()
            await anyio.to_thread.run_sync(self._threads.shutdown)
            self._clients.close()
            self._process_wide.close()

    async def get_and_submit_flow_runs(self) -> list[Any]:
        submitted = await super().get_and_submit_flow_runs()
        self._polls += 1
        if self._polls % SWEEP_EVERY_POLLS == 1:  # orphans and cancellations: at start-up, then every few polls
            try:
                await self.sweep()
            except Exception as exc:  # the API is down or restarting: the next sweep tries again
                log.warning("orphan sweep failed (%s)", exc)
            if self._duties and time.monotonic() - self._shift_checked >= SHIFT_CHECK_SECONDS:
                self._shift_checked = time.monotonic()
                try:
                    await keep_on_shift(self.client, self.pool_name, self._duties)
                except Exception as exc:
                    log.warning("shift check failed (%s)", exc)
        return submitted

    # --- execution -----------------------------------------------------------------------------------

    async def run(
        self,
        flow_run: Any,
        configuration: KefuJobConfiguration,
        task_status: anyio.abc.TaskStatus[Any] | None = None,
    ) -> KefuWorkerResult:
        flow, _ = await self._deployment(flow_run.deployment_id)
        # Marked before it executes, once (Prefect's own mark is skipped: ``prefect_private._Started``): the sweep can
        # check the claimant.
        await self.client.update_flow_run(flow_run.id, infrastructure_pid=self.mark)
        self._executing.add(flow_run.id)
        try:
            future = self._threads.submit(self._execute, flow, flow_run)
            if task_status is not None:
                task_status.started(self.mark)
            status = await asyncio.wrap_future(future)
        finally:
            self._executing.discard(flow_run.id)
        return KefuWorkerResult(identifier=self.mark, status_code=status)

    def _execute(self, flow: Any, flow_run: Any) -> int:
        from prefect.context import SettingsContext
        from prefect.exceptions import Pause

        try:
            with SettingsContext(profile=self._profile, settings=self._settings), self._clients.current():
                outcome = prefect_private.run_flow(flow, flow_run)
                if inspect.iscoroutine(outcome):  # async flows (deliver-mail) get their own event loop
                    asyncio.run(outcome)
        except Pause:
            pass  # suspended: the run now waits for a person (recorded on the run by the engine)
        except BaseException:  # the engine has recorded the failure on the run; the worker carries on
            log.exception("flow run %s ended with an error", flow_run.id)
        return 0

    async def _deployment(self, deployment_id: UUID | None) -> tuple[Any, bool]:
        """The flow of a deployment (loaded from its entrypoint in the installed package) and its resumability."""
        if deployment_id is None:
            raise ValueError("a run without a deployment cannot come from a work pool")
        if deployment_id not in self._deployments:
            from prefect.flows import load_flow_from_entrypoint

            deployment = await self.client.read_deployment(deployment_id)
            if not deployment.entrypoint:
                raise ValueError(f"deployment {deployment.name} has no entrypoint")
            flow: Any = await anyio.to_thread.run_sync(load_flow_from_entrypoint, deployment.entrypoint)
            resumable = bool((deployment.job_variables or {}).get("resumable", False))
            self._deployments[deployment_id] = (flow, resumable)
        return self._deployments[deployment_id]

    async def kill_infrastructure(
        self, infrastructure_pid: str, configuration: KefuJobConfiguration, grace_seconds: int = 30
    ) -> None:
        """A thread cannot be killed: Prefect cancels a run that never started; the sweep ends one that waits."""
        from prefect.exceptions import InfrastructureNotAvailable, InfrastructureNotFound

        if infrastructure_pid != self.mark:
            raise InfrastructureNotAvailable(f"the run is held by {infrastructure_pid}, not by {self.mark}")
        raise InfrastructureNotFound("a Kefu run executes in a thread: it stops at its next step")

    # --- orphans and cancellations -------------------------------------------------------------------

    def holds(self) -> set[UUID]:
        """The runs this worker is claiming, starting or executing right now."""
        return set(self._executing) | set(prefect_private.worker_claims(self))

    async def sweep(self) -> None:
        """Reschedule the resumable runs whose claimant is gone; end the Cancelling runs nobody executes."""
        from prefect.states import Cancelled, Scheduled

        # A run claimed here while the runs are read is in ``holds()`` before or after the read (the claim and the
        # execution happen on this event loop, and a run this worker finished meanwhile is younger than the grace).
        held_before = self.holds()
        runs = await pool_runs_in_states(self.client, self.pool_name, [*CLAIMED_STATES, "CANCELLING"])
        workers = {
            w.name: w.status.value == "ONLINE" for w in await self.client.read_workers_for_work_pool(self.pool_name)
        }
        held = held_before | self.holds()
        now = dt.datetime.now(dt.UTC)
        for flow_run in runs:
            if flow_run.id in held or flow_run.state is None:
                continue
            age = now - flow_run.state.timestamp
            if age < CLAIM_GRACE:
                continue  # a worker may be between claiming it and marking it
            gone = claimant_gone(
                flow_run.infrastructure_pid,
                executing_here=False,
                state_age=age,
                orphan_after=self._orphan_after,
                workers_online=workers,
            )
            cancelling = flow_run.state.type.value == "CANCELLING"
            if not (gone or (cancelling and not flow_run.infrastructure_pid)):
                continue  # another live worker has it and will finish or cancel it
            if cancelling:
                await self.client.set_flow_run_state(
                    flow_run.id, Cancelled(message="已取消（操作员在界面中取消）"), force=True
                )
                log.info("flow run %s cancelled", flow_run.id)
            elif flow_run.deployment_id is not None and (await self._deployment(flow_run.deployment_id))[1]:
                message = f"重新执行：原执行者 {flow_run.infrastructure_pid or '未知'} 已不在"
                await self.client.set_flow_run_state(
                    flow_run.id, Scheduled(name="Rescheduled", message=message), force=True
                )
                log.warning("flow run %s orphaned by %s: rescheduled", flow_run.id, flow_run.infrastructure_pid)


async def pool_runs_in_states(client: Any, pool: str, states: list[str], *, page: int = 200) -> list[Any]:
    """Every run of this work pool in these states, read ``page`` at a time until a short page.

    Every filter is explicit: fastapi 0.151–0.154 rejects nulls. A run whose state changes while the pages are
    read can shift the later pages: it may be missed until the next sweep, and it is reported at most once.
    """
    from prefect.client.schemas.objects import FlowRun

    found: dict[UUID, Any] = {}
    offset = 0
    while True:
        body = {
            "flow_runs": {"state": {"type": {"any_": states}}},
            "work_pools": {"name": {"any_": [pool]}},
            "sort": "ID_DESC",
            "limit": page,
            "offset": offset,
        }
        response = await client.request("POST", "/flow_runs/filter", json=body)
        response.raise_for_status()
        runs = FlowRun.model_validate_list(response.json())
        found.update((run.id, run) for run in runs if run.id not in found)
        if len(runs) < page:
            return list(found.values())
        offset += page


async def keep_on_shift(client: Any, pool: str, duties: Sequence[str], *, now: dt.datetime | None = None) -> list[str]:
    """Start a run now for every duty deployment (``duties``, by name, job variable ``duty``) of the pool that has
    none on shift — Running, Pending, or Scheduled to start by the next minute — unless its deployment is paused.

    Covers a fresh install (the daily schedule's first run is the next midnight) and a shift that ended early (a run
    cancelled or failed). Several workers checking at once create one run: the key is the duty and the minute.
    Returns the duties given a run.
    """
    now = now or dt.datetime.now(dt.UTC)
    started: list[str] = []
    for name in duties:
        response = await client.request("POST", "/deployments/filter", json=_deployment_filter(pool, name))
        response.raise_for_status()
        found = response.json()
        if not found:
            continue
        deployment = found[0]
        if deployment.get("paused") or not (deployment.get("job_variables") or {}).get("duty"):
            continue
        body = {
            "deployments": {"id": {"any_": [deployment["id"]]}},
            "flow_runs": {
                "state": {"type": {"any_": ["SCHEDULED", "PENDING", "RUNNING"]}},
                "expected_start_time": {"before_": (now + dt.timedelta(minutes=1)).isoformat()},
            },
            "limit": 1,
            "offset": 0,
        }
        response = await client.request("POST", "/flow_runs/filter", json=body)
        response.raise_for_status()
        if response.json():
            continue
        await client.create_flow_run_from_deployment(
            UUID(deployment["id"]), idempotency_key=f"kefu-shift:{name}:{now:%Y-%m-%dT%H:%M}"
        )
        log.info("duty %s had no run on shift: started one", name)
        started.append(name)
    return started


def _deployment_filter(pool: str, name: str) -> dict[str, Any]:
    return {
        "deployments": {"name": {"any_": [name]}},
        "work_pools": {"name": {"any_": [pool]}},
        "limit": 1,
        "offset": 0,
    }


# --- the pool and its deployments ------------------------------------------------------------------------


def ensure_pool(client: Any, pool: str = WORK_POOL) -> None:
    """Create the work pool of type ``kefu`` with the Kefu base job template unless it exists (idempotent)."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    try:
        client.read_work_pool(pool)
        return
    except ObjectNotFound:
        pass
    with contextlib.suppress(ObjectAlreadyExists):  # another worker created it meanwhile
        client.create_work_pool(
            WorkPoolCreate(
                name=pool,
                type=WORKER_TYPE,
                base_job_template=KefuWorker.get_default_base_job_template(),
                description="Kefu's flow runs, executed in threads of long-lived Kefu workers (kefu worker).",
            )
        )


def register_deployments(served: Sequence[Served], pool: str = WORK_POOL) -> dict[str, UUID]:
    """Create or update every deployment on the pool (idempotent: Prefect upserts by name). Returns their ids."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        ensure_pool(client, pool)
    ids: dict[str, UUID] = {}
    for item in served:
        ids[item.name] = item.deployment.apply(work_pool_name=pool)
        log.info("deployment %s on work pool %s (%s)", item.name, pool, ids[item.name])
    return ids


def poll_setting_updates(poll_seconds: float) -> dict[Any, Any]:
    """Prefect's worker settings for Kefu's poll interval (Prefect's own default polls every 10 s)."""
    from prefect.settings import PREFECT_WORKER_QUERY_SECONDS

    return {PREFECT_WORKER_QUERY_SECONDS: poll_seconds}
