"""Customers choose between 咨询 and 投诉 on the form (a complaint unless they choose), gateways send enquiries to
``POST /api/v1/enquiries`` (idempotent like complaints); bad input is refused and stores nothing."""

from __future__ import annotations

import datetime as dt
import re

import httpx
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from kefu.models import Complaint
from kefu.models.enquiries import Enquiry
from kefu.models.enums import Channel
from tests.support.clock import RECEIVED
from tests.support.samples import AUTH

FORM = {"name": "王五", "phone": "13700137000", "email": "", "content": "请问冷链运输到上海要几天？"}


def form_key(page: str) -> str:
    match = re.search(r'name="form_key" value="([0-9a-f]{32})"', page)
    assert match
    return match.group(1)


def counted(engine: Engine) -> tuple[int, int]:
    with Session(engine) as session:
        return (
            session.scalar(select(func.count()).select_from(Enquiry)) or 0,
            session.scalar(select(func.count()).select_from(Complaint)) or 0,
        )


async def test_the_form_offers_enquiry_or_complaint_with_complaint_chosen(client: httpx.AsyncClient) -> None:
    page = (await client.get("/")).text
    assert re.search(r'value="complaint" checked', page) and "投诉（" in page
    assert 'value="enquiry">' in page and "咨询（" in page


async def test_choosing_enquiry_records_an_enquiry_once_and_shows_its_number_and_promise(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    key = form_key((await client.get("/")).text)
    sent = {**FORM, "kind": "enquiry", "form_key": key}
    page = await client.post("/", data=sent)
    again = await client.post("/", data=sent)  # a second press of the same form
    assert page.status_code == 200, page.text
    number = re.search(r'id="enquiry-no">([A-Z0-9-]+)<', page.text)
    assert number and number.group(1) in again.text
    assert "2026年11月23日 10:10（北京时间）" in page.text  # received 10:00, answered within 10 minutes
    assert "需其他部门协助的1小时内给出解决方案" in page.text
    with Session(engine) as session:
        enquiry = session.scalars(select(Enquiry)).one()
        assert (enquiry.channel, enquiry.received_at, enquiry.flow_run_id) == (Channel.WEB, RECEIVED, None)
    assert counted(engine) == (1, 0)


async def test_the_form_still_registers_a_complaint_when_nothing_is_chosen(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    key = form_key((await client.get("/")).text)
    page = await client.post("/", data={**FORM, "content": "冷链货物到达时已经化冻。", "form_key": key})
    assert page.status_code == 200 and 'id="case-no"' in page.text
    assert counted(engine) == (0, 1)


async def test_a_bad_enquiry_on_the_form_shows_the_reason_and_stores_nothing(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    key = form_key((await client.get("/")).text)
    page = await client.post("/", data={**FORM, "phone": "abc", "content": "", "kind": "enquiry", "form_key": key})
    assert page.status_code == 422
    assert "请填写正确的联系电话" in page.text and "请填写咨询内容" in page.text
    assert "/ phone" not in page.text  # customers read Chinese only
    assert 'value="enquiry" checked' in page.text  # their choice kept
    assert counted(engine) == (0, 0)


async def test_a_gateway_records_an_enquiry_idempotently_and_refuses_bad_input(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    body = {"name": "赵六", "phone": "13900139000", "content": "运费怎么算？", "channel": "hotline"}
    headers = {**AUTH, "Idempotency-Key": "call-991"}
    first = await client.post("/api/v1/enquiries", json=body, headers=headers)
    again = await client.post("/api/v1/enquiries", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200), first.text
    assert first.json()["enquiry_no"] == again.json()["enquiry_no"]
    due = dt.datetime.fromisoformat(first.json()["answer_due_at"])
    assert due == RECEIVED + dt.timedelta(minutes=10)
    # in Shanghai time with its offset, like the complaint API's times
    assert first.json()["answer_due_at"].endswith("+08:00") and first.json()["received_at"].endswith("+08:00")
    assert "赵六" not in first.text and "13900139000" not in first.text
    other = await client.post("/api/v1/enquiries", json={**body, "content": "别的问题"}, headers=headers)
    assert other.status_code == 409
    for bad in ({**body, "phone": "x"}, {**body, "colour": "red"}, {**body, "content": 5}, {**body, "channel": "fax"}):
        refused = await client.post("/api/v1/enquiries", json=bad, headers=AUTH)
        assert refused.status_code == 422, bad
    assert (await client.post("/api/v1/enquiries", json=body)).status_code == 401
    assert counted(engine) == (1, 0)
