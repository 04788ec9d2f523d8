"""A Kefu worker executes more than case steps: a scheduled async flow with a concurrency limit (deliver-mail)
runs to completion and leaves its dead-letter artifact, like under a process worker."""

from __future__ import annotations

import time
from typing import Any

import httpx

from kefu.deployments import all_deployments, on_the_pool


def test_a_worker_takes_a_run_of_the_deliver_mail_deployment_to_completion(
    prefect_server: str, case_worker: Any
) -> None:
    [mail] = [d for d in all_deployments() if d.name == "deliver-mail"]
    # The same flow and concurrency limit on the pool, without the every-minute schedule piling runs on the server;
    # the worker registered only the case deployment and loads this one's flow from its entrypoint.
    deployment_id = on_the_pool(mail.flow, name="deliver-mail", concurrency_limit=1).deployment.apply()
    run = httpx.post(f"{prefect_server}/deployments/{deployment_id}/create_flow_run", json={}, timeout=10)
    run.raise_for_status()
    state: dict[str, Any] = {}
    deadline = time.monotonic() + 60
    while state.get("type") not in {"COMPLETED", "FAILED", "CRASHED"}:
        assert time.monotonic() < deadline, f"deliver-mail run never finished: {state}"
        time.sleep(0.2)  # the worker is another process: poll the run with a deadline
        state = httpx.get(f"{prefect_server}/flow_runs/{run.json()['id']}", timeout=10).json()["state"]
    assert state["type"] == "COMPLETED", state
    artifact = httpx.post(
        f"{prefect_server}/artifacts/filter",
        json={"artifacts": {"key": {"any_": ["mail-dead-letters"]}}, "sort": "CREATED_DESC", "limit": 1},
        timeout=10,
    ).json()
    assert artifact and artifact[0]["type"] == "table"
