"""``kefu up`` (the first README command's last step) brings the system up, shows where everything is,
serves Kefu's deployments to the Prefect server and the complaint form beside the Prefect UI, and Ctrl-C stops it
all cleanly.

Bringing the whole system up is the slowest thing the suite does (embedded PostgreSQL, migrations, the Prefect
server, the worker, the web apps): the tests that look at a running ``kefu up`` share one (``kefu_up``), and the
one that stops it with Ctrl-C comes last; a test that finds it stopped starts a new one in a new ``var``."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import URL

from kefu.cli.up import prefect_env
from kefu.engine.connection import PrefectAuth, prefect_auth_string
from kefu.engine.contract import case_run_name
from kefu.models import embedded_pg
from kefu.settings import Settings
from tests.support.databases import scratch_var_dir
from tests.support.postgres import POSTGRES_STATUS, POSTGRES_URL, scratch_postgres_database
from tests.support.processes import free_port, kill_9, read_until, spawn, start_kefu_up, stop, wait_healthy
from tests.support.samples import complaint_json

KEFU = str(Path(sys.executable).parent / "kefu")


@dataclass
class Up:
    """A ``kefu up`` started as a person starts it (clean environment, embedded defaults), and what it printed
    until it was ready."""

    process: subprocess.Popen[str]
    output: str
    env: dict[str, str]
    var_dir: Path
    prefect_port: int
    intake_port: int
    desk_port: int

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}/api"

    def auth(self) -> PrefectAuth:
        """The auth string ``kefu up`` generated under ``var/`` (nothing configured), as Kefu sends it."""
        return PrefectAuth((self.var_dir / "prefect-auth").read_text().strip())


def _start_kefu_up(var_dir: Path) -> Up:
    prefect_port, intake_port, desk_port = free_port(), free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEFU_")},  # other fixtures' settings
        "KEFU_VAR_DIR": str(var_dir),
        "KEFU_PREFECT_PORT": str(prefect_port),
        "KEFU_PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
        "KEFU_INTAKE_PORT": str(intake_port),
        "KEFU_DESK_PORT": str(desk_port),
        "KEFU_SMTP_PORT": str(free_port()),
        "KEFU_INTAKE_API_TOKENS": '["up-test-token"]',
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PREFECT_API_URL", None)
    process = start_kefu_up(env)
    try:
        output = read_until(process, "Press Ctrl-C", timeout=150)
    except BaseException:
        kill_9(process)
        raise
    return Up(process, output, env, var_dir, prefect_port, intake_port, desk_port)


@pytest.fixture(scope="module")
def kefu_up() -> Iterator[Callable[[], Up]]:
    """The running ``kefu up`` of this module: the same one for every test until a test stops it, then a new one."""
    with contextlib.ExitStack() as stack:
        current: list[Up] = []

        def running() -> Up:
            if not current or current[-1].process.poll() is not None:
                current.append(_start_kefu_up(stack.enter_context(scratch_var_dir())))
            return current[-1]

        yield running
        for up in current:
            if up.process.poll() is None:
                up.process.send_signal(signal.SIGINT)
                try:
                    up.process.communicate(timeout=60)
                except subprocess.TimeoutExpired:
                    kill_9(up.process)


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


def _case_flow_run(up: Up, case_no: str, timeout: float) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        by_name = {"flow_runs": {"name": {"any_": [case_run_name(case_no)]}}}
        runs = httpx.post(f"{up.api}/flow_runs/filter", json=by_name, timeout=10, auth=up.auth())
        if runs.status_code == 200 and runs.json():
            result: list[dict[str, object]] = runs.json()
            return result
        time.sleep(0.5)  # the dispatcher is another process: poll Prefect with a deadline
    return []


def _wait_suspended(up: Up, run_id: str, timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state: dict[str, object] = httpx.get(f"{up.api}/flow_runs/{run_id}", timeout=10, auth=up.auth()).json()["state"]
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


@pytest.mark.slow
@pytest.mark.prefect
def test_kefu_up_serves_the_form_and_each_complaint_gets_its_case_flow_run(kefu_up: Callable[[], Up]) -> None:
    """``make up`` serves the complaint form beside the Prefect UI, prints both addresses, and a complaint sent
    through the form or (retried) through the API gets its case number and its one case flow run."""
    up = kefu_up()
    process, output, env, api = up.process, up.output, up.env, up.api
    pgdata = up.var_dir / "pg"
    intake = f"http://127.0.0.1:{up.intake_port}"
    assert f"http://127.0.0.1:{up.prefect_port}" in output  # the Prefect UI
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
        runs = _case_flow_run(up, case_no, timeout=60)
        assert len(runs) == 1, f"{case_no}: {runs}"
        assert runs[0]["parameters"] == {"case_no": case_no}
        assert runs[0]["name"] == f"case {case_no}"
        # What an operator finds in the UI: the run suspended on the first human step, its form saved.
        state = _wait_suspended(up, str(runs[0]["id"]), timeout=60)
        assert state["state_details"]["pause_key"] == "classify-0", state
        schema = httpx.get(
            f"{api}/flow_runs/{runs[0]['id']}/input/suspended-classify-0-schema", timeout=10, auth=up.auth()
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


@pytest.mark.slow
def test_kefu_up_serves_the_deployments_and_stops_on_ctrl_c(kefu_up: Callable[[], Up]) -> None:
    up = kefu_up()
    process, output, port, api = up.process, up.output, up.prefect_port, up.api
    pgdata = up.var_dir / "pg"
    assert f"http://127.0.0.1:{port}" in output
    assert f"Sign in at http://127.0.0.1:{up.desk_port}/signin" in output  # how a newcomer gets in
    assert "first administrator created: sign-in name 'admin', one-time password" in output
    # The Prefect server requires the auth string ``kefu up`` generated once under var/ (only its owner reads it)
    auth_file = up.var_dir / "prefect-auth"
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
