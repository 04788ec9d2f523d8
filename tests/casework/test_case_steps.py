"""The human-step kit's keys: stable, valid Prefect keys, one per step; the complaint case keeps the keys its
open cases are waiting under (a resumed run finds its earlier answers by them). Its forms, as the Prefect UI
renders them: zh-CN titles, no "X | None" switch, the severities in the policy's words."""

from __future__ import annotations

import json
import re

import pytest
from prefect.input import RunInput

from kefu.cli import UsageError
from kefu.cli.step import validate
from kefu.engine.prefect_private import input_schema
from kefu.engine.steps import Step, steps_by_name
from kefu.flows.complaint_case import STEPS

CJK = re.compile(r"[\u4e00-\u9fff]")


class Note(RunInput):
    text: str


def test_a_step_key_is_its_name_with_dashes_plus_the_round() -> None:
    step = Step("first_contact", Note)
    assert step.key == "first-contact"
    assert [step.round_key(n) for n in (0, 1)] == ["first-contact-0", "first-contact-1"]


def test_a_renamed_step_keeps_its_old_key() -> None:
    assert Step("first_call", Note, key="first-contact").round_key(0) == "first-contact-0"


@pytest.mark.parametrize("key", ["First-Contact", "first_contact", "-x", "x--y", "x y"])
def test_a_key_prefect_cannot_use_is_refused_when_the_step_is_declared(key: str) -> None:
    with pytest.raises(ValueError, match="lowercase letters, digits and dashes"):
        Step("x", Note, key=key)


def test_two_steps_of_a_process_cannot_share_a_name_or_a_key() -> None:
    with pytest.raises(ValueError, match="used by another step"):
        steps_by_name(Step("a", Note), Step("b", Note, key="a"))
    with pytest.raises(ValueError, match="used by another step"):
        steps_by_name(Step("a", Note), Step("a", Note, key="b"))


def test_the_complaint_steps_keep_the_keys_of_the_cases_in_flight() -> None:
    assert {name: step.key for name, step in STEPS.items()} == {
        "classify": "classify",
        "task_force": "task-force",
        "first_contact": "first-contact",
        "supervisor_report": "supervisor-report",
        "investigate": "investigate",
        "propose": "propose",
        "approve": "approve",
        "resolve": "resolve",
        "callback": "callback",
    }


@pytest.mark.parametrize("name", list(STEPS))
def test_every_step_form_has_zh_cn_titles_and_no_none_switch(name: str) -> None:
    schema = input_schema(STEPS[name].input)  # the schema Prefect stores and its UI renders
    assert CJK.search(schema["title"]), schema["title"]
    for field, prop in schema["properties"].items():
        assert CJK.search(prop.get("title", "")), f"{name}.{field} has no zh-CN title: {prop}"
        assert "anyOf" not in prop and prop.get("default", "") is not None, f"{name}.{field}: {prop}"
    assert "null" not in json.dumps(schema)


@pytest.mark.parametrize(("given", "sent"), [("major", "重大投诉"), ("重大投诉", "重大投诉"), (None, None)])
def test_kefu_step_submit_takes_the_codes_or_the_words_and_sends_the_words_the_form_shows(
    given: str | None, sent: str | None
) -> None:
    data = {"actor_staff_id": 1, "reason": "x"} | ({} if given is None else {"severity": given})
    assert validate("classify", data).get("severity") == sent


def test_kefu_step_submit_names_the_choices_for_a_severity_the_policy_does_not_have() -> None:
    with pytest.raises(UsageError, match="请选择一般投诉、重要投诉、重大投诉"):
        validate("classify", {"actor_staff_id": 1, "severity": "严重"})


def test_a_promised_time_written_without_an_offset_is_shanghai_time() -> None:
    data = {"actor_staff_id": 1, "solution": "退运费", "promised_completion_at": "2026-12-05T18:00"}
    assert validate("propose", data)["promised_completion_at"] == "2026-12-05T18:00:00+08:00"
