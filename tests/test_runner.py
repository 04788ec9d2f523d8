"""Kefu's runner decides whether a Pending/Running run has lost the process that claimed it, and finds them all."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
from uuid import UUID, uuid4

from kefu.engine.runner import claim_mark, claimant_gone, runs_in_states
from tests.support.prefect import prefect_post

YOUNG, OLD = dt.timedelta(seconds=5), dt.timedelta(minutes=10)
AFTER = dt.timedelta(minutes=5)


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_run_claimed_by_a_dead_process_on_this_host_is_an_orphan_at_once() -> None:
    assert claimant_gone(claim_mark(dead_pid()), in_flight=False, state_age=YOUNG, orphan_after=AFTER)


def test_a_run_claimed_by_a_live_runner_is_left_alone() -> None:
    with subprocess.Popen(["sleep", "30"]) as other:
        try:
            assert not claimant_gone(claim_mark(other.pid), in_flight=False, state_age=OLD, orphan_after=AFTER)
        finally:
            other.kill()


def test_this_runner_knows_which_runs_it_is_executing() -> None:
    mine = claim_mark(os.getpid())
    assert not claimant_gone(mine, in_flight=True, state_age=OLD, orphan_after=AFTER)
    assert claimant_gone(mine, in_flight=False, state_age=YOUNG, orphan_after=AFTER)  # its thread died


def test_claims_from_another_host_or_unknown_claimants_are_trusted_until_the_orphan_timeout() -> None:
    elsewhere = f"kefu:not-{socket.gethostname()}:123"
    assert not claimant_gone(elsewhere, in_flight=False, state_age=YOUNG, orphan_after=AFTER)
    assert claimant_gone(elsewhere, in_flight=False, state_age=OLD, orphan_after=AFTER)
    assert not claimant_gone(None, in_flight=False, state_age=YOUNG, orphan_after=AFTER)
    assert claimant_gone("4711", in_flight=False, state_age=OLD, orphan_after=AFTER)


def test_the_orphan_sweep_reads_every_matching_run_page_by_page(prefect_server: str) -> None:
    """More matching runs than one page holds: all of them are found, each once (small pages, same paging)."""
    from prefect.client.orchestration import get_client

    flow = prefect_post(f"{prefect_server}/flows/", {"name": f"paging-{uuid4().hex[:8]}"}).json()
    deployment = prefect_post(
        f"{prefect_server}/deployments/", {"name": "paging", "flow_id": flow["id"], "parameter_openapi_schema": {}}
    ).json()
    created = {
        UUID(prefect_post(f"{prefect_server}/deployments/{deployment['id']}/create_flow_run", {}).json()["id"])
        for _ in range(5)
    }
    with get_client(sync_client=True) as client:
        for page in (2, 5, 200):  # several pages, a last page exactly full, one short page
            found = runs_in_states(client, [UUID(deployment["id"])], ["SCHEDULED"], page=page)
            assert [run.id for run in found if run.id in created] == [run.id for run in found]
            assert {run.id for run in found} == created and len(found) == len(created)
