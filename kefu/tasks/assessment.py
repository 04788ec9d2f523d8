"""员工月度考核 (seed 004 §5(二)): the month's sheets, Kefu's measured figures, the evaluators' answers, combining them
into the ranked result, the mails, the missed deadlines. Repository functions: they take the session, never commit.

**The figures Kefu measures** (per assessed person, the month on the policy's clock):

- 客户咨询解答准确率 — the share of the enquiries they answered that month that no supervisor marked wrong
  (``kefu.tasks.enquiries.answer_accuracy``); where quality checks of communication records give a figure for the
  person (``accuracy_from_quality_checks``: the supervisors' mean 准确性 score of 5), that figure is used instead.
- 订单处理及时率 — of the milestones of the complaints they own that fell due in the month (and are due by the
  time of measuring), the share met by their due time.
- 客户投诉处理满意度 — the average callback satisfaction (1–5) of the callbacks done that month on complaints they
  own.

**Combining** (every score 0–100; a 1–5 score counts ×20, a rate ×100):

- the customers' score is the callback satisfaction;
- the supervisor's and the person's own score are the policy's weighted criteria (``criteria_weights``): the three
  measured criteria take Kefu's figures, 工作态度 the average of 工作纪律/团队协作/责任心 and 专业能力 the average of
  产品知识掌握程度/服务技巧运用能力 as that evaluator scored them;
- the total is the evaluator-weighted sum (``evaluator_weights``).

A part without data (no enquiries answered, no callbacks, a step missed) is left out and the remaining weights are
re-normalised; the sheet's ``flags`` say what was left out, and every table shows them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kefu.models.assessment import DONE, MISSING, PENDING, AssessmentEvent, AssessmentMonth, AssessmentSheet
from kefu.models.base import utcnow
from kefu.models.complaints import CaseEvent, Complaint, Milestone
from kefu.models.people import Staff, StaffRole
from kefu.models.policy import MEASURED_CRITERIA, Policy, Role, StaffAssessmentPolicy
from kefu.notifications.messages import MessageType
from kefu.notifications.outbox import MessageRejected, enqueue
from kefu.worktime import WorkCalendar

SELF, SUPERVISOR = "self", "supervisor"
EVALUATORS = (SELF, SUPERVISOR)
EVALUATOR_ZH = {SELF: "自我评价", SUPERVISOR: "上级评价", "customer": "客户评价"}
# The items each evaluator scores 1–5 (seed 004 §5(二) 2–3), grouped into the policy's two scored criteria.
ATTITUDE_ITEMS = {"discipline": "工作纪律", "teamwork": "团队协作", "responsibility": "责任心"}
ABILITY_ITEMS = {"product_knowledge": "产品知识掌握程度", "service_skills": "服务技巧运用能力"}
CRITERIA_ZH = {
    "answer_accuracy": "客户咨询解答准确率",
    "order_on_time_rate": "订单处理及时率",
    "complaint_satisfaction": "客户投诉处理满意度",
    "attitude": "工作态度",
    "ability": "专业能力",
}
STATUS_ZH = {PENDING: "待填写", DONE: "已完成", MISSING: "缺失（逾期未填）"}
EXCELLENT, PASSED, FAILED, UNDECIDED = "优秀", "合格", "不合格", "无法评定"
FAILED_FOLLOW_UP = "诫勉谈话、培训补考或调岗"


class AssessmentRefused(Exception):
    """An answer or a request the assessment cannot accept (zh-CN / English reason)."""


def system_clock() -> dt.datetime:
    return utcnow()


# --- months ----------------------------------------------------------------------------------------------------


def month_text(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def parse_month(text: str) -> tuple[int, int]:
    try:
        year, month = (int(part) for part in text.split("-"))
        dt.date(year, month, 1)
    except ValueError:
        raise AssessmentRefused(f"月份应写作 YYYY-MM（如 2026-11） / month must be YYYY-MM, not '{text}'") from None
    return year, month


def previous_month(now: dt.datetime, timezone: str) -> str:
    local = now.astimezone(ZoneInfo(timezone)).date().replace(day=1) - dt.timedelta(days=1)
    return month_text(local.year, local.month)


def month_bounds(year: int, month: int, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    tz = ZoneInfo(timezone)
    start = dt.datetime(year, month, 1, tzinfo=tz)
    end = dt.datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=tz)
    return start, end


def is_opening_day(now: dt.datetime, calendar: WorkCalendar, timezone: str) -> bool:
    """The month's assessment opens on its first working day (the schedule runs on the first days of the month)."""
    today = now.astimezone(ZoneInfo(timezone)).date()
    if not calendar.is_working_day(today):
        return False
    return not any(calendar.is_working_day(today.replace(day=d)) for d in range(1, today.day))


