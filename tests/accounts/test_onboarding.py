"""Key-account onboarding through real suspend/resume: a Kefu worker serving the onboarding and review deployments,
the session's Prefect server, a real database. Research → four parallel department reviews (one run each) → the
senior manager's decision → a key account with its team told, or a nomination closed with the reason."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import delete, func, select

from kefu.cli import UsageError
from kefu.cli.step import submit
from kefu.desk.proxy import Refusal
from kefu.desk.steps import answer_as, my_waiting_steps
from kefu.engine.contract import ONBOARDING_TAG
from kefu.flows.case_deadlines import onboarding_deadlines
from kefu.flows.key_account_onboarding import SENIOR_APPROVAL, render_summary
from kefu.models.accounts import KeyAccountNomination, OnboardingEvent, OnboardingReview
from kefu.models.db import default_engine, unit_of_work
from kefu.models.enums import CustomerTier, Role
from kefu.models.notifications import OutboxMessage
from kefu.models.people import Customer, Staff
from kefu.models.policy import current_policy
from kefu.settings import get_settings
from kefu.tasks.accounts import team_members
from kefu.tasks.onboarding import nomination_for_code, waiting_steps
from kefu.worktime import calendar_for
from tests.support.databases import migrated_sqlite, use_database
from tests.support.prefect import WorkerProcess

KEFU = str(Path(sys.executable).parent / "kefu")
DEPARTMENTS = ("market", "operations", "finance", "technology")
SERVED = '["complaint-case", "key-account-onboarding", "onboarding-review"]'
_codes = itertools.count(1)


class OnboardingWorker(WorkerProcess):
    """A Kefu worker that also serves the onboarding and review deployments (no schedules)."""

    def __init__(self, db_url: str, log_path: Path) -> None:
        super().__init__(db_url, log_path)
        self.env = {**self.env, "KEFU_SERVE_ONLY": SERVED}


@pytest.fixture(scope="module")
def onboarding_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = migrated_sqlite(tmp_path_factory.mktemp("onboardingdb") / "kefu.db")
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_database(monkeypatch, url)
        yield url
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def worker(
    prefect_server: str, onboarding_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    process = OnboardingWorker(onboarding_db, tmp_path_factory.mktemp("onb-worker") / "worker.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


class People:
    """The staff an onboarding needs: the market researcher, one reviewer per department (each with a supervisor),
    a senior manager and the four people of the team."""

    def __init__(self, tag: str) -> None:
        self.ids: dict[str, int] = {}
        with unit_of_work() as session:
            boss = self._add(session, f"{tag}-supervisor", Role.SUPERVISOR)
            for department in DEPARTMENTS:
                self._add(session, f"{tag}-{department}", Role(department), supervisor=boss)
            self._add(session, f"{tag}-senior", Role.SENIOR_MANAGER)
            for member in ("pm", "cs", "dispatch", "after"):
                self._add(session, f"{tag}-{member}", Role.AGENT)

    def _add(self, session: Any, login: str, role: Role, supervisor: Staff | None = None) -> Staff:
        person = Staff(name=f"员工{login}", login=login, email=f"{login}@example.com", supervisor=supervisor)
        person.grant(role)
        session.add(person)
        session.flush()
        self.ids[login.split("-", 1)[1]] = person.id
        return person

    def __getitem__(self, key: str) -> int:
        return self.ids[key]

    def team(self) -> dict[str, int]:
        return {
            "project_manager_staff_id": self["pm"],
            "service_specialist_staff_id": self["cs"],
            "dispatcher_staff_id": self["dispatch"],
            "after_sales_staff_id": self["after"],
        }


def new_customer() -> str:
    code = f"ONB{os.getpid() % 10000:04d}{next(_codes):03d}"
    with unit_of_work() as session:
        session.add(Customer(name=f"某某制造有限公司{code}", code=code, industry="汽车"))
    return code


def kefu(db_url: str, api_url: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """The console script as a person runs it: only PATH, HOME and Kefu's own settings in its environment."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "KEFU_PREFECT_API_URL": api_url,
        "KEFU_DATABASE_URL": db_url,
    }
    return subprocess.run([KEFU, *argv], env=env, capture_output=True, text=True, timeout=120, check=False)


def nominate(db_url: str, api_url: str, code: str, people: People) -> None:
    done = kefu(db_url, api_url, "account", "nominate", code, "--as", str(people["market"]), "--reason", "业务量大")
    assert done.returncode == 0, done.stderr
    assert "onboarding run" in done.stdout and "opened" in done.stdout


