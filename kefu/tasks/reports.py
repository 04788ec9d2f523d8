"""The statistics report's figures (seed 003 §3.4: 客服部门应定期对投诉处理情况进行统计和分析，总结投诉产生的原因和
规律，提交公司管理层审议): one computation per period, from which every output is rendered (Prefect artifacts, the
HTML report, the XLSX workbook, the mail; ``kefu.tasks.report_files``).

Vectorised: the counts are SQL aggregates (GROUP BY, SUM(CASE ...)); only the durations needed for medians and
percentiles come back as rows, as numbers, and are reduced with numpy (working time with
``WorkCalendar.working_ns_between``). No ORM objects, no loop over complaints. Personal data is never read: no
customer, no staff name, no complaint text — ids, codes, times and the policy's words only.

What the figures mean:

- The period's complaints are those received in it (Shanghai time, start inclusive, end exclusive); every figure
  is of that cohort, as of ``as_of`` (the period's end, or now for a period not yet over).
- A milestone is met on time when it was met by its due time (a milestone without a due time, e.g. a resolution
  before any promise, counts on time when met), met late when met after it, breached when unmet at ``as_of`` past
  its due time, and not yet due otherwise. Paused time moves the due time; a milestone whose clock stands still at
  ``as_of`` (paused before its due time) is not yet due: see ``paused_milestones``.
- Time to first contact: until the first contact the severity's policy asks for (``first_contact``; important
  complaints: ``progress_update``); time to resolution: until the ``resolution`` milestone was met (the first
  resolution of a reopened case). Each in the unit the policy measures that milestone in: clock hours, or working
  hours for milestones measured in working hours or days.
- Department: the first department named by the case's first investigation (责任部门); causes: the complaint's
  category (原因分类), ranked, the rest summed as 其他, each with its change from the previous period.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Date, bindparam, text

from kefu.models.base import UTCDateTime
from kefu.models.enums import CHANNEL_ZH, Channel, CustomerTier, MilestoneId, Severity
from kefu.models.policy import UNCATEGORISED_CAUSE as UNCATEGORISED
from kefu.models.policy import Policy, Unit
from kefu.worktime import WorkCalendar

Kind = Literal["weekly", "monthly"]
T = TypeVar("T")
NS_PER_HOUR = 3_600_000_000_000
NO_DEPARTMENT = "未指定（尚未调查）"
OTHER_CAUSES = "其他"
TOTAL = "合计"
CLOCK, WORKING = "自然时间", "工作时间"
WORKING_UNITS = (Unit.WORKING_HOURS.value, Unit.WORKING_DAYS.value)
FIRST_CONTACT = (MilestoneId.FIRST_CONTACT.value, MilestoneId.PROGRESS_UPDATE.value)

# Sections a period may have no data for: no survey answers or callbacks, the month's staff assessment not yet
# published. Each is replaced by its table when the period has it.
PENDING_SECTIONS = (
    ("客户满意度（按维度，近12个月趋势）", "暂无数据：本期没有满意度调查回复或投诉回访。"),
    ("净推荐值（NPS）", "暂无数据：本期没有满意度调查回复。"),
    ("调查回复率", "暂无数据：本期没有满意度调查邀请。"),
    ("员工月度考核", "暂无数据：本月员工考核尚未公布。"),
)
ASSESSMENT_PENDING = PENDING_SECTIONS[3][0]  # replaced by the team view once the month's assessment is published


class ReportError(ValueError):
    """A period that cannot be read (``kefu report``: one line, exit 2)."""


# --- periods -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """One report period on the policy's clock: ``2026-11`` (monthly) or ``2026-W47`` (ISO week, Monday first)."""

    kind: Kind
    label: str
    start: dt.datetime  # aware, the policy's time zone; inclusive
    end: dt.datetime  # exclusive

    @property
    def title(self) -> str:
        if self.kind == "monthly":
            return f"{self.start.year}年{self.start.month}月投诉统计月报"
        year, week, _ = self.start.isocalendar()
        return f"{year}年第{week}周投诉统计周报"

    @property
    def range_text(self) -> str:
        last = (self.end - dt.timedelta(days=1)).date()
        return f"{self.start.date().isoformat()} 至 {last.isoformat()}"

    @property
    def zone(self) -> ZoneInfo:
        zone = self.start.tzinfo
        return zone if isinstance(zone, ZoneInfo) else ZoneInfo("Asia/Shanghai")

    @property
    def slug(self) -> str:
        return f"{self.kind}-{self.label}"

    def previous(self) -> Period:
        before = self.start - dt.timedelta(days=1)
        return period_containing(self.kind, before, self.start.tzinfo)


def _tz(zone: dt.tzinfo | str | None) -> dt.tzinfo:
    return ZoneInfo(zone) if isinstance(zone, str) else (zone or ZoneInfo("Asia/Shanghai"))


def monthly(text: str, zone: dt.tzinfo | str | None) -> Period:
    match = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
    if not match or not 1 <= int(match[2]) <= 12:
        raise ReportError(f"'{text}' is not a month; write it as YYYY-MM, e.g. 2026-11")
    tz = _tz(zone)
    year, month = int(match[1]), int(match[2])
    start = dt.datetime(year, month, 1, tzinfo=tz)
    end = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
    return Period("monthly", f"{year:04d}-{month:02d}", start, end)


def weekly(text: str, zone: dt.tzinfo | str | None) -> Period:
    match = re.fullmatch(r"(\d{4})-W(\d{2})", text.strip())
    if not match:
        raise ReportError(f"'{text}' is not an ISO week; write it as YYYY-Www, e.g. 2026-W47")
    try:
        monday = dt.date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError as exc:
        raise ReportError(f"'{text}' is not an ISO week: {exc}") from exc
    tz = _tz(zone)
    start = dt.datetime.combine(monday, dt.time(), tz)
    return Period("weekly", f"{int(match[1]):04d}-W{int(match[2]):02d}", start, start + dt.timedelta(days=7))


def period_containing(kind: Kind, moment: dt.datetime, zone: dt.tzinfo | str | None) -> Period:
    local = moment.astimezone(_tz(zone))
    if kind == "monthly":
        return monthly(f"{local.year:04d}-{local.month:02d}", zone)
    year, week, _ = local.isocalendar()
    return weekly(f"{year:04d}-W{week:02d}", zone)


