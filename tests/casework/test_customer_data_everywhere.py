"""Customer data by role, end to end (issue 12): a case driven through its steps by a real worker and Prefect
server; a masked role finds the customer's full phone number, ID-card number, e-mail and address nowhere it can
look; an entitled person reads them and the reading is in the access log."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from kefu.intake.app import create_app
from kefu.models.complaints import Complaint
from kefu.models.db import default_engine, unit_of_work
from kefu.models.enums import Channel, ComplaintStatus, CustomerTier, Role, Severity
from kefu.models.people import Customer, Staff
from kefu.models.personal_data import PersonalDataAccess
from tests.casework.test_case_lifecycle import do, start_run, wait_final, wait_step
from tests.casework.test_cli_and_staff import kefu
from tests.support.clock import SHANGHAI
from tests.support.samples import AUTH, intake_settings

pytestmark = pytest.mark.usefixtures("case_worker")

PHONE, LANDLINE, ID_NO = "13987654321", "010-87654321", "110101198805061237"
EMAIL, ADDRESS = "zhao.liu@example.com", "北京市海淀区知春路27号院5号楼"
SECRETS = (PHONE, LANDLINE, "87654321", ID_NO, EMAIL, "知春路27号")


def seed(case_no: str) -> dict[str, int]:
    """A supervisor over the owner (an agent), a dispatcher, and a complaint whose customer and content carry full
    numbers (the place of the problem is the customer's address, as intake records it)."""
    with unit_of_work() as session:
        chief = Staff(name="赵主管", login="pd.zhao")
        chief.grant(Role.SUPERVISOR)
        session.add(chief)
        session.flush()
        owner = Staff(name="李客服", login="pd.li", supervisor_id=chief.id)
        owner.grant(Role.AGENT)
        dispatcher = Staff(name="周调度", login="pd.zhou")
        dispatcher.grant(Role.DISPATCHER)
        session.add_all([owner, dispatcher])
        customer = Customer(
            name="赵六", phones=[PHONE, LANDLINE], email=EMAIL, address=ADDRESS, tier=CustomerTier.GENERAL
        )
        session.add(
            Complaint(
                case_no=case_no,
                channel=Channel.HOTLINE,
                received_at=dt.datetime.now(SHANGHAI),
                severity=Severity.GENERAL,
                status=ComplaintStatus.REGISTERED,
                customer=customer,
                place=ADDRESS,
                content=f"快递晚到两天。我的手机 {PHONE}，座机 {LANDLINE}，身份证 {ID_NO}，邮箱 {EMAIL}。",
            )
        )
        session.flush()
        return {"chief": chief.id, "owner": owner.id, "dispatcher": dispatcher.id}


async def intake_answers(case_no: str) -> tuple[httpx.Response, httpx.Response]:
    """The gateway API's answer about the case and the customer's status page (by the phone's last four digits)."""
    transport = httpx.ASGITransport(app=create_app(intake_settings(), default_engine()))
    async with httpx.AsyncClient(transport=transport, base_url="http://intake.test") as intake:
        api = await intake.get(f"/api/v1/complaints/{case_no}", headers=AUTH)
        page = await intake.post("/status", data={"case_no": case_no, "phone_last4": PHONE[-4:]})
    return api, page


def prefect_views(api: str, run_id: Any, case_no: str) -> str:
    """Everything about the case an operator can open in the Prefect UI: the run (name, parameters, tags, state),
    its step forms and summaries (run inputs), artifacts, logs and the case's events."""

    def post(path: str, body: dict[str, Any]) -> Any:
        response = httpx.post(f"{api}{path}", json=body, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    run = httpx.get(f"{api}/flow_runs/{run_id}", timeout=30).json()
    inputs = post(f"/flow_runs/{run_id}/input/filter", {"prefix": "", "limit": 1000, "exclude_keys": []})
    artifacts = post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [str(run_id)]}}})
    logs = post("/logs/filter", {"logs": {"flow_run_id": {"any_": [str(run_id)]}}})
    resource = {"id": [f"kefu.case.{case_no}"]}
    deadline = time.monotonic() + 30
    while True:  # events are sent in the background: wait (bounded) for the close to arrive
        events = post("/events/filter", {"filter": {"resource": resource}, "limit": 50})["events"]
        if any(e["event"] == "kefu.case.closed" for e in events) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert run["name"] == f"case {case_no}"
    summaries = [i for i in inputs if "139****4321" in i["value"]]  # the step summaries, the content masked
    assert summaries and any(e["event"] == "kefu.case.closed" for e in events), "nothing to search: a vacuous test"
    return json.dumps([run, inputs, artifacts, logs, events], ensure_ascii=False)


