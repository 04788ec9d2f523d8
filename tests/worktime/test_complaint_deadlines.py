"""Every row of the complaint deadline table (DESIGN.md §1), and golden cases computed by hand across
Spring Festival, Labour Day and National Day 2026 and the 2026→2027 year boundary."""

from __future__ import annotations

import datetime as dt

import pytest

from kefu.models.policy import MilestoneId, Policy, Severity
from kefu.worktime import WorkCalendar, plan_complaint_milestones
from tests.support.clock import SHANGHAI

CST = SHANGHAI  # China Standard Time


def at(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=CST)  # type: ignore[misc]


# An ordinary week: received Tuesday 2026-03-10 10:00, no holiday within three weeks.
ORDINARY = at(2026, 3, 10, 10, 0)

POLICY_TABLE = [
    # severity, key account, milestone, unit, target, due
    ("general", False, "first_contact", "hours", 24, at(2026, 3, 11, 10, 0)),
    ("general", False, "solution", "hours", 48, at(2026, 3, 12, 10, 0)),
    ("important", False, "supervisor_report", "hours", 12, at(2026, 3, 10, 22, 0)),
    ("important", False, "first_contact", "hours", 24, at(2026, 3, 11, 10, 0)),  # a general complaint's: never later
    ("important", False, "progress_update", "hours", 48, at(2026, 3, 12, 10, 0)),
    ("important", False, "resolution", "working_days", 7, at(2026, 3, 19, 18, 0)),
    ("major", False, "task_force", "hours", 1, at(2026, 3, 10, 11, 0)),
    ("major", False, "first_contact", "hours", 6, at(2026, 3, 10, 16, 0)),
    ("major", False, "preliminary_plan", "hours", 24, at(2026, 3, 11, 10, 0)),
    ("major", False, "resolution", "working_days", 15, at(2026, 3, 31, 18, 0)),
    # key accounts: tighter targets where the policy file sets them, the rest unchanged
    ("general", True, "first_contact", "hours", 12, at(2026, 3, 10, 22, 0)),
    ("general", True, "solution", "hours", 24, at(2026, 3, 11, 10, 0)),
    ("important", True, "supervisor_report", "hours", 6, at(2026, 3, 10, 16, 0)),
    ("important", True, "first_contact", "hours", 12, at(2026, 3, 10, 22, 0)),  # a general key account's
    ("important", True, "progress_update", "hours", 24, at(2026, 3, 11, 10, 0)),
    ("important", True, "resolution", "working_days", 7, at(2026, 3, 19, 18, 0)),
    ("major", True, "task_force", "hours", 1, at(2026, 3, 10, 11, 0)),
    ("major", True, "first_contact", "hours", 4, at(2026, 3, 10, 14, 0)),
    ("major", True, "preliminary_plan", "hours", 12, at(2026, 3, 10, 22, 0)),
]


@pytest.mark.parametrize(("severity", "key_account", "milestone", "unit", "target", "due"), POLICY_TABLE)
def test_each_policy_row_sets_its_deadline(
    policy: Policy,
    calendar: WorkCalendar,
    severity: str,
    key_account: bool,
    milestone: str,
    unit: str,
    target: int,
    due: dt.datetime,
) -> None:
    plan = plan_complaint_milestones(policy, calendar, Severity(severity), ORDINARY, key_account=key_account)
    planned = plan.get(MilestoneId(milestone))
    assert planned is not None
    assert (planned.unit, planned.target, planned.due_at) == (unit, target, due)
    assert not planned.provisional


@pytest.mark.parametrize(
    ("severity", "ids"),
    [
        ("general", ["first_contact", "solution", "resolution"]),
        ("important", ["supervisor_report", "first_contact", "progress_update", "resolution"]),
        ("major", ["task_force", "first_contact", "preliminary_plan", "resolution"]),
    ],
)
def test_each_severity_has_exactly_the_policy_milestones(
    policy: Policy, calendar: WorkCalendar, severity: str, ids: list[str]
) -> None:
    plan = plan_complaint_milestones(policy, calendar, Severity(severity), ORDINARY)
    assert [m.id.value for m in plan.milestones] == ids


