"""The complaint process as the policy means it (issue 13): urgent cases, the policy on each case, the first
receiver's ownership and handovers, the paused clock — against a real database and an injected clock."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from kefu.intake.service import register_complaint
from kefu.intake.validation import Submission
from kefu.models.accounts import KeyAccountMember, TeamRole
from kefu.models.complaints import CaseEvent, Complaint, PolicySnapshot
from kefu.models.enums import Channel, CustomerTier, Role
from kefu.models.notifications import OutboxMessage
from kefu.models.people import Staff
from kefu.models.policy import Duration, MilestoneId, Policy, Severity, SeverityRule, Unit
from kefu.settings import DEFAULT_POLICY_FILE
from kefu.tasks.case_policy import keep_snapshot, policy_hash
from kefu.tasks.case_summary import render_step_summary
from kefu.tasks.casework import (
    StepRejected,
    classify_case,
    end_pause,
    hand_over,
    pause_case,
    plan_milestones,
    promise_resolution,
    register_case,
)
from kefu.tasks.customer_messages import record_progress_contact
from kefu.tasks.escalation import sweep
from kefu.tasks.replan import open_cases_changed, replan_open_cases
from kefu.worktime import WorkCalendar, calendar_for
from tests.support.clock import SHANGHAI
from tests.support.factories import MakeComplaint

KEFU = str(Path(sys.executable).parent / "kefu")


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


def events(db: Session, complaint: Complaint, action: str) -> list[CaseEvent]:
    query = select(CaseEvent).where(CaseEvent.complaint_id == complaint.id, CaseEvent.action == action)
    return list(db.scalars(query.order_by(CaseEvent.id)).all())


def test_an_urgent_case_tells_the_supervisor_by_mail_at_intake_and_every_summary_says_urgent(
    db: Session, policy: Policy, calendar: WorkCalendar, ladder: dict[str, Staff], make_complaint: MakeComplaint
) -> None:
    ladder["supervisor"].email = "boss@example.com"
    urgent, ordinary = make_complaint(urgent=True), make_complaint()
    for complaint in (urgent, ordinary):
        register_case(db, complaint.case_no, policy, calendar, owner_id=ladder["owner"].id, now=at(2, 10))
    db.commit()
    (notice,) = events(db, urgent, "notified")
    assert notice.data["reason"] == "urgent" and notice.data["recipient_staff_id"] == ladder["supervisor"].id
    mails = db.scalars(select(OutboxMessage).where(OutboxMessage.complaint_id == urgent.id)).all()
    assert [m.recipient for m in mails if m.internal] == ["boss@example.com"]
    assert all(m.not_before.replace(tzinfo=dt.UTC) <= at(2, 10) for m in mails if m.internal)  # at once
    assert events(db, ordinary, "notified") == []
    for step, title in (("classify", "投诉定级"), ("investigate", "调查分析"), ("callback", "满意度回访")):
        summary = render_step_summary(db, policy, urgent, step=step, title=title, meets=(), now=at(2, 10))
        assert summary.startswith(f"### 【紧急投诉】{title} · 投诉 {urgent.case_no}")
        plain = render_step_summary(db, policy, ordinary, step=step, title=title, meets=(), now=at(2, 10))
        assert "紧急投诉】" not in plain


# --- the policy on each case ----------------------------------------------------------------------------------


def tighter(policy: Policy) -> Policy:
    """The same policy after an operator's edit: general complaints contacted within 12 hours, not 24."""
    return policy.model_copy(
        update={"complaints": policy.complaints.model_copy(update={"severities": _general_first_contact(policy)})}
    )


def _general_first_contact(policy: Policy) -> dict[Severity, SeverityRule]:
    severities = dict(policy.complaints.severities)
    general = severities[Severity.GENERAL]
    rules = [
        r.model_copy(update={"due": Duration(amount=12, unit=Unit.HOURS)}) if r.id is MilestoneId.FIRST_CONTACT else r
        for r in general.milestones
    ]
    severities[Severity.GENERAL] = general.model_copy(update={"milestones": rules})
    return severities


def due(complaint: Complaint, milestone: MilestoneId) -> dt.datetime | None:
    row = next(m for m in complaint.milestones if m.milestone is milestone)
    return None if row.due_at is None else row.due_at.replace(tzinfo=row.due_at.tzinfo or dt.UTC)


