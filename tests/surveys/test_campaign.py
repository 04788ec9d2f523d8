"""A campaign end to end, as people run it: ``kefu survey launch`` runs the campaign flow on the Prefect server
(the fatigue cap skips one customer), the invitations go out through the local mail sink, two customers answer
through the form (a key account with a low score: its team is alerted), one is entered by phone, a comment becomes
a complaint with one command, and the daily sweep closes the campaign with its results on the run page."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from kefu.intake.app import create_app
from kefu.models.complaints import CaseEvent, Complaint
from kefu.models.db import unit_of_work
from kefu.models.intake import IntakeOutbox
from kefu.models.notifications import OutboxMessage
from kefu.models.policy import Policy
from kefu.models.surveys import CollectedBy, SurveyAnswer, SurveyCampaign
from kefu.notifications import deliver_due
from tests.support.databases import use_database
from tests.support.processes import free_port
from tests.support.samples import intake_settings
from tests.support.smtp import SMTPServer
from tests.surveys.support import answer_form, customers, survey_tokens

KEFU = str(Path(sys.executable).parent / "kefu")


def kefu(home: Path, api_url: str, db_url: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "KEFU_PREFECT_API_URL": api_url,
        "KEFU_DATABASE_URL": db_url,
    }
    return subprocess.run([KEFU, *argv], env=env, capture_output=True, text=True, timeout=180, check=False)


def artifacts(api_url: str, flow_run: str) -> dict[str, dict[str, Any]]:
    """The run's artifacts by key (the newest of each)."""
    found = httpx.post(
        f"{api_url}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [flow_run]}}}, timeout=30
    )
    found.raise_for_status()
    return {a["key"]: a for a in sorted(found.json(), key=lambda a: a["created"])}


def table(artifact: dict[str, Any]) -> list[dict[str, Any]]:
    import json

    data = artifact["data"]
    return list(json.loads(data) if isinstance(data, str) else data)


