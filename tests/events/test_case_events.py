"""A case speaks Prefect's event language: operators see its facts in the Event Feed and automate on them."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import uuid
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session

from kefu.engine.events import case_work
from kefu.flows.case_deadlines import sweep_deadlines
from kefu.models.enums import ComplaintStatus
from kefu.models.people import Staff
from kefu.models.policy import MilestoneId, Policy
from kefu.tasks.casework import classify_case, close_case, complete_step, register_case, reopen_case
from kefu.worktime import WorkCalendar
from tests.support.clock import SHANGHAI
from tests.support.factories import MakeComplaint

RECEIVED = dt.datetime(2026, 11, 2, 10, 0, tzinfo=SHANGHAI)  # Monday; a major case's task force is due at 11:00


README = Path(__file__).parents[2] / "README.md"


def readme_automation(name: str) -> Any:
    """The automation the README shows (a major complaint breached → notify the duty manager), its trigger as
    written there; its action a ``do-nothing`` the test can watch (the README's needs a notification block)."""
    from prefect.events.actions import DoNothing
    from prefect.events.schemas.automations import AutomationCore

    [written] = re.findall(r"```yaml\n(name: .*?)```", README.read_text(encoding="utf-8"), re.S)
    automation = AutomationCore.model_validate({**yaml.safe_load(written), "actions": [], "name": name})
    assert automation.trigger.expect == {"kefu.case.milestone.breached"}  # type: ignore[union-attr]
    return automation.model_copy(update={"actions": [DoNothing()]})


async def test_a_major_case_breaching_its_task_force_deadline_fires_an_operators_automation(
    prefect_server: str,
    kefu_database_url: str,
    db: Session,
    policy: Policy,
    calendar: WorkCalendar,
    ladder: dict[str, Staff],
    make_complaint: MakeComplaint,
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.events.clients import get_events_subscriber
    from prefect.events.filters import EventFilter, EventNameFilter

    complaint = make_complaint("搬运时受伤", received_at=RECEIVED)  # the rules propose 重大 (major)
    case_no = complaint.case_no = f"TS-E-{uuid.uuid4().hex[:10]}"  # unique on the session's Prefect server
    db.commit()
    async with get_client() as client:
        automation_id = await client.create_automation(readme_automation(f"kefu-major-breach-{case_no}"))
    seen: list[Any] = []
    try:
        wanted = EventFilter(event=EventNameFilter(prefix=["kefu.case.", "prefect.automation.action."]))
        async with get_events_subscriber(filter=wanted) as events:
            with case_work() as session:  # registration and classification, as the case flow does them
                register_case(session, case_no, policy, calendar, owner_id=ladder["owner"].id, now=RECEIVED)
                classify_case(
                    session, case_no, policy, calendar, severity=None, actor="staff:1", reason=None, now=RECEIVED
                )
            fired = sweep_deadlines(RECEIVED + dt.timedelta(hours=2))  # the fake clock: 12:00, an hour late
            assert f"{case_no}:task_force:escalated:supervisor" in fired

            async with asyncio.timeout(30):
                async for event in events:
                    seen.append(event)
                    if event.event == "prefect.automation.action.executed" and (
                        event.resource.id == f"prefect.automation.{automation_id}"
                    ):
                        break
    finally:
        async with get_client() as client:
            await client.delete_automation(automation_id)

    mine = [e for e in seen if e.resource.id == f"kefu.case.{case_no}"]
    assert [e.event for e in mine] == [
        "kefu.case.registered",
        "kefu.case.milestone.breached",
        "kefu.case.escalated",
    ]
    breach = mine[1]
    assert dict(breach.resource) == {
        "prefect.resource.id": f"kefu.case.{case_no}",
        "prefect.resource.name": case_no,
        "kefu.severity": "major",
        "kefu.milestone": "task_force",
        "kefu.due_at": "2026-11-02T11:00:00+08:00",
    }
    assert mine[2].resource["kefu.escalation.to"] == "supervisor"
    executed = seen[-1]
    triggering = [r.id for r in executed.related if r.role == "triggering-event"]
    assert triggering == [f"prefect.event.{breach.id}"]  # it fired on this case's breach
    # No personal data: neither the complaint's words nor the customer's or staff's names reach Prefect.
    for event in mine:
        text = event.model_dump_json()
        assert "搬运" not in text and "客户" not in text and "经理" not in text


FACTS = ("registered", "milestone.warning", "step.completed", "reopened", "closed")


async def test_a_case_s_warning_completed_step_reopen_and_close_reach_the_event_feed(
    prefect_server: str,
    kefu_database_url: str,
    db: Session,
    policy: Policy,
    calendar: WorkCalendar,
    ladder: dict[str, Staff],
    make_complaint: MakeComplaint,
) -> None:
    from prefect.events.clients import get_events_subscriber
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    complaint = make_complaint("搬运时受伤", received_at=RECEIVED)  # major: the task force is due at 11:00
    case_no = complaint.case_no = f"TS-E-{uuid.uuid4().hex[:10]}"
    db.commit()
    seen: list[Any] = []
    wanted = EventFilter(
        event=EventNameFilter(prefix=["kefu.case."]), resource=EventResourceFilter(id=[f"kefu.case.{case_no}"])
    )
    async with get_events_subscriber(filter=wanted) as events:
        with case_work() as session:
            register_case(session, case_no, policy, calendar, owner_id=ladder["owner"].id, now=RECEIVED)
            classify_case(session, case_no, policy, calendar, severity=None, actor="staff:1", reason=None, now=RECEIVED)
        warned = sweep_deadlines(RECEIVED + dt.timedelta(minutes=50))  # past 80 % of the hour, before it ends
        assert f"{case_no}:task_force:warning" in warned
        done = RECEIVED + dt.timedelta(minutes=55)
        with case_work() as session:
            meets = (MilestoneId.TASK_FORCE,)
            status = ComplaintStatus.INVESTIGATING
            complete_step(session, case_no, "task_force", "task-force-1", "staff:1", done, meets=meets, status=status)
        with case_work() as session:
            reopen_case(session, case_no, 1, done + dt.timedelta(days=3))
        with case_work() as session:
            close_case(session, case_no, done + dt.timedelta(days=5))
        expected = {f"kefu.case.{fact}" for fact in FACTS}
        with contextlib.suppress(TimeoutError):  # a missing fact shows in the assertion below
            async with asyncio.timeout(30):  # sent in the background: their order on the wire is not promised
                async for event in events:
                    seen.append(event)
                    if {e.event for e in seen} >= expected:
                        break

    assert sorted(e.event for e in seen) == sorted(expected)  # each fact once
    by_fact = {e.event.removeprefix("kefu.case."): e for e in seen}
    warning, completed, reopened, closed = (by_fact[fact] for fact in FACTS[1:])
    assert warning.resource["kefu.milestone"] == "task_force"
    assert warning.resource["kefu.due_at"] == "2026-11-02T11:00:00+08:00"
    assert completed.resource["kefu.step"] == "task_force" and completed.resource["kefu.milestone"] == "task_force"
    assert completed.resource["kefu.status"] == "investigating" and completed.resource["kefu.severity"] == "major"
    assert reopened.resource["kefu.reopen"] == "1" and closed.resource["kefu.reopen"] == "1"
    for event in seen:
        text = event.model_dump_json()
        assert "搬运" not in text and "客户" not in text and "经理" not in text
