"""The staff assessment's policy, figures and combining (seed 004 §5(二)), on a hand-built month: Kefu's measured
figures per person, the evaluators' scores, the evaluator-weighted total with missing parts re-normalised, the
ranking, the mails and the statistics report's team view."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from openpyxl import load_workbook
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from kefu.models.complaints import CaseEvent, Complaint, Milestone
from kefu.models.contacts import QualityReview
from kefu.models.enquiries import Enquiry
from kefu.models.enums import Channel, ComplaintStatus, MilestoneId, Role, Severity
from kefu.models.notifications import OutboxMessage
from kefu.models.people import Staff
from kefu.models.policy import Policy, PolicyError, parse_policy
from kefu.settings import DEFAULT_POLICY_FILE
from kefu.tasks import assessment
from kefu.tasks.report_files import write_files
from kefu.tasks.reports import compute, monthly
from kefu.worktime import WorkCalendar
from tests.support.clock import SHANGHAI

KEFU = str(Path(sys.executable).parent / "kefu")
OPENED = dt.datetime(2026, 12, 1, 9, 30, tzinfo=SHANGHAI)


def nov(day: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, 0, tzinfo=SHANGHAI)


def with_assessment(**changes: object) -> str:
    data = yaml.safe_load(DEFAULT_POLICY_FILE.read_text(encoding="utf-8"))
    for key, value in changes.items():
        node = data["staff_assessment"]
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return str(yaml.safe_dump(data, allow_unicode=True))


@pytest.mark.parametrize(
    ("changes", "key", "reason"),
    [
        ({"evaluator_weights.self": 0.3}, "staff_assessment.evaluator_weights", "add up to 1 (they add up to 1.1)"),
        ({"criteria_weights.ability": 0.25}, "staff_assessment.criteria_weights", "must add up to 1"),
        ({"criteria_weights.punctuality": 0.0}, "staff_assessment.criteria_weights", "unknown criteria punctuality"),
        ({"excellent_mark": 50}, "staff_assessment", "excellent_mark (50) must be above pass_mark (60)"),
        ({"self_deadline": "3 weeks"}, "staff_assessment.self_deadline", "is not a duration"),
        ({"assessed_roles": ["pilot"]}, "staff_assessment.assessed_roles.0", "agent"),
        ({"schedule": "monthly"}, "staff_assessment.schedule", "not a cron expression"),
    ],
)
def test_a_bad_assessment_policy_is_refused_with_the_key_and_the_reason(
    changes: dict[str, object], key: str, reason: str
) -> None:
    with pytest.raises(PolicyError) as refused:
        parse_policy(with_assessment(**changes))
    assert any(line.strip().startswith(f"{key}:") and reason in line for line in str(refused.value).splitlines()), str(
        refused.value
    )


def test_kefu_policy_check_says_when_the_evaluator_weights_do_not_add_up_to_one(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text(with_assessment(**{"evaluator_weights.supervisor": 0.6}), encoding="utf-8")
    done = subprocess.run([KEFU, "policy", "check", str(bad)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "staff_assessment.evaluator_weights: evaluator weights must add up to 1 (they add up to 1.1)" in done.stderr
    shipped = subprocess.run(
        [KEFU, "policy", "check", str(DEFAULT_POLICY_FILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert shipped.returncode == 0, shipped.stderr
    for company in ("evaluator_weights", "pass_mark", "self_deadline"):
        assert f"staff_assessment.{company}" in shipped.stdout  # listed among the company settings


# --- a hand-built month --------------------------------------------------------------------------------------------


def person(db: Session, name: str, role: Role, supervisor: Staff | None = None) -> Staff:
    staff = Staff(name=name, login=f"as-{name}", email=f"as-{name}@example.com", supervisor=supervisor)
    staff.grant(role)
    db.add(staff)
    db.flush()
    return staff


def enquiry(db: Session, no: str, agent: Staff, answered_at: dt.datetime, *, wrong: bool = False) -> None:
    db.add(
        Enquiry(
            enquiry_no=no, channel=Channel.HOTLINE, received_at=answered_at, name="某客户", phone="13800000000",
            content="运费怎么算", owner_id=agent.id, answered_by_id=agent.id, due_at=answered_at,
            answered_at=answered_at, marked_wrong_at=answered_at + dt.timedelta(days=1) if wrong else None,
        )
    )  # fmt: skip


def complaint(db: Session, no: str, owner: Staff) -> Complaint:
    row = Complaint(
        case_no=no, channel=Channel.HOTLINE, received_at=nov(1), severity=Severity.GENERAL,
        status=ComplaintStatus.CLOSED, owner_id=owner.id, content="快递晚到",
    )  # fmt: skip
    db.add(row)
    db.flush()
    return row


def milestone(db: Session, case: Complaint, which: MilestoneId, due: dt.datetime, met: dt.datetime | None) -> None:
    db.add(Milestone(complaint_id=case.id, milestone=which, starts_at=nov(1), due_at=due, unit="hours",
                     target="24 hours", met_at=met))  # fmt: skip


def callback(db: Session, case: Complaint, at: dt.datetime, satisfaction: int) -> None:
    data = {"satisfaction": satisfaction}
    db.add(CaseEvent(complaint_id=case.id, actor="staff", action="callback", at=at, data=data))


@pytest.fixture
def month(db: Session) -> dict[str, Staff]:
    """November 2026: 王 answered 4 enquiries (1 marked wrong; one more in October), owns complaints with 3
    milestones due in November (2 met in time, 1 late; one due in December) and 2 November callbacks (4 and 5; one in
    October scored 1); 李 has no figures at all. Both report to 主管 张, who reports to 高经理."""
    senior = person(db, "高经理", Role.SENIOR_MANAGER)
    boss = person(db, "张主管", Role.SUPERVISOR, senior)
    wang = person(db, "王客服", Role.AGENT, boss)
    li = person(db, "李客服", Role.AGENT, boss)
    for i, wrong in enumerate((False, False, False, True)):
        enquiry(db, f"ZX-AS-{i}", wang, nov(3 + i), wrong=wrong)
    enquiry(db, "ZX-AS-OCT", wang, dt.datetime(2026, 10, 30, 10, tzinfo=SHANGHAI), wrong=True)
    first, second = complaint(db, "KF-AS-1", wang), complaint(db, "KF-AS-2", wang)
    milestone(db, first, MilestoneId.FIRST_CONTACT, nov(2), nov(1, 15))  # in time
    milestone(db, first, MilestoneId.SOLUTION, nov(3), nov(3, 9))  # in time
    milestone(db, first, MilestoneId.RESOLUTION, nov(10), nov(12))  # late
    milestone(db, second, MilestoneId.FIRST_CONTACT, dt.datetime(2026, 12, 2, tzinfo=SHANGHAI), None)  # next month
    callback(db, first, nov(20), 4)
    callback(db, second, nov(25), 5)
    callback(db, second, dt.datetime(2026, 10, 28, tzinfo=SHANGHAI), 1)
    db.commit()
    return {"senior": senior, "boss": boss, "wang": wang, "li": li}


def answer(db: Session, sheet: assessment.AssessmentSheet, evaluator: str, actor: Staff, **scores: int) -> None:
    assessment.check_answer(db, sheet.id, evaluator, actor.id)
    assert assessment.record_answer(db, sheet.id, evaluator, scores, "本月表现稳定", actor.id, OPENED)


def test_a_month_is_measured_from_kefus_records_combined_with_the_policy_weights_and_ranked(
    db: Session, engine: Engine, month: dict[str, Staff], policy: Policy, calendar: WorkCalendar, tmp_path: Path
) -> None:
    sheets = {s.staff_id: s for s in assessment.open_month(db, policy, calendar, "2026-11", OPENED)}
    db.commit()
    assert set(sheets) == {month["wang"].id, month["li"].id}  # the agents only: the supervisor is not assessed
    wang, li = sheets[month["wang"].id], sheets[month["li"].id]
    assert (wang.answer_accuracy, wang.answers) == (0.75, 4)
    assert wang.on_time_rate == pytest.approx(2 / 3) and wang.milestones == 3
    assert (wang.satisfaction, wang.callbacks) == (4.5, 2)
    assert (li.answer_accuracy, li.on_time_rate, li.satisfaction) == (None, None, None)
    assert wang.self_due_at == calendar.due_at(OPENED, policy.staff_assessment.self_deadline)
    assert wang.supervisor_due_at > wang.self_due_at

    # only 王 answers his self step, only 张 the supervisor's; each once
    with pytest.raises(assessment.AssessmentRefused, match="只能由被考核人本人填写"):
        assessment.check_answer(db, wang.id, assessment.SELF, month["li"].id)
    with pytest.raises(assessment.AssessmentRefused, match="只能由被考核人的直属主管填写"):
        assessment.check_answer(db, wang.id, assessment.SUPERVISOR, month["senior"].id)
    answer(db, wang, "supervisor", month["boss"], discipline=4, teamwork=4, responsibility=4, product_knowledge=4,
           service_skills=4)  # fmt: skip
    answer(db, wang, "self", month["wang"], discipline=5, teamwork=5, responsibility=5, product_knowledge=4,
           service_skills=5)  # fmt: skip
    with pytest.raises(assessment.AssessmentRefused, match="自我评价已完成，不能再填写"):
        assessment.check_answer(db, wang.id, assessment.SELF, month["wang"].id)
    answer(db, li, "supervisor", month["boss"], discipline=3, teamwork=3, responsibility=3, product_knowledge=3,
           service_skills=3)  # fmt: skip
    assert not assessment.publish(db, policy, "2026-11", OPENED)  # 李's self step is still open
    [(late, evaluator)] = assessment.overdue(db, li.self_due_at)
    assert (late.id, evaluator) == (li.id, "self")
    assessment.mark_missing(db, late, evaluator, li.self_due_at)
    missing = db.scalars(select(assessment.AssessmentEvent).where(assessment.AssessmentEvent.action == "missing")).one()
    assert missing.data == {"mail": f"queued:staff:{month['boss'].id}"}
    with pytest.raises(assessment.AssessmentRefused, match="自我评价缺失（逾期未填），不能再填写"):
        assessment.check_answer(db, li.id, assessment.SELF, month["li"].id)  # too late: missing stays missing
    assert assessment.publish(db, policy, "2026-11", li.self_due_at)
    assert not assessment.publish(db, policy, "2026-11", li.self_due_at)  # once
    db.commit()

    # 王: accuracy 75, on time 66.67, satisfaction 4.5 → 90; supervisor 4s → 80/80, self 5,5,5 → 100 and 4,5 → 90
    supervisor = 0.25 * 75 + 0.25 * 200 / 3 + 0.2 * 90 + 0.15 * 80 + 0.15 * 80
    own = 0.25 * 75 + 0.25 * 200 / 3 + 0.2 * 90 + 0.15 * 100 + 0.15 * 90
    assert wang.supervisor_score == round(supervisor, 2) and wang.self_score == round(own, 2)
    assert wang.customer_score == 90
    assert wang.total == round(0.5 * supervisor + 0.3 * 90 + 0.2 * own, 2) == 82.09
    assert (wang.rank, wang.flags) == (1, [])
    # 李: no figures, no self step: the supervisor's 3s (attitude and ability 60) are the whole score, flagged
    assert (li.supervisor_score, li.customer_score, li.self_score, li.total, li.rank) == (60, None, None, 60, 2)
    assert li.flags == [
        "无客户咨询解答准确率数据", "无订单处理及时率数据", "无客户投诉处理满意度数据", "缺客户评价", "缺自我评价",
        "权重已按现有部分重新归一",
    ]  # fmt: skip

    rows = assessment.table_rows(db, policy, "2026-11")
    # 82.09: above the pass mark 60, below the excellent mark 90; 60: at the pass mark
    assert [r[:4] for r in rows] == [("1", "王客服", "82.09", "合格"), ("2", "李客服", "60", "合格")]
    assert rows[0][7:10] == ("75.0", "66.7", "4.5")

    # the mails: each person their own sheet, the supervisor the team's; the missed self step to 李's supervisor
    mails = db.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    by = {(m.recipient, m.message_type): m for m in mails}
    assert set(by) == {
        ("as-张主管@example.com", "assessment_overdue"),
        ("as-王客服@example.com", "assessment_sheet"),
        ("as-李客服@example.com", "assessment_sheet"),
        ("as-张主管@example.com", "assessment_sheet"),
    }
    own_mail = by[("as-王客服@example.com", "assessment_sheet")].body_text
    assert "82.09" in own_mail and "李客服" not in own_mail
    team_mail = by[("as-张主管@example.com", "assessment_sheet")].body_text
    assert "王客服" in team_mail and "李客服" in team_mail and "缺自我评价" in team_mail
    assert "13800000000" not in own_mail + team_mail and "某客户" not in own_mail + team_mail

    # the monthly statistics report shows the team view instead of "no data yet"
    db.commit()
    with engine.connect() as connection:
        figures = compute(connection, policy, calendar, monthly("2026-11", policy.timezone), now=OPENED)
    team = figures.table("assessment")
    # in the report its figures are numbers (a workbook sorts and sums them; text would not), "—" where none
    assert team.title == "员工月度考核"
    assert [r[:4] for r in team.rows] == [(1, "王客服", 82.09, "合格"), (2, "李客服", 60, "合格")]
    assert team.rows[0][7:10] == (75.0, 66.7, 4.5) and team.rows[1][5] == "—"
    files = write_files(figures, tmp_path, OPENED)
    sheet = load_workbook(files.xlsx)["员工月度考核"]
    assert [c.value for c in sheet[2]][:5] == [1, "王客服", 82.09, "合格", team.rows[0][4]]
    assert sheet.cell(2, 3).data_type == "n" and sheet.cell(3, 6).value == "—"
    assert "优秀 ≥ 90 分，合格 ≥ 60 分" in team.note
    assert "员工月度考核" not in [title for title, _ in figures.pending]


def test_the_report_says_no_data_while_the_month_is_not_published(
    db: Session, engine: Engine, month: dict[str, Staff], policy: Policy, calendar: WorkCalendar
) -> None:
    assessment.open_month(db, policy, calendar, "2026-11", OPENED)
    db.commit()
    with engine.connect() as connection:
        figures = compute(connection, policy, calendar, monthly("2026-11", policy.timezone), now=OPENED)
    assert "员工月度考核" in [title for title, _ in figures.pending]
    assert "assessment" not in [t.key for t in figures.tables]


@pytest.mark.parametrize(
    ("day", "opens"),
    [
        (dt.date(2026, 12, 1), True),  # a Tuesday: the first working day of December
        (dt.date(2026, 12, 2), False),  # the next day: the month was opened already
        (dt.date(2026, 11, 1), False),  # a Sunday
        (dt.date(2026, 11, 2), True),  # the Monday after: November's first working day
    ],
)
def test_the_month_opens_on_its_first_working_day_only(
    day: dt.date, opens: bool, policy: Policy, calendar: WorkCalendar
) -> None:
    morning = dt.datetime.combine(day, dt.time(9, 30), tzinfo=SHANGHAI)
    assert assessment.is_opening_day(morning, calendar, policy.timezone) is opens
    assert assessment.previous_month(morning, policy.timezone) == f"{day.year}-{day.month - 1:02d}"


def test_where_the_months_quality_check_scored_a_persons_records_its_accuracy_is_the_answer_accuracy(
    db: Session, month: dict[str, Staff]
) -> None:
    """沟通记录质检: 李's two records of November scored 准确性 4 and 5 by 张主管 — accuracy 4.5 of 5; 王's enquiries
    (three of four right) stay his figure, with nothing checked for him."""
    li, wang, boss = month["li"], month["wang"], month["boss"]
    for accuracy in (4, 5):
        scores = {"accuracy": accuracy, "courtesy": 5, "completeness": 5, "standard_phrases": 5}
        db.add(
            QualityReview(
                year=2026, month=11, agent_id=li.id, reviewer_id=boss.id, due_at=OPENED, status="scored", scores=scores
            )
        )
    db.flush()
    measured = assessment.measure(db, 2026, 11, "Asia/Shanghai", [li.id, wang.id], OPENED)
    assert (measured[li.id].answer_accuracy, measured[li.id].answers) == (0.9, 2)
    assert (measured[wang.id].answer_accuracy, measured[wang.id].answers) == (0.75, 4)
