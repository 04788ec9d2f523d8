"""The mails a case sends: acknowledgement, warnings and escalations to the right person, progress updates for
major cases — each exactly once, in the policy's own terms, with the customer's phone masked for staff."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu.models.complaints import CaseEvent, Complaint
from kefu.models.enums import Channel, ComplaintStatus, CustomerTier, Role, Severity
from kefu.models.notifications import OutboxMessage
from kefu.models.people import Customer, Staff
from kefu.models.policy import Policy
from kefu.tasks.casework import classify_case, register_case
from kefu.tasks.escalation import sweep
from kefu.worktime import WorkCalendar
from tests.support.clock import SHANGHAI


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI)


@pytest.fixture
def staff(db: Session) -> dict[str, Staff]:
    senior = Staff(name="高经理", email="senior@kefu.example")
    senior.grant(Role.SENIOR_MANAGER)
    supervisor = Staff(name="王主管", email="supervisor@kefu.example")
    supervisor.grant(Role.SUPERVISOR)
    db.add_all([senior, supervisor])
    db.flush()
    agent = Staff(name="李客服", email="agent@kefu.example", supervisor_id=supervisor.id)
    agent.grant(Role.AGENT)
    nomail = Staff(name="赵客服", supervisor_id=supervisor.id)
    nomail.grant(Role.AGENT)
    db.add_all([agent, nomail])
    db.commit()
    return {"owner": agent, "supervisor": supervisor, "senior_manager": senior, "no_mail": nomail}


def new_complaint(
    db: Session,
    case_no: str,
    content: str = "快递晚到两天",
    *,
    email: bool = True,
    name: str = "陈先生",
    phones: tuple[str, ...] = ("13812345678",),
) -> Complaint:
    complaint = Complaint(
        case_no=case_no,
        channel=Channel.HOTLINE,
        received_at=at(2, 10),
        severity=Severity.GENERAL,
        status=ComplaintStatus.REGISTERED,
        customer=Customer(
            name=name,
            tier=CustomerTier.GENERAL,
            phones=list(phones),
            email="chen@example.com" if email else None,
        ),
        order_amount=Decimal("100"),
        content=content,
    )
    db.add(complaint)
    db.commit()
    return complaint


def mails(db: Session, complaint: Complaint) -> list[OutboxMessage]:
    query = select(OutboxMessage).where(OutboxMessage.complaint_id == complaint.id).order_by(OutboxMessage.id)
    return list(db.scalars(query).all())


def test_registration_acknowledges_the_customer_once_with_case_number_and_first_contact_time(
    db: Session, policy: Policy, calendar: WorkCalendar, staff: dict[str, Staff]
) -> None:
    complaint = new_complaint(db, "KF-MAIL-0001")
    for _ in range(2):  # a resumed run registers again
        register_case(db, complaint.case_no, policy, calendar, owner_id=staff["owner"].id, now=at(2, 10))
        db.commit()
    [ack] = mails(db, complaint)
    assert ack.recipient == "chen@example.com" and ack.message_type == "complaint_acknowledgement"
    assert "KF-MAIL-0001" in ack.body_text and "李客服" in ack.body_text
    assert "2026年11月3日 10:00" in ack.body_text  # first contact: 24 hours after receipt


def test_a_major_complaints_acknowledgement_promises_the_policys_customer_step_not_the_internal_one(
    db: Session, policy: Policy, calendar: WorkCalendar, staff: dict[str, Staff]
) -> None:
    complaint = new_complaint(db, "KF-MAIL-0009", "快递员搬运时砸伤了我的脚")
    complaint.severity = Severity.MAJOR
    db.commit()
    register_case(db, complaint.case_no, policy, calendar, owner_id=staff["owner"].id, now=at(2, 10))
    db.commit()
    [ack] = mails(db, complaint)
    # the task force (internal) is due at 11:00; what the customer is promised is contact within 6 hours
    assert "我们将在2026年11月2日 16:00（北京时间）之前与您联系" in ack.body_text
    assert "11:00" not in ack.body_text and "专项处理小组" not in ack.body_text
    assert ack.body_text.startswith("尊敬的陈先生：") and "此致\n敬礼！" in ack.body_text


def test_breach_mails_the_supervisor_then_the_senior_manager_once_each_with_the_phone_masked(
    db: Session, policy: Policy, calendar: WorkCalendar, staff: dict[str, Staff]
) -> None:
    complaint = new_complaint(db, "KF-MAIL-0002")
    register_case(db, complaint.case_no, policy, calendar, owner_id=staff["owner"].id, now=at(2, 10))
    db.commit()
    for moment in (at(3, 5, 13), at(3, 5, 30), at(3, 10, 0), at(3, 10, 5), at(3, 17, 0), at(3, 17, 1)):
        sweep(db, policy, calendar, moment)
        db.commit()
    sent = [(m.message_type, m.recipient) for m in mails(db, complaint)]
    assert sent == [
        ("complaint_acknowledgement", "chen@example.com"),
        ("pre_breach_warning", "agent@kefu.example"),
        ("supervisor_escalation", "supervisor@kefu.example"),
        ("supervisor_escalation", "senior@kefu.example"),
    ]
    escalation = mails(db, complaint)[2]
    assert "与客户取得联系" in escalation.body_text  # the policy's own name of the milestone
    assert "13812345678" not in escalation.body_text and "13812345678" not in (escalation.body_html or "")
    assert escalation.not_before == at(3, 10, 0)  # internal and urgent: at once, not at the next window


def test_a_person_without_an_address_is_recorded_not_mailed(
    db: Session, policy: Policy, calendar: WorkCalendar, staff: dict[str, Staff]
) -> None:
    complaint = new_complaint(db, "KF-MAIL-0003", email=False, phones=("010-12345678",))  # a landline: no SMS
    register_case(db, complaint.case_no, policy, calendar, owner_id=staff["no_mail"].id, now=at(2, 10))
    sweep(db, policy, calendar, at(3, 5, 13))
    db.commit()
    assert mails(db, complaint) == []
    events = db.scalars(select(CaseEvent).where(CaseEvent.complaint_id == complaint.id)).all()
    outcome = {(e.action, e.data.get("mail")) for e in events if "mail" in e.data}
    assert outcome == {("acknowledged", "no_address"), ("notified", "no_address")}


def test_a_mail_the_phrase_lint_rejects_is_recorded_on_the_case_with_the_findings_and_the_case_goes_on(
    db: Session, policy: Policy, calendar: WorkCalendar, staff: dict[str, Staff]
) -> None:
    # The agent typed what the caller said instead of a name; the greeting would read 尊敬的我不知道.
    complaint = new_complaint(db, "KF-MAIL-0005", name="我不知道")
    for _ in range(2):  # a resumed run registers again
        register_case(db, complaint.case_no, policy, calendar, owner_id=staff["owner"].id, now=at(2, 10))
        db.commit()
    sweep(db, policy, calendar, at(3, 5, 13))
    db.commit()
    assert [m.message_type for m in mails(db, complaint)] == ["pre_breach_warning"]  # the case went on
    events = db.scalars(select(CaseEvent).where(CaseEvent.complaint_id == complaint.id)).all()
    [rejected] = [e for e in events if e.action == "message_rejected"]
    assert rejected.data["message_type"] == "complaint_acknowledgement"
    assert rejected.data["reasons"] == ["推诿、搪塞客户：我不知道"]
    assert [e.data["mail"] for e in events if e.action == "acknowledged"] == ["rejected"]


def test_an_open_major_case_reminds_its_owner_of_the_progress_contact_every_two_working_days(
    db: Session, policy: Policy, calendar: WorkCalendar, staff: dict[str, Staff]
) -> None:
    complaint = new_complaint(db, "KF-MAIL-0004", "搬运时受伤")
    register_case(db, complaint.case_no, policy, calendar, owner_id=staff["owner"].id, now=at(2, 10))
    classify_case(
        db, complaint.case_no, policy, calendar, severity=None, actor="staff:1", reason=None, now=at(2, 10, 5)
    )
    db.commit()
    assert complaint.severity is Severity.MAJOR
    # Received Monday 11-02 10:00, no contact since: 2 working days → end of Wednesday 11-04; 4 → end of Friday 11-06.
    for moment in (at(4, 17), at(4, 18), at(4, 19), at(5, 12), at(6, 18), at(6, 19)):
        sweep(db, policy, calendar, moment)
        db.commit()
    reminders = [m for m in mails(db, complaint) if m.message_type == "progress_contact_due"]
    assert [m.recipient for m in reminders] == ["agent@kefu.example", "agent@kefu.example"]
    assert (
        "2026年11月4日 18:00" in reminders[0].body_text and "kefu case contact KF-MAIL-0004" in reminders[0].body_text
    )
    assert not [m for m in mails(db, complaint) if m.message_type == "progress_update"]  # the owner writes it


def test_an_important_cases_warnings_name_the_first_contact_it_keeps_from_the_general_rule_in_the_policys_words(
    db: Session, policy: Policy, calendar: WorkCalendar, staff: dict[str, Staff]
) -> None:
    complaint = new_complaint(db, "KF-MAIL-0010")
    complaint.severity = Severity.IMPORTANT
    db.commit()
    register_case(db, complaint.case_no, policy, calendar, owner_id=staff["owner"].id, now=at(2, 10))
    db.commit()
    assert "first_contact" in {m.milestone.value for m in complaint.milestones}  # never later than a general case
    for day in (2, 3):
        for hour in range(11, 24):
            sweep(db, policy, calendar, at(day, hour))
            db.commit()
    staff_mails = [m for m in mails(db, complaint) if m.recipient != "chen@example.com"]
    assert any("与客户取得联系" in m.body_text for m in staff_mails)
    assert not any("first_contact" in m.body_text or "first_contact" in (m.subject or "") for m in staff_mails)
