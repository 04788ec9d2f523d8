"""Calendar check: tell the service desk which days ahead are not working days, and when the official
calendar of a coming year is not yet confirmed (deadlines there are provisional until it is)."""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from kefu.models.policy import current_policy
from kefu.worktime import WorkCalendar


def upcoming_days_table(calendar: WorkCalendar, today: dt.date, days_ahead: int) -> tuple[str, list[int]]:
    rows = ["| 日期 | 星期 | 安排 |", "|---|---|---|"]
    last = today + dt.timedelta(days=days_ahead)
    day = today
    while day <= last:
        note = calendar.day_note(day)
        unusual = (not note.working and day.weekday() < 5) or (note.working and day.weekday() >= 5)
        if unusual:
            rows.append(f"| {day.isoformat()} | {'一二三四五六日'[day.weekday()]} | {note.reason} |")
        day += dt.timedelta(days=1)
    unconfirmed = sorted({y for y in (today.year, last.year) if not calendar.is_confirmed_year(y)})
    return "\n".join(rows), unconfirmed


@flow(name="calendar-check", log_prints=False)
def calendar_check(days_ahead: int = 60) -> list[int]:
    """List holidays and make-up working days ahead; warn about years whose calendar is unconfirmed."""
    logger = get_run_logger()
    calendar = WorkCalendar(current_policy())
    today = dt.datetime.now(calendar.tz).date()
    table, unconfirmed = upcoming_days_table(calendar, today, days_ahead)
    note = ""
    if unconfirmed:
        years = "、".join(str(y) for y in unconfirmed)
        note = (
            f"\n\n**注意**：{years}年的法定节假日和调休安排尚未确认，落在其中的截止时间为暂定。"
            "国务院公布安排后，请在政策文件 calendar 部分补录并列入 confirmed_years。"
        )
        logger.warning("calendar of %s not confirmed: deadlines there are provisional", years)
    create_markdown_artifact(
        key="calendar-check",
        markdown=f"# 未来{days_ahead}天的节假日与调休\n\n{table}{note}",
        description="Holidays and make-up working days ahead",
    )
    return unconfirmed