def test_general_resolution_is_the_time_promised_in_the_accepted_solution(
    policy: Policy, calendar: WorkCalendar
) -> None:
    unknown = plan_complaint_milestones(policy, calendar, Severity.GENERAL, ORDINARY).get(MilestoneId.RESOLUTION)
    assert unknown is not None and unknown.due_at is None and unknown.unit == "promised"
    promised = at(2026, 3, 16, 17, 0)
    plan = plan_complaint_milestones(policy, calendar, Severity.GENERAL, ORDINARY, promised_at=promised)
    resolution = plan.get(MilestoneId.RESOLUTION)
    assert resolution is not None and resolution.due_at == promised


def test_callback_is_planned_only_after_resolution(policy: Policy, calendar: WorkCalendar) -> None:
    assert plan_complaint_milestones(policy, calendar, Severity.MAJOR, ORDINARY).get(MilestoneId.CALLBACK) is None
    plan = plan_complaint_milestones(policy, calendar, Severity.MAJOR, ORDINARY, resolved_at=at(2026, 3, 13, 16, 0))
    callback = plan.get(MilestoneId.CALLBACK)
    assert callback is not None
    # resolved Friday 03-13: day 1 Mon 03-16, day 2 Tue 03-17, day 3 Wed 03-18, at the end of the day
    assert callback.due_at == at(2026, 3, 18, 18, 0)
    assert callback.starts_at == at(2026, 3, 13, 16, 0)


GOLDEN = [
    # Spring Festival 2026: off 02-15..02-23, make-up working Saturdays 02-14 and 02-28.
    # received Fri 02-13 → 02-14 (Sat, 调休)=1, 02-24=2, 25=3, 26=4, 27=5, 02-28 (Sat, 调休)=6, 03-02=7
    ("important", "resolution", at(2026, 2, 13, 10, 0), None, at(2026, 3, 2, 18, 0)),
    # ... and 15 working days: 03-03=8 … 03-12=15
    ("major", "resolution", at(2026, 2, 13, 10, 0), None, at(2026, 3, 12, 18, 0)),
    # received on the eve itself, a holiday: 02-24=1, 25=2, 26=3, 27=4, 02-28 (Sat, 调休)=5, 03-02=6, 03-03=7
    ("important", "resolution", at(2026, 2, 16, 9, 0), None, at(2026, 3, 3, 18, 0)),
    # resolved Thu 02-12 → callback: 02-13=1, 02-14 (Sat, 调休)=2, 02-24=3
    ("general", "callback", at(2026, 2, 10, 9, 0), at(2026, 2, 12, 16, 0), at(2026, 2, 24, 18, 0)),
    # Labour Day 2026: off 05-01..05-05, make-up Saturday 05-09.
    # resolved Thu 04-30 → 05-06=1, 05-07=2, 05-08=3
    ("general", "callback", at(2026, 4, 28, 9, 0), at(2026, 4, 30, 11, 0), at(2026, 5, 8, 18, 0)),
    # resolved Fri 05-08 → 05-09 (Sat, 调休)=1, 05-11=2, 05-12=3
    ("important", "callback", at(2026, 5, 6, 9, 0), at(2026, 5, 8, 17, 0), at(2026, 5, 12, 18, 0)),
    # received Wed 04-29 → 04-30=1, 05-06=2, 05-07=3, 05-08=4, 05-09 (Sat, 调休)=5, 05-11=6, 05-12=7
    ("important", "resolution", at(2026, 4, 29, 15, 0), None, at(2026, 5, 12, 18, 0)),
    # National Day 2026: off 10-01..10-07, make-up Sunday 09-20 and Saturday 10-10.
    # received Wed 09-30 → 10-08=1, 10-09=2, 10-10 (Sat, 调休)=3, 10-12=4, 13=5, 14=6, 15=7
    ("important", "resolution", at(2026, 9, 30, 16, 0), None, at(2026, 10, 15, 18, 0)),
    # received on a holiday morning 10-03 → the same count from 10-08
    ("important", "resolution", at(2026, 10, 3, 8, 0), None, at(2026, 10, 15, 18, 0)),
    # resolved Fri 09-18 → 09-20 (Sun, 调休)=1, 09-21=2, 09-22=3 (Saturday 09-19 is not counted)
    ("general", "callback", at(2026, 9, 15, 9, 0), at(2026, 9, 18, 17, 0), at(2026, 9, 22, 18, 0)),
    # resolved Fri 10-09 → 10-10 (Sat, 调休)=1, 10-12=2, 10-13=3
    ("general", "callback", at(2026, 10, 8, 9, 0), at(2026, 10, 9, 16, 30), at(2026, 10, 13, 18, 0)),
    # Clock hours ignore the calendar: 24 h from Thu 10-01 09:00 is Fri 10-02 09:00, holiday or not.
    ("major", "preliminary_plan", at(2026, 10, 1, 9, 0), None, at(2026, 10, 2, 9, 0)),
]


