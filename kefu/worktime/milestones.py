"""The deadlines of one complaint, from the policy's table (DESIGN.md §1) and the working-time engine."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from itertools import groupby

from kefu.models.policy import PROMISED, Anchor, MilestoneId, MilestoneRule, Policy, Severity, Unit
from kefu.worktime.calendar import DayNote, Deadline, WorkCalendar, weekday_zh

_UNIT_ZH = {
    Unit.MINUTES: "分钟（自然时间）",
    Unit.HOURS: "小时（自然时间）",
    Unit.WORKING_HOURS: "个工作小时（仅计工作日的工作时间段）",
    Unit.WORKING_DAYS: "个工作日（自次日起算，截至第{n}个工作日下班）",
}
_ANCHOR_ZH = {Anchor.RECEIPT: "接到投诉", Anchor.RESOLUTION: "处理完成"}


@dataclass(frozen=True)
class PlannedMilestone:
    id: MilestoneId
    name: str
    starts_at: dt.datetime
    due_at: dt.datetime | None
    unit: str
    target: float | str
    provisional: bool
    explanation: str
    rule_from: Severity | None = None  # a lower severity whose rule gave an earlier due time (never later)


@dataclass(frozen=True)
class MilestonePlan:
    severity: Severity
    received_at: dt.datetime
    key_account: bool
    milestones: list[PlannedMilestone]
    warnings: list[str] = field(default_factory=list)

    def get(self, milestone: MilestoneId) -> PlannedMilestone | None:
        return next((m for m in self.milestones if m.id is milestone), None)


def _fmt(moment: dt.datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M}（{weekday_zh(moment.date())}）"


def _day_ranges(notes: tuple[DayNote, ...]) -> str:
    """'2026-02-16 农历除夕、2026-02-17至02-19 春节' — consecutive days of one name folded."""
    parts: list[str] = []
    for reason, group in groupby(notes, key=lambda n: n.reason):
        days = [n.day for n in group]
        runs: list[list[dt.date]] = []
        for day in days:
            if runs and (day - runs[-1][-1]).days == 1:
                runs[-1].append(day)
            else:
                runs.append([day])
        for run in runs:
            span = run[0].isoformat() if len(run) == 1 else f"{run[0].isoformat()}至{run[-1]:%m-%d}"
            parts.append(f"{span} {reason}")
    return "、".join(parts)


def explain(deadline: Deadline, anchor: Anchor) -> str:
    """A staff-readable account of how a deadline was computed, naming holidays and make-up days."""
    amount = deadline.duration.amount
    amount_text = f"{int(amount)}" if amount == int(amount) else f"{amount:g}"
    text = (
        f"自{_ANCHOR_ZH[anchor]} {_fmt(deadline.start)} 起 {amount_text} "
        f"{_UNIT_ZH[deadline.duration.unit].format(n=amount_text)}，"
        f"截止 {_fmt(deadline.due_at)}"
    )
    if deadline.holidays_skipped:
        text += f"；跳过节假日：{_day_ranges(deadline.holidays_skipped)}"
    if deadline.makeup_days_counted:
        text += f"；计入调休上班日：{_day_ranges(deadline.makeup_days_counted)}"
    if deadline.unconfirmed_years:
        years = "、".join(str(y) for y in deadline.unconfirmed_years)
        text += f"；{years}年节假日安排尚未公布确认，此截止时间为暂定"
    return text


def _plan_one(
    calendar: WorkCalendar,
    rule: MilestoneRule,
    start: dt.datetime,
    promised_at: dt.datetime | None,
    warnings: list[str],
) -> PlannedMilestone:
    local_start = start.astimezone(calendar.tz)
    if rule.due == PROMISED:
        if promised_at is None:
            return PlannedMilestone(
                rule.id,
                rule.name,
                local_start,
                None,
                PROMISED,
                PROMISED,
                False,
                "以客户认可的解决方案中承诺的完成时间为准（方案被接受后确定）",
            )
        due = promised_at.astimezone(calendar.tz)
        return PlannedMilestone(
            rule.id,
            rule.name,
            local_start,
            due,
            PROMISED,
            PROMISED,
            False,
            f"解决方案中承诺的完成时间 {_fmt(due)}",
        )
    assert not isinstance(rule.due, str)
    deadline = calendar.deadline(local_start, rule.due)
    if deadline.provisional:
        years = "、".join(str(y) for y in deadline.unconfirmed_years)
        warnings.append(
            f"{rule.id.value}: {years}年的法定节假日和调休安排尚未确认，截止时间 {deadline.due_at.isoformat()} 为暂定"
        )
    target: float = int(rule.due.amount) if rule.due.amount == int(rule.due.amount) else rule.due.amount
    return PlannedMilestone(
        rule.id,
        rule.name,
        local_start,
        deadline.due_at,
        rule.due.unit.value,
        target,
        deadline.provisional,
        explain(deadline, rule.starts_at),
    )


@dataclass(frozen=True)
class CaseRule:
    """A rule a case follows: the milestone's own rule, or with the due time of a lower severity's rule
    (``rule_from``) when that one promises the customer something earlier."""

    rule: MilestoneRule
    due_at: dt.datetime | None
    rule_from: Severity | None


def case_rules(
    policy: Policy, calendar: WorkCalendar, severity: Severity, received_at: dt.datetime, *, key_account: bool
) -> list[CaseRule]:
    """The milestone rules of a case of this severity received at ``received_at``, in the one place every planner
    asks: raising the severity never makes a promise to the customer later (``complaints.never_later``: a
    commitment's due time is the earliest its own and every lower severity's rule gives, a severity without the
    milestone takes the lower one's), the time to resolve keeps its own target, and key-account targets only
    ever tighten (the earlier of the two due times)."""
    complaints = policy.complaints

    def due(rule: MilestoneRule) -> dt.datetime | None:
        return None if isinstance(rule.due, str) else calendar.due_at(received_at, rule.due)

    def earlier(a: dt.datetime | None, b: dt.datetime | None) -> bool:
        return a is not None and (b is None or a < b)

    chosen: dict[MilestoneId, CaseRule] = {}
    for _, rule in complaints.candidate_rules(severity, key_account):
        current = chosen.get(rule.id)
        due_at = due(rule)
        if current is None or earlier(due_at, current.due_at):
            chosen[rule.id] = CaseRule(rule, due_at, None)
    for ids in complaints.never_later.values():
        lower = [
            CaseRule(rule, due(rule), source)
            for source in complaints.lower_severities(severity)
            for _, rule in complaints.candidate_rules(source, key_account)
            if rule.id in ids and rule.starts_at is Anchor.RECEIPT
        ]
        best = min((c for c in lower if c.due_at is not None), key=lambda c: c.due_at or received_at, default=None)
        if best is None:
            continue
        mine = [milestone for milestone in chosen if milestone in ids]
        if not mine:
            chosen[best.rule.id] = best
        for milestone in mine:
            own = chosen[milestone]
            if earlier(best.due_at, own.due_at):
                keep = {"id": own.rule.id, "name": own.rule.name, "customer_wording": own.rule.customer_wording}
                chosen[milestone] = CaseRule(best.rule.model_copy(update=keep), best.due_at, best.rule_from)
    rules = list(chosen.values())
    rules.sort(key=lambda c: (c.due_at is None, c.due_at or received_at))
    return rules


def plan_complaint_milestones(
    policy: Policy,
    calendar: WorkCalendar,
    severity: Severity,
    received_at: dt.datetime,
    *,
    key_account: bool = False,
    resolved_at: dt.datetime | None = None,
    promised_at: dt.datetime | None = None,
) -> MilestonePlan:
    """Every milestone of a complaint of this severity received at ``received_at``.

    ``callback`` is planned only once the case is resolved (3 working days after resolution).
    """
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    if resolved_at is not None and resolved_at < received_at:
        raise ValueError("resolved_at is before received_at")
    warnings: list[str] = []
    milestones = []
    for chosen in case_rules(policy, calendar, severity, received_at, key_account=key_account):
        planned = _plan_one(calendar, chosen.rule, received_at, promised_at, warnings)
        if chosen.rule_from is not None:
            source = policy.complaints.severities[chosen.rule_from].name
            own = policy.complaints.severities[severity]
            if any(rule.id is chosen.rule.id for rule in own.milestones):
                note = f"按{source}的规则（{chosen.rule.due}）更早，取较早者——提高等级不推迟对客户的承诺；"
            else:
                note = f"{own.name}无此节点，按{source}的规则（{chosen.rule.due}）——提高等级不推迟对客户的承诺；"
            planned = dataclasses.replace(planned, explanation=note + planned.explanation, rule_from=chosen.rule_from)
        milestones.append(planned)
    if resolved_at is not None:
        milestones.append(_plan_one(calendar, policy.complaints.callback, resolved_at, None, warnings))
    return MilestonePlan(severity, received_at.astimezone(calendar.tz), key_account, milestones, warnings)
