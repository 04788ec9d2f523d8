"""The statistics report's outputs, all rendered from one ``Figures`` (``kefu.tasks.reports``): the markdown
summary and tables of the Prefect artifacts, the HTML report with its charts, the XLSX workbook (one sheet per
table) and the mail to the policy's management recipients with both files attached.

Charts are matplotlib SVG with ``svg.fonttype: none``: their zh-CN labels stay text, set in a CJK font list the
reader's machine has (微软雅黑, 苹方, Noto Sans CJK ...), so no glyph turns into a box whatever fonts the server has;
the SVG is inlined in the HTML (one self-contained file).
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import math
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from sqlalchemy.orm import Session

from kefu.models.notifications import OutboxAttachment, OutboxMessage
from kefu.models.policy import Policy
from kefu.notifications import MessageType, enqueue
from kefu.settings import get_settings
from kefu.tasks.reports import TOTAL, Figures, Table
from kefu.worktime import local_time

CJK_FONTS = [
    "Microsoft YaHei",
    "PingFang SC",
    "Hiragino Sans GB",
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "SimHei",
    "sans-serif",
]
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HTML_TYPE = "text/html"


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    xlsx: Path


def load_renderers() -> threading.Thread:
    """Import matplotlib and openpyxl in a background thread: about 2 s in a fresh process (``kefu report``, a
    new worker), spent while the figures' queries wait on the database instead of after them."""

    def load() -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot
        import openpyxl  # noqa: F401

    loader = threading.Thread(target=load, name="kefu-report-renderers", daemon=True)
    loader.start()
    return loader


def _cell(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# --- markdown (the run page's summary artifact) ------------------------------------------------------------


def markdown_table(table: Table) -> str:
    def esc(value: Any) -> str:
        return _cell(value).replace("|", "\\|").replace("\n", " ")

    lines = [f"### {table.title}", "", "| " + " | ".join(table.columns) + " |"]
    lines.append("|" + "---|" * len(table.columns))
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in table.rows]
    if table.note:
        lines += ["", f"*{table.note}*"]
    return "\n".join(lines)


def markdown_summary(figures: Figures, files: ReportFiles | None = None) -> str:
    period = figures.period
    lines = [
        f"# {period.title}",
        "",
        f"统计期间：{period.range_text}（北京时间）；数据截至 {local_time(figures.as_of, period.zone)}。",
        "",
        *[f"- **{name}**：{_cell(value)}" for name, value in figures.headline.items()],
        "",
    ]
    for table in figures.tables:
        lines += [markdown_table(table), ""]
    for title, note in figures.pending:
        lines += [f"### {title}", "", note, ""]
    if files is not None:
        lines += [
            "### 报告文件（登录员工入口后打开）",
            "",
            f"- HTML：[{files.html.name}]({file_url(files.html)})",
            f"- Excel：[{files.xlsx.name}]({file_url(files.xlsx)})",
            "",
        ]
    return "\n".join(lines)


def file_url(path: Path) -> str:
    """Where a signed-in person opens a report file: the operators' entrance serves the reports folder's files (the
    path on the server's disk, or a file:// link, opens nothing in a browser elsewhere)."""
    return f"{get_settings().desk_url}/reports/{path.name}"