def parse_period(kind: str, text: str, zone: dt.tzinfo | str | None) -> Period:
    if kind == "monthly":
        return monthly(text, zone)
    if kind == "weekly":
        return weekly(text, zone)
    raise ReportError(f"'{kind}' is not a report kind (weekly, monthly)")


def last_complete(kind: Kind, now: dt.datetime, zone: dt.tzinfo | str | None) -> Period:
    """The last period that ended before ``now`` (what a scheduled run reports on)."""
    return period_containing(kind, now, zone).previous()


# --- the figures ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """One table of the report: the same rows in the artifact, the HTML, a sheet of the workbook and the mail."""

    key: str  # artifact key and sheet order
    title: str  # zh-CN, also the sheet's name
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    note: str = ""

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def column(self, name: str) -> list[Any]:
        index = self.columns.index(name)
        return [row[index] for row in self.rows]


@dataclass(frozen=True)
class Figures:
    period: Period
    previous: Period
    as_of: dt.datetime
    total: int
    reopened: int
    tables: tuple[Table, ...]
    pending: tuple[tuple[str, str], ...] = PENDING_SECTIONS
    headline: dict[str, Any] = field(default_factory=dict)

    def table(self, key: str) -> Table:
        return next(t for t in self.tables if t.key == key)


NO_RATE = "—"  # a rate with nothing to rate


def share(part: int, whole: int) -> float:
    """A percentage with one decimal (0.0 for an empty whole)."""
    return round(100.0 * part / whole, 1) if whole else 0.0


# --- SQL -------------------------------------------------------------------------------------------------


def _epoch(dialect: str, column: str) -> str:
    if dialect == "postgresql":
        return f"date_part('epoch', {column})"  # float8; extract() computes a numeric since PostgreSQL 14
    return f"((julianday({column}) - 2440587.5) * 86400.0)"


def _first_department(dialect: str) -> str:
    if dialect == "postgresql":
        return "(e.data -> 'departments' ->> 0)"
    return "json_extract(e.data, '$.departments[0]')"


def _params(period: Period, as_of: dt.datetime) -> list[Any]:
    return [
        bindparam("start", period.start, type_=UTCDateTime()),
        bindparam("end", period.end, type_=UTCDateTime()),
        bindparam("as_of", as_of, type_=UTCDateTime()),
    ]


IN_PERIOD = "c.received_at >= :start AND c.received_at < :end"


def _query(connection: Connection, sql: str, period: Period, as_of: dt.datetime) -> list[tuple[Any, ...]]:
    used = [p for p in _params(period, as_of) if f":{p.key}" in sql]
    return [tuple(row) for row in connection.execute(text(sql).bindparams(*used)).all()]


PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00"


def _numbers(
    connection: Connection,
    sql: str,
    period: Period,
    as_of: dt.datetime,
    columns: dict[str, Literal["int4", "float8"]],
) -> pd.DataFrame:
    """A query of numbers only (``columns``: each column's PostgreSQL type, none NULL), many rows, as a frame.

    On PostgreSQL through ``COPY ... TO STDOUT (FORMAT BINARY)``, read straight into numpy: every row has the same
    layout, so the whole result is one structured array. A row object per row costs seconds at a million rows
    (measured: 10.6 s for 429,000 rows), and the CSV form spends about a second printing and parsing the floats.
    Elsewhere through the rows."""
    names = list(columns)
    if connection.dialect.name != "postgresql":
        return pd.DataFrame(_query(connection, sql, period, as_of), columns=names)
    values = {"start": period.start, "end": period.end, "as_of": as_of}
    copied = re.sub(r":(start|end|as_of)\b", r"%(\1)s", sql)
    buffer = io.BytesIO()
    driver = connection.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor, cursor.copy(f"COPY ({copied}) TO STDOUT (FORMAT BINARY)", values) as copy:
        for chunk in copy:
            buffer.write(chunk)
    return _binary_rows(buffer.getvalue(), columns)


def _binary_rows(data: bytes, columns: dict[str, Literal["int4", "float8"]]) -> pd.DataFrame:
    """The rows of a binary COPY whose fields are all ``columns`` (int4 or float8, never NULL)."""
    if not data.startswith(PGCOPY_HEADER):
        raise ValueError("not PostgreSQL's binary COPY format")
    extension = int.from_bytes(data[15:19], "big")
    body = data[19 + extension : -2]  # after the header, before the trailer (-1 as a field count)
    layout = [("fields", ">i2")]
    for name, kind in columns.items():
        layout += [(f"{name}_size", ">i4"), (name, ">i4" if kind == "int4" else ">f8")]
    row = np.dtype(layout)
    if len(body) % row.itemsize:
        raise ValueError("a binary COPY row is not the expected layout (a NULL field?)")
    rows = np.frombuffer(body, dtype=row)
    expected = np.array([4 if kind == "int4" else 8 for kind in columns.values()], dtype=np.int32)
    if len(rows) and (
        (rows["fields"] != len(columns)).any()
        or not all((rows[f"{name}_size"] == size).all() for name, size in zip(columns, expected, strict=True))
    ):
        raise ValueError("a binary COPY row is not the expected layout (a NULL field?)")
    return pd.DataFrame(
        {name: rows[name].astype(np.int64 if kind == "int4" else np.float64) for name, kind in columns.items()}
    )


def count_dimensions(connection: Connection, period: Period, as_of: dt.datetime) -> pd.DataFrame:
    """Complaints of the period by severity, category and channel, with how many were reopened."""
    rows = _query(
        connection,
        f"SELECT c.severity, c.category, c.channel, COUNT(*), SUM(CASE WHEN c.reopen_count > 0 THEN 1 ELSE 0 END) "  # noqa: S608 - constant SQL; values are bound
        f"FROM complaints c WHERE {IN_PERIOD} GROUP BY c.severity, c.category, c.channel",
        period,
        as_of,
    )
    frame = pd.DataFrame(rows, columns=["severity", "category", "channel", "n", "reopened"])
    frame["category"] = frame["category"].fillna(UNCATEGORISED)
    return frame.astype({"n": "int64", "reopened": "int64"})


