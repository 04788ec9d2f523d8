"""The gateway API registers each complaint exactly once, answers bad input with structured 422s and
stores nothing then, and never shows personal data it does not need to."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from kefu.intake.app import create_app
from kefu.models import CaseEvent, Channel, CommunicationRecord, Complaint, Customer
from kefu.models.intake import IntakeIdempotencyKey, IntakeOutbox
from kefu.models.notifications import OutboxMessage
from kefu.models.policy import Policy
from kefu.tasks.casework import register_case
from kefu.worktime import WorkCalendar
from tests.support.clock import RECEIVED, FixedClock
from tests.support.samples import AUTH, complaint_json, intake_settings

ALL_TABLES = (Complaint, Customer, CommunicationRecord, CaseEvent, IntakeOutbox, IntakeIdempotencyKey)


def counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        return {t.__tablename__: session.scalar(select(func.count()).select_from(t)) or 0 for t in ALL_TABLES}


async def test_a_gateway_registers_a_complaint_with_its_receipt_time_and_first_commitment(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    response = await client.post("/api/v1/complaints", json=complaint_json(), headers=AUTH)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["case_no"] == "KF20261123-00001"
    assert body["status"] == "registered"
    assert body["severity"] == "general"
    assert body["received_at"] == "2026-11-23T10:00:00+08:00"  # Shanghai time, like the commitment's due time
    assert body["next_commitment"]["milestone"] == "first_contact"
    assert body["next_commitment"]["due_at"] == "2026-11-24T10:00:00+08:00"  # 24 h after receipt
    assert body["next_commitment"]["promise"] == "我们将在2026年11月24日 10:00（北京时间）之前与您联系"
    assert response.headers["location"] == "/api/v1/complaints/KF20261123-00001"
    assert "13800138000" not in response.text and "张三" not in response.text
    with Session(engine) as session:
        complaint = session.scalars(select(Complaint)).one()
        assert complaint.received_at == RECEIVED  # the SLA clock starts at receipt
        assert complaint.channel is Channel.HOTLINE
        assert complaint.order_ref == "SF1234567890"
        outbox = session.scalars(select(IntakeOutbox)).one()
        assert outbox.case_no == complaint.case_no and outbox.flow_run_id is None
        record = session.scalars(select(CommunicationRecord)).one()
        assert record.complaint_id == complaint.id and record.channel == "hotline"
        customer = session.get_one(Customer, complaint.customer_id)
        assert customer.name == "张三" and customer.phones == ["13800138000"]
        assert customer.email == "zhang.san@example.com"


async def test_a_retried_submission_with_the_same_idempotency_key_returns_the_same_case(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    headers = {**AUTH, "Idempotency-Key": "hotline-call-778899"}
    first = await client.post("/api/v1/complaints", json=complaint_json(), headers=headers)
    again = await client.post("/api/v1/complaints", json=complaint_json(), headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["case_no"] == again.json()["case_no"]
    assert counts(engine)["complaints"] == 1
    assert counts(engine)["intake_outbox"] == 1


async def test_concurrent_retries_with_one_key_still_make_one_case(client: httpx.AsyncClient, engine: Engine) -> None:
    headers = {**AUTH, "Idempotency-Key": "im-session-42"}
    responses = await asyncio.gather(
        *(client.post("/api/v1/complaints", json=complaint_json(channel="im"), headers=headers) for _ in range(8))
    )
    assert sorted(r.status_code for r in responses) == [200] * 7 + [201]
    assert len({r.json()["case_no"] for r in responses}) == 1
    assert counts(engine)["complaints"] == 1


async def test_a_key_reused_for_a_different_complaint_is_refused(client: httpx.AsyncClient, engine: Engine) -> None:
    headers = {**AUTH, "Idempotency-Key": "k-1"}
    assert (await client.post("/api/v1/complaints", json=complaint_json(), headers=headers)).status_code == 201
    other = await client.post(
        "/api/v1/complaints", json=complaint_json(content="另一件事：快递员态度恶劣。"), headers=headers
    )
    assert other.status_code == 409
    assert other.json()["errors"][0]["code"] == "idempotency_key_reused"
    assert counts(engine)["complaints"] == 1


async def test_a_returning_complainant_is_matched_by_phone_or_email_not_duplicated(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    await client.post("/api/v1/complaints", json=complaint_json(), headers=AUTH)
    await client.post("/api/v1/complaints", json=complaint_json(phone="138 0013 8000", email=None), headers=AUTH)
    await client.post("/api/v1/complaints", json=complaint_json(phone="010-62345678"), headers=AUTH)
    await client.post(
        "/api/v1/complaints", json=complaint_json(name="李四", phone="13900139000", email=None), headers=AUTH
    )
    with Session(engine) as session:
        customers = session.scalars(select(Customer).order_by(Customer.id)).all()
        assert [c.name for c in customers] == ["张三", "李四"]
        assert customers[0].phones == ["13800138000", "010-62345678"]
        assert session.scalar(select(func.count()).select_from(CommunicationRecord)) == 4
        case_nos = session.scalars(select(Complaint.case_no).order_by(Complaint.id)).all()
        assert case_nos == [f"KF20261123-0000{i}" for i in range(1, 5)]


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"name": ""}, "name", "required"),
        ({"phone": "12345"}, "phone", "invalid_phone"),
        ({"phone": "1380013800"}, "phone", "invalid_phone"),
        ({"email": "not-an-email"}, "email", "invalid_email"),
        ({"content": "太慢"}, "content", "too_short"),
        ({"content": "字" * 2001}, "content", "too_long"),
        ({"name": "张\x00三"}, "name", "control_characters"),
        ({"place": "北京\x1b[31m"}, "place", "control_characters"),
        ({"channel": "fax"}, "channel", "invalid_channel"),
        ({"problem_at": "昨天"}, "problem_at", "invalid_datetime"),
        ({"problem_at": "2027-01-01 10:00"}, "problem_at", "in_future"),
        ({"order_amount": "-3"}, "order_amount", "out_of_range"),
        ({"urgent": "maybe"}, "urgent", "type"),
        ({"name": 42}, "name", "type"),
        ({"nickname": "x"}, "nickname", "unknown_field"),
    ],
)
async def test_bad_input_answers_a_structured_422_and_stores_nothing(
    client: httpx.AsyncClient, engine: Engine, change: dict[str, object], field: str, code: str
) -> None:
    response = await client.post("/api/v1/complaints", json=complaint_json(**change), headers=AUTH)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert {"field": field, "code": code} in [{"field": e["field"], "code": e["code"]} for e in errors]
    assert all(e["message"] for e in errors)
    assert set(counts(engine).values()) == {0}


async def test_every_problem_is_reported_at_once(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/complaints", json={"channel": "web"}, headers=AUTH)
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"name", "phone", "content"}
    assert "请填写姓名" in [e["message"] for e in response.json()["errors"]]


async def test_mainland_mobile_and_landline_formats_are_accepted(client: httpx.AsyncClient) -> None:
    for phone in ["+86 139-0013-9000", "0755-88886666", "02188886666", "010-62345678-802"]:
        response = await client.post("/api/v1/complaints", json=complaint_json(phone=phone), headers=AUTH)
        assert response.status_code == 201, (phone, response.text)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}])
async def test_the_api_needs_a_gateway_token(
    client: httpx.AsyncClient, engine: Engine, headers: dict[str, str]
) -> None:
    response = await client.post("/api/v1/complaints", json=complaint_json(), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert (await client.get("/api/v1/complaints/KF20261123-00001", headers=headers)).status_code == 401
    assert set(counts(engine).values()) == {0}


async def test_oversized_and_malformed_bodies_are_refused(client: httpx.AsyncClient, engine: Engine) -> None:
    as_json = {**AUTH, "Content-Type": "application/json"}
    big = await client.post("/api/v1/complaints", content=b"{" + b" " * 20_000 + b"}", headers=as_json)
    assert big.status_code == 413
    assert big.json()["errors"][0]["code"] == "payload_too_large"
    broken = await client.post("/api/v1/complaints", content=b'{"name": ', headers=as_json)
    assert broken.status_code == 422 and broken.json()["errors"][0]["code"] == "invalid_json"
    listed = await client.post("/api/v1/complaints", json=[complaint_json()], headers=AUTH)
    assert listed.status_code == 422
    bad_key = await client.post(
        "/api/v1/complaints", json=complaint_json(), headers={**AUTH, "Idempotency-Key": "a key with spaces"}
    )
    assert bad_key.status_code == 422
    assert set(counts(engine).values()) == {0}


async def test_a_gateway_reads_the_status_without_personal_data(
    client: httpx.AsyncClient, engine: Engine, policy: Policy, calendar: WorkCalendar
) -> None:
    created = await client.post("/api/v1/complaints", json=complaint_json(urgent=True), headers=AUTH)
    case_no = created.json()["case_no"]
    with Session(engine) as session:  # the case run registered it: its milestones are rows (times stored in UTC)
        register_case(session, case_no, policy, calendar, owner_id=None, now=RECEIVED)
        session.commit()
    response = await client.get(f"/api/v1/complaints/{case_no}", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["case_no"] == case_no and body["urgent"] is True
    assert body["severity"] == "important"  # urgent raises a case to important (policy)
    assert body["next_commitment"]["milestone"] == "first_contact"  # raising the severity never makes it later
    # read back, its times are those the registration answered: Shanghai time with the offset (due_at came back in UTC)
    assert body["received_at"] == created.json()["received_at"] and body["received_at"].endswith("+08:00")
    assert body["next_commitment"]["due_at"] == created.json()["next_commitment"]["due_at"]
    assert body["next_commitment"]["due_at"].endswith("+08:00")
    assert "13800138000" not in response.text and "张三" not in response.text
    missing = await client.get("/api/v1/complaints/KF20261123-09999", headers=AUTH)
    assert missing.status_code == 404


async def test_the_openapi_schema_documents_the_complaint_api(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    post = schema["paths"]["/api/v1/complaints"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert {"channel", "name", "phone", "content"} <= set(body["required"])
    assert {"200", "201", "401", "409", "413", "422"} <= set(post["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in post["parameters"])
    assert "/api/v1/complaints/{case_no}" in schema["paths"]


async def test_while_intake_shuts_down_a_gateway_is_told_to_retry_and_nothing_is_stored(
    engine: Engine, clock: FixedClock
) -> None:
    app = create_app(intake_settings(), engine, clock=clock)
    app.state.registrar.close()  # what the end of the app's lifespan does
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake.test") as http:
        response = await http.post(
            "/api/v1/complaints", json=complaint_json(), headers={**AUTH, "Idempotency-Key": "s"}
        )
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json()["errors"][0]["code"] == "unavailable"
    assert set(counts(engine).values()) == {0}


async def test_a_gateway_reads_a_status_while_registrations_hold_the_write_lock(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    case_no = (await client.post("/api/v1/complaints", json=complaint_json(), headers=AUTH)).json()["case_no"]
    writer = engine.connect()  # a batch of registrations being committed, on SQLite: the write lock is taken
    writer.begin()
    try:
        status = await asyncio.wait_for(client.get(f"/api/v1/complaints/{case_no}", headers=AUTH), timeout=10)
    finally:
        writer.close()
    assert status.status_code == 200 and status.json()["case_no"] == case_no


async def test_the_receiver_a_gateway_names_owns_the_case_and_an_unknown_one_is_refused(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    from kefu.models.people import Staff

    with Session(engine, expire_on_commit=False) as session:
        receiver, gone = Staff(name="接线员"), Staff(name="已离职", active=False)
        session.add_all([receiver, gone])
        session.commit()
    before = counts(engine)
    for bad in (gone.id, 99999, "7", 0):
        refused = await client.post("/api/v1/complaints", json=complaint_json(staff_id=bad), headers=AUTH)
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == "staff_id"
    assert counts(engine) == before
    response = await client.post("/api/v1/complaints", json=complaint_json(staff_id=receiver.id), headers=AUTH)
    assert response.status_code == 201, response.text
    with Session(engine) as session:
        complaint = session.scalars(select(Complaint)).one()
        assert complaint.owner_id == receiver.id  # 首问责任制: from registration on
        received = session.scalars(select(CaseEvent).where(CaseEvent.action == "received")).one()
        assert received.data["owned_by"] == "receiver"


async def test_a_company_contact_is_filed_under_the_company_and_greeted_by_the_name_she_gave(
    client: httpx.AsyncClient, engine: Engine, policy: Policy, calendar: WorkCalendar
) -> None:
    with Session(engine) as session:
        session.add(Customer(name="华星电子有限公司", phones=["021-62345678"], email="service@huaxing.example"))
        session.commit()
    body = complaint_json(name="刘女士", phone="13700137000", email="service@huaxing.example")
    assert (await client.post("/api/v1/complaints", json=body, headers=AUTH)).status_code == 201
    with Session(engine) as session:
        complaint = session.scalars(select(Complaint)).one()
        assert complaint.customer is not None and complaint.customer.name == "华星电子有限公司"  # matched by e-mail
        assert complaint.contact_name == "刘女士"
        register_case(session, complaint.case_no, policy, calendar, owner_id=None, now=RECEIVED)
        session.commit()
        [ack] = session.scalars(select(OutboxMessage).where(OutboxMessage.message_type == "complaint_acknowledgement"))
        assert ack.recipient == "service@huaxing.example"
        assert ack.body_text.startswith("尊敬的刘女士：") and "华星电子有限公司" not in ack.body_text
