"""The working-time engine: business windows, working hours and days, the policy's own calendar changes,
and properties that must hold for any receipt time."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kefu.models.policy import CalendarDay, Duration, Policy
from kefu.worktime import WorkCalendar
from kefu.worktime.calendar import to_ns
from tests.support.clock import SHANGHAI

CST = SHANGHAI  # China Standard Time


def at(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=CST)  # type: ignore[misc]


def d(text: str) -> Duration:
    return Duration.model_validate(text)


def with_calendar_changes(
    policy: Policy, holidays: list[dt.date] | None = None, workdays: list[dt.date] | None = None
) -> WorkCalendar:
    calendar = policy.calendar.model_copy(
        update={
            "extra_holidays": [CalendarDay(date=x, name="公司休息日") for x in holidays or []],
            "extra_workdays": [CalendarDay(date=x, name="公司工作日") for x in workdays or []],
        }
    )
    return WorkCalendar(policy.model_copy(update={"calendar": calendar}))


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (dt.date(2026, 2, 14), True),  # Saturday, make-up working day for Spring Festival
        (dt.date(2026, 2, 17), False),  # Spring Festival
        (dt.date(2026, 2, 23), False),  # Monday, day off in lieu of 02-28
        (dt.date(2026, 2, 28), True),  # Saturday, make-up working day
        (dt.date(2026, 5, 5), False),  # Tuesday, Labour Day break
        (dt.date(2026, 5, 9), True),  # Saturday, make-up working day
        (dt.date(2026, 9, 20), True),  # Sunday, make-up working day for National Day
        (dt.date(2026, 10, 7), False),  # Wednesday, National Day break
        (dt.date(2026, 10, 10), True),  # Saturday, make-up working day
        (dt.date(2026, 10, 11), False),  # an ordinary Sunday
        (dt.date(2026, 10, 12), True),  # an ordinary Monday
    ],
)
def test_working_days_follow_the_official_calendar_with_make_up_days(
    calendar: WorkCalendar, day: dt.date, working: bool
) -> None:
    assert calendar.is_working_day(day) is working


@pytest.mark.parametrize(
    ("start", "duration", "due"),
    [
        # inside a window: plain addition
        (at(2026, 3, 10, 9, 30), "2 working_hours", at(2026, 3, 10, 11, 30)),
        # runs over the lunch gap: 11:30-12:00 then 15:00-16:30
        (at(2026, 3, 10, 11, 30), "2 working_hours", at(2026, 3, 10, 16, 30)),
        # ends exactly at a window's end: the deadline is that end, not the next window's start
        (at(2026, 3, 10, 9, 0), "3 working_hours", at(2026, 3, 10, 12, 0)),
        # received at night: the clock starts at 09:00 next working day
        (at(2026, 3, 10, 21, 0), "1 working_hours", at(2026, 3, 11, 10, 0)),
        # Friday 17:00 before National Day's make-up Saturday: 1 h on Friday, 1 h on Saturday 10-10
        (at(2026, 10, 9, 17, 0), "2 working_hours", at(2026, 10, 10, 10, 0)),
        # last working hour before Spring Festival continues on the make-up Saturday 02-14, then 02-24
        (at(2026, 2, 13, 17, 0), "8 working_hours", at(2026, 2, 24, 10, 0)),
        # minutes are clock minutes (enquiries: 10 minutes)
        (at(2026, 10, 1, 9, 55), "10 minutes", at(2026, 10, 1, 10, 5)),
    ],
)
def test_working_hours_count_only_business_windows(
    calendar: WorkCalendar, start: dt.datetime, duration: str, due: dt.datetime
) -> None:
    assert calendar.deadline(start, d(duration)).due_at == due


def test_a_company_holiday_pushes_deadlines_out(policy: Policy, calendar: WorkCalendar) -> None:
    start = at(2026, 3, 10, 10, 0)
    assert calendar.deadline(start, d("3 working_days")).due_at == at(2026, 3, 13, 18, 0)
    company = with_calendar_changes(policy, holidays=[dt.date(2026, 3, 12)])
    deadline = company.deadline(start, d("3 working_days"))
    assert deadline.due_at == at(2026, 3, 16, 18, 0)
    assert any("公司安排休息日" in note.reason for note in deadline.holidays_skipped)


def test_a_company_working_day_counts(policy: Policy) -> None:
    company = with_calendar_changes(policy, workdays=[dt.date(2026, 3, 14)])  # a Saturday
    deadline = company.deadline(at(2026, 3, 13, 10, 0), d("1 working_days"))
    assert deadline.due_at == at(2026, 3, 14, 18, 0)
    assert [n.day for n in deadline.makeup_days_counted] == [dt.date(2026, 3, 14)]


def test_a_year_entered_by_hand_is_no_longer_provisional(policy: Policy, calendar: WorkCalendar) -> None:
    start = at(2027, 3, 10, 10, 0)
    assert calendar.deadline(start, d("3 working_days")).provisional is True
    confirmed = WorkCalendar(
        policy.model_copy(update={"calendar": policy.calendar.model_copy(update={"confirmed_years": [2027]})})
    )
    assert confirmed.deadline(start, d("3 working_days")).provisional is False


def test_the_vectorised_path_matches_the_scalar_path_for_a_day_of_receipts(calendar: WorkCalendar) -> None:
    starts = [at(2026, 9, 30, 0, 0) + dt.timedelta(minutes=7 * i) for i in range(400)]
    for duration in ("4 working_hours", "7 working_days", "24 hours"):
        vector = calendar.deadlines(starts, d(duration))
        assert vector == [calendar.deadline(s, d(duration)).due_at for s in starts]


# ---- properties ---------------------------------------------------------------------------

MOMENTS = st.datetimes(min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2027, 12, 31), timezones=st.just(CST))
COUNTED = st.one_of(
    st.integers(1, 40).map(lambda n: Duration(amount=n / 2, unit="working_hours")),
    st.integers(1, 20).map(lambda n: Duration(amount=n, unit="working_days")),
)
ANY_DURATION = st.one_of(COUNTED, st.integers(1, 96).map(lambda n: Duration(amount=n, unit="hours")))
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(a=MOMENTS, b=MOMENTS, duration=ANY_DURATION)
def test_a_later_receipt_never_gives_an_earlier_deadline(
    calendar: WorkCalendar, a: dt.datetime, b: dt.datetime, duration: Duration
) -> None:
    early, late = sorted((a, b))
    assert calendar.deadline(early, duration).due_at <= calendar.deadline(late, duration).due_at


@FAST
@given(start=MOMENTS, duration=COUNTED)
def test_counted_deadlines_fall_inside_a_business_window_of_a_working_day(
    calendar: WorkCalendar, start: dt.datetime, duration: Duration
) -> None:
    due = calendar.deadline(start, duration).due_at.astimezone(CST)
    assert calendar.is_working_day(due.date())
    assert any(w.start <= due.time() <= w.end for w in calendar.windows)
    assert due > start


@FAST
@given(start=MOMENTS, half_hours=st.integers(1, 30))
def test_working_hours_are_exactly_the_business_time_between_receipt_and_deadline(
    calendar: WorkCalendar, start: dt.datetime, half_hours: int
) -> None:
    duration = Duration(amount=half_hours / 2, unit="working_hours")
    due = calendar.deadline(start, duration).due_at
    counted = dt.timedelta(0)
    day = start.astimezone(CST).date()
    while day <= due.date():
        if calendar.is_working_day(day):
            for window in calendar.windows:
                lo = max(start, dt.datetime.combine(day, window.start, CST))
                hi = min(due, dt.datetime.combine(day, window.end, CST))
                counted += max(hi - lo, dt.timedelta(0))
        day += dt.timedelta(days=1)
    assert counted == dt.timedelta(minutes=30 * half_hours)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=MOMENTS, duration=COUNTED, offset=st.integers(-3, 30))
def test_adding_a_holiday_never_makes_a_deadline_earlier(
    policy: Policy, calendar: WorkCalendar, start: dt.datetime, duration: Duration, offset: int
) -> None:
    holiday = start.date() + dt.timedelta(days=offset)
    if calendar.day_note(holiday).reason.startswith("公司安排"):
        return
    changed = with_calendar_changes(policy, holidays=[holiday])
    assert changed.deadline(start, duration).due_at >= calendar.deadline(start, duration).due_at


@FAST
@given(starts=st.lists(MOMENTS, min_size=1, max_size=30), duration=ANY_DURATION)
def test_vectorised_and_scalar_deadlines_agree(
    calendar: WorkCalendar, starts: list[dt.datetime], duration: Duration
) -> None:
    vector = calendar.deadlines_ns(np.array([to_ns(s) for s in starts], dtype=np.int64), duration)
    assert vector.tolist() == [to_ns(calendar.deadline(s, duration).due_at) for s in starts]


def test_reports_get_deadlines_for_a_whole_column_at_once(calendar: WorkCalendar) -> None:
    import pandas as pd

    received = pd.Series(
        pd.to_datetime(["2026-09-30T16:00:00+08:00", "2026-02-13T10:00:00+08:00", "2026-03-10T02:00:00Z"], utc=True),
        name="received_at",
    )
    due = calendar.deadlines_series(received, d("7 working_days"))
    assert [t.isoformat() for t in due] == [
        "2026-10-15T18:00:00+08:00",
        "2026-03-02T18:00:00+08:00",
        "2026-03-19T18:00:00+08:00",
    ]
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.deadlines_series(pd.Series(pd.to_datetime(["2026-03-10 10:00"])), d("1 working_days"))