def test_a_case_keeps_the_policy_stamped_at_registration_until_a_person_replans_it(
    db: Session, policy: Policy, calendar: WorkCalendar, ladder: dict[str, Staff], make_complaint: MakeComplaint
) -> None:
    complaint = make_complaint()
    register_case(db, complaint.case_no, policy, calendar, owner_id=ladder["owner"].id, now=at(2, 10))
    assert (complaint.policy_version, complaint.policy_hash) == (1, policy_hash(policy))
    assert due(complaint, MilestoneId.FIRST_CONTACT) == at(3, 10)

    # the policy file is edited: the case's next step plans with the new file's policy, but follows its own
    edited = tighter(policy)
    assert policy_hash(edited) != policy_hash(policy)
    promise_resolution(db, complaint.case_no, edited, calendar_for(edited), at(9, 18))
    db.commit()
    assert due(complaint, MilestoneId.FIRST_CONTACT) == at(3, 10)
    assert due(complaint, MilestoneId.RESOLUTION) == at(9, 18)

    # kefu policy check: what the edit would change; nothing is written
    (change,) = open_cases_changed(db, edited)
    assert change.case_no == complaint.case_no and change.from_hash == policy_hash(policy)
    assert change.moves == {"first_contact": ("2026-11-03 10:00 +08:00", "2026-11-02 22:00 +08:00")}
    assert complaint.policy_hash == policy_hash(policy) and events(db, complaint, "policy_replanned") == []

    # kefu policy replan: explicit, by a supervisor, audited, and done once
    with pytest.raises(StepRejected, match="re-planning open cases needs one of the roles supervisor"):
        replan_open_cases(db, edited, ladder["owner"], at(2, 12))
    assert complaint.policy_hash == policy_hash(policy)
    replan_open_cases(db, edited, ladder["supervisor"], at(2, 12))
    db.commit()
    assert complaint.policy_hash == policy_hash(edited)
    assert due(complaint, MilestoneId.FIRST_CONTACT) == at(2, 22)
    (event,) = events(db, complaint, "policy_replanned")
    assert event.actor == f"staff:{ladder['supervisor'].id}" and event.data["from_policy"] == policy_hash(policy)
    assert event.data["moved"] == {"first_contact": ["2026-11-03 10:00 +08:00", "2026-11-02 22:00 +08:00"]}
    assert open_cases_changed(db, edited) == []


def quicker_ladder(policy: Policy) -> Policy:
    """The policy after an edit of its company settings: the ladder climbs every clock hour (not every 4 working
    hours) and a general complaint's progress contact is due every working day (not every 3)."""
    severities = dict(policy.complaints.severities)
    general = severities[Severity.GENERAL]
    severities[Severity.GENERAL] = general.model_copy(
        update={"progress_update_interval": Duration(amount=1, unit=Unit.WORKING_DAYS)}
    )
    return policy.model_copy(
        update={
            "escalation": policy.escalation.model_copy(
                update={"reminder_interval": Duration(amount=1, unit=Unit.HOURS)}
            ),
            "complaints": policy.complaints.model_copy(update={"severities": severities}),
        }
    )


