"""Kefu's runner executes more than case steps: a scheduled async flow with a concurrency limit (deliver-mail)
runs to completion and leaves its dead-letter artifact, like under ``flow.serve``."""

from __future__ import annotations

import threading
import time

import httpx

from kefu.deployments import Served, all_deployments
from kefu.engine.prefect_private import without_suspension_observer
from kefu.engine.runner import InProcessRunner


def test_the_runner_takes_a_run_of_the_deliver_mail_deployment_to_completion(
    prefect_server: str, case_db_url: str
) -> None:
    [mail] = [d for d in all_deployments() if d.name == "deliver-mail"]
    # The same flow and concurrency limit, without the every-minute schedule piling runs on the shared server.
    unscheduled = mail.flow.to_deployment(name="deliver-mail", concurrency_limit=1)
    runner = InProcessRunner([Served(mail.flow, unscheduled)], workers=2, poll_seconds=0.2, orphan_seconds=300)
    with without_suspension_observer():  # as the runner's main() serves
        thread = threading.Thread(target=runner.run, daemon=True)
        thread.start()
        try:
            deployment = None
            deadline = time.monotonic() + 60
            while deployment is None:  # the runner registers its deployments when it starts
                assert time.monotonic() < deadline, "deliver-mail was never registered"
                found = httpx.get(f"{prefect_server}/deployments/name/deliver-mail/deliver-mail", timeout=10)
                deployment = found.json() if found.status_code == 200 else None
                time.sleep(0.2)
            run = httpx.post(f"{prefect_server}/deployments/{deployment['id']}/create_flow_run", json={}, timeout=10)
            run.raise_for_status()
            state = {}
            while state.get("type") not in {"COMPLETED", "FAILED", "CRASHED"}:
                assert time.monotonic() < deadline + 60, f"deliver-mail run never finished: {state}"
                state = httpx.get(f"{prefect_server}/flow_runs/{run.json()['id']}", timeout=10).json()["state"]
                time.sleep(0.2)
            assert state["type"] == "COMPLETED", state
            artifact = httpx.post(
                f"{prefect_server}/artifacts/filter",
                json={"artifacts": {"key": {"any_": ["mail-dead-letters"]}}, "sort": "CREATED_DESC", "limit": 1},
                timeout=10,
            ).json()
            assert artifact and artifact[0]["type"] == "table"
        finally:
            runner.stop()
            thread.join(timeout=30)
