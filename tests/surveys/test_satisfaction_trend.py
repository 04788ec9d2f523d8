"""The statistics report shows satisfaction over the last 12 months (满意度趋势): one row per month on the policy's
clock (Shanghai), each dimension's average, the NPS and the number of answers, "—" and 0 for a month without answers;
the same rows in the computation, the run page's artifact, the HTML report (with its chart) and the workbook.

The answers below fall around month ends where Shanghai and UTC disagree: counted by UTC month, the December 2025
answer would be November's (outside the window), October's would be September's, and one of November's October's."""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from kefu.models.db import unit_of_work
from kefu.models.people import Customer
from kefu.models.policy import Policy
from kefu.models.surveys import CampaignKind, CollectedBy, Segment, SurveyAnswer, SurveyCampaign
from kefu.tasks.report_files import artifact_tables, markdown_summary, queue_mail, write_files
from kefu.tasks.reports import Figures, compute, monthly, weekly
from kefu.worktime import WorkCalendar
from tests.support.clock import SHANGHAI

NOW = dt.datetime(2026, 12, 3, 2, 0, tzinfo=dt.UTC)
DIMENSIONS = ("product_quality", "service_level", "price", "brand_image", "service_attitude", "logistics_speed")
EMPTY = ("—",) * 7 + (0,)


def at(*when: int) -> dt.datetime:
    return dt.datetime(*when, tzinfo=SHANGHAI)  # type: ignore[misc]


# (answered at, Shanghai time; every dimension's score; product quality's, when different; NPS)
ANSWERS = [
    (at(2025, 11, 30, 20, 0), 1, None, 0),  # November 2025: before the window of the November 2026 report
    (at(2025, 12, 1, 7, 30), 4, 2, 10),  # 2025-11-30 23:30 UTC: December in Shanghai, inside the window
    (at(2026, 3, 10, 9, 0), 5, 1, 9),
    (at(2026, 3, 11, 9, 0), 3, None, 6),
    (at(2026, 3, 31, 23, 0), 2, None, 8),  # 15:00 UTC, still March
    (at(2026, 10, 1, 0, 30), 5, None, 3),  # 2026-09-30 16:30 UTC: October in Shanghai
    (at(2026, 11, 1, 7, 0), 4, None, 9),  # 2026-10-31 23:00 UTC: November in Shanghai
    (at(2026, 11, 15, 14, 0), 3, None, 10),
    (at(2026, 12, 1, 0, 30), 1, None, 0),  # 2026-11-30 16:30 UTC: December, after the November report's window
]
NOVEMBER_TREND = [
    ("2025-12", 2.0, 4.0, 4.0, 4.0, 4.0, 4.0, 100.0, 1),
    ("2026-01", *EMPTY),
    ("2026-02", *EMPTY),
    ("2026-03", 2.0, *(3.33,) * 5, 0.0, 3),  # (1+3+2)/3 and (5+3+2)/3; one promoter, one detractor of three
    *((f"2026-{m:02d}", *EMPTY) for m in range(4, 10)),
    ("2026-10", *(5.0,) * 6, -100.0, 1),
    ("2026-11", *(3.5,) * 6, 100.0, 2),
]


def load(engine: Engine) -> None:
    with Session(engine) as session:
        campaign = SurveyCampaign(
            kind=CampaignKind.AD_HOC, segment=Segment.ALL, reason="满意度跟踪", launched_by="li.kefu",
            opened_at=at(2025, 11, 1), closes_at=at(2026, 12, 31),
        )  # fmt: skip
        people = [Customer(code=f"TR{n:02d}", name=f"趋势客户{n}") for n in range(len(ANSWERS))]
        session.add_all([campaign, *people])
        session.flush()
        for person, (answered, score, product, nps) in zip(people, ANSWERS, strict=True):
            scores = dict.fromkeys(DIMENSIONS, score) | ({"product_quality": product} if product else {})
            session.add(
                SurveyAnswer(
                    campaign_id=campaign.id, customer_id=person.id, scores=scores, nps=nps,
                    collected_by=CollectedBy.PHONE, answered_at=answered,
                )
            )  # fmt: skip
        session.commit()


def figures_of(engine: Engine, policy: Policy, period: str) -> Figures:
    zone = policy.timezone
    chosen = weekly(period, zone) if "W" in period else monthly(period, zone)
    with engine.connect() as connection:
        return compute(connection, policy, WorkCalendar(policy), chosen, now=NOW)


