"""Enquiries on both databases: the cross-department promise breached and escalated (the fake clock at the edge),
an enquiry turned into a complaint keeping its receipt time, bad input refused changing nothing, and a supervisor's
verdict feeding the answer accuracy."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from kefu.intake.dispatcher import convert_enquiries
from kefu.intake.enquiries import convert
from kefu.models.complaints import Complaint
from kefu.models.db import default_engine, unit_of_work
from kefu.models.enquiries import Enquiry, EnquiryEvent, EnquiryStatus
from kefu.models.enums import Channel, Role
from kefu.models.intake import IntakeOutbox
from kefu.models.notifications import OutboxMessage
from kefu.models.people import Staff
from kefu.models.policy import Policy
from kefu.tasks import enquiries
from kefu.worktime import WorkCalendar
from tests.support.clock import SHANGHAI

pytestmark = pytest.mark.usefixtures("kefu_database_url")

RECEIVED = dt.datetime(2026, 3, 10, 10, 0, tzinfo=SHANGHAI)  # a Tuesday, no holiday near


def people() -> tuple[int, int]:
    """An agent and their supervisor (with an address: the escalation mails them)."""
    with unit_of_work() as session:
        boss = Staff(name="赵主管", email="boss@example.com")
        boss.grant(Role.SUPERVISOR)
        agent = Staff(name="李客服", email="agent@example.com", supervisor=boss)
        agent.grant(Role.AGENT)
        session.add_all([boss, agent])
        session.flush()
        return agent.id, boss.id


def new_enquiry(policy: Policy, calendar: WorkCalendar, owner: int, **given: object) -> str:
    fields: dict[str, object] = {
        "name": "张三",
        "phone": "13812348000",
        "email": "zhang@example.com",
        "content": "请问我的货物什么时候到？",
        "channel": Channel.HOTLINE,
        "received_at": RECEIVED,
        "owner_id": owner,
        **given,
    }
    with unit_of_work() as session:
        enquiry, created = enquiries.record_enquiry(
            session,
            enquiries.NewEnquiry(**fields),
            policy,
            calendar,
            RECEIVED,  # type: ignore[arg-type]
        )
        assert created
        return enquiry.enquiry_no


def escalations_to(address: str) -> list[str]:
    with unit_of_work() as session:
        return list(
            session.scalars(
                select(OutboxMessage.subject).where(
                    OutboxMessage.recipient == address, OutboxMessage.message_type == "enquiry_escalation"
                )
            )
        )


def test_a_referred_enquiry_breaching_its_hour_escalates_to_the_supervisor_once(
    policy: Policy, calendar: WorkCalendar
) -> None:
    agent, _ = people()
    number = new_enquiry(policy, calendar, agent)
    with unit_of_work() as session:
        assert enquiries.get_enquiry(session, number).due_at == RECEIVED + dt.timedelta(minutes=10)
        referred_at = RECEIVED + dt.timedelta(minutes=4)
        enquiries.refer(session, number, agent, Role.OPERATIONS, policy, calendar, "take-0", referred_at)
    due = RECEIVED + dt.timedelta(hours=1)  # seed 002 §三: 需其他部门协助的1小时内给出解决方案

    with unit_of_work() as session:
        assert enquiries.get_enquiry(session, number).due_at == due
        assert enquiries.sweep(session, policy, calendar, due - dt.timedelta(seconds=1)) == []
    assert escalations_to("boss@example.com") == []

    with unit_of_work() as session:
        fired = enquiries.sweep(session, policy, calendar, due)
    assert f"{number}:cross_department_solution:breached" in fired
    assert f"{number}:cross_department_solution:escalated:supervisor" in fired
    assert escalations_to("boss@example.com") == [f"【升级】咨询{number}已超时未答复"]

    with unit_of_work() as session:  # a sweep a minute later repeats nothing
        assert enquiries.sweep(session, policy, calendar, due + dt.timedelta(minutes=1)) == []
        row = enquiries.get_enquiry(session, number)
        assert (row.breached_at, row.escalation_level) == (due, 1)
    assert len(escalations_to("boss@example.com")) == 1


def test_an_enquiry_answered_in_time_never_escalates(policy: Policy, calendar: WorkCalendar) -> None:
    agent, _ = people()
    number = new_enquiry(policy, calendar, agent)
    with unit_of_work() as session:
        answered = RECEIVED + dt.timedelta(minutes=9)
        enquiries.answer(session, number, agent, "您的货物已于今天上午发出，预计明天送达。", "take-0", answered)
        assert enquiries.sweep(session, policy, calendar, RECEIVED + dt.timedelta(hours=5)) == []
        row = enquiries.get_enquiry(session, number)
        assert row.answered_at is not None and row.answered_at <= row.due_at
    with unit_of_work() as session:
        reply = session.scalars(select(OutboxMessage).where(OutboxMessage.recipient == "zhang@example.com")).one()
    assert number in reply.subject and "预计明天送达" in reply.body_text


def test_an_enquiry_becomes_a_complaint_keeping_the_time_the_customer_first_spoke(
    policy: Policy, calendar: WorkCalendar
) -> None:
    agent, _ = people()
    number = new_enquiry(policy, calendar, agent, content="货物破损了，我要投诉！")
    later = RECEIVED + dt.timedelta(minutes=30)
    with unit_of_work() as session:
        case_no = convert(session, number, agent, policy, later)
    with unit_of_work() as session:
        complaint = session.scalars(select(Complaint).where(Complaint.case_no == case_no)).one()
        enquiry = enquiries.get_enquiry(session, number)
        assert complaint.received_at == RECEIVED  # the complaint clock starts when the customer first spoke
        assert complaint.content == "货物破损了，我要投诉！"
        assert complaint.owner_id == agent
        assert (enquiry.status, enquiry.complaint_id, enquiry.closed_at) == (
            EnquiryStatus.CONVERTED,
            complaint.id,
            later,
        )
        # the registration's outbox row: the intake's dispatcher starts its case run as for any complaint
        assert session.scalars(select(IntakeOutbox).where(IntakeOutbox.case_no == case_no)).one()
        # once is enough: a second conversion gives the same complaint
        assert convert(session, number, agent, policy, later) == case_no
        assert session.scalar(select(func.count()).select_from(Complaint)) == 1


def test_the_steps_complaint_choice_is_registered_by_the_dispatchers_pass(
    policy: Policy, calendar: WorkCalendar
) -> None:
    agent, _ = people()
    number = new_enquiry(policy, calendar, agent, content="司机态度恶劣，我要投诉")
    with unit_of_work() as session:  # what the take step does on 转为投诉
        enquiries.request_conversion(session, number, agent, RECEIVED + dt.timedelta(minutes=3))
        assert enquiries.get_enquiry(session, number).finished  # the run asks nothing more
    made = convert_enquiries(default_engine())
    assert convert_enquiries(default_engine()) == []  # once
    with unit_of_work() as session:
        [case_no] = made
        complaint = session.scalars(select(Complaint).where(Complaint.case_no == case_no)).one()
        assert complaint.received_at == RECEIVED
        assert enquiries.get_enquiry(session, number).status is EnquiryStatus.CONVERTED


def counts() -> tuple[int, int, int]:
    with unit_of_work() as session:
        return (
            session.scalar(select(func.count()).select_from(Enquiry)) or 0,
            session.scalar(select(func.count()).select_from(EnquiryEvent)) or 0,
            session.scalar(select(func.count()).select_from(OutboxMessage)) or 0,
        )


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("content", "   ", "请填写咨询内容"),
        ("phone", "call me", "请填写正确的联系电话"),
        ("name", "", "请填写姓名"),
        ("email", "not-an-address", "电子邮箱格式不正确"),
        ("received_at", RECEIVED + dt.timedelta(days=1), "受理时间不能晚于现在"),
    ],
)
def test_a_bad_enquiry_is_refused_and_records_nothing(
    policy: Policy, calendar: WorkCalendar, field: str, value: object, says: str
) -> None:
    agent, _ = people()
    with pytest.raises(enquiries.EnquiryRefused, match=says):
        new_enquiry(policy, calendar, agent, **{field: value})
    assert counts() == (0, 0, 0)


def test_bad_answers_are_refused_and_change_nothing(policy: Policy, calendar: WorkCalendar) -> None:
    agent, _ = people()
    number = new_enquiry(policy, calendar, agent)
    before = counts()
    later = RECEIVED + dt.timedelta(minutes=2)
    with pytest.raises(enquiries.EnquiryRefused, match="措辞未通过检查"), unit_of_work() as session:
        enquiries.answer(session, number, agent, "我不知道，你自己去问物流公司。", "take-0", later)
    with pytest.raises(enquiries.EnquiryRefused, match="咨询只能转给"), unit_of_work() as session:
        enquiries.refer(session, number, agent, Role.ADMIN, policy, calendar, "take-0", later)
    with pytest.raises(enquiries.EnquiryRefused, match="尚未答复"), unit_of_work() as session:
        supervisor = session.scalars(select(Staff).where(Staff.name == "赵主管")).one().id
        enquiries.mark_wrong(session, number, supervisor, "答复有误", later)
    assert counts() == before
    with unit_of_work() as session:
        row = enquiries.get_enquiry(session, number)
        assert (row.status, row.reply, row.department, row.due_at) == (
            EnquiryStatus.OPEN,
            None,
            None,
            RECEIVED + dt.timedelta(minutes=10),
        )


def test_a_supervisor_marking_answers_wrong_lowers_the_agents_accuracy(policy: Policy, calendar: WorkCalendar) -> None:
    agent, boss = people()
    numbers = [new_enquiry(policy, calendar, agent, content=f"问题{n}") for n in range(4)]
    with unit_of_work() as session:
        for n, number in enumerate(numbers):
            at = RECEIVED + dt.timedelta(minutes=n + 1)
            enquiries.answer(session, number, agent, "您的货物已于今天上午发出。", "take-0", at)
    with pytest.raises(enquiries.EnquiryRefused, match="只有主管"), unit_of_work() as session:
        enquiries.mark_wrong(session, numbers[0], agent, "自己判定", RECEIVED + dt.timedelta(hours=1))
    with unit_of_work() as session:
        enquiries.mark_wrong(session, numbers[0], boss, "运费标准答错了", RECEIVED + dt.timedelta(hours=1))
    with unit_of_work() as session:
        figures = enquiries.answer_accuracy(session, 2026, 3, policy.timezone)
        assert enquiries.answer_accuracy(session, 2026, 4, policy.timezone) == {}
    assert (figures[agent].answered, figures[agent].wrong, figures[agent].accuracy) == (4, 1, 0.75)


def test_through_the_entrance_the_signed_in_person_answers_an_enquiry_step_only_with_the_role(
    policy: Policy, calendar: WorkCalendar
) -> None:
    from kefu.desk.proxy import Refusal
    from kefu.desk.steps import enquiry_answer_as

    agent, _ = people()
    with unit_of_work() as session:
        finance = Staff(name="财务")
        finance.grant(Role.FINANCE)
        session.add(finance)
        session.flush()
        finance_id = finance.id
    number = new_enquiry(policy, calendar, agent)
    with unit_of_work() as session:  # what the run records just before it suspends
        enquiry = enquiries.get_enquiry(session, number)
        enquiries.record_event(session, enquiry, "waiting", "take-0", "system", RECEIVED, step="take", flow_run_id="r1")
    engine = default_engine()
    answer = {"handling": "answer", "reply": "明天送达。", "actor_staff_id": 999}
    assert enquiry_answer_as(engine, agent, number, "r1", answer)["actor_staff_id"] == agent  # the signed-in person
    with pytest.raises(Refusal, match="本步骤须由客服人员、主管、高层管理人员完成"):
        enquiry_answer_as(engine, finance_id, number, "r1", answer)
    with pytest.raises(Refusal, match="没有等待"):
        enquiry_answer_as(engine, agent, number, "another-run", answer)
    with unit_of_work() as session:  # the department step: the departments may answer it too
        enquiry = enquiries.get_enquiry(session, number)
        enquiries.record_event(session, enquiry, "step_completed", "take-0", f"staff:{agent}", RECEIVED)
        enquiries.record_event(
            session, enquiry, "waiting", "department-answer-0", "system", RECEIVED, step="department_answer",
            flow_run_id="r1",
        )  # fmt: skip
    assert enquiry_answer_as(engine, finance_id, number, "r1", {"solution": "x"})["actor_staff_id"] == finance_id