def count_departments(connection: Connection, period: Period, as_of: dt.datetime) -> pd.DataFrame:
    """Complaints of the period investigated by ``as_of``, by the first department their first investigation named
    (``with_uninvestigated`` adds the rest under ``NO_DEPARTMENT``)."""
    dialect = connection.dialect.name
    first = (
        f"f.complaint_id FROM case_events f JOIN complaints c ON c.id = f.complaint_id "
        f"WHERE f.action = 'investigate' AND f.at <= :as_of AND {IN_PERIOD}"
    )
    if dialect == "postgresql":
        # each complaint's first investigation in one sorted pass (a MIN(id) subquery joined back to the events
        # was planned once per parallel worker: 2.2x slower at a million complaints)
        sql = (
            "SELECT department, COUNT(*) FROM ("  # noqa: S608 - constant SQL; values are bound
            "SELECT DISTINCT ON (f.complaint_id) (f.data -> 'departments' ->> 0) AS department, "
            f"{first} ORDER BY f.complaint_id, f.id) d GROUP BY department"
        )
    else:
        sql = (
            f"SELECT {_first_department(dialect)} AS department, COUNT(*) FROM "  # noqa: S608
            f"(SELECT MIN(f.id) AS first_id, {first} GROUP BY f.complaint_id) i "
            "JOIN case_events e ON e.id = i.first_id GROUP BY department"
        )
    return pd.DataFrame(_query(connection, sql, period, as_of), columns=["department", "n"])


def with_uninvestigated(investigated: pd.DataFrame, total: int) -> pd.DataFrame:
    """``count_departments`` completed to the period's ``total``: the complaints not investigated yet (and an
    investigation that named no department) under ``NO_DEPARTMENT``."""
    frame = investigated
    counted = int(frame["n"].sum()) if len(frame) else 0
    if total > counted:
        frame = pd.concat([frame, pd.DataFrame([(None, total - counted)], columns=["department", "n"])])
    frame = frame.assign(department=frame["department"].fillna(NO_DEPARTMENT))
    grouped: pd.DataFrame = frame.groupby("department", as_index=False).agg(n=("n", "sum"))
    return grouped.astype({"n": "int64"})


def count_milestones(connection: Connection, period: Period, as_of: dt.datetime) -> pd.DataFrame:
    """Per severity and milestone: met on time, met late, breached, not yet due (as of ``as_of``)."""
    met = "m.met_at IS NOT NULL AND m.met_at <= :as_of"
    rows = _query(
        connection,
        "SELECT c.severity, m.milestone, "  # noqa: S608 - constant SQL; values are bound
        f"SUM(CASE WHEN {met} AND (m.due_at IS NULL OR m.met_at <= m.due_at) THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN {met} AND m.met_at > m.due_at THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN NOT ({met}) AND m.due_at <= :as_of THEN 1 ELSE 0 END), "
        "COUNT(*) FROM milestones m JOIN complaints c ON c.id = m.complaint_id "
        f"WHERE {IN_PERIOD} GROUP BY c.severity, m.milestone",
        period,
        as_of,
    )
    frame = pd.DataFrame(rows, columns=["severity", "milestone", "on_time", "late", "breached", "total"])
    frame = frame.astype({c: "int64" for c in ("on_time", "late", "breached", "total")})
    return apply_pauses(frame, paused_milestones(connection, period, as_of), as_of)


# ---- Paused time (等待客户: ``kefu case pause``) ---------------------------------------------------------------
# When a pause ends, the case's plan moves the paused milestones' stored due time on by the paused working time
# (``casework.end_pause``), so ended pauses are already in ``due_at``. A pause still under way at ``as_of`` has not
# moved it yet: its clock stands still, so a milestone paused before its due time is not yet due at ``as_of``,
# however long the pause has lasted (the policy's longest pause ends it and moves the due time then). A pause begun
# after the due time does not undo the breach. ``paused_milestones`` returns such milestones with the time that
# carries their due time past ``as_of`` (``paused_ns``); ``apply_pauses`` moves each from the bucket its stored due
# time put it in to the one its paused due time puts it in.
PAUSE_COLUMNS = ["severity", "milestone", "due_ns", "met_ns", "paused_ns"]


def _intervals(value: Any) -> list[dict[str, Any]]:
    loaded = json.loads(value) if isinstance(value, str | bytes) else value
    return [i for i in loaded or [] if isinstance(i, dict)]


def _stands_still(intervals: list[dict[str, Any]], due: dt.datetime, as_of: dt.datetime) -> bool:
    """Whether a pause begun before ``due`` is still under way at ``as_of``."""
    for interval in intervals:
        began = dt.datetime.fromisoformat(str(interval["from"]))
        until = interval.get("until")
        ended = dt.datetime.fromisoformat(str(until)) if until else None
        if began < due and began <= as_of and (ended is None or ended > as_of):
            return True
    return False


def paused_milestones(connection: Connection, period: Period, as_of: dt.datetime) -> pd.DataFrame:
    """The period's milestones unmet at ``as_of`` whose clock stands still then (few rows: only paused ones)."""
    dialect = connection.dialect.name
    rows = _query(
        connection,
        f"SELECT c.severity, m.milestone, {_epoch(dialect, 'm.due_at')}, m.paused_intervals "  # noqa: S608 - constant SQL; values are bound
        "FROM milestones m JOIN complaints c ON c.id = m.complaint_id "
        f"WHERE {IN_PERIOD} AND m.due_at IS NOT NULL AND m.due_at <= :as_of "
        "AND (m.met_at IS NULL OR m.met_at > :as_of) "
        "AND m.paused_intervals IS NOT NULL AND CAST(m.paused_intervals AS TEXT) NOT IN ('[]', 'null')",
        period,
        as_of,
    )
    as_of_ns = int(pd.Timestamp(as_of).value)
    kept = []
    for severity, milestone, due_s, intervals in rows:
        due_ns = round(float(due_s) * 1e6) * 1000  # microseconds, as stored: a float's nanoseconds are noise
        due = pd.Timestamp(due_ns, tz="UTC").to_pydatetime()
        if _stands_still(_intervals(intervals), due, as_of):
            kept.append((severity, milestone, due_ns, np.nan, as_of_ns - due_ns + 1))
    return pd.DataFrame(kept, columns=PAUSE_COLUMNS)


