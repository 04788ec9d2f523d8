"""The working-time engine (DESIGN.md §3): Chinese working days, business windows, deadlines.

Working days come from the Chinese public-holiday calendar of the ``holidays`` package, including the
make-up working days (调休, e.g. Saturday 2026-10-10), plus the policy file's own additions and removals.

Three counted units:

* ``hours`` / ``minutes``: clock time.
* ``working_hours``: only the time inside the business windows of working days counts. A clock started
  outside a window starts at the next window; a deadline that uses a window up to its end is that end.
* ``working_days``: the end of the last business window (18:00) of the Nth working day, counting from
  the day after the start day.

Both paths, scalar (``deadline``) and vectorised (``deadlines``), run on the same precomputed tables of
working days and business windows, in integer nanoseconds since the epoch, so they agree to the
nanosecond. A deadline whose span touches a year the official calendar does not yet confirm is still
computed (weekends and the statutory festivals by rule, no 调休) and marked provisional.
"""

from __future__ import annotations

import bisect
import datetime as dt
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import holidays
import numpy as np
import numpy.typing as npt
from holidays.countries.china import ChinaStaticHolidays

from kefu.models.policy import Duration, Policy, Unit, current_policy

if TYPE_CHECKING:
    import pandas as pd

NS_PER_SECOND = 1_000_000_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_WEEKDAYS_ZH = "一二三四五六日"

# The last year whose 调休 arrangement the holidays package carries from the State Council notice.
OFFICIALLY_CONFIRMED_THROUGH = max(ChinaStaticHolidays.special_public_holidays)


