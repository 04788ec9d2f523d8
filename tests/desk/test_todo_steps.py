"""One to-do list: the steps enquiry, feedback, routine-callback and quality-review runs wait on appear in
``kefu step list`` (with their kind, title, Shanghai due time and the command or desk form that answers them) and on
the desk's start page of the people allowed to answer them, not of the others."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from kefu.desk.app import create_app
from kefu.desk.steps import my_waiting_steps
from kefu.flows.contact_steps import ContactStepRecord
from kefu.flows.enquiry import TAKE, EnquiryRecord
from kefu.flows.feedback import DEPARTMENT, FeedbackRecord
from kefu.flows.quality_check import SCORE
from kefu.flows.routine_callbacks import RESULT
from kefu.models import Role, Staff
from kefu.models.contacts import QualityReview, RoutineCallback
from kefu.models.enquiries import FeedbackKind
from kefu.models.enums import Channel
from kefu.models.people import Customer
from kefu.models.policy import current_policy
from kefu.tasks import enquiries, feedback
from kefu.worktime import calendar_for
from tests.desk.test_signin import desk_settings, sign_in
from tests.support.desk import PASSWORD, add_person, desk_client

KEFU = str(Path(sys.executable).parent / "kefu")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def kefu(database_url: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """The console script with only PATH and Kefu's database in its environment, run outside the project."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "KEFU_DATABASE_URL": database_url}
    return subprocess.run(
        [KEFU, *argv], env=env, capture_output=True, text=True, timeout=120, check=False, cwd=tempfile.gettempdir()
    )


@dataclass(frozen=True)
class Waiting:
    agent: int  # answers enquiries, owns the callback, is the agent of the quality review
    supervisor: int  # the agent's supervisor: scores the review
    operations: int  # the department the feedback is routed to
    finance: int  # answers none of these
    enquiry_no: str
    feedback_no: str
    code: str  # the callback's customer
    review: str  # the quality review as people name it
    subjects: tuple[str, str]  # the step records' subjects of the callback and the review
    now: dt.datetime


@pytest.fixture
def waiting(engine: Engine, db: Session, kefu_database_url: str) -> Waiting:
    """One run of each kind waiting on its person's step, recorded the way the step kit records it."""
    agent = add_person(engine, "wang.kefu", Role.AGENT)
    supervisor = add_person(engine, "li.zhuguan", Role.SUPERVISOR)
    operations = add_person(engine, "zhao.yunying", Role.OPERATIONS)
    finance = add_person(engine, "qian.caiwu", Role.FINANCE)
    db.get_one(Staff, agent).supervisor_id = supervisor
    customer = Customer(code="HD-001", name="华东建材", phones=["13812348000"])
    db.add(customer)
    db.commit()

    policy, now = current_policy(), dt.datetime.now(dt.UTC)
    enquiry, _ = enquiries.record_enquiry(
        db,
        enquiries.NewEnquiry("张先生", "13900001111", "运费怎么算", Channel.HOTLINE, now, owner_id=agent),
        policy,
        calendar_for(policy),
        now,
    )
    fb = feedback.record_feedback(
        db,
        feedback.NewFeedback(
            kind=FeedbackKind.SUGGESTION,
            name="赵女士",
            phone="13900002222",
            content="希望周末也能上门取件",
            department="operations",
            channel=Channel.HOTLINE,
            received_at=now,
        ),
        policy,
        calendar_for(policy),
        now,
    )
    callback = RoutineCallback(
        customer_id=customer.id, due_on=now.astimezone(SHANGHAI).date(), channel="phone", owner_id=agent,
        owned_by="rota",
    )  # fmt: skip
    month_ago = now - dt.timedelta(days=30)
    review = QualityReview(
        year=month_ago.year, month=month_ago.month, agent_id=agent, reviewer_id=supervisor,
        due_at=now + dt.timedelta(days=3),
    )  # fmt: skip
    db.add_all([callback, review])
    db.commit()

    EnquiryRecord(enquiry.enquiry_no).waiting(TAKE, "take-0", "11111111-1111-1111-1111-111111111111")
    FeedbackRecord(fb.feedback_no).waiting(DEPARTMENT, "department-answer-0", "22222222-2222-2222-2222-222222222222")
    ContactStepRecord(f"callback:{callback.id}", lambda step: "").waiting(
        RESULT, "routine-callback-0", "33333333-3333-3333-3333-333333333333"
    )
    ContactStepRecord(f"quality:{review.id}", lambda step: "").waiting(
        SCORE, "quality-score-0", "44444444-4444-4444-4444-444444444444"
    )
    return Waiting(
        agent=agent,
        supervisor=supervisor,
        operations=operations,
        finance=finance,
        enquiry_no=enquiry.enquiry_no,
        feedback_no=fb.feedback_no,
        code="HD-001",
        review=f"{review.year}-{review.month:02d}#{review.id}",
        subjects=(f"callback:{callback.id}", f"quality:{review.id}"),
        now=now,
    )


def line_of(listing: str, ref: str) -> tuple[str, str]:
    """The row of ``ref`` in ``kefu step list`` and the answer line under it."""
    lines = listing.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(f"{ref}  "))
    return lines[at], lines[at + 1]