# --- the measured figures ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    answer_accuracy: float | None
    answers: int
    accuracy_source: str
    on_time_rate: float | None
    milestones: int
    satisfaction: float | None
    callbacks: int


def accuracy_from_quality_checks(session: Session, year: int, month: int) -> dict[int, tuple[float, int]]:
    """Answer accuracy from the month's quality checks of communication records (沟通记录质检,
    ``kefu.tasks.quality``), where an agent's records were checked: the supervisors' mean 准确性 score (1–5) as a share
    of the best score, and the number of records checked. It replaces the enquiry accuracy for the people it covers."""
    from kefu.tasks.quality import quality_scores

    return {
        staff: (score.means["accuracy"] / 5.0, score.reviewed)
        for staff, score in quality_scores(session, year, month).items()
    }


def measure(
    session: Session, year: int, month: int, timezone: str, staff_ids: list[int], as_of: dt.datetime
) -> dict[int, Measured]:
    """Kefu's figures of ``month`` for each of ``staff_ids`` (see the module docstring)."""
    from kefu.tasks.enquiries import answer_accuracy

    start, end = month_bounds(year, month, timezone)
    until = min(end, as_of)
    enquiries = answer_accuracy(session, year, month, timezone)
    quality = accuracy_from_quality_checks(session, year, month)
    on_time: dict[int, tuple[int, int]] = {}
    met_in_time = (Milestone.met_at.is_not(None)) & (Milestone.met_at <= Milestone.due_at)
    rows = session.execute(
        select(Complaint.owner_id, func.count(), func.count().filter(met_in_time))
        .join(Milestone, Milestone.complaint_id == Complaint.id)
        .where(
            Complaint.owner_id.in_(staff_ids),
            Milestone.due_at.is_not(None),
            Milestone.due_at >= start,
            Milestone.due_at < until,
        )
        .group_by(Complaint.owner_id)
    ).all()
    for owner, total, met in rows:
        on_time[int(owner)] = (int(total), int(met))
    callbacks: dict[int, list[float]] = {}
    events = session.execute(
        select(Complaint.owner_id, CaseEvent.data)
        .join(Complaint, Complaint.id == CaseEvent.complaint_id)
        .where(
            CaseEvent.action == "callback", CaseEvent.at >= start, CaseEvent.at < end, Complaint.owner_id.in_(staff_ids)
        )
    ).all()
    for owner, data in events:
        value = (data or {}).get("satisfaction")
        if isinstance(value, int | float):
            callbacks.setdefault(int(owner), []).append(float(value))
    result: dict[int, Measured] = {}
    for staff_id in staff_ids:
        if staff_id in quality:
            accuracy: float | None
            accuracy, answers, source = quality[staff_id][0], quality[staff_id][1], "quality"
        else:
            got = enquiries.get(staff_id)
            accuracy = got.accuracy if got is not None and got.answered else None
            answers, source = (got.answered if got is not None else 0), "enquiries"
        total, met = on_time.get(staff_id, (0, 0))
        given = callbacks.get(staff_id, [])
        result[staff_id] = Measured(
            answer_accuracy=accuracy,
            answers=answers,
            accuracy_source=source,
            on_time_rate=met / total if total else None,
            milestones=total,
            satisfaction=sum(given) / len(given) if given else None,
            callbacks=len(given),
        )
    return result


# --- opening the month -----------------------------------------------------------------------------------------