def wait_step(code: str, step: str, timeout: float = 90) -> str:
    """Until the customer's onboarding waits on ``step``; its run id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with unit_of_work() as session:
            rows = [r for r in waiting_steps(session, code) if r["step"] == step]
        if rows:
            return str(rows[-1]["flow_run_id"])
        time.sleep(0.3)  # the worker is another process: polling the DB is the only signal
    raise AssertionError(f"{code} never waited on {step}")


def do(code: str, step: str, **data: Any) -> None:
    wait_step(code, step)
    submit(code, step, data)


def review_all(code: str, people: People, rejected: dict[str, str] | None = None) -> None:
    for department in DEPARTMENTS:
        wait_step(code, f"review_{department}")
    for department in DEPARTMENTS:
        comment = (rejected or {}).get(department)
        do(code, f"review_{department}", actor_staff_id=people[department], approve=comment is None,
           comments=comment or "同意")  # fmt: skip


def wait_final(run_id: str, timeout: float = 90) -> tuple[str, Any]:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            run = client.read_flow_run(UUID(run_id))
            if run.state is not None and run.state.is_final():
                return str(run.state.type.value), run
            time.sleep(0.3)
    raise AssertionError("run never finished")


def nomination(code: str) -> KeyAccountNomination:
    with unit_of_work() as session:
        row = nomination_for_code(session, code)
        assert row is not None
        session.expunge(row)
        return row


def decisions(code: str) -> dict[str, str | None]:
    with unit_of_work() as session:
        row = nomination_for_code(session, code)
        assert row is not None
        reviews = session.scalars(select(OnboardingReview).where(OnboardingReview.nomination_id == row.id)).all()
        return {r.department: r.decision for r in reviews}


def repeated_events(code: str) -> list[tuple[str, str]]:
    with unit_of_work() as session:
        row = nomination_for_code(session, code)
        assert row is not None
        pairs = [
            (e.action, e.key)
            for e in session.scalars(select(OnboardingEvent).where(OnboardingEvent.nomination_id == row.id))
        ]
    return [p for p in pairs if pairs.count(p) > 1]


def mails_to(login: str, message_type: str) -> int:
    with unit_of_work() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.recipient == f"{login}@example.com", OutboxMessage.message_type == message_type)
            )
            or 0
        )


def overdue_mails(code: str) -> dict[str, int]:
    """The review-overdue mails about this customer, per recipient."""
    with unit_of_work() as session:
        rows = session.scalars(
            select(OutboxMessage).where(OutboxMessage.message_type == "onboarding_review_overdue")
        ).all()
        found: dict[str, int] = {}
        for row in rows:
            if code in row.subject:
                found[row.recipient] = found.get(row.recipient, 0) + 1
        return found


def is_senior_manager(email: str) -> bool:
    with unit_of_work() as session:
        person = session.scalars(select(Staff).where(Staff.email == email)).one()
        return Role.SENIOR_MANAGER in person.roles


pytestmark = pytest.mark.usefixtures("worker")


def test_a_nominee_passes_research_parallel_reviews_and_senior_approval_and_becomes_a_key_account_with_its_team_told(
    onboarding_db: str, prefect_server: str
) -> None:
    people, code = People("ok"), new_customer()
    nominate(onboarding_db, prefect_server, code, people)
    run_id = wait_step(code, "research")
    listing = kefu(onboarding_db, prefect_server, "step", "list", "--case", code)
    assert code in listing.stdout and "research" in listing.stdout

    refused = kefu(onboarding_db, prefect_server, "step", "submit", code, "research", "--data", '{"findings": "x"}',
                   "--as", "ok-finance")  # fmt: skip
    assert refused.returncode == 2 and "无权处理此步骤" in refused.stderr  # only the market department researches
    done = kefu(onboarding_db, prefect_server, "step", "submit", code, "research", "--data",
                '{"findings": "年业务量居前，合作潜力大"}', "--as", "ok-market")  # fmt: skip
    assert done.returncode == 0, done.stderr
    review_all(code, people)
    assert wait_step(code, SENIOR_APPROVAL.name) == run_id  # the same onboarding run, resumed by the last review
    assert decisions(code) == dict.fromkeys(DEPARTMENTS, "approved")
    do(code, "senior_approval", actor_staff_id=people["senior"], admit=True, reason="各部门同意", **people.team())

    state, run = wait_final(run_id)
    assert state == "COMPLETED"
    assert run.name == code and ONBOARDING_TAG in run.tags
    with unit_of_work() as session:
        customer = session.scalars(select(Customer).where(Customer.code == code)).one()
        assert customer.tier is CustomerTier.KEY
        team = {role.value: person.id for role, person in team_members(session, customer.id)}
    assert team == {"project_manager": people["pm"], "service_specialist": people["cs"],
                    "dispatcher": people["dispatch"], "after_sales": people["after"]}  # fmt: skip
    for member in ("pm", "cs", "dispatch", "after"):
        assert mails_to(f"ok-{member}", "key_account_team_assignment") == 1
    closed = nomination(code)
    assert closed.status == "admitted" and closed.outcome_reason == "各部门同意"
    assert repeated_events(code) == []


def test_a_department_rejection_goes_to_the_senior_manager_who_decides_and_wrong_answers_are_refused(
    onboarding_db: str, prefect_server: str
) -> None:
    people, code = People("no"), new_customer()
    nominate(onboarding_db, prefect_server, code, people)
    run_id = wait_step(code, "research")
    # the operators' entrance lists the step to the market department only, and answers it as the signed-in person
    engine, now = default_engine(), dt.datetime.now(dt.UTC)
    assert (code, "research", run_id) in [
        (v.case_no, v.step, v.flow_run_id) for v in my_waiting_steps(engine, people["market"], now)
    ]
    assert code not in [v.case_no for v in my_waiting_steps(engine, people["finance"], now)]
    with pytest.raises(Refusal, match="无权处理此步骤"):
        answer_as(engine, people["finance"], code, run_id, {"findings": "越权"})
    assert (
        answer_as(engine, people["market"], code, run_id, {"findings": "潜力一般"})["actor_staff_id"]
        == people["market"]
    )
    do(code, "research", actor_staff_id=people["market"], findings="潜力一般")
    wait_step(code, "review_finance")
    with pytest.raises(UsageError, match="无权处理此步骤"):  # the market reviewer cannot answer for finance
        submit(code, "review_finance", {"actor_staff_id": people["market"], "approve": True, "comments": "代签"})
    review_all(code, people, rejected={"finance": "账期风险高，回款慢"})
    assert wait_step(code, "senior_approval") == run_id

    with unit_of_work() as session:
        row = nomination_for_code(session, code)
        assert row is not None
        summary = render_summary(session, row.id, SENIOR_APPROVAL)
    assert "账期风险高，回款慢" in summary and "有部门不同意纳入" in summary  # the senior manager sees the reasons
    with pytest.raises(UsageError, match="无权处理此步骤"):  # only a senior manager decides
        submit(code, "senior_approval", {"actor_staff_id": people["finance"], "admit": False, "reason": "否"})
    # admitting without a team is refused by the run, which waits again (it does not fail)
    do(code, "senior_approval", actor_staff_id=people["senior"], admit=True, reason="同意")
    deadline = time.monotonic() + 60
    while "senior-approval-1" not in [r["key"] for r in waiting_steps_of(code)]:
        assert time.monotonic() < deadline, "the refused decision was never asked again"
        time.sleep(0.3)
    do(code, "senior_approval", actor_staff_id=people["senior"], admit=False, reason="财务风险未消除")

    assert wait_final(run_id)[0] == "COMPLETED"
    closed = nomination(code)
    assert closed.status == "rejected" and closed.outcome_reason == "财务风险未消除"
    with unit_of_work() as session:
        customer = session.scalars(select(Customer).where(Customer.code == code)).one()
        assert customer.tier is CustomerTier.GENERAL and team_members(session, customer.id) == []


def waiting_steps_of(code: str) -> list[dict[str, Any]]:
    with unit_of_work() as session:
        return waiting_steps(session, code)


def test_a_missed_review_escalates_to_the_departments_supervisor_then_a_senior_manager_once_each(
    onboarding_db: str, prefect_server: str
) -> None:
    people, code = People("late"), new_customer()
    nominate(onboarding_db, prefect_server, code, people)
    do(code, "research", actor_staff_id=people["market"], findings="待评审")
    for department in ("market", "operations", "technology"):
        do(code, f"review_{department}", actor_staff_id=people[department], approve=True, comments="同意")
    wait_step(code, "review_finance")
    deadline = time.monotonic() + 60
    while list(decisions(code).values()).count("approved") < 3:  # the worker records the three answers
        assert time.monotonic() < deadline, "the three reviews were never recorded"
        time.sleep(0.3)
    with unit_of_work() as session:
        row = nomination_for_code(session, code)
        assert row is not None
        review = session.scalars(
            select(OnboardingReview).where(
                OnboardingReview.nomination_id == row.id, OnboardingReview.department == "finance"
            )
        ).one()
        due = review.due_at
    shown = kefu(onboarding_db, prefect_server, "account", "show", code).stdout
    assert "review finance    pending, due" in shown and "review market     approved: 同意" in shown
    policy = current_policy()
    assert (
        due
        == calendar_for(policy)
        .deadline(review.started_at, policy.key_accounts.onboarding.reviews[Role.FINANCE].deadline)
        .due_at
    )

    assert not [f for f in onboarding_deadlines(due - dt.timedelta(minutes=1)) if code in f]  # not due yet
    fired = onboarding_deadlines(due + dt.timedelta(minutes=1))
    assert f"{code}:review_finance:escalated:1" in fired
    assert not [f for f in onboarding_deadlines(due + dt.timedelta(minutes=2)) if code in f]  # once
    first = overdue_mails(code)  # the supervisors of the finance department's staff (other tests' too), once each
    assert first["late-supervisor@example.com"] == 1 and set(first.values()) == {1}
    assert all(email.endswith("-supervisor@example.com") for email in first)

    later = calendar_for(policy).deadline(due, policy.escalation.reminder_interval).due_at + dt.timedelta(minutes=1)
    assert f"{code}:review_finance:escalated:2" in onboarding_deadlines(later)
    onboarding_deadlines(later + dt.timedelta(hours=1))
    mails = overdue_mails(code)
    seniors = {email: n for email, n in mails.items() if email not in first}
    assert {email: mails[email] for email in first} == first  # the supervisors are not told again
    assert list(seniors.values()) == [1] and is_senior_manager(next(iter(seniors)))  # then one senior manager, once

    # the late review still counts: the onboarding goes on to the senior manager
    do(code, "review_finance", actor_staff_id=people["finance"], approve=True, comments="迟到的同意")
    wait_step(code, "senior_approval")


def test_a_worker_killed_during_the_parallel_reviews_loses_no_review_and_counts_none_twice(
    worker: WorkerProcess, onboarding_db: str, prefect_server: str
) -> None:
    people, code = People("kill"), new_customer()
    nominate(onboarding_db, prefect_server, code, people)
    do(code, "research", actor_staff_id=people["market"], findings="调研完成")
    for department in DEPARTMENTS:
        wait_step(code, f"review_{department}")
    do(code, "review_market", actor_staff_id=people["market"], approve=True, comments="同意")
    do(code, "review_operations", actor_staff_id=people["operations"], approve=False, comments="运力紧张")
    worker.kill_9()  # the two answers are with Prefect; whether the worker took them up or not, it is gone
    worker.start()
    do(code, "review_finance", actor_staff_id=people["finance"], approve=True, comments="同意")
    do(code, "review_technology", actor_staff_id=people["technology"], approve=True, comments="同意")
    run_id = wait_step(code, "senior_approval", timeout=150)

    assert decisions(code) == {"market": "approved", "operations": "rejected", "finance": "approved",
                               "technology": "approved"}  # fmt: skip
    assert repeated_events(code) == []
    do(code, "senior_approval", actor_staff_id=people["senior"], admit=True, reason="运力可调配", **people.team())
    assert wait_final(run_id)[0] == "COMPLETED"
    assert nomination(code).status == "admitted"


def test_the_monthly_scoring_opens_an_onboarding_run_for_its_new_candidate(onboarding_db: str) -> None:
    from kefu.flows.key_account_identification import key_account_identification
    from kefu.models.accounts import BusinessFigures

    code = new_customer()
    with unit_of_work() as session:
        customer = session.scalars(select(Customer).where(Customer.code == code)).one()
        for month, volume in zip(range(6, 12), (100, 100, 100, 200, 200, 200), strict=True):  # doubled: potential
            session.add(
                BusinessFigures(
                    customer_id=customer.id, month=dt.date(2026, month, 1), orders=50, volume=volume,
                    orders_on_time=50, deliveries_on_time=50, complaints=0,
                )
            )  # fmt: skip
    assert code in key_account_identification("2026-11")
    run_id = wait_step(code, "research")  # the run the scoring opened, executed by the worker
    assert nomination(code).flow_run_id == run_id


def test_a_nomination_given_a_lost_nominations_id_opens_its_own_run_that_waits_for_the_research(
    worker: WorkerProcess, onboarding_db: str, prefect_server: str
) -> None:
    """The database restored from a backup taken before a nomination gives the next nomination the lost one's id,
    while the Prefect server keeps the lost one's run: the new nomination still gets a run of its own, waiting for
    the market department's research, and opening it again (the duty's mend) finds that run."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled

    from kefu.flows.key_account_onboarding import start_onboarding

    people, lost = People("restore"), new_customer()
    nominate(onboarding_db, prefect_server, lost, people)
    lost_run = wait_step(lost, "research")
    lost_id = nomination(lost).id
    with unit_of_work() as session:  # the restore: the database as the backup had it, before that nomination
        session.execute(delete(OnboardingEvent).where(OnboardingEvent.nomination_id == lost_id))
        session.execute(delete(KeyAccountNomination).where(KeyAccountNomination.id == lost_id))

    code = new_customer()
    nominate(onboarding_db, prefect_server, code, people)
    assert nomination(code).id == lost_id
    run_id = wait_step(code, "research")
    assert run_id != lost_run
    assert str(start_onboarding(lost_id, code)) == run_id
    with get_client(sync_client=True) as client:  # the lost nomination's run: nobody answers it any more
        client.set_flow_run_state(UUID(lost_run), Cancelled(message="its nomination was lost"), force=True)
