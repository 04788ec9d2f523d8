"""The monthly statistics report at scale: Kefu's computation (SQL aggregates, numpy) from the query to the finished
HTML and XLSX files, against a naive per-row computation of the same figures, in the same run, on the same data.

    .venv/bin/python bench/report.py [--complaints 1000000] [--database-url postgresql+psycopg://... |
                                      --embedded-pg DIR] [--keep DIR] [--reuse] [--no-naive]

Generates ``--complaints`` complaints received in November 2026 (with their milestones, met, late, breached or
open, and investigations naming departments), plus a tenth as many in October (the previous period the causes are
compared with), and survey answers (a fifth as many as complaints, spread over the 12 months up to November 2026,
for the satisfaction table and its trend: one campaign a month, most answers through an invitation), into a fresh
SQLite file (default), the PostgreSQL database ``--database-url`` names (its Kefu tables are emptied first), or the
database ``kefu`` of an embedded PostgreSQL as ``make up`` runs it (``--embedded-pg DIR``). Each
computation runs in a process of its own, so its peak memory (``resource.getrusage``) is its own. Prints one JSON
object: seconds and peak memory of each, their ratio, and whether the figures are equal.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, text

from kefu.models import Base
from kefu.models.db import make_engine, reading
from kefu.models.embedded_pg import attach
from kefu.models.enums import CHANNEL_ZH, Channel, MilestoneId, Severity
from kefu.models.migrate import upgrade
from kefu.models.policy import Policy, current_policy
from kefu.tasks.report_files import load_renderers, write_files
from kefu.tasks.reports import (
    CLOCK,
    FIRST_CONTACT,
    NO_DEPARTMENT,
    OTHER_CAUSES,
    TOTAL,
    UNCATEGORISED,
    WORKING,
    WORKING_UNITS,
    Period,
    compute,
    milestone_name,
    monthly,
    on_time_rate,
    share,
    trend_months,
)
from kefu.worktime import WorkCalendar

MONTH = "2026-11"
NOW = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)
CATEGORIES = ["破损", "延误", "丢件", "错发", "服务态度", "运费", "理赔", "签收", "包装", "时效", "系统", "其他问题"]
DEPARTMENTS = ["运营部", "技术部", "财务部", "市场部", "客服部"]
# milestones of each severity: id, unit, due after receipt (hours; working days approximated as calendar days)
PLAN = {
    "general": [("first_contact", "hours", 24), ("solution", "hours", 48), ("resolution", "promised", 120)],
    "important": [
        ("supervisor_report", "hours", 12),
        ("progress_update", "hours", 48),
        ("resolution", "working_days", 9 * 24),
    ],
    "major": [
        ("task_force", "hours", 1),
        ("first_contact", "hours", 6),
        ("preliminary_plan", "hours", 24),
        ("resolution", "working_days", 21 * 24),
    ],
}


# --- the data ------------------------------------------------------------------------------------------------


def _stamps(seconds: np.ndarray, postgres: bool) -> list[str | None]:
    """Epoch seconds (NaN: none) as the database stores them: SQLite as SQLAlchemy writes UTC, PostgreSQL for COPY."""
    known = ~np.isnan(seconds)
    text_ = np.full(seconds.shape, "", dtype=object)
    as_dt = seconds[known].astype("int64").astype("datetime64[s]")
    strings = np.char.replace(np.datetime_as_string(as_dt, unit="us"), "T", " ")
    text_[known] = np.char.add(strings, "+00") if postgres else strings
    return [s if s else None for s in text_.tolist()]


def survey_rows(rng: np.random.Generator, answers: int, postgres: bool) -> list[tuple[str, str, list[tuple[Any, ...]]]]:
    """A survey campaign per month of the 12 up to ``MONTH`` (Shanghai time), their invitations and ``answers``
    answers (each dimension 1–5, NPS 0–10) spread over the months, from about ``answers / 10`` customers (a customer
    answers a campaign once): nine answers in ten through an invitation's link, the rest by phone without one, and
    three more invitations in ten left unanswered (the response rate)."""
    dimensions = list(current_policy().surveys.dimensions)
    _, bounds = trend_months(monthly(MONTH, "Asia/Shanghai"), NOW)
    starts = np.array([b.timestamp() for b in bounds])
    weights = rng.uniform(0.9, 1.1, len(starts) - 1)
    counts = rng.multinomial(answers, weights / weights.sum())
    people = max(answers // 10, int(counts.max() * 1.1) + 1)
    created = _stamps(np.full(people, starts[0]), postgres)
    customers = [
        (i, f"BC{i:07d}", "general", "（基准测试客户）", "[]", "[]", created[i - 1]) for i in range(1, people + 1)
    ]
    campaigns: list[tuple[Any, ...]] = []
    invitations: list[tuple[Any, ...]] = []
    answer_rows: list[tuple[Any, ...]] = []
    for month, count in enumerate(counts.tolist()):
        opened, closes = _stamps(starts[month : month + 2], postgres)
        campaigns.append((month + 1, "ad_hoc", "all", "（基准测试数据）", "schedule", opened, closes, closes))
        unanswered = min(people - count, count * 3 // 10)
        chosen = rng.permutation(people)[: count + unanswered] + 1
        at = np.floor(starts[month] + 3600 + rng.random(count) * (starts[month + 1] - starts[month] - 7200))
        answered_text = _stamps(at, postgres)
        linked = rng.random(count) < 0.9
        lift = 0.01 * month  # satisfaction rising a little month by month: a trend to draw
        likes = np.array([0.05, 0.1, 0.25 - lift, 0.4, 0.2 + lift])
        scores = rng.choice(np.arange(1, 6), size=(count, len(dimensions)), p=likes).tolist()
        recommends = np.array([1, 1, 1, 1, 2, 3, 4, 8, 12, 10 + month, 8 + month], dtype=float)
        nps = rng.choice(np.arange(11), size=count, p=recommends / recommends.sum()).tolist()
        for k, customer in enumerate(chosen.tolist()):
            invitation = None
            if k >= count or linked[k]:
                invitation = len(invitations) + 1
                invitations.append(
                    (invitation, month + 1, customer, f"{invitation:064x}", opened, closes,
                     answered_text[k] if k < count else None)
                )  # fmt: skip
            if k < count:
                answer_rows.append(
                    (len(answer_rows) + 1, month + 1, customer, invitation,
                     json.dumps(dict(zip(dimensions, scores[k], strict=True))), nps[k], "",
                     "link" if invitation else "phone", answered_text[k])
                )  # fmt: skip
    return [
        ("customers", "id, code, tier, name, phones, more_addresses, created_at", customers),
        ("survey_campaigns", "id, kind, segment, reason, launched_by, opened_at, closes_at, closed_at", campaigns),
        (
            "survey_invitations",
            "id, campaign_id, customer_id, token_hash, created_at, expires_at, answered_at",
            invitations,
        ),
        (
            "survey_answers",
            "id, campaign_id, customer_id, invitation_id, scores, nps, comment, collected_by, answered_at",
            answer_rows,
        ),
    ]


def generate(engine: Engine, n: int, seed: int = 16) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    postgres = engine.dialect.name == "postgresql"
    period = monthly(MONTH, "Asia/Shanghai")
    previous = period.previous()
    n_prev = n // 10
    total = n + n_prev
    lo = np.concatenate([np.full(n, period.start.timestamp()), np.full(n_prev, previous.start.timestamp())])
    span = np.concatenate(
        [
            np.full(n, (period.end - period.start).total_seconds()),
            np.full(n_prev, (previous.end - previous.start).total_seconds()),
        ]
    )
    received = np.floor(lo + rng.random(total) * span)
    severity = rng.choice(["general", "important", "major"], size=total, p=[0.6, 0.3, 0.1])
    weights = np.linspace(3, 1, len(CATEGORIES)) * rng.uniform(0.7, 1.3, len(CATEGORIES))
    category = rng.choice(np.array(CATEGORIES, dtype=object), size=total, p=weights / weights.sum())
    category[rng.random(total) < 0.05] = None
    channels = [c.value for c in Channel][:6]
    channel = rng.choice(channels, size=total, p=[0.4, 0.15, 0.2, 0.15, 0.05, 0.05])
    reopen = (rng.random(total) < 0.05).astype(int)
    ids = np.arange(1, total + 1)
    received_text = _stamps(received, postgres)
    complaints = list(
        zip(
            ids.tolist(),
            [f"BENCH-{i:08d}" for i in ids.tolist()],
            channel.tolist(),
            received_text,
            severity.tolist(),
            category.tolist(),
            ["classified"] * total,
            [False] * total,
            ["（基准测试数据）"] * total,
            reopen.tolist(),
            received_text,
            received_text,
            strict=True,
        )
    )
    milestones: list[tuple[Any, ...]] = []
    next_id = 1
    for sev, plan in PLAN.items():
        mask = severity == sev
        cids, starts = ids[mask], received[mask]
        count = int(mask.sum())
        for milestone, unit, hours in plan:
            due = starts + hours * 3600.0
            if milestone == "resolution" and sev == "general":
                due[rng.random(count) < 0.2] = np.nan  # no promise yet
            met = starts + rng.random(count) * hours * 3600.0 * 1.4  # about 30% late
            met[rng.random(count) < 0.2] = np.nan  # unmet: breached or not yet due
            met = np.floor(met)
            rows = zip(
                range(next_id, next_id + count),
                cids.tolist(),
                [milestone] * count,
                _stamps(starts, postgres),
                _stamps(due, postgres),
                [unit] * count,
                [str(hours)] * count,
                _stamps(met, postgres),
                [0] * count,
                [False] * count,
                ["[]"] * count,
                strict=True,
            )
            milestones.extend(rows)
            next_id += count
    investigated = ids[rng.random(total) < 0.7]
    first = rng.choice(DEPARTMENTS, size=investigated.size)
    second = rng.choice(DEPARTMENTS, size=investigated.size)
    events = [
        (
            i,
            cid,
            "staff:1",
            "investigate",
            json.dumps({"key": "investigate-0", "departments": [a, b]}, ensure_ascii=False),
        )
        for i, (cid, a, b) in enumerate(zip(investigated.tolist(), first.tolist(), second.tolist(), strict=True), 1)
    ]
    at = dict(zip(ids.tolist(), received_text, strict=True))
    events = [(*e, at[e[1]]) for e in events]
    complaint_columns = (
        "id, case_no, channel, received_at, severity, category, status, urgent, content, reopen_count, created_at, "
        "updated_at"
    )
    milestone_columns = (
        "id, complaint_id, milestone, starts_at, due_at, unit, target, met_at, escalation_level, provisional, "
        "paused_intervals"
    )
    event_columns = "id, complaint_id, actor, action, data, at"
    surveys = survey_rows(rng, n // 5, postgres)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if not postgres:
            cursor.execute("PRAGMA foreign_keys=OFF")
            cursor.execute("BEGIN")  # Kefu's SQLite connections autocommit each statement: one transaction here
        for table, columns, rows in (
            ("complaints", complaint_columns, complaints),
            ("milestones", milestone_columns, milestones),
            ("case_events", event_columns, events),
            *surveys,
        ):
            if postgres:
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ", ".join("?" * len(columns.split(",")))
                cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)
        raw.commit()
        if postgres:
            cursor.execute("ANALYZE")
            raw.commit()
    finally:
        raw.close()
    return {
        "complaints": n,
        "previous_complaints": n_prev,
        "milestones": len(milestones),
        "investigations": len(events),
        **{table: len(rows) for table, _, rows in surveys},
    }


def empty(engine: Engine) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


# --- the naive computation: one row at a time -----------------------------------------------------------------


def working_hours(start: dt.datetime, end: dt.datetime, calendar: WorkCalendar) -> float:
    """Working time between two moments, a day and a window at a time."""
    tz = calendar.tz
    seconds = 0.0
    day, last = start.astimezone(tz).date(), end.astimezone(tz).date()
    while day <= last:
        if calendar.is_working_day(day):
            for window in calendar.windows:
                a = max(start, dt.datetime.combine(day, window.start, tz))
                b = min(end, dt.datetime.combine(day, window.end, tz))
                if b > a:
                    seconds += (b - a).total_seconds()
        day += dt.timedelta(days=1)
    return seconds / 3600


def naive(engine: Engine, policy: Policy, calendar: WorkCalendar, period: Period) -> dict[str, list[tuple[Any, ...]]]:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from kefu.models.complaints import CaseEvent, Complaint, Milestone

    as_of = min(period.end, NOW)
    previous = period.previous()
    names = {s.value: r.name for s, r in policy.complaints.severities.items()}
    rows_seen: list[tuple[Any, ...]] = []
    reopened = 0
    before: dict[str, int] = defaultdict(int)
    with Session(engine) as session:
        for cid, severity, category, channel, reopen_count in session.execute(
            select(Complaint.id, Complaint.severity, Complaint.category, Complaint.channel, Complaint.reopen_count)
            .where(Complaint.received_at >= previous.start, Complaint.received_at < period.end)
            .execution_options(yield_per=20_000)
        ):
            rows_seen.append((cid, severity.value, category or UNCATEGORISED, channel.value, reopen_count))
        firsts: dict[int, str] = {}
        for event in session.scalars(
            select(CaseEvent)
            .where(CaseEvent.action == "investigate")
            .order_by(CaseEvent.id)
            .execution_options(yield_per=20_000)
        ):
            if event.complaint_id not in firsts and event.at <= as_of:
                firsts[event.complaint_id] = event.data["departments"][0]
        received_at: dict[int, dt.datetime] = {}
        sla: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
        durations: dict[tuple[str, str, str], list[float]] = defaultdict(list)
        first_contact: dict[int, tuple[dt.datetime, str, str]] = {}
        for cid, sev_enum, start, milestone_id, unit, due_at, met_at in session.execute(
            select(
                Milestone.complaint_id,
                Complaint.severity,
                Complaint.received_at,
                Milestone.milestone,
                Milestone.unit,
                Milestone.due_at,
                Milestone.met_at,
            )
            .join(Complaint)
            .where(Complaint.received_at >= period.start, Complaint.received_at < period.end)
            .execution_options(yield_per=20_000)
        ):
            sev, milestone = sev_enum.value, milestone_id.value
            received_at[cid] = start
            counts = sla[(sev, milestone)]
            met = met_at is not None and met_at <= as_of
            if met and (due_at is None or met_at <= due_at):
                counts[0] += 1
            elif met:
                counts[1] += 1
            elif due_at is not None and due_at <= as_of:
                counts[2] += 1
            else:
                counts[3] += 1
            counts[4] += 1
            if not met:
                continue
            basis = WORKING if unit in WORKING_UNITS else CLOCK
            if milestone == MilestoneId.RESOLUTION.value:
                if basis == WORKING:
                    hours = working_hours(start, met_at, calendar)
                else:
                    hours = (met_at - start).total_seconds() / 3600
                durations[(sev, "完成处理", basis)].append(hours)
            elif milestone in FIRST_CONTACT:
                known = first_contact.get(cid)
                if known is None or met_at < known[0]:
                    first_contact[cid] = (met_at, basis, sev)
        for cid, (met_at, basis, sev) in first_contact.items():
            start = received_at[cid]
            hours = (
                working_hours(start, met_at, calendar) if basis == WORKING else (met_at - start).total_seconds() / 3600
            )
            durations[(sev, "首次联系", basis)].append(hours)
    total = 0
    counts_by: dict[str, dict[str, int]] = {
        k: defaultdict(int) for k in ("severity", "category", "channel", "department")
    }
    for cid, severity, category, channel, reopen_count in rows_seen:
        if cid not in received_at:
            before[category] += 1
            continue
        total += 1
        reopened += 1 if reopen_count > 0 else 0
        counts_by["severity"][names[severity]] += 1
        counts_by["category"][category] += 1
        counts_by["channel"][CHANNEL_ZH[Channel(channel)]] += 1
        counts_by["department"][firsts.get(cid, NO_DEPARTMENT)] += 1

    def counted(key: str, order: list[str] | None) -> list[tuple[Any, ...]]:
        items = counts_by[key]
        keys = [k for k in order if k in items] if order is not None else sorted(items, key=lambda k: (-items[k], k))
        rows: list[tuple[Any, ...]] = [(k, items[k], share(items[k], total)) for k in keys]
        return [*rows, (TOTAL, sum(items.values()), share(sum(items.values()), total))]

    result: dict[str, list[tuple[Any, ...]]] = {
        "severity": counted("severity", [names[s.value] for s in Severity]),
        "category": counted("category", None),
        "channel": counted("channel", [CHANNEL_ZH[c] for c in Channel]),
        "department": counted("department", None),
    }
    sla_rows: list[tuple[Any, ...]] = []
    for severity, rule in policy.complaints.severities.items():
        for milestone in [*rule.milestones, policy.complaints.callback]:
            c = sla.get((severity.value, milestone.id.value))
            if c is None:
                continue
            sla_rows.append(
                (
                    names[severity.value],
                    milestone_name(policy, severity, milestone.id.value),
                    *c,
                    on_time_rate(c[0], c[0] + c[1] + c[2]),
                )
            )
    sums = [sum(r[i] for r in sla_rows) for i in range(2, 7)]
    result["sla"] = [*sla_rows, (TOTAL, "", *sums, on_time_rate(sums[0], sums[0] + sums[1] + sums[2]))]
    duration_rows = []
    for severity in Severity:
        for measure in ("首次联系", "完成处理"):
            for basis in sorted(
                {b for (s, m, b) in durations if s == severity.value and m == measure}, key=lambda b: b != CLOCK
            ):
                values = durations[(severity.value, measure, basis)]
                duration_rows.append(
                    (
                        names[severity.value],
                        measure,
                        basis,
                        len(values),
                        round(float(np.median(values)), 2),
                        round(float(np.percentile(values, 90)), 2),
                    )
                )
    result["durations"] = duration_rows
    result["reopen"] = [(total, reopened, share(reopened, total))]
    now_counts = counts_by["category"]
    categories = sorted(
        (set(now_counts) | set(before)) - {UNCATEGORISED},
        key=lambda k: (-now_counts.get(k, 0), -before.get(k, 0), k),
    )
    top = [k for k in categories if now_counts.get(k, 0) > 0][: policy.reports.top_causes]
    rest = [k for k in categories if k not in top]

    def change(a: int, b: int) -> float | str:
        return round(100.0 * (a - b) / b, 1) if b else "—"

    causes: list[tuple[Any, ...]] = []
    for rank, k in enumerate(top, start=1):
        a, b = now_counts.get(k, 0), before.get(k, 0)
        causes.append((rank, k, a, b, a - b, change(a, b)))
    if rest:
        a, b = sum(now_counts.get(k, 0) for k in rest), sum(before.get(k, 0) for k in rest)
        causes.append(("", OTHER_CAUSES, a, b, a - b, change(a, b)))
    if UNCATEGORISED in now_counts or UNCATEGORISED in before:  # not a cause: apart, never ranked
        a, b = now_counts.get(UNCATEGORISED, 0), before.get(UNCATEGORISED, 0)
        causes.append(("", UNCATEGORISED, a, b, a - b, change(a, b)))
    a, b = sum(now_counts.values()), sum(before.values())
    result["causes"] = [*causes, (TOTAL, a, b, a - b, change(a, b))]
    result["causes"][-1] = ("", *result["causes"][-1])
    result["key-accounts"] = naive_key_accounts(engine, policy, period)
    result |= naive_surveys(engine, policy, period)
    return result


def naive_surveys(engine: Engine, policy: Policy, period: Period) -> dict[str, list[tuple[Any, ...]]]:
    """客户满意度 and 满意度趋势 one answer at a time: each answer's scores parsed in Python, added to its month."""
    from sqlalchemy import Text, cast, select
    from sqlalchemy.orm import Session

    from kefu.models.complaints import CaseEvent
    from kefu.models.surveys import SurveyAnswer, SurveyInvitation

    dimensions = policy.surveys.dimensions
    zone = period.zone
    as_of = min(period.end, NOW)
    labels, bounds = trend_months(period, as_of)
    month_key = {label: n for n, label in enumerate(labels)}
    sums = [dict.fromkeys(dimensions, 0.0) for _ in labels]
    scored = [dict.fromkeys(dimensions, 0) for _ in labels]
    answered, promoters, detractors = [0] * len(labels), [0] * len(labels), [0] * len(labels)
    now_sums, now_scored = dict.fromkeys(dimensions, 0.0), dict.fromkeys(dimensions, 0)
    now_answers = now_promoters = now_detractors = uninvited = 0
    first, last = min(bounds[0], period.start), max(bounds[-1], period.end)
    with Session(engine) as session:
        for answered_at, raw, nps, invitation in session.execute(
            select(
                SurveyAnswer.answered_at, cast(SurveyAnswer.scores, Text), SurveyAnswer.nps, SurveyAnswer.invitation_id
            )
            .where(SurveyAnswer.answered_at >= first, SurveyAnswer.answered_at < last)
            .execution_options(yield_per=20_000)
        ):
            scores = json.loads(raw)
            if bounds[0] <= answered_at < bounds[-1]:
                local = answered_at.astimezone(zone)
                n = month_key[f"{local.year:04d}-{local.month:02d}"]
                answered[n] += 1
                promoters[n] += nps >= 9
                detractors[n] += nps <= 6
                for key in dimensions:
                    if isinstance(scores.get(key), int | float):
                        sums[n][key] += scores[key]
                        scored[n][key] += 1
            if period.start <= answered_at < period.end:
                now_answers += 1
                now_promoters += nps >= 9
                now_detractors += nps <= 6
                uninvited += invitation is None
                for key in dimensions:
                    if isinstance(scores.get(key), int | float):
                        now_sums[key] += scores[key]
                        now_scored[key] += 1
        sent = responded = 0
        for token_hash, invited_answered_at in session.execute(
            select(SurveyInvitation.token_hash, SurveyInvitation.answered_at)
            .where(SurveyInvitation.created_at >= period.start, SurveyInvitation.created_at < period.end)
            .execution_options(yield_per=20_000)
        ):
            if token_hash is not None:
                sent += 1
                responded += invited_answered_at is not None
        callbacks = [
            int(data["satisfaction"])
            for data in session.scalars(
                select(CaseEvent.data).where(
                    CaseEvent.action == "callback", CaseEvent.at >= period.start, CaseEvent.at < period.end
                )
            )
            if isinstance(data.get("satisfaction"), int | float)
        ]

    def average(total: float, count: int) -> float | str:
        return round(total / count, 2) if count else "—"

    def net(promoting: int, detracting: int, count: int) -> float | str:
        return round(100.0 * (promoting - detracting) / count, 1) if count else "—"

    result: dict[str, list[tuple[Any, ...]]] = {}
    if now_answers or callbacks:
        asked = sent + uninvited
        result["satisfaction"] = [
            *(
                (f"{label}（平均分）", average(now_sums[k], now_scored[k]), now_scored[k])
                for k, label in dimensions.items()
            ),
            ("净推荐值（NPS）", net(now_promoters, now_detractors, now_answers), now_answers),
            ("调查回复率（%）", share(responded + uninvited, asked), asked),
            ("投诉回访满意度（平均分）", average(sum(callbacks), len(callbacks)), len(callbacks)),
        ]
    if any(answered):
        result["satisfaction-trend"] = [
            (
                label,
                *(average(sums[n][k], scored[n][k]) for k in dimensions),
                net(promoters[n], detractors[n], answered[n]),
                answered[n],
            )
            for n, label in enumerate(labels)
        ]
    return result