def assessed_staff(session: Session, roles: list[Role]) -> list[Staff]:
    return list(
        session.scalars(
            select(Staff)
            .where(Staff.active.is_(True), Staff.id.in_(select(StaffRole.staff_id).where(StaffRole.role.in_(roles))))
            .order_by(Staff.id)
        )
    )


def open_month(
    session: Session, policy: Policy, calendar: WorkCalendar, month: str, now: dt.datetime
) -> list[AssessmentSheet]:
    """The month's sheets: one per active assessed person, with Kefu's figures and the steps' deadlines (from
    ``now``). Idempotent: a person with a sheet keeps it; the month's row is written once."""
    year, mon = parse_month(month)
    rules = policy.staff_assessment
    if session.get(AssessmentMonth, month) is None:
        session.add(AssessmentMonth(month=month, opened_at=now))
        session.flush()
    existing = {s.staff_id for s in sheets_of(session, month)}
    people = [p for p in assessed_staff(session, list(rules.assessed_roles)) if p.id not in existing]
    figures = measure(session, year, mon, policy.timezone, [p.id for p in people], now)
    for person in people:
        got = figures[person.id]
        session.add(
            AssessmentSheet(
                month=month,
                staff_id=person.id,
                supervisor_id=person.supervisor_id,
                answer_accuracy=got.answer_accuracy,
                answers=got.answers,
                accuracy_source=got.accuracy_source,
                on_time_rate=got.on_time_rate,
                milestones=got.milestones,
                satisfaction=got.satisfaction,
                callbacks=got.callbacks,
                self_due_at=calendar.due_at(now, rules.self_deadline),
                supervisor_due_at=calendar.due_at(now, rules.supervisor_deadline),
                # Nobody to score them: the supervisor's step is missing from the start (flagged).
                supervisor_status=PENDING if person.supervisor_id is not None else MISSING,
                flags=[],
                created_at=now,
            )
        )
    session.flush()
    return sheets_of(session, month)


def sheets_of(session: Session, month: str) -> list[AssessmentSheet]:
    query = select(AssessmentSheet).where(AssessmentSheet.month == month).order_by(AssessmentSheet.id)
    return list(session.scalars(query))


def get_sheet(session: Session, sheet_id: int) -> AssessmentSheet:
    sheet = session.get(AssessmentSheet, sheet_id)
    if sheet is None:
        raise AssessmentRefused(f"没有考核表 {sheet_id} / no assessment sheet {sheet_id}")
    return sheet


def status_of(sheet: AssessmentSheet, evaluator: str) -> str:
    return sheet.self_status if evaluator == SELF else sheet.supervisor_status


def due_of(sheet: AssessmentSheet, evaluator: str) -> dt.datetime:
    return sheet.self_due_at if evaluator == SELF else sheet.supervisor_due_at


# --- the evaluators' answers -------------------------------------------------------------------------------------


def check_answer(session: Session, sheet_id: int, evaluator: str, actor_staff_id: int | None) -> None:
    """Only the person (self) or their supervisor (supervisor) may answer, while the step is open."""
    sheet = get_sheet(session, sheet_id)
    expected = sheet.staff_id if evaluator == SELF else sheet.supervisor_id
    actor = session.get(Staff, actor_staff_id) if actor_staff_id is not None else None
    if actor is None or not actor.active:
        raise AssessmentRefused(f"员工编号 {actor_staff_id} 不是在职员工 / {actor_staff_id} is not active staff")
    if actor.id != expected:
        who = "被考核人本人" if evaluator == SELF else "被考核人的直属主管"
        whom = "the person assessed" if evaluator == SELF else "their supervisor"
        raise AssessmentRefused(
            f"{EVALUATOR_ZH[evaluator]}只能由{who}填写 / only {whom} may give the {evaluator} assessment "
            f"(staff {expected}, not {actor.id})"
        )
    status = status_of(sheet, evaluator)
    if status != PENDING:
        raise AssessmentRefused(
            f"{EVALUATOR_ZH[evaluator]}{STATUS_ZH[status]}，不能再填写 / the {evaluator} assessment is {status}"
        )