def artifact_tables(figures: Figures) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(key, description, rows) of each table artifact: keys are lowercase, digits and dashes (Prefect's rule)."""
    slug = figures.period.slug.lower()
    return [(f"report-{slug}-{t.key}", f"{figures.period.title}：{t.title}", t.records()) for t in figures.tables]


# --- charts ------------------------------------------------------------------------------------------------


def _svg(draw: Any) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context(
        {"svg.fonttype": "none", "font.family": "sans-serif", "font.sans-serif": CJK_FONTS, "svg.hashsalt": "kefu"}
    ):
        fig, ax = plt.subplots(figsize=(7, 3.2))
        fig.subplots_adjust(left=0.3, right=0.95, top=0.88, bottom=0.12)  # room for the labels, no layout pass
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the server may lack the CJK glyphs: the reader's machine draws them
                logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
                draw(ax)
                out = io.StringIO()
                fig.savefig(out, format="svg", metadata={"Date": None})
        finally:
            plt.close(fig)
    svg = out.getvalue()
    return svg[svg.index("<svg") :]


def _bars(table: Table, label: str, value: str, title: str) -> str:
    rows = [r for r in table.records() if r[label] != TOTAL]

    def draw(ax: Any) -> None:
        names = [str(r[label]) for r in rows]
        values = [r[value] for r in rows]
        lengths = [v if isinstance(v, int | float) else 0 for v in values]  # "—": no rate, no bar
        bars = ax.barh(names[::-1], lengths[::-1], color="#3b6ea8")
        ax.bar_label(bars, labels=[_cell(v) for v in values[::-1]], padding=3)
        ax.set_title(title)
        ax.spines[["top", "right"]].set_visible(False)

    return _svg(draw)


def _causes_chart(table: Table) -> str:
    rows = [r for r in table.records() if r["原因分类"] != TOTAL]

    def draw(ax: Any) -> None:
        names = [str(r["原因分类"]) for r in rows][::-1]
        y = list(range(len(names)))
        ax.barh([i + 0.2 for i in y], [r["本期"] for r in rows][::-1], height=0.4, label="本期", color="#3b6ea8")
        ax.barh([i - 0.2 for i in y], [r["上期"] for r in rows][::-1], height=0.4, label="上期", color="#b0b8c4")
        ax.set_yticks(y, names)
        ax.legend()
        ax.set_title("主要投诉原因：本期与上期")
        ax.spines[["top", "right"]].set_visible(False)

    return _svg(draw)


def _trend_chart(table: Table) -> str:
    """One line per dimension over the 12 months; a month without answers is a gap in each line. The score axis spans
    whole points around the averages (at least one), so a small move does not look like a big one."""
    months = [str(m) for m in table.column("月份")]
    dimensions = [c for c in table.columns if c not in ("月份", "净推荐值（NPS）", "答卷数")]

    def draw(ax: Any) -> None:
        ax.figure.set_size_inches(7, 3.6)
        ax.figure.subplots_adjust(left=0.08, right=0.78, top=0.9, bottom=0.2)
        x = list(range(len(months)))
        for name in dimensions:
            values = [v if isinstance(v, int | float) else float("nan") for v in table.column(name)]
            ax.plot(x, values, marker="o", markersize=3, label=name)
        ax.set_xticks(x, months, rotation=45, ha="right", fontsize=8)
        shown = [v for name in dimensions for v in table.column(name) if isinstance(v, int | float)]
        low = math.floor(min(shown)) if shown else 0
        ax.set_ylim(low, max(math.ceil(max(shown)) if shown else 1, low + 1))
        ax.set_ylabel("平均分")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
        ax.set_title("各维度满意度：近12个月")
        ax.spines[["top", "right"]].set_visible(False)

    return _svg(draw)


def charts(figures: Figures) -> dict[str, str]:
    """Inline SVG per table key (the tables a chart helps read)."""
    sla = figures.table("sla")
    sla_rows = Table(
        sla.key,
        sla.title,
        ("节点", "按时率（%）"),
        tuple((f"{r[0]}·{r[1]}", r[-1]) for r in sla.rows if r[0] != TOTAL),
    )
    trend = {t.key: _trend_chart(t) for t in figures.tables if t.key == "satisfaction-trend"}
    return {
        **trend,
        "severity": _bars(figures.table("severity"), "投诉等级", "投诉数", "按投诉等级"),
        "channel": _bars(figures.table("channel"), "受理渠道", "投诉数", "按受理渠道"),
        "department": _bars(figures.table("department"), "责任部门", "投诉数", "按责任部门"),
        "sla": _bars(sla_rows, "节点", "按时率（%）", "各时限节点按时率（%）"),
        "causes": _causes_chart(figures.table("causes")),
    }


# --- files -------------------------------------------------------------------------------------------------

_env = Environment(loader=PackageLoader("kefu.tasks", "templates"), undefined=StrictUndefined, autoescape=True)


def render_html(figures: Figures, generated_at: dt.datetime) -> str:
    from markupsafe import Markup

    tz = figures.period.zone
    return _env.get_template("statistics_report.html.j2").render(
        figures=figures,
        period=figures.period,
        as_of=local_time(figures.as_of, tz),
        generated_at=local_time(generated_at, tz),
        charts={key: Markup(svg) for key, svg in charts(figures).items()},  # noqa: S704 - matplotlib's own SVG
        cell=_cell,
    )


def _sheet_name(title: str, taken: set[str]) -> str:
    name = "".join("_" if ch in "[]:*?/\\" else ch for ch in title)[:31]
    while name in taken:
        name = name[:29] + str(len(taken))
    taken.add(name)
    return name


def render_xlsx(figures: Figures, generated_at: dt.datetime) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    summary = book.active
    assert summary is not None
    summary.title = "概要"
    tz = figures.period.zone
    summary.append([figures.period.title])
    summary["A1"].font = Font(bold=True, size=14)
    summary.append(["统计期间", f"{figures.period.range_text}（北京时间）"])
    summary.append(["数据截至", local_time(figures.as_of, tz)])
    summary.append(["生成时间", local_time(generated_at, tz)])
    for name, value in figures.headline.items():
        summary.append([name, value])
    for title, note in figures.pending:
        summary.append([title, note])
    taken = {"概要"}
    for table in figures.tables:
        sheet = book.create_sheet(_sheet_name(table.title, taken))
        sheet.append(list(table.columns))
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in table.rows:
            sheet.append(list(row))
        if table.note:
            sheet.append([])
            sheet.append([table.note])
        for index, column in enumerate(table.columns, start=1):
            sheet.column_dimensions[sheet.cell(1, index).column_letter].width = max(10, 2 * len(column) + 2)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _write(path: Path, content: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(content)
    partial.replace(path)


def write_files(figures: Figures, directory: Path, generated_at: dt.datetime) -> ReportFiles:
    """``kefu-report-monthly-2026-11.html`` and ``.xlsx`` under ``directory`` (written whole, then renamed)."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"kefu-report-{figures.period.slug}"
    files = ReportFiles(directory / f"{stem}.html", directory / f"{stem}.xlsx")
    _write(files.html, render_html(figures, generated_at).encode("utf-8"))
    _write(files.xlsx, render_xlsx(figures, generated_at))
    return files


# --- the mail ----------------------------------------------------------------------------------------------


def mail_context(figures: Figures, recipient_name: str) -> dict[str, Any]:
    return {
        "recipient_name": recipient_name,
        "period_title": figures.period.title,
        "period_range": figures.period.range_text,
        "total": figures.total,
        "tables": [
            {"title": t.title, "columns": list(t.columns), "rows": [[_cell(v) for v in row] for row in t.rows]}
            for t in figures.tables
        ],
        "pending": [{"title": title, "note": note} for title, note in figures.pending],
    }


def queue_mail(
    session: Session, figures: Figures, files: ReportFiles, policy: Policy, *, now: dt.datetime
) -> list[OutboxMessage]:
    """One mail per management recipient (linted; internal, so it leaves at once), both files attached; once per
    period and recipient (a re-run of the same period queues nothing new)."""
    attachments: Sequence[tuple[Path, str]] = ((files.html, HTML_TYPE), (files.xlsx, XLSX_TYPE))
    rows = []
    for recipient in policy.reports.recipients:
        key = f"report:{figures.period.slug}:{recipient.email}"
        before = session.query(OutboxMessage.id).filter(OutboxMessage.dedupe_key == key).first()
        row = enqueue(
            session,
            MessageType.STATISTICS_REPORT,
            recipient_email=recipient.email,
            context=mail_context(figures, recipient.name),
            dedupe_key=key,
            now=now,
        )
        if before is None:
            for path, media_type in attachments:
                session.add(
                    OutboxAttachment(
                        message_id=row.id, filename=path.name, media_type=media_type, content=path.read_bytes()
                    )
                )
            session.flush()
        rows.append(row)
    return rows
