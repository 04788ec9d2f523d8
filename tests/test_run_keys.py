"""The runs Kefu starts for records its database numbers (a complaint's case, an onboarding per nomination, a service
plan, an assessment sheet, a quality review, a routine callback) are keyed so that a new database's record never gets
an old record's run: the session's Prefect server keeps its runs while Kefu's database is recreated (ids and case
numbers start again), as a Prefect server does across ``kefu restore``. The same record started again still gets its
one run; a record restored as it was (the same moment it was made) finds its run again, as the deadline duty's mend
and ``kefu recover`` need."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from kefu.engine.contract import case_run_name, legacy_case_idempotency_key
from kefu.engine.rest import PrefectRuns
from kefu.flows.key_account_onboarding import start_onboarding
from kefu.flows.quality_check import start_review_run
from kefu.flows.routine_callbacks import start_callback_run
from kefu.flows.service_plan import start_plan_run
from kefu.flows.staff_assessment import SELF, open_sheet_runs
from kefu.intake.dispatcher import dispatch_once, reconcile
from kefu.intake.service import register_complaint
from kefu.intake.validation import Submission
from kefu.models import Base
from kefu.models.accounts import KeyAccountNomination, NominationSource
from kefu.models.assessment import AssessmentMonth, AssessmentSheet
from kefu.models.contacts import QualityReview, RoutineCallback
from kefu.models.db import unit_of_work
from kefu.models.enums import Channel, Role
from kefu.models.intake import IntakeOutbox
from kefu.models.people import Customer, Staff
from kefu.models.policy import Policy
from kefu.models.service_plans import ServicePlan
from kefu.tasks import assessment
from tests.support.clock import unique_receipt_time
from tests.support.prefect import prefect_post

CODE = "KEYS01"
MONTH = "2026-10"
DUE_ON = "2026-11-23"
SERVED = (
    "key-account-onboarding",
    "key-account-service-plan",
    "assessment-sheet",
    "quality-review",
    "routine-callback",
)


@dataclass
class Records:
    nomination: int
    plan: int
    sheet: int
    review: int
    callback: int
    made: dict[str, dt.datetime]


@pytest.fixture
def runs(kefu_database_url: str, prefect_server: str) -> Iterator[list[UUID]]:
    """The deployments the starts use (as a worker registers them; none executes here) and the runs the test
    started, cancelled at the end: no later test's worker may take one."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled

    from kefu.deployments import all_deployments
    from kefu.engine.worker import register_deployments

    register_deployments([d for d in all_deployments() if d.name in SERVED])
    started: list[UUID] = []
    yield started
    with get_client(sync_client=True) as client:
        for run_id in set(started):
            client.set_flow_run_state(run_id, Cancelled(message="test over"), force=True)


def make_records(made: dict[str, dt.datetime] | None = None) -> Records:
    """A customer, an agent, and one record of each kind; ``made``: the moments they were made (a restored copy)."""
    moments = made or {}
    with unit_of_work() as session:
        customer = Customer(name="某某制造有限公司", code=CODE)
        agent = Staff(name="员工王", login="wang", email="wang@example.com")
        agent.grant(Role.AGENT)
        session.add_all([customer, agent, AssessmentMonth(month=MONTH)])
        session.flush()
        due = dt.datetime(2026, 11, 30, 2, 0, tzinfo=dt.UTC)
        rows: dict[str, Any] = {
            "nomination": KeyAccountNomination(customer_id=customer.id, source=NominationSource.MARKET),
            "plan": ServicePlan(customer_id=customer.id, status="open"),
            "sheet": AssessmentSheet(month=MONTH, staff_id=agent.id, self_due_at=due, supervisor_due_at=due),
            "review": QualityReview(year=2026, month=10, agent_id=agent.id, due_at=due),
            "callback": RoutineCallback(
                customer_id=customer.id, due_on=dt.date.fromisoformat(DUE_ON), channel="phone", owned_by="rota"
            ),
        }
        for kind, row in rows.items():
            if kind in moments:
                setattr(row, "at" if kind in ("nomination", "plan") else "created_at", moments[kind])
        session.add_all(rows.values())
        session.flush()
        made_at = {k: r.at if k in ("nomination", "plan") else r.created_at for k, r in rows.items()}
        return Records(**{k: r.id for k, r in rows.items()}, made=made_at)


