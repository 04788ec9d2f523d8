"""``kefu recover``: Kefu's database is the system of record. A case whose Prefect run is lost (deleted, or a
fresh Prefect database) gets its run back, waiting at the step it waited at; completing it closes the case."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from kefu.cli.step import submit
from kefu.engine.contract import COMPLAINT_CASE_DEPLOYMENT, CaseRef
from kefu.engine.rest import PrefectRuns
from kefu.intake.dispatcher import reconcile
from kefu.models.complaints import CaseEvent, Complaint
from kefu.models.db import default_engine, unit_of_work
from kefu.models.enums import ComplaintStatus, Severity
from kefu.tasks.casework import waiting_steps
from tests.casework.test_case_lifecycle import GENERAL_CASE_AFTER_CLASSIFY, new_case
from tests.support.postgres import POSTGRES_URL, recreate_postgres_database, scratch_postgres_database
from tests.support.prefect import PrefectServer, WorkerProcess, prefect_post, wait_suspended_at

pytestmark = pytest.mark.usefixtures("case_worker")
KEFU = Path(sys.executable).parent / "kefu"


def wait_step(case_no: str, step: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with unit_of_work() as session:
            rows = [r for r in waiting_steps(session, case_no) if r["step"] == step]
        if rows:
            return rows[-1]
        time.sleep(0.3)  # the worker is another process: polling the DB is the only signal
    raise AssertionError(f"{case_no} never waited on {step}")


def do(case_no: str, step: str, **data: Any) -> None:
    wait_step(case_no, step)
    submit(case_no, step, data)


def case_ref(case_no: str) -> CaseRef:
    with unit_of_work() as session:
        return CaseRef(case_no, session.scalars(select(Complaint.created_at).where(Complaint.case_no == case_no)).one())


def case_runs(case_no: str) -> list[str]:
    async def go() -> list[str]:
        async with PrefectRuns(os.environ["PREFECT_API_URL"]) as runs:
            return (await runs.runs_for_cases([case_ref(case_no)]))[case_no]

    return asyncio.run(go())


def events(case_no: str) -> list[tuple[str, str]]:
    with unit_of_work() as session:
        complaint = session.scalars(select(Complaint).where(Complaint.case_no == case_no)).one()
        rows = session.scalars(select(CaseEvent).where(CaseEvent.complaint_id == complaint.id).order_by(CaseEvent.id))
        return [(e.action, str(e.data.get("key"))) for e in rows]


def kefu_recover(case_no: str | None, api: str, db_url: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "KEFU_DATABASE_URL": db_url,
        "KEFU_PREFECT_API_URL": api,
        "KEFU_VAR_DIR": str(home / "var"),
    }
    argv = [str(KEFU), "recover", *(["--case", case_no] if case_no else [])]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)


async def reconcile_now(prefect_server: str) -> None:
    """What ``kefu up``'s dispatcher does periodically: create the case runs Prefect is missing."""
    async with PrefectRuns(prefect_server) as runs:
        await reconcile(default_engine(), runs)


