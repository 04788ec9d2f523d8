"""The staff assessment through real suspend/resume: a Kefu worker serving the monthly run and the sheet runs, the
session's Prefect server, a real database. The month opens one self-assessment and one supervisor run per person;
only the person (self) or their supervisor may answer; a missed deadline is marked missing and escalated; the last
answer publishes the ranked table (Prefect artifacts, mails through the sink) and ``kefu assessment show`` prints
it."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select

from kefu.desk.proxy import Refusal
from kefu.desk.steps import assessment_answer_as, my_waiting_steps
from kefu.engine.contract import ASSESSMENT_DEPLOYMENT
from kefu.flows.staff_assessment import SELF_STEP, assessment_deadlines
from kefu.models.assessment import AssessmentEvent, AssessmentSheet
from kefu.models.db import default_engine, unit_of_work
from kefu.models.enums import Role
from kefu.models.notifications import OutboxMessage
from kefu.models.people import Staff
from kefu.notifications import deliver_due
from kefu.settings import get_settings
from kefu.tasks import assessment
from tests.support.databases import migrated_sqlite, use_database
from tests.support.prefect import WorkerProcess, prefect_post, wait_suspended_at

KEFU = str(Path(sys.executable).parent / "kefu")
SERVED = '["complaint-case", "staff-assessment", "assessment-sheet"]'
MONTH = "2026-10"
SCORES = {"discipline": 4, "teamwork": 4, "responsibility": 4, "product_knowledge": 4, "service_skills": 4}


class AssessmentWorker(WorkerProcess):
    def __init__(self, db_url: str, log_path: Path) -> None:
        super().__init__(db_url, log_path)
        self.env = {**self.env, "KEFU_SERVE_ONLY": SERVED}


@pytest.fixture(scope="module")
def assessment_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = migrated_sqlite(tmp_path_factory.mktemp("assessmentdb") / "kefu.db")
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_database(monkeypatch, url)
        yield url
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def worker(prefect_server: str, assessment_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    process = AssessmentWorker(assessment_db, tmp_path_factory.mktemp("as-worker") / "worker.log")
    try:
        process.start()  # inside: a worker that never got ready is stopped too
        yield process
    finally:
        process.stop()


def kefu(db_url: str, api_url: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "KEFU_PREFECT_API_URL": api_url,
        "KEFU_DATABASE_URL": db_url,
    }
    return subprocess.run([KEFU, *argv], env=env, capture_output=True, text=True, timeout=120, check=False)


def staff() -> dict[str, int]:
    """高经理 ← 张主管 ← 王客服, 李客服 (the agents are assessed)."""
    ids: dict[str, int] = {}
    with unit_of_work() as session:
        boss: Staff | None = None
        for login, role in (("gao", Role.SENIOR_MANAGER), ("zhang", Role.SUPERVISOR)):
            person = Staff(name=f"员工{login}", login=login, email=f"{login}@example.com", supervisor=boss)
            person.grant(role)
            session.add(person)
            session.flush()
            ids[login], boss = person.id, person
        for login in ("wang", "li"):
            person = Staff(name=f"员工{login}", login=login, email=f"{login}@example.com", supervisor=boss)
            person.grant(Role.AGENT)
            session.add(person)
            session.flush()
            ids[login] = person.id
    return ids


def waiting(ref: str, step: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with unit_of_work() as session:
            rows = [r for r in assessment.waiting_steps(session, ref) if r["step"] == step]
        if rows:
            return rows[-1]
        time.sleep(0.3)  # the worker is another process: polling the DB is the only signal
    raise AssertionError(f"{ref} never waited on {step}")


def sheet(login: str) -> AssessmentSheet:
    with unit_of_work() as session:
        row = assessment.find_sheet(session, f"{MONTH}/{login}")
        session.expunge(row)
        return row


def published_within(timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with unit_of_work() as session:
            if assessment.is_published(session, MONTH):
                return
        time.sleep(0.3)
    raise AssertionError(f"{MONTH} never published")


def run_state(run_id: str, final: bool = True, timeout: float = 90) -> str:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            state = client.read_flow_run(UUID(run_id)).state
            if state is not None and (state.is_final() or not final):
                return str(state.type.value)
            time.sleep(0.3)
    raise AssertionError("run never finished")


@pytest.mark.usefixtures("worker")
def test_a_month_runs_through_self_and_supervisor_steps_a_missed_one_and_publishes_a_ranked_table(
    assessment_db: str, prefect_server: str, smtp_server: Any
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    ids = staff()
    # the monthly run, for a given month (its schedule opens last month on the first working day)
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + 60
        while True:  # the worker registers its deployments one after another at start-up
            try:
                deployment = client.read_deployment_by_name(ASSESSMENT_DEPLOYMENT)
                break
            except ObjectNotFound:
                assert time.monotonic() < deadline, "the worker never registered the staff-assessment deployment"
                time.sleep(0.5)
        client.create_flow_run_from_deployment(deployment.id, parameters={"month": MONTH})
    wang_self = waiting(f"{MONTH}/wang", "self_assessment")
    waiting(f"{MONTH}/wang", "supervisor_assessment")
    li_self = waiting(f"{MONTH}/li", "self_assessment")
    waiting(f"{MONTH}/li", "supervisor_assessment")
    # the entrance's start page: each person their own steps (王 his self step, 张 both supervisor steps)
    now = dt.datetime.now(dt.UTC)
    mine = {(v.case_no, v.step) for v in my_waiting_steps(default_engine(), ids["wang"], now)}
    assert mine == {(f"{MONTH}/wang", "self_assessment")}
    boss = {(v.case_no, v.step, v.kind) for v in my_waiting_steps(default_engine(), ids["zhang"], now)}
    assessed = {(f"{MONTH}/{who}", "supervisor_assessment", "员工考核") for who in ("wang", "li")}
    assert boss == assessed  # labelled as an assessment, not linked as a case page on the start page
    with pytest.raises(Refusal, match="只能由被考核人本人填写"):  # 李 answering 王's self step through the entrance
        assessment_answer_as(default_engine(), ids["li"], wang_self["sheet_id"], wang_self["flow_run_id"], SCORES)
    listing = kefu(assessment_db, prefect_server, "step", "list", "--case", f"{MONTH}/wang")
    assert "self_assessment" in listing.stdout and "supervisor_assessment" in listing.stdout, listing.stderr

    # someone else answering 王's self-assessment: refused by the command, and by the run itself (raw resume)
    data = '{"discipline": 5, "teamwork": 5, "responsibility": 5, "product_knowledge": 5, "service_skills": 5, ' \
           '"comment": "都很好"}'  # fmt: skip
    refused = kefu(assessment_db, prefect_server, "step", "submit", f"{MONTH}/wang", "self_assessment", "--data",
                   data, "--as", "li")  # fmt: skip
    assert refused.returncode == 2 and "自我评价只能由被考核人本人填写" in refused.stderr
    wait_suspended_at(prefect_server, wang_self["flow_run_id"], f"{SELF_STEP.key}-0")
    prefect_post(
        f"{prefect_server}/flow_runs/{wang_self['flow_run_id']}/resume",
        {"run_input": {**SCORES, "actor_staff_id": ids["li"], "comment": "冒名"}},
    )
    wait_suspended_at(prefect_server, wang_self["flow_run_id"], f"{SELF_STEP.key}-1")  # waits again, next round
    with unit_of_work() as session:
        [why] = session.scalars(select(AssessmentEvent).where(AssessmentEvent.action == "step_refused")).all()
        assert "只能由被考核人本人填写" in why.data["reason"]
    assert sheet("wang").self_status == "pending"

    done = kefu(assessment_db, prefect_server, "step", "submit", f"{MONTH}/wang", "self_assessment", "--data", data,
                "--as", "wang")  # fmt: skip
    assert done.returncode == 0, done.stderr
    for login in ("wang", "li"):
        answer = '{"discipline": 4, "teamwork": 4, "responsibility": 4, "product_knowledge": 4, ' \
                 '"service_skills": 4, "comment": "稳定"}' if login == "wang" else \
                 '{"discipline": 3, "teamwork": 3, "responsibility": 3, "product_knowledge": 3, ' \
                 '"service_skills": 3, "comment": "需加强产品知识"}'  # fmt: skip
        if login == "li":
            # 李 misses his self-assessment: the duty, at its deadline (a fake clock), marks it missing, tells 张
            # once and stops its run
            due = sheet("li").self_due_at
            assert sheet("li").supervisor_due_at > due
            fired = assessment_deadlines(due + dt.timedelta(minutes=1))
            assert f"{MONTH}/{ids['li']}:self:missing" in fired
            assert assessment_deadlines(due + dt.timedelta(minutes=2)) == []  # once
            assert sheet("li").self_status == "missing"
            assert run_state(li_self["flow_run_id"]) == "CANCELLED"
        ok = kefu(assessment_db, prefect_server, "step", "submit", f"{MONTH}/{login}", "supervisor_assessment",
                  "--data", answer, "--as", "zhang")  # fmt: skip
        assert ok.returncode == 0, ok.stderr
    published_within()

    wang, li = sheet("wang"), sheet("li")
    assert (wang.self_status, wang.supervisor_status, li.self_status, li.supervisor_status) == (
        "done", "done", "missing", "done",
    )  # fmt: skip
    # no figures this month: each evaluator's score is their attitude and ability; 王 self 100, 张 80; 李 张 60 only
    assert (wang.self_score, wang.supervisor_score, wang.customer_score) == (100, 80, None)
    assert wang.total == round((0.5 * 80 + 0.2 * 100) / 0.7, 2) and wang.rank == 1
    assert (li.total, li.rank) == (60, 2) and "缺自我评价" in li.flags

    # the ranked table on the publishing run's page (table and markdown artifacts)
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
    keys = {a.key for a in artifacts}
    assert {f"staff-assessment-{MONTH}", f"staff-assessment-{MONTH}-md"} <= keys
    markdown = next(a for a in artifacts if a.key == f"staff-assessment-{MONTH}-md")
    assert "员工wang" in str(markdown.data) and "缺自我评价" in str(markdown.data)

    # the mails, through the sink: 王 and 李 their own sheet, 张 the team's and the missed step
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=10)
    asyncio.run(deliver_due(default_engine(), later, settings=smtp_server.settings))
    received: dict[str, list[str]] = {}
    for raw in smtp_server.handler.received:
        message = email.message_from_bytes(raw.as_bytes(), policy=email.policy.default)
        received.setdefault(str(message["To"]), []).append(str(message["Subject"]))
    assert sorted(received["wang@example.com"]) == [f"【员工考核】{MONTH}月度考核结果"]
    assert sorted(received["zhang@example.com"]) == sorted(
        [f"【员工考核】{MONTH}月度考核结果", f"【考核逾期】员工li的{MONTH}月度考核自我评价"]
    )
    with unit_of_work() as session:
        own = session.scalars(select(OutboxMessage).where(OutboxMessage.recipient == "wang@example.com")).one()
        assert "员工li" not in own.body_text  # a person's own sheet only

    # the command: a supervisor sees the team, an agent only their own row
    team = kefu(assessment_db, prefect_server, "assessment", "show", "--month", MONTH, "--as", "zhang")
    assert team.returncode == 0, team.stderr
    assert "员工wang" in team.stdout and "员工li" in team.stdout and "已公布" in team.stdout
    mine = kefu(assessment_db, prefect_server, "assessment", "show", "--month", MONTH, "--as", "li")
    assert "员工li" in mine.stdout and "员工wang" not in mine.stdout
    bad = kefu(assessment_db, prefect_server, "assessment", "show", "--month", "2026-13")
    assert bad.returncode == 2 and "YYYY-MM" in bad.stderr
