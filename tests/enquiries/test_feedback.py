"""Feedback and suggestions: routed to the department with its deadline from the policy, answered to the customer
(the reply linted), reasonable suggestions in the management artifact; bad input refused, nothing written."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from sqlalchemy import func, select

from kefu.models.db import unit_of_work
from kefu.models.enquiries import Feedback, FeedbackKind
from kefu.models.enums import Channel, Role
from kefu.models.notifications import OutboxMessage
from kefu.models.people import Staff
from kefu.models.policy import Policy
from kefu.tasks import feedback
from kefu.worktime import WorkCalendar
from tests.support.clock import SHANGHAI

pytestmark = pytest.mark.usefixtures("kefu_database_url")

RECEIVED = dt.datetime(2026, 3, 10, 10, 0, tzinfo=SHANGHAI)  # a Tuesday


def person(role: Role) -> int:
    with unit_of_work() as session:
        staff = Staff(name="员工")
        staff.grant(role)
        session.add(staff)
        session.flush()
        return staff.id


def record(policy: Policy, calendar: WorkCalendar, **given: object) -> str:
    fields: dict[str, object] = {
        "kind": FeedbackKind.SUGGESTION,
        "name": "张三",
        "phone": "13812348000",
        "email": "zhang@example.com",
        "content": "希望周末也能提货，联系我 13812348000",
        "department": "运营部",
        "channel": Channel.HOTLINE,
        "received_at": RECEIVED,
        **given,
    }
    with unit_of_work() as session:
        new = feedback.NewFeedback(**fields)  # type: ignore[arg-type]
        return feedback.record_feedback(session, new, policy, calendar, RECEIVED).feedback_no


def test_a_suggestion_is_routed_answered_to_the_customer_and_reported_when_reasonable(
    policy: Policy, calendar: WorkCalendar
) -> None:
    ops = person(Role.OPERATIONS)
    number = record(policy, calendar)
    dull = record(policy, calendar, content="希望换个客服热线号码")
    with unit_of_work() as session:
        row = feedback.get_feedback(session, number)
        # 运营部: 2 working days from receipt (Tuesday 10:00 → Thursday's close of business)
        assert row.department == "operations"
        assert row.due_at == calendar.deadline(RECEIVED, policy.feedback.department_deadlines[Role.OPERATIONS]).due_at
        assert row.due_at.astimezone(SHANGHAI).date() == dt.date(2026, 3, 12)
    answered = RECEIVED + dt.timedelta(days=1)
    with unit_of_work() as session:
        feedback.answer_feedback(session, number, ops, solution="周六增开提货", reply="自下月起周六上午可以提货。",
                                 reasonable=True, policy=policy, now=answered)  # fmt: skip
        feedback.answer_feedback(session, dull, ops, solution="不采纳", reply="感谢建议，热线号码暂不调整。",
                                 reasonable=False, policy=policy, now=answered)  # fmt: skip
    with unit_of_work() as session:
        mail = session.scalars(
            select(OutboxMessage).where(OutboxMessage.dedupe_key == f"feedback:{number}:reply")
        ).one()
        assert mail.recipient == "zhang@example.com" and "周六上午可以提货" in mail.body_text
        start, end = feedback.month_bounds(2026, 3, policy.timezone)
        markdown = feedback.suggestions_markdown(session, policy, start, end, answered)
    assert number in markdown and "周六增开提货" in markdown
    assert dull not in markdown  # not reasonable: not reported
    assert "13812348000" not in markdown  # personal data masked in the artifact


def test_the_monthly_flow_leaves_the_suggestions_as_an_artifact(
    policy: Policy, calendar: WorkCalendar, prefect_server: str
) -> None:
    from kefu.flows.suggestions_report import ARTIFACT_KEY, suggestions_report

    ops = person(Role.OPERATIONS)
    number = record(policy, calendar, content="建议增加冷链车辆")
    with unit_of_work() as session:
        feedback.answer_feedback(session, number, ops, solution="已列入采购计划", reply="我们已计划增加冷链车辆。",
                                 reasonable=True, policy=policy, now=RECEIVED + dt.timedelta(hours=2))  # fmt: skip
    markdown = suggestions_report(at=dt.datetime(2026, 4, 1, 8, 0, tzinfo=SHANGHAI))  # the report of March
    assert "2026-03-01 至 2026-03-31" in markdown and number in markdown
    artifact = httpx.get(f"{prefect_server}/artifacts/{ARTIFACT_KEY}/latest", timeout=30).json()
    assert number in artifact["data"]


def counts() -> tuple[int, int]:
    with unit_of_work() as session:
        return (
            session.scalar(select(func.count()).select_from(Feedback)) or 0,
            session.scalar(select(func.count()).select_from(OutboxMessage)) or 0,
        )


def test_bad_feedback_and_bad_answers_are_refused_and_write_nothing(policy: Policy, calendar: WorkCalendar) -> None:
    agent, market = person(Role.AGENT), person(Role.MARKET)
    with pytest.raises(feedback.FeedbackRefused, match="只能转给"):
        record(policy, calendar, department="保安部")
    with pytest.raises(feedback.FeedbackRefused, match="请填写内容"):
        record(policy, calendar, content=" ")
    assert counts() == (0, 0)
    number = record(policy, calendar)
    refusals = [
        (market, {"solution": "x", "reply": "好的", "reasonable": True}, "须由"),  # another department
        (agent, {"solution": "x", "reply": "我不知道，你自己去问物流公司。", "reasonable": True}, "措辞未通过检查"),
        (agent, {"solution": "x", "reply": "好的", "reasonable": None}, "是否合理"),
    ]
    for who, answer, says in refusals:
        with pytest.raises(feedback.FeedbackRefused, match=says), unit_of_work() as session:
            feedback.answer_feedback(session, number, who, policy=policy, now=RECEIVED, **answer)  # type: ignore[arg-type]
    assert counts() == (1, 0)
    with unit_of_work() as session:
        assert feedback.get_feedback(session, number).answered_at is None


def escalations_to(address: str) -> list[str]:
    with unit_of_work() as session:
        return list(
            session.scalars(
                select(OutboxMessage.subject).where(
                    OutboxMessage.recipient == address, OutboxMessage.message_type == "feedback_escalation"
                )
            )
        )


def test_a_missed_department_deadline_escalates_to_the_supervisor_once(policy: Policy, calendar: WorkCalendar) -> None:
    with unit_of_work() as session:
        boss = Staff(name="赵主管", email="fk-boss@example.com")
        boss.grant(Role.SUPERVISOR)
        agent = Staff(name="李客服", email="fk-agent@example.com", supervisor=boss)
        agent.grant(Role.AGENT)
        session.add_all([boss, agent])
        session.flush()
        recorder = agent.id
    number = record(policy, calendar, recorded_by=recorder)
    answered_in_time = record(policy, calendar, recorded_by=recorder, content="建议增加短信通知")
    due = calendar.deadline(RECEIVED, policy.feedback.department_deadlines[Role.OPERATIONS]).due_at
    with unit_of_work() as session:
        feedback.answer_feedback(session, answered_in_time, person(Role.OPERATIONS), solution="采纳",
                                 reply="我们将增加短信通知。", reasonable=True, policy=policy,
                                 now=due - dt.timedelta(minutes=1))  # fmt: skip

    with unit_of_work() as session:  # the fake clock a second before the deadline: nothing
        assert feedback.sweep(session, policy, calendar, due - dt.timedelta(seconds=1)) == []
    with unit_of_work() as session:
        fired = feedback.sweep(session, policy, calendar, due)
    assert fired == [f"{number}:breached", f"{number}:escalated:supervisor"]  # the answered one: never
    assert escalations_to("fk-boss@example.com") == [f"【升级】客户建议{number}已超过部门时限未答复"]
    with unit_of_work() as session:  # a sweep a minute later repeats nothing
        assert feedback.sweep(session, policy, calendar, due + dt.timedelta(minutes=1)) == []
        row = feedback.get_feedback(session, number)
        assert (row.breached_at, row.escalation_level) == (due, 1)
    assert len(escalations_to("fk-boss@example.com")) == 1
    with unit_of_work() as session:
        mail = session.scalars(select(OutboxMessage).where(OutboxMessage.recipient == "fk-boss@example.com")).one()
    assert "运营部" in mail.body_text and "13812348000" not in mail.body_text


def test_through_the_entrance_only_the_routed_department_or_a_supervisor_answers_for_the_department(
    policy: Policy, calendar: WorkCalendar
) -> None:
    from kefu.desk.proxy import Refusal
    from kefu.desk.steps import feedback_answer_as
    from kefu.models.db import default_engine

    ops, boss, agent, market = (person(r) for r in (Role.OPERATIONS, Role.SUPERVISOR, Role.AGENT, Role.MARKET))
    number = record(policy, calendar)
    with unit_of_work() as session:  # what the run records just before it suspends
        row = feedback.get_feedback(session, number)
        feedback.record_event(session, row, "waiting", "department-answer-0", "system", RECEIVED,
                              step="department_answer", flow_run_id="r1")  # fmt: skip
    engine, answer = default_engine(), {"solution": "x", "actor_staff_id": 999}
    assert feedback_answer_as(engine, ops, number, "r1", answer)["actor_staff_id"] == ops  # the signed-in person
    assert feedback_answer_as(engine, boss, number, "r1", answer)["actor_staff_id"] == boss
    for other in (agent, market):
        with pytest.raises(Refusal, match="本步骤须由运营部、主管完成"):
            feedback_answer_as(engine, other, number, "r1", answer)
    with pytest.raises(Refusal, match="没有等待"):
        feedback_answer_as(engine, ops, number, "another-run", answer)
    with unit_of_work() as session:  # the follow-up: customer service may close it
        row = feedback.get_feedback(session, number)
        feedback.record_event(session, row, "step_completed", "department-answer-0", f"staff:{ops}", RECEIVED)
        feedback.record_event(session, row, "waiting", "follow-up-0", "system", RECEIVED, step="follow_up",
                              flow_run_id="r1")  # fmt: skip
    assert feedback_answer_as(engine, agent, number, "r1", {})["actor_staff_id"] == agent
    with pytest.raises(Refusal, match="本步骤须由"):
        feedback_answer_as(engine, market, number, "r1", {})
