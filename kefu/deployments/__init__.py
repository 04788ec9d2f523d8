"""Deployments: which flows Kefu serves, on which schedules and triggers.

Every part of Kefu adds its deployments to ``all_deployments``; ``kefu up`` serves them all.
"""

from __future__ import annotations

from typing import Any


def all_deployments() -> list[Any]:
    """The runner deployments ``kefu up`` serves (imports flows lazily: start-up stays light)."""
    from prefect.schedules import Cron

    from kefu.flows.calendar_check import calendar_check

    return [
        calendar_check.to_deployment(
            name="calendar-check",
            schedule=Cron("0 8 * * *", timezone="Asia/Shanghai"),
            tags=["kefu", "calendar"],
            description="每天08:00列出未来的节假日与调休，提醒尚未确认的年度日历。",
        ),
    ]
