"""The deadlines of one complaint, from the policy's table (DESIGN.md §1) and the working-time engine."""

from __future__ import annotations

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
    milestones = [
        _plan_one(calendar, rule, received_at, promised_at, warnings)
        for rule in policy.complaints.milestone_rules(severity, key_account)
    ]
    if resolved_at is not None:
        milestones.append(_plan_one(calendar, policy.complaints.callback, resolved_at, None, warnings))
    return MilestonePlan(severity, received_at.astimezone(calendar.tz), key_account, milestones, warnings)
