"""A real local Prefect server for the tests that need deployments, suspend/resume or run creation, and
Kefu's runner as a process beside it.

The server is started once per test session on a free port with its own PREFECT_HOME, and pointed to by
``PREFECT_API_URL`` both in this process (``temporary_settings``) and in the environment, so that processes
the tests start (runners, dispatchers) talk to it too. It runs on a fresh PostgreSQL database when
PostgreSQL answers, else on SQLite; the test header says which.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kefu.engine.contract import COMPLAINT_CASE_DEPLOYMENT, COMPLAINT_CASE_FLOW
from tests.support.postgres import POSTGRES_URL, scratch_postgres_database
from tests.support.processes import Restartable, free_port, wait_healthy

WORKER_ARGV = [sys.executable, "-m", "kefu", "worker"]


def wait_suspended_at(api: str, run_id: Any, key: str, timeout: float = 90) -> None:
    """Until the run is Suspended under ``key``. A case's step is recorded as waiting just before its run
    suspends: a resume posted in between (as the UI would) is answered "not paused", so tests acting as the UI
    wait for this first."""
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).json()["state"] or {}
        if state.get("name") == "Suspended" and state["state_details"].get("pause_key") == key:
            return
        time.sleep(0.3)  # the worker is another process: the run's state is the only signal
    raise AssertionError(f"run {run_id} never suspended at {key}; last state {state}")


def prefect_post(url: str, body: dict[str, Any]) -> httpx.Response:
    """POST to the test Prefect server, as the UI or a client does. Its SQLite answers 503 now and then under
    load ("database is locked"); Prefect's own client retries those, a person presses again: so does this."""
    delay = 0.5
    for _ in range(6):
        response = httpx.post(url, json=body, timeout=30)
        if response.status_code != 503:
            break
        time.sleep(delay)
        delay *= 2
    response.raise_for_status()
    return response


class PrefectServer(Restartable):
    """A Prefect server process with its own home on a fixed port; it can be killed and restarted. Its database is
    ``database_url`` (PostgreSQL) when given, else SQLite in its home."""

    def __init__(self, home: Path, database_url: str | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        env = {
            **os.environ,
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(self.port),
        }
        if database_url:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
        argv = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        super().__init__(argv, env, home / "server.log")

    def wait_ready(self, process: subprocess.Popen[bytes]) -> None:
        wait_healthy(f"{self.api_url}/health", process, self.log_path, timeout=90)


class WorkerProcess(Restartable):
    """A Kefu worker (``kefu worker``) on the given database and the test server, executing the case flow only;
    it can be killed and restarted. ``register=False``: a second worker that leaves the deployments alone."""

    def __init__(
        self, db_url: str, log_path: Path, *, register: bool = True, serve: tuple[str, ...] = ("complaint-case",)
    ) -> None:
        env = {
            **os.environ,
            "KEFU_PREFECT_API_URL": os.environ["PREFECT_API_URL"],
            "KEFU_WORKER_POLL_SECONDS": "0.2",
            "KEFU_DATABASE_URL": db_url,
            "KEFU_SERVE_ONLY": json.dumps(list(serve)),  # no per-minute schedules loading the shared test server
        }
        super().__init__([*WORKER_ARGV, *([] if register else ["--no-register"])], env, log_path)

    @property
    def name(self) -> str:
        """Its name in the work pool and the mark on the runs it claims."""
        from kefu.engine.worker import claim_mark

        assert self.process is not None
        return claim_mark(self.process.pid)

    def wait_ready(self, process: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
        """The worker registers the deployments at start-up, one after another: poll the API (bounded) until every
        deployment it serves (``KEFU_SERVE_ONLY``) exists — a test starting a run of the last one would find none."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

        serving = set(json.loads(self.env.get("KEFU_SERVE_ONLY") or "[]")) or {COMPLAINT_CASE_DEPLOYMENT.split("/")[1]}
        wanted = DeploymentFilter(name=DeploymentFilterName(any_=sorted(serving)))
        deadline = time.monotonic() + timeout
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise RuntimeError(f"the worker exited; see {self.log_path}")
                try:
                    if {d.name for d in client.read_deployments(deployment_filter=wanted)} >= serving:
                        return
                except Exception:
                    pass
                time.sleep(0.5)
        raise RuntimeError(f"the worker never registered its deployments; see {self.log_path}")


@pytest.fixture(scope="session")
def prefect_server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """The Prefect server of the whole test session (tests that crash it start it again on the same port).

    On PostgreSQL when it is reachable (a fresh database, dropped at the end): the SQLite server answers
    "database is locked" and stalls up to 60 s under the suite's concurrent runs and restarts, which made tests
    flaky. Without PostgreSQL it runs on SQLite, as ``make up`` does by default; the header says which.
    """
    with contextlib.ExitStack() as stack:
        url = None
        if POSTGRES_URL:
            database = stack.enter_context(scratch_postgres_database("kefu_prefect"))
            url = database.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
        server = PrefectServer(tmp_path_factory.mktemp("prefect-home"), url)
        try:
            server.start()
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def prefect_server(prefect_server_process: PrefectServer) -> Iterator[str]:
    """The API URL of a Prefect server that lives for the whole test session."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from kefu.settings import get_settings

    api_url = prefect_server_process.api_url
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("PREFECT_API_URL", api_url)
        monkeypatch.setenv("KEFU_PREFECT_API_URL", api_url)  # how Kefu's commands reach it (``kefu step submit``)
        get_settings.cache_clear()
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            yield api_url
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def case_deployment(prefect_server: str) -> str:
    """The ``complaint-case`` deployment on the test Prefect server: its id.

    Registered as metadata (flow + deployment) so tests can count case flow runs; a Kefu worker executing the
    case flow under the same names takes these runs when a test starts one.
    """
    served = httpx.get(f"{prefect_server}/deployments/name/{COMPLAINT_CASE_DEPLOYMENT}", timeout=30)
    if served.status_code == 200:  # the casework tests' runner registered the real one: keep it as it is
        return str(served.json()["id"])
    flow = prefect_post(f"{prefect_server}/flows/", {"name": COMPLAINT_CASE_FLOW}).json()
    _, name = COMPLAINT_CASE_DEPLOYMENT.split("/")
    deployment = prefect_post(
        f"{prefect_server}/deployments/", {"name": name, "flow_id": flow["id"], "parameter_openapi_schema": {}}
    ).json()
    return str(deployment["id"])


def case_runs(api_url: str, deployment_id: str, case_nos: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Every run of the case deployment per case number (by its parameters), read from Prefect."""
    runs: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = httpx.post(
            f"{api_url}/flow_runs/filter",
            json={"deployments": {"id": {"any_": [deployment_id]}}, "limit": 200, "offset": offset},
            timeout=30,
        )
        page.raise_for_status()
        runs.extend(page.json())
        if len(page.json()) < 200:
            break
        offset += 200
    wanted = set(case_nos)
    found: dict[str, list[dict[str, Any]]] = {c: [] for c in case_nos}
    for run in runs:
        case_no = run["parameters"].get("case_no")
        if case_no in wanted:
            found[case_no].append(run)
    return found
