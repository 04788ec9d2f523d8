"""``kefu up`` (the first README command's last step) brings the system up, shows where everything is,
serves Kefu's deployments to the Prefect server, and Ctrl-C stops it all cleanly."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import URL

from tests.support.postgres import POSTGRES_STATUS, POSTGRES_URL, scratch_postgres_database
from tests.support.processes import free_port, kill_9, read_until, spawn, start_kefu_up, stop, wait_healthy


@pytest.mark.slow
def test_kefu_up_serves_the_deployments_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEFU_")},  # other fixtures' settings
        "KEFU_VAR_DIR": str(tmp_path / "var"),
        "KEFU_PREFECT_PORT": str(port),
        "KEFU_PREFECT_API_URL": api,
        "KEFU_INTAKE_PORT": str(free_port()),
        "KEFU_SMTP_PORT": str(free_port()),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PREFECT_API_URL", None)
    process = start_kefu_up(env)
    try:
        output = read_until(process, "Press Ctrl-C", timeout=150)
        assert f"http://127.0.0.1:{port}" in output
        assert "migrated" in output
        assert (tmp_path / "var" / "kefu.db").exists()
        expected = {"calendar-check", "complaint-case", "case-deadlines", "deliver-mail"}
        names: set[str] = set()
        deadline = time.monotonic() + 60
        while not expected <= names and time.monotonic() < deadline:
            response = httpx.post(f"{api}/deployments/filter", json={}, timeout=10)
            names = {d["name"] for d in response.json()}
            if not expected <= names:
                time.sleep(0.5)  # the runner registers its deployments shortly after it starts
        assert expected <= names
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        assert "stopped" in rest
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
    import psycopg

    from kefu.cli.up import components, prefect_env
    from kefu.settings import Settings

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
        flow = httpx.post(f"{settings.prefect_api_url}/flows/", json={"name": "kefu-up-pg-check"}, timeout=30)
        flow.raise_for_status()
        with psycopg.connect(pg.set(drivername="postgresql").render_as_string(hide_password=False)) as connection:
            stored = connection.execute("SELECT name FROM flow WHERE name = 'kefu-up-pg-check'").fetchall()
        assert stored == [("kefu-up-pg-check",)]
    finally:
        stop(process, timeout=30)