def test_an_open_case_escalates_and_is_reminded_by_the_policy_stamped_on_it_not_by_an_edited_file(
    db: Session, policy: Policy, calendar: WorkCalendar, ladder: dict[str, Staff], make_complaint: MakeComplaint
) -> None:
    stamped, unstamped = make_complaint(), make_complaint()
    for complaint in (stamped, unstamped):
        register_case(db, complaint.case_no, policy, calendar, owner_id=ladder["owner"].id, now=at(2, 10))
    unstamped.policy_hash = unstamped.policy_version = None  # a case from before cases were stamped
    db.commit()
    edited = quicker_ladder(policy)  # the file as it reads now: the sweeper is handed this policy
    assert policy_hash(edited) != policy_hash(policy)
    # Received Monday 11-02 10:00, first contact due Tuesday 10:00 and missed: the supervisor is told at the breach.
    for moment in (at(3, 10), at(3, 12), at(3, 17), at(4, 12), at(5, 18)):
        sweep(db, edited, calendar_for(edited), moment)
        db.commit()

    def climbed(complaint: Complaint) -> list[tuple[str | None, dt.datetime]]:
        return [
            (e.data["level"], e.at)
            for e in events(db, complaint, "escalated")
            if e.data.get("milestone") == "first_contact"
        ]

    def reminded(complaint: Complaint) -> list[dt.datetime]:
        return [e.at for e in events(db, complaint, "progress_contact_due")]

    # Stamped: the next rung 4 working hours after the breach (Tuesday 10-12 and 15-17 → 17:00), not an hour on;
    # the progress contact after 3 working days (Thursday 18:00), not after one.
    assert climbed(stamped) == [("supervisor", at(3, 10)), ("senior_manager", at(3, 17))]
    assert reminded(stamped) == [at(5, 18)]
    # Without a stamp the case follows the file as it reads now: the senior manager an hour on, reminded daily.
    assert climbed(unstamped) == [("supervisor", at(3, 10)), ("senior_manager", at(3, 12))]
    assert reminded(unstamped) == [at(4, 12), at(5, 18)]
    assert unstamped.policy_hash is None  # the sweeper reads the stamp; it writes none

    # The owner calls on Friday and mails an update: it promises the next contact by the stamped interval (3
    # working days → Wednesday 11-11 18:00), not the edited one (Monday 11-09).
    assert stamped.customer is not None
    stamped.customer.email = "stamped@example.com"
    record_progress_contact(
        db,
        stamped.case_no,
        ladder["owner"].id,
        "已联系承运方核实",
        at(6, 10),
        mail=True,
        policy=edited,
        calendar=calendar_for(edited),
    )
    db.commit()
    (update,) = db.scalars(
        select(OutboxMessage).where(
            OutboxMessage.complaint_id == stamped.id, OutboxMessage.message_type == "progress_update"
        )
    ).all()
    assert "2026年11月11日 18:00" in update.body_text, update.body_text


def test_the_front_door_stamps_the_policy_on_the_case_it_registers(db: Session, policy: Policy) -> None:
    submission = Submission(name="张三", phone="13800138000", content="快递晚到两天")
    registered = register_complaint(db, submission, received_at=at(2, 10), channel=Channel.WEB, policy=policy)
    db.commit()
    complaint = db.get(Complaint, registered.complaint_id)
    assert complaint is not None and complaint.policy_hash == policy_hash(policy) and complaint.policy_version == 1
    snapshot = db.get(PolicySnapshot, policy_hash(policy))
    assert snapshot is not None and Policy.model_validate(snapshot.content) == policy


