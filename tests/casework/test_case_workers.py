"""Cases on the work pool: a worker executes each step in a thread of its own process, and two workers sharing
the pool lose no case and repeat nothing when the one executing it is killed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.casework.test_case_lifecycle import (
    GENERAL_CASE_AFTER_CLASSIFY,
    actions,
    do,
    new_case,
    start_run,
    submit,
    wait_final,
    wait_step,
)
from tests.support.prefect import WorkerProcess

pytestmark = pytest.mark.usefixtures("case_worker")


def test_case_steps_run_in_a_thread_of_the_worker_that_claimed_them(case_worker: WorkerProcess) -> None:
    from prefect.client.orchestration import get_client

    case_no = "KF-WORK-0001"
    staff = new_case(case_no, "快递晚到两天")
    run = start_run(case_no)
    do(case_no, "classify", actor_staff_id=staff)
    do(case_no, "first_contact", actor_staff_id=staff, summary="致歉")
    wait_step(case_no, "investigate")
    assert case_worker.process is not None
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(run.id)
        deadline = time.monotonic() + 60
        while not (flow_run.state and flow_run.state.type.value == "PAUSED") and time.monotonic() < deadline:
            time.sleep(0.3)  # Kefu records the wait just before the run suspends: the run's state is the signal
            flow_run = client.read_flow_run(run.id)
    assert flow_run.infrastructure_pid == case_worker.name  # kefu:<host>:<pid of the worker process>
    assert flow_run.labels["prefect.worker.name"] == case_worker.name
    assert flow_run.labels["prefect.worker.type"] == "kefu"
    # Each step's execution is claimed (Pending) and run: no "Submitting" proposal of Prefect's in between (it cost
    # a state write per step of every case; kefu.engine.prefect_private.with_lean_submission).
    with get_client(sync_client=True) as client:
        history = [state.name for state in client.read_flow_run_states(run.id)]
    assert history.count("Pending") == 3 and history.count("Running") == 3, history
    assert "Submitting" not in history, history
    assert psutil.Process(case_worker.process.pid).children(recursive=True) == []  # no process per step
    client_state = flow_run.state
    assert client_state is not None and client_state.type.value == "PAUSED"
    from prefect.states import Cancelling

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run.id, Cancelling(), force=True)
    assert wait_final(run.id) == "CANCELLED"


def test_two_workers_share_the_pool_and_a_kill_9_of_the_one_executing_a_case_repeats_nothing(
    case_worker: WorkerProcess, case_db_url: str, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client

    other = WorkerProcess(case_db_url, tmp_path / "other-worker.log", register=False)
    other.start()
    workers = {w.name: w for w in (case_worker, other)}
    case_no = "KF-WORK-0002"
    staff = new_case(case_no, "快递晚到两天")
    try:
        run = start_run(case_no)
        do(case_no, "classify", actor_staff_id=staff)
        killed: list[WorkerProcess] = []
        with get_client(sync_client=True) as client:
            for step, data in GENERAL_CASE_AFTER_CLASSIFY:
                wait_step(case_no, step, timeout=90)
                submit(case_no, step, {"actor_staff_id": staff, **data})
                deadline = time.monotonic() + 10
                while not killed and time.monotonic() < deadline:  # catch it while a worker executes it
                    flow_run = client.read_flow_run(run.id)
                    if flow_run.state is not None and flow_run.state.type.value == "RUNNING":
                        victim = workers[str(flow_run.infrastructure_pid)]  # marked before the engine runs
                        victim.kill_9()
                        killed.append(victim)
                    time.sleep(0.01)
        assert killed, "no worker was ever caught executing the case"
        assert wait_final(run.id, timeout=120) == "COMPLETED"  # the survivor took the orphan up again
        events = actions(case_no)
        assert len(events) == len(set(events)), "the re-run after the kill repeated a side effect"
        assert [a for a, _ in events].count("closed") == 1
    finally:
        other.stop()
        if case_worker.process is not None and case_worker.process.poll() is not None:
            case_worker.start()  # the package's worker for the next tests


def test_the_pools_concurrency_limit_holds_the_workers_back(prefect_server: str) -> None:
    """Prefect's own work-pool limit governs Kefu workers: at 0 no run is handed out; cleared, the case starts."""
    import httpx

    from kefu.engine.contract import WORK_POOL

    def set_limit(limit: int | None) -> None:
        httpx.patch(f"{prefect_server}/work_pools/{WORK_POOL}", json={"concurrency_limit": limit}, timeout=10)

    case_no = "KF-WORK-0003"
    new_case(case_no, "快递晚到两天")
    set_limit(0)
    try:
        run = start_run(case_no)
        time.sleep(3)  # fifteen polls of the worker
        assert httpx.get(f"{prefect_server}/flow_runs/{run.id}", timeout=10).json()["state"]["type"] == "SCHEDULED"
    finally:
        set_limit(None)
    wait_step(case_no, "classify")


def test_a_run_held_by_a_worker_on_another_host_is_rescheduled_once_its_heartbeats_stop(prefect_server: str) -> None:
    """Another machine's worker (its heartbeats posted here) holds the case Running: left alone while it beats,
    taken up again by the worker here once Prefect shows it offline (three missed 1 s heartbeats)."""
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.states import Running

    from kefu.engine.contract import WORK_POOL
    from kefu.engine.worker import CLAIM_GRACE

    elsewhere = "kefu:another-machine:4242"

    def beat() -> None:
        body = {"name": elsewhere, "heartbeat_interval_seconds": 1}
        httpx.post(f"{prefect_server}/work_pools/{WORK_POOL}/workers/heartbeat", json=body, timeout=10)

    def state_of(run_id: Any) -> str:
        return str(httpx.get(f"{prefect_server}/flow_runs/{run_id}", timeout=10).json()["state"]["type"])

    def set_limit(limit: int | None) -> None:
        httpx.patch(f"{prefect_server}/work_pools/{WORK_POOL}", json={"concurrency_limit": limit}, timeout=10)

    case_no = "KF-WORK-0004"
    new_case(case_no, "快递晚到两天")
    set_limit(0)  # the worker here must not take the new run before the other machine "claims" it
    try:
        run = start_run(case_no)
        beat()
        with get_client(sync_client=True) as client:  # as if the other machine's worker were executing it
            client.set_flow_run_state(run.id, Running(), force=True)
            client.update_flow_run(run.id, infrastructure_pid=elsewhere)
    finally:
        set_limit(None)
    deadline = time.monotonic() + CLAIM_GRACE.total_seconds() + 3
    while time.monotonic() < deadline:
        beat()
        assert state_of(run.id) == "RUNNING", "a run held by a live worker elsewhere was taken"
        time.sleep(0.5)
    deadline = time.monotonic() + 30  # heartbeats stopped: offline after 3 s, then the next sweep
    while (state := state_of(run.id)) != "PAUSED":
        assert time.monotonic() < deadline, f"the orphan was never taken up again ({state})"
        time.sleep(0.3)
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(run.id).infrastructure_pid != elsewhere
    events = actions(case_no)
    assert len(events) == len(set(events)), "the re-run repeated a side effect"
    with get_client(sync_client=True) as client:
        from prefect.states import Cancelling

        client.set_flow_run_state(run.id, Cancelling(), force=True)
    assert wait_final(run.id) == "CANCELLED"