def test_kefu_step_list_shows_every_kind_of_waiting_step_with_its_due_time_and_what_answers_it(
    waiting: Waiting, database_url: str, engine: Engine
) -> None:
    listing = kefu(database_url, "step", "list")
    assert listing.returncode == 0, listing.stderr
    out = listing.stdout
    assert "+00:00" not in out and "no waiting steps" not in out

    row, answer = line_of(out, waiting.enquiry_no)
    assert "咨询" in row and "take" in row and "受理咨询" in row
    with Session(engine) as session:
        due = enquiries.get_enquiry(session, waiting.enquiry_no).due_at
    assert f"due {due.astimezone(SHANGHAI):%Y-%m-%d %H:%M} +08:00" in row  # the 10-minute promise, Shanghai time
    assert answer.strip() == f"answer: kefu enquiry submit {waiting.enquiry_no} take --as STAFF --data JSON"

    row, answer = line_of(out, waiting.code)
    today = waiting.now.astimezone(SHANGHAI).date()
    assert "定期回访" in row and "定期回访结果" in row and f"due {today:%Y-%m-%d} 18:00 +08:00" in row
    assert "kefu step submit" not in answer and "/prefect/runs/flow-run/33333333-3333-3333-3333-333333333333" in answer

    row, answer = line_of(out, waiting.feedback_no)
    assert "意见反馈" in row and "部门答复" in row and "due " in row
    assert f"kefu feedback answer {waiting.feedback_no} --as STAFF" in answer

    row, answer = line_of(out, waiting.review)
    assert "沟通记录质检" in row and "沟通记录质检评分" in row and "/flow-run/44444444" in answer

    elsewhere = kefu(database_url, "step", "submit", waiting.enquiry_no, "take", "--data", "{}")
    assert elsewhere.returncode == 2 and "Traceback" not in elsewhere.stderr
    assert f"kefu enquiry submit {waiting.enquiry_no} take" in elsewhere.stderr  # not a bare "unknown step"

    only = kefu(database_url, "step", "list", "--case", waiting.enquiry_no)
    assert only.returncode == 0, only.stderr
    assert waiting.enquiry_no in only.stdout and waiting.code not in only.stdout
    assert waiting.feedback_no not in only.stdout


def test_the_desk_lists_each_step_to_the_people_allowed_to_answer_it_and_not_to_the_others(
    waiting: Waiting, engine: Engine
) -> None:
    def seen(staff_id: int) -> dict[str, tuple[str, str, str]]:
        return {s.case_no: (s.kind, s.title, s.team) for s in my_waiting_steps(engine, staff_id, waiting.now)}

    assert seen(waiting.agent) == {
        waiting.enquiry_no: ("咨询", "受理咨询", ""),
        waiting.code: ("定期回访", "定期回访结果", ""),  # their own callback
    }  # not the feedback (the operations department's), not the review of their own record
    assert seen(waiting.supervisor) == {
        waiting.enquiry_no: ("咨询", "受理咨询", ""),
        waiting.feedback_no: ("意见反馈", "部门答复", ""),
        waiting.code: ("定期回访", "定期回访结果", "员工wang.kefu"),  # their team member's callback
        waiting.review: ("沟通记录质检", "沟通记录质检评分：员工wang.kefu", ""),
    }
    assert seen(waiting.operations) == {waiting.feedback_no: ("意见反馈", "部门答复", "")}
    assert seen(waiting.finance) == {}

    callback = next(s for s in my_waiting_steps(engine, waiting.agent, waiting.now) if s.kind == "定期回访")
    assert callback.due.endswith("18:00 +08:00") and callback.flow_run_id.startswith("33333333")


async def test_the_start_page_shows_an_enquiry_with_its_kind_and_form_link_not_as_a_case(
    waiting: Waiting, engine: Engine, tmp_path: Path
) -> None:
    async with desk_client(create_app(desk_settings(tmp_path), engine)) as http:
        await sign_in(http, "wang.kefu", PASSWORD)
        page = (await http.get("/")).text
    assert f"咨询 {waiting.enquiry_no}" in page and "受理咨询" in page and "定期回访结果" in page
    assert 'href="/prefect/runs/flow-run/11111111-1111-1111-1111-111111111111"' in page
    assert f'href="/cases/{waiting.enquiry_no}"' not in page  # no case page to open for an enquiry


def test_an_answered_callback_or_review_leaves_the_list(waiting: Waiting, engine: Engine, database_url: str) -> None:
    callback, review = waiting.subjects
    ContactStepRecord(callback, lambda step: "").completed(RESULT, "routine-callback-0", {"summary": "满意"})
    ContactStepRecord(review, lambda step: "").refused(SCORE, "quality-score-0", "不能为自己的沟通记录评分", {})
    assert {s.kind for s in my_waiting_steps(engine, waiting.supervisor, waiting.now)} == {"咨询", "意见反馈"}
    listing = kefu(database_url, "step", "list", "--case", waiting.code)
    assert listing.returncode == 0 and listing.stdout.strip() == "no waiting steps", listing.stdout
