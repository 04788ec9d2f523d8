"""Register, classify and the deadline sweeper, against a real database and an injected clock."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu.models.complaints import CaseEvent, Complaint
from kefu.models.enums import ComplaintStatus, MilestoneId, Severity
from kefu.models.people import Staff
from kefu.models.policy import Policy
from kefu.tasks.casework import StepRejected, classify_case, complete_step, register_case
from kefu.tasks.escalation import sweep
from kefu.worktime import WorkCalendar, plan_complaint_milestones
from tests.support.clock import SHANGHAI
from tests.support.factories import MakeComplaint


def events(db: Session, complaint: Complaint, action: str) -> list[CaseEvent]:
    return list(
        db.scalars(select(CaseEvent).where(CaseEvent.complaint_id == complaint.id, CaseEvent.action == action)).all()
    )


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI)


def test_registering_twice_gives_one_owner_one_set_of_milestones_and_one_urgent_notice(
    db: Session, policy: Policy, calendar: WorkCalendar, ladder: dict[str, Staff], make_complaint: MakeComplaint
) -> None:
    complaint = make_complaint(urgent=True)
    for other_owner in (ladder["owner"].id, ladder["supervisor"].id):
        register_case(db, complaint.case_no, policy, calendar, owner_id=other_owner, now=at(2, 10))
        db.commit()
    assert complaint.owner_id == ladder["owner"].id
    assert {m.milestone for m in complaint.milestones} == {
        MilestoneId.FIRST_CONTACT,
        MilestoneId.SOLUTION,
        MilestoneId.RESOLUTION,
    }
    notices = events(db, complaint, "notified")
    assert [(n.data["level"], n.data["recipient_staff_id"]) for n in notices] == [
        ("supervisor", ladder["supervisor"].id)
    ]
    assert len(events(db, complaint, "registered")) == 1


@pytest.mark.parametrize(
    ("content", "amount", "key", "expected"),
    [
        ("快递晚到两天", "100", False, Severity.GENERAL),
        ("包裹丢件了", "100", False, Severity.IMPORTANT),
        ("快递晚到两天", "8000", False, Severity.IMPORTANT),
        ("快递晚到两天", "100", True, Severity.IMPORTANT),
        ("搬运时受伤", "100", False, Severity.MAJOR),
        ("快递晚到两天", "60000", False, Severity.MAJOR),
    ],
)
def test_rules_propose_severity_from_keywords_amount_and_key_account(
    db: Session,
    policy: Policy,
    calendar: WorkCalendar,
    ladder: dict[str, Staff],
    make_complaint: MakeComplaint,
    content: str,
    amount: str,
    key: bool,
    expected: Severity,
) -> None:
    complaint = make_complaint(content, amount=amount, key=key)
    register_case(db, complaint.case_no, policy, calendar, owner_id=ladder["owner"].id, now=at(2, 10))
    classify_case(db, complaint.case_no, policy, calendar, severity=None, actor="staff:1", reason=None, now=at(2, 11))
    assert complaint.severity is expected
    planned = plan_complaint_milestones(policy, calendar, expected, complaint.received_at, key_account=key)
    assert {m.milestone for m in complaint.milestones} == {m.id for m in planned.milestones}


def test_an_override_needs_a_reason_is_audited_and_recomputes_milestones_from_receipt(
    db: Session, policy: Policy, calendar: WorkCalendar, ladder: dict[str, Staff], make_complaint: MakeComplaint
) -> None:
    complaint = make_complaint()
    register_case(db, complaint.case_no, policy, calendar, owner_id=ladder["owner"].id, now=at(2, 10))
    with pytest.raises(StepRejected):
        classify_case(
            db, complaint.case_no, policy, calendar, severity=Severity.MAJOR, actor="s", reason="", now=at(2, 11)
        )
    assert events(db, complaint, "classified") == []
    classify_case(
        db,
        complaint.case_no,
        policy,
        calendar,
        severity=Severity.MAJOR,
        actor="staff:7",
        reason="媒体关注",
        now=at(2, 11),
    )
    db.commit()
    (event,) = events(db, complaint, "classified")
    assert event.data["override"] is True and event.data["reason"] == "媒体关注" and event.actor == "staff:7"
    task_force = next(m for m in complaint.milestones if m.milestone is MilestoneId.TASK_FORCE)
    assert task_force.due_at == at(2, 11)  # 1 hour from receipt at 10:00, not from classification
    assert complaint.status is ComplaintStatus.CLASSIFIED


def test_warning_at_80_percent_breach_escalates_one_level_per_interval_and_nothing_fires_twice(
    db: Session, policy: Policy, calendar: WorkCalendar, ladder: dict[str, Staff], make_complaint: MakeComplaint
) -> None:
    complaint = make_complaint()
    register_case(db, complaint.case_no, policy, calendar, owner_id=ladder["owner"].id, now=at(2, 10))
    db.commit()
    # first_contact is due 24 h after receipt (11-03 10:00): 80 % is 11-03 05:12.
    assert sweep(db, policy, calendar, at(3, 5, 11)) == []
    assert sweep(db, policy, calendar, at(3, 5, 13)) == [f"{complaint.case_no}:first_contact:warning"]
    assert sweep(db, policy, calendar, at(3, 5, 14)) == []
    assert sweep(db, policy, calendar, at(3, 10, 0)) == [f"{complaint.case_no}:first_contact:escalated:supervisor"]
    assert sweep(db, policy, calendar, at(3, 10, 1)) == []
    # 4 working hours later (10-12, 15-17) the senior manager.
    assert sweep(db, policy, calendar, at(3, 17, 0)) == [f"{complaint.case_no}:first_contact:escalated:senior_manager"]
    # Then reminders to the top of the ladder while it stays late.
    fired = sweep(db, policy, calendar, at(4, 12, 0))
    assert [f for f in fired if "first_contact" in f] == [f"{complaint.case_no}:first_contact:reminder:senior_manager"]
    db.commit()
    notices = events(db, complaint, "notified")
    levels = [(n.data["level"], n.data["reason"]) for n in notices if n.data.get("milestone") == "first_contact"]
    assert levels == [
        ("owner", "warning"),
        ("supervisor", "escalated"),
        ("senior_manager", "escalated"),
        ("senior_manager", "reminder"),
    ]


def test_a_met_milestone_never_fires(
    db: Session, policy: Policy, calendar: WorkCalendar, ladder: dict[str, Staff], make_complaint: MakeComplaint
) -> None:
    complaint = make_complaint()
    register_case(db, complaint.case_no, policy, calendar, owner_id=ladder["owner"].id, now=at(2, 10))
    complete_step(
        db, complaint.case_no, "contacted", "contact-0", "staff:1", at(2, 12), meets=(MilestoneId.FIRST_CONTACT,)
    )
    db.commit()
    fired = sweep(db, policy, calendar, at(3, 12))
    assert not any("first_contact" in f for f in fired)
