"""The customer answers the proposal themselves, through the link in the proposal mail: a real case run (Kefu
worker, Prefect server), the real intake app on uvicorn, and headless Chromium for the customer."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from sqlalchemy import select

from kefu.flows.case_deadlines import deliver_customer_answers
from kefu.intake.app import create_app
from kefu.models.answers import CustomerAnswerLink
from kefu.models.complaints import CaseEvent, Complaint
from kefu.models.db import default_engine, unit_of_work
from kefu.models.enums import Channel, ComplaintStatus, CustomerTier, Role, Severity
from kefu.models.notifications import OutboxMessage
from kefu.models.people import Customer, Staff
from kefu.tasks.casework import waiting_steps
from tests.casework.test_case_lifecycle import do, start_run, wait_step
from tests.support.browser import Page, find_or_install_chromium, page_websocket, start_chromium
from tests.support.clock import SHANGHAI
from tests.support.prefect import prefect_post, wait_suspended_at
from tests.support.processes import free_port, kill_9
from tests.support.samples import intake_settings

pytestmark = [pytest.mark.usefixtures("case_worker"), pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def intake(case_db_url: str, prefect_server: str) -> Iterator[str]:
    """The intake app on a real uvicorn in a thread, on the casework database, resuming runs on the test server."""
    port = free_port()
    app = create_app(intake_settings(), default_engine())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(400):
        if server.started:
            break
        threading.Event().wait(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def new_case(case_no: str) -> int:
    with unit_of_work() as session:
        agent = Staff(name="客服")
        agent.grant(Role.AGENT)
        session.add(agent)
        session.add(
            Complaint(
                case_no=case_no,
                channel=Channel.WEB,
                received_at=dt.datetime.now(SHANGHAI),
                severity=Severity.GENERAL,
                status=ComplaintStatus.REGISTERED,
                customer=Customer(name="客户", tier=CustomerTier.GENERAL, email="kehu@example.com"),
                content="快递晚到两天",
            )
        )
        session.flush()
        return agent.id


def proposal_tokens(case_no: str) -> list[str]:
    """The answer links of the proposal mails the customer got, oldest first."""
    with unit_of_work() as session:
        complaint = session.scalars(select(Complaint).where(Complaint.case_no == case_no)).one()
        mails = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.complaint_id == complaint.id, OutboxMessage.message_type == "solution_proposal")
            .order_by(OutboxMessage.id)
        ).all()
        return [m.group(1) for mail in mails if (m := re.search(r"/answer/([A-Za-z0-9_-]+)", mail.body_text))]


def approvals(case_no: str, *actions: str) -> list[tuple[str, dict[str, Any]]]:
    with unit_of_work() as session:
        complaint = session.scalars(select(Complaint).where(Complaint.case_no == case_no)).one()
        wanted = list(actions or ("approve", "step_refused"))
        rows = session.scalars(
            select(CaseEvent)
            .where(CaseEvent.complaint_id == complaint.id, CaseEvent.action.in_(wanted))
            .order_by(CaseEvent.id)
        ).all()
        return [(row.actor, dict(row.data)) for row in rows]


def waiting_key(case_no: str) -> str:
    """The key the case waits on ('' between a refusal and the step asked again)."""
    with unit_of_work() as session:
        rows = waiting_steps(session, case_no)
        return str(rows[-1]["key"]) if rows else ""


@pytest.fixture(scope="module")
def chromium() -> str:
    binary, reason = find_or_install_chromium()
    if binary is None:
        pytest.skip(f"browser test cannot run: {reason}")
    return binary


def test_the_customer_rejects_then_accepts_through_the_link_and_the_case_run_goes_on(
    intake: str, prefect_server: str, chromium: str, tmp_path: Path
) -> None:
    case_no = "KF-ANSWER-0001"
    staff = new_case(case_no)
    run = start_run(case_no)
    do(case_no, "classify", actor_staff_id=staff)
    do(case_no, "first_contact", actor_staff_id=staff, summary="致歉")
    do(case_no, "investigate", actor_staff_id=staff, departments=["运营部"], findings="中转延误")
    do(case_no, "propose", actor_staff_id=staff, solution="退还运费")
    wait_step(case_no, "approve")
    wait_suspended_at(prefect_server, run.id, "approve-0")
    [first] = proposal_tokens(case_no)

    # A mail scanner opens the link (GET, HEAD): nothing is decided, the case still waits for the customer.
    assert httpx.get(f"{intake}/answer/{first}").status_code == 200
    assert httpx.head(f"{intake}/answer/{first}").status_code == 200
    # Someone types a customer's answer into the run's form in the Prefect UI: refused, recorded, asked again.
    forged = prefect_post(
        f"{prefect_server}/flow_runs/{run.id}/resume", {"run_input": {"accepted": True, "customer_link": 1}}
    )
    assert forged.status_code == 201, forged.text
    for _ in range(200):
        if waiting_key(case_no) == "approve-1":
            break
        threading.Event().wait(0.1)  # the worker is another process: its record is the only signal
    assert waiting_key(case_no) == "approve-1"

    # The customer rejects with a comment while the intake cannot reach Prefect: the decision is recorded and the
    # customer thanked; the deadline sweeper delivers it. The case goes back to proposal, the customer recorded as
    # who decided.
    rejected = asyncio.run(post_without_prefect(first, {"choice": "reject", "comment": "运费之外还应赔偿"}))
    assert rejected.status_code == 200 and "您不同意该处理方案" in rejected.text
    assert waiting_key(case_no) == "approve-1"
    assert deliver_customer_answers(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)) == [f"{case_no}:customer_answer"]
    wait_step(case_no, "propose")
    again = httpx.post(f"{intake}/answer/{first}", data={"choice": "accept"})  # a second post decides nothing
    assert again.status_code == 409 and "已经收到" in again.text

    do(case_no, "propose", actor_staff_id=staff, solution="退还运费并赔偿50元")
    wait_step(case_no, "approve")
    second = proposal_tokens(case_no)[-1]
    accepted_text = asyncio.run(accept_in_chromium(chromium, f"{intake}/answer/{second}", tmp_path))
    assert "您已同意该处理方案" in accepted_text
    wait_step(case_no, "resolve")  # the run went on from the customer's own answer

    answers = approvals(case_no)
    assert answers[0][1]["step"] == "approve" and "customer_link" in answers[0][1]["reason"]  # the forged one
    (actor1, reject), (actor2, accept) = answers[1:]
    assert actor1 == actor2 == "customer:link"
    assert reject["accepted"] is False and reject["comment"] == "运费之外还应赔偿" and accept["accepted"] is True
    assert [(d["key"], d["decided_by"], d["via"]) for _, d in approvals(case_no, "approval_decided")] == [
        ("approve-1", "customer", "link"),
        ("approve-2", "customer", "link"),
    ]
    with unit_of_work() as session:
        links = session.scalars(select(CustomerAnswerLink).order_by(CustomerAnswerLink.id)).all()
        mine = [link for link in links if link.complaint.case_no == case_no]
        assert [(link.accepted, link.delivered_at is not None) for link in mine] == [(False, True), (True, True)]


async def post_without_prefect(token: str, form: dict[str, str]) -> httpx.Response:
    """The answer posted to an intake whose Prefect server does not answer (nothing listens on port 9)."""
    app = create_app(intake_settings(prefect_api_url="http://127.0.0.1:9/api"), default_engine())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake.test") as http:
        return await http.post(f"/answer/{token}", data=form)


async def accept_in_chromium(binary: str, url: str, tmp_path: Path) -> str:
    port = free_port()
    browser = start_chromium(binary, port, tmp_path / "profile", url, tmp_path / "chromium.log")
    try:
        socket_url = await asyncio.to_thread(page_websocket, port, browser)
        async with websockets.connect(socket_url, max_size=None) as socket:
            page = Page(socket)
            await page.send("Page.enable")
            await page.send("Runtime.enable")
            for _ in range(100):  # the page may still be loading when DevTools first answers
                if await page.evaluate("document.readyState") == "complete" and await page.evaluate(
                    "!!document.getElementById('submit')"
                ):
                    break
                await asyncio.sleep(0.1)
            assert "退还运费并赔偿50元" in await page.evaluate("document.getElementById('solution').textContent")
            await page.click("choice-accept")
            page.events.clear()
            await page.click("submit")
            await page.wait_event("Page.loadEventFired")
            text: str = await page.evaluate("document.body.innerText")
            return text
    finally:
        kill_9(browser)
