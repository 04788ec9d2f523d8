"""What the benchmarks share beyond ``tests.support``: a scratch system (migrated SQLite system of record, a Prefect
server, the processes a benchmark starts), percentiles, and an HTTP load generator.

``python bench/x.py`` puts ``bench/`` on sys.path, not the repository root: importing this module adds the root,
so that the benchmarks import the helpers the tests use (free ports, starting, stopping and waiting for
processes, the Prefect server's retried POST, scratch PostgreSQL databases) from ``tests.support``. Benchmarks
import ``harness`` before ``tests.support`` (isort puts it first: it is not a package of the repository).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

from tests.support.processes import free_port, spawn, stop, wait_healthy  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Stack:
    """A scratch directory with a migrated SQLite system of record, the environment every process of the
    benchmark shares (Prefect home and API under the scratch directory), and the processes it starts: on leaving
    the ``with`` block they are stopped newest first (SIGTERM, then SIGKILL) and the logs' place is printed."""

    def __init__(self, prefix: str, *, kefu_db: str = "sqlite", **env: str) -> None:
        """``kefu_db``: where Kefu's system of record lives — ``sqlite`` (a file in the scratch directory),
        ``postgresql`` (a fresh database on the test PostgreSQL, dropped at the end) or ``embedded`` (the
        embedded PostgreSQL ``make up`` uses, its data in the scratch directory, stopped at the end)."""
        from kefu.models.db import make_engine
        from kefu.models.migrate import upgrade

        self.scratch = Path(tempfile.mkdtemp(prefix=prefix))
        self.cleanup = contextlib.ExitStack()
        self.db_url = self._kefu_database(kefu_db)
        self.engine = make_engine(self.db_url)
        upgrade(self.engine)
        self.prefect_port = free_port()
        self.api = f"http://127.0.0.1:{self.prefect_port}/api"
        self.env = {
            **os.environ,
            "PREFECT_HOME": str(self.scratch / "prefect"),
            "PREFECT_API_URL": self.api,
            "KEFU_PREFECT_API_URL": self.api,  # Kefu's processes reach Prefect through Kefu's settings only
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "KEFU_DATABASE_URL": self.db_url,
            "KEFU_VAR_DIR": str(self.scratch),
            "KEFU_MAIL_SINK_ENABLED": "false",
            **env,
        }
        self.processes: list[subprocess.Popen[bytes]] = []

    def _kefu_database(self, kind: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{self.scratch / 'kefu.db'}"
        if kind == "postgresql":
            return self._scratch_postgresql("kefu_bench_kefu", "psycopg")
        if kind == "embedded":
            return self._embedded_url("kefu", "psycopg")
        raise ValueError(f"unknown database kind {kind!r}")

    def _scratch_postgresql(self, prefix: str, driver: str) -> str:
        from tests.support.postgres import POSTGRES_STATUS, POSTGRES_URL, scratch_postgres_database

        if POSTGRES_URL is None:
            raise SystemExit(f"PostgreSQL {POSTGRES_STATUS}")
        database = self.cleanup.enter_context(scratch_postgres_database(prefix))
        return database.set(drivername=f"postgresql+{driver}").render_as_string(hide_password=False)

    def _embedded_url(self, database: str, driver: str) -> str:
        """The embedded server of ``make up``, its data under the scratch directory; this process is its first
        user and the last to leave (after the processes it started), which stops it."""
        from kefu.models import embedded_pg

        pgdata = (self.scratch / "pg").resolve()
        embedded_pg.attach(pgdata)  # idempotent within a process; a second release does nothing
        self.cleanup.callback(embedded_pg.release, pgdata)
        return f"postgresql+{driver}://postgres@/{database}?host={pgdata}"

    def start(
        self, name: str, argv: list[str], cwd: Path | None = None, *, nice: int = 0, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a process of the benchmark; ``nice`` lowers its priority as ``kefu up`` does for its component,
        ``env`` adds to the stack's environment for this process."""
        process = spawn(argv, {**self.env, **(env or {})}, self.scratch / f"{name}.log", cwd=cwd, nice=nice)
        self.processes.append(process)
        return process

    def prefect_on_postgresql(self, prefix: str) -> None:
        """Keep the Prefect server's data in a fresh database on the test PostgreSQL, dropped at the end."""
        self.env["PREFECT_API_DATABASE_CONNECTION_URL"] = self._scratch_postgresql(prefix, "asyncpg")

    def prefect_on_embedded(self) -> None:
        """Keep the Prefect server's data in the embedded PostgreSQL's ``prefect`` database, as ``make up`` does."""
        self.env["PREFECT_API_DATABASE_CONNECTION_URL"] = self._embedded_url("prefect", "asyncpg")

    def start_prefect_server(self, *, nice: int = 0) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
        server = self.start("prefect", [*argv, "--port", str(self.prefect_port)], nice=nice)
        wait_healthy(f"{self.api}/health", server, self.scratch / "prefect.log")
        return server

    def start_scaled_prefect(
        self, api_processes: int, redis_url: str, *, nice: int = 0
    ) -> list[subprocess.Popen[bytes]]:
        """The Prefect side of ``kefu up --scaled``: the database migrated once, ``api_processes`` API processes
        (``--no-services``) behind Kefu's balancer on the stack's Prefect port, the services in one process,
        messaging on ``redis_url``; its processes (for their CPU time). Needs the Prefect server on PostgreSQL."""
        from kefu.cli.up import scaled_prefect_env
        from kefu.settings import Settings

        self.env.update(scaled_prefect_env(Settings(redis_url=redis_url)))
        prefect = [sys.executable, "-m", "prefect", "server"]
        migrate = self.start("prefect-migrate", [*prefect, "database", "upgrade", "-y"])
        if migrate.wait() != 0:
            raise RuntimeError(f"the Prefect database migration failed; see {self.scratch / 'prefect-migrate.log'}")
        ports = [free_port() for _ in range(api_processes)]
        api = [
            self.start(
                f"prefect-api-{n}",
                [*prefect, "start", "--no-services", "--host", "127.0.0.1", "--port", str(port)],
                nice=nice,
                env={} if n == 1 else {"PREFECT_SERVER_REGISTER_BLOCKS_ON_START": "false"},  # as kefu up --scaled
            )
            for n, port in enumerate(ports, start=1)
        ]
        for process, port in zip(api, ports, strict=True):
            wait_healthy(f"http://127.0.0.1:{port}/api/health", process, self.scratch / "prefect-api.log")
        backends = [arg for port in ports for arg in ("--backend", f"127.0.0.1:{port}")]
        balancer = self.start(
            "prefect-balancer",
            [sys.executable, "-m", "kefu.engine.balancer", "--listen", f"127.0.0.1:{self.prefect_port}", *backends],
        )
        wait_healthy(f"{self.api}/health", balancer, self.scratch / "prefect-balancer.log")
        services = self.start("prefect-services", [*prefect, "services", "start"], nice=nice)
        return [*api, balancer, services]

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *_exc: object) -> None:
        for process in reversed(self.processes):
            stop(process, timeout=30)
        self.cleanup.close()
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
