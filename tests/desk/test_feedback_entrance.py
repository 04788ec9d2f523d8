"""A feedback run's department step answered in the Prefect UI through the entrance: the entrance tells it by the
run's ``feedback_no`` parameter, refuses another department (the run keeps waiting, nothing recorded) and forwards
the routed department's answer with the signed-in person as the one who answered."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import httpx
import pytest
from prefect.states import Suspended
from sqlalchemy import Engine

from kefu.desk.app import create_app
from kefu.engine import prefect_private
from kefu.engine.connection import PrefectAuth
from kefu.flows.feedback import DepartmentAnswerInput
from kefu.models import Role
from kefu.models.db import unit_of_work
from kefu.models.enquiries import FeedbackKind
from kefu.models.enums import Channel
from kefu.models.policy import current_policy
from kefu.tasks import feedback
from kefu.worktime import calendar_for
from tests.support.desk import PASSWORD, GuardedPrefect, add_person, desk_client, entrance_settings, run_state

pytestmark = pytest.mark.slow


def waiting_feedback_run(prefect: GuardedPrefect, engine: Engine) -> tuple[str, str]:
    """A suggestion routed to 运营部 and its run suspended on the department step as the step kit leaves it."""
    policy, now = current_policy(), dt.datetime.now(dt.UTC)
    new = feedback.NewFeedback(kind=FeedbackKind.SUGGESTION, name="张三", phone="13812348000",
                               content="希望周末也能提货", department="运营部", channel=Channel.HOTLINE,
                               received_at=now)  # fmt: skip
    key = "department-answer"
    keyset = prefect_private.suspend_keys(Suspended(timeout_seconds=None, pause_key=key))
    with unit_of_work(engine) as session:
        number = feedback.record_feedback(session, new, policy, calendar_for(policy), now).feedback_no
    with httpx.Client(base_url=prefect.api_url, auth=PrefectAuth(prefect.auth_string), timeout=30) as api:
        flow = api.post("/flows/", json={"name": "feedback-entrance-test"}).json()
        run = api.post("/flow_runs/", json={
            "flow_id": flow["id"],
            "parameters": {"feedback_no": number},
            "state": {"type": "PAUSED", "name": "Suspended", "state_details": {
                "pause_key": key, "run_input_keyset": keyset, "pause_reschedule": False}},
        })  # fmt: skip
        assert run.status_code == 201, run.text
        run_id = str(run.json()["id"])
        schema = prefect_private.input_schema(DepartmentAnswerInput)
        saved = api.post(f"/flow_runs/{run_id}/input", json={"key": keyset["schema"], "value": json.dumps(schema)})
        assert saved.status_code == 201, saved.text
    with unit_of_work(engine) as session:
        row = feedback.get_feedback(session, number)
        feedback.record_event(session, row, "waiting", key, "system", now, step="department_answer", flow_run_id=run_id)
    return number, run_id


async def test_the_routed_department_answers_a_feedback_step_through_the_entrance_and_another_is_refused(
    guarded_prefect: GuardedPrefect, engine: Engine, tmp_path: Path
) -> None:
    ops = add_person(engine, "wang.yunying", Role.OPERATIONS)
    add_person(engine, "qian.shichang", Role.MARKET)
    _, run_id = waiting_feedback_run(guarded_prefect, engine)
    app = create_app(entrance_settings(tmp_path, guarded_prefect), engine)
    given = {"solution": "周六增开提货", "reply": "自下月起周六上午可以提货。", "verdict": "合理（报管理层）"}
    answer = {"run_input": {**given, "actor_staff_id": 999999}}  # the form's staff id: replaced by the signed-in one

    async def resume(login: str) -> httpx.Response:
        async with desk_client(app) as http:
            signed = await http.post("/signin", data={"login": login, "password": PASSWORD, "next": "/"})
            assert signed.status_code == 303, signed.text
            token = (await http.get("/api/csrf-token", params={"client": login})).json()["token"]
            headers = {"Prefect-Csrf-Token": token, "Prefect-Csrf-Client": login}
            return await http.post(f"/api/flow_runs/{run_id}/resume", json=answer, headers=headers)

    refused = await resume("qian.shichang")
    assert refused.status_code == 403 and "运营部、主管" in refused.json()["detail"]
    still = run_state(guarded_prefect, run_id)
    assert still["type"] == "PAUSED" and still["answers"] == []

    accepted = await resume("wang.yunying")
    assert accepted.status_code in (200, 201) and accepted.json()["status"] == "ACCEPT", accepted.text
    after = run_state(guarded_prefect, run_id)
    assert [a["actor_staff_id"] for a in after["answers"]] == [ops]
    assert after["answers"][0]["verdict"] == "合理（报管理层）"