def test_a_case_whose_prefect_run_was_lost_gets_it_back_waiting_at_the_same_step_and_then_closes(
    prefect_server: str, case_db_url: str, tmp_path: Path
) -> None:
    case_no = "KF-RECOVER-0001"
    staff = new_case(case_no, "快递晚到两天")

    async def dispatch() -> None:  # as the intake does it: one run per case under the idempotency key
        async with PrefectRuns(prefect_server) as runs:
            await reconcile(default_engine(), runs)

    asyncio.run(reconcile_now(prefect_server))
    [lost_run] = case_runs(case_no)
    wait_step(case_no, "classify")
    wait_suspended_at(prefect_server, lost_run, "classify-0")
    # From the UI (kefu step would refuse it first): an override without a reason, refused and asked again.
    override = {"run_input": {"actor_staff_id": staff, "severity": "重要投诉", "reason": ""}}
    prefect_post(f"{prefect_server}/flow_runs/{lost_run}/resume", override)
    wait_suspended_at(prefect_server, lost_run, "classify-1")
    do(case_no, "classify", actor_staff_id=staff)
    do(case_no, "first_contact", actor_staff_id=staff, summary="致歉并承诺")
    do(case_no, "investigate", actor_staff_id=staff, departments=["运营部"], findings="中转延误", done=False)
    do(case_no, "investigate", actor_staff_id=staff, departments=["技术部"], findings="排班错误")
    assert wait_step(case_no, "propose")["flow_run_id"] == lost_run
    wait_suspended_at(prefect_server, lost_run, "propose-0")
    before = events(case_no)
    assert ("step_refused", "classify-0") in before

    # The Prefect side of the case is lost: its run and every answer saved with it.
    assert httpx.delete(f"{prefect_server}/flow_runs/{lost_run}", timeout=10).status_code == 204
    assert case_runs(case_no) == []

    recovered = kefu_recover(case_no, prefect_server, case_db_url, tmp_path)
    assert recovered.returncode == 0, recovered.stderr
    assert "created with 5 recorded answers" in recovered.stdout and "waits at propose (propose-0)" in recovered.stdout
    [run] = case_runs(case_no)
    assert run != lost_run
    wait_suspended_at(prefect_server, run, "propose-0")
    assert wait_step(case_no, "propose")["flow_run_id"] == run  # `kefu step` resumes the new run
    after = events(case_no)
    assert after[: len(before)] == before and [a for a, _ in after[len(before) :]] == [
        "recovered"
    ]  # nothing replayed twice

    again = kefu_recover(case_no, prefect_server, case_db_url, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout
    assert case_runs(case_no) == [run] and events(case_no) == after

    do(case_no, "propose", actor_staff_id=staff, solution="退运费")
    do(case_no, "approve", actor_staff_id=staff, accepted=True)
    do(case_no, "resolve", actor_staff_id=staff, summary="已退")
    do(case_no, "callback", actor_staff_id=staff, satisfaction=5)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = httpx.get(f"{prefect_server}/flow_runs/{run}", timeout=10).json()["state"]
        if state and state["type"] == "COMPLETED":
            break
        time.sleep(0.3)
    else:
        raise AssertionError(f"the recovered run never completed: {state}")
    with unit_of_work() as session:
        complaint = session.scalars(select(Complaint).where(Complaint.case_no == case_no)).one()
        assert complaint.status is ComplaintStatus.CLOSED
        assert complaint.severity is Severity.GENERAL  # the refused override stayed refused on the replay
    final = events(case_no)
    assert len(final) == len(set(final)), "a replayed step was recorded twice"


def test_a_run_the_reconciler_recreated_without_answers_is_given_them_and_replays_to_the_step(
    prefect_server: str, case_db_url: str, tmp_path: Path
) -> None:
    """After a loss, ``kefu up``'s dispatcher recreates the missing run (its periodic reconcile) before anyone runs
    ``kefu recover``: that run starts from the top and waits at the first step again. Recover gives it the
    recorded answers and puts it back to run: it replays to the step the case was at."""
    case_no = "KF-RECOVER-0002"
    staff = new_case(case_no, "快递晚到两天")

    asyncio.run(reconcile_now(prefect_server))
    [lost_run] = case_runs(case_no)
    do(case_no, "classify", actor_staff_id=staff)
    do(case_no, "first_contact", actor_staff_id=staff, summary="致歉并承诺")
    wait_step(case_no, "investigate")
    wait_suspended_at(prefect_server, lost_run, "investigate-0")
    assert httpx.delete(f"{prefect_server}/flow_runs/{lost_run}", timeout=10).status_code == 204

    # the dispatcher's reconcile: the recorded run is missing, a new one is created
    asyncio.run(reconcile_now(prefect_server))
    [rerun] = case_runs(case_no)
    wait_suspended_at(prefect_server, rerun, "classify-0")  # from the top, without answers

    recovered = kefu_recover(case_no, prefect_server, case_db_url, tmp_path)
    assert recovered.returncode == 0, recovered.stderr
    assert "given 2 missing answers" in recovered.stdout and "waits at investigate (investigate-0)" in recovered.stdout
    assert case_runs(case_no) == [rerun]
    wait_suspended_at(prefect_server, rerun, "investigate-0")
    do(case_no, "investigate", actor_staff_id=staff, departments=["运营部"], findings="中转延误")
    wait_suspended_at(prefect_server, rerun, "propose-0")
    final = events(case_no)
    assert len(final) == len(set(final)), "a replayed step was recorded twice"


def test_a_recover_interrupted_after_giving_the_answers_is_finished_by_the_next_one(
    prefect_server: str, case_db_url: str, tmp_path: Path
) -> None:
    """Recover creates the run held (Paused), gives it the answers, then lets it run. Stopped between the last two,
    the run is held with every answer: the next recover must still let it run."""
    import json

    from kefu.engine.waiting import answer_key
    from kefu.intake.recovery import HELD_MESSAGE, recorded_answers

    case_no = "KF-RECOVER-0003"
    staff = new_case(case_no, "快递晚到两天")

    asyncio.run(reconcile_now(prefect_server))
    [lost_run] = case_runs(case_no)
    do(case_no, "classify", actor_staff_id=staff)
    wait_suspended_at(prefect_server, lost_run, "first-contact-0")
    assert httpx.delete(f"{prefect_server}/flow_runs/{lost_run}", timeout=10).status_code == 204

    with unit_of_work() as session:
        complaint = session.scalars(select(Complaint).where(Complaint.case_no == case_no)).one()
        answers = recorded_answers(session, complaint.id)
    assert list(answers) == ["classify-0"]

    async def interrupted_recover() -> str:
        async with PrefectRuns(prefect_server) as runs:
            run_id = await runs.create_held_case_run(case_ref(case_no), HELD_MESSAGE)
            for key, answer in answers.items():
                await runs.add_run_input(run_id, answer_key(key), json.dumps(answer))
            return run_id

    held = asyncio.run(interrupted_recover())
    recovered = kefu_recover(case_no, prefect_server, case_db_url, tmp_path)
    assert recovered.returncode == 0, recovered.stderr
    assert "nothing to do" not in recovered.stdout
    wait_suspended_at(prefect_server, held, "first-contact-0")
    assert wait_step(case_no, "first_contact")["flow_run_id"] == held


def wait_closed(case_no: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with unit_of_work() as session:
            complaint = session.scalars(select(Complaint).where(Complaint.case_no == case_no)).one()
            if complaint.status is ComplaintStatus.CLOSED:
                return
        time.sleep(0.3)  # the worker is another process: polling the DB is the only signal
    raise AssertionError(f"{case_no} never closed")


@pytest.fixture
def own_prefect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[PrefectServer, Callable[[], None]]]:
    """A Prefect server of this test's own (its database is wiped: the session's server must not be) and a way
    to lose its whole database: stop it, drop its database (or delete its SQLite file), start it empty."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from kefu.settings import get_settings

    with contextlib.ExitStack() as stack:
        url, database = None, None
        if POSTGRES_URL:
            database = stack.enter_context(scratch_postgres_database("kefu_prefect_lost"))
            url = database.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
        (tmp_path / "prefect-home").mkdir()
        server = PrefectServer(tmp_path / "prefect-home", url)
        stack.callback(server.stop)
        server.start()

        def lose_the_database() -> None:
            server.stop()
            if database is None:
                for file in server.home.glob("prefect.db*"):
                    file.unlink()
            else:
                recreate_postgres_database(database)
            server.start()

        monkeypatch.setenv("PREFECT_API_URL", server.api_url)
        monkeypatch.setenv("KEFU_PREFECT_API_URL", server.api_url)
        get_settings.cache_clear()
        stack.callback(get_settings.cache_clear)
        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: server.api_url}))
        yield server, lose_the_database


def test_after_the_whole_prefect_database_is_lost_recover_brings_every_open_case_back_and_they_close(
    own_prefect: tuple[PrefectServer, Callable[[], None]], case_db_url: str, tmp_path: Path
) -> None:
    """Disaster recovery as the README tells it: the Prefect database is gone (a new, empty one: no work pool, no
    deployments, no runs, no saved answers), the worker keeps running; one ``kefu recover`` registers Kefu's
    deployments again and gives every open case its run back at its step; the cases then close normally."""
    server, lose_the_database = own_prefect
    worker = WorkerProcess(case_db_url, tmp_path / "worker.log")
    worker.start()
    try:
        early, later = "KF-RECOVER-0004", "KF-RECOVER-0005"
        staff = new_case(early, "快递晚到两天")
        new_case(later, "包装破损")
        asyncio.run(reconcile_now(server.api_url))
        do(early, "classify", actor_staff_id=staff)
        do(early, "first_contact", actor_staff_id=staff, summary="致歉并承诺")
        [early_run] = case_runs(early)
        wait_suspended_at(server.api_url, early_run, "investigate-0")
        wait_step(later, "classify")
        before = {case_no: events(case_no) for case_no in (early, later)}

        lose_the_database()
        gone = httpx.get(f"{server.api_url}/deployments/name/{COMPLAINT_CASE_DEPLOYMENT}", timeout=10)
        assert gone.status_code == 404

        recovered = kefu_recover(None, server.api_url, case_db_url, tmp_path)  # every open case
        assert recovered.returncode == 0, recovered.stderr
        assert "registered again" in recovered.stdout
        assert "waits at investigate (investigate-0)" in recovered.stdout
        assert "waits at classify (classify-0)" in recovered.stdout
        [early_run] = case_runs(early)
        wait_suspended_at(server.api_url, early_run, "investigate-0")  # the running worker took the new run

        do(later, "classify", actor_staff_id=staff)
        remaining = {early: GENERAL_CASE_AFTER_CLASSIFY[1:], later: GENERAL_CASE_AFTER_CLASSIFY}
        for case_no, steps in remaining.items():
            for step, data in steps:
                do(case_no, step, actor_staff_id=staff, **data)
        for case_no in (early, later):
            wait_closed(case_no)
            after = events(case_no)
            assert after[: len(before[case_no])] == before[case_no]  # nothing recorded before was recorded again
            assert len(after) == len(set(after)), "a replayed step was recorded twice"
    finally:
        worker.stop()
