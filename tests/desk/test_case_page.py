"""The case page of the operators' entrance: the case's owner reads the customer in full (and the reading is in the
access log), another agent reads them masked; the search finds a case by number and order number, and by phone only
for someone who may see that customer in full."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from kefu.desk.app import create_app
from kefu.models import Role
from kefu.models.complaints import CaseEvent, Complaint
from kefu.models.enums import Channel, ComplaintStatus, CustomerTier, Severity
from kefu.models.people import Customer
from kefu.models.personal_data import PersonalDataAccess
from tests.desk.test_signin import desk_settings, sign_in
from tests.support.clock import SHANGHAI
from tests.support.desk import PASSWORD, add_person, desk_client

PHONE = "13812348000"
CONTENT = f"快递晚到两天，请回电 {PHONE}"


def a_case(engine: Engine, owner_id: int) -> None:
    with Session(engine) as session:
        customer = Customer(name="王五", tier=CustomerTier.GENERAL, phones=[PHONE], address="北京市朝阳区建国路88号")
        session.add(
            Complaint(
                case_no="KF-DESK-0001",
                channel=Channel.HOTLINE,
                received_at=dt.datetime(2026, 11, 2, 10, 0, tzinfo=SHANGHAI),
                severity=Severity.GENERAL,
                status=ComplaintStatus.CLASSIFIED,
                customer=customer,
                owner_id=owner_id,
                order_ref="SO-778899",
                content=CONTENT,
            )
        )
        session.flush()
        complaint_id = session.scalars(select(Complaint.id).where(Complaint.case_no == "KF-DESK-0001")).one()
        session.add(CaseEvent(complaint_id=complaint_id, actor=f"staff:{owner_id}", action="classify", data={}))
        session.commit()


def readings(engine: Engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(PersonalDataAccess)) or 0


async def test_the_owner_reads_the_customer_in_full_and_is_logged_another_agent_reads_them_masked(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    engine = sqlite_engine
    owner = add_person(engine, "li.kefu", Role.AGENT)
    add_person(engine, "sun.kefu", Role.AGENT)
    a_case(engine, owner)
    app = create_app(desk_settings(tmp_path), engine)
    async with desk_client(app) as http:
        assert (await http.get("/cases/KF-DESK-0001")).status_code == 303  # not signed in: to the sign-in page
        await sign_in(http, "li.kefu", PASSWORD)
        page = await http.get("/cases/KF-DESK-0001")
        assert page.status_code == 200
        assert PHONE in page.text and "王五" in page.text and "建国路88号" in page.text
        assert "SO-778899" in page.text and "一般投诉" in page.text and "员工li.kefu" in page.text  # who did what
        assert readings(engine) == 1
    async with desk_client(app) as http:
        await sign_in(http, "sun.kefu", PASSWORD)
        page = await http.get("/cases/KF-DESK-0001")
        assert page.status_code == 200
        assert PHONE not in page.text and "138****8000" in page.text and "建国路88号" not in page.text
        assert "王五" not in page.text
        assert readings(engine) == 1  # a masked reading is not logged
        missing = await http.get("/cases/KF-NOPE-0001")
        assert missing.status_code == 404 and "没有找到" in missing.text


async def test_the_search_finds_a_case_by_number_and_order_and_by_phone_only_for_who_may_see_the_customer(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    engine = sqlite_engine
    owner = add_person(engine, "li.kefu", Role.AGENT)
    add_person(engine, "sun.kefu", Role.AGENT)
    a_case(engine, owner)
    app = create_app(desk_settings(tmp_path), engine)

    async def search(http: httpx.AsyncClient, q: str) -> httpx.Response:
        return await http.get("/cases", params={"q": q})

    async with desk_client(app) as http:
        await sign_in(http, "sun.kefu", PASSWORD)
        for q in ("KF-DESK-0001", "kf-desk", "SO-778899"):
            found = await search(http, q)
            assert found.status_code == 303 and found.headers["location"] == "/cases/KF-DESK-0001", q
        by_phone = await search(http, PHONE)  # not theirs: the number tells them nothing
        assert by_phone.status_code == 200 and "KF-DESK-0001" not in by_phone.text and "没有找到" in by_phone.text
    async with desk_client(app) as http:
        await sign_in(http, "li.kefu", PASSWORD)
        found = await search(http, PHONE)
        assert found.status_code == 303 and found.headers["location"] == "/cases/KF-DESK-0001"


async def test_the_case_page_shows_times_in_event_data_in_shanghai_time_with_the_edge_s_headers_and_head(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    engine = sqlite_engine
    owner = add_person(engine, "li.kefu", Role.AGENT)
    a_case(engine, owner)
    with Session(engine) as session:
        complaint_id = session.scalars(select(Complaint.id).where(Complaint.case_no == "KF-DESK-0001")).one()
        due = dt.datetime(2026, 11, 3, 2, 13, 7, tzinfo=dt.UTC).isoformat()
        data = {"due_at": due}
        event = CaseEvent(complaint_id=complaint_id, actor="system", action="progress_contact_due", data=data)
        session.add(event)
        session.commit()
    app = create_app(desk_settings(tmp_path), engine)
    async with desk_client(app) as http:
        await sign_in(http, "li.kefu", PASSWORD)
        page = await http.get("/cases/KF-DESK-0001")
        assert page.status_code == 200
        assert "due_at: 2026-11-03 10:13 +08:00" in page.text and "+00:00" not in page.text
        # the entrance's pages pass through the front door's edge: a case's details are never cached or framed
        assert page.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert "unsafe-inline" not in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"]
        head = await http.head("/cases/KF-DESK-0001")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["cache-control"] == "no-store"
        start = await http.head("/")  # the start page: the person's waiting steps
        assert start.status_code == 200 and start.content == b"" and "content-security-policy" in start.headers
