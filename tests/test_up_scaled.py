"""``kefu up --scaled``: the scaled topology on one machine — the Prefect database migrated once, two API processes
behind the balancer, Prefect's services in a process of their own, messaging on Redis, Kefu and Prefect on
PostgreSQL, two Kefu workers. A batch of complaints taken in through the intake API is driven to close while one
worker is killed (-9) in the middle of a step and one API process is killed and started again: every case closes
exactly once and no audit line is written twice."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy import URL

from kefu.settings import get_settings
from tests.support.desk import UP_AUTH_STRING, up_auth
from tests.support.postgres import POSTGRES_STATUS, POSTGRES_URL, scratch_postgres_database
from tests.support.processes import free_port, read_until, start_kefu_up
from tests.support.redis import REDIS_STATUS, REDIS_URL, scratch_redis_database
from tests.support.samples import complaint_json

CASES = 4
TOKEN = "scaled-test-token"
STEPS: list[tuple[str, dict[str, Any]]] = [
    ("classify", {}),
    ("first_contact", {"summary": "致歉"}),
    ("investigate", {"departments": ["运营部"], "findings": "延误"}),
    ("propose", {"solution": "退运费"}),
    ("approve", {"accepted": True}),
    ("resolve", {"summary": "已退"}),
    ("callback", {"satisfaction": 5}),
]
KILL_A_WORKER_AT = "investigate"
RESTART_AN_API_PROCESS_AT = "propose"


def pg_url(database: URL, driver: str) -> str:
    return database.set(drivername=f"postgresql+{driver}").render_as_string(hide_password=False)


@pytest.fixture
def scaled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[psutil.Process, dict[str, str]]]:
    """``kefu up --scaled`` on scratch PostgreSQL databases and a Redis database of its own, started as a person
    starts it (clean environment); this test process pointed at the same Kefu database and Prefect API."""
    if POSTGRES_URL is None:
        pytest.skip(f"PostgreSQL {POSTGRES_STATUS}")
    if REDIS_URL is None:
        pytest.skip(f"Redis {REDIS_STATUS}")
    with (
        scratch_postgres_database("kefu_scaled") as kefu_db,
        scratch_postgres_database("kefu_scaled_prefect") as prefect_db,
        scratch_redis_database() as redis_url,
    ):
        port = free_port()
        api = f"http://127.0.0.1:{port}/api"
        settings = {
            "KEFU_VAR_DIR": str(tmp_path / "var"),
            "KEFU_DATABASE_URL": pg_url(kefu_db, "psycopg"),
            "KEFU_PREFECT_DATABASE_URL": pg_url(prefect_db, "asyncpg"),
            "KEFU_REDIS_URL": redis_url,
            "KEFU_PREFECT_PORT": str(port),
            "KEFU_PREFECT_API_URL": api,
            "KEFU_PREFECT_API_PORTS": f"[{free_port()}, {free_port()}]",
            "KEFU_INTAKE_PORT": str(free_port()),
            "KEFU_DESK_PORT": str(free_port()),
            "KEFU_PREFECT_AUTH_STRING": UP_AUTH_STRING,
            "KEFU_INTAKE_API_TOKENS": f'["{TOKEN}"]',
            "KEFU_MAIL_SINK_ENABLED": "false",  # mails wait in the outbox: not what this test is about
            "KEFU_SERVE_ONLY": '["complaint-case"]',
            "KEFU_WORKER_POLL_SECONDS": "0.2",
        }
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("KEFU_", "PREFECT_"))},
            **settings,
            "PYTHONUNBUFFERED": "1",
        }
        up = start_kefu_up(env, "--scaled")
        try:
            output = read_until(up, "Press Ctrl-C", timeout=420)
            assert "prefect-migrate done" in output
            for name in ("prefect-api-1", "prefect-api-2", "prefect-balancer", "prefect-services", "worker-2"):
                assert f"{name} started" in output
            for name in ("KEFU_DATABASE_URL", "KEFU_PREFECT_API_URL", "KEFU_PREFECT_AUTH_STRING"):
                monkeypatch.setenv(name, settings[name])
            get_settings.cache_clear()
            yield psutil.Process(up.pid), settings
            up.send_signal(signal.SIGINT)
            rest, _ = up.communicate(timeout=180)
            assert up.returncode == 0, rest
            # The killed worker and API process were each started again by kefu up, once.
            assert rest.count("exited with status -9; starting it again") == 2, rest
            assert (
                rest.index("stopping intake") < rest.index("stopping worker-1") < rest.index("stopping prefect-api-1")
            )
        finally:
            _stop_everything(up.pid)
            from kefu.models.db import engine_for

            engine_for(settings["KEFU_DATABASE_URL"]).dispose()
            get_settings.cache_clear()


def _stop_everything(pid: int) -> None:
    """If ``kefu up`` is still there (the test failed), stop it; kill what it left behind."""
    try:
        up = psutil.Process(pid)
        children = up.children(recursive=True)
        up.terminate()
        up.wait(60)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        pass
    for child in children:
        if child.is_running():
            child.kill()


def component(up: psutil.Process, *words: str) -> psutil.Process:
    """The child of ``kefu up`` whose command line holds ``words``, in order."""
    for child in up.children():
        line = " ".join(child.cmdline())
        if " ".join(words) in line:
            return child
    raise AssertionError(f"no component running {' '.join(words)}")


def wait_all_waiting(case_nos: list[str], step: str, timeout: float = 120) -> None:
    from kefu.models.db import unit_of_work
    from kefu.tasks.casework import waiting_steps

    deadline = time.monotonic() + timeout
    left = set(case_nos)
    while left:
        with unit_of_work() as session:
            left = {c for c in left if not any(r["step"] == step for r in waiting_steps(session, c))}
        assert time.monotonic() < deadline, f"{sorted(left)} never waited on {step}"
        if left:
            time.sleep(0.3)  # the workers are other processes: polling the database is the only signal


def kill_a_worker_mid_step(up: psutil.Process, api: str) -> int:
    """SIGKILL the worker executing one of the cases' runs while it is Running; its pid."""
    from kefu.engine.worker import claim_mark

    workers = {claim_mark(c.pid): c for c in up.children() if "worker" in c.cmdline()}
    assert len(workers) == 2, workers
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        body = {"flow_runs": {"state": {"type": {"any_": ["RUNNING"]}}}, "limit": 50}
        for run in httpx.post(f"{api}/flow_runs/filter", json=body, timeout=10, auth=up_auth()).json():
            victim = workers.get(str(run["infrastructure_pid"]))
            if victim is not None:
                victim.kill()  # SIGKILL: no shutdown of any kind
                return victim.pid
        time.sleep(0.01)
    raise AssertionError("no worker was ever caught executing a case")


