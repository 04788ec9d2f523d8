"""Every customer message the templates exist for is sent at its stage, once, inside the send windows unless
urgent, and recorded on the case (the proposal with its answer link: tests/intake/test_answer_links.py); a case
that takes time reminds its owner of the progress contact with the customer."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu.models.complaints import CaseEvent, Complaint
from kefu.models.db import unit_of_work
from kefu.models.enums import Channel, ComplaintStatus, Role, Severity
from kefu.models.notifications import OutboxMessage
from kefu.models.people import Customer, Staff
from kefu.models.policy import Policy
from kefu.tasks.casework import close_case, plan_milestones, register_case
from kefu.tasks.customer_messages import (
    apologise_for_major,
    notify_closure,
    notify_resolution,
    record_progress_contact,
)
from kefu.tasks.escalation import sweep
from kefu.worktime import WorkCalendar
from tests.casework.test_case_mail import at, mails, new_complaint, staff
from tests.casework.test_cli_and_staff import kefu
from tests.support.clock import SHANGHAI

__all__ = ["staff"]  # the fixture


def test_a_major_case_apologises_at_once_then_tells_resolution_invites_the_callback_and_closes(
    db: Session, policy: Policy, calendar: WorkCalendar, staff: dict[str, Staff]
) -> None:
    complaint = new_complaint(db, "KF-MSG-0001", "快递员搬运时砸伤了我的脚")
    complaint.severity = Severity.MAJOR
    db.commit()
    night = at(2, 22)  # Monday 22:00, outside the business windows
    register_case(db, complaint.case_no, policy, calendar, owner_id=staff["owner"].id, now=night)
    for _ in range(2):  # a replayed step sends nothing twice
        apologise_for_major(db, complaint.case_no, staff["senior_manager"].id, night)
        db.commit()
    complaint.resolved_at = at(3, 10)
    plan_milestones(db, complaint, policy, calendar)  # the callback is due 3 working days after the resolution
    for _ in range(2):
        notify_resolution(db, complaint.case_no, 0, "已全额赔付并重新发货。", at(3, 10))
        db.commit()
    for moment in (at(6, 2), at(6, 3)):  # the callback's warning (80%): the customer is invited by mail too
        sweep(db, policy, calendar, moment)
        db.commit()
    close_case(db, complaint.case_no, at(6, 11))
    for _ in range(2):
        notify_closure(db, complaint.case_no, at(6, 11))
        db.commit()

    customer = [m for m in mails(db, complaint) if m.recipient == "chen@example.com"]
    assert [m.message_type for m in customer] == [
        "complaint_acknowledgement",
        "major_apology",
        "resolution_notice",
        "callback_invitation",
        "case_closure",
    ]
    ack, apology, resolution, invitation, closure = customer
    assert ack.not_before == at(3, 9)  # waits for the next business window
    assert apology.not_before == night  # a major case's apology goes at once (its first contact is due in hours)
    assert "深表歉意" in apology.body_text and "高经理" in apology.body_text
    assert "2026年11月3日 10:00（北京时间）之前向您提供初步处理方案" in apology.body_text  # 24 h after receipt
    assert "已全额赔付并重新发货。" in resolution.body_text and "2026年11月6日 18:00" in resolution.body_text
    assert invitation.not_before == at(6, 9) and "2026年11月6日 18:00" in invitation.body_text
    assert "办结" in closure.subject and closure.not_before == at(6, 11)
    [leader] = [m for m in mails(db, complaint) if m.message_type == "task_force_assignment"]
    assert leader.recipient == "senior@kefu.example" and "13812345678" not in leader.body_text

    events = db.scalars(
        select(CaseEvent).where(CaseEvent.complaint_id == complaint.id, CaseEvent.action == "customer_notified")
    ).all()
    assert [(e.data["key"], e.data["message"], e.data["mail"]) for e in events] == [
        ("apology", "major_apology", "queued"),
        ("resolution-0", "resolution_notice", "queued"),
        ("callback-0", "callback_invitation", "queued"),
        ("closure", "case_closure", "queued"),
    ]


def test_a_general_case_that_takes_time_reminds_its_owner_and_a_recorded_update_starts_the_interval_again(
    db: Session, policy: Policy, calendar: WorkCalendar, staff: dict[str, Staff]
) -> None:
    complaint = new_complaint(db, "KF-MSG-0002")
    register_case(db, complaint.case_no, policy, calendar, owner_id=staff["owner"].id, now=at(2, 10))
    db.commit()
    # Received Monday 11-02 10:00; the policy's interval for a general complaint: 3 working days → Thursday 18:00.
    for moment in (at(5, 17), at(5, 18), at(5, 18, 1)):
        sweep(db, policy, calendar, moment)
        db.commit()
    # The owner calls the customer on Friday and sends the update by mail: the next contact is due 3 working days on.
    record_progress_contact(
        db,
        complaint.case_no,
        staff["owner"].id,
        "已联系承运方核实，预计下周一给出赔偿方案。",
        at(6, 10),
        mail=True,
        policy=policy,
        calendar=calendar,
    )
    db.commit()
    for moment in (at(11, 17), at(11, 18)):
        sweep(db, policy, calendar, moment)
        db.commit()
    kinds = [(m.message_type, m.recipient) for m in mails(db, complaint) if "progress" in m.message_type]
    assert kinds == [
        ("progress_contact_due", "agent@kefu.example"),
        ("progress_update", "chen@example.com"),
        ("progress_contact_due", "agent@kefu.example"),
    ]
    update = next(m for m in mails(db, complaint) if m.message_type == "progress_update")
    assert "已联系承运方核实" in update.body_text and "2026年11月11日 18:00" in update.body_text
    due = db.scalars(
        select(CaseEvent).where(CaseEvent.complaint_id == complaint.id, CaseEvent.action == "progress_contact_due")
    ).all()
    assert [e.at for e in due] == [at(5, 18), at(11, 18)]


def test_kefu_case_contact_records_the_owners_contact_and_mails_the_update(case_db_url: str, tmp_path: Path) -> None:
    with unit_of_work() as session:
        agent = Staff(name="李客服", login="li.contact")
        agent.grant(Role.AGENT)
        reviewer = Staff(name="财务", login="cai.wu")
        reviewer.grant(Role.FINANCE)
        session.add_all([agent, reviewer])
        session.add(
            Complaint(
                case_no="KF-MSG-0003",
                channel=Channel.HOTLINE,
                received_at=dt.datetime.now(SHANGHAI),
                severity=Severity.GENERAL,
                status=ComplaintStatus.INVESTIGATING,
                customer=Customer(name="客户", email="kehu3@example.com"),
                content="快递晚到两天",
            )
        )
    api = "http://127.0.0.1:9/api"  # not needed: the contact is Kefu's own record
    said = "已联系承运方核实，预计下周一给出赔偿方案。"
    done = kefu(
        tmp_path, api, case_db_url, "case", "contact", "KF-MSG-0003", "--as", "li.contact", "--summary", said, "--mail"
    )
    assert done.returncode == 0, done.stderr
    assert "progress contact recorded, progress update queued (mail)" in done.stdout
    refused = kefu(tmp_path, api, case_db_url, "case", "contact", "KF-MSG-0003", "--as", "cai.wu", "--summary", said)
    assert refused.returncode == 2 and "may not" in refused.stderr and len(refused.stderr.splitlines()) == 1
    with unit_of_work() as session:
        complaint = session.scalars(select(Complaint).where(Complaint.case_no == "KF-MSG-0003")).one()
        events = session.scalars(
            select(CaseEvent).where(CaseEvent.complaint_id == complaint.id, CaseEvent.action == "progress_contact")
        ).all()
        assert [(e.actor, e.data["summary"], e.data["mail"]) for e in events] == [(f"staff:{agent.id}", said, "queued")]
        update = session.scalars(select(OutboxMessage).where(OutboxMessage.complaint_id == complaint.id)).one()
        assert update.message_type == "progress_update" and said in update.body_text