def _bucket(due_ns: pd.Series, met_ns: pd.Series, as_of_ns: int) -> pd.Series:
    met = met_ns.notna() & (met_ns <= as_of_ns)
    on_time = met & (due_ns.isna() | (met_ns <= due_ns))
    late = met & ~on_time
    breached = ~met & due_ns.notna() & (due_ns <= as_of_ns)
    return pd.Series(
        np.select([on_time, late, breached], ["on_time", "late", "breached"], "not_due"), index=due_ns.index
    )


def apply_pauses(counts: pd.DataFrame, paused: pd.DataFrame, as_of: dt.datetime) -> pd.DataFrame:
    """Move paused milestones to the bucket their paused-adjusted due time gives (the hook's other half)."""
    if paused.empty:
        return counts
    as_of_ns = int(pd.Timestamp(as_of).value)
    before = _bucket(paused["due_ns"], paused["met_ns"], as_of_ns)
    after = _bucket(paused["due_ns"] + paused["paused_ns"], paused["met_ns"], as_of_ns)
    counts = counts.set_index(["severity", "milestone"])
    for buckets, sign in ((before, -1), (after, 1)):
        moved = pd.crosstab([paused["severity"], paused["milestone"]], buckets)
        for column in ("on_time", "late", "breached"):
            if column in moved:
                counts[column] = counts[column].add(sign * moved[column], fill_value=0).astype("int64")
    return counts.reset_index()


SEVERITY_CODES = {s.value: i for i, s in enumerate(Severity)}  # small integers: cheap to fetch and group


def fetch_durations(connection: Connection, period: Period, as_of: dt.datetime) -> pd.DataFrame:
    """Every first contact and resolution met in the cohort: the complaint, its severity (``SEVERITY_CODES``),
    whether it is the resolution (1) or a first contact (0), whether its milestone counts working time (1), and its
    start and end (seconds since the epoch). Codes, not words: a million rows of strings cost seconds to group."""
    dialect = connection.dialect.name
    wanted = ", ".join(f"'{m}'" for m in (*FIRST_CONTACT, MilestoneId.RESOLUTION.value))
    severity = " ".join(f"WHEN '{code}' THEN {n}" for code, n in SEVERITY_CODES.items())
    working = ", ".join(f"'{u}'" for u in WORKING_UNITS)
    return _numbers(
        connection,
        f"SELECT c.id, CASE c.severity {severity} END, "  # noqa: S608 - constant SQL; values are bound
        f"CASE WHEN m.milestone = '{MilestoneId.RESOLUTION.value}' THEN 1 ELSE 0 END, "
        f"CASE WHEN m.unit IN ({working}) THEN 1 ELSE 0 END, "
        f"{_epoch(dialect, 'c.received_at')}, {_epoch(dialect, 'm.met_at')} "
        "FROM milestones m JOIN complaints c ON c.id = m.complaint_id "
        f"WHERE {IN_PERIOD} AND m.milestone IN ({wanted}) AND m.met_at IS NOT NULL AND m.met_at <= :as_of",
        period,
        as_of,
        {
            "complaint": "int4",
            "severity": "int4",
            "resolution": "int4",
            "working": "int4",
            "start_s": "float8",
            "end_s": "float8",
        },
    )


KPI_PENDING = ("重点客户KPI", "按月统计：见月度报表。")


def key_account_kpis(connection: Connection, period: Period, policy: Policy) -> Table:
    """重点客户KPI (seed 001 §三.4) of the report's month: each key account's order-processing on-time rate, on-time
    delivery rate and complaint rate from its business figures (``kefu import business``; a month without a
    complaint count counts the account's complaints received in the period), the KPIs below the policy's floors
    (above its ceiling), and a 合计 row of the pooled rates. By customer code: no names."""
    from kefu.tasks.account_scores import below_floor, monthly_kpis

    month = bindparam("month", period.start.date(), type_=Date())
    counted = f"(SELECT COUNT(*) FROM complaints c WHERE c.customer_id = k.id AND {IN_PERIOD})"  # noqa: S608
    sql = (
        "SELECT k.id, k.code, b.orders, b.orders_on_time, b.deliveries_on_time, "  # noqa: S608 - constant SQL; values are bound
        f"COALESCE(b.complaints, {counted}) FROM business_figures b JOIN customers k ON k.id = b.customer_id "
        f"WHERE k.tier = '{CustomerTier.KEY.value}' AND b.month = :month ORDER BY k.code, k.id"
    )
    used = [p for p in _params(period, period.end) if f":{p.key}" in sql]
    rows = connection.execute(text(sql).bindparams(month, *used)).all()
    without = connection.execute(
        text(
            f"SELECT COUNT(*) FROM customers k WHERE k.tier = '{CustomerTier.KEY.value}' "  # noqa: S608 - constant SQL
            "AND NOT EXISTS (SELECT 1 FROM business_figures b WHERE b.customer_id = k.id AND b.month = :month)"
        ).bindparams(month)
    ).scalar_one()
    columns = ("客户编号", "订单数", "订单处理及时率（%）", "准时交付率（%）", "投诉率（%）", "未达标项")
    names = {
        "order_on_time_rate": "订单处理及时率",
        "delivery_on_time_rate": "准时交付率",
        "complaint_rate": "投诉率",
    }
    figures = pd.DataFrame(
        [(r[0], period.start, *r[2:]) for r in rows],
        columns=["customer_id", "month", "orders", "orders_on_time", "deliveries_on_time", "complaints"],
    )
    total = figures.sum(numeric_only=True).to_frame().T.assign(customer_id=0, month=period.start)
    kpis = monthly_kpis(pd.concat([figures, total], ignore_index=True))
    misses = below_floor(kpis, policy.key_accounts.kpi)

    rates = kpis[["order_on_time_rate", "delivery_on_time_rate", "complaint_rate"]].to_numpy(dtype="float64")
    shown = [tuple("—" if np.isnan(v) else round(100.0 * float(v), 1) for v in row) for row in rates]
    missed = ["、".join(names[m] for m in str(text).split(",") if m) or "—" for text in misses]
    table_rows: list[tuple[Any, ...]] = [
        (str(code) if code else f"#{customer_id}", int(orders), *shown[n], missed[n])
        for n, (customer_id, code, orders, *_rest) in enumerate(rows)
    ]
    if rows:
        flagged = sum(1 for text in missed[:-1] if text != "—")
        table_rows.append((TOTAL, int(figures["orders"].sum()), *shown[-1], f"{flagged} 家未达标"))
    rules = policy.key_accounts.kpi
    note = (
        f"考核线：订单处理及时率不低于 {100 * rules.order_on_time_floor:g}%，准时交付率不低于 "
        f"{100 * rules.delivery_on_time_floor:g}%，投诉率不高于 {100 * rules.complaint_rate_ceiling:g}%；"
        f"合计行为全部重点客户的汇总比率。本月没有业务数据的重点客户 {without} 家未列出。"
    )
    return Table("key-accounts", "重点客户KPI", columns, tuple(table_rows), note=note)


