"""The human-step kit's keys: stable, valid Prefect keys, one per step; the complaint case keeps the keys its
open cases are waiting under (a resumed run finds its earlier answers by them)."""

from __future__ import annotations

import pytest
from prefect.input import RunInput

from kefu.engine.steps import Step, steps_by_name
from kefu.flows.complaint_case import STEPS


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