def start_all(records: Records, started: list[UUID]) -> dict[str, UUID]:
    """Each record's run, opened the way Kefu opens it (the id each start wrote on the record, where it writes one)."""
    opened = {
        "nomination": start_onboarding(records.nomination, CODE),
        "plan": start_plan_run(records.plan, CODE),
    }
    open_sheet_runs(MONTH, [(records.sheet, SELF, 0)])
    start_review_run(records.review, 2026, 10)
    start_callback_run(records.callback, CODE, DUE_ON)
    with unit_of_work() as session:
        self_run = assessment.get_sheet(session, records.sheet).self_run_id
        review_run = session.get_one(QualityReview, records.review).flow_run_id
        callback_run = session.get_one(RoutineCallback, records.callback).flow_run_id
    assert self_run and review_run and callback_run
    opened |= {"sheet": UUID(self_run), "review": UUID(review_run), "callback": UUID(callback_run)}
    started.extend(opened.values())
    return opened


def new_database(engine: Engine) -> None:
    """Kefu's database made anew (recreated, or restored from a backup taken before these records): every table
    empty, ids from 1 again. The Prefect server keeps its runs."""
    tables = list(reversed(Base.metadata.sorted_tables))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(table.delete())


def test_a_new_databases_record_with_an_old_id_gets_its_own_run(engine: Engine, runs: list[UUID]) -> None:
    old = make_records()
    old_runs = start_all(old, runs)

    new_database(engine)
    new = make_records()
    assert (new.nomination, new.plan, new.sheet, new.review, new.callback) == (
        old.nomination, old.plan, old.sheet, old.review, old.callback,
    )  # fmt: skip
    new_runs = start_all(new, runs)
    assert [kind for kind, run_id in new_runs.items() if run_id == old_runs[kind]] == []  # none got the old run

    # a retry, a replay, the deadline duty's mend: the same record keeps its one run
    assert start_all(new, runs) == new_runs


def test_a_record_restored_as_it_was_finds_its_run_again(engine: Engine, runs: list[UUID]) -> None:
    old = make_records()
    old_runs = start_all(old, runs)

    new_database(engine)
    restored = make_records(made=old.made)  # the backup's rows: the same ids, the same moments
    assert start_all(restored, runs) == old_runs


def register(engine: Engine, policy: Policy, received_at: dt.datetime) -> str:
    with unit_of_work(engine) as session:
        submission = Submission(name="客户甲", phone="13900001234", content="快递延误了三天，没有人通知我。")
        return register_complaint(
            session, submission, received_at=received_at, channel=Channel.HOTLINE, policy=policy
        ).case_no


def recorded_runs(engine: Engine) -> dict[str, str | None]:
    with Session(engine) as session:
        return dict(session.execute(select(IntakeOutbox.case_no, IntakeOutbox.flow_run_id)).tuples().all())


async def test_a_new_databases_complaint_with_an_old_case_number_gets_its_own_case_run(
    engine: Engine, policy: Policy, prefect_server: str, case_deployment: str
) -> None:
    received_at = unique_receipt_time()
    case_no = register(engine, policy, received_at)
    async with PrefectRuns(prefect_server) as runs:
        assert await dispatch_once(engine, runs) == 1
        old_run = recorded_runs(engine)[case_no]

        new_database(engine)
        assert register(engine, policy, received_at) == case_no  # the day's counter starts again
        assert await dispatch_once(engine, runs) == 1
        new_run = recorded_runs(engine)[case_no]
        report = await reconcile(engine, runs)
    assert new_run not in (None, old_run)
    assert report.confirmed == 1
    assert not (report.runs_created or report.runs_adopted or report.runs_missing or report.duplicates)


async def test_a_case_run_keyed_by_the_number_alone_is_kept_when_recorded_and_never_adopted(
    engine: Engine, policy: Policy, prefect_server: str, case_deployment: str
) -> None:
    """Runs created before the moment was in the key: the one Kefu recorded for its case stays that case's run (no
    second run after an upgrade); one it did not record may be an old database's case, and is not adopted."""
    received_at = unique_receipt_time()
    kept, other = register(engine, policy, received_at), register(engine, policy, received_at)
    legacy = {
        case_no: prefect_post(
            f"{prefect_server}/deployments/{case_deployment}/create_flow_run",
            {
                "name": case_run_name(case_no),
                "parameters": {"case_no": case_no},
                "idempotency_key": legacy_case_idempotency_key(case_no),
            },
        ).json()["id"]
        for case_no in (kept, other)
    }
    with unit_of_work(engine) as session:
        session.execute(
            update(IntakeOutbox)
            .where(IntakeOutbox.case_no == kept)
            .values(flow_run_id=legacy[kept], dispatched_at=received_at)
        )
    async with PrefectRuns(prefect_server) as runs:
        report = await reconcile(engine, runs)
        again = await reconcile(engine, runs)
    assert report.runs_created == [other] and not (report.runs_adopted or report.runs_missing or report.duplicates)
    assert report.confirmed == 2 and again.confirmed == 2 and not again.runs_created
    recorded = recorded_runs(engine)
    assert recorded[kept] == legacy[kept]
    assert recorded[other] not in (None, legacy[other])