@pytest.mark.slow
async def test_a_campaign_goes_out_is_answered_by_form_and_phone_alerts_a_team_and_closes_with_its_results(
    sqlite_engine: Engine,
    prefect_server: str,
    smtp_server: SMTPServer,
    policy: Policy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine, url = sqlite_engine, sqlite_engine.url.render_as_string(hide_password=False)
    with unit_of_work(engine) as session:
        customers(session)

    # An ad hoc campaign, launched by a person: a flow run on the Prefect server.
    down = kefu(tmp_path, f"http://127.0.0.1:{free_port()}/api", url, "survey", "launch", "--segment", "all",
                "--reason", "新品上线")  # fmt: skip
    assert down.returncode == 1 and "kefu survey launch: the Prefect server at" in down.stderr
    with unit_of_work(engine) as session:
        assert session.scalars(select(SurveyCampaign)).all()[-1].reason == "上月专项调查"  # nothing opened
    empty = kefu(tmp_path, prefect_server, url, "survey", "launch", "--segment", "all", "--reason", " ")
    assert empty.returncode == 2 and "--reason is empty" in empty.stderr
    stranger = kefu(tmp_path, prefect_server, url, "survey", "launch", "--segment", "key", "--reason", "新品上线",
                    "--as", "nobody")  # fmt: skip
    assert stranger.returncode == 2 and "no active staff member with login 'nobody'" in stranger.stderr
    launched = kefu(tmp_path, prefect_server, url, "survey", "launch", "--segment", "all", "--reason", "新品上线",
                    "--as", "li.kefu")  # fmt: skip
    assert launched.returncode == 0, launched.stderr
    lines = launched.stdout.splitlines()
    campaign_id = int(re.match(r"survey campaign (\d+): 3 invited, 2 skipped", lines[0]).group(1))  # type: ignore[union-attr]
    run_id = re.match(r"flow run ([0-9a-f-]{36})", lines[1]).group(1)  # type: ignore[union-attr]
    # Prefect's own line points at the run through the operators' entrance (the server asks for its auth string)
    assert f"View at http://127.0.0.1:8100/prefect/runs/flow-run/{run_id}" in launched.stderr
    assert "  skipped SV04: 近90天内已被邀请2次（调查与回访合计，上限2次）" in lines
    assert "  skipped SV05: 未留邮箱，无法发送问卷（可电话访谈）" in lines
    opened_run = artifacts(prefect_server, run_id)
    assert opened_run[f"survey-{campaign_id}-inviting"]["data"] == 100.0
    summary = opened_run[f"survey-{campaign_id}-summary"]["data"]
    assert "| SV04 | 近90天内已被邀请2次（调查与回访合计，上限2次） |" in summary and "李四" not in summary
    assert table(opened_run[f"survey-{campaign_id}-progress"]) == [
        {"客户类别": "重点客户", "已邀请": 2, "已打开": 0, "已答复": 0},
        {"客户类别": "一般客户", "已邀请": 1, "已打开": 0, "已答复": 0},
        {"客户类别": "合计", "已邀请": 3, "已打开": 0, "已答复": 0},
    ]

    # The invitations leave in the business window, through the mail sink.
    with unit_of_work(engine) as session:
        due = max(m.not_before for m in session.scalars(select(OutboxMessage)))
        tokens = survey_tokens(session)
        campaign = session.get(SurveyCampaign, campaign_id)
        assert campaign is not None and campaign.launched_by == "li.kefu"
        closes_at = campaign.closes_at
    await deliver_due(engine, now=due, settings=smtp_server.settings)
    received = {str(m["To"]) for m in smtp_server.handler.received}
    assert received == {"hd@example.com", "nf@example.com", "zs@example.com"}

    # Two answer through the form; the key account's is low (and names a phone number).
    app = create_app(intake_settings(), engine, clock=lambda: due + dt.timedelta(hours=1))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake.test") as http:
        assert (await http.get(f"/survey/{tokens['hd@example.com']}")).status_code == 200
        low = answer_form(policy, 2, 3, "上次的货物破损一直没人处理，请回电13800138001")
        assert (await http.post(f"/survey/{tokens['hd@example.com']}", data=low)).status_code == 200
        assert (
            await http.post(f"/survey/{tokens['zs@example.com']}", data=answer_form(policy, 4, 9))
        ).status_code == 200
    with unit_of_work(engine) as session:
        alert = session.scalars(select(OutboxMessage).where(OutboxMessage.message_type == "survey_low_score")).one()
        assert alert.recipient == "chen@kefu.example.com" and alert.internal
        assert "SV01" in alert.subject and "服务态度2分" in alert.body_text and "推荐意愿3分" in alert.body_text
        assert "138****8001" in alert.body_text and "13800138001" not in alert.body_text
        key_answer = session.scalars(select(SurveyAnswer).where(SurveyAnswer.nps == 3)).one().id

    # The customer without e-mail answers by phone; a bad score is named and records nothing.
    phone = ["survey", "enter", "SV05", "--campaign", str(campaign_id), "--via", "phone", "--as", "li.kefu"]
    scores = ",".join(f"{label}=5" for label in policy.surveys.dimensions.values())
    bad = kefu(
        tmp_path, prefect_server, url, *phone, "--scores", scores.replace("服务态度=5", "服务态度=6"), "--nps", "10"
    )
    assert bad.returncode == 2 and "service_attitude" in bad.stderr and "1到5" in bad.stderr
    assert "nothing recorded" in bad.stderr
    entered = kefu(tmp_path, prefect_server, url, *phone, "--scores", scores, "--nps", "10", "--comment", "满意")
    assert entered.returncode == 0, entered.stderr
    twice = kefu(tmp_path, prefect_server, url, *phone, "--scores", scores, "--nps", "10")
    assert twice.returncode == 2 and "already answered" in twice.stderr
    with unit_of_work(engine) as session:
        by_phone = session.scalars(select(SurveyAnswer).where(SurveyAnswer.collected_by == CollectedBy.PHONE)).one()
        assert by_phone.entered_by is not None and by_phone.entered_by.login == "li.kefu" and by_phone.nps == 10

    # The key account's comment becomes a complaint with one command: content copied, linked, its case run queued.
    made = kefu(tmp_path, prefect_server, url, "survey", "to-complaint", str(key_answer), "--as", "li.kefu")
    assert made.returncode == 0, made.stderr
    case_no = re.search(r"complaint (KF\d{8}-\d{5}) registered", made.stdout).group(1)  # type: ignore[union-attr]
    again = kefu(tmp_path, prefect_server, url, "survey", "to-complaint", str(key_answer), "--as", "li.kefu")
    assert again.returncode == 0 and f"is complaint {case_no} already" in again.stdout
    with unit_of_work(engine) as session:
        complaint = session.scalars(select(Complaint).where(Complaint.case_no == case_no)).one()
        assert complaint.content.startswith("上次的货物破损一直没人处理，请回电13800138001")
        assert complaint.customer is not None and complaint.customer.code == "SV01"
        assert session.get(SurveyAnswer, key_answer).complaint_id == complaint.id  # type: ignore[union-attr]
        assert session.scalars(select(IntakeOutbox).where(IntakeOutbox.case_no == case_no)).one()
        linked = session.scalars(select(CaseEvent).where(CaseEvent.action == "from_survey")).one()
        assert linked.data["survey_answer"] == key_answer

    # The daily sweep: progress while open, then the close with the results.
    from kefu.flows.survey_campaign import survey_sweep

    use_database(monkeypatch, url)
    try:
        during = survey_sweep(at=closes_at - dt.timedelta(days=1))
        after = survey_sweep(at=closes_at + dt.timedelta(minutes=5))
    finally:
        from kefu.settings import get_settings

        get_settings.cache_clear()
    assert during["open"] == [campaign_id] and during["closed"] == []
    assert after["closed"] == [campaign_id]
    assert table(artifacts(prefect_server, during["flow_run"])[f"survey-{campaign_id}-progress"]) == [
        {"客户类别": "重点客户", "已邀请": 2, "已打开": 1, "已答复": 1},
        {"客户类别": "一般客户", "已邀请": 1, "已打开": 1, "已答复": 2},
        {"客户类别": "合计", "已邀请": 3, "已打开": 2, "已答复": 3},
    ]
    results = table(artifacts(prefect_server, after["flow_run"])[f"survey-{campaign_id}-results"])
    expected = [
        {"指标": f"{label}（平均分）", "数值": 3.67, "答卷数": 3} for label in policy.surveys.dimensions.values()
    ]
    expected += [
        {"指标": "净推荐值（NPS）", "数值": 33.3, "答卷数": 3},
        {"指标": "回复率（%）", "数值": 75.0, "答卷数": 3},
    ]
    assert results == expected  # (2+4+5)/3; 2 promoters, 1 detractor of 3; 3 answers of 4 asked
    listed = kefu(tmp_path, prefect_server, url, "survey", "list")
    assert listed.returncode == 0 and f"{campaign_id}  专项调查（全部客户）  closed" in listed.stdout
