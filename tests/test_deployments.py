"""What Kefu serves follows the policy file (cron schedules on its time zone) and the run contract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kefu.deployments import all_deployments
from kefu.engine.contract import CASE_PARAMETER, COMPLAINT_CASE_DEPLOYMENT, COMPLAINT_CASE_FLOW
from kefu.settings import DEFAULT_POLICY_FILE, get_settings


@pytest.fixture
def policy_in_urumqi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    data = yaml.safe_load(DEFAULT_POLICY_FILE.read_text(encoding="utf-8"))
    data["timezone"] = "Asia/Urumqi"
    policy_file = tmp_path / "kefu.yaml"
    policy_file.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("KEFU_POLICY_FILE", str(policy_file))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("policy_in_urumqi")
def test_every_cron_schedule_runs_on_the_policy_time_zone() -> None:
    schedules = [s.schedule for d in all_deployments() for s in d.deployment.schedules or []]
    assert schedules, "no scheduled deployment"
    assert {s.timezone for s in schedules} == {"Asia/Urumqi"}


def test_the_case_deployment_is_served_under_the_run_contracts_names() -> None:
    [case] = [d for d in all_deployments() if d.flow.name == COMPLAINT_CASE_FLOW]
    assert f"{case.flow.name}/{case.name}" == COMPLAINT_CASE_DEPLOYMENT
    assert list(case.flow.parameters.properties) == [CASE_PARAMETER]  # what every creator of case runs passes


def test_the_backup_runs_on_the_policys_schedule_and_time_zone() -> None:
    from kefu.models.policy import current_policy

    [served] = [d for d in all_deployments() if d.name == "backup"]
    [schedule] = served.deployment.schedules
    policy = current_policy()
    assert (schedule.schedule.cron, schedule.schedule.timezone) == (policy.backups.schedule, policy.timezone)
