"""Routine callbacks fall due at the policy's cadence on working days, never over the fatigue cap, and go to the
key account's specialist or the on-duty agents in turn; the monthly quality check's sample is random but
reproducible, and a flagged record goes back to its agent by mail with personal data masked."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from kefu.engine.steps import StepRefused
from kefu.models.accounts import KeyAccountMember, TeamRole
from kefu.models.complaints import CaseEvent, Complaint
from kefu.models.contacts import ContactKind, QualityReview
from kefu.models.enums import Channel, CustomerTier, Role, Severity
from kefu.models.notifications import OutboxMessage
from kefu.models.people import WEEKDAYS, CommunicationRecord, Customer, Staff
from kefu.models.policy import Policy
from kefu.models.surveys import CampaignKind, Segment, SurveyCampaign, SurveyInvitation
from kefu.notifications.sender import deliver_due
from kefu.tasks.callbacks import OVER_CAP, due_callbacks, open_callbacks
from kefu.tasks.quality import ReviewRefused, draw_sample, open_reviews, quality_scores, score_review
from kefu.tasks.surveys import OVER_CAP as ASKED_OVER_CAP
from kefu.tasks.surveys import times_asked
from kefu.worktime import WorkCalendar
from tests.support.clock import SHANGHAI
from tests.support.smtp import SMTPServer


def at(day: dt.date, hour: int = 10) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=SHANGHAI)


def agent(db: Session, name: str, *, email: str | None = None, supervisor: Staff | None = None) -> Staff:
    person = Staff(name=name, email=email, on_duty=list(WEEKDAYS), supervisor_id=supervisor.id if supervisor else None)
    person.grant(Role.AGENT)
    db.add(person)
    db.flush()
    return person


def called_back(db: Session, customer: Customer, when: dt.datetime, staff: Staff | None = None) -> None:
    db.add(
        CommunicationRecord(
            customer_id=customer.id,
            at=when,
            channel="phone",
            summary="定期回访",
            kind=ContactKind.ROUTINE_CALLBACK.value,
            responsible_staff_id=staff.id if staff else None,
        )
    )
    db.flush()


def due_codes(db: Session, policy: Policy, calendar: WorkCalendar, day: dt.date) -> list[str]:
    return [c.code or "" for c, _ in due_callbacks(db, policy, calendar, at(day)).due]


def test_a_general_customer_falls_due_a_quarter_after_the_last_callback_not_the_day_before(
    db: Session, policy: Policy, calendar: WorkCalendar
) -> None:
    customer = Customer(code="CB-Q1", name="华东建材", created_at=at(dt.date(2026, 1, 5)))
    db.add(customer)
    db.flush()
    called_back(db, customer, at(dt.date(2026, 9, 2), 15))
    assert due_codes(db, policy, calendar, dt.date(2026, 12, 1)) == []  # policy callbacks.every_months.general: 3
    assert due_codes(db, policy, calendar, dt.date(2026, 12, 2)) == ["CB-Q1"]


def test_a_callback_due_on_a_holiday_is_opened_on_the_next_working_day(
    db: Session, policy: Policy, calendar: WorkCalendar
) -> None:
    customer = Customer(code="CB-KEY", name="华星电子", tier=CustomerTier.KEY, created_at=at(dt.date(2026, 1, 5)))
    db.add(customer)
    db.flush()
    called_back(db, customer, at(dt.date(2026, 9, 1)))  # key accounts: monthly → due 10-01, National Day
    holiday = due_callbacks(db, policy, calendar, at(dt.date(2026, 10, 1)))
    assert not holiday.working_day and holiday.due == [] and "非工作日" in holiday.markdown()
    assert due_codes(db, policy, calendar, dt.date(2026, 10, 7)) == []  # still the holiday
    assert due_codes(db, policy, calendar, dt.date(2026, 10, 8)) == ["CB-KEY"]  # the first working day after


def test_a_customer_over_the_fatigue_cap_is_skipped_with_the_reason(
    db: Session, policy: Policy, calendar: WorkCalendar
) -> None:
    tired = Customer(code="CB-TIRED", name="王五", created_at=at(dt.date(2026, 1, 5)))
    fresh = Customer(code="CB-FRESH", name="赵六", created_at=at(dt.date(2026, 1, 5)))
    db.add_all([tired, fresh])
    db.flush()
    for day in (26, 27, 30):  # three contacts in the last seven days: the policy's cap (callbacks.fatigue)
        db.add(
            CommunicationRecord(customer_id=tired.id, at=at(dt.date(2026, 11, day)), channel="phone", summary="联系")
        )
    db.flush()
    report = due_callbacks(db, policy, calendar, at(dt.date(2026, 12, 2)))
    assert [c.code for c, _ in report.due] == ["CB-FRESH"]
    rules = policy.callbacks.fatigue
    assert report.skipped == [("CB-TIRED", OVER_CAP.format(days=rules.window_days, count=3, cap=rules.max_contacts))]


def test_surveys_and_routine_callbacks_keep_to_one_cap_on_asking_a_customer(
    db: Session, policy: Policy, calendar: WorkCalendar
) -> None:
    """Issue 16: no customer asked more than N times in M days across every kind of survey and callback."""
    surveyed = Customer(code="CB-SURVEYED", name="钱七", created_at=at(dt.date(2026, 1, 5)))
    called = Customer(code="CB-CALLED", name="孙八", created_at=at(dt.date(2026, 1, 5)))
    db.add_all([surveyed, called])
    db.flush()
    asks = policy.surveys.fatigue
    for n in range(asks.max_asks):  # invited up to the cap within its window, one campaign after another
        campaign = SurveyCampaign(
            kind=CampaignKind.AD_HOC, segment=Segment.ALL, reason="新产品上线", launched_by="test",
            opened_at=at(dt.date(2026, 11, 2 + n)), closes_at=at(dt.date(2026, 11, 16 + n)),
        )  # fmt: skip
        db.add(campaign)
        db.flush()
        invited = at(dt.date(2026, 11, 2 + n))
        db.add(
            SurveyInvitation(campaign_id=campaign.id, customer_id=surveyed.id, token_hash=f"t{n}", created_at=invited)
        )
    db.flush()
    report = due_callbacks(db, policy, calendar, at(dt.date(2026, 12, 2)))
    assert "CB-SURVEYED" not in [c.code for c, _ in report.due]
    why = ASKED_OVER_CAP.format(days=asks.window_days, count=asks.max_asks, cap=asks.max_asks)
    assert ("CB-SURVEYED", why) in report.skipped
    # a routine callback opened for a customer counts as asking them when the next survey invites
    open_callbacks(db, policy, report)
    assert times_asked(db, at(dt.date(2026, 11, 1))).get(called.id) == 1


def test_callbacks_go_to_the_key_accounts_specialist_else_the_on_duty_agents_in_turn_once_a_day(
    db: Session, policy: Policy, calendar: WorkCalendar
) -> None:
    first, second = agent(db, "甲"), agent(db, "乙")
    specialist = Staff(name="专员")
    db.add(specialist)
    customers = [
        Customer(code=f"CB-OWN{i}", name=f"客户{i}", email=f"c{i}@example.com", created_at=at(dt.date(2026, 1, 5)))
        for i in range(3)
    ]
    key = Customer(code="CB-OWNKEY", name="重点", tier=CustomerTier.KEY, created_at=at(dt.date(2026, 1, 5)))
    db.add_all([*customers, key])
    db.flush()
    db.add(KeyAccountMember(customer_id=key.id, staff_id=specialist.id, team_role=TeamRole.SERVICE_SPECIALIST))
    db.flush()
    report = due_callbacks(db, policy, calendar, at(dt.date(2026, 12, 2)))
    opened = open_callbacks(db, policy, report)
    owners = {db.get_one(Customer, c.customer_id).code: (c.owner_id, c.owned_by, c.channel) for c in opened}
    assert owners == {
        "CB-OWN0": (first.id, "rota", "mail"),  # general customers: mail (callbacks.channel.general)
        "CB-OWN1": (second.id, "rota", "mail"),
        "CB-OWN2": (first.id, "rota", "mail"),
        "CB-OWNKEY": (specialist.id, "key_account", "phone"),  # no e-mail needed for a phone callback
    }
    again = due_callbacks(db, policy, calendar, at(dt.date(2026, 12, 2)))
    assert again.due == [] and {why for _, why in again.skipped} == {"已有未完成的回访"}


def month_of_records(db: Session, person: Staff, customer: Customer, year: int, month: int, count: int) -> list[int]:
    ids = []
    for i in range(count):
        record = CommunicationRecord(
            customer_id=customer.id,
            at=dt.datetime(year, month, 1 + i, 11, tzinfo=SHANGHAI),
            channel="phone",
            summary=f"第{i}次联系",
            responsible_staff_id=person.id,
        )
        db.add(record)
        db.flush()
        ids.append(record.id)
    return ids


def test_the_quality_sample_is_random_but_the_same_for_the_same_month_and_seed(db: Session, policy: Policy) -> None:
    one, two = agent(db, "甲"), agent(db, "乙")
    customer = Customer(code="QC-1", name="客户")
    db.add(customer)
    db.flush()
    november = {
        one.id: [f"record:{i}" for i in month_of_records(db, one, customer, 2026, 11, 12)],
        two.id: [f"record:{i}" for i in month_of_records(db, two, customer, 2026, 11, 12)],
    }
    month_of_records(db, one, customer, 2026, 10, 12)
    complaint = Complaint(
        case_no="QC-20261105-0001",
        channel=Channel.HOTLINE,
        received_at=dt.datetime(2026, 11, 5, 9, tzinfo=SHANGHAI),
        severity=Severity.GENERAL,
        content="货物晚到",
        customer_id=customer.id,
    )
    db.add(complaint)
    db.flush()
    contact = CaseEvent(
        complaint_id=complaint.id,
        actor=f"staff:{one.id}",
        action="first_contact",
        data={"key": "first-contact-0", "summary": "致歉并承诺两天内答复"},
        at=dt.datetime(2026, 11, 5, 10, tzinfo=SHANGHAI),
    )
    db.add(contact)
    db.flush()
    november[one.id].append(f"event:{contact.id}")  # the complaint's first-contact text is checked too

    sample = draw_sample(db, policy, 2026, 11)
    assert sample == draw_sample(db, policy, 2026, 11)  # reproducible
    size = policy.quality_checks.sample_per_agent
    assert {agent_id: len(ids) for agent_id, ids in sample.items()} == {one.id: size, two.id: size}
    assert all(set(ids) <= set(november[agent_id]) for agent_id, ids in sample.items())  # that month's only
    other_seed = policy.model_copy(update={"quality_checks": policy.quality_checks.model_copy(update={"seed": "x"})})
    assert draw_sample(db, other_seed, 2026, 11) != sample  # another seed, another draw
    positions = sorted(november[one.id].index(i) for i in sample[one.id])
    assert positions != list(range(size)) and positions != list(range(13 - size, 13))  # not the first or last
    everything = policy.model_copy(
        update={"quality_checks": policy.quality_checks.model_copy(update={"sample_per_agent": 50})}
    )
    assert set(draw_sample(db, everything, 2026, 11)[one.id]) == set(november[one.id])


def test_a_flagged_record_goes_back_to_its_agent_by_mail_masked_and_feeds_the_scores(
    db: Session, engine: Engine, policy: Policy, calendar: WorkCalendar, smtp_server: SMTPServer
) -> None:
    boss = Staff(name="周主管", email="boss@example.com")
    boss.grant(Role.SUPERVISOR)
    db.add(boss)
    db.flush()
    person = agent(db, "李客服", email="li@example.com", supervisor=boss)
    customer = Customer(code="QC-2", name="张三丰")
    db.add(customer)
    db.flush()
    db.add(
        CommunicationRecord(
            customer_id=customer.id,
            at=dt.datetime(2026, 11, 20, 10, 15, tzinfo=SHANGHAI),
            channel="phone",
            summary="客户张三丰（13812348000）询问运费，答复每公斤5元",
            responsible_staff_id=person.id,
        )
    )
    db.flush()
    now = dt.datetime(2026, 12, 1, 9, tzinfo=SHANGHAI)
    [review] = open_reviews(db, policy, calendar, 2026, 11, now)
    assert review.reviewer_id == boss.id and review.due_at > now

    low = {"accuracy": 1, "courtesy": 4, "completeness": 3, "standard_phrases": 4}
    with pytest.raises(ReviewRefused, match="须填写原因"):
        score_review(db, policy, review, reviewer_id=boss.id, scores=low, reason=" ", now=now)
    assert review.status == "open"
    score_review(db, policy, review, reviewer_id=boss.id, scores=low, reason="运费标准答错，应为每公斤3元", now=now)
    db.commit()

    report = asyncio.run(deliver_due(engine, now + dt.timedelta(hours=1), settings=smtp_server.settings))
    assert len(report.sent) == 1
    [mail] = smtp_server.handler.received
    assert mail["To"] == "li@example.com"
    parts = [bytes(p.get_payload(decode=True)).decode() for p in mail.walk() if not p.is_multipart()]
    body = "\n".join(parts)
    assert "运费标准答错" in body and "准确性 1" in body and "138****8000" in body
    assert "13812348000" not in body and "张三丰" not in body and "张**" in body

    scores = quality_scores(db, 2026, 11)
    assert scores[person.id].reviewed == 1 and scores[person.id].flagged == 1
    assert scores[person.id].means["accuracy"] == 1.0
    assert db.scalar(select(QualityReview.flagged)) is True
    assert db.scalar(select(OutboxMessage.internal)) is True


def test_the_entrance_lets_the_signed_in_person_answer_a_waiting_callback_step_and_nothing_after(
    db: Session, engine: Engine
) -> None:
    from kefu.desk.proxy import Refusal
    from kefu.desk.steps import answer_as
    from kefu.models.contacts import ContactStepEvent

    run_id = "0b6f7a0e-0000-4000-8000-000000000017"
    db.add(
        ContactStepEvent(
            subject="callback:1",
            step="routine_callback",
            key="routine-callback-0",
            outcome="waiting",
            flow_run_id=run_id,
            data={},
        )
    )
    db.commit()
    answer = {"actor_staff_id": 999, "summary": "客户满意"}
    assert answer_as(engine, 5, None, run_id, answer) == {"actor_staff_id": 5, "summary": "客户满意"}
    with pytest.raises(Refusal):  # a run Kefu knows nothing of
        answer_as(engine, 5, None, "0b6f7a0e-0000-4000-8000-000000000018", answer)
    db.add(
        ContactStepEvent(
            subject="callback:1", step="routine_callback", key="routine-callback-0", outcome="completed", data=answer
        )
    )
    db.commit()
    with pytest.raises(Refusal):  # answered already: nothing waits
        answer_as(engine, 5, None, run_id, answer)


def test_a_complaints_proposal_text_is_reviewed_and_flagged_back_with_its_case_number(
    db: Session, policy: Policy, calendar: WorkCalendar
) -> None:
    boss = Staff(name="主管")
    boss.grant(Role.SUPERVISOR)
    db.add(boss)
    db.flush()
    person = agent(db, "赵客服", email="zhao@example.com", supervisor=boss)
    customer = Customer(code="QC-3", name="李四海", phones=["13698765432"])
    db.add(customer)
    db.flush()
    complaint = Complaint(
        case_no="QC-20261110-0002",
        channel=Channel.HOTLINE,
        received_at=dt.datetime(2026, 11, 10, 9, tzinfo=SHANGHAI),
        severity=Severity.GENERAL,
        content="破损",
        customer_id=customer.id,
    )
    db.add(complaint)
    db.flush()
    db.add(
        CaseEvent(
            complaint_id=complaint.id,
            actor=f"staff:{person.id}",
            action="propose",
            data={"key": "propose-0", "solution": "李四海先生（13698765432）自行承担运费"},
            at=dt.datetime(2026, 11, 11, 15, tzinfo=SHANGHAI),
        )
    )
    db.flush()
    now = dt.datetime(2026, 12, 1, 9, tzinfo=SHANGHAI)
    [review] = open_reviews(db, policy, calendar, 2026, 11, now)
    assert review.case_event_id is not None and review.record_id is None
    scores = {"accuracy": 3, "courtesy": 2, "completeness": 3, "standard_phrases": 3}
    score_review(db, policy, review, reviewer_id=boss.id, scores=scores, reason="推卸责任", now=now)
    mail = db.scalars(select(OutboxMessage).where(OutboxMessage.recipient == "zhao@example.com")).one()
    assert "投诉解决方案，投诉QC-20261110-0002" in mail.body_text and "推卸责任" in mail.body_text
    assert "136****5432" in mail.body_text and "13698765432" not in mail.body_text and "李四海" not in mail.body_text


def test_feedback_a_callback_finds_is_routed_to_its_department_with_the_departments_deadline(
    db: Session, policy: Policy, calendar: WorkCalendar, kefu_database_url: str
) -> None:
    """定期回访发现的意见反馈 (issue 17): a feedback record for the department, on its deadline, not a loose note."""
    from kefu.flows.routine_callbacks import CallbackResultInput, checked
    from kefu.models.enquiries import Feedback
    from kefu.tasks.callbacks import ProblemRoute, record_result

    caller = agent(db, "回访员")
    customer = Customer(code="CB-FEEDBACK", name="周九", phones=["13812340000"], created_at=at(dt.date(2026, 1, 5)))
    db.add(customer)
    db.flush()
    [callback] = open_callbacks(db, policy, due_callbacks(db, policy, calendar, at(dt.date(2026, 12, 2))))
    db.commit()
    spoke = at(dt.date(2026, 12, 2), 10)
    answer = {"actor_staff_id": caller.id, "summary": "总体满意", "problem": ProblemRoute.FEEDBACK.value,
              "problem_text": "希望提货通知提前一天", "contacted_at": spoke.isoformat()}  # fmt: skip
    with pytest.raises(StepRefused, match="反馈与建议只能转给"):  # no department: refused, the step waits again
        checked(CallbackResultInput.model_validate(answer), "CB-FEEDBACK", callback.due_on.isoformat())
    result = checked(
        CallbackResultInput.model_validate({**answer, "department": "运营部"}),
        "CB-FEEDBACK",
        callback.due_on.isoformat(),
    )
    record_result(db, callback, result, policy)
    db.flush()
    [feedback] = db.scalars(select(Feedback).where(Feedback.content == "希望提货通知提前一天")).all()
    assert (feedback.department, feedback.received_at, feedback.recorded_by_id) == ("operations", spoke, caller.id)
    assert feedback.due_at == calendar.deadline(spoke, policy.feedback.department_deadlines[Role.OPERATIONS]).due_at
    record = db.get_one(CommunicationRecord, callback.record_id)
    assert record.follow_up_open is False  # routed, not left as a note


def test_a_customer_intake_created_without_a_code_is_called_back_under_its_number(
    db: Session, policy: Policy, calendar: WorkCalendar, kefu_database_url: str
) -> None:
    """The front door files complainants without a customer code: they are due like anyone, named C000012."""
    from kefu.tasks.callbacks import callback_of

    walk_in = Customer(name="郑十", phones=["13812340001"], created_at=at(dt.date(2026, 1, 5)))
    db.add(walk_in)
    db.flush()
    ref = f"C{walk_in.id:06d}"
    report = due_callbacks(db, policy, calendar, at(dt.date(2026, 12, 2)))
    assert walk_in.id in [c.id for c, _ in report.due] and ref in report.markdown()
    [callback] = open_callbacks(db, policy, report)
    db.commit()
    assert callback_of(db, ref, callback.due_on.isoformat()).id == callback.id
