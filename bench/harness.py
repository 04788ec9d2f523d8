"""What the benchmarks share: a scratch system (migrated SQLite system of record, a Prefect server, the processes
a benchmark starts), free ports, waiting for a process's HTTP endpoint, retrying the SQLite Prefect server's
occasional 503, percentiles."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def post_with_retries(url: str, body: dict[str, Any]) -> Any:
    """The SQLite Prefect server answers 503 now and then: retry with backoff."""
    delay = 0.2
    for _ in range(10):
        response = httpx.post(url, json=body, timeout=30)
        if response.status_code < 300:
            return response.json()
        if response.status_code < 500:
            response.raise_for_status()
        time.sleep(delay)
        delay = min(delay * 2, 5)
    response.raise_for_status()
    raise RuntimeError(f"{url}: {response.status_code}")


def fresh_postgres_database(name: str) -> str:
    """A new, empty database on the local PostgreSQL (user postgres, trust auth) for the Prefect server."""
    from sqlalchemy import create_engine, text

    admin = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Stack:
    """A scratch directory with a migrated SQLite system of record, the environment every process of the
    benchmark shares (Prefect home and API under the scratch directory), and the processes it starts: on leaving
    the ``with`` block they are stopped newest first (SIGTERM, then SIGKILL) and the logs' place is printed."""

    def __init__(self, prefix: str, **env: str) -> None:
        from kefu.models.db import make_engine
        from kefu.models.migrate import upgrade

        self.scratch = Path(tempfile.mkdtemp(prefix=prefix))
        self.db_url = f"sqlite:///{self.scratch / 'kefu.db'}"
        self.engine = make_engine(self.db_url)
        upgrade(self.engine)
        self.prefect_port = free_port()
        self.api = f"http://127.0.0.1:{self.prefect_port}/api"
        self.env = {
            **os.environ,
            "PREFECT_HOME": str(self.scratch / "prefect"),
            "PREFECT_API_URL": self.api,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "KEFU_DATABASE_URL": self.db_url,
            "KEFU_VAR_DIR": str(self.scratch),
            "KEFU_MAIL_SINK_ENABLED": "false",
            **env,
        }
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], cwd: Path | None = None, *, nice: int = 0) -> subprocess.Popen[bytes]:
        """Start a process of the benchmark; ``nice`` lowers its priority as ``kefu up`` does for its component."""
        with (self.scratch / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(
                argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=cwd,
                preexec_fn=(lambda: os.nice(nice)) if nice else None,
            )
        self.processes.append(process)
        return process

    def start_prefect_server(self, *, nice: int = 0) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
        server = self.start("prefect", [*argv, "--port", str(self.prefect_port)], nice=nice)
        wait_http(f"{self.api}/health", server)
        return server

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *_exc: object) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        print(f"logs: {self.scratch}", file=sys.stderr)


def encode_post(path: str, host: str, body: bytes, headers: dict[str, str]) -> bytes:
    """One HTTP/1.1 request, encoded once before the clock starts."""
    head = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json", f"Content-Length: {len(body)}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def http_burst(
    host: str, port: int, requests: list[bytes], concurrency: int
) -> tuple[list[float], float, Counter[int]]:
    """Send pre-encoded requests over ``concurrency`` keep-alive connections; latency per request, total time
    and status counts.

    A load generator must not be what is measured: an httpx client spent 3–6 ms of CPU per request here, as
    much as the server it loads on the same 2 cores. This one writes bytes and reads the status line, the
    headers and a Content-Length body (about 0.1 ms per request).
    """
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    pending = iter(requests)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for request in pending:
                started = time.perf_counter()
                writer.write(request)
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                statuses[int(status_line.split()[1])] += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started, statuses
