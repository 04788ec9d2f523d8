"""``kefu up`` (the first README command's last step) brings the system up, shows where everything is,
serves Kefu's deployments to the Prefect server, and Ctrl-C stops it all cleanly."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import URL

from kefu.cli.up import prefect_env
from kefu.engine.connection import PrefectAuth, prefect_auth_string
from kefu.models import embedded_pg
from kefu.settings import Settings
from tests.support.postgres import POSTGRES_STATUS, POSTGRES_URL, scratch_postgres_database
from tests.support.processes import free_port, kill_9, read_until, spawn, start_kefu_up, stop, wait_healthy


def test_a_database_left_unconfigured_is_on_the_embedded_postgresql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each of the two databases is the embedded server's unless its own URL is set."""
    for name in ("KEFU_DATABASE_URL", "KEFU_PREFECT_DATABASE_URL"):  # set by other tests' session fixtures
        monkeypatch.delenv(name, raising=False)
    socket = f"host={(tmp_path / 'var' / 'pg').resolve()}"
    embedded = Settings(var_dir=tmp_path / "var")
    assert embedded.resolved_database_url() == f"postgresql+psycopg://postgres@/kefu?{socket}"
    assert prefect_env(embedded)["PREFECT_API_DATABASE_CONNECTION_URL"] == (
        f"postgresql+asyncpg://postgres@/prefect?{socket}"
    )
    assert embedded.uses_embedded_postgres

    only_kefu = Settings(var_dir=tmp_path / "var", database_url="sqlite:///kefu.db")
    assert only_kefu.resolved_database_url() == "sqlite:///kefu.db"
    assert prefect_env(only_kefu)["PREFECT_API_DATABASE_CONNECTION_URL"].endswith(f"/prefect?{socket}")
    assert only_kefu.uses_embedded_postgres

    external = "postgresql+asyncpg://postgres@db.example/prefect"
    only_prefect = Settings(var_dir=tmp_path / "var", prefect_database_url=external)
    assert only_prefect.resolved_database_url().endswith(f"/kefu?{socket}")
    assert prefect_env(only_prefect)["PREFECT_API_DATABASE_CONNECTION_URL"] == external
    assert only_prefect.uses_embedded_postgres

    both = Settings(var_dir=tmp_path / "var", database_url="sqlite:///kefu.db", prefect_database_url=external)
    assert not both.uses_embedded_postgres


@pytest.mark.slow
def test_kefu_up_serves_the_deployments_and_stops_on_ctrl_c(embedded_var_dir: Path) -> None:
    port, desk_port = free_port(), free_port()
    api = f"http://127.0.0.1:{port}/api"
    pgdata = embedded_var_dir / "pg"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEFU_")},  # other fixtures' settings
        "KEFU_VAR_DIR": str(embedded_var_dir),
        "KEFU_PREFECT_PORT": str(port),
        "KEFU_PREFECT_API_URL": api,
        "KEFU_INTAKE_PORT": str(free_port()),
        "KEFU_DESK_PORT": str(desk_port),
        "KEFU_SMTP_PORT": str(free_port()),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PREFECT_API_URL", None)
    process = start_kefu_up(env)
    try:
        output = read_until(process, "Press Ctrl-C", timeout=150)
        assert f"http://127.0.0.1:{port}" in output
        assert f"Sign in at http://127.0.0.1:{desk_port}/signin" in output  # how a newcomer gets in
        assert "first administrator created: sign-in name 'admin', one-time password" in output
        # The Prefect server requires the auth string ``kefu up`` generated once under var/ (only its owner reads it)
        auth_file = embedded_var_dir / "prefect-auth"
        assert auth_file.stat().st_mode & 0o777 == 0o600
        assert httpx.get(f"{api}/flow_runs/{uuid.uuid4()}", timeout=10).status_code == 401
        auth = PrefectAuth(auth_file.read_text().strip())
        assert "migrated" in output
        assert f"embedded PostgreSQL running on {pgdata}" in output
        assert (pgdata / "PG_VERSION").read_text().strip() == "18"
        expected = {"calendar-check", "complaint-case", "case-deadlines", "deliver-mail"}
        names: set[str] = set()
        deadline = time.monotonic() + 60
        while not expected <= names and time.monotonic() < deadline:
            response = httpx.post(f"{api}/deployments/filter", json={}, timeout=10, auth=auth)
            names = {d["name"] for d in response.json()}
            if not expected <= names:
                time.sleep(0.5)  # the worker registers the deployments shortly after it starts
        assert expected <= names
        # Both databases live on the embedded server: the Prefect server's deployments are in ``prefect``.
        with psycopg.connect(host=str(pgdata), user="postgres", dbname="prefect") as connection:
            stored = {row[0] for row in connection.execute("SELECT name FROM deployment")}
            databases = {row[0] for row in connection.execute("SELECT datname FROM pg_database")}
        assert expected <= stored
        assert {"kefu", "prefect"} <= databases
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        assert "stopped" in rest
        assert rest.index("stopping prefect-server") < rest.index("embedded PostgreSQL stopped")
        assert embedded_pg.running_pid(pgdata) is None
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{api}/health", timeout=2)
    finally:
        if process.poll() is None:
            kill_9(process)


