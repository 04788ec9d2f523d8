"""``make up`` serves the complaint form beside the Prefect UI, prints both addresses, and a complaint sent
through the form or (retried) through the API gets its case number and its one case flow run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from kefu.engine.contract import case_run_name
from kefu.models import embedded_pg
from tests.support.desk import UP_AUTH_STRING, up_auth
from tests.support.processes import free_port, kill_9, read_until, start_kefu_up
from tests.support.samples import complaint_json

KEFU = str(Path(sys.executable).parent / "kefu")

pytestmark = [pytest.mark.slow, pytest.mark.prefect]


def _case_flow_run(api: str, case_no: str, timeout: float) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        by_name = {"flow_runs": {"name": {"any_": [case_run_name(case_no)]}}}
        runs = httpx.post(f"{api}/flow_runs/filter", json=by_name, timeout=10, auth=up_auth())
        if runs.status_code == 200 and runs.json():
            result: list[dict[str, object]] = runs.json()
            return result
        time.sleep(0.5)  # the dispatcher is another process: poll Prefect with a deadline
    return []


def _wait_suspended(api: str, run_id: str, timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state: dict[str, object] = httpx.get(f"{api}/flow_runs/{run_id}", timeout=10, auth=up_auth()).json()["state"]
        if state["type"] == "PAUSED":
            return state
        time.sleep(0.5)  # the worker is another process: poll Prefect with a deadline
    raise AssertionError(f"run {run_id} never waited for a person")


def _niceness_of_children(parent: int) -> dict[str, int]:
    """Nice value of each process ``kefu up`` started, by what it runs (Linux /proc)."""
    found: dict[str, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == parent:  # ppid
            for part in ("prefect server", "kefu worker", "kefu.intake.app", "kefu.intake.dispatcher", "kefu.desk.app"):
                if part in cmdline:
                    found[part] = int(fields[16])  # nice
    return found


def test_kefu_up_serves_the_form_and_each_complaint_gets_its_case_flow_run(embedded_var_dir: Path) -> None:
    prefect_port, intake_port = free_port(), free_port()
    api = f"http://127.0.0.1:{prefect_port}/api"
    pgdata = embedded_var_dir / "pg"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEFU_")},  # other fixtures' settings
        "KEFU_VAR_DIR": str(embedded_var_dir),
        "KEFU_PREFECT_PORT": str(prefect_port),
        "KEFU_PREFECT_API_URL": api,
        "KEFU_INTAKE_PORT": str(intake_port),
        "KEFU_DESK_PORT": str(free_port()),
        "KEFU_PREFECT_AUTH_STRING": UP_AUTH_STRING,
        "KEFU_SMTP_PORT": str(free_port()),
        "KEFU_INTAKE_API_TOKENS": '["up-test-token"]',
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PREFECT_API_URL", None)
    env.pop("KEFU_DATABASE_URL", None)
    process = start_kefu_up(env)
    try:
        output = read_until(process, "Press Ctrl-C", timeout=150)
        intake = f"http://127.0.0.1:{intake_port}"
        assert f"http://127.0.0.1:{prefect_port}" in output  # the Prefect UI
        assert intake in output  # the complaint form beside it
        # The front door comes first on one machine: the Prefect server (its own database) runs at a lower
        # priority; Kefu's own processes share the intake's database lock and keep the same priority.
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        assert _niceness_of_children(process.pid) == {
            "kefu.intake.app": mine,
            "prefect server": min(mine + 5, 19),
            "kefu worker": mine,
            "kefu.intake.dispatcher": mine,
            "kefu.desk.app": mine,
        }

        form = httpx.get(intake + "/", timeout=10)
        assert form.status_code == 200 and "投诉内容" in form.text
        key = re.search(r'name="form_key" value="([0-9a-f]{32})"', form.text)
        assert key
        body = {k: v for k, v in complaint_json().items() if k not in {"channel", "urgent"}}
        confirmation = httpx.post(intake + "/", data={**body, "form_key": key.group(1)}, timeout=10)
        web_case = re.search(r'id="case-no">([A-Z0-9-]+)<', confirmation.text)
        assert web_case, confirmation.text

        headers = {"Authorization": "Bearer up-test-token", "Idempotency-Key": "gw-retry-1"}
        first = httpx.post(f"{intake}/api/v1/complaints", json=complaint_json(), headers=headers, timeout=10)
        retry = httpx.post(f"{intake}/api/v1/complaints", json=complaint_json(), headers=headers, timeout=10)
        assert (first.status_code, retry.status_code) == (201, 200)
        api_case = first.json()["case_no"]
        assert retry.json()["case_no"] == api_case

        for case_no in (web_case.group(1), api_case):
            runs = _case_flow_run(api, case_no, timeout=60)
            assert len(runs) == 1, f"{case_no}: {runs}"
            assert runs[0]["parameters"] == {"case_no": case_no}
            assert runs[0]["name"] == f"case {case_no}"
            # What an operator finds in the UI: the run suspended on the first human step, its form saved.
            state = _wait_suspended(api, str(runs[0]["id"]), timeout=60)
            assert state["state_details"]["pause_key"] == "classify-0", state
            schema = httpx.get(
                f"{api}/flow_runs/{runs[0]['id']}/input/suspended-classify-0-schema", timeout=10, auth=up_auth()
            )
            assert schema.status_code == 200 and "actor_staff_id" in schema.text

        # No database configured: the complaints are in database kefu and the runs in database prefect, both on
        # the embedded PostgreSQL under var/pg.
        cases = {web_case.group(1), api_case}
        with psycopg.connect(host=str(pgdata), user="postgres", dbname="kefu") as connection:
            stored = {row[0] for row in connection.execute("SELECT case_no FROM complaints")}
        assert stored == cases
        with psycopg.connect(host=str(pgdata), user="postgres", dbname="prefect") as connection:
            run_names = {row[0] for row in connection.execute("SELECT name FROM flow_run")}
        assert {f"case {case_no}" for case_no in cases} <= run_names
        # A command from a plain shell (same settings, nothing else) reaches the same database, and leaves the
        # server running for kefu up when it ends.
        show = subprocess.run(
            [KEFU, "case", "show", api_case], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert show.returncode == 0, show.stderr
        assert show.stdout.startswith(api_case)
        assert embedded_pg.running_pid(pgdata) is not None
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                kill_9(process)
