"""A real local Prefect server for tests that need deployments, suspend/resume or run creation.

Started once per test session on a free port with its own PREFECT_HOME (SQLite), and pointed to by
``PREFECT_API_URL`` both in this process (``temporary_settings``) and in the environment, so that
processes the tests start (workers, dispatchers) talk to it too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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


def read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> str:
    """Read a child's stdout until a line contains ``marker`` (the progress signal ``kefu up`` gives)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"'{marker}' not printed within {timeout:.0f} s; output so far:\n{''.join(seen)}")


class Restartable:
    """A process the tests start, crash (kill -9) and start again."""

    process: subprocess.Popen[bytes] | None = None

    def kill_9(self) -> None:
        """Like a crash of the machine running it: no shutdown of any kind."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class PrefectServer(Restartable):
    """A Prefect server process with its own home on a fixed port; it can be killed and restarted. Its database is
    ``database_url`` (PostgreSQL) when given, else SQLite in its home."""

    def __init__(self, home: Path, database_url: str | None = None) -> None:
        self.home = home
        self.database_url = database_url
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.log_path = home / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(self.port),
        }
        if self.database_url:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = self.database_url
        argv = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_healthy(self.api_url, self.process, self.log_path)


@pytest.fixture(scope="session")
def prefect_server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """The Prefect server of the whole test session (tests that crash it start it again on the same port).

    On PostgreSQL when it is reachable (a fresh database, dropped at the end): the SQLite server answers
    "database is locked" and stalls up to 60 s under the suite's concurrent runs and restarts, which made tests
    flaky. Without PostgreSQL it runs on SQLite, as ``make up`` does by default; the header says which.
    """
    from tests.conftest import POSTGRES_URL, scratch_postgres_database

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

    api_url = prefect_server_process.api_url
    saved = {k: os.environ.get(k) for k in ("PREFECT_API_URL", "PREFECT_HOME")}
    os.environ["PREFECT_API_URL"] = api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            yield api_url
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _wait_healthy(api_url: str, process: subprocess.Popen[bytes], log_path: object, timeout: float = 90.0) -> None:
    # A separate process we do not control: polling its health endpoint is the only signal it offers.
    deadline = time.monotonic() + timeout
    delay = 0.2
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Prefect server exited with {process.returncode}; see {log_path}")
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
    raise RuntimeError(f"Prefect server did not answer within {timeout:.0f} s; see {log_path}")
