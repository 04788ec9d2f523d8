"""A supervisor's start page lists their team's waiting steps beside their own: the steps of cases owned by anyone
whose supervisor chain includes them, marked as the team's with the owner's name."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from kefu.desk.steps import my_waiting_steps
from kefu.models import Complaint, Role, Staff
from kefu.tasks.casework import record_event
from tests.support.desk import add_person
from tests.support.factories import MakeComplaint

NOW = dt.datetime(2026, 11, 2, 3, 0, tzinfo=dt.UTC)


def waiting(db: Session, complaint: Complaint, owner: int, step: str) -> None:
    complaint.owner_id = owner
    record_event(db, complaint, "waiting", step, "system", complaint.received_at, step=step, flow_run_id="run-1")
    db.commit()


def test_a_supervisor_sees_the_waiting_steps_of_cases_their_team_owns_marked_as_the_teams(
    db: Session, engine: Engine, make_complaint: MakeComplaint
) -> None:
    boss = add_person(engine, "wang.zhuguan", Role.FINANCE)  # roles that answer none of these steps
    lead = add_person(engine, "li.zuzhang", Role.AGENT)
    member = add_person(engine, "zhang.kefu", Role.AGENT)
    outsider = add_person(engine, "chen.kefu", Role.AGENT)
    db.get_one(Staff, lead).supervisor_id = boss
    db.get_one(Staff, member).supervisor_id = lead
    db.commit()
    ours, theirs = make_complaint(), make_complaint()
    waiting(db, ours, member, "classify")
    waiting(db, theirs, outsider, "classify")

    seen = {s.case_no: s.team for s in my_waiting_steps(engine, boss, NOW)}
    assert seen == {ours.case_no: "员工zhang.kefu"}  # two levels down, though finance may not classify
    by_lead = {s.case_no: s.team for s in my_waiting_steps(engine, lead, NOW)}
    assert by_lead == {ours.case_no: "员工zhang.kefu", theirs.case_no: ""}  # the agent's own list, unmarked
    by_member = {s.case_no: s.team for s in my_waiting_steps(engine, member, NOW)}
    assert by_member == {ours.case_no: "", theirs.case_no: ""}  # their own case is not their team's