def test_a_masked_role_finds_no_full_number_anywhere_and_an_entitled_reading_shows_them_and_is_logged(
    prefect_server: str, case_db_url: str, case_worker: Any, tmp_path: Path
) -> None:
    case_no = "PD20261202-00001"
    staff = seed(case_no)
    run = start_run(case_no)
    wait_step(case_no, "classify")
    waiting = kefu(tmp_path, prefect_server, case_db_url, "step", "list", "--case", case_no)
    assert waiting.returncode == 0 and "classify" in waiting.stdout, waiting.stderr
    owner = staff["owner"]
    do(case_no, "classify", actor_staff_id=owner)
    do(case_no, "first_contact", actor_staff_id=owner, summary="致歉，已告知处理时限")
    do(case_no, "investigate", actor_staff_id=owner, departments=["运营部"], findings="中转延误")
    do(case_no, "propose", actor_staff_id=owner, solution="退运费")
    do(case_no, "approve", actor_staff_id=owner, accepted=True)
    do(case_no, "resolve", actor_staff_id=owner, summary="已退")
    do(case_no, "callback", actor_staff_id=owner, satisfaction=5)
    assert wait_final(run.id) == "COMPLETED"

    # Every place a masked role can look (the commands at once: each is a process start).
    with ThreadPoolExecutor(3) as pool:
        shown = pool.submit(kefu, tmp_path, prefect_server, case_db_url, "case", "show", case_no, "--as", "pd.zhou")
        refusing = pool.submit(kefu, tmp_path, prefect_server, case_db_url, "access", "log", "--as", "pd.zhou")
        bad_day = pool.submit(
            kefu, tmp_path, prefect_server, case_db_url, "access", "log", "--as", "pd.zhao", "--since", "昨天"
        )
        masked, refused, undated = shown.result(), refusing.result(), bad_day.result()
    assert masked.returncode == 0, masked.stderr
    assert "139****4321" in masked.stdout and "z***@example.com" in masked.stdout and "赵*" in masked.stdout
    api, page = asyncio.run(intake_answers(case_no))
    assert api.status_code == 200 and page.status_code == 200 and case_no in page.text
    places = {
        "kefu step list": waiting.stdout + waiting.stderr,
        "kefu case show --as a dispatcher": masked.stdout + masked.stderr,
        "intake API": api.text,
        "status page": page.text,
        "Prefect (run, step summaries, artifacts, logs, events)": prefect_views(prefect_server, run.id, case_no),
        "worker log file": case_worker.log_path.read_text(encoding="utf-8", errors="replace"),
    }
    found = {where: [s for s in SECRETS if s in text] for where, text in places.items()}
    assert found == {where: [] for where in places}
    assert "赵六" not in places["kefu case show --as a dispatcher"]
    with unit_of_work() as session:
        assert session.scalars(select(PersonalDataAccess)).all() == []  # a masked reading is not logged

    # The owner's supervisor reads them in full; the reading is logged, and a supervisor lists it.
    entitled = kefu(tmp_path, prefect_server, case_db_url, "case", "show", case_no, "--as", "pd.zhao")
    assert entitled.returncode == 0, entitled.stderr
    assert PHONE in entitled.stdout and LANDLINE in entitled.stdout and ADDRESS in entitled.stdout
    with unit_of_work() as session:
        rows = session.scalars(select(PersonalDataAccess)).all()
        assert [(r.staff_id, r.through, r.reason) for r in rows] == [(staff["chief"], "kefu case show", "supervisor")]
    listed = kefu(tmp_path, prefect_server, case_db_url, "access", "log", "--case", case_no, "--as", "pd.zhao")
    assert listed.returncode == 0, listed.stderr
    assert "pd.zhao" in listed.stdout and case_no in listed.stdout and "kefu case show" in listed.stdout
    assert refused.returncode == 2 and "may not list" in refused.stderr and refused.stdout == ""
    assert undated.returncode == 2 and "--since 昨天: give a day" in undated.stderr and undated.stdout == ""
