"""The forms operators answer in the Prefect UI read in zh-CN, in the policy's words, and show what the decision
needs: the schema and the markdown Prefect stores for a waiting case, read back the way its UI reads them."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest

from kefu.cli.step import submit
from kefu.models.complaints import Complaint
from kefu.models.db import unit_of_work
from kefu.models.enums import Channel, ComplaintStatus, CustomerTier, Role, Severity
from kefu.models.people import Customer, Staff
from kefu.worktime import local_time
from tests.casework.test_case_lifecycle import actions, start_run, wait_final, wait_step
from tests.support.clock import SHANGHAI
from tests.support.prefect import prefect_post

pytestmark = pytest.mark.usefixtures("case_worker")

SHANGHAI_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d \+08:00")
SEVERITY_WORDS = ["一般投诉", "重要投诉", "重大投诉"]


def complaint_with_details(case_no: str) -> tuple[int, dt.datetime]:
    """A complaint as intake stores it: content with a phone and an e-mail, order, product, place; its agent."""
    received = dt.datetime.now(SHANGHAI).replace(microsecond=123456)
    with unit_of_work() as session:
        agent = Staff(name="客服")
        agent.grant(Role.AGENT)
        session.add(agent)
        session.add(
            Complaint(
                case_no=case_no,
                channel=Channel.HOTLINE,
                received_at=received,
                severity=Severity.GENERAL,
                status=ComplaintStatus.REGISTERED,
                customer=Customer(name="张三", tier=CustomerTier.GENERAL),
                content="包裹丢件了，请回电 13812348000 或写信 zhang.san@example.com",
                order_ref="SF1234567890",
                order_amount=Decimal("8000"),
                product="生鲜冷链",
                place="上海市浦东新区张江路88号",
                problem_at=received - dt.timedelta(days=1),
            )
        )
        session.flush()
        return agent.id, received


def form_of(api: str, run_id: Any) -> tuple[str, dict[str, Any], str]:
    """What the UI's resume dialog shows for a waiting run: its pause key, the stored schema and description."""
    run = httpx.get(f"{api}/flow_runs/{run_id}").json()
    details = run["state"]["state_details"]
    keyset = details["run_input_keyset"]
    schema = httpx.get(f"{api}/flow_runs/{run_id}/input/{keyset['schema']}").json()
    description = httpx.get(f"{api}/flow_runs/{run_id}/input/{keyset['description']}").json()
    return str(details["pause_key"]), schema, str(description)


def wait_form(api: str, run_id: Any, key: str, timeout: float = 30) -> tuple[dict[str, Any], str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = httpx.get(f"{api}/flow_runs/{run_id}").json()
        if run["state"]["type"] == "PAUSED" and run["state"]["state_details"]["pause_key"] == key:
            _, schema, description = form_of(api, run_id)
            return schema, description
        time.sleep(0.2)  # the worker is another process: polling the run is the only signal
    raise AssertionError(f"the run never waited under {key}")


def read_by_people(text: str) -> None:
    """Shanghai time to the minute with its offset; no Python literal, no seconds, no table to cut off."""
    assert SHANGHAI_TIME.search(text)
    assert not re.search(r"\d\d:\d\d:\d\d", text), "a time with seconds (or microseconds)"
    assert "+00:00" not in text
    assert not re.search(r"\b(None|True|False|null)\b", text)
    assert "|" not in text


def test_the_classify_form_shows_the_complaint_masked_and_the_severities_in_the_policys_words(
    prefect_server: str,
) -> None:
    case_no = "KF-FORM-0001"
    staff, received = complaint_with_details(case_no)
    run = start_run(case_no)
    wait_step(case_no, "classify")
    schema, summary = wait_form(prefect_server, run.id, "classify-0")

    # The form: zh-CN titles, the severities as the policy names them (with their criteria), no "Severity | None".
    assert schema["title"] == "投诉定级"
    props = schema["properties"]
    assert {field: prop["title"] for field, prop in props.items()} == {
        "actor_staff_id": "您的员工编号",
        "severity": "投诉等级",
        "reason": "改定理由",
    }
    assert props["severity"]["type"] == "string" and props["severity"]["enum"] == SEVERITY_WORDS
    assert props["severity"]["default"] == "重要投诉"  # the rules' proposal, preselected: submitting confirms it
    assert "产品包装损坏" in props["severity"]["description"] and "人身伤害" in props["severity"]["description"]
    assert "anyOf" not in json.dumps(schema)

    # The summary above it: what the complaint is about, personal data masked, the rules' proposal and why.
    assert summary.startswith(f"### 投诉定级 · 投诉 {case_no}")
    assert "包裹丢件了" in summary and "138****8000" in summary and "z***@example.com" in summary
    assert "13812348000" not in summary and "zhang.san" not in summary and "张三" not in summary
    assert "**订单**：SF1234567890（订单金额：8,000.00 元）" in summary
    assert "**产品或服务**：生鲜冷链" in summary and "**发生地点**：上海市浦东新区***" in summary
    assert f"**受理**：{local_time(received)}，客服热线" in summary
    assert "**规则建议**：重要投诉（内容含「丢件」、订单金额不低于 5,000 元）" in summary
    assert f"[Kefu 案件页](http://127.0.0.1:8000/desk/cases/{case_no})" in summary  # full details, behind sign-in
    assert f"`kefu case show {case_no}`" in summary
    assert "**下一个期限**：与客户取得联系：" in summary
    read_by_people(summary)

    # The UI sends the words; an override without a reason is refused and the next form says why.
    resumed = prefect_post(
        f"{prefect_server}/flow_runs/{run.id}/resume", {"run_input": {"actor_staff_id": staff, "severity": "重大投诉"}}
    )
    assert resumed.json()["status"] == "ACCEPT", resumed.text
    _, again = wait_form(prefect_server, run.id, "classify-1")
    assert "**上次提交未被接受**：将规则建议的重要投诉改定为重大投诉须填写理由" in again

    # The codes README documents for `kefu step submit` are still accepted.
    submit(case_no, "classify", {"actor_staff_id": staff, "severity": "major", "reason": "客户反映有人员受伤"})
    schema, summary = wait_form(prefect_server, run.id, "task-force-0")
    due = local_time(received + dt.timedelta(hours=1))  # 立即成立专项处理小组: the policy's 1 hour from receipt
    assert f"**本步骤期限**：立即成立专项处理小组：{due} 前 · 待完成" in summary
    assert "**投诉等级**：重大投诉" in summary
    assert [p["title"] for p in schema["properties"].values()] == ["您的员工编号", "组长的员工编号", "组员的员工编号"]
    read_by_people(summary)
    assert ("classified", "classify") in actions(case_no)
    prefect_post(f"{prefect_server}/flow_runs/{run.id}/set_state", {"state": {"type": "CANCELLING"}, "force": True})
    assert wait_final(run.id) == "CANCELLED"
