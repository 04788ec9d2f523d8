"""Every complaint gets exactly one case flow run on the real Prefect server, carrying only its case
number — also when a dispatcher died half-way, when Prefect was down, or when Prefect lost a run."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from kefu.engine.contract import COMPLAINT_CASE_FLOW, CaseRef, complaint_case_idempotency_key
from kefu.engine.rest import PrefectRuns, PrefectUnavailable
from kefu.intake.dispatcher import dispatch_once, reconcile
from kefu.intake.service import register_complaint
from kefu.intake.validation import Submission
from kefu.models import Channel, Complaint
from kefu.models.db import unit_of_work
from kefu.models.intake import IntakeOutbox
from kefu.models.policy import Policy
from tests.support.clock import FixedClock, unique_receipt_time
from tests.support.prefect import case_runs, prefect_post
from tests.support.processes import free_port

pytestmark = pytest.mark.prefect


def register_many(engine: Engine, policy: Policy, count: int) -> list[str]:
    received_at = unique_receipt_time()
    with unit_of_work(engine) as session:
        return [
            register_complaint(
                session,
                Submission(name=f"客户{i}", phone=f"1390000{i:04d}", content="快递延误了三天，没有人通知我。"),
                received_at=received_at,
                channel=Channel.HOTLINE,
                policy=policy,
            ).case_no
            for i in range(count)
        ]


def case_ref(engine: Engine, case_no: str) -> CaseRef:
    with Session(engine) as session:
        made = session.scalars(select(Complaint.created_at).where(Complaint.case_no == case_no)).one()
    return CaseRef(case_no, made)


def recorded_runs(engine: Engine) -> dict[str, str | None]:
    with Session(engine) as session:
        return dict(session.execute(select(IntakeOutbox.case_no, IntakeOutbox.flow_run_id)).tuples().all())


async def test_each_complaint_gets_one_case_flow_run_carrying_only_its_case_number(
    sqlite_engine: Engine, policy: Policy, prefect_server: str, case_deployment: str
) -> None:
    case_nos = register_many(sqlite_engine, policy, 6)
    async with PrefectRuns(prefect_server) as runs:
        assert await dispatch_once(sqlite_engine, runs) == 6
        assert await dispatch_once(sqlite_engine, runs) == 0  # nothing left to start
    found = case_runs(prefect_server, case_deployment, case_nos)
    recorded = recorded_runs(sqlite_engine)
    for case_no in case_nos:
        [run] = found[case_no]
        assert run["parameters"] == {"case_no": case_no}  # no names or phones in Prefect
        assert run["name"] == f"case {case_no}"  # the name the case flow gives its runs
        assert run["idempotency_key"] == complaint_case_idempotency_key(case_ref(sqlite_engine, case_no))
        assert recorded[case_no] == run["id"]


async def test_a_dispatcher_that_died_after_prefect_created_the_run_does_not_create_a_second(
    sqlite_engine: Engine, policy: Policy, prefect_server: str, case_deployment: str
) -> None:
    [case_no] = register_many(sqlite_engine, policy, 1)
    async with PrefectRuns(prefect_server) as runs:
        # the dispatcher created the run, and the process died before recording it
        first = await runs.create_case_run(case_ref(sqlite_engine, case_no))
        assert recorded_runs(sqlite_engine)[case_no] is None
        assert await dispatch_once(sqlite_engine, runs) == 1
    assert recorded_runs(sqlite_engine)[case_no] == first
    assert [r["id"] for r in case_runs(prefect_server, case_deployment, [case_no])[case_no]] == [first]


async def test_the_reconciler_adopts_unrecorded_runs_and_recreates_runs_prefect_lost(
    sqlite_engine: Engine, policy: Policy, prefect_server: str, case_deployment: str
) -> None:
    adopted, lost, fresh = register_many(sqlite_engine, policy, 3)
    ghost = str(uuid.uuid4())
    async with PrefectRuns(prefect_server) as runs:
        existing = await runs.create_case_run(case_ref(sqlite_engine, adopted))
        with unit_of_work(sqlite_engine) as session:
            session.execute(update(IntakeOutbox).where(IntakeOutbox.case_no == lost).values(flow_run_id=ghost))
        report = await reconcile(sqlite_engine, runs)
        again = await reconcile(sqlite_engine, runs)
    assert report.runs_adopted == [adopted]
    assert report.runs_missing == [lost]
    assert sorted(report.runs_created) == sorted([lost, fresh])
    assert report.confirmed == 3 and not report.duplicates
    assert again.confirmed == 3 and not (again.runs_created or again.runs_adopted or again.runs_missing)
    found = case_runs(prefect_server, case_deployment, [adopted, lost, fresh])
    assert all(len(v) == 1 for v in found.values())
    recorded = recorded_runs(sqlite_engine)
    assert recorded[adopted] == existing and recorded[lost] != ghost


async def test_the_reconciler_restores_a_missing_outbox_row(
    sqlite_engine: Engine, policy: Policy, prefect_server: str, case_deployment: str
) -> None:
    [case_no] = register_many(sqlite_engine, policy, 1)
    with unit_of_work(sqlite_engine) as session:
        session.query(IntakeOutbox).delete()
    async with PrefectRuns(prefect_server) as runs:
        report = await reconcile(sqlite_engine, runs)
    assert report.outbox_rows_added == [case_no]
    assert len(case_runs(prefect_server, case_deployment, [case_no])[case_no]) == 1


async def test_while_prefect_is_down_complaints_wait_in_the_outbox_and_start_when_it_is_back(
    sqlite_engine: Engine, policy: Policy, prefect_server: str, case_deployment: str
) -> None:
    case_nos = register_many(sqlite_engine, policy, 2)
    down = f"http://127.0.0.1:{free_port()}/api"
    async with PrefectRuns(down, attempts=2, base_delay=0.01) as runs:
        assert await dispatch_once(sqlite_engine, runs) == 0
        with pytest.raises(PrefectUnavailable):
            await runs.create_case_run(case_ref(sqlite_engine, case_nos[0]))
    with Session(sqlite_engine) as session:
        rows = session.scalars(select(IntakeOutbox)).all()
        assert all(r.attempts == 1 and r.last_error and r.next_attempt_at for r in rows)
        assert session.query(Complaint).count() == 2  # nothing lost
    async with PrefectRuns(prefect_server) as runs:
        report = await reconcile(sqlite_engine, runs)  # the reconciler does not wait for the backoff
    assert sorted(report.runs_created) == sorted(case_nos)
    assert all(len(v) == 1 for v in case_runs(prefect_server, case_deployment, case_nos).values())


async def test_a_case_prefect_refuses_is_retried_within_seconds_an_unreachable_prefect_within_half_a_minute(
    sqlite_engine: Engine, policy: Policy, prefect_server: str, case_deployment: str
) -> None:
    # A deployment whose parameter schema refuses every case: Prefect answers, but creates no run (as the SQLite
    # server does with "database is locked" under load).
    flow_id = httpx.get(f"{prefect_server}/deployments/{case_deployment}", timeout=30).json()["flow_id"]
    prefect_post(
        f"{prefect_server}/deployments/",
        {
            "name": "refusing",
            "flow_id": flow_id,
            "enforce_parameter_schema": True,
            "parameter_openapi_schema": {"type": "object", "properties": {"case_no": {"type": "integer"}}},
        },
    )
    register_many(sqlite_engine, policy, 2)
    clock = FixedClock(unique_receipt_time())

    async def retry_delays(runs: PrefectRuns, passes: int) -> list[float]:
        delays = []
        for _ in range(passes):
            assert await dispatch_once(sqlite_engine, runs, clock=clock) == 0
            with Session(sqlite_engine) as session:
                [due] = set(session.scalars(select(IntakeOutbox.next_attempt_at)))
            assert due is not None
            delays.append((due - clock.now).total_seconds())
            clock.now = due
        return delays

    async with PrefectRuns(f"http://127.0.0.1:{free_port()}/api", attempts=1) as runs:
        assert await retry_delays(runs, 5) == [2, 4, 8, 16, 30]  # Prefect unreachable
    async with PrefectRuns(prefect_server, deployment=f"{COMPLAINT_CASE_FLOW}/refusing") as runs:
        assert await retry_delays(runs, 2) == [5, 5]  # Prefect answers but refuses: soon again
    with Session(sqlite_engine) as session:
        assert all("Parameter validation failed" in (e or "") for e in session.scalars(select(IntakeOutbox.last_error)))
