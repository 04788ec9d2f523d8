"""The embedded PostgreSQL that ``make up`` runs under ``var/pg``: it starts with Kefu's two databases, keeps
what was written across a stop and a start, survives a killed run's ``postmaster.pid``, and the last process
using it stops it — not one that leaves while another still uses it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from kefu.models import embedded_pg

pytestmark = pytest.mark.slow


def _connect(pgdata: Path, dbname: str = "kefu") -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(host=str(pgdata), user="postgres", dbname=dbname, autocommit=True)


def _wait_gone(pid: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"postmaster {pid} still there"
        time.sleep(0.1)  # another process: poll with a deadline


def test_starts_with_both_databases_and_keeps_a_row_across_stop_and_start(embedded_var_dir: Path) -> None:
    pgdata = embedded_var_dir / "pg"
    embedded_pg.attach(pgdata)
    try:
        with _connect(pgdata, "postgres") as connection:
            names = {row[0] for row in connection.execute("SELECT datname FROM pg_database")}
            version = connection.execute("SHOW server_version_num").fetchone()
        assert {"kefu", "prefect"} <= names
        assert version is not None and int(str(version[0])) >= 180000
        with _connect(pgdata) as connection:
            connection.execute("CREATE TABLE kept (note text)")
            connection.execute("INSERT INTO kept VALUES ('written before the stop')")
    finally:
        assert embedded_pg.release(pgdata)  # the only user: it stops the server
    assert embedded_pg.running_pid(pgdata) is None
    assert not (pgdata / "postmaster.pid").exists()

    embedded_pg.attach(pgdata)
    try:
        with _connect(pgdata) as connection:
            assert connection.execute("SELECT note FROM kept").fetchall() == [("written before the stop",)]
    finally:
        embedded_pg.release(pgdata)


def test_starts_again_over_the_postmaster_pid_of_a_killed_run(embedded_var_dir: Path) -> None:
    pgdata = embedded_var_dir / "pg"
    embedded_pg.attach(pgdata)
    pid = embedded_pg.running_pid(pgdata)
    assert pid is not None
    with _connect(pgdata) as connection:
        connection.execute("CREATE TABLE kept AS SELECT 42 AS answer")
    os.kill(pid, signal.SIGKILL)  # a machine crash or kill -9: no shutdown, postmaster.pid stays
    _wait_gone(pid)
    left = (pgdata / "postmaster.pid").read_text()
    embedded_pg.release(pgdata)
    (pgdata / "postmaster.pid").write_text(left)  # as a crash leaves it (a dead pid, or a zombie never reaped)

    embedded_pg.attach(pgdata)  # the dead pid's file: PostgreSQL recovers and starts
    try:
        with _connect(pgdata) as connection:
            assert connection.execute("SELECT answer FROM kept").fetchall() == [(42,)]
    finally:
        embedded_pg.release(pgdata)

    # After a reboot the file's pid may belong to another program, here this test's own process.
    assert not (pgdata / "postmaster.pid").exists()
    lines = [str(os.getpid()), str(pgdata), "0", "5432", str(pgdata), "", "0 0", "ready"]
    (pgdata / "postmaster.pid").write_text("\n".join(lines) + "\n")
    embedded_pg.attach(pgdata)
    try:
        assert embedded_pg.running_pid(pgdata) not in {None, os.getpid()}
        with _connect(pgdata) as connection:
            assert connection.execute("SELECT answer FROM kept").fetchall() == [(42,)]
    finally:
        embedded_pg.release(pgdata)


def test_the_last_process_using_it_stops_it(embedded_var_dir: Path) -> None:
    pgdata = embedded_var_dir / "pg"
    embedded_pg.attach(pgdata)
    other = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from kefu.models import embedded_pg; "
            f"embedded_pg.attach(Path({str(pgdata)!r})); "
            "print('attached', flush=True); sys.stdin.readline()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "attached"
        assert not embedded_pg.release(pgdata)  # the other process still uses it
        assert embedded_pg.running_pid(pgdata) is not None
        with _connect(pgdata) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
        other.communicate("\n", timeout=60)  # it ends normally: the last user, it stops the server
        assert other.returncode == 0
        assert embedded_pg.running_pid(pgdata) is None
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()
        embedded_pg.stop(pgdata)


@pytest.mark.parametrize("argv", [["up"], ["case", "show", "KF20261202-00001"]])
def test_a_server_that_cannot_start_is_one_message_and_exit_1_not_a_traceback(tmp_path: Path, argv: list[str]) -> None:
    var_dir = tmp_path / ("很长的目录名" * 12)  # the socket path would pass PostgreSQL's 107 bytes
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "KEFU_VAR_DIR": str(var_dir)}
    kefu = str(Path(sys.executable).parent / "kefu")
    result = subprocess.run([kefu, *argv], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    command = " ".join(["kefu", *argv[:2]]) if argv[0] == "case" else "kefu up"
    assert result.stderr.startswith(f"{command}: {var_dir / 'pg'} is too long a path for PostgreSQL's socket")
    assert "set KEFU_VAR_DIR to a shorter directory" in result.stderr
