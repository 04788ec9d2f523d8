"""Feedback and suggestions through their ``feedback`` run, as staff work them: ``kefu feedback add`` starts the run,
the wrong person's answer is refused and the step waits, the routed department answers (the reply reaches the
customer's mailbox through the outbox, the reasonable suggestion reaches the monthly report), the follow-up closes
it; the sweeper starts runs for feedback recorded without one. A Kefu worker runs the flow on a real Prefect server."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from email.message import Message
from pathlib import Path

import pytest
from sqlalchemy import select

from kefu.models.db import engine_for, unit_of_work
from kefu.models.enquiries import FeedbackEvent
from kefu.models.enums import Role
from kefu.models.notifications import OutboxMessage
from kefu.notifications import deliver_due
from kefu.tasks.feedback import get_feedback, waiting_steps
from tests.enquiries.test_enquiry_flow import kefu, staff
from tests.support.clock import SHANGHAI
from tests.support.smtp import SMTPServer

pytestmark = pytest.mark.usefixtures("enquiry_worker")


def wait_step(number: str, step: str, timeout: float = 60) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with unit_of_work() as session:
            rows = [r for r in waiting_steps(session, number) if r["step"] == step]
        if rows:
            return rows[-1]
        time.sleep(0.3)  # the worker is another process: polling the DB is the only signal
    raise AssertionError(f"{number} never waited on {step}")


def plain_text(message: Message) -> str:
    """The text/plain part of a mail as it arrived in the sink."""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no text/plain part")


def wait_run_completed(run_id: str, timeout: float = 60) -> None:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(run_id).state  # type: ignore[arg-type]
            if state is not None and state.is_completed():
                return
            assert time.monotonic() < deadline, f"run {run_id} ended {state}"
            time.sleep(0.3)


def test_a_suggestion_goes_from_record_to_closed_through_its_run(
    tmp_path: Path, prefect_server: str, enquiry_db_url: str, smtp_server: SMTPServer
) -> None:
    from kefu.desk.proxy import Refusal
    from kefu.desk.steps import feedback_answer_as
    from kefu.flows.suggestions_report import suggestions_report

    api, db = prefect_server, enquiry_db_url
    agent, ops, market = staff("周客服", Role.AGENT), staff("运营", Role.OPERATIONS), staff("市场", Role.MARKET)
    email = f"wu-{time.monotonic_ns()}@example.com"
    made = kefu(tmp_path, api, db, "feedback", "add", "--as", agent, "--kind", "suggestion", "--name", "吴六",
                "--phone", "13812348000", "--email", email, "--content", "希望增加夜间提货时段",
                "--department", "运营部")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "run started" in made.stdout
    number = made.stdout.split(":", 1)[0]
    waiting = wait_step(number, "department_answer")
    with unit_of_work() as session:
        assert get_feedback(session, number).flow_run_id == waiting["flow_run_id"]

    # another department may not answer: refused in words at the entrance and by the run; the step waits again
    with pytest.raises(Refusal, match="运营部、主管"):
        feedback_answer_as(engine_for(db), int(market), number, waiting["flow_run_id"], {"solution": "x"})
    wrong = kefu(tmp_path, api, db, "feedback", "answer", number, "--as", market, "--solution", "可以",
                 "--reply", "我们将增加夜间提货。", "--reasonable", "yes")  # fmt: skip
    assert wrong.returncode != 0 and "本步骤须由运营部、主管完成" in wrong.stderr
    assert wait_step(number, "department_answer")["key"] != waiting["key"]  # asked again
    with unit_of_work() as session:
        row = get_feedback(session, number)
        assert row.answered_at is None and row.reply is None
        assert session.scalars(select(OutboxMessage).where(OutboxMessage.recipient == email)).all() == []

    early = kefu(tmp_path, api, db, "feedback", "close", number, "--as", agent)  # nothing to follow up yet
    assert early.returncode == 2 and "尚未答复" in early.stderr

    # the routed department: a suggestion needs its verdict; then the reply goes out
    undecided = kefu(tmp_path, api, db, "feedback", "answer", number, "--as", ops, "--solution", "可以",
                     "--reply", "我们将增加夜间提货。")  # fmt: skip
    assert undecided.returncode != 0 and "是否合理" in undecided.stderr
    done = kefu(tmp_path, api, db, "feedback", "answer", number, "--as", ops, "--solution", "增设夜间提货",
                "--reply", "自下月起每晚20点前可以提货。", "--reasonable", "yes")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "reply mail" in done.stdout
    wait_step(number, "follow_up")
    again = kefu(tmp_path, api, db, "feedback", "answer", number, "--as", ops, "--solution", "x", "--reply", "好的",
                 "--reasonable", "no")  # fmt: skip
    assert again.returncode == 2 and "已答复" in again.stderr  # once
    closed = kefu(tmp_path, api, db, "feedback", "close", number, "--as", agent, "--note", "客户表示满意")
    assert closed.returncode == 0, closed.stderr
    wait_run_completed(waiting["flow_run_id"])
    with unit_of_work() as session:
        row = get_feedback(session, number)
        assert row.closed_at is not None and row.reasonable is True
        assert row.answered_at is not None and row.answered_at <= row.due_at  # within the department's deadline
        answered = row.answered_at

    # the reply arrives in the customer's mailbox, once
    far = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    asyncio.run(deliver_due(engine_for(db), far, settings=smtp_server.settings))
    arrived = [m for m in smtp_server.handler.received if m["To"] == email]
    assert [str(m["X-Kefu-Type"]) for m in arrived] == ["feedback_reply"]
    assert "每晚20点前可以提货" in plain_text(arrived[0])

    # and the reasonable suggestion is in the month's report for management
    local = answered.astimezone(SHANGHAI)
    next_month = dt.datetime(local.year + (local.month == 12), local.month % 12 + 1, 1, 8, 0, tzinfo=SHANGHAI)
    markdown = suggestions_report(at=next_month)
    assert number in markdown and "增设夜间提货" in markdown


def test_feedback_recorded_without_a_run_gets_one_from_the_sweeper(prefect_server: str) -> None:
    from kefu.flows.case_deadlines import sweep_deadlines
    from kefu.models.enquiries import FeedbackKind
    from kefu.models.enums import Channel
    from kefu.models.policy import current_policy
    from kefu.tasks.feedback import NewFeedback, record_feedback
    from kefu.worktime import calendar_for

    policy, now = current_policy(), dt.datetime.now(dt.UTC)
    new = NewFeedback(kind=FeedbackKind.FEEDBACK, name="孙七", phone="13612345678", content="司机很有礼貌",
                      department="运营部", channel=Channel.WEB, received_at=now)  # fmt: skip
    with unit_of_work() as session:
        number = record_feedback(session, new, policy, calendar_for(policy), now).feedback_no
    assert f"{number}:run-started" in sweep_deadlines(dt.datetime.now(dt.UTC))
    assert f"{number}:run-started" not in sweep_deadlines(dt.datetime.now(dt.UTC))  # its run is known: once
    row = wait_step(number, "department_answer")
    with unit_of_work() as session:
        assert get_feedback(session, number).flow_run_id == row["flow_run_id"]
        events = session.scalars(select(FeedbackEvent.action).where(FeedbackEvent.key == row["key"])).all()
    assert "waiting" in events