def record_answer(
    session: Session, sheet_id: int, evaluator: str, scores: dict[str, int], comment: str, actor: int, now: dt.datetime
) -> bool:
    """Write the evaluator's scores once (only while the step is pending); False when it is not (a replay)."""
    sheet = get_sheet(session, sheet_id)
    if status_of(sheet, evaluator) != PENDING:
        return False
    if evaluator == SELF:
        sheet.self_scores, sheet.self_comment, sheet.self_status = scores, comment, DONE
    else:
        sheet.supervisor_scores, sheet.supervisor_comment, sheet.supervisor_status = scores, comment, DONE
        sheet.scored_by_id = actor
    record_event(session, sheet_id, evaluator, "answered", evaluator, f"staff:{actor}", now)
    session.flush()
    return True


def record_event(
    session: Session, sheet_id: int, evaluator: str, action: str, key: str, actor: str, at: dt.datetime, **data: Any
) -> bool:
    """One audit row per (evaluator, action, key): False when it is there already (a replay)."""
    existing = session.scalar(
        select(AssessmentEvent.id).where(
            AssessmentEvent.sheet_id == sheet_id,
            AssessmentEvent.evaluator == evaluator,
            AssessmentEvent.action == action,
            AssessmentEvent.key == key,
        )
    )
    if existing is not None:
        return False
    session.add(
        AssessmentEvent(sheet_id=sheet_id, evaluator=evaluator, action=action, key=key, actor=actor, at=at, data=data)
    )
    session.flush()
    return True


def step_outcomes(session: Session, sheet_id: int, evaluator: str) -> dict[str, str]:
    rows = session.execute(
        select(AssessmentEvent.key, AssessmentEvent.action).where(
            AssessmentEvent.sheet_id == sheet_id,
            AssessmentEvent.evaluator == evaluator,
            AssessmentEvent.action.in_(("step_completed", "step_refused")),
        )
    ).all()
    return {key: "completed" if action == "step_completed" else "refused" for key, action in rows}


# --- combining ---------------------------------------------------------------------------------------------------


def _mean(scores: dict[str, Any], items: dict[str, str]) -> float | None:
    values = [float(scores[k]) for k in items if isinstance(scores.get(k), int | float)]
    return sum(values) / len(values) if values else None


def _weighted(values: dict[str, float | None], weights: dict[str, float]) -> float | None:
    """The weighted mean of the values present, the weights of the missing ones re-normalised away."""
    present = {k: w for k, w in weights.items() if values.get(k) is not None and w > 0}
    total_weight = sum(present.values())
    if not present or total_weight <= 0:
        return None
    return sum(w * float(values[k] or 0.0) for k, w in present.items()) / total_weight


def measured_scores(sheet: AssessmentSheet) -> dict[str, float | None]:
    """Kefu's figures as 0–100 scores (rates ×100, the 1–5 satisfaction ×20)."""
    return {
        "answer_accuracy": None if sheet.answer_accuracy is None else 100.0 * sheet.answer_accuracy,
        "order_on_time_rate": None if sheet.on_time_rate is None else 100.0 * sheet.on_time_rate,
        "complaint_satisfaction": None if sheet.satisfaction is None else 20.0 * sheet.satisfaction,
    }


def evaluator_score(
    sheet: AssessmentSheet, scores: dict[str, Any] | None, rules: StaffAssessmentPolicy
) -> float | None:
    """An evaluator's score 0–100: the weighted criteria, Kefu's figures for the measured ones."""
    if scores is None:
        return None
    values = measured_scores(sheet)
    attitude, ability = _mean(scores, ATTITUDE_ITEMS), _mean(scores, ABILITY_ITEMS)
    values["attitude"] = None if attitude is None else 20.0 * attitude
    values["ability"] = None if ability is None else 20.0 * ability
    return _weighted(values, rules.criteria_weights)


@dataclass(frozen=True)
class Result:
    customer: float | None
    supervisor: float | None
    own: float | None
    total: float | None
    flags: list[str]