class SectionRows(HTMLParser):
    """The cell texts of one section's table in the HTML report."""

    def __init__(self, section: str) -> None:
        super().__init__()
        self.wanted, self.inside = section, False
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section":
            self.inside = dict(attrs).get("id") == self.wanted
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def test_the_monthly_report_shows_each_of_the_last_12_shanghai_months_satisfaction_nps_and_answers(
    engine: Engine, policy: Policy, tmp_path: Path
) -> None:
    load(engine)
    figures = figures_of(engine, policy, "2026-11")

    trend = figures.table("satisfaction-trend")
    assert trend.title == "满意度趋势（近12个月）"
    assert trend.columns == ("月份", *policy.surveys.dimensions.values(), "净推荐值（NPS）", "答卷数")
    assert list(trend.rows) == NOVEMBER_TREND
    assert "截至本月（2026-11）的12个月" in trend.note
    # the month's own figures agree with the trend's last row
    satisfaction = figures.table("satisfaction")
    assert satisfaction.rows[:7] == (
        *((f"{label}（平均分）", 3.5, 2) for label in policy.surveys.dimensions.values()),
        ("净推荐值（NPS）", 100.0, 2),
    )
    assert not any(title.startswith("客户满意度") for title, _ in figures.pending)

    artifacts = {key: rows for key, _, rows in artifact_tables(figures)}
    assert artifacts["report-monthly-2026-11-satisfaction-trend"] == trend.records()
    assert "| 2026-03 | 2 | 3.33 | 3.33 | 3.33 | 3.33 | 3.33 | 0 | 3 |" in markdown_summary(figures)

    files = write_files(figures, tmp_path, NOW)
    sheet = load_workbook(files.xlsx, read_only=True)["满意度趋势（近12个月）"]
    read = [tuple(row) for row in sheet.iter_rows(values_only=True)]
    assert read[0] == trend.columns and read[1:13] == NOVEMBER_TREND

    html = files.html.read_text(encoding="utf-8")
    parser = SectionRows("satisfaction-trend")
    parser.feed(html)
    assert parser.rows == [list(trend.columns), *([shown(v) for v in row] for row in NOVEMBER_TREND)]
    section = html[html.index('<section id="satisfaction-trend">') : html.index("</section>", html.index("趋势"))]
    chart = section[section.index("<svg") : section.index("</svg>")]
    assert "各维度满意度：近12个月" in chart and all(label in chart for label in policy.surveys.dimensions.values())
    assert re.search(r"<text[^>]*>2026-11</text>", chart)  # the months are text too (svg.fonttype none)

    with unit_of_work(engine) as session:
        [mail] = queue_mail(session, figures, files, policy, now=NOW)[:1]
        body = mail.body_text
    assert "【满意度趋势（近12个月）】" in body and "2026-03｜2｜3.33｜3.33｜3.33｜3.33｜3.33｜0｜3" in body


def test_a_weekly_report_trends_up_to_the_month_its_week_ends_in_and_a_month_without_answers_keeps_only_its_own_notes(
    engine: Engine, policy: Policy
) -> None:
    load(engine)

    week = figures_of(engine, policy, "2026-W49")  # Monday 30 November to Sunday 6 December 2026
    trend = week.table("satisfaction-trend")
    assert [row[0] for row in trend.rows] == [f"2026-{m:02d}" for m in range(1, 13)]
    assert trend.rows[-1] == ("2026-12", *(1.0,) * 6, -100.0, 1) and trend.rows[-2][-1] == 2
    assert "截至本周结束所在月份（2026-12）的12个月，该月计至本周末" in trend.note

    # September 2026 has no answer in Shanghai time (its last one by UTC is October's): no satisfaction table, its
    # NPS and response rate have no data, but the trend has and shows; December 2025 is its fourth month.
    september = figures_of(engine, policy, "2026-09")
    assert "satisfaction" not in {t.key for t in september.tables}
    assert [title for title, _ in september.pending][:2] == ["净推荐值（NPS）", "调查回复率"]
    assert not any(title.startswith("客户满意度") for title, _ in september.pending)
    rows = september.table("satisfaction-trend").rows
    assert rows[-1] == ("2026-09", *EMPTY) and rows[2] == NOVEMBER_TREND[0] and rows[1][-1] == 1  # 2025-11
