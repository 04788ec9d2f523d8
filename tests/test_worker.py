"""The Kefu worker type: found through Prefect's plug-in entry point, creates its pool with its base job template,
and decides whether a Pending/Running run has lost the worker that claimed it."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
from pathlib import Path
from uuid import UUID, uuid4

import httpx

from kefu.engine.worker import KefuWorker, claim_mark, claimant_gone, pool_runs_in_states
from tests.support.prefect import prefect_post

YOUNG, OLD = dt.timedelta(seconds=5), dt.timedelta(minutes=10)
AFTER = dt.timedelta(minutes=5)
PREFECT = str(Path(sys.executable).parent / "prefect")


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_run_claimed_by_a_dead_process_on_this_host_is_an_orphan_at_once() -> None:
    assert claimant_gone(claim_mark(dead_pid()), executing_here=False, state_age=YOUNG, orphan_after=AFTER)


def test_a_run_claimed_by_a_live_worker_is_left_alone() -> None:
    with subprocess.Popen(["sleep", "30"]) as other:
        try:
            assert not claimant_gone(claim_mark(other.pid), executing_here=False, state_age=OLD, orphan_after=AFTER)
        finally:
            other.kill()


def test_this_worker_knows_which_runs_it_is_executing() -> None:
    mine = claim_mark(os.getpid())
    assert not claimant_gone(mine, executing_here=True, state_age=OLD, orphan_after=AFTER)
    assert claimant_gone(mine, executing_here=False, state_age=YOUNG, orphan_after=AFTER)  # its thread died


def test_a_claimant_on_another_host_is_gone_when_its_heartbeats_stop() -> None:
    elsewhere = f"kefu:not-{socket.gethostname()}:123"
    online, offline = {elsewhere: True}, {elsewhere: False}
    assert not claimant_gone(elsewhere, executing_here=False, state_age=OLD, orphan_after=AFTER, workers_online=online)
    assert claimant_gone(elsewhere, executing_here=False, state_age=YOUNG, orphan_after=AFTER, workers_online=offline)


def test_claimants_the_pool_does_not_know_are_trusted_until_the_orphan_timeout() -> None:
    elsewhere = f"kefu:not-{socket.gethostname()}:123"
    assert not claimant_gone(elsewhere, executing_here=False, state_age=YOUNG, orphan_after=AFTER)
    assert claimant_gone(elsewhere, executing_here=False, state_age=OLD, orphan_after=AFTER)
    assert not claimant_gone(None, executing_here=False, state_age=YOUNG, orphan_after=AFTER)
    assert claimant_gone("4711", executing_here=False, state_age=OLD, orphan_after=AFTER)


def test_prefect_finds_the_kefu_worker_type_through_its_entry_point() -> None:
    from prefect.workers.base import BaseWorker

    assert BaseWorker.get_worker_class_from_type("kefu") is KefuWorker
    assert "kefu" in BaseWorker.get_all_available_worker_types()


def test_prefect_worker_start_type_kefu_creates_the_pool_with_kefus_template_and_work_pool_ls_lists_it(
    prefect_server: str, tmp_path: Path
) -> None:
    """What ``prefect worker start --pool P --type kefu`` does, as a user types it; then ``prefect work-pool ls``."""
    pool = f"kefu-{uuid4().hex[:8]}"
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "PREFECT_HOME": str(tmp_path), "COLUMNS": "250"}
    started = subprocess.run(
        [PREFECT, "worker", "start", "--pool", pool, "--type", "kefu", "--run-once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 0, started.stdout + started.stderr
    found = httpx.get(f"{prefect_server}/work_pools/{pool}", timeout=10).json()
    assert found["type"] == "kefu"
    assert found["base_job_template"] == KefuWorker.get_default_base_job_template()
    assert found["base_job_template"]["variables"]["properties"]["resumable"]["default"] is False
    workers = prefect_post(f"{prefect_server}/work_pools/{pool}/workers/filter", {}).json()
    assert next(w["name"] for w in workers).startswith(f"kefu:{socket.gethostname()}:")  # named by its claim mark
    listed = subprocess.run(
        [PREFECT, "work-pool", "ls"], env=env, capture_output=True, text=True, timeout=120
    )  # Prefect's client sends "limit": null, which fastapi 0.151–0.154 refused
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert pool in listed.stdout


async def test_the_orphan_sweep_reads_every_matching_run_of_the_pool_page_by_page(prefect_server: str) -> None:
    """More matching runs than one page holds: all of them are found, each once (small pages, same paging)."""
    from prefect.client.orchestration import get_client

    pool = f"paging-{uuid4().hex[:8]}"
    prefect_post(f"{prefect_server}/work_pools/", {"name": pool, "type": "kefu"})
    flow = prefect_post(f"{prefect_server}/flows/", {"name": f"paging-{uuid4().hex[:8]}"}).json()
    deployment = prefect_post(
        f"{prefect_server}/deployments/",
        {"name": "paging", "flow_id": flow["id"], "parameter_openapi_schema": {}, "work_pool_name": pool},
    ).json()
    created = {
        UUID(prefect_post(f"{prefect_server}/deployments/{deployment['id']}/create_flow_run", {}).json()["id"])
        for _ in range(5)
    }
    async with get_client() as client:
        for page in (2, 5, 200):  # several pages, a last page exactly full, one short page
            found = await pool_runs_in_states(client, pool, ["SCHEDULED"], page=page)
            assert {run.id for run in found} == created and len(found) == len(created)
