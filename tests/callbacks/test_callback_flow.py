"""A routine callback end to end: the daily flow finds the customer due, starts the customer's callback run on a
real Prefect server and Kefu worker, the run mails the customer (邮件回访) and waits for the result; a wrong answer
is refused and asked again; the answer finding a problem becomes a complaint whose receipt time is the callback's."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from sqlalchemy import select

from kefu.flows.routine_callbacks import routine_callbacks
from kefu.intake.dispatcher import register_callback_complaints
from kefu.models.complaints import Complaint
from kefu.models.contacts import ContactStepEvent, RoutineCallback
from kefu.models.db import default_engine, unit_of_work
from kefu.models.enums import Channel, Role
from kefu.models.notifications import OutboxMessage
from kefu.models.people import WEEKDAYS, CommunicationRecord, Customer, Staff
from kefu.worktime import current_calendar
from tests.support.clock import SHANGHAI
from tests.support.prefect import prefect_post, wait_suspended_at

pytestmark = pytest.mark.usefixtures("callback_worker")


def next_working_morning() -> dt.datetime:
    calendar = current_calendar()
    day = dt.datetime.now(SHANGHAI).date()
    while not calendar.is_working_day(day):
        day += dt.timedelta(days=1)
    return dt.datetime(day.year, day.month, day.day, 9, 30, tzinfo=SHANGHAI)


def wait_run_state(prefect_server: str, run_id: str, name: str, timeout: float = 90) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = httpx.get(f"{prefect_server}/flow_runs/{run_id}", timeout=10).json()["state"] or {}
        if state.get("name") == name:
            return
        time.sleep(0.3)  # the worker is another process: the run's state is the only signal
    raise AssertionError(f"run {run_id} never reached {name}; last state {state}")


def test_a_routine_callback_finds_a_problem_that_becomes_a_complaint_keeping_the_callbacks_time(
    prefect_server: str,
) -> None:
    morning = next_working_morning()
    with unit_of_work() as session:
        agent = Staff(name="回访客服", on_duty=list(WEEKDAYS))
        agent.grant(Role.AGENT)
        customer = Customer(
            code="CBFLOW-001",
            name="东方物流客户",
            phones=["13912345678"],
            email="cbflow@example.com",
            created_at=morning - dt.timedelta(days=200),  # never called back: due a quarter after registration
        )
        session.add_all([agent, customer])
        session.flush()
        agent_id, customer_id = agent.id, customer.id

    assert routine_callbacks(at=morning)["started"] >= 1
    with unit_of_work() as session:
        callback = session.scalars(select(RoutineCallback).where(RoutineCallback.customer_id == customer_id)).one()
        run_id, callback_id = str(callback.flow_run_id), callback.id
        assert callback.channel == "mail" and callback.owner_id is not None
        owner_id = callback.owner_id
    assert routine_callbacks(at=morning)["started"] == 0  # a re-run starts nothing twice

    wait_suspended_at(prefect_server, run_id, "routine-callback-0")
    with unit_of_work() as session:  # 邮件回访: the callback mail was queued for the customer, once
        mails = session.scalars(
            select(OutboxMessage).where(OutboxMessage.dedupe_key == f"routine-callback:{callback_id}")
        ).all()
        assert [m.recipient for m in mails] == ["cbflow@example.com"]

    # A complaint without its description is refused with the reason, and the step is asked again.
    answer = {"actor_staff_id": owner_id, "satisfaction": 2, "summary": "客户回信", "problem": "登记为投诉"}
    prefect_post(f"{prefect_server}/flow_runs/{run_id}/resume", {"run_input": answer})
    wait_suspended_at(prefect_server, run_id, "routine-callback-1")
    with unit_of_work() as session:
        refused = session.scalars(
            select(ContactStepEvent).where(
                ContactStepEvent.subject == f"callback:{callback_id}", ContactStepEvent.outcome == "refused"
            )
        ).one()
        assert refused.reason == "登记投诉、跟进事项或意见反馈时须填写问题描述"

    spoke_at = (dt.datetime.now(SHANGHAI) - dt.timedelta(minutes=30)).replace(microsecond=0)
    answer |= {
        "problem_text": "上周两批货都晚到了两天，仓库催了三次没人回",
        "remarks": "语气不满",
        "contacted_at": spoke_at.isoformat(),
    }
    prefect_post(f"{prefect_server}/flow_runs/{run_id}/resume", {"run_input": answer})
    wait_run_state(prefect_server, run_id, "Completed")
    with unit_of_work() as session:  # the problem waits for the intake dispatcher's pass
        assert session.get_one(RoutineCallback, callback_id).complaint_id is None
    [case_no] = register_callback_complaints(default_engine())  # the dispatcher's pass
    assert register_callback_complaints(default_engine()) == []  # once

    with unit_of_work() as session:
        callback = session.get_one(RoutineCallback, callback_id)
        record = session.get_one(CommunicationRecord, callback.record_id)
        assert (record.kind, record.satisfaction, record.remarks, record.channel) == (
            "routine_callback",
            2,
            "语气不满",
            "email",  # the callback went by mail: stored in the records' one vocabulary
        )
        assert record.at == spoke_at and record.responsible_staff_id == owner_id
        complaint = session.get_one(Complaint, callback.complaint_id)
        assert complaint.case_no == case_no
        assert complaint.received_at == spoke_at  # the complaint clock starts when the customer spoke
        assert complaint.content.startswith("上周两批货") and complaint.channel is Channel.EMAIL
        assert complaint.owner_id == owner_id and complaint.customer_id == customer_id
        assert callback.status == "done" and record.complaint_id == complaint.id
        registered = session.scalars(
            select(CommunicationRecord).where(
                CommunicationRecord.complaint_id == complaint.id, CommunicationRecord.id != record.id
            )
        ).one()  # the intake's own record of the complaint, typed as one
        assert registered.kind == "complaint" and registered.at == spoke_at
    assert agent_id == owner_id  # the only agent on duty


def test_the_monthly_quality_check_asks_the_supervisor_and_a_flagged_record_goes_back_to_the_agent(
    prefect_server: str,
) -> None:
    from kefu.flows.quality_check import quality_check
    from kefu.models.contacts import QualityReview
    from kefu.tasks.quality import quality_scores

    with unit_of_work() as session:
        boss = Staff(name="质检主管", email="qc-boss@example.com")
        boss.grant(Role.SUPERVISOR)
        session.add(boss)
        session.flush()
        agent = Staff(name="质检客服", email="qc-agent@example.com", supervisor_id=boss.id)
        agent.grant(Role.AGENT)
        customer = Customer(code="QCFLOW-001", name="南方客户", phones=["13700001111"])
        session.add_all([agent, customer])
        session.flush()
        session.add(
            CommunicationRecord(
                customer_id=customer.id,
                at=dt.datetime(2025, 3, 12, 10, tzinfo=SHANGHAI),  # a month no other test uses
                channel="phone",
                summary="答复运费",
                responsible_staff_id=agent.id,
            )
        )
        boss_id, agent_id = boss.id, agent.id

    assert quality_check(year=2025, month=3)["drawn"] == 1
    with unit_of_work() as session:
        review = session.scalars(select(QualityReview).where(QualityReview.agent_id == agent_id)).one()
        run_id, review_id = str(review.flow_run_id), review.id
        assert review.reviewer_id == boss_id

    wait_suspended_at(prefect_server, run_id, "quality-score-0")
    scores = {"accuracy": 2, "courtesy": 5, "completeness": 4, "standard_phrases": 4}
    prefect_post(  # the agent cannot score their own record: refused, asked again
        f"{prefect_server}/flow_runs/{run_id}/resume", {"run_input": {"actor_staff_id": agent_id, **scores}}
    )
    wait_suspended_at(prefect_server, run_id, "quality-score-1")
    answer = {"actor_staff_id": boss_id, **scores, "reason": "运费标准答错"}
    prefect_post(f"{prefect_server}/flow_runs/{run_id}/resume", {"run_input": answer})
    wait_run_state(prefect_server, run_id, "Completed")

    with unit_of_work() as session:
        review = session.get_one(QualityReview, review_id)
        assert review.flagged and review.reason == "运费标准答错" and review.reviewer_id == boss_id
        [mail] = session.scalars(
            select(OutboxMessage).where(OutboxMessage.dedupe_key == f"quality-flagged:{review_id}")
        )
        assert mail.recipient == "qc-agent@example.com" and mail.internal and "运费标准答错" in mail.body_text
        assert quality_scores(session, 2025, 3)[agent_id].means["accuracy"] == 2.0