def combine(sheet: AssessmentSheet, rules: StaffAssessmentPolicy) -> Result:
    flags: list[str] = []
    measured = measured_scores(sheet)
    for criterion in MEASURED_CRITERIA:
        if rules.criteria_weights.get(criterion, 0) > 0 and measured[criterion] is None:
            flags.append(f"无{CRITERIA_ZH[criterion]}数据")
    customer = measured["complaint_satisfaction"]
    supervisor = evaluator_score(sheet, sheet.supervisor_scores if sheet.supervisor_status == DONE else None, rules)
    own = evaluator_score(sheet, sheet.self_scores if sheet.self_status == DONE else None, rules)
    parts: dict[str, float | None] = {"supervisor": supervisor, "customer": customer, "self": own}
    weights: dict[str, float] = {str(k): v for k, v in rules.evaluator_weights.items()}
    for evaluator, score in parts.items():
        if score is None and weights.get(evaluator, 0) > 0:
            flags.append(f"缺{EVALUATOR_ZH[evaluator]}")
    total = _weighted(parts, weights)
    if total is not None and flags:
        flags.append("权重已按现有部分重新归一")
    return Result(customer, supervisor, own, total, flags)


def grade(total: float | None, rules: StaffAssessmentPolicy) -> str:
    if total is None:
        return UNDECIDED
    if total >= rules.excellent_mark:
        return EXCELLENT
    return PASSED if total >= rules.pass_mark else FAILED


def complete(session: Session, month: str) -> bool:
    """No step of the month's sheets is pending any more."""
    return all(s.self_status != PENDING and s.supervisor_status != PENDING for s in sheets_of(session, month))


def publish(session: Session, policy: Policy, month: str, now: dt.datetime) -> bool:
    """When every step of the month is answered or missing: each sheet's result, the ranks, the month published, the
    mails queued (each person their own sheet, each supervisor the team's). Once: False when not complete or
    published already."""
    row = session.get(AssessmentMonth, month, with_for_update=True)  # two last answers at once: one publishes
    if row is None or row.published_at is not None or not complete(session, month):
        return False
    rules = policy.staff_assessment
    sheets = sheets_of(session, month)
    for sheet in sheets:
        result = combine(sheet, rules)
        sheet.customer_score = _round(result.customer)
        sheet.supervisor_score = _round(result.supervisor)
        sheet.self_score = _round(result.own)
        sheet.total = _round(result.total)
        sheet.flags = result.flags
    ranked = sorted((s for s in sheets if s.total is not None), key=lambda s: -(s.total or 0.0))
    for index, sheet in enumerate(ranked):
        before = ranked[index - 1] if index else None
        sheet.rank = before.rank if before is not None and before.total == sheet.total else index + 1
    row.published_at = now
    session.flush()
    queue_mails(session, policy, month, now)
    return True


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


# --- the ranked table --------------------------------------------------------------------------------------------

COLUMNS = (
    "名次", "员工", "总分", "等级", "上级评价", "客户评价", "自我评价", "咨询解答准确率（%）", "订单处理及时率（%）",
    "投诉处理满意度（1–5）", "说明",
)  # fmt: skip


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}".rstrip("0").rstrip(".")


def table_rows(session: Session, policy: Policy, month: str, only_staff: int | None = None) -> list[tuple[str, ...]]:
    """The month's ranked rows (published: ranked; not yet: the figures so far, unranked), as people read them."""
    rules = policy.staff_assessment
    sheets = sheets_of(session, month)
    sheets.sort(key=lambda s: (s.rank is None, s.rank or 0, s.staff_id))
    rows: list[tuple[str, ...]] = []
    for sheet in sheets:
        if only_staff is not None and sheet.staff_id != only_staff:
            continue
        published = sheet.rank is not None or sheet.total is not None
        notes = list(sheet.flags or [])
        if not published:
            notes.append(f"上级评价{STATUS_ZH[sheet.supervisor_status]}，自我评价{STATUS_ZH[sheet.self_status]}")
        result_grade = grade(sheet.total, rules) if published else "—"
        if result_grade == FAILED:
            notes.append(f"不合格：{FAILED_FOLLOW_UP}")
        rows.append(
            (
                str(sheet.rank) if sheet.rank is not None else "—",
                sheet.staff.name,
                _num(sheet.total),
                result_grade,
                _num(sheet.supervisor_score),
                _num(sheet.customer_score),
                _num(sheet.self_score),
                _pct(sheet.answer_accuracy),
                _pct(sheet.on_time_rate),
                _num(sheet.satisfaction),
                "；".join(notes) or "—",
            )
        )
    return rows


