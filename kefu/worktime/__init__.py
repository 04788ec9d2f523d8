"""Working time: Chinese working days, business windows and the complaint deadlines of the policy."""

from kefu.worktime.calendar import DayNote, Deadline, WorkCalendar
from kefu.worktime.milestones import MilestonePlan, PlannedMilestone, explain, plan_complaint_milestones

__all__ = [
    "DayNote",
    "Deadline",
    "MilestonePlan",
    "PlannedMilestone",
    "WorkCalendar",
    "explain",
    "plan_complaint_milestones",
]