# --- from the SQL results to the tables -----------------------------------------------------------------


def _with_total(
    frame: pd.DataFrame, label: str, names: Sequence[str], total: int, *, count: str = "投诉数"
) -> tuple[tuple[Any, ...], ...]:
    rows = [(name, int(n), share(int(n), total)) for name, n in zip(names, frame["n"], strict=True)]
    rows.append((TOTAL, int(frame["n"].sum()), share(int(frame["n"].sum()), total)))
    return tuple(rows)


def _counted(frame: pd.DataFrame, column: str, order: Sequence[str] | None = None) -> pd.DataFrame:
    grouped: pd.DataFrame = frame.groupby(column, as_index=False).agg(n=("n", "sum"))
    if order is not None:
        rank = {value: i for i, value in enumerate(order)}
        grouped["rank"] = grouped[column].map(lambda v: rank.get(v, len(rank)))
        return grouped.sort_values(["rank", column]).drop(columns="rank")
    return grouped.sort_values(["n", column], ascending=[False, True])


def durations_table(frame: pd.DataFrame, policy: Policy, calendar: WorkCalendar) -> Table:
    columns = ("投诉等级", "指标", "计时方式", "件数", "中位数（小时）", "P90（小时）")
    names = {s: r.name for s, r in policy.complaints.severities.items()}
    if frame.empty:
        return Table("durations", "处理时长", columns, (), note="本期没有已完成的首次联系或处理。")
    # the first contact of a complaint that has two (reclassified): the earlier one. Only the few complaints with
    # two are sorted: sorting a million rows to find them took 1.6 s.
    key = frame["complaint"].to_numpy(dtype=np.int64) * 2 + frame["resolution"].to_numpy(dtype=np.int64)
    twice = pd.Series(key).duplicated(keep=False).to_numpy()
    if twice.any():
        earlier = frame[twice].sort_values("end_s", kind="stable").drop_duplicates(["complaint", "resolution"])
        frame = pd.concat([frame[~twice], earlier], ignore_index=True)
    start_ns = (frame["start_s"].to_numpy(dtype=np.float64) * 1e9).round().astype(np.int64)
    end_ns = (frame["end_s"].to_numpy(dtype=np.float64) * 1e9).round().astype(np.int64)
    working = frame["working"].to_numpy() == 1
    clock_hours = (end_ns - start_ns) / NS_PER_HOUR
    work_hours = calendar.working_ns_between(start_ns, end_ns) / NS_PER_HOUR
    frame = frame.assign(hours=np.where(working, work_hours, clock_hours))
    stats = frame.groupby(["severity", "resolution", "working"])["hours"].agg(
        n="size", median="median", p90=lambda h: float(np.percentile(h, 90))
    )
    severities = list(Severity)
    rows = [
        (
            names[severities[int(sev)]],
            "完成处理" if resolution else "首次联系",
            WORKING if work else CLOCK,
            int(r["n"]),
            round(float(r["median"]), 2),
            round(float(r["p90"]), 2),
        )
        for (sev, resolution, work), r in stats.sort_index().iterrows()
    ]
    return Table("durations", "处理时长", columns, tuple(rows), note="P90：90%的投诉在此时长内完成（线性插值）。")


def milestone_name(policy: Policy, severity: Severity, milestone: str) -> str:
    """The policy's name of a milestone; one a severity keeps from another's rule (an important complaint's first
    contact: raising the severity never makes a promise later) by that rule's name."""
    return policy.complaints.milestone_name(severity, milestone)


def on_time_rate(on_time: int, decided: int) -> float | str:
    """The on-time rate of the decided milestones; "—" while none is decided (not yet due is not 0 % on time)."""
    return share(on_time, decided) if decided else NO_RATE


def sla_table(counts: pd.DataFrame, policy: Policy) -> Table:
    columns = ("投诉等级", "时限节点", "按时达成", "超时达成", "超时未达成", "未到期", "合计", "按时率（%）")
    names = {s: r.name for s, r in policy.complaints.severities.items()}
    order: dict[tuple[str, str], int] = {}
    for severity, rule in policy.complaints.severities.items():
        for milestone in [*rule.milestones, policy.complaints.callback]:
            order.setdefault((severity.value, milestone.id.value), len(order))
        for other in policy.complaints.severities.values():  # milestones kept from another severity's rule
            for milestone in other.milestones:
                order.setdefault((severity.value, milestone.id.value), len(order))
    counts = counts.assign(
        rank=[order.get((s, m), len(order)) for s, m in zip(counts["severity"], counts["milestone"], strict=True)]
    )
    rows: list[tuple[Any, ...]] = []
    ordered = counts.sort_values("rank")
    columns_in_order = ("severity", "milestone", "on_time", "late", "breached", "total")
    for code, milestone, on_time, late, breached, total in zip(
        *(ordered[c].tolist() for c in columns_in_order), strict=True
    ):
        severity = Severity(code)
        decided = int(on_time + late + breached)
        rows.append(
            (
                names[severity],
                milestone_name(policy, severity, str(milestone)),
                int(on_time),
                int(late),
                int(breached),
                int(total - decided),
                int(total),
                on_time_rate(int(on_time), decided),
            )
        )
    sums = [sum(int(row[i]) for row in rows) for i in range(2, 7)]
    rows.append((TOTAL, "", *sums, on_time_rate(sums[0], sums[0] + sums[1] + sums[2])))
    return Table(
        "sla",
        "时限达成情况",
        columns,
        tuple(rows),
        note="按时率 = 按时达成 ÷（按时达成 + 超时达成 + 超时未达成）；未到期的节点不计入。",
    )


