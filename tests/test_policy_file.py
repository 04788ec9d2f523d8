"""The policy file is validated: a bad file stops everything with the key and the reason, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kefu.cli import main
from kefu.models.policy import PolicyError, load_policy, parse_policy
from kefu.settings import DEFAULT_POLICY_FILE


def shipped() -> dict[str, object]:
    data = yaml.safe_load(DEFAULT_POLICY_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_the_shipped_policy_file_is_valid() -> None:
    policy = load_policy(DEFAULT_POLICY_FILE)
    assert [str(w) for w in policy.business_windows] == ["09:00-12:00", "15:00-18:00"]
    assert str(policy.complaints.callback.due) == "3 working_days"
    assert policy.complaints.callback.reopen_below == 3
    assert policy.escalation.ladder == ["owner", "supervisor", "senior_manager"]


def _broken(path: list[str | int], value: object) -> str:
    data = shipped()
    node: object = data
    for part in path[:-1]:
        node = node[part]  # type: ignore[index]
    node[path[-1]] = value  # type: ignore[index]
    return yaml.safe_dump(data, allow_unicode=True)


@pytest.mark.parametrize(
    ("path", "value", "key", "reason"),
    [
        (
            ["complaints", "severities", "major", "milestones", 1, "due"],
            "6 hourz",
            "complaints.severities.major.milestones.1.due",
            "is not a duration",
        ),
        (
            ["complaints", "severities", "important", "milestones", 2, "due"],
            "7.5 working_days",
            "complaints.severities.important.milestones.2.due",
            "whole number",
        ),
        (
            ["complaints", "severities", "general", "milestones", 0, "id"],
            "first_call",
            "complaints.severities.general.milestones.0.id",
            "first_contact",
        ),
        (["business_windows", 1], "18:00-15:00", "business_windows.1", "ends before it starts"),
        (["business_windows", 1], "11:00-13:00", "business_windows", "overlap"),
        (["escalation", "warn_at_percent"], 120, "escalation.warn_at_percent", "less than 100"),
        (["staff_assessment", "evaluator_weights", "self"], 0.5, "staff_assessment.evaluator_weights", "add up to 1"),
        (
            ["complaints", "key_account_overrides", "general", "task_force"],
            "1 hours",
            "key_account_overrides.general.task_force",
            "no such milestone",
        ),
        (["timezone"], "Mars/Olympus", "timezone", "unknown time zone"),
        (["complaints", "callback", "reopen_below"], 6, "complaints.callback.reopen_below", "between 2 and 5"),
        (["complaints", "callback", "reopen_below"], 1, "complaints.callback.reopen_below", "reopen no case"),
        (["backups", "schedule"], "every night", "backups.schedule", "not a cron expression"),
        (["backups", "keep_at_least"], 0, "backups.keep_at_least", "greater than or equal to 1"),
        (["backups", "keep_days"], "a month", "backups.keep_days", "valid integer"),
        (["letters", "signature"], "客户 服务部", "letters.signature", "without spaces"),
        (
            ["complaints", "severities", "general", "milestones", 0, "customer_wording"],
            None,
            "complaints.severities.general.milestones.0",
            "customer-facing and needs a customer_wording",
        ),
        (
            ["complaints", "severities", "general", "milestones", 0, "customer_wording"],
            "我们会尽快与您联系",
            "complaints.severities.general.milestones.0",
            "must name the due time once, as '{due}'",
        ),
        (
            ["complaints", "severities", "general", "milestones", 0, "customer_wording"],
            "我们将在{due}之前与客户取得联系",
            "complaints.severities.general.milestones.0",
            "repeats the internal name",
        ),
        (
            ["complaints", "severities", "important", "milestones", 0, "customer_wording"],
            "我们将在{due}之前向主管报告",
            "complaints.severities.important.milestones.0",
            "not customer_facing",
        ),
        (
            ["calendar", "extra_holidays"],
            [{"date": "2026-13-01", "name": "x"}],
            "calendar.extra_holidays.0.date",
            "date",
        ),
        (["roles", "complaint_steps", "classify"], ["agent", "pilot"], "roles.complaint_steps.classify.1", "agent"),
        (["roles", "complaint_steps", "classify"], [], "roles.complaint_steps", "no role may answer step(s) classify"),
        (["roles", "names", "admin"], " ", "roles.names", "roles without a name: admin"),
        (["customer_answers", "link_valid_for"], "0 working_days", "customer_answers.link_valid_for", "greater than 0"),
        (["greetings", "segments"], ["key", "vip"], "greetings.segments.1", "'key' or 'general'"),
        (["greetings", "fatigue_max_messages"], 0, "greetings.fatigue_max_messages", "greater than or equal to 1"),
        (
            ["complaints", "severities", "general", "progress_update_interval"],
            "3 weeks",
            "complaints.severities.general.progress_update_interval",
            "is not a duration",
        ),
        (["reports", "monthly_schedule"], "monthly", "reports.monthly_schedule", "not a cron expression"),
        (["complaints", "causes"], [], "complaints.causes", "name at least one cause"),
        (["complaints", "causes"], ["延误", "破损", "延误"], "complaints.causes", "named twice: 延误"),
        (["complaints", "causes"], ["延误", "未分类"], "complaints.causes", "what the report says for no cause"),
        (["reports", "recipients"], [], "reports.recipients", "at least 1 item"),
        (["reports", "recipients", 0, "email"], "管理层", "reports.recipients.0.email", "should match pattern"),
    ],
)
def test_a_bad_policy_names_the_key_and_the_reason(path: list[str | int], value: object, key: str, reason: str) -> None:
    with pytest.raises(PolicyError) as error:
        parse_policy(_broken(path, value))
    message = str(error.value)
    assert key in message
    assert reason in message


def test_an_unknown_key_is_refused_rather_than_ignored() -> None:
    data = shipped()
    data["escalation"]["warn_at_pecent"] = 80  # type: ignore[index]
    with pytest.raises(PolicyError, match=r"escalation\.warn_at_pecent"):
        parse_policy(yaml.safe_dump(data, allow_unicode=True))


def test_a_file_that_is_not_yaml_is_reported_as_such() -> None:
    with pytest.raises(PolicyError, match="not valid YAML"):
        parse_policy("complaints: [unclosed")


def test_kefu_policy_check_reports_a_bad_file_on_stderr_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(_broken(["escalation", "reminder_interval"], "soon"), encoding="utf-8")
    assert main(["policy", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "escalation.reminder_interval" in err and "Traceback" not in err
    assert main(["policy", "check", str(DEFAULT_POLICY_FILE)]) == 0


def test_a_bad_configured_policy_stops_the_command_before_it_does_anything(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(_broken(["complaints", "callback", "due"], "three days"), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "kefu", "deadlines", "--severity", "general", "--received-at", "2026-03-10T10:00"],
        capture_output=True,
        text=True,
        env={"KEFU_POLICY_FILE": str(bad), "PATH": "/usr/bin:/bin", "KEFU_VAR_DIR": str(tmp_path)},
        check=False,
    )
    assert result.returncode == 2
    assert "complaints.callback.due" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_the_shipped_policy_says_who_may_answer_every_human_step_of_a_complaint_case_and_names_no_other() -> None:
    from kefu.flows.complaint_case import STEPS

    policy = load_policy(DEFAULT_POLICY_FILE)
    assert set(policy.roles.complaint_steps) == set(STEPS)
    assert "admin" not in {r.value for roles in policy.roles.complaint_steps.values() for r in roles}
