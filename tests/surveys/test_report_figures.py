"""The statistics report reads the surveys: a month with survey answers (by link and by phone) and a complaint
callback shows satisfaction by dimension, the NPS, the response rate and the callback satisfaction in its
artifact table, the HTML file and the workbook, in place of the "no data yet" notes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from openpyxl import load_workbook
from sqlalchemy import Engine, select

from kefu.intake.surveys import validate_answer
from kefu.models.complaints import CaseEvent, Complaint
from kefu.models.db import unit_of_work
from kefu.models.policy import Policy
from kefu.models.surveys import CampaignKind, CollectedBy, Segment, SurveyInvitation
from kefu.tasks.report_files import artifact_tables, markdown_summary, write_files
from kefu.tasks.reports import compute, monthly
from kefu.tasks.surveys import enter_answer, invite, open_campaign, record_answer
from kefu.worktime import WorkCalendar
from tests.support.clock import SHANGHAI
from tests.surveys.support import customers

OPENED = dt.datetime(2026, 11, 10, 10, 0, tzinfo=SHANGHAI)
NOW = dt.datetime(2026, 12, 3, 2, 0, tzinfo=dt.UTC)


def test_the_monthly_report_shows_the_months_satisfaction_nps_and_response_rate(
    engine: Engine, policy: Policy, calendar: WorkCalendar, tmp_path: Path
) -> None:
    with unit_of_work(engine) as session:
        made = customers(session)
        campaign = open_campaign(
            session, policy, calendar, kind=CampaignKind.AD_HOC, segment=Segment.ALL, reason="新品上线",
            launched_by="li.kefu", now=OPENED,
        )  # fmt: skip
        invite(session, policy, calendar, campaign, OPENED)  # SV01, SV02, SV03 invited
        link = session.scalars(select(SurveyInvitation).where(SurveyInvitation.customer_id == made["SV01"].id)).one()
        scores = {key: "3" for key in policy.surveys.dimensions}
        record_answer(session, link, validate_answer(policy, scores, "10", ""), OPENED + dt.timedelta(days=1))
        enter_answer(
            session, policy, campaign_id=campaign.id, customer_code_="SV05", via=CollectedBy.PHONE, login="li.kefu",
            answer=validate_answer(policy, {k: "5" for k in scores}, "6", "还行"), now=OPENED + dt.timedelta(days=2),
        )  # fmt: skip
        case = session.scalars(select(Complaint)).one()
        session.add(
            CaseEvent(complaint_id=case.id, actor="staff:1", action="callback", data={"satisfaction": 4},
                      at=OPENED + dt.timedelta(days=3))
        )  # fmt: skip
    with engine.connect() as connection:
        figures = compute(connection, policy, WorkCalendar(policy), monthly("2026-11", policy.timezone), now=NOW)
    rows = [(label + "（平均分）", 4.0, 2) for label in policy.surveys.dimensions.values()]
    rows += [("净推荐值（NPS）", 0.0, 2), ("调查回复率（%）", 50.0, 4), ("投诉回访满意度（平均分）", 4.0, 1)]
    # (3+5)/2 per dimension; one promoter (10), one detractor (6); of 3 invited and 1 phoned, 2 answered; one callback
    assert figures.table("satisfaction").rows == tuple(rows)
    assert figures.headline["净推荐值（NPS）"] == 0.0
    assert [title for title, _ in figures.pending] == ["员工月度考核"]  # the monthly report has its key-account KPIs

    artifacts = {key: table for key, _, table in artifact_tables(figures)}
    assert artifacts["report-monthly-2026-11-satisfaction"][-2] == {
        "指标": "调查回复率（%）",
        "数值": 50.0,
        "样本数": 4,
    }
    summary = markdown_summary(figures)
    assert "本期没有满意度调查回复" not in summary and "| 产品质量（平均分） | 4 | 2 |" in summary
    files = write_files(figures, tmp_path, NOW)
    html = files.html.read_text(encoding="utf-8")
    assert "客户满意度" in html and "投诉回访满意度（平均分）" in html and "本期没有满意度调查回复" not in html
    sheet = load_workbook(files.xlsx, read_only=True)["客户满意度"]
    read = [tuple(r) for r in sheet.iter_rows(values_only=True)]
    assert read[0] == ("指标", "数值", "样本数") and read[1 : 1 + len(rows)] == rows
