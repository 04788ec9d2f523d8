"""The seed's own examples drive the classification rules, and every value the seeds do not state is marked in the
policy file as a company setting, which ``kefu policy check`` lists (issue 13)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kefu.models.policy import Policy, PolicyError, Severity, parse_policy
from kefu.settings import DEFAULT_POLICY_FILE

KEFU = str(Path(sys.executable).parent / "kefu")


def edited(old: str, new: str) -> str:
    text = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
    assert old in text, old
    return text.replace(old, new)


@pytest.mark.parametrize(
    ("content", "severity", "reason"),
    [
        ("收到的货物产品包装损坏了", Severity.GENERAL, "example:包装损坏"),
        ("电话里客服服务态度不佳", Severity.GENERAL, "example:服务态度不佳"),
        ("这批产品质量缺陷明显", Severity.IMPORTANT, "example:质量缺陷"),
        ("理赔的服务流程不畅，一直没人管", Severity.IMPORTANT, "example:流程不畅"),
        ("产品造成人身伤害", Severity.MAJOR, "example:人身伤害"),
        ("服务导致重大经济损失", Severity.MAJOR, "example:重大经济损失"),
    ],
)
def test_seed_003s_own_examples_propose_their_severity(
    policy: Policy, content: str, severity: Severity, reason: str
) -> None:
    proposed, why = policy.complaints.propose_severity(content, None, key_account=False, urgent=False)
    assert (proposed, why) == (severity, [reason])


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "  escalation.ladder: company\n",
            "",
            "sources: say whether these come from a seed or are company settings: escalation.ladder",
        ),
        ("  escalation.ladder: company", "  escalation.rungs: company", "sources.escalation.rungs: the policy has no"),
        ("  escalation.ladder: company", "  escalation.ladder: the boss said so", "is neither 'company' nor 'seed"),
    ],
)
def test_a_value_the_seeds_do_not_state_must_say_where_it_comes_from(old: str, new: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(edited(old, new))


def test_kefu_policy_check_lists_the_company_settings_and_no_seed_value(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "KEFU_VAR_DIR": str(tmp_path)}
    result = subprocess.run([KEFU, "policy", "check"], capture_output=True, text=True, env=env, check=True)
    lines = result.stdout.splitlines()
    assert lines[1] == "company settings (the seeds state no value; sources: company):"
    listed = {line.strip().partition(":")[0] for line in lines[2:]}
    assert {
        "complaints.classification.important_order_amount",
        "complaints.classification.major_keywords",
        "complaints.key_account_overrides",
        "escalation.warn_at_percent",
        "escalation.ladder",
        "escalation.reminder_interval",
    } <= listed
    assert "  escalation.reminder_interval: 4 working_hours" in lines
    assert not listed & {"complaints.severities", "complaints.classification.seed_examples", "business_windows"}