def marks_note(policy: Policy) -> str:
    rules = policy.staff_assessment
    weights = "、".join(f"{EVALUATOR_ZH[k]}{100 * w:g}%" for k, w in rules.evaluator_weights.items())
    return (
        f"总分按{weights}加权（0–100分）；优秀 ≥ {rules.excellent_mark:g} 分，合格 ≥ {rules.pass_mark:g} 分，"
        f"不合格者{FAILED_FOLLOW_UP}。缺失部分不计，其余权重重新归一。"
    )


def markdown_table(rows: list[tuple[str, ...]]) -> str:
    def cell(value: str) -> str:
        return value.replace("|", "｜").replace("\n", " ")

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def unpublished_months(session: Session) -> list[str]:
    return list(
        session.scalars(
            select(AssessmentMonth.month).where(AssessmentMonth.published_at.is_(None)).order_by(AssessmentMonth.month)
        )
    )


def is_published(session: Session, month: str) -> bool:
    row = session.get(AssessmentMonth, month)
    return row is not None and row.published_at is not None


# --- mails -------------------------------------------------------------------------------------------------------


def _sheet_lines(session: Session, policy: Policy, month: str, staff_id: int) -> list[dict[str, str]]:
    [row] = table_rows(session, policy, month, only_staff=staff_id)
    return [{"label": label, "value": value} for label, value in zip(COLUMNS, row, strict=True)]


def queue_mails(session: Session, policy: Policy, month: str, now: dt.datetime) -> list[str]:
    """Each person their own sheet, each supervisor their team's sheets (internal mail; staff names and scores only,
    no customer data). Keyed: a replay queues nothing twice."""
    done: list[str] = []
    sheets = sheets_of(session, month)
    note = marks_note(policy)
    for sheet in sheets:
        person = sheet.staff
        if person.email:
            own = [_sheet_lines(session, policy, month, person.id)]
            done.append(_queue(session, person, month, own, note, f"{month}:own", now))
    supervisors = sorted({s.supervisor_id for s in sheets if s.supervisor_id is not None})
    for supervisor_id in supervisors:
        supervisor = session.get(Staff, supervisor_id)
        if supervisor is None or not supervisor.email:
            continue
        team = [s for s in sheets if s.supervisor_id == supervisor_id]
        team.sort(key=lambda s: (s.rank is None, s.rank or 0, s.staff_id))
        lines = [_sheet_lines(session, policy, month, s.staff_id) for s in team]
        done.append(_queue(session, supervisor, month, lines, note, f"{month}:team", now))
    return done


def _queue(
    session: Session, person: Staff, month: str, sheets: list[list[dict[str, str]]], note: str, what: str,
    now: dt.datetime,
) -> str:  # fmt: skip
    assert person.email is not None
    try:
        enqueue(
            session,
            MessageType.ASSESSMENT_SHEET,
            recipient_email=person.email,
            context={"recipient_name": person.name, "month": month, "sheets": sheets, "note": note},
            dedupe_key=f"assessment:{what}:staff:{person.id}",
            now=now,
        )
    except MessageRejected as rejected:
        return f"rejected: {rejected}"
    return f"{what}:{person.id}"


# --- missed deadlines --------------------------------------------------------------------------------------------


