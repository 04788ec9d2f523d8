"""Working time: Chinese working days, business windows, the complaint deadlines of the policy and the
commitments to the customer computed from them."""

from kefu.worktime.calendar import DayNote, Deadline, WorkCalendar, calendar_for, current_calendar
from kefu.worktime.commitments import Commitment, first_commitment, next_open_commitment
from kefu.worktime.display import customer_date, customer_time, local_moment, local_time, local_times_in, yes_no
from kefu.worktime.milestones import MilestonePlan, PlannedMilestone, explain, plan_complaint_milestones

__all__ = [
    "Commitment",
    "DayNote",
    "Deadline",
    "MilestonePlan",
    "PlannedMilestone",
    "WorkCalendar",
    "calendar_for",
    "current_calendar",
    "customer_date",
    "customer_time",
    "explain",
    "first_commitment",
    "local_moment",
    "local_time",
    "local_times_in",
    "next_open_commitment",
    "plan_complaint_milestones",
    "yes_no",
]