def causes_table(current: pd.DataFrame, previous: pd.DataFrame, top: int) -> Table:
    columns = ("排名", "原因分类", "本期", "上期", "变化", "变化率（%）")
    now = current.groupby("category")["n"].sum()
    before = previous.groupby("category")["n"].sum() if not previous.empty else pd.Series(dtype="int64")
    both = pd.DataFrame({"now": now, "before": before}).fillna(0).astype("int64")
    both = both.reset_index(names="category").sort_values(["now", "before", "category"], ascending=[False, False, True])
    unnamed = both[both["category"] == UNCATEGORISED]  # not a cause: shown apart, never ranked among the causes
    named = both.drop(unnamed.index)
    ranked = named[named["now"] > 0].head(top)
    rest = named.drop(ranked.index)
    rows: list[tuple[Any, ...]] = []

    def change(now_n: int, before_n: int) -> float | str:
        return round(100.0 * (now_n - before_n) / before_n, 1) if before_n else "—"

    ranked_rows = zip(ranked["category"].tolist(), ranked["now"].tolist(), ranked["before"].tolist(), strict=True)
    for rank, (category, now_n, before_n) in enumerate(ranked_rows, start=1):
        rows.append(
            (rank, category, int(now_n), int(before_n), int(now_n - before_n), change(int(now_n), int(before_n)))
        )
    if not rest.empty:
        n, b = int(rest["now"].sum()), int(rest["before"].sum())
        rows.append(("", OTHER_CAUSES, n, b, n - b, change(n, b)))
    if not unnamed.empty:
        n, b = int(unnamed["now"].sum()), int(unnamed["before"].sum())
        rows.append(("", UNCATEGORISED, n, b, n - b, change(n, b)))
    n, b = int(both["now"].sum()), int(both["before"].sum())
    rows.append(("", TOTAL, n, b, n - b, change(n, b)))
    return Table(
        "causes",
        "主要投诉原因",
        columns,
        tuple(rows),
        note=f"按原因分类（调查时选定，投诉类别）排名前{top}位，其余计入「其他」；「{UNCATEGORISED}」为调查尚未选定"
        "原因分类的投诉，不参与排名；上期为前一个同类统计周期。",
    )


Progress = Callable[[str], None]


SURVEY_PENDING = {title for title, _ in PENDING_SECTIONS[:3]}  # what the survey table answers once there are answers
TREND_PENDING = PENDING_SECTIONS[0][0]  # what the trend answers once the last 12 months have answers
TREND_MONTHS = 12


def _json(value: Any) -> dict[str, Any]:
    loaded = json.loads(value) if isinstance(value, str) else value
    return loaded if isinstance(loaded, dict) else {}


def _dimension_keys(policy: Policy) -> list[str]:
    """The policy's dimension keys, which stand in the SQL as names: lower-case identifiers (``SurveyPolicy``
    validates them; checked again here, as SQL depends on it)."""
    keys = list(policy.surveys.dimensions)
    for key in keys:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", key):
            raise ValueError(f"'{key}' is not a survey dimension key")
    return keys


def _scores(dialect: str, keys: list[str]) -> tuple[str, dict[str, str]]:
    """How the answers' scores are read: a join (PostgreSQL: the JSON parsed once per answer into a typed record)
    and each dimension's score as a number, NULL when the answer has none (SQLite: ``json_extract``)."""
    if dialect == "postgresql":
        record = ", ".join(f'"{k}" float8' for k in keys)  # quoted: a key may be a keyword (order, user)
        return f"CROSS JOIN LATERAL json_to_record(a.scores) AS s({record})", {k: f's."{k}"' for k in keys}
    return "", {k: f"json_extract(a.scores, '$.{k}')" for k in keys}


@dataclass(frozen=True)
class AnswerFigures:
    """The survey answers of one stretch of time, aggregated: their number, each dimension's average (``None``: no
    score), how many scores it averages (when asked for), promoters (NPS 9–10), detractors (0–6), answers without an
    invitation (phone, visit)."""

    answers: int
    averages: dict[str, float | None]
    scored: dict[str, int] | None
    promoters: int
    detractors: int
    uninvited: int

    @property
    def nps(self) -> float | None:
        return round(100.0 * (self.promoters - self.detractors) / self.answers, 1) if self.answers else None


def answer_figures(
    connection: Connection, policy: Policy, boundaries: Sequence[dt.datetime], *, counted: bool = True
) -> list[AnswerFigures]:
    """The survey answers given between consecutive ``boundaries`` (start inclusive, end exclusive), one
    ``AnswerFigures`` per stretch, in one aggregate query: the stretch is a CASE over the bound boundaries, each
    dimension's score is read from the JSON by the database (``_scores``), so no answer comes back as a row.
    ``counted``: also count each dimension's scores (on SQLite another JSON read per score, so only when shown)."""
    if len(boundaries) < 2:
        raise ValueError("answer_figures needs at least two boundaries")
    keys = _dimension_keys(policy)
    join, score = _scores(connection.dialect.name, keys)
    last = len(boundaries) - 1
    whens = " ".join(f"WHEN a.answered_at < :b{i} THEN {i - 1}" for i in range(1, last))
    bucket = f"CASE {whens} ELSE {last - 1} END" if whens else "0"
    width = 2 if counted else 1
    scores = ", ".join(f"AVG({score[k]}), COUNT({score[k]})" if counted else f"AVG({score[k]})" for k in keys)
    sql = (
        f"SELECT {bucket} AS stretch, COUNT(*), {scores}, "  # noqa: S608 - constant SQL; values are bound
        "SUM(CASE WHEN a.nps >= 9 THEN 1 ELSE 0 END), SUM(CASE WHEN a.nps <= 6 THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN a.invitation_id IS NULL THEN 1 ELSE 0 END) FROM survey_answers a {join} "
        f"WHERE a.answered_at >= :b0 AND a.answered_at < :b{last} GROUP BY 1"
    )
    params = [bindparam(f"b{i}", moment, type_=UTCDateTime()) for i, moment in enumerate(boundaries)]
    found: dict[int, tuple[Any, ...]] = {
        int(row[0]): tuple(row[1:]) for row in connection.execute(text(sql).bindparams(*params)).all()
    }
    figures = []
    for stretch in range(last):
        row = found.get(stretch)
        if row is None:
            figures.append(AnswerFigures(0, dict.fromkeys(keys), dict.fromkeys(keys, 0) if counted else None, 0, 0, 0))
            continue
        n, *values = row[: 1 + width * len(keys)]
        promoters, detractors, uninvited = row[1 + width * len(keys) :]
        averages = {k: None if values[width * i] is None else float(values[width * i]) for i, k in enumerate(keys)}
        scored = {k: int(values[2 * i + 1]) for i, k in enumerate(keys)} if counted else None
        figures.append(AnswerFigures(int(n), averages, scored, int(promoters), int(detractors), int(uninvited)))
    return figures