def overdue(session: Session, now: dt.datetime) -> list[tuple[AssessmentSheet, str]]:
    """The pending steps of unpublished months past their deadline."""
    published = select(AssessmentMonth.month).where(AssessmentMonth.published_at.is_not(None))
    rows = session.scalars(
        select(AssessmentSheet).where(
            AssessmentSheet.month.not_in(published),
            ((AssessmentSheet.self_status == PENDING) & (AssessmentSheet.self_due_at <= now))
            | ((AssessmentSheet.supervisor_status == PENDING) & (AssessmentSheet.supervisor_due_at <= now)),
        )
    ).all()
    found: list[tuple[AssessmentSheet, str]] = []
    for sheet in rows:
        for evaluator in EVALUATORS:
            if status_of(sheet, evaluator) == PENDING and due_of(sheet, evaluator) <= now:
                found.append((sheet, evaluator))
    return found


def mark_missing(session: Session, sheet: AssessmentSheet, evaluator: str, now: dt.datetime) -> str | None:
    """A missed step: recorded as missing, escalated once to the supervisor of whoever should have answered (the
    person's supervisor for the self step, the supervisor's supervisor for the supervisor's). Returns the run to
    stop (the step's run id)."""
    late: Staff | None
    if evaluator == SELF:
        sheet.self_status = MISSING
        late, run_id = sheet.staff, sheet.self_run_id
    else:
        sheet.supervisor_status = MISSING
        late, run_id = sheet.supervisor, sheet.supervisor_run_id
    boss = late.supervisor if late is not None else None
    mail = "no_recipient"
    if late is not None and boss is not None and boss.email:
        try:
            enqueue(
                session,
                MessageType.ASSESSMENT_OVERDUE,
                recipient_email=boss.email,
                context={
                    "recipient_name": boss.name,
                    "month": sheet.month,
                    "staff_name": sheet.staff.name,
                    "late_name": late.name,
                    "evaluator": EVALUATOR_ZH[evaluator],
                    "due_at": due_of(sheet, evaluator),
                },
                urgent=True,
                dedupe_key=f"assessment:{sheet.id}:overdue:{evaluator}",
                now=now,
            )
            mail = f"queued:staff:{boss.id}"
        except MessageRejected as rejected:
            mail = f"rejected: {rejected}"
    record_event(session, sheet.id, evaluator, "missing", evaluator, "system", now, mail=mail)
    session.flush()
    return run_id


def waiting_steps(session: Session, ref: str | None = None) -> list[dict[str, Any]]:
    """Assessment steps a run waits on (the shape of ``casework.waiting_steps``; ``case_no`` is ``MONTH/LOGIN``, e.g.
    ``2026-11/zhang``): pending steps whose run announced its wait."""
    query = (
        select(AssessmentEvent, AssessmentSheet)
        .join(AssessmentSheet, AssessmentSheet.id == AssessmentEvent.sheet_id)
        .where(AssessmentEvent.action == "waiting")
        .order_by(AssessmentEvent.id)
    )
    result: list[dict[str, Any]] = []
    for event, sheet in session.execute(query).all():
        if status_of(sheet, event.evaluator) != PENDING:
            continue
        shown = f"{sheet.month}/{sheet.staff.login or sheet.staff_id}"
        if ref is not None and ref != shown:
            continue
        if event.key in step_outcomes(session, sheet.id, event.evaluator):
            continue
        step = f"{event.evaluator}_assessment"
        result.append(
            {
                "case_no": shown,
                "step": step,
                "since": event.at.isoformat(),
                "deadlines": {step: due_of(sheet, event.evaluator).isoformat()},
                "flow_run_id": event.data.get("flow_run_id", ""),
                "sheet_id": sheet.id,
            }
        )
    return result


def find_sheet(session: Session, ref: str) -> AssessmentSheet:
    """``MONTH/LOGIN`` (or ``MONTH/STAFF_ID``) → the sheet."""
    from kefu.models.directory import find_staff

    month, _, who = ref.partition("/")
    person = find_staff(session, who) if who else None
    sheet = None
    if person is not None:
        sheet = session.scalar(
            select(AssessmentSheet).where(AssessmentSheet.month == month, AssessmentSheet.staff_id == person.id)
        )
    if sheet is None:
        raise AssessmentRefused(f"没有考核表 {ref} / no assessment sheet {ref} (write MONTH/LOGIN, e.g. 2026-11/zhang)")
    return sheet
