"""``kefu`` as users run it (the console script, a clean environment without ``PREFECT_API_URL``) reaches the
running Prefect server through Kefu's settings; answers naming unknown staff are refused, never a failed case;
people read Shanghai time."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from kefu.flows.complaint_case import CONTACT, CaseRecord
from kefu.models.complaints import CaseEvent, Complaint
from kefu.models.db import unit_of_work
from kefu.models.enums import Role
from kefu.models.people import Staff
from kefu.models.policy import current_policy
from kefu.tasks.casework import StepRejected, check_answer_staff, register_case, waiting_steps
from kefu.worktime import WorkCalendar
from tests.casework.test_case_lifecycle import actions, do, new_case, new_staff, start_run, wait_final, wait_step
from tests.support.prefect import prefect_post, wait_suspended_at
from tests.support.processes import free_port

pytestmark = pytest.mark.usefixtures("case_worker")

KEFU = str(Path(sys.executable).parent / "kefu")
SHANGHAI_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d \+08:00")


def kefu(home: Path, api_url: str, db_url: str, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The console script as a person runs it: only PATH, HOME and Kefu's own settings in its environment."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "KEFU_PREFECT_API_URL": api_url,
        "KEFU_DATABASE_URL": db_url,
    }
    return subprocess.run([KEFU, *argv], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def run_state(run_id: Any) -> tuple[str, str | None]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run_id).state
        assert state is not None
        return state.name, state.state_details.pause_key


def wait_refused(case_no: str, key: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while ("step_refused", key) not in actions(case_no):
        assert time.monotonic() < deadline, f"the answer under {key} was never refused"
        time.sleep(0.2)


def test_kefu_step_and_case_reach_the_running_server_through_kefu_settings_and_show_shanghai_time(
    prefect_server: str, case_db_url: str, tmp_path: Path
) -> None:
    case_no = "KF-CLI-0001"
    staff = new_case(case_no, "快递晚到两天")
    run = start_run(case_no)
    wait_step(case_no, "classify")

    listing = kefu(tmp_path, prefect_server, case_db_url, "step", "list", "--case", case_no)
    assert listing.returncode == 0, listing.stderr
    assert case_no in listing.stdout and "classify" in listing.stdout
    assert "first_contact due" in listing.stdout and SHANGHAI_TIME.search(listing.stdout)
    assert "+00:00" not in listing.stdout

    data = json.dumps({"actor_staff_id": staff})
    submitted = kefu(tmp_path, prefect_server, case_db_url, "step", "submit", case_no, "classify", "--data", data)
    assert submitted.returncode == 0, submitted.stderr
    wait_step(case_no, "first_contact")  # the running server's run got the answer, not a temporary server's

    shown = kefu(tmp_path, prefect_server, case_db_url, "case", "show", case_no)
    assert shown.returncode == 0, shown.stderr
    assert "classify" in shown.stdout and "+00:00" not in shown.stdout
    assert re.search(r"first_contact\s+due " + SHANGHAI_TIME.pattern, shown.stdout)
    assert re.search(SHANGHAI_TIME.pattern + r"\s+classify ", shown.stdout)  # the timeline too

    prefect_post(f"{prefect_server}/flow_runs/{run.id}/set_state", {"state": {"type": "CANCELLING"}, "force": True})
    assert wait_final(run.id) == "CANCELLED"


def test_kefu_step_submit_with_the_prefect_server_down_says_so_in_one_line_and_starts_no_server(
    case_db_url: str, tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/api"
    started = time.monotonic()
    data = json.dumps({"actor_staff_id": 1})
    result = kefu(tmp_path, closed, case_db_url, "step", "submit", "KF-CLI-NONE", "classify", "--data", data)
    assert result.returncode == 1
    assert result.stderr == (
        f"kefu step submit: the Prefect server at {closed} does not answer; is 'make up' running?\n"
    )
    assert result.stdout == ""
    # No temporary server: Prefect was not even imported (it would have made its home in HOME), and a temporary
    # server takes longer than this to start.
    assert not (tmp_path / ".prefect").exists()
    assert time.monotonic() - started < 30


def test_an_unknown_staff_id_from_the_ui_is_refused_and_the_run_waits_again_on_the_next_round(
    prefect_server: str,
) -> None:
    case_no = "KF-CLI-0002"
    staff = new_case(case_no, "快递晚到两天")
    run = start_run(case_no)
    do(case_no, "classify", actor_staff_id=staff)
    wait_step(case_no, "first_contact")
    wait_suspended_at(prefect_server, run.id, "first-contact-0")
    # What the UI's form does: the server checks only the JSON schema, an unknown id passes it.
    resumed = prefect_post(
        f"{prefect_server}/flow_runs/{run.id}/resume",
        {"run_input": {"actor_staff_id": 999, "summary": "致歉"}},
    )
    assert resumed.status_code == 201, resumed.text
    wait_refused(case_no, "first-contact-0")
    deadline = time.monotonic() + 30
    while run_state(run.id) != ("Suspended", "first-contact-1"):
        assert time.monotonic() < deadline, f"the run is {run_state(run.id)}, not waiting on the next round"
        time.sleep(0.2)
    assert ("first_contact", "first-contact-0") not in actions(case_no)  # nothing recorded but the refusal
    with unit_of_work() as session:
        complaint = session.scalars(select(Complaint).where(Complaint.case_no == case_no)).one()
        assert not any(m.met_at for m in complaint.milestones)
        waiting = [(r["step"], r["key"]) for r in waiting_steps(session, case_no)]
        assert waiting == [("first_contact", "first-contact-1")]
        refusal = session.scalars(
            select(CaseEvent).where(CaseEvent.complaint_id == complaint.id, CaseEvent.action == "step_refused")
        ).one()
        assert "999" in refusal.data["reason"] and "不存在" in refusal.data["reason"]
    do(case_no, "first_contact", actor_staff_id=staff, summary="致歉并承诺")
    wait_step(case_no, "investigate")
    prefect_post(f"{prefect_server}/flow_runs/{run.id}/set_state", {"state": {"type": "CANCELLING"}, "force": True})
    assert wait_final(run.id) == "CANCELLED"


def test_kefu_step_submit_refuses_unknown_staff_and_a_leader_who_is_not_a_senior_manager_recording_nothing(
    prefect_server: str, case_db_url: str, tmp_path: Path
) -> None:
    case_no = "KF-CLI-0003"
    staff = new_case(case_no, "搬运时受伤")  # major: a task force first
    run = start_run(case_no)
    do(case_no, "classify", actor_staff_id=staff)
    wait_step(case_no, "task_force")
    before = actions(case_no)
    leader, gone = new_staff(Role.SENIOR_MANAGER), new_staff(Role.AGENT, active=False)

    def submit(**data: Any) -> subprocess.CompletedProcess[str]:
        argv = ("step", "submit", case_no, "task_force", "--data", json.dumps(data))
        return kefu(tmp_path, prefect_server, case_db_url, *argv)

    unknown = submit(actor_staff_id=999, leader_staff_id=leader)
    assert unknown.returncode == 2 and "999" in unknown.stderr and "unknown or inactive" in unknown.stderr
    not_senior = submit(actor_staff_id=staff, leader_staff_id=staff)
    assert not_senior.returncode == 2 and "not a senior manager" in not_senior.stderr
    inactive_member = submit(actor_staff_id=staff, leader_staff_id=leader, member_staff_ids=[staff, gone])
    assert inactive_member.returncode == 2 and str(gone) in inactive_member.stderr
    assert all(len(r.stderr.splitlines()) == 1 for r in (unknown, not_senior, inactive_member))
    time.sleep(1)
    assert actions(case_no) == before  # nothing recorded, the run still waits on the same key
    assert run_state(run.id) == ("Suspended", "task-force-0")

    accepted = submit(actor_staff_id=staff, leader_staff_id=leader, member_staff_ids=[staff])
    assert accepted.returncode == 0, accepted.stderr
    wait_step(case_no, "first_contact")
    prefect_post(f"{prefect_server}/flow_runs/{run.id}/set_state", {"state": {"type": "CANCELLING"}, "force": True})
    assert wait_final(run.id) == "CANCELLED"


@pytest.mark.parametrize(
    ("answer", "refusal"),
    [
        ({"actor_staff_id": "unknown"}, "unknown or inactive"),
        ({"actor_staff_id": "inactive"}, "unknown or inactive"),
        ({"actor_staff_id": "agent", "leader_staff_id": "agent"}, "not a senior manager"),
        ({"actor_staff_id": "agent", "leader_staff_id": "inactive_senior"}, "unknown or inactive"),
        ({"actor_staff_id": "agent", "leader_staff_id": "senior", "member_staff_ids": ["agent", "unknown"]}, "998"),
    ],
)
def test_every_staff_id_an_answer_names_must_be_known_and_active(answer: dict[str, Any], refusal: str) -> None:
    ids = {
        "unknown": 998,
        "agent": new_staff(Role.AGENT),
        "inactive": new_staff(Role.AGENT, active=False),
        "senior": new_staff(Role.SENIOR_MANAGER),
        "inactive_senior": new_staff(Role.SENIOR_MANAGER, active=False),
    }
    named = {k: [ids[x] for x in v] if isinstance(v, list) else ids[v] for k, v in answer.items()}
    with unit_of_work() as session, pytest.raises(StepRejected, match=refusal):
        check_answer_staff(session, named)
    with unit_of_work() as session:
        check_answer_staff(session, {"actor_staff_id": ids["agent"], "leader_staff_id": ids["senior"]})


def test_the_run_summary_shows_shanghai_time_dashes_and_yes_no() -> None:
    case_no = "KF-CLI-0004"
    new_case(case_no, "快递晚到两天")
    policy = current_policy()
    with unit_of_work() as session:
        register_case(session, case_no, policy, WorkCalendar(policy), owner_id=None, now=dt.datetime.now(dt.UTC))
    summary = CaseRecord(case_no).summary(CONTACT)
    assert SHANGHAI_TIME.search(summary)
    for shown_raw in ("None", "True", "False", "+00:00"):
        assert shown_raw not in summary
    assert "**紧急**：否" in summary and "**负责人员工编号**：未填写" in summary
    assert "与客户取得联系：" in summary and "待完成" in summary  # not met, not breached


def test_kefu_step_submit_as_someone_whose_roles_may_not_answer_the_step_is_refused_like_the_form_and_it_waits(
    prefect_server: str, case_db_url: str, tmp_path: Path
) -> None:
    case_no = "KF-CLI-0005"
    new_case(case_no, "快递晚到两天")
    run = start_run(case_no)
    wait_step(case_no, "classify")
    for login, name, role in (("as.dispatcher", "周调度", "dispatcher"), ("as.agent", "李客服", "agent")):
        added = kefu(tmp_path, prefect_server, case_db_url, "staff", "add", login, "--name", name, "--role", role)
        assert added.returncode == 0, added.stderr
    before = actions(case_no)

    def submit_as(login: str) -> subprocess.CompletedProcess[str]:
        argv = ("step", "submit", case_no, "classify", "--as", login, "--data", "{}")
        return kefu(tmp_path, prefect_server, case_db_url, *argv)

    refused = submit_as("as.dispatcher")
    assert refused.returncode == 2
    assert "may not answer step 'classify'" in refused.stderr and "物流调度员" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1
    assert actions(case_no) == before  # nothing recorded: the run still waits on the same key
    assert run_state(run.id) == ("Suspended", "classify-0")

    # The form in the Prefect UI names the same person: the flow applies the same rule, records the refusal and asks
    # again on the next round.
    with unit_of_work() as session:
        dispatcher = session.scalars(select(Staff).where(Staff.login == "as.dispatcher")).one().id
    wait_suspended_at(prefect_server, run.id, "classify-0")
    resumed = prefect_post(f"{prefect_server}/flow_runs/{run.id}/resume", {"run_input": {"actor_staff_id": dispatcher}})
    assert resumed.status_code == 201, resumed.text
    wait_refused(case_no, "classify-0")
    deadline = time.monotonic() + 30
    while run_state(run.id) != ("Suspended", "classify-1"):
        assert time.monotonic() < deadline, f"the run is {run_state(run.id)}, not waiting on the next round"
        time.sleep(0.2)
    assert ("classified", "classify-0") not in actions(case_no)

    accepted = submit_as("as.agent")
    assert accepted.returncode == 0, accepted.stderr
    wait_step(case_no, "first_contact")
    prefect_post(f"{prefect_server}/flow_runs/{run.id}/set_state", {"state": {"type": "CANCELLING"}, "force": True})
    assert wait_final(run.id) == "CANCELLED"