def test_kefu_policy_check_shows_the_open_cases_an_edit_would_move_and_replan_moves_them(
    sqlite_engine: Engine, policy: Policy, calendar: WorkCalendar, tmp_path: Path
) -> None:
    with Session(sqlite_engine, expire_on_commit=False) as db:
        agent, boss = Staff(name="客服", login="li.kefu"), Staff(name="主管", login="wang.zhuguan")
        agent.grant(Role.AGENT)
        boss.grant(Role.SUPERVISOR)
        complaint = Complaint(
            case_no="KF-T-0001",
            channel=Channel.HOTLINE,
            received_at=at(2, 10),
            severity=Severity.GENERAL,
            content="快递晚到两天",
        )
        db.add_all([agent, boss, complaint])
        db.commit()
        register_case(db, complaint.case_no, policy, calendar, owner_id=agent.id, now=at(2, 10))
        db.commit()
    path = tmp_path / "policy.yaml"
    path.write_text(
        DEFAULT_POLICY_FILE.read_text(encoding="utf-8").replace(
            "name: 与客户取得联系, due: 24 hours", "name: 与客户取得联系, due: 12 hours"
        ),
        encoding="utf-8",
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KEFU_POLICY_FILE": str(path)}
    env["KEFU_DATABASE_URL"] = sqlite_engine.url.render_as_string(hide_password=False)

    def kefu(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([KEFU, *argv], env=env, capture_output=True, text=True, timeout=60, check=False)

    checked = kefu("policy", "check")
    assert checked.returncode == 0, checked.stderr
    assert "  KF-T-0001: first_contact 2026-11-03 10:00 +08:00 → 2026-11-02 22:00 +08:00" in checked.stdout
    done = kefu("policy", "replan", "--as", "wang.zhuguan")
    assert done.returncode == 0, done.stderr
    assert "KF-T-0001: first_contact" in done.stdout and "re-planned 1 open case(s)" in done.stdout
    with Session(sqlite_engine) as db:
        (event,) = db.scalars(select(CaseEvent).where(CaseEvent.action == "policy_replanned")).all()
        assert event.actor == f"staff:{boss.id}"


# --- the first receiver owns the case -------------------------------------------------------------------------


def test_without_a_named_receiver_the_on_duty_agents_take_the_days_complaints_in_turn(
    db: Session, policy: Policy
) -> None:
    weekdays = ["mon", "tue", "wed", "thu", "fri"]
    a, b = Staff(name="甲", on_duty=weekdays), Staff(name="乙", on_duty=weekdays)
    weekend, boss = Staff(name="丙", on_duty=["sat", "sun"]), Staff(name="主管", on_duty=weekdays)
    for agent in (a, b, weekend):
        agent.grant(Role.AGENT)
    boss.grant(Role.SUPERVISOR)
    db.add_all([a, b, weekend, boss])
    db.commit()

    def owner(received_at: dt.datetime, phone: str) -> tuple[int | None, str | None]:
        submission = Submission(name="张三", phone=phone, content="快递晚到两天")
        done = register_complaint(db, submission, received_at=received_at, channel=Channel.WEB, policy=policy)
        db.commit()
        complaint = db.get(Complaint, done.complaint_id)
        assert complaint is not None
        return complaint.owner_id, done.owned_by

    monday = [owner(at(23, 10, minute), f"1380013800{minute}") for minute in range(3)]  # KF20261123-00001..3
    assert monday == [(b.id, "rota"), (a.id, "rota"), (b.id, "rota")]
    assert owner(at(28, 10), "13900139000") == (weekend.id, "rota")  # Saturday: the weekend rota
    weekend.active = False
    db.commit()
    assert owner(at(29, 10), "13900139001") == (None, None)  # nobody on duty: whoever classifies it owns it


def test_a_key_accounts_complaint_is_owned_by_its_specialist_and_its_project_manager_hears_of_it(
    db: Session, policy: Policy, calendar: WorkCalendar, ladder: dict[str, Staff]
) -> None:
    """Issue 15: the account's customer-service specialist owns its complaints — before the receiver a gateway names
    and the rota — and the project manager is told of every important or major one (once per severity)."""
    weekdays = ["mon", "tue", "wed", "thu", "fri"]
    specialist = Staff(name="孙专员", email="sun@kefu.example", on_duty=[])
    manager = Staff(name="周经理", email="zhou@kefu.example")
    specialist.grant(Role.AGENT)
    manager.grant(Role.PROJECT_MANAGER)
    ladder["owner"].on_duty = weekdays
    db.add_all([specialist, manager])
    db.commit()

    def register(phone: str, minute: int) -> Complaint:
        submission = Submission(name="王经理", phone=phone, content="快递晚到两天", received_by=ladder["owner"].id)
        done = register_complaint(db, submission, received_at=at(23, 10, minute), channel=Channel.WEB, policy=policy)
        db.commit()
        complaint = db.get(Complaint, done.complaint_id)
        assert complaint is not None and complaint.customer is not None
        register_case(db, complaint.case_no, policy, calendar, owner_id=None, now=at(23, 10, minute))
        db.commit()
        return complaint

    first = register("13700137001", 0)  # a general customer: the receiver the gateway named owns it
    assert (first.owner_id, first.severity) == (ladder["owner"].id, Severity.GENERAL)
    account = first.customer
    assert account is not None
    account.tier = CustomerTier.KEY
    db.add_all(
        [
            KeyAccountMember(customer_id=account.id, staff_id=specialist.id, team_role=TeamRole.SERVICE_SPECIALIST),
            KeyAccountMember(customer_id=account.id, staff_id=manager.id, team_role=TeamRole.PROJECT_MANAGER),
        ]
    )
    db.commit()

    second = register("13700137001", 1)  # now a key account: its specialist owns it, not the named receiver
    assert second.owner_id == specialist.id
    assert events(db, second, "registered")[0].data["owner_staff_id"] == specialist.id
    assert second.severity is Severity.IMPORTANT  # key accounts are raised to important (a company setting)
    (told,) = events(db, second, "notified")
    assert (told.data["level"], told.data["recipient_staff_id"]) == ("project_manager", manager.id)
    mail = db.scalars(select(OutboxMessage).where(OutboxMessage.complaint_id == second.id)).all()
    assert [m.recipient for m in mail if m.internal] == ["zhou@kefu.example"]
    # Raised to major by a person: the project manager hears of it again, once.
    for _ in range(2):
        classify_case(
            db,
            second.case_no,
            policy,
            calendar,
            severity=Severity.MAJOR,
            actor=f"staff:{specialist.id}",
            reason="货物损失金额巨大",
            now=at(23, 11),
        )
        db.commit()
    assert [e.data["level"] for e in events(db, second, "notified")] == ["project_manager", "project_manager"]
    assert [
        m.recipient
        for m in db.scalars(select(OutboxMessage).where(OutboxMessage.complaint_id == second.id))
        if m.internal
    ] == ["zhou@kefu.example", "zhou@kefu.example"]

    # A specialist who has left: the account's complaints go by the first-receiver rule again.
    specialist.active = False
    db.commit()
    assert register("13700137001", 2).owner_id == ladder["owner"].id


def test_a_handover_is_explicit_and_audited_and_only_the_owner_or_a_supervisor_may_make_it(
    db: Session, policy: Policy, calendar: WorkCalendar, ladder: dict[str, Staff], make_complaint: MakeComplaint
) -> None:
    other = Staff(name="同事")
    other.grant(Role.AGENT)
    db.add(other)
    db.commit()
    complaint = make_complaint()
    register_case(db, complaint.case_no, policy, calendar, owner_id=ladder["owner"].id, now=at(2, 10))
    for by, to, reason, refusal in (
        (other, other, "我来跟进", "只有本案负责人或主管、高层管理人员可以移交"),
        (ladder["owner"], ladder["owner"], "转给自己", "已是本案负责人"),
        (ladder["owner"], other, "  ", "移交须填写理由"),
    ):
        with pytest.raises(StepRejected, match=refusal):
            hand_over(db, complaint.case_no, policy, to=to, by=by, reason=reason, now=at(2, 11))
    assert complaint.owner_id == ladder["owner"].id and events(db, complaint, "handed_over") == []
    hand_over(db, complaint.case_no, policy, to=other, by=ladder["owner"], reason="休假", now=at(2, 11))
    hand_over(db, complaint.case_no, policy, to=ladder["owner"], by=ladder["supervisor"], reason="销假", now=at(3, 9))
    db.commit()
    assert complaint.owner_id == ladder["owner"].id
    assert [
        (e.actor, e.data["from_staff_id"], e.data["to_staff_id"], e.data["reason"])
        for e in events(db, complaint, "handed_over")
    ] == [
        (f"staff:{ladder['owner'].id}", ladder["owner"].id, other.id, "休假"),
        (f"staff:{ladder['supervisor'].id}", other.id, ladder["owner"].id, "销假"),
    ]


def test_kefu_case_hand_over_as_users_run_it(sqlite_engine: Engine, policy: Policy, tmp_path: Path) -> None:
    with Session(sqlite_engine, expire_on_commit=False) as db:
        owner, colleague = Staff(name="客服", login="li.kefu"), Staff(name="同事", login="zhao.kefu")
        for person in (owner, colleague):
            person.grant(Role.AGENT)
        complaint = Complaint(
            case_no="KF-T-0002",
            channel=Channel.HOTLINE,
            received_at=at(2, 10),
            severity=Severity.GENERAL,
            content="快递晚到两天",
            owner=owner,
        )
        db.add_all([owner, colleague, complaint])
        db.commit()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    env["KEFU_DATABASE_URL"] = sqlite_engine.url.render_as_string(hide_password=False)
    argv = [KEFU, "case", "hand-over", "KF-T-0002", "--to", "zhao.kefu", "--as", "li.kefu", "--reason", "休假"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert f"KF-T-0002: owner is now staff {colleague.id}" in done.stdout
    with Session(sqlite_engine) as db:
        (event,) = db.scalars(select(CaseEvent).where(CaseEvent.action == "handed_over")).all()
        assert (event.actor, event.data["reason"]) == (f"staff:{owner.id}", "休假")


# --- waiting on the customer: the clock stops -----------------------------------------------------------------


def important_case(
    db: Session, policy: Policy, calendar: WorkCalendar, ladder: dict[str, Staff], make_complaint: MakeComplaint
) -> Complaint:
    """An important complaint received Tuesday 2026-09-29 10:00, the day before the National Day holiday."""
    complaint = make_complaint("包裹丢件了", received_at=at(29, 10, month=9))
    register_case(db, complaint.case_no, policy, calendar, owner_id=ladder["owner"].id, now=at(29, 10, month=9))
    classify_case(
        db, complaint.case_no, policy, calendar, severity=None, actor="staff:1", reason=None, now=at(29, 11, month=9)
    )
    db.commit()
    return complaint


def test_a_pause_across_the_national_day_holiday_adds_only_its_working_time_to_the_pausable_deadlines(
    db: Session, policy: Policy, calendar: WorkCalendar, ladder: dict[str, Staff], make_complaint: MakeComplaint
) -> None:
    complaint = important_case(db, policy, calendar, ladder, make_complaint)
    assert due(complaint, MilestoneId.RESOLUTION) == at(14, 18, month=10)  # 7 working days, 10-10 a make-up day
    assert due(complaint, MilestoneId.PROGRESS_UPDATE) == at(1, 10, month=10)
    owner = ladder["owner"]
    with pytest.raises(StepRejected, match="暂停计时须填写原因"):
        pause_case(db, complaint.case_no, policy, calendar, by=owner, reason=" ", now=at(30, 16, month=9))
    paused = pause_case(
        db, complaint.case_no, policy, calendar, by=owner, reason="等客户提供破损照片", now=at(30, 16, month=9)
    )
    assert set(paused) == {MilestoneId.PROGRESS_UPDATE, MilestoneId.RESOLUTION}  # not the first contact, not internal
    with pytest.raises(StepRejected, match="已在等待客户"):
        pause_case(db, complaint.case_no, policy, calendar, by=owner, reason="再等", now=at(30, 17, month=9))

    # while waiting, the sweeper neither warns nor breaches the stopped clocks (the first contact's still runs)
    fired = sweep(db, policy, calendar, at(2, 12, month=10))
    assert not [f for f in fired if "progress_update" in f or "resolution" in f]
    assert any("first_contact" in f for f in fired)

    # back on Friday 10-09 10:00: 09-30 16:00–18:00, 10-08 and 10-09 09:00–10:00 were working time: 9 hours
    hours = end_pause(
        db, complaint.case_no, policy, calendar, actor=f"staff:{owner.id}", note="照片已收到", now=at(9, 10, month=10)
    )
    db.commit()
    assert hours == 9
    assert due(complaint, MilestoneId.RESOLUTION) == at(16, 12, month=10)  # 10-14 18:00 + 9 working hours
    assert due(complaint, MilestoneId.PROGRESS_UPDATE) == at(9, 12, month=10)  # 10-01 10:00 (holiday) + 9 h
    assert due(complaint, MilestoneId.FIRST_CONTACT) == at(30, 10, month=9)
    resolution = next(m for m in complaint.milestones if m.milestone is MilestoneId.RESOLUTION)
    assert "等待客户期间暂停计时 9 个工作小时，顺延至 2026-10-16 12:00" in (resolution.explanation or "")
    (interval,) = resolution.paused_intervals
    assert (interval["by"], interval["reason"], interval["note"], interval["working_hours"]) == (
        f"staff:{owner.id}",
        "等客户提供破损照片",
        "照片已收到",
        9,
    )
    # a later re-plan (e.g. the resolution promised) keeps the paused time
    plan_milestones(db, complaint, policy, calendar)
    assert due(complaint, MilestoneId.RESOLUTION) == at(16, 12, month=10)
    assert [e.data["working_hours"] for e in events(db, complaint, "pause_ended")] == [9]


def test_a_pause_counts_at_most_the_longest_and_the_sweeper_ends_it(
    db: Session, policy: Policy, calendar: WorkCalendar, ladder: dict[str, Staff], make_complaint: MakeComplaint
) -> None:
    complaint = important_case(db, policy, calendar, ladder, make_complaint)
    pause_case(db, complaint.case_no, policy, calendar, by=ladder["owner"], reason="客户出差", now=at(8, 9, month=10))
    # 5 working days from Thursday 10-08 09:00 end 10-14 18:00 (10-10 a make-up Saturday): 36 working hours; the
    # sweeper ends the pause after that, counting those only
    fired = sweep(db, policy, calendar, at(20, 9, month=10))
    assert f"{complaint.case_no}:pause-ended:36h" in fired
    (ended,) = events(db, complaint, "pause_ended")
    assert (ended.actor, ended.data["note"], ended.data["working_hours"]) == ("system", "已达最长暂停时间", 36)
    assert due(complaint, MilestoneId.RESOLUTION) == at(22, 18, month=10)  # 10-14 18:00 + 36 working hours


def test_a_deadline_already_missed_is_not_paused_and_stays_missed(
    db: Session, policy: Policy, calendar: WorkCalendar, ladder: dict[str, Staff], make_complaint: MakeComplaint
) -> None:
    complaint = important_case(db, policy, calendar, ladder, make_complaint)
    owner = ladder["owner"]
    # Thursday 10-08: the progress explanation was due 10-01 10:00 (missed); the resolution is still running
    paused = pause_case(db, complaint.case_no, policy, calendar, by=owner, reason="等客户回复", now=at(8, 9, month=10))
    assert paused == [MilestoneId.RESOLUTION]
    end_pause(db, complaint.case_no, policy, calendar, actor=f"staff:{owner.id}", note="已回复", now=at(9, 9, month=10))
    assert due(complaint, MilestoneId.PROGRESS_UPDATE) == at(1, 10, month=10)  # the breach is not moved away
    assert due(complaint, MilestoneId.RESOLUTION) == at(15, 18, month=10)  # 10-14 18:00 + 9 working hours
    # past the resolution's due time too, nothing may pause: refused with the reason, nothing changed
    with pytest.raises(StepRejected, match="已超时的期限不能暂停"):
        pause_case(db, complaint.case_no, policy, calendar, by=owner, reason="再等", now=at(19, 9, month=10))
    assert len(events(db, complaint, "pause_started")) == 1


def test_kefu_case_end_pause_as_users_run_it_and_the_ledger_shows_who_and_why(
    sqlite_engine: Engine, policy: Policy, calendar: WorkCalendar, tmp_path: Path
) -> None:
    with Session(sqlite_engine, expire_on_commit=False) as db:
        owner = Staff(name="客服", login="li.kefu")
        owner.grant(Role.AGENT)
        complaint = Complaint(
            case_no="KF-T-0003",
            channel=Channel.HOTLINE,
            received_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
            severity=Severity.IMPORTANT,
            content="包裹丢件了",
            owner=owner,
        )
        db.add_all([owner, complaint])
        db.commit()
        register_case(db, complaint.case_no, policy, calendar, owner_id=owner.id, now=complaint.received_at)
        db.commit()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    env["KEFU_DATABASE_URL"] = sqlite_engine.url.render_as_string(hide_password=False)

    def kefu(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([KEFU, *argv], env=env, capture_output=True, text=True, timeout=60, check=False)

    with Session(sqlite_engine) as db:
        reason = "等客户提供单号"
        by = db.get_one(Staff, owner.id)
        pause_case(db, "KF-T-0003", policy, calendar, by=by, reason=reason, now=dt.datetime.now(dt.UTC))
        db.commit()
    ended = kefu("case", "end-pause", "KF-T-0003", "--as", "li.kefu", "--note", "客户已回复")
    assert ended.returncode == 0, ended.stderr
    assert "KF-T-0003: clock running again" in ended.stdout
    shown = kefu("case", "show", "KF-T-0003")
    assert shown.returncode == 0, shown.stderr
    assert f"policy: version 1, content {policy_hash(policy)[:12]}" in shown.stdout
    ledger = [line.strip() for line in shown.stdout.splitlines() if line.strip().startswith("paused ")]
    assert len(ledger) == 2  # progress_update and resolution
    assert all(f"by staff:{owner.id}: 等客户提供单号  ended by staff:{owner.id}: 客户已回复" in line for line in ledger)
    assert all("paused working time" in line for line in ledger)


def test_two_intake_processes_storing_the_same_new_policy_at_once_both_succeed(
    db: Session, engine: Engine, policy: Policy
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: the second waits, it cannot race")
    edited = tighter(policy)

    def store() -> None:
        with Session(engine) as second:
            keep_snapshot(second, edited)  # does not see the first's row yet: inserts, and waits on its key
            second.commit()

    # The pool is left last: should the test fail, ``first`` rolls back (its lock gone) before the pool waits.
    with ThreadPoolExecutor(1) as pool, Session(engine) as first:
        keep_snapshot(first, edited)
        racing = pool.submit(store)
        waiting = text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        deadline = time.monotonic() + 30
        while True:
            with engine.connect() as probe:  # a new transaction each time: pg_stat_activity is one snapshot per one
                if probe.scalar(waiting):
                    break
            assert time.monotonic() < deadline, "the second insert never waited on the first"
            time.sleep(0.05)
        first.commit()
        racing.result(timeout=30)  # without ON CONFLICT DO NOTHING: a duplicate key, the second batch lost
    assert db.get(PolicySnapshot, policy_hash(edited)) is not None