@pytest.mark.parametrize(("severity", "milestone", "received", "resolved", "due"), GOLDEN)
def test_golden_deadlines_across_the_2026_holidays(
    policy: Policy,
    calendar: WorkCalendar,
    severity: str,
    milestone: str,
    received: dt.datetime,
    resolved: dt.datetime | None,
    due: dt.datetime,
) -> None:
    plan = plan_complaint_milestones(policy, calendar, Severity(severity), received, resolved_at=resolved)
    planned = plan.get(MilestoneId(milestone))
    assert planned is not None
    assert planned.due_at == due
    assert planned.provisional is False
    assert plan.warnings == []


def test_explanation_names_the_holidays_skipped_and_the_make_up_days_counted(
    policy: Policy, calendar: WorkCalendar
) -> None:
    plan = plan_complaint_milestones(policy, calendar, Severity.IMPORTANT, at(2026, 9, 30, 16, 0))
    resolution = plan.get(MilestoneId.RESOLUTION)
    assert resolution is not None
    assert "国庆节" in resolution.explanation
    assert "2026-10-10 调休上班（星期六）" in resolution.explanation
    spring = plan_complaint_milestones(policy, calendar, Severity.IMPORTANT, at(2026, 2, 13, 10, 0))
    spring_resolution = spring.get(MilestoneId.RESOLUTION)
    assert spring_resolution is not None
    assert "春节" in spring_resolution.explanation
    assert "2026-02-14 调休上班（星期六）" in spring_resolution.explanation
    assert "2026-02-28 调休上班（星期六）" in spring_resolution.explanation


def test_a_deadline_in_an_unconfirmed_year_is_computed_and_marked_provisional(
    policy: Policy, calendar: WorkCalendar
) -> None:
    # resolved Wed 2026-12-30 → 12-31=1, 2027-01-01 New Year's Day, weekend, 01-04=2, 01-05=3
    plan = plan_complaint_milestones(
        policy, calendar, Severity.GENERAL, at(2026, 12, 28, 9, 0), resolved_at=at(2026, 12, 30, 10, 0)
    )
    callback = plan.get(MilestoneId.CALLBACK)
    assert callback is not None
    assert callback.due_at == at(2027, 1, 5, 18, 0)
    assert callback.provisional is True
    assert "暂定" in callback.explanation
    assert any("2027" in w and "callback" in w for w in plan.warnings)
    # the milestones that stay inside 2026 are not provisional
    first_contact = plan.get(MilestoneId.FIRST_CONTACT)
    assert first_contact is not None and first_contact.provisional is False


def test_a_year_far_beyond_the_calendar_still_gets_a_deadline(policy: Policy, calendar: WorkCalendar) -> None:
    plan = plan_complaint_milestones(policy, calendar, Severity.MAJOR, at(2031, 7, 1, 10, 0))
    resolution = plan.get(MilestoneId.RESOLUTION)
    assert resolution is not None and resolution.due_at is not None
    assert resolution.due_at > at(2031, 7, 1, 10, 0)
    assert resolution.provisional is True


def test_received_time_in_another_zone_is_read_as_the_same_instant(policy: Policy, calendar: WorkCalendar) -> None:
    utc = dt.datetime(2026, 3, 10, 2, 0, tzinfo=dt.UTC)  # = 10:00 in Shanghai
    a = plan_complaint_milestones(policy, calendar, Severity.IMPORTANT, utc)
    b = plan_complaint_milestones(policy, calendar, Severity.IMPORTANT, ORDINARY)
    assert [m.due_at for m in a.milestones] == [m.due_at for m in b.milestones]
    assert all(m.due_at is None or m.due_at.utcoffset() == dt.timedelta(hours=8) for m in a.milestones)
