"""Send windows: customer messages wait for 9:00–12:00 or 15:00–18:00 on a working day (seed 002 §二 3)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from kefu.notifications import MessageType, enqueue, send_time
from kefu.worktime import WorkCalendar
from tests.support.clock import SHANGHAI
from tests.support.databases import edit_policy
from tests.support.samples import CONTEXTS


def at(year: int, month: int, day: int, hour: int, minute: int) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("queued", "leaves"),
    [
        pytest.param(at(2026, 11, 23, 10, 0), at(2026, 11, 23, 10, 0), id="inside-morning-window"),
        pytest.param(at(2026, 11, 23, 12, 30), at(2026, 11, 23, 15, 0), id="lunch-break-waits-for-15h"),
        pytest.param(at(2026, 11, 23, 7, 0), at(2026, 11, 23, 9, 0), id="early-morning-waits-for-9h"),
        pytest.param(at(2026, 11, 27, 18, 30), at(2026, 11, 30, 9, 0), id="friday-evening-waits-for-monday"),
        pytest.param(at(2026, 10, 1, 10, 0), at(2026, 10, 8, 9, 0), id="national-day-holiday"),
        pytest.param(at(2026, 10, 10, 10, 0), at(2026, 10, 10, 10, 0), id="make-up-working-saturday"),
    ],
)
def test_customer_messages_leave_only_inside_business_windows_of_working_days(
    calendar: WorkCalendar, queued: dt.datetime, leaves: dt.datetime
) -> None:
    assert calendar.next_business_moment(queued) == leaves
    assert send_time(MessageType.PROGRESS_UPDATE, queued, calendar=calendar) == leaves


def test_a_time_agreed_with_the_customer_wins(calendar: WorkCalendar) -> None:
    agreed = at(2026, 11, 28, 20, 0)  # Saturday evening, because the customer asked for it
    assert (
        send_time(MessageType.PROGRESS_UPDATE, at(2026, 11, 23, 10, 0), agreed_time=agreed, calendar=calendar) == agreed
    )


@pytest.mark.parametrize(
    "message_type",
    [MessageType.SUPERVISOR_ESCALATION, MessageType.PRE_BREACH_WARNING, MessageType.TASK_FORCE_ASSIGNMENT],
)
def test_internal_escalations_go_at_once(calendar: WorkCalendar, message_type: MessageType) -> None:
    night = at(2026, 11, 28, 23, 0)
    assert send_time(message_type, night, calendar=calendar) == night


def test_an_urgent_customer_message_goes_at_once(calendar: WorkCalendar) -> None:
    night = at(2026, 11, 28, 23, 0)
    assert send_time(MessageType.MAJOR_APOLOGY, night, urgent=True, calendar=calendar) == night


def test_a_queued_acknowledgement_records_when_it_may_leave(db: Session, calendar: WorkCalendar) -> None:
    row = enqueue(
        db,
        MessageType.COMPLAINT_ACKNOWLEDGEMENT,
        recipient_email="zhangsan@example.com",
        context=CONTEXTS[MessageType.COMPLAINT_ACKNOWLEDGEMENT],
        now=at(2026, 11, 23, 12, 30),
        calendar=calendar,
    )
    assert row.not_before == at(2026, 11, 23, 15, 0)


def test_a_changed_policy_file_moves_the_send_window_without_a_restart(policy_file: Path) -> None:
    early = at(2026, 11, 23, 8, 0)  # Monday, before the morning window
    assert send_time(MessageType.PROGRESS_UPDATE, early) == at(2026, 11, 23, 9, 0)
    edit_policy(policy_file, '"09:00-12:00"', '"08:00-12:00"')
    assert send_time(MessageType.PROGRESS_UPDATE, early) == early
    edit_policy(policy_file, "extra_holidays: []", "extra_holidays: [{date: 2026-11-23, name: 公司年会}]")
    assert send_time(MessageType.PROGRESS_UPDATE, early) == at(2026, 11, 24, 8, 0)
