"""Customers complain through a plain HTML form (no JavaScript needed), get a case number and the first
committed time, and can look up the status with the case number and the last four phone digits."""

from __future__ import annotations

import datetime as dt
import re

import httpx
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from kefu.intake.app import create_app
from kefu.models import Complaint, Customer
from tests.support.clock import FixedClock
from tests.support.samples import AUTH, complaint_json, intake_settings

FORM = {
    "name": "王五",
    "phone": "13700137000",
    "email": "",
    "order_no": "YT20261120001",
    "product": "冷链运输",
    "place": "上海市浦东新区",
    "problem_at": "2026-11-21 09:00",
    "content": "冷链货物到达时已经化冻，请尽快处理。",
    "preferred_contact_time": "上午",
}


def form_key(page: str) -> str:
    match = re.search(r'name="form_key" value="([0-9a-f]{32})"', page)
    assert match, "the form carries a one-time key"
    return match.group(1)


def case_no(page: str) -> str:
    match = re.search(r'id="case-no">([A-Z0-9-]+)<', page)
    assert match, page
    return match.group(1)


async def test_the_form_is_in_chinese_and_labels_every_field(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert '<html lang="zh-CN">' in page.text
    for field, label in [("name", "姓名"), ("phone", "联系电话"), ("content", "投诉内容"), ("urgent", "情况紧急")]:
        assert f'<label for="{field}">' in page.text and label in page.text
    assert "<script" not in page.text


async def test_submitting_the_form_shows_the_case_number_and_first_committed_time(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    key = form_key((await client.get("/")).text)
    response = await client.post("/", data={**FORM, "form_key": key})
    assert response.status_code == 200
    assert case_no(response.text) == "KF20261123-00001"
    assert "我们将在<strong>2026年11月24日 10:00（北京时间）</strong>之前与您联系" in response.text  # within 24 h
    with Session(engine) as session:
        complaint = session.scalars(select(Complaint)).one()
        assert complaint.channel.value == "web" and complaint.urgent is False


async def test_sending_the_same_form_twice_gives_the_same_case(client: httpx.AsyncClient, engine: Engine) -> None:
    key = form_key((await client.get("/")).text)
    first = await client.post("/", data={**FORM, "form_key": key})
    again = await client.post("/", data={**FORM, "form_key": key})
    assert case_no(first.text) == case_no(again.text)
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Complaint)) == 1


async def test_an_urgent_complaint_is_registered_as_urgent_with_the_tighter_commitment(
    client: httpx.AsyncClient,
) -> None:
    key = form_key((await client.get("/")).text)
    response = await client.post("/", data={**FORM, "urgent": "on", "form_key": key})
    assert "已按紧急投诉登记" in response.text
    # raised to important, the customer is still contacted within 24 h as a general complaint would be
    assert "2026年11月24日 10:00（北京时间）" in response.text


async def test_mistakes_are_explained_next_to_the_fields_and_the_input_is_kept(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    key = form_key((await client.get("/")).text)
    response = await client.post("/", data={**FORM, "phone": "1234", "content": "", "form_key": key})
    assert response.status_code == 422
    assert "联系电话格式不对" in response.text and "请填写投诉内容" in response.text
    assert 'value="王五"' in response.text  # what the person typed stays
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Complaint)) == 0
        assert session.scalar(select(func.count()).select_from(Customer)) == 0


async def test_script_in_the_form_is_stored_verbatim_and_shown_escaped(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    evil = "<script>alert('x')</script> 箱子破了"
    response = await client.post("/", data={**FORM, "name": evil[:50], "content": evil, "phone": "bad"})
    assert "<script>" not in response.text
    assert "&lt;script&gt;" in response.text
    ok = await client.post("/", data={**FORM, "content": evil, "form_key": form_key((await client.get("/")).text)})
    assert "<script>" not in ok.text
    with Session(engine) as session:
        assert session.scalars(select(Complaint.content)).one() == evil


async def test_status_lookup_shows_status_and_next_commitment_but_no_personal_data(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post("/api/v1/complaints", json=complaint_json(), headers=AUTH)
    number = created.json()["case_no"]
    page = await client.post("/status", data={"case_no": number, "phone_last4": "8000"})
    assert page.status_code == 200
    assert "已受理" in page.text and "受理时间：2026年11月23日 10:00（北京时间）" in page.text
    # the next step in the customer's words from the policy, not the milestone's name (与客户取得联系)
    assert "接下来：我们将在<strong>2026年11月24日 10:00（北京时间）</strong>之前与您联系。" in page.text
    assert "与客户取得联系" not in page.text
    for personal in ["张三", "13800138000", "zhang.san", "中关村", "SF1234567890", "杯子"]:
        assert personal not in page.text


async def test_no_such_case_and_wrong_digits_get_the_same_answer(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/v1/complaints", json=complaint_json(), headers=AUTH)
    number = created.json()["case_no"]
    wrong_digits = await client.post("/status", data={"case_no": number, "phone_last4": "1234"})
    no_case = await client.post("/status", data={"case_no": "KF20261123-09999", "phone_last4": "8000"})
    assert wrong_digits.status_code == no_case.status_code == 200
    assert wrong_digits.text.replace(number, "X") == no_case.text.replace("KF20261123-09999", "X")
    assert "没有找到" in no_case.text


async def test_status_lookups_are_rate_limited(engine: Engine) -> None:
    app = create_app(intake_settings(), engine, clock=lambda: dt.datetime.now(dt.UTC), status_rate_limit=(3, 60.0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake.test") as http:
        answers = [
            (await http.post("/status", data={"case_no": "KF20261123-00001", "phone_last4": f"{i:04d}"})).status_code
            for i in range(5)
        ]
        assert answers == [200, 200, 200, 429, 429]
        assert "查询过于频繁" in (await http.post("/status", data={"case_no": "x", "phone_last4": "1"})).text


async def test_when_intake_cannot_take_the_complaint_the_form_says_so_and_keeps_the_input(
    engine: Engine, clock: FixedClock
) -> None:
    app = create_app(intake_settings(), engine, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake.test") as http:
        key = form_key((await http.get("/")).text)
        app.state.registrar.close()  # shutting down
        page = await http.post("/", data={**FORM, "form_key": key})
    assert page.status_code == 503
    assert "还没有提交成功" in page.text and "内容都还在" in page.text
    assert FORM["content"] in page.text and f'value="{key}"' in page.text  # a second press is the same form
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Complaint)) == 0
