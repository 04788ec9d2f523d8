"""Crash tests: kill -9 of the dispatcher, of the Kefu worker and of the Prefect server in the middle of a burst
of complaints; after they restart, every complaint has exactly one case flow run (none lost, none
duplicated), and complaints sent while Prefect is down are taken all the same. Kill -9 of the intake app
itself: every answered complaint is stored, and gateways' retries store the rest exactly once."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from kefu.engine.rest import PrefectRuns
from kefu.intake.app import create_app
from kefu.intake.dispatcher import reconcile
from kefu.models import Complaint
from kefu.models.intake import IntakeIdempotencyKey, IntakeOutbox
from tests.support.clock import FixedClock, unique_receipt_time
from tests.support.prefect import WORKER_ARGV, PrefectServer, case_runs
from tests.support.processes import free_port, kill_9, running
from tests.support.samples import AUTH, complaint_json, intake_settings

pytestmark = [pytest.mark.prefect, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
PER_PHASE = 30


def dispatched(engine: Engine) -> tuple[int, int]:
    with Session(engine) as session:
        total = session.scalar(select(func.count()).select_from(IntakeOutbox)) or 0
        done = session.scalar(select(func.count()).where(IntakeOutbox.flow_run_id.is_not(None))) or 0
    return done, total


async def wait_for(condition: str, check: object, timeout: float, log: Path) -> None:
    # Separate processes give no signal of their own: poll the database/Prefect with a deadline.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{condition} did not happen within {timeout:.0f} s; see {log}")


async def test_kill_9_of_dispatcher_worker_and_prefect_server_mid_burst_leaves_exactly_one_run_per_complaint(
    sqlite_engine: Engine,
    prefect_server: str,
    prefect_server_process: PrefectServer,
    case_deployment: str,
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "KEFU_DATABASE_URL": sqlite_engine.url.render_as_string(hide_password=False),
        "PREFECT_API_URL": prefect_server,
        "KEFU_PREFECT_API_URL": prefect_server,
        "KEFU_WORKER_POLL_SECONDS": "0.2",
        "KEFU_SERVE_ONLY": '["complaint-case"]',  # no per-minute schedules piling up runs on the shared server
        "PYTHONPATH": str(ROOT),
    }
    dispatcher_argv = [sys.executable, "-m", "kefu.intake.dispatcher"]
    app = create_app(intake_settings(), sqlite_engine, clock=FixedClock(unique_receipt_time()))
    case_nos: list[str] = []

    async def burst(http: httpx.AsyncClient, phase: int) -> None:
        gate = asyncio.Semaphore(4)

        async def one(i: int) -> None:
            async with gate:
                body = complaint_json(phone=f"1370{phase:03d}{i:04d}", content=f"第{phase}批第{i}件：包裹延误。")
                response = await http.post("/api/v1/complaints", json=body, headers=AUTH)
                assert response.status_code == 201, response.text
                case_nos.append(response.json()["case_no"])

        await asyncio.gather(*(one(i) for i in range(PER_PHASE)))

    logs = tmp_path / "dispatcher.log", tmp_path / "worker.log"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake.test") as http:
        with (
            running(WORKER_ARGV, env, logs[1], cwd=ROOT) as worker,
            running(dispatcher_argv, env, logs[0], cwd=ROOT) as dispatcher,
        ):
            await burst(http, 1)
            await wait_for("the dispatcher starting runs", lambda: dispatched(sqlite_engine)[0] >= 5, 60, logs[0])
            kill_9(dispatcher)  # mid-dispatch: requests may be in flight, rows may be unrecorded
            await burst(http, 2)
            kill_9(worker)
            await burst(http, 3)
        with running(WORKER_ARGV, env, logs[1], cwd=ROOT), running(dispatcher_argv, env, logs[0], cwd=ROOT):
            await wait_for(
                "dispatching again after the restart",
                lambda: dispatched(sqlite_engine)[0] > 2 * PER_PHASE,
                120,
                logs[0],
            )
            prefect_server_process.kill_9()
            await burst(http, 4)  # the front door never depends on Prefect: complaints are taken while it is down
            prefect_server_process.start()
            await wait_for(
                "every complaint dispatched after the Prefect server came back",
                lambda: dispatched(sqlite_engine) == (4 * PER_PHASE, 4 * PER_PHASE),
                120,
                logs[0],
            )
    assert len(set(case_nos)) == 4 * PER_PHASE
    found = case_runs(prefect_server, case_deployment, case_nos)
    assert {c: len(runs) for c, runs in found.items() if len(runs) != 1} == {}
    with Session(sqlite_engine) as session:
        recorded = dict(session.execute(select(IntakeOutbox.case_no, IntakeOutbox.flow_run_id)).tuples().all())
    assert all(recorded[c] == found[c][0]["id"] for c in case_nos)
    async with PrefectRuns(prefect_server) as runs:
        report = await reconcile(sqlite_engine, runs)
    assert report.confirmed == 4 * PER_PHASE and not report.duplicates and not report.runs_created


async def test_kill_9_of_the_intake_app_mid_burst_loses_no_answered_complaint_and_retries_make_no_duplicate(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    """Gateways retry with the same Idempotency-Key until they get an answer, as the API asks them to. The
    app is killed while requests wait in its group-commit queue: what was answered is stored, what was not
    answered is stored once by the retry, and nobody was told "received" for a complaint that is not there."""
    port = free_port()
    env = {
        **os.environ,
        "KEFU_DATABASE_URL": sqlite_engine.url.render_as_string(hide_password=False),
        "KEFU_INTAKE_API_TOKENS": f'["{AUTH["Authorization"].removeprefix("Bearer ")}"]',
        "KEFU_MAIL_SINK_ENABLED": "false",
        "PYTHONPATH": str(ROOT),
    }
    argv = [sys.executable, "-m", "uvicorn", "kefu.intake.app:create_app", "--factory", "--port", str(port)]
    base, log, total = f"http://127.0.0.1:{port}", tmp_path / "intake.log", 300
    answers: dict[int, tuple[int, str]] = {}
    half_answered = asyncio.Event()

    async def gateway(http: httpx.AsyncClient, i: int) -> None:
        body = complaint_json(phone=f"1360000{i:04d}", content=f"第{i}件：包裹延误，客服一直没有回复。")
        headers = {**AUTH, "Idempotency-Key": f"gateway-{i}"}
        deadline = time.monotonic() + 120
        while True:
            try:
                response = await http.post(f"{base}/api/v1/complaints", json=body, headers=headers)
            except httpx.TransportError:  # the app is down or died mid-request: send the same request again
                assert time.monotonic() < deadline, f"complaint {i} never answered; see {log}"
                await asyncio.sleep(0.05)
                continue
            assert response.status_code in (200, 201), response.text
            answers[i] = (response.status_code, response.json()["case_no"])
            if len(answers) >= total // 2:
                half_answered.set()
            return

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=32)) as http:
        with running(argv, env, log, cwd=ROOT) as app:
            await wait_for("the intake app answering", lambda: _healthy(base), 60, log)
            burst = asyncio.gather(*(gateway(http, i) for i in range(total)))
            await half_answered.wait()
            kill_9(app)  # requests are in flight and queued for the writer
            answered_before_the_crash = dict(answers)
            with running(argv, env, log, cwd=ROOT):
                await burst
    assert len(answered_before_the_crash) < total
    with Session(sqlite_engine) as session:
        stored = dict(
            session.execute(select(IntakeIdempotencyKey.key, Complaint.case_no).join(Complaint)).tuples().all()
        )
        complaints = session.scalar(select(func.count()).select_from(Complaint))
    assert complaints == total  # none lost, none twice
    assert {f"api:gateway-{i}": case_no for i, (_status, case_no) in answers.items()} == stored


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