@pytest.mark.slow
def test_the_scaled_topology_closes_every_case_once_through_a_worker_kill_and_an_api_restart(
    scaled: tuple[psutil.Process, dict[str, str]],
) -> None:
    from sqlalchemy import select

    from kefu.cli.step import submit
    from kefu.models.complaints import CaseEvent, Complaint
    from kefu.models.db import unit_of_work
    from kefu.models.enums import ComplaintStatus, Role
    from kefu.models.people import Staff

    up, settings = scaled
    api = settings["KEFU_PREFECT_API_URL"]
    intake = f"http://127.0.0.1:{settings['KEFU_INTAKE_PORT']}"
    with unit_of_work() as session:
        agent = Staff(name="客服")
        agent.grant(Role.AGENT)
        session.add(agent)
        session.flush()
        staff = agent.id
    case_nos = []
    for _ in range(CASES):
        response = httpx.post(
            f"{intake}/api/v1/complaints",
            json=complaint_json(content="快递晚到两天"),
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        case_nos.append(response.json()["case_no"])

    killed_worker = restarted_api = None
    port = settings["KEFU_PREFECT_API_PORTS"].strip("[]").split(",")[0].strip()  # the first API process's
    for step, data in STEPS:
        wait_all_waiting(case_nos, step)
        for case_no in case_nos:
            submit(case_no, step, {"actor_staff_id": staff, **data})
        if step == KILL_A_WORKER_AT:
            killed_worker = kill_a_worker_mid_step(up, api)
        if step == RESTART_AN_API_PROCESS_AT:
            api_process = component(up, "--port", port)
            restarted_api = api_process.pid
            api_process.kill()  # kefu up starts it again; meanwhile the balancer sends everything to the other

    with unit_of_work() as session:
        deadline = time.monotonic() + 120
        while True:
            statuses = dict(
                session.execute(select(Complaint.case_no, Complaint.status).where(Complaint.case_no.in_(case_nos)))
                .tuples()
                .all()
            )
            if all(s is ComplaintStatus.CLOSED for s in statuses.values()):
                break
            assert time.monotonic() < deadline, f"not all closed: {statuses}"
            session.rollback()
            time.sleep(0.5)
        events = session.execute(
            select(Complaint.case_no, CaseEvent.action, CaseEvent.data)
            .join(CaseEvent, CaseEvent.complaint_id == Complaint.id)
            .where(Complaint.case_no.in_(case_nos))
        ).all()
    audit = [(case_no, action, str(data.get("key"))) for case_no, action, data in events]
    assert len(audit) == len(set(audit)), "an audit line was written twice"
    closed = [case_no for case_no, action, _ in audit if action == "closed"]
    assert sorted(closed) == sorted(case_nos), "every case closed exactly once"

    # The killed worker and the killed API process were started again by kefu up, each once.
    assert killed_worker is not None and restarted_api is not None
    workers = [c for c in up.children() if "worker" in c.cmdline()]
    assert len(workers) == 2 and killed_worker not in {w.pid for w in workers}
    assert component(up, "--port", port).pid != restarted_api
    deadline = time.monotonic() + 180
    while True:  # and it serves again
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the restarted API process never answered"
        time.sleep(1)  # a process kefu up started: polling its health check is the only signal


def test_scaled_is_refused_on_sqlite_and_starts_nothing(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEFU_", "PREFECT_"))}
    env |= {"KEFU_VAR_DIR": str(tmp_path / "var"), "KEFU_DATABASE_URL": "sqlite:///kefu.db"}
    kefu = str(Path(sys.executable).parent / "kefu")
    done = subprocess.run([kefu, "up", "--scaled"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "kefu up: --scaled needs PostgreSQL for Kefu and Prefect; KEFU_DATABASE_URL is SQLite (sqlite:///kefu.db)"
    )
    assert not (tmp_path / "var").exists()  # nothing started, not even the embedded PostgreSQL


def test_scaled_is_refused_when_redis_does_not_answer(tmp_path: Path) -> None:
    from kefu.cli.up import scaled_refusal
    from kefu.settings import Settings

    refusal = scaled_refusal(Settings(var_dir=tmp_path, redis_url="redis://127.0.0.1:1/0"))
    assert refusal is not None and refusal.startswith("--scaled needs Redis; redis://127.0.0.1:1/0 (KEFU_REDIS_URL)")
