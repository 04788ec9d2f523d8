"""A Kefu worker executes more than case steps: a duty's day-long shift with a concurrency limit (deliver-mail)
runs in one of its threads and publishes its dead-letter artifact, like under a process worker; stopping the worker
(Ctrl-C of ``kefu up``) ends the shift at once instead of waiting for midnight."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any

import httpx

from kefu.deployments import all_deployments, on_the_pool


def test_a_worker_keeps_a_shift_of_the_deliver_mail_deployment(prefect_server: str, case_worker: Any) -> None:
    [mail] = [d for d in all_deployments() if d.name == "deliver-mail"]
    # The same flow and concurrency limit on the pool, without the every-minute schedule piling runs on the server;
    # the worker registered only the case deployment and loads this one's flow from its entrypoint.
    deployment_id = on_the_pool(mail.flow, name="deliver-mail", concurrency_limit=1).deployment.apply()
    run = httpx.post(f"{prefect_server}/deployments/{deployment_id}/create_flow_run", json={}, timeout=10)
    run.raise_for_status()
    run_id = run.json()["id"]
    artifact: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    try:
        while not artifact:  # published when the shift starts
            assert time.monotonic() < deadline, "the deliver-mail shift never published its dead letters"
            time.sleep(0.2)  # the worker is another process: poll the API with a deadline
            artifact = httpx.post(
                f"{prefect_server}/artifacts/filter",
                json={"artifacts": {"flow_run_id": {"any_": [run_id]}}, "limit": 1},
                timeout=10,
            ).json()
        assert artifact[0]["key"] == "mail-dead-letters" and artifact[0]["type"] == "table"
        state = httpx.get(f"{prefect_server}/flow_runs/{run_id}", timeout=10).json()["state"]
        assert state["type"] == "RUNNING", state  # on shift until midnight

        # The operator stops the system (kefu up sends each component SIGTERM and kills it after 20 s): the worker
        # ends its shift and exits on its own, and the run is left Completed, not Running with nobody executing it.
        process = case_worker.process
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            raise AssertionError("the worker was still held by the deliver-mail shift 20 s after SIGTERM") from None
        state = httpx.get(f"{prefect_server}/flow_runs/{run_id}", timeout=10).json()["state"]
        assert state["type"] == "COMPLETED", state
    finally:  # a shift still running goes off shift: the run stops at its next pass
        if httpx.get(f"{prefect_server}/flow_runs/{run_id}", timeout=10).json()["state"]["type"] == "RUNNING":
            httpx.post(
                f"{prefect_server}/flow_runs/{run_id}/set_state",
                json={"state": {"type": "CANCELLED", "message": "test over"}, "force": True},
                timeout=10,
            )
        if case_worker.process is not None and case_worker.process.poll() is not None:
            case_worker.start()  # the casework tests after this one share it