def _shown(value: float | None, digits: int) -> float | str:
    return "—" if value is None else round(value, digits)


def trend_months(period: Period, as_of: dt.datetime) -> tuple[list[str], list[dt.datetime]]:
    """The 12 months ending with the month the period ends in (a weekly report: the month of its last day), on the
    policy's clock: their labels (``2026-11``) and 13 boundaries; the last month counts up to ``as_of`` (the
    report's figures are as of then)."""
    last_day = (period.end - dt.timedelta(days=1)).astimezone(period.zone)
    index = last_day.year * 12 + last_day.month - 1  # months since year 0
    # 13 boundaries: the first month's start ... the start of the month after the last one
    starts = [
        dt.datetime((index - n) // 12, (index - n) % 12 + 1, 1, tzinfo=period.zone)
        for n in range(TREND_MONTHS - 1, -2, -1)
    ]
    labels = [f"{s.year:04d}-{s.month:02d}" for s in starts[:-1]]
    starts[-1] = max(starts[-2], min(starts[-1], as_of))
    return labels, starts


def trend_table(connection: Connection, policy: Policy, period: Period, as_of: dt.datetime) -> Table | None:
    """满意度趋势: each of the last 12 months' survey answers (``trend_months``), each dimension's average, the NPS and
    the number of answers; months without answers show "—" and 0. ``None`` when none of the 12 months has answers."""
    labels, boundaries = trend_months(period, as_of)
    months = answer_figures(connection, policy, boundaries, counted=False)
    if not any(m.answers for m in months):
        return None
    dimensions = policy.surveys.dimensions
    rows = tuple(
        (label, *(_shown(m.averages[k], 2) for k in dimensions), _shown(m.nps, 1), m.answers)
        for label, m in zip(labels, months, strict=True)
    )
    scale = policy.surveys.scale
    if period.kind == "monthly":
        which = f"截至本月（{labels[-1]}）的12个月"
    else:
        which = f"截至本周结束所在月份（{labels[-1]}）的12个月，该月计至本周末"
    return Table(
        "satisfaction-trend",
        "满意度趋势（近12个月）",
        ("月份", *dimensions.values(), "净推荐值（NPS）", "答卷数"),
        rows,
        note=f"{which}，按答卷提交时间（北京时间）分月；各维度为平均分（{scale.low}–{scale.high}分），"
        "NPS＝推荐者（9–10分）占比−贬损者（0–6分）占比；没有答卷的月份记为「—」。",
    )


def survey_table(connection: Connection, policy: Policy, period: Period, as_of: dt.datetime) -> Table | None:
    """The period's satisfaction (``kefu.tasks.surveys``): the average of each dimension over the survey answers
    given in the period (by link, phone or visit), the NPS (% promoters 9–10 − % detractors 0–6), the response rate
    of the invitations sent in the period (plus customers asked by phone or visit without one), and the average
    complaint-callback satisfaction (1–5) of the callbacks done in the period. ``None`` without survey answers or
    callbacks in the period (the report then says there is no data yet). The answers are aggregated by the database
    (``answer_figures``); the callbacks, few, are read one by one."""
    [answers] = answer_figures(connection, policy, [period.start, period.end])
    given = [
        _json(row[0]).get("satisfaction")
        for row in _query(
            connection,
            "SELECT e.data FROM case_events e WHERE e.action = 'callback' AND e.at >= :start AND e.at < :end",
            period,
            as_of,
        )
    ]
    callbacks = [int(v) for v in given if isinstance(v, int | float)]
    if not answers.answers and not callbacks:
        return None
    [(sent, sent_answered)] = _query(
        connection,
        "SELECT COUNT(*), SUM(CASE WHEN i.answered_at IS NOT NULL THEN 1 ELSE 0 END) FROM survey_invitations i "
        "WHERE i.token_hash IS NOT NULL AND i.created_at >= :start AND i.created_at < :end",
        period,
        as_of,
    )
    asked, responded = int(sent or 0) + answers.uninvited, int(sent_answered or 0) + answers.uninvited
    scored = answers.scored
    assert scored is not None  # counted
    rows: list[tuple[Any, ...]] = [
        (f"{label}（平均分）", _shown(answers.averages[key], 2), scored[key])
        for key, label in policy.surveys.dimensions.items()
    ]
    rows.append(("净推荐值（NPS）", _shown(answers.nps, 1), answers.answers))
    rows.append(("调查回复率（%）", share(responded, asked), asked))
    callback_average = round(sum(callbacks) / len(callbacks), 2) if callbacks else "—"
    rows.append(("投诉回访满意度（平均分）", callback_average, len(callbacks)))
    scale = policy.surveys.scale
    return Table(
        "satisfaction",
        "客户满意度",
        ("指标", "数值", "样本数"),
        tuple(rows),
        note=f"满意度调查各维度{scale.low}–{scale.high}分，按本期提交的答卷（问卷链接、电话访谈、现场访谈）计；"
        "NPS＝推荐者（9–10分）占比−贬损者（0–6分）占比；回复率的样本数为本期发出的邀请加未经邀请的访谈。",
    )


def assessment_table(connection: Connection, policy: Policy, month: str) -> Table | None:
    """员工月度考核, the team view (``kefu.tasks.assessment``): the month's ranked sheets with their grades, once the
    month's assessment is published; ``None`` before (the report then says there is no data yet)."""
    from sqlalchemy.orm import Session

    from kefu.tasks import assessment

    with Session(bind=connection) as session:
        if not assessment.is_published(session, month):
            return None
        rows = assessment.table_rows(session, policy, month)
    figures = tuple(tuple(_number(cell) if i in TEAM_FIGURES else cell for i, cell in enumerate(r)) for r in rows)
    return Table("assessment", ASSESSMENT_PENDING, assessment.COLUMNS, figures, note=assessment.marks_note(policy))


TEAM_FIGURES = frozenset({0, 2, 4, 5, 6, 7, 8, 9})  # rank, scores and measured figures (not the name, grade, notes)


def _number(cell: str) -> int | float | str:
    """A figure of the team view as a number (the workbook sorts and sums numbers, not text); "—" stays."""
    try:
        return int(cell)
    except ValueError:
        try:
            return float(cell)
        except ValueError:
            return cell


class _Readers:
    """Read work that sees exactly what ``connection`` sees, several pieces at once where the database allows it.

    On PostgreSQL the caller's fresh connection opens a repeatable-read, read-only transaction and exports its
    snapshot (``pg_export_snapshot``); each piece of work runs in a thread on a connection of its own that imports
    that snapshot, so the report's queries use both cores and every figure is of the same moment (the totals
    reconcile even while complaints keep arriving). Elsewhere, or when the caller's connection is already in a
    transaction, each piece runs at once on the caller's connection, in its one transaction."""

    def __init__(self, connection: Connection, threads: int = 4) -> None:
        self.connection = connection
        self.snapshot: str | None = None
        self.pool: ThreadPoolExecutor | None = None
        if connection.dialect.name == "postgresql" and not connection.in_transaction():
            connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
            connection.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
            snapshot = str(connection.execute(text("SELECT pg_export_snapshot()")).scalar_one())
            if re.fullmatch(r"[0-9A-Fa-f-]+", snapshot):
                self.snapshot = snapshot
                self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kefu-report")

    def submit(self, work: Callable[[Connection], T]) -> Future[T]:
        if self.pool is None:
            done: Future[T] = Future()
            done.set_result(work(self.connection))
            return done
        return self.pool.submit(self._attached, work)

    def _attached(self, work: Callable[[Connection], T]) -> T:
        with self.connection.engine.connect() as helper:
            helper.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
            helper.execute(text(f"SET TRANSACTION SNAPSHOT '{self.snapshot}'"))
            helper.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
            return work(helper)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def _readers(connection: Connection) -> Iterator[_Readers]:
    readers = _Readers(connection)
    try:
        yield readers
    finally:
        readers.close()


def _silent(_stage: str) -> None:
    return None


def compute(
    connection: Connection,
    policy: Policy,
    calendar: WorkCalendar,
    period: Period,
    *,
    now: dt.datetime,
    progress: Progress = _silent,
) -> Figures:
    """Every figure of the period's report, in one pass over the database (a handful of aggregate queries)."""
    as_of = min(period.end, now)
    previous = period.previous()
    with _readers(connection) as readers:
        # the large reads at once (each its own connection on PostgreSQL), the small ones meanwhile
        counted_departments = readers.submit(lambda c: count_departments(c, period, as_of))
        counted_milestones = readers.submit(lambda c: count_milestones(c, period, as_of))
        measured = readers.submit(lambda c: durations_table(fetch_durations(c, period, as_of), policy, calendar))
        trended = readers.submit(lambda c: trend_table(c, policy, period, as_of))
        progress("counting complaints")
        dims = count_dimensions(connection, period, as_of)
        before = count_dimensions(connection, previous, min(previous.end, now))
        total = int(dims["n"].sum())
        reopened = int(dims["reopened"].sum())
        kpis = key_account_kpis(connection, period, policy) if period.kind == "monthly" else None
        satisfaction = survey_table(connection, policy, period, as_of)
        team = assessment_table(connection, policy, period.label) if period.kind == "monthly" else None
        progress("counting departments")
        departments = with_uninvestigated(counted_departments.result(), total)
        progress("checking milestones")
        milestones = counted_milestones.result()
        progress("measuring durations")
        durations = measured.result()
        trend = trended.result()

    severity_names = {s.value: r.name for s, r in policy.complaints.severities.items()}
    by_severity = _counted(dims, "severity", [s.value for s in Severity])
    by_channel = _counted(dims, "channel", [c.value for c in Channel])
    by_category = _counted(dims, "category")
    by_department = departments.sort_values(["n", "department"], ascending=[False, True])
    share_columns = ("投诉数", "占比（%）")
    tables: tuple[Table, ...] = (
        Table(
            "severity",
            "按投诉等级",
            ("投诉等级", *share_columns),
            _with_total(by_severity, "severity", [severity_names[s] for s in by_severity["severity"]], total),
        ),
        Table(
            "category",
            "按投诉类别",
            ("投诉类别", *share_columns),
            _with_total(by_category, "category", list(by_category["category"]), total),
        ),
        Table(
            "channel",
            "按受理渠道",
            ("受理渠道", *share_columns),
            _with_total(by_channel, "channel", [CHANNEL_ZH[Channel(c)] for c in by_channel["channel"]], total),
        ),
        Table(
            "department",
            "按责任部门",
            ("责任部门", *share_columns),
            _with_total(by_department, "department", list(by_department["department"]), total),
            note="责任部门：首轮调查填写的第一个参与部门；尚未调查的投诉单列。",
        ),
        sla_table(milestones, policy),
        durations,
        Table(
            "reopen",
            "重新处理（重开）",
            ("投诉数", "重开的投诉数", "重开率（%）"),
            ((total, reopened, share(reopened, total)),),
            note="重开：回访时客户不满意，投诉重新处理。",
        ),
        causes_table(dims, before, policy.reports.top_causes),
    )
    pending: tuple[tuple[str, str], ...] = PENDING_SECTIONS
    if kpis is not None:
        tables = (*tables, kpis)
    else:
        pending = (*PENDING_SECTIONS, KPI_PENDING)
    sla = tables[4].rows[-1]
    headline = {
        "投诉总数": total,
        "按时率（%）": sla[-1],
        "重开率（%）": share(reopened, total),
        "上期投诉总数": int(before["n"].sum()),
    }
    if satisfaction is not None:
        tables = (*tables, satisfaction)
        pending = tuple(p for p in pending if p[0] not in SURVEY_PENDING)
        headline["净推荐值（NPS）"] = satisfaction.rows[len(policy.surveys.dimensions)][1]
    if trend is not None:
        tables = (*tables, trend)
        pending = tuple(p for p in pending if p[0] != TREND_PENDING)
    if team is not None:
        tables = (*tables, team)
        pending = tuple(p for p in pending if p[0] != ASSESSMENT_PENDING)
    progress("figures ready")
    return Figures(period, previous, as_of, total, reopened, tables, pending=pending, headline=headline)
