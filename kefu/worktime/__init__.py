"""Working time: Chinese working days, business windows and the complaint deadlines of the policy."""

from kefu.worktime.calendar import DayNote, Deadline, WorkCalendar, calendar_for, current_calendar
from kefu.worktime.milestones import MilestonePlan, PlannedMilestone, explain, plan_complaint_milestones

__all__ = [
    "DayNote",
    "Deadline",
    "MilestonePlan",
    "PlannedMilestone",
    "WorkCalendar",
    "calendar_for",
    "current_calendar",
    "explain",
    "plan_complaint_milestones",
]