def test_kefu_up_starts_the_prefect_server_on_the_configured_postgresql(tmp_path: Path) -> None:
    """``KEFU_PREFECT_DATABASE_URL``: the server ``kefu up`` starts keeps its runs in that database."""
    if POSTGRES_URL is None:
        pytest.skip(f"PostgreSQL {POSTGRES_STATUS}")
    with scratch_postgres_database("kefu_up_prefect") as pg:
        _check_prefect_keeps_runs_in(pg, tmp_path)


def _check_prefect_keeps_runs_in(pg: URL, tmp_path: Path) -> None:
    from kefu.cli.up import components

    port = free_port()
    settings = Settings(
        var_dir=tmp_path / "var",
        prefect_port=port,
        prefect_api_url=f"http://127.0.0.1:{port}/api",
        prefect_database_url=pg.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False),
    )
    [server] = [c for c in components(settings) if c.name == "prefect-server"]
    env = {**os.environ, **prefect_env(settings), **server.env}
    log = tmp_path / "prefect-server.log"
    process = spawn(server.argv, env, log)
    try:
        wait_healthy(f"{settings.prefect_api_url}/health", process, log, timeout=90)
        flow = httpx.post(
            f"{settings.prefect_api_url}/flows/",
            json={"name": "kefu-up-pg-check"},
            timeout=30,
            auth=PrefectAuth(prefect_auth_string(settings)),
        )
        flow.raise_for_status()
        with psycopg.connect(pg.set(drivername="postgresql").render_as_string(hide_password=False)) as connection:
            stored = connection.execute("SELECT name FROM flow WHERE name = 'kefu-up-pg-check'").fetchall()
        assert stored == [("kefu-up-pg-check",)]
    finally:
        stop(process, timeout=30)


def test_a_component_that_keeps_exiting_is_restarted_three_times_then_kefu_up_gives_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A component that exits is started again, in its place; the fourth exit within a minute stops everything
    (newest first) with one line naming it."""
    import subprocess
    import sys

    from kefu.cli.up import Component, _keep_up, start_component

    starts = tmp_path / "starts"
    crashing = Component("crashing", [sys.executable, "-c", f"open({str(starts)!r}, 'a').write('x'); exit(3)"])
    steady = Component("steady", [sys.executable, "-c", "import time; time.sleep(120)"])
    env = dict(os.environ)
    started: list[tuple[Component, subprocess.Popen[bytes]]] = [
        (c, start_component(c, env, tmp_path / f"{c.name}.log")) for c in (steady, crashing)
    ]
    assert _keep_up(started, env, tmp_path) == 1
    assert starts.read_text() == "xxxx"  # the first start and three restarts
    err = capsys.readouterr().err
    assert err.count("kefu up: crashing exited with status 3; starting it again") == 3
    assert "crashing exited with status 3 again, after 3 restarts within 60 s; giving up" in err
    assert started[0][1].poll() is not None  # the steady one was stopped too


def test_prefects_links_to_runs_lead_through_the_operators_entrance(tmp_path: Path) -> None:
    """Prefect writes "View at <UI URL>/runs/flow-run/<id>" into every run's log (the Prefect UI, var/logs, the
    commands that run a flow): the link is the entrance's, since the server itself asks for its auth string."""
    default = Settings(var_dir=tmp_path / "var")
    assert prefect_env(default)["PREFECT_UI_URL"] == "http://127.0.0.1:8100/prefect"
    public = Settings(var_dir=tmp_path / "var", desk_public_url="https://kefu.example.com/")
    assert prefect_env(public)["PREFECT_UI_URL"] == "https://kefu.example.com/prefect"
