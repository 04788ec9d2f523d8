"""Raising the severity never makes a promise to the customer later (issue 13): the first contact and the first
solution, plan or progress explanation are due at the earliest time their own and every lower severity gives; the
time to resolve keeps its own target; key-account targets only ever tighten — one rule in the planner, which
``kefu deadlines``, the cases and the sweeper all read."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kefu.cli import main
from kefu.models.policy import MilestoneId, Policy, PolicyError, Severity, parse_policy
from kefu.settings import DEFAULT_POLICY_FILE
from kefu.worktime import WorkCalendar, first_commitment, plan_complaint_milestones

CST = ZoneInfo("Asia/Shanghai")
RECEIVED = dt.datetime(2026, 3, 10, 10, 0, tzinfo=CST)  # an ordinary Tuesday
KEFU = str(Path(sys.executable).parent / "kefu")


def edited(old: str, new: str) -> Policy:
    text = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
    assert old in text, old
    return parse_policy(text.replace(old, new))


def test_an_urgent_general_complaint_raised_to_important_is_still_contacted_within_24_hours(
    policy: Policy, calendar: WorkCalendar
) -> None:
    urgent = policy.complaints.classification.is_urgent("快递晚到两天", flagged=True)
    severity, why = policy.complaints.propose_severity("快递晚到两天", None, key_account=False, urgent=urgent)
    assert (severity, why) == (Severity.IMPORTANT, ["urgent"])
    plan = plan_complaint_milestones(policy, calendar, severity, RECEIVED)
    contact = plan.get(MilestoneId.FIRST_CONTACT)
    assert contact is not None and contact.due_at is not None
    assert contact.due_at - RECEIVED <= dt.timedelta(hours=24)
    assert contact.rule_from is Severity.GENERAL
    assert "重要投诉无此节点，按一般投诉的规则（24 hours）" in contact.explanation
    commitment = first_commitment(policy, calendar, severity, RECEIVED, key_account=False)
    assert commitment is not None and (commitment.milestone, commitment.due_at) == (contact.id, contact.due_at)
    # the supervisor is still told within 12 h, and the time to resolve keeps the important target (7 working days)
    report, resolution = plan.get(MilestoneId.SUPERVISOR_REPORT), plan.get(MilestoneId.RESOLUTION)
    assert report is not None and report.due_at == RECEIVED + dt.timedelta(hours=12)
    assert resolution is not None and (resolution.unit, resolution.target, resolution.rule_from) == (
        "working_days",
        7,
        None,
    )


def test_a_higher_severity_takes_a_lower_ones_earlier_explanation_under_its_own_name(calendar: WorkCalendar) -> None:
    # a company that promises general complaints a solution within 12 h: important and major never promise later
    policy = edited("name: 给出解决方案, due: 48 hours", "name: 给出解决方案, due: 12 hours")
    important = plan_complaint_milestones(policy, calendar, Severity.IMPORTANT, RECEIVED)
    major = plan_complaint_milestones(policy, calendar, Severity.MAJOR, RECEIVED)
    progress, plan = important.get(MilestoneId.PROGRESS_UPDATE), major.get(MilestoneId.PRELIMINARY_PLAN)
    assert progress is not None and plan is not None
    assert progress.due_at == plan.due_at == RECEIVED + dt.timedelta(hours=12)
    assert progress.name == "说明处理进度和初步解决方案" and progress.rule_from is Severity.GENERAL
    assert "按一般投诉的规则（12 hours）更早，取较早者" in plan.explanation
    # the time to resolve is not a promise to be kept from below: a major complaint keeps its 15 working days
    resolution = major.get(MilestoneId.RESOLUTION)
    assert resolution is not None and resolution.target == 15 and resolution.rule_from is None


def test_a_key_account_target_only_ever_tightens(calendar: WorkCalendar) -> None:
    policy = edited("general: {first_contact: 12 hours", "general: {first_contact: 36 hours")
    plan = plan_complaint_milestones(policy, calendar, Severity.GENERAL, RECEIVED, key_account=True)
    contact = plan.get(MilestoneId.FIRST_CONTACT)
    assert contact is not None and contact.due_at == RECEIVED + dt.timedelta(hours=24)


def test_only_promises_to_the_customer_can_be_kept_from_a_lower_severity() -> None:
    with pytest.raises(PolicyError, match="'supervisor_report' is not customer-facing"):
        edited("first_contact: [first_contact]  ", "first_contact: [first_contact, supervisor_report]  ")


def test_kefu_deadlines_says_when_a_deadline_comes_from_a_lower_severitys_rule(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["deadlines", "--severity", "important", "--received-at", "2026-03-10T10:00:00+08:00"]
    table = subprocess.run([KEFU, *args], capture_output=True, text=True, check=True).stdout
    assert "first_contact: 重要投诉无此节点，按一般投诉的规则（24 hours）——提高等级不推迟对客户的承诺" in table
    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    by_id = {m["id"]: m for m in data["milestones"]}
    assert by_id["first_contact"]["rule_from"] == "general"
    assert by_id["first_contact"]["due_at"] == "2026-03-11T10:00:00+08:00"
    assert by_id["progress_update"]["rule_from"] is None