def to_ns(moment: dt.datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime (exact to the microsecond)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: give a time zone")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * NS_PER_SECOND + delta.microseconds * 1_000


def weekday_zh(day: dt.date) -> str:
    return f"星期{_WEEKDAYS_ZH[day.weekday()]}"


@dataclass(frozen=True)
class DayNote:
    """Why a day is or is not a working day, in the policy's words."""

    day: dt.date
    working: bool
    reason: str


@dataclass(frozen=True)
class Deadline:
    """A computed deadline with everything needed to explain it to staff."""

    start: dt.datetime
    duration: Duration
    due_at: dt.datetime
    provisional: bool
    holidays_skipped: tuple[DayNote, ...] = field(default=())
    makeup_days_counted: tuple[DayNote, ...] = field(default=())
    unconfirmed_years: tuple[int, ...] = field(default=())


@dataclass
class _Tables:
    """Precomputed working days and business windows for a range of years (local calendar)."""

    first_year: int
    last_year: int
    workday_ordinals: list[int]  # date.toordinal() of every working day, ascending
    window_start: npt.NDArray[np.int64]  # ns, every business window of every working day
    window_end: npt.NDArray[np.int64]
    cum_start: npt.NDArray[np.int64]  # working ns before each window
    cum_end: npt.NDArray[np.int64]  # working ns up to the end of each window
    workday_array: npt.NDArray[np.int64] = field(init=False)
    last_window_end_ns: npt.NDArray[np.int64] = field(init=False)  # per working day: end of its last window
    starts_list: list[int] = field(init=False)
    ends_list: list[int] = field(init=False)
    cum_start_list: list[int] = field(init=False)
    cum_end_list: list[int] = field(init=False)
    windows_per_day: int = 0

    def __post_init__(self) -> None:
        self.workday_array = np.asarray(self.workday_ordinals, dtype=np.int64)
        self.starts_list = self.window_start.tolist()
        self.ends_list = self.window_end.tolist()
        self.cum_start_list = self.cum_start.tolist()
        self.cum_end_list = self.cum_end.tolist()


class WorkCalendar:
    """Working days, business windows and deadlines under one policy."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.tz = ZoneInfo(policy.timezone)
        self.windows = list(policy.business_windows)
        self._extra_holidays = {d.date: d.name for d in policy.calendar.extra_holidays}
        self._extra_workdays = {d.date: d.name for d in policy.calendar.extra_workdays}
        self._confirmed_by_policy = set(policy.calendar.confirmed_years)
        self._official = holidays.country_holidays("CN", language="zh_CN")
        self._lock = threading.Lock()
        self._tables: _Tables | None = None

    # ---- days -------------------------------------------------------------------------------

    def is_confirmed_year(self, year: int) -> bool:
        """Whether the year's holidays and make-up days are officially published (or entered by hand)."""
        return year <= OFFICIALLY_CONFIRMED_THROUGH or year in self._confirmed_by_policy

    def day_note(self, day: dt.date) -> DayNote:
        if day in self._extra_workdays:
            return DayNote(day, True, f"公司安排工作日：{self._extra_workdays[day]}")
        if day in self._extra_holidays:
            return DayNote(day, False, f"公司安排休息日：{self._extra_holidays[day]}")
        name = self._official.get(day)
        if name:
            return DayNote(day, False, str(name))
        if day in self._official.weekend_workdays:
            return DayNote(day, True, f"调休上班（{weekday_zh(day)}）")
        if day.weekday() >= 5:
            return DayNote(day, False, f"周末（{weekday_zh(day)}）")
        return DayNote(day, True, "工作日")

    def is_working_day(self, day: dt.date) -> bool:
        return self.day_note(day).working

    def working_days_between(self, first: dt.date, last: dt.date) -> list[dt.date]:
        days = (first + dt.timedelta(n) for n in range((last - first).days + 1))
        return [d for d in days if self.is_working_day(d)]

    def working_time_between(self, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
        """How much of [start, end) lies inside the business windows of working days (e.g. a paused interval)."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end must be timezone-aware")
        start, end = start.astimezone(self.tz), end.astimezone(self.tz)
        total = dt.timedelta()
        day = start.date()
        while day <= end.date():
            if self.is_working_day(day):
                for window in self.windows:
                    lo = max(start, dt.datetime.combine(day, window.start, self.tz))
                    hi = min(end, dt.datetime.combine(day, window.end, self.tz))
                    if hi > lo:
                        total += hi - lo
            day += dt.timedelta(days=1)
        return total

    # ---- tables -----------------------------------------------------------------------------

    def _build(self, first_year: int, last_year: int) -> _Tables:
        for year in range(first_year, last_year + 1):
            self._official.get(dt.date(year, 1, 1))  # populate the year
        workdays: list[int] = []
        starts: list[int] = []
        ends: list[int] = []
        day = dt.date(first_year, 1, 1)
        stop = dt.date(last_year, 12, 31)
        while day <= stop:
            if self.is_working_day(day):
                workdays.append(day.toordinal())
                for window in self.windows:
                    starts.append(to_ns(dt.datetime.combine(day, window.start, self.tz)))
                    ends.append(to_ns(dt.datetime.combine(day, window.end, self.tz)))
            day += dt.timedelta(days=1)
        start_arr = np.asarray(starts, dtype=np.int64)
        end_arr = np.asarray(ends, dtype=np.int64)
        cum_end = np.cumsum(end_arr - start_arr, dtype=np.int64)
        cum_start = cum_end - (end_arr - start_arr)
        tables = _Tables(first_year, last_year, workdays, start_arr, end_arr, cum_start, cum_end)
        tables.windows_per_day = len(self.windows)
        tables.last_window_end_ns = end_arr[len(self.windows) - 1 :: len(self.windows)].copy()
        return tables

    def _tables_for(self, first_year: int, last_year: int) -> _Tables:
        tables = self._tables
        if tables is not None and tables.first_year <= first_year and last_year <= tables.last_year:
            return tables
        with self._lock:
            tables = self._tables
            if tables is not None:
                first_year = min(first_year, tables.first_year)
                last_year = max(last_year, tables.last_year)
            # Generous margins: a deadline of a few weeks never needs a second build.
            tables = self._build(first_year - 1, last_year + 2)
            self._tables = tables
            return tables

    # ---- scalar path ------------------------------------------------------------------------

    def deadline(self, start: dt.datetime, duration: Duration) -> Deadline:
        """When something started at ``start`` with ``duration`` to do it is due (explained)."""
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        local_start = start.astimezone(self.tz)
        due_at = self.due_at(local_start, duration)
        if duration.unit in (Unit.HOURS, Unit.MINUTES):
            return Deadline(local_start, duration, due_at, provisional=False)
        years = range(local_start.year, due_at.year + 1)
        unconfirmed = tuple(y for y in years if not self.is_confirmed_year(y))
        skipped, makeup = self._notable_days(local_start.date(), due_at.date())
        return Deadline(local_start, duration, due_at, bool(unconfirmed), skipped, makeup, unconfirmed)

    def due_at(self, start: dt.datetime, duration: Duration) -> dt.datetime:
        """The due time alone (local time), without the explanation ``deadline`` builds."""
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        local_start = start.astimezone(self.tz)
        due_ns = self._due_ns(to_ns(local_start), local_start.date(), duration)
        return (_EPOCH + dt.timedelta(microseconds=due_ns // 1_000)).astimezone(self.tz)

    def _due_ns(self, start_ns: int, start_day: dt.date, duration: Duration) -> int:
        if duration.unit is Unit.HOURS:
            return start_ns + round(duration.amount * 3600 * NS_PER_SECOND)
        if duration.unit is Unit.MINUTES:
            return start_ns + round(duration.amount * 60 * NS_PER_SECOND)
        if duration.unit is Unit.WORKING_DAYS:
            n = int(duration.amount)
            tables = self._tables_for(start_day.year, start_day.year)
            while True:
                index = bisect.bisect_right(tables.workday_ordinals, start_day.toordinal()) + n - 1
                if index < len(tables.workday_ordinals):
                    return int(tables.last_window_end_ns[index])
                tables = self._tables_for(start_day.year, tables.last_year + 1)
        # working hours
        amount_ns = round(duration.amount * 3600 * NS_PER_SECOND)
        start_year = start_day.year
        tables = self._tables_for(start_year, start_year)
        while True:
            i = bisect.bisect_right(tables.starts_list, start_ns) - 1
            if i >= 0 and start_ns < tables.ends_list[i]:
                position = tables.cum_start_list[i] + (start_ns - tables.starts_list[i])
            else:
                position = tables.cum_end_list[i] if i >= 0 else 0
            target = position + amount_ns
            k = bisect.bisect_left(tables.cum_end_list, target)
            if k < len(tables.cum_end_list):
                return tables.starts_list[k] + (target - tables.cum_start_list[k])
            tables = self._tables_for(start_year, tables.last_year + 1)

    def _notable_days(self, first: dt.date, last: dt.date) -> tuple[tuple[DayNote, ...], tuple[DayNote, ...]]:
        """Holidays on weekdays skipped, and weekend make-up days counted, after ``first`` up to ``last``."""
        skipped: list[DayNote] = []
        makeup: list[DayNote] = []
        day = first
        while day < last:
            day += dt.timedelta(days=1)
            note = self.day_note(day)
            if not note.working and day.weekday() < 5:
                skipped.append(note)
            elif note.working and day.weekday() >= 5:
                makeup.append(note)
        return tuple(skipped), tuple(makeup)

    # ---- vectorised path --------------------------------------------------------------------

    def deadlines_ns(self, starts_ns: npt.NDArray[np.int64], duration: Duration) -> npt.NDArray[np.int64]:
        """Deadlines for many starts at once (ns since the epoch in, ns since the epoch out)."""
        starts_ns = np.asarray(starts_ns, dtype=np.int64)
        if starts_ns.size == 0:
            return starts_ns.copy()
        if duration.unit is Unit.HOURS:
            return starts_ns + np.int64(round(duration.amount * 3600 * NS_PER_SECOND))
        if duration.unit is Unit.MINUTES:
            return starts_ns + np.int64(round(duration.amount * 60 * NS_PER_SECOND))
        first_year, last_year = self._years_of(starts_ns)
        tables = self._tables_for(first_year, last_year)
        while True:
            result = self._vector_pass(tables, starts_ns, duration)
            if result is not None:
                return result
            tables = self._tables_for(first_year, tables.last_year + 1)

    def working_ns_between(
        self, starts_ns: npt.NDArray[np.int64], ends_ns: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int64]:
        """Working time (ns inside the business windows of working days) from each start to its end, at once for
        many pairs: the working time elapsed since the first window of the tables at the end, less that at the
        start (a pair ending before it starts counts 0)."""
        starts_ns = np.asarray(starts_ns, dtype=np.int64)
        ends_ns = np.asarray(ends_ns, dtype=np.int64)
        if starts_ns.size == 0:
            return starts_ns.copy()
        both = np.concatenate([starts_ns, ends_ns])
        tables = self._tables_for(*self._years_of(both))
        elapsed = self._working_elapsed(tables, ends_ns) - self._working_elapsed(tables, starts_ns)
        result: npt.NDArray[np.int64] = np.maximum(elapsed, 0)
        return result

    @staticmethod
    def _working_elapsed(tables: _Tables, moments: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Working ns from the start of the tables up to each moment."""
        index = np.searchsorted(tables.window_start, moments, side="right") - 1
        inside = index >= 0
        safe = np.where(inside, index, 0)
        length = tables.window_end[safe] - tables.window_start[safe]
        into = np.clip(moments - tables.window_start[safe], 0, length)
        return np.where(inside, tables.cum_start[safe] + into, 0)

    def _years_of(self, starts_ns: npt.NDArray[np.int64]) -> tuple[int, int]:
        lo = (_EPOCH + dt.timedelta(microseconds=int(starts_ns.min()) // 1_000)).astimezone(self.tz)
        hi = (_EPOCH + dt.timedelta(microseconds=int(starts_ns.max()) // 1_000)).astimezone(self.tz)
        return lo.year, hi.year

    def _local_ordinals(self, starts_ns: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        # Local calendar day of each start. Asia/Shanghai has had no DST since 1991; use the offset
        # of each instant all the same so another policy time zone stays right.
        offsets = self._utc_offsets_ns(starts_ns)
        local_days = (starts_ns + offsets) // (86_400 * NS_PER_SECOND)
        return local_days + dt.date(1970, 1, 1).toordinal()

    def _utc_offsets_ns(self, starts_ns: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        lo, hi = int(starts_ns.min()), int(starts_ns.max())
        off_lo = self._offset_ns(lo)
        if off_lo == self._offset_ns(hi) and self._fixed_offset_between(lo, hi, off_lo):
            return np.full(starts_ns.shape, off_lo, dtype=np.int64)
        return np.fromiter((self._offset_ns(int(s)) for s in starts_ns), dtype=np.int64, count=starts_ns.size)

    def _offset_ns(self, ns: int) -> int:
        moment = (_EPOCH + dt.timedelta(microseconds=ns // 1_000)).astimezone(self.tz)
        offset = moment.utcoffset() or dt.timedelta(0)
        return int(offset.total_seconds()) * NS_PER_SECOND

    def _fixed_offset_between(self, lo: int, hi: int, offset: int) -> bool:
        step = 30 * 86_400 * NS_PER_SECOND
        return all(self._offset_ns(ns) == offset for ns in range(lo, hi, step))

    def _vector_pass(
        self, tables: _Tables, starts_ns: npt.NDArray[np.int64], duration: Duration
    ) -> npt.NDArray[np.int64] | None:
        if duration.unit is Unit.WORKING_DAYS:
            days = self._local_ordinals(starts_ns)
            index = np.searchsorted(tables.workday_array, days, side="right") + int(duration.amount) - 1
            if index.max() >= tables.workday_array.size:
                return None
            return tables.last_window_end_ns[index]
        amount_ns = np.int64(round(duration.amount * 3600 * NS_PER_SECOND))
        i = np.searchsorted(tables.window_start, starts_ns, side="right") - 1
        safe_i = np.clip(i, 0, None)
        inside = (i >= 0) & (starts_ns < tables.window_end[safe_i])
        position = np.where(
            inside,
            tables.cum_start[safe_i] + (starts_ns - tables.window_start[safe_i]),
            np.where(i >= 0, tables.cum_end[safe_i], 0),
        )
        target = position + amount_ns
        k = np.searchsorted(tables.cum_end, target, side="left")
        if k.max() >= tables.cum_end.size:
            return None
        return tables.window_start[k] + (target - tables.cum_start[k])

    def deadlines(self, starts: Iterable[dt.datetime], duration: Duration) -> list[dt.datetime]:
        """Convenience wrapper of the vectorised path for aware datetimes (local times out)."""
        ns = np.fromiter((to_ns(s) for s in starts), dtype=np.int64)
        return [
            (_EPOCH + dt.timedelta(microseconds=int(v) // 1_000)).astimezone(self.tz)
            for v in self.deadlines_ns(ns, duration)
        ]

    def deadlines_series(self, starts: pd.Series, duration: Duration) -> pd.Series:
        """The vectorised path for reports: a pandas Series of aware timestamps in, local deadlines out."""
        import pandas as pd

        if not isinstance(starts.dtype, pd.DatetimeTZDtype):
            raise ValueError("starts must be timezone-aware timestamps")
        ns = starts.dt.tz_convert("UTC").dt.as_unit("ns").astype("int64").to_numpy()
        due = self.deadlines_ns(ns, duration)
        return pd.Series(pd.to_datetime(due, utc=True, unit="ns"), index=starts.index, name=starts.name).dt.tz_convert(
            self.tz
        )

    def next_business_moment(self, moment: dt.datetime) -> dt.datetime:
        """The first instant at or after ``moment`` inside a business window of a working day."""
        local = moment.astimezone(self.tz)
        day = local.date()
        for _ in range(400):
            if self.is_working_day(day):
                for window in self.windows:
                    start = dt.datetime.combine(day, window.start, self.tz)
                    end = dt.datetime.combine(day, window.end, self.tz)
                    if local < end:
                        return max(local, start)
            day += dt.timedelta(days=1)
        raise ValueError(f"no working day within 400 days after {moment.isoformat()}")


_CALENDARS: dict[int, tuple[Policy, WorkCalendar]] = {}  # id(policy) -> (that policy, its calendar)
_CALENDARS_LOCK = threading.Lock()
_CALENDARS_KEPT = 4


def calendar_for(policy: Policy) -> WorkCalendar:
    """The working calendar of this policy object, built once (its tables are the expensive part).

    Keyed on the policy object itself: ``current_policy()`` gives a new object when the policy file changes,
    so a changed file gets a new calendar and nothing keeps using one built from the old file.
    """
    entry = _CALENDARS.get(id(policy))
    if entry is not None and entry[0] is policy:
        return entry[1]
    with _CALENDARS_LOCK:
        entry = _CALENDARS.get(id(policy))
        if entry is not None and entry[0] is policy:
            return entry[1]
        while len(_CALENDARS) >= _CALENDARS_KEPT:
            del _CALENDARS[next(iter(_CALENDARS))]  # the oldest
        calendar = WorkCalendar(policy)
        _CALENDARS[id(policy)] = (policy, calendar)
        return calendar


def current_calendar() -> WorkCalendar:
    """The working calendar of the policy file in force now (see ``current_policy``)."""
    return calendar_for(current_policy())
