"""Whole cases through real suspend/resume: a served runner, a real Prefect server, a real database."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from sqlalchemy import select

from kefu.cli import UsageError
from kefu.cli.step import submit
from kefu.deployments.names import COMPLAINT_CASE_DEPLOYMENT
from kefu.models.complaints import CaseEvent, Complaint
from kefu.models.db import unit_of_work
from kefu.models.enums import Channel, ComplaintStatus, CustomerTier, MilestoneId, Role, Severity
from kefu.models.people import Customer, Staff
from kefu.tasks.casework import waiting_steps

pytestmark = pytest.mark.usefixtures("case_runner")
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def new_case(case_no: str, content: str) -> int:
    with unit_of_work() as session:
        agent = Staff(name="客服")
        agent.grant(Role.AGENT)
        session.add(agent)
        session.add(
            Complaint(
                case_no=case_no,
                channel=Channel.HOTLINE,
                received_at=dt.datetime.now(SHANGHAI),
                severity=Severity.GENERAL,
                status=ComplaintStatus.REGISTERED,
                customer=Customer(name="客户", tier=CustomerTier.GENERAL),
                content=content,
            )
        )
        session.flush()
        return agent.id


def start_run(case_no: str) -> Any:
    from prefect.deployments import run_deployment

    return run_deployment(COMPLAINT_CASE_DEPLOYMENT, parameters={"case_no": case_no}, timeout=0)


def wait_step(case_no: str, step: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with unit_of_work() as session:
            if any(r["step"] == step for r in waiting_steps(session, case_no)):
                return
        time.sleep(0.3)  # the runner is another process: polling the DB is the only signal
    raise AssertionError(f"{case_no} never waited on {step}")


def do(case_no: str, step: str, **data: Any) -> None:
    wait_step(case_no, step)
    submit(case_no, step, data)


def wait_final(run_id: Any, timeout: float = 60) -> str:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            state = client.read_flow_run(run_id).state
            if state is not None and state.is_final():
                return str(state.type.value)
            time.sleep(0.3)
    raise AssertionError("run never finished")


def actions(case_no: str) -> list[tuple[str, str]]:
    with unit_of_work() as session:
        complaint = session.scalars(select(Complaint).where(Complaint.case_no == case_no)).one()
        rows = session.scalars(select(CaseEvent).where(CaseEvent.complaint_id == complaint.id).order_by(CaseEvent.id))
        return [(e.action, str(e.data.get("key"))) for e in rows]


def test_a_general_complaint_walks_every_step_with_a_rejection_and_a_reopen_and_repeats_nothing() -> None:
    case_no = "KF-LIFE-0001"
    staff = new_case(case_no, "快递晚到两天")
    run = start_run(case_no)
    do(case_no, "classify", actor_staff_id=staff)
    with pytest.raises(UsageError, match="summary"):
        submit(case_no, "first_contact", {"actor_staff_id": staff, "summary": ""})
    do(case_no, "first_contact", actor_staff_id=staff, summary="致歉并承诺")
    do(case_no, "investigate", actor_staff_id=staff, departments=["运营部"], findings="中转延误", done=False)
    do(case_no, "investigate", actor_staff_id=staff, departments=["技术部"], findings="系统排班错误")
    promised = (dt.datetime.now(SHANGHAI) + dt.timedelta(days=2)).isoformat()
    do(case_no, "propose", actor_staff_id=staff, solution="退运费", promised_completion_at=promised)
    do(case_no, "approve", actor_staff_id=staff, accepted=False, comment="不够")
    do(case_no, "propose", actor_staff_id=staff, solution="退运费并赔偿", promised_completion_at=promised)
    do(case_no, "approve", actor_staff_id=staff, accepted=True)
    do(case_no, "resolve", actor_staff_id=staff, summary="已赔付")
    do(case_no, "callback", actor_staff_id=staff, satisfaction=2, comment="仍不满意")
    do(case_no, "investigate", actor_staff_id=staff, departments=["客服部"], findings="复查")
    do(case_no, "propose", actor_staff_id=staff, solution="加赔", promised_completion_at=promised)
    do(case_no, "approve", actor_staff_id=staff, accepted=True)
    do(case_no, "resolve", actor_staff_id=staff, summary="已加赔")
    do(case_no, "callback", actor_staff_id=staff, satisfaction=5)
    assert wait_final(run.id) == "COMPLETED"

    events = actions(case_no)
    assert len(events) == len(set(events)), "a resumed run repeated a side effect"
    with unit_of_work() as session:
        complaint = session.scalars(select(Complaint).where(Complaint.case_no == case_no)).one()
        assert complaint.status is ComplaintStatus.CLOSED
        assert complaint.reopen_count == 1
        assert complaint.owner_id == staff
        met = {m.milestone: m.met_at for m in complaint.milestones}
        assert met[MilestoneId.FIRST_CONTACT] and met[MilestoneId.SOLUTION] and met[MilestoneId.RESOLUTION]
        assert met[MilestoneId.CALLBACK]
    assert [k for a, k in events if a == "propose"] == ["propose-0", "propose-1", "propose-2"]