def naive_key_accounts(engine: Engine, policy: Policy, period: Period) -> list[tuple[Any, ...]]:
    """重点客户KPI one account at a time, as a person with a spreadsheet would."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from kefu.models.accounts import BusinessFigures
    from kefu.models.complaints import Complaint
    from kefu.models.enums import CustomerTier
    from kefu.models.people import Customer

    rules = policy.key_accounts.kpi
    rows: list[tuple[Any, ...]] = []
    sums = [0, 0, 0, 0]
    flagged = 0

    def percent(part: int, whole: int) -> float | str:
        return round(100.0 * part / whole, 1) if whole > 0 else "—"

    with Session(engine) as session:
        accounts = session.scalars(select(Customer).where(Customer.tier == CustomerTier.KEY))
        for account in sorted(accounts, key=lambda c: (c.code or "", c.id)):
            figures = session.scalars(
                select(BusinessFigures).where(
                    BusinessFigures.customer_id == account.id, BusinessFigures.month == period.start.date()
                )
            ).first()
            if figures is None:
                continue
            complaints = figures.complaints
            if complaints is None:
                complaints = session.scalar(
                    select(func.count()).where(
                        Complaint.customer_id == account.id,
                        Complaint.received_at >= period.start,
                        Complaint.received_at < period.end,
                    )
                )
            counts = [figures.orders, figures.orders_on_time, figures.deliveries_on_time, int(complaints or 0)]
            sums = [a + b for a, b in zip(sums, counts, strict=True)]
            orders = counts[0]
            missed = []
            if orders > 0 and counts[1] / orders < rules.order_on_time_floor:
                missed.append("订单处理及时率")
            if orders > 0 and counts[2] / orders < rules.delivery_on_time_floor:
                missed.append("准时交付率")
            if orders > 0 and counts[3] / orders > rules.complaint_rate_ceiling:
                missed.append("投诉率")
            flagged += bool(missed)
            shown = [percent(c, orders) for c in counts[1:]]
            rows.append((account.code or f"#{account.id}", orders, *shown, "、".join(missed) or "—"))
    if rows:
        rows.append((TOTAL, sums[0], *(percent(c, sums[0]) for c in sums[1:]), f"{flagged} 家未达标"))
    return rows


# --- the two measured phases, each in a process of its own ----------------------------------------------------


def phase(name: str, url: str, out: Path) -> dict[str, Any]:
    policy = current_policy()
    calendar = WorkCalendar(policy)
    warm = np.array([int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp() * 1e9)])
    calendar.working_ns_between(warm, warm)  # the calendar's tables are built outside the timing, for both phases
    engine = reading(make_engine(url))  # as the flow reads: no write lock on SQLite
    period = monthly(MONTH, policy.timezone)
    started, cpu = time.perf_counter(), time.process_time()
    stages: dict[str, float] = {}

    def reached(stage: str) -> None:  # the seconds from the start at which each stage of the report was reached
        stages[stage] = round(time.perf_counter() - started, 2)

    if name == "kefu":
        load_renderers()  # as kefu report and the flow do
        with engine.connect() as connection:
            figures = compute(connection, policy, calendar, period, now=NOW, progress=reached)
        write_files(figures, out, NOW)
        reached("files written")
        tables = {t.key: [list(r) for r in t.rows] for t in figures.tables}
    else:
        tables = {k: [list(r) for r in rows] for k, rows in naive(engine, policy, calendar, period).items()}
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "peak_bytes": peak,
        "stages_reached_s": stages,
        "tables": tables,
    }


def run_phase(name: str, url: str, out: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--phase", name, "--database-url", url, "--keep", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--complaints", type=int, default=1_000_000)
    parser.add_argument("--database-url", help="PostgreSQL to use (its Kefu tables are emptied); default: SQLite file")
    parser.add_argument("--keep", type=Path, help="where the report files go (default: a temporary directory)")
    parser.add_argument(
        "--embedded-pg",
        type=Path,
        metavar="DIR",
        help="use the embedded PostgreSQL `make up` runs (PostgreSQL 18 from the wheel), its data under DIR (kept: "
        "--reuse measures it again); the database `kefu` on it",
    )
    parser.add_argument("--reuse", action="store_true", help="measure on the data the database already holds")
    parser.add_argument("--no-naive", action="store_true", help="time Kefu's computation only")
    parser.add_argument("--phase", choices=["generate", "kefu", "naive"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "generate":
        engine = make_engine(args.database_url)
        print(json.dumps(generate(engine, args.complaints)))
        return
    if args.phase:
        print(json.dumps(phase(args.phase, args.database_url, args.keep), ensure_ascii=False))
        return
    scratch = Path(tempfile.mkdtemp(prefix="kefu-bench-report-"))
    if args.embedded_pg:
        pgdata = args.embedded_pg.resolve() / "pg"
        attach(pgdata)  # started if not running; stopped when this process (its last user) exits
        args.database_url = f"postgresql+psycopg://postgres@/kefu?host={pgdata}"
    url = args.database_url or f"sqlite:///{scratch / 'kefu.db'}"
    engine = make_engine(url)
    dialect = engine.dialect.name
    started = time.perf_counter()
    if args.reuse:
        with engine.connect() as connection:
            sizes = {t: connection.scalar(text(f"SELECT COUNT(*) FROM {t}")) for t in ("complaints", "milestones")}
    else:
        upgrade(engine)
        if dialect == "postgresql":
            empty(engine)
        # Generated in a process of its own: a child's peak memory (ru_maxrss) starts at its parent's at the fork.
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--phase",
                "generate",
                "--database-url",
                url,
                "--complaints",
                str(args.complaints),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        sizes = json.loads(done.stdout)
    generated = time.perf_counter() - started
    engine.dispose()
    out = args.keep or scratch / "reports"
    fast = run_phase("kefu", url, out)
    report: dict[str, Any] = {
        "database": dialect,
        **sizes,
        "generate_seconds": round(generated, 1),
        "kefu_seconds": fast["seconds"],
        "kefu_cpu_seconds": fast["cpu_seconds"],
        "kefu_peak_mib": round(fast["peak_bytes"] / 2**20),
        "kefu_stages_reached_s": fast["stages_reached_s"],
        "parent_peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10),
        "goal_met": fast["seconds"] <= 10 and fast["peak_bytes"] <= 2 * 2**30,
    }
    if not args.no_naive:
        slow = run_phase("naive", url, out)
        report |= {
            "naive_seconds": slow["seconds"],
            "naive_cpu_seconds": slow["cpu_seconds"],
            "naive_peak_mib": round(slow["peak_bytes"] / 2**20),
            "ratio": round(slow["seconds"] / fast["seconds"], 1),
            "figures_equal": fast["tables"] == slow["tables"],
        }
    report["files"] = sorted(str(p) for p in out.glob("kefu-report-*"))
    for generated_file in scratch.glob("kefu.db*"):  # the scratch SQLite database (a gigabyte at 1M); the reports stay
        generated_file.unlink()
    print(json.dumps(report, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
