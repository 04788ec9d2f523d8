"""The statistics report: a known dataset (``tests/reports/dataset.py``, every figure computed by hand) shows the
same figures in the computation, the run page's artifacts, the HTML file, the XLSX workbook and the mail to
management; totals are the sums of their parts; no personal data reaches any of them."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from email.message import Message
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from kefu.models.complaints import CaseEvent, Complaint, Milestone
from kefu.models.db import reading
from kefu.models.enums import Channel, ComplaintStatus, MilestoneId, Severity
from kefu.models.notifications import OutboxAttachment, OutboxMessage
from kefu.models.people import Customer
from kefu.models.policy import Policy
from kefu.notifications import deliver_due
from kefu.settings import get_settings
from kefu.tasks.report_files import artifact_tables, markdown_summary, queue_mail, write_files
from kefu.tasks.reports import Figures, ReportError, compute, last_complete, monthly, parse_period, weekly
from kefu.worktime import WorkCalendar
from tests.reports import dataset
from tests.reports.dataset import EXPECTED, HEADLINE
from tests.support.clock import SHANGHAI
from tests.support.databases import use_database
from tests.support.smtp import SMTPServer

NOW = dt.datetime(2026, 12, 3, 2, 0, tzinfo=dt.UTC)
KEFU = Path(sys.executable).parent / "kefu"


def top_two(policy: Policy) -> Policy:
    """The shipped policy ranking two causes, so the rest are summed as 其他."""
    return policy.model_copy(update={"reports": policy.reports.model_copy(update={"top_causes": 2})})


def november(engine: Engine, policy: Policy) -> Figures:
    with Session(engine) as session:
        dataset.load(session)
    with engine.connect() as connection:
        return compute(connection, policy, WorkCalendar(policy), monthly("2026-11", policy.timezone), now=NOW)


def shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def test_the_november_figures_are_the_ones_computed_by_hand(engine: Engine, policy: Policy) -> None:
    figures = november(engine, top_two(policy))

    assert {t.key: list(t.rows) for t in figures.tables} == EXPECTED
    assert figures.headline == HEADLINE
    assert figures.as_of == dt.datetime(2026, 12, 1, tzinfo=SHANGHAI)


def test_every_total_is_the_sum_of_its_parts(sqlite_engine: Engine, policy: Policy) -> None:
    figures = november(sqlite_engine, top_two(policy))

    for key in ("severity", "category", "channel", "department"):
        *parts, total = figures.table(key).rows
        assert total[1] == sum(row[1] for row in parts) == figures.total
        assert sum(row[2] for row in parts) == pytest.approx(100.0, abs=0.2)
    *parts, total = figures.table("sla").rows
    for column in range(2, 7):
        assert total[column] == sum(row[column] for row in parts)
    for row in figures.table("sla").rows:
        assert row[2] + row[3] + row[4] + row[5] == row[6]  # every milestone in exactly one bucket
    *parts, total = figures.table("causes").rows
    assert (total[2], total[3]) == (sum(r[2] for r in parts), sum(r[3] for r in parts)) == (12, 9)
    *parts, total = figures.table("key-accounts").rows
    assert total[1] == sum(row[1] for row in parts) == 300


def test_a_complaint_arriving_while_the_report_is_computed_cannot_unbalance_its_totals(
    engine: Engine, policy: Policy
) -> None:
    """Every query of a report reads the same moment (on PostgreSQL its parallel reads share one exported snapshot):
    a complaint registered and investigated halfway through the computation is in none of the figures, so the
    departments still add up to the total; the next report counts it."""
    with Session(engine) as session:
        dataset.load(session)

    def register_one_more(stage: str) -> None:
        if stage != "counting departments":
            return
        with Session(engine) as session:
            late = Complaint(
                case_no="TS-2026-9999",
                channel=Channel.PHONE,
                received_at=dt.datetime(2026, 11, 20, 10, tzinfo=SHANGHAI),
                severity=Severity.GENERAL,
                category="配送延误",
                status=ComplaintStatus.CLASSIFIED,
                content="计算期间到达的投诉",
            )
            session.add(late)
            session.flush()
            session.add(
                CaseEvent(complaint_id=late.id, actor="staff:1", action="investigate", data={"departments": ["运营部"]})
            )
            session.commit()

    with reading(engine).connect() as connection:  # as the flow and kefu report read
        figures = compute(
            connection,
            top_two(policy),
            WorkCalendar(policy),
            monthly("2026-11", policy.timezone),
            now=NOW,
            progress=register_one_more,
        )

    assert {t.key: list(t.rows) for t in figures.tables} == EXPECTED
    for key in ("severity", "category", "channel", "department"):
        *parts, total = figures.table(key).rows
        assert total[1] == sum(row[1] for row in parts) == figures.total
    with engine.connect() as connection:
        after = compute(connection, policy, WorkCalendar(policy), monthly("2026-11", policy.timezone), now=NOW)
    assert after.total == figures.total + 1
    *parts, total = after.table("department").rows
    assert total[1] == sum(row[1] for row in parts) == after.total


class Tables(HTMLParser):
    """The HTML report's tables as rows of cell texts, by section id."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.section = ""
        self.row: list[str] | None = None
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section":
            self.section = dict(attrs).get("id") or ""
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.row is not None and self.cell is not None:
            self.row.append("".join(self.cell).strip())
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.tables.setdefault(self.section, []).append(self.row)
            self.row = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def text_part(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain" and not part.get_filename():
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode("utf-8")
    raise AssertionError("no text part")


async def test_the_artifacts_html_workbook_and_mail_show_the_same_figures(
    sqlite_engine: Engine, policy: Policy, tmp_path: Path, smtp_server: SMTPServer
) -> None:
    figures = november(sqlite_engine, top_two(policy))
    files = write_files(figures, tmp_path / "reports", NOW)
    assert files.html.name == "kefu-report-monthly-2026-11.html" and files.xlsx.suffix == ".xlsx"
    columns = {t.key: t.columns for t in figures.tables}

    # the run page: one table artifact per table, the markdown summary with every row and the headline
    artifacts = {key: rows for key, _, rows in artifact_tables(figures)}
    for key, rows in EXPECTED.items():
        assert artifacts[f"report-monthly-2026-11-{key}"] == [dict(zip(columns[key], r, strict=True)) for r in rows]
    summary = markdown_summary(figures, files)
    for rows in EXPECTED.values():
        for row in rows:
            assert "| " + " | ".join(shown(v) for v in row) + " |" in summary
    assert "- **投诉总数**：12" in summary and f"/reports/{files.xlsx.name})" in summary
    assert "### 净推荐值（NPS）\n\n暂无数据" in summary

    # the HTML file: the same rows in its tables, charts whose zh-CN text stays text (no glyph outlines)
    html = files.html.read_text(encoding="utf-8")
    parser = Tables()
    parser.feed(html)
    for key, rows in EXPECTED.items():
        assert parser.tables[key] == [list(columns[key]), *[[shown(v) for v in row] for row in rows]]
    assert html.count("<svg") == 5 and "svg.fonttype" not in html
    assert ">按投诉等级</text>" in html and ">一般投诉</text>" in html
    assert "font-family: 'Microsoft YaHei'" in html and '<path id="DejaVuSans' not in html

    # the workbook: one sheet per table, the same values read back, typed
    book = load_workbook(files.xlsx, read_only=True)
    assert book.sheetnames == ["概要", *[t.title for t in figures.tables]]
    for table in figures.tables:
        values = [tuple("" if v is None else v for v in row) for row in book[table.title].iter_rows(values_only=True)]
        assert values[0] == columns[table.key]
        assert values[1 : 1 + len(EXPECTED[table.key])] == EXPECTED[table.key]
    summary_sheet = {row[0]: row[1] for row in book["概要"].iter_rows(min_row=2, values_only=True)}
    assert {k: summary_sheet[k] for k in HEADLINE} == HEADLINE

    # the mail: one per recipient of the policy, every row in its text, both files attached, sent once
    with Session(sqlite_engine) as session:
        queued = queue_mail(session, figures, files, policy, now=NOW)
        session.commit()
        again = queue_mail(session, figures, files, policy, now=NOW)  # the same period again: nothing new
        session.commit()
        assert [m.id for m in again] == [m.id for m in queued] and len(queued) == len(policy.reports.recipients)
        assert session.scalar(select(func.count()).select_from(OutboxAttachment)) == 2 * len(queued)
    await deliver_due(sqlite_engine, NOW, settings=smtp_server.settings)
    await deliver_due(sqlite_engine, NOW + dt.timedelta(minutes=1), settings=smtp_server.settings)
    [received] = smtp_server.handler.received
    message = email.message_from_bytes(received.as_bytes(), policy=email.policy.default)
    assert message["To"] == "management@example.com" and message["Subject"] == "2026年11月投诉统计月报"
    text = text_part(message)
    for rows in EXPECTED.values():
        for row in rows:
            assert "｜".join(shown(v) for v in row) in text
    attached = {part.get_filename(): part.get_payload(decode=True) for part in message.walk() if part.get_filename()}
    assert attached == {files.html.name: files.html.read_bytes(), files.xlsx.name: files.xlsx.read_bytes()}

    # no personal data anywhere: not the customer's name or phone, not the complaint's words
    with zipfile.ZipFile(io.BytesIO(files.xlsx.read_bytes())) as archive:
        workbook_xml = "".join(
            archive.read(name).decode("utf-8") for name in archive.namelist() if name.endswith(".xml")
        )
    for output in (summary, html, workbook_xml, text, str(artifacts)):
        assert dataset.PHONE not in output and dataset.CUSTOMER not in output and "投诉，电话" not in output
    with Session(sqlite_engine) as session:
        assert session.scalar(select(OutboxMessage.status)) == "sent"


def test_periods_are_weeks_and_months_on_the_policys_clock() -> None:
    week = weekly("2026-W47", "Asia/Shanghai")
    assert (week.start, week.end) == (
        dt.datetime(2026, 11, 16, tzinfo=SHANGHAI),
        dt.datetime(2026, 11, 23, tzinfo=SHANGHAI),
    )
    assert (week.title, week.range_text) == ("2026年第47周投诉统计周报", "2026-11-16 至 2026-11-22")
    assert week.previous().label == "2026-W46" and monthly("2026-01", "Asia/Shanghai").previous().label == "2025-12"
    # a scheduled run reports on the period that just ended, in Shanghai time (00:30 on Dec 1 is 16:30 UTC Nov 30)
    assert (
        last_complete("monthly", dt.datetime(2026, 11, 30, 16, 30, tzinfo=dt.UTC), "Asia/Shanghai").label == "2026-11"
    )
    assert last_complete("weekly", dt.datetime(2026, 11, 23, 0, 0, tzinfo=dt.UTC), "Asia/Shanghai").label == "2026-W47"
    for kind, text in (("monthly", "2026-13"), ("monthly", "Nov 2026"), ("weekly", "2026-W54"), ("yearly", "2026")):
        with pytest.raises(ReportError):
            parse_period(kind, text, "Asia/Shanghai")


def test_the_reports_run_weekly_and_monthly_on_the_policys_schedule_and_time_zone(policy: Policy) -> None:
    from kefu.deployments import all_deployments

    served = {d.name: d for d in all_deployments() if d.name.startswith("report-")}
    assert set(served) == {"report-weekly", "report-monthly"}
    for name, cron in (
        ("report-weekly", policy.reports.weekly_schedule),
        ("report-monthly", policy.reports.monthly_schedule),
    ):
        [schedule] = served[name].deployment.schedules
        assert (schedule.schedule.cron, schedule.schedule.timezone) == (cron, "Asia/Shanghai")
        assert served[name].deployment.parameters == {"kind": name.removeprefix("report-")}


def kefu(*args: str, url: str, var: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(var.parent), "KEFU_DATABASE_URL": url, "KEFU_VAR_DIR": str(var)}
    return subprocess.run([str(KEFU), *args], capture_output=True, text=True, env=env, timeout=120, check=False)


def test_kefu_report_monthly_writes_both_files_and_prints_their_paths(sqlite_engine: Engine, tmp_path: Path) -> None:
    with Session(sqlite_engine) as session:
        dataset.load(session)
    url, var = sqlite_engine.url.render_as_string(hide_password=False), tmp_path / "var"

    bad = kefu("report", "monthly", "--month", "2026-13", url=url, var=var)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "YYYY-MM" in bad.stderr
    assert not (var / "reports").exists()

    done = kefu("report", "monthly", "--month", "2026-11", url=url, var=var)
    assert done.returncode == 0, done.stderr
    *_, headline, html, xlsx = done.stdout.strip().splitlines()
    assert headline == "2026年11月投诉统计月报: 12 complaints"
    assert Path(html) == (var / "reports" / "kefu-report-monthly-2026-11.html").resolve() and Path(html).is_file()
    assert Path(xlsx).is_file() and load_workbook(xlsx).sheetnames[1] == "按投诉等级"

    # --mail says what became of the mail: queued now, and on a re-run of the period that it is not queued again
    mailed = kefu("report", "monthly", "--month", "2026-11", "--mail", url=url, var=var)
    assert mailed.returncode == 0, mailed.stderr
    assert mailed.stdout.strip().splitlines()[-1] == (
        "mail to 公司管理层 <management@example.com> queued (internal: leaves at once, both files attached)"
    )
    again = kefu("report", "monthly", "--month", "2026-11", "--mail", url=url, var=var)
    assert again.returncode == 0, again.stderr
    assert re.fullmatch(
        r"mail to 公司管理层 <management@example.com> was queued by an earlier run at 20\d\d-\d\d-\d\d \d\d:\d\d "
        r"\+08:00 and is not queued again \(it carries that run's figures\)",
        again.stdout.strip().splitlines()[-1],
    )


def test_the_monthly_flow_puts_the_figures_on_its_run_page(
    prefect_server: str, sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kefu.flows.statistics_report import statistics_report

    with Session(sqlite_engine) as session:
        dataset.load(session)
    use_database(monkeypatch, sqlite_engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("KEFU_REPORTS_DIR", str(tmp_path / "reports"))
    get_settings.cache_clear()
    try:
        state = statistics_report(kind="monthly", period="2026-11", return_state=True)
    finally:
        get_settings.cache_clear()
    assert state.is_completed()
    artifacts = httpx.post(
        f"{prefect_server}/artifacts/filter",
        json={"artifacts": {"flow_run_id": {"any_": [str(state.state_details.flow_run_id)]}}},
    ).json()
    by_key = {a["key"]: a for a in artifacts}
    assert by_key["report-monthly-2026-11"]["type"] == "markdown"
    assert "- **按时率（%）**：62.5" in by_key["report-monthly-2026-11"]["data"]
    severity = by_key["report-monthly-2026-11-severity"]
    assert severity["type"] == "table"
    assert json.loads(severity["data"]) == [
        dict(zip(("投诉等级", "投诉数", "占比（%）"), r, strict=True)) for r in EXPECTED["severity"]
    ]
    # the files open through the operators' entrance (a file:// link to the server's disk opened nothing)
    link = "http://127.0.0.1:8100/reports/kefu-report-monthly-2026-11.html"
    assert link in by_key["report-monthly-2026-11-files"]["data"]  # Prefect stores a link artifact as markdown
    summary = by_key["report-monthly-2026-11"]["data"]
    assert "(http://127.0.0.1:8100/reports/kefu-report-monthly-2026-11.xlsx)" in summary
    assert (tmp_path / "reports" / "kefu-report-monthly-2026-11.xlsx").is_file()
    with Session(sqlite_engine) as session:
        assert session.scalar(select(func.count()).select_from(OutboxAttachment)) == 2


def test_a_milestone_whose_clock_stands_still_at_the_period_end_is_not_yet_due_and_a_later_pause_undoes_no_breach(
    engine: Engine, policy: Policy
) -> None:
    """等待客户: general complaints of late November, solution due 11-28 and unmet at the period's end. One
    was paused on 11-27 and still waits for the customer on 12-01: its clock stands still, it is not yet due. The
    other was paused on 11-29, after its due time: still breached. A third paused on 11-27 and answered on 11-30 had
    its due time moved by the plan (here: to 12-02) and is not yet due either."""
    with Session(engine) as session:
        customer = Customer(name="暂停客户")
        session.add(customer)
        session.flush()

        def paused(no: str, began: str, ended: str | None, due: str) -> None:
            interval = {"pause": 1, "from": dataset.at(began).isoformat(), "until": None}
            if ended:
                interval |= {"until": dataset.at(ended).isoformat(), "working_hours": 8.0}
            session.add(
                Complaint(
                    case_no=no,
                    channel=Channel.HOTLINE,
                    received_at=dataset.at("11-27 09:00"),
                    severity=Severity.GENERAL,
                    category="延误",
                    status=ComplaintStatus.CLASSIFIED,
                    customer_id=customer.id,
                    content="等待客户回复",
                    milestones=[
                        Milestone(
                            milestone=MilestoneId.SOLUTION,
                            starts_at=dataset.at("11-27 09:00"),
                            due_at=dataset.at(due),
                            unit="hours",
                            target="x",
                            paused_intervals=[interval],
                        )
                    ],
                )
            )

        paused("TS-PAUSE-0001", "11-27 10:00", None, "11-28 09:00")
        paused("TS-PAUSE-0002", "11-29 10:00", None, "11-28 09:00")
        paused("TS-PAUSE-0003", "11-27 10:00", "11-30 10:00", "12-02 09:00")
        session.commit()
    figures = november(engine, top_two(policy))

    solution = next(row for row in figures.table("sla").rows if row[1] == "给出解决方案")
    expected = next(row for row in EXPECTED["sla"] if row[1] == "给出解决方案")
    on_time, late, breached, not_due, total = expected[2:7]
    assert solution[2:7] == (on_time, late, breached + 1, not_due + 2, total + 3)


def test_an_important_complaints_first_contact_has_its_name_and_a_milestone_nothing_decided_has_no_on_time_rate(
    engine: Engine, policy: Policy, tmp_path: Path
) -> None:
    """Found walking issue 16 (December, as of 12-02 23:20): an important complaint's first contact — the general
    rule's milestone it keeps (never later) — was listed as the bare id ``first_contact`` after the major rows, and
    a milestone none of whose cases is decided yet read 按时率 0 % although the note says not-yet-due milestones do
    not count. Now: 与客户取得联系 among the important rows, and "—" where nothing is decided."""
    now = dt.datetime(2026, 12, 2, 23, 20, tzinfo=SHANGHAI)
    with Session(engine) as session:
        customer = Customer(name="十二月客户")
        session.add(customer)
        session.flush()

        def case(no: str, severity: Severity, *milestones: tuple[MilestoneId, str, str | None]) -> None:
            session.add(
                Complaint(
                    case_no=no, channel=Channel.HOTLINE, received_at=dataset.at("12-02 23:00"), severity=severity,
                    status=ComplaintStatus.CLASSIFIED, customer_id=customer.id, content="包裹延误三天",
                    milestones=[
                        Milestone(
                            milestone=m, starts_at=dataset.at("12-02 23:00"), due_at=dataset.at(due), unit="hours",
                            target="x", met_at=dataset.at(met) if met else None,
                        )
                        for m, due, met in milestones
                    ],
                )
            )  # fmt: skip

        case("TS-DEC-0001", Severity.GENERAL, (MilestoneId.FIRST_CONTACT, "12-03 23:00", "12-02 23:10"),
             (MilestoneId.SOLUTION, "12-04 23:00", None))  # fmt: skip
        case("TS-DEC-0002", Severity.IMPORTANT, (MilestoneId.SUPERVISOR_REPORT, "12-03 11:00", None),
             (MilestoneId.FIRST_CONTACT, "12-03 23:00", "12-02 23:15"))  # fmt: skip
        session.commit()
    with engine.connect() as connection:
        figures = compute(connection, policy, WorkCalendar(policy), monthly("2026-12", policy.timezone), now=now)

    assert list(figures.table("sla").rows) == [
        ("一般投诉", "与客户取得联系", 1, 0, 0, 0, 1, 100.0),
        ("一般投诉", "给出解决方案", 0, 0, 0, 1, 1, "—"),
        ("重要投诉", "向上级主管报告", 0, 0, 0, 1, 1, "—"),
        ("重要投诉", "与客户取得联系", 1, 0, 0, 0, 1, 100.0),
        ("合计", "", 2, 0, 0, 2, 4, 100.0),
    ]
    files = write_files(figures, tmp_path, now)
    sheet = load_workbook(files.xlsx)["时限达成情况"]
    assert [c.value for c in sheet[3]] == ["一般投诉", "给出解决方案", 0, 0, 0, 1, 1, "—"]
    assert "first_contact" not in files.html.read_text(encoding="utf-8")


async def test_a_signed_in_person_opens_the_report_files_at_the_entrance_and_nobody_else_does(
    sqlite_engine: Engine, policy: Policy, tmp_path: Path
) -> None:
    """The run page's links lead to /reports/<file> on the entrance: the HTML (its own inline style allowed, no
    script) and the workbook for a signed-in person; the sign-in page for anyone else; only report files."""
    from kefu.desk.app import create_app
    from kefu.models import Role
    from tests.desk.test_signin import desk_settings, sign_in
    from tests.support.desk import PASSWORD, add_person, desk_client

    settings = desk_settings(tmp_path, reports_dir=tmp_path / "reports")
    figures = november(sqlite_engine, top_two(policy))
    files = write_files(figures, settings.resolved_reports_dir, NOW)
    (tmp_path / "var").mkdir(exist_ok=True)
    (tmp_path / "var" / "secret.txt").write_text("SECRET-CONTENT")
    add_person(sqlite_engine, "li.kefu", Role.AGENT)
    async with desk_client(create_app(settings, sqlite_engine)) as http:
        before = await http.get(f"/reports/{files.html.name}")
        assert before.status_code == 303 and before.headers["location"].startswith("/signin")
        await sign_in(http, "li.kefu", PASSWORD)
        html = await http.get(f"/reports/{files.html.name}")
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        assert "style-src 'unsafe-inline'" in html.headers["content-security-policy"]
        assert "script-src" not in html.headers["content-security-policy"]
        assert "2026年11月投诉统计月报" in html.text
        xlsx = await http.get(f"/reports/{files.xlsx.name}")
        assert xlsx.status_code == 200 and xlsx.content == files.xlsx.read_bytes()
        for name in ("kefu-report-monthly-2026-10.html", "secret.txt"):
            missing = await http.get(f"/reports/{name}")
            assert missing.status_code == 404 and "没有这份报告文件" in missing.text
        outside = await http.get("/reports/..%2Fvar%2Fsecret.txt")
        assert outside.status_code == 404 and "SECRET-CONTENT" not in outside.text
