"""A step answered through the entrance: the signed-in person is the one who answers, and must be allowed to.

The run's case and step come from Kefu's database (the step the run waits on: ``casework.waiting_steps``, as
``kefu step list`` reads it); the checks are the ones ``kefu step submit --as`` and the case flow apply
(``casework.check_answer_staff``: every staff id the answer names, and the answering person's roles against the
policy's roles for the step).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from kefu.desk.proxy import Refusal
from kefu.models.db import unit_of_work
from kefu.models.policy import current_policy
from kefu.tasks.casework import StepRejected, check_answer_staff, waiting_steps
from kefu.worktime.display import local_time

NOT_WAITING_ZH = "该流程运行当前没有等待 Kefu 的步骤（可能已被他人处理），请刷新页面后再看。"


def answer_as(
    engine: Engine, staff_id: int, case_no: str | None, flow_run_id: str, answer: dict[str, Any]
) -> dict[str, Any]:
    """``answer`` with ``actor_staff_id`` = ``staff_id``, checked; ``Refusal`` (403, zh-CN) when the person may
    not answer the step the run waits on, or the run waits on no step of a case."""
    with unit_of_work(engine) as session:
        rows = [r for r in waiting_steps(session, case_no) if r["flow_run_id"] == flow_run_id] if case_no else []
        if not rows and case_no:
            return _onboarding_answer(session, staff_id, case_no, flow_run_id, answer)
        if not rows and case_no is None and contact_step_waiting(session, flow_run_id):
            # A routine callback's or a quality review's step (issue 17): answered as the signed-in person; the
            # flow itself refuses an answer its rules do not take (an inactive person, the agent scoring themself).
            return {**answer, "actor_staff_id": staff_id}
        if not rows:
            raise Refusal(403, NOT_WAITING_ZH)
        step = str(rows[-1]["step"])
        checked = {**answer, "actor_staff_id": staff_id}
        try:
            check_answer_staff(session, checked, step, current_policy())
        except StepRejected as refused:
            raise Refusal(403, str(refused).split(" / ", 1)[0]) from None
    return checked


def enquiry_answer_as(
    engine: Engine, staff_id: int, enquiry_no: str, flow_run_id: str, answer: dict[str, Any]
) -> dict[str, Any]:
    """The same for an enquiry run's step (``kefu.tasks.enquiries.check_answerer``)."""
    from kefu.tasks.enquiries import EnquiryRefused, check_answerer
    from kefu.tasks.enquiries import waiting_steps as enquiry_steps

    with unit_of_work(engine) as session:
        rows = [r for r in enquiry_steps(session, enquiry_no) if r["flow_run_id"] == flow_run_id]
        if not rows:
            raise Refusal(403, NOT_WAITING_ZH)
        try:
            check_answerer(session, current_policy(), str(rows[-1]["step"]), staff_id)
        except EnquiryRefused as refused:
            raise Refusal(403, str(refused).split(" / ", 1)[0]) from None
    return {**answer, "actor_staff_id": staff_id}


def assessment_answer_as(
    engine: Engine, staff_id: int, sheet_id: int, flow_run_id: str, answer: dict[str, Any]
) -> dict[str, Any]:
    """A staff assessment step: only the person assessed (self) or their supervisor may answer it, while open."""
    from kefu.tasks.assessment import AssessmentRefused, check_answer
    from kefu.tasks.assessment import waiting_steps as assessment_steps

    with unit_of_work(engine) as session:
        rows = [r for r in assessment_steps(session) if r["flow_run_id"] == flow_run_id and r["sheet_id"] == sheet_id]
        if not rows:
            raise Refusal(403, NOT_WAITING_ZH)
        evaluator = str(rows[-1]["step"]).removesuffix("_assessment")
        try:
            check_answer(session, sheet_id, evaluator, staff_id)
        except AssessmentRefused as refused:
            raise Refusal(403, str(refused).split(" / ", 1)[0]) from None
    return {**answer, "actor_staff_id": staff_id}


def feedback_answer_as(
    engine: Engine, staff_id: int, feedback_no: str, flow_run_id: str, answer: dict[str, Any]
) -> dict[str, Any]:
    """The same for a feedback run's step (``kefu.tasks.feedback.check_answerer``: the routed department's staff
    and supervisors answer for the department)."""
    from kefu.tasks.feedback import FeedbackRefused, check_answerer
    from kefu.tasks.feedback import waiting_steps as feedback_steps

    with unit_of_work(engine) as session:
        rows = [r for r in feedback_steps(session, feedback_no) if r["flow_run_id"] == flow_run_id]
        if not rows:
            raise Refusal(403, NOT_WAITING_ZH)
        try:
            check_answerer(session, current_policy(), feedback_no, str(rows[-1]["step"]), staff_id)
        except FeedbackRefused as refused:
            raise Refusal(403, str(refused).split(" / ", 1)[0]) from None
    return {**answer, "actor_staff_id": staff_id}


def _onboarding_answer(
    session: Session, staff_id: int, code: str, flow_run_id: str, answer: dict[str, Any]
) -> dict[str, Any]:
    """A key-account onboarding step (``code``: the customer's): the onboarding's staff checks (its internal wait for
    the reviews is no person's step: refused like a run waiting on nothing)."""
    from kefu.flows.key_account_onboarding import STEPS, check_answer
    from kefu.tasks.onboarding import OnboardingRefused
    from kefu.tasks.onboarding import waiting_steps as onboarding_steps

    rows = [r for r in onboarding_steps(session, code) if r["flow_run_id"] == flow_run_id]
    if not rows:
        return _plan_answer(session, staff_id, code, flow_run_id, answer)
    checked = {**answer, "actor_staff_id": staff_id}
    try:
        check_answer(session, STEPS[str(rows[-1]["step"])], checked)
    except OnboardingRefused as refused:
        raise Refusal(403, str(refused).split(" / ", 1)[0]) from None
    return checked


def contact_step_waiting(session: Session, flow_run_id: str) -> bool:
    """Whether the run waits on a routine callback's or quality review's step (recorded waiting, not yet answered)."""
    from kefu.models.contacts import ContactStepEvent

    rows = session.execute(
        select(ContactStepEvent.subject, ContactStepEvent.key, ContactStepEvent.outcome).where(
            ContactStepEvent.subject.in_(
                select(ContactStepEvent.subject).where(ContactStepEvent.flow_run_id == flow_run_id)
            )
        )
    ).all()
    answered = {(row.subject, row.key) for row in rows if row.outcome != "waiting"}
    return any(row.outcome == "waiting" and (row.subject, row.key) not in answered for row in rows)


def _plan_answer(
    session: Session, staff_id: int, code: str, flow_run_id: str, answer: dict[str, Any]
) -> dict[str, Any]:
    """A key account's service-plan step (``code``: the customer's): the plan's staff checks."""
    from kefu.flows.service_plan import STEPS, check_answer
    from kefu.tasks.onboarding import OnboardingRefused
    from kefu.tasks.service_plans import plan_for_code
    from kefu.tasks.service_plans import waiting_steps as plan_steps

    rows = [r for r in plan_steps(session, code) if r["flow_run_id"] == flow_run_id]
    plan = plan_for_code(session, code)
    if not rows or plan is None:
        raise Refusal(403, NOT_WAITING_ZH)
    checked = {**answer, "actor_staff_id": staff_id}
    try:
        check_answer(session, plan.id, STEPS[str(rows[-1]["step"])], checked)
    except OnboardingRefused as refused:
        raise Refusal(403, str(refused).split(" / ", 1)[0]) from None
    return checked


@dataclass(frozen=True)
class WaitingStep:
    case_no: str
    step: str
    title: str
    since: str
    due: str
    due_at: dt.datetime | None
    overdue: bool
    flow_run_id: str
    team: str = ""  # the owner's name when the case is owned by someone the person supervises (directly or higher up)
    kind: str = ""  # what ``case_no`` numbers when it is not a complaint case (咨询, 定期回访, ...)


def team_of(session: Session, staff_id: int) -> set[int]:
    """The people whose supervisor chain includes ``staff_id`` (not the person themself)."""
    from kefu.models.people import Staff

    above = dict(session.execute(select(Staff.id, Staff.supervisor_id)).tuples().all())
    team = set()
    for person in above:
        seen, boss = {person}, above.get(person)
        while boss is not None and boss not in seen:  # a cycle in the directory ends the walk
            if boss == staff_id:
                team.add(person)
                break
            seen.add(boss)
            boss = above.get(boss)
    team.discard(staff_id)
    return team


def my_waiting_steps(engine: Engine, staff_id: int, now: dt.datetime) -> list[WaitingStep]:
    """The waiting steps the person's roles may answer, and those of cases owned by their team (marked ``team``,
    whatever the roles), the earliest due first (Shanghai time): complaint cases, key-account onboarding and service
    plans, staff assessment, enquiries, feedback, routine callbacks and quality reviews."""
    from kefu.flows.complaint_case import STEPS
    from kefu.models.complaints import Complaint
    from kefu.models.people import Staff

    policy = current_policy()
    views: list[WaitingStep] = []
    with unit_of_work(engine) as session:
        person = session.get(Staff, staff_id)
        if person is None:
            return []
        roles = person.roles
        team = team_of(session, staff_id)
        rows = waiting_steps(session)
        owners = dict(
            session.execute(
                select(Complaint.case_no, Staff.name)
                .join(Staff, Staff.id == Complaint.owner_id)
                .where(Complaint.case_no.in_({str(r["case_no"]) for r in rows}), Complaint.owner_id.in_(team))
            )
            .tuples()
            .all()
        )
        for row in rows:
            step = str(row["step"])
            teams = owners.get(str(row["case_no"]), "")
            if not teams and not roles & set(policy.roles.may_answer(step)):
                continue
            title = STEPS[step].title if step in STEPS else step
            views.append(_view(str(row["case_no"]), title, row, _earliest_due(row), now, team=teams))
        views += _onboarding_views(session, roles, now)
        views += _plan_views(session, staff_id, roles, now)
        views += _assessment_views(session, staff_id, now)
        views += _enquiry_views(session, staff_id, now)
        views += _feedback_views(session, staff_id, now)
        views += _callback_views(session, staff_id, roles, team, now)
        views += _quality_views(session, staff_id, now)
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    return sorted(views, key=lambda v: (v.due_at or far, v.case_no))


def _onboarding_views(session: Session, roles: set[Any], now: dt.datetime) -> list[WaitingStep]:
    """The key-account onboarding steps the person's roles may answer (research, their department's review, the
    senior approval); ``case_no`` is the customer's code."""
    from kefu.flows.key_account_onboarding import STEPS, step_roles
    from kefu.tasks.onboarding import waiting_steps as onboarding_steps

    views = []
    for row in onboarding_steps(session):
        step = STEPS.get(str(row["step"]))
        if step is None or not roles & set(step_roles(step)):
            continue
        views.append(_view(str(row["case_no"]), step.title, row, _earliest_due(row), now, kind="重点客户准入"))
    return views


def _assessment_views(session: Session, staff_id: int, now: dt.datetime) -> list[WaitingStep]:
    """The staff assessment steps the person is the one to answer: their own self-assessment, their team members'
    supervisor assessments; ``case_no`` is ``MONTH/LOGIN`` of the person assessed."""
    from kefu.flows.staff_assessment import STEPS
    from kefu.tasks.assessment import SELF, get_sheet
    from kefu.tasks.assessment import waiting_steps as assessment_steps

    views = []
    for row in assessment_steps(session):
        sheet = get_sheet(session, int(row["sheet_id"]))
        step = STEPS[str(row["step"])]
        answerer = sheet.staff_id if step.name.startswith(SELF) else sheet.supervisor_id
        if answerer != staff_id:
            continue
        title = f"{step.title}：{sheet.staff.name}"
        views.append(_view(str(row["case_no"]), title, row, _earliest_due(row), now, kind="员工考核"))
    return views


def _plan_views(session: Session, staff_id: int, roles: set[Any], now: dt.datetime) -> list[WaitingStep]:
    """The service-plan steps the person may answer: the draft and the agreement of the accounts they are project
    manager of, their department's part, the approval for the approver's role; ``case_no`` is the customer's code."""
    from kefu.flows.service_plan import AGREEMENT, DRAFT, STEPS, step_roles
    from kefu.tasks.service_plans import plan_for_code, project_manager
    from kefu.tasks.service_plans import waiting_steps as plan_steps

    views = []
    for row in plan_steps(session):
        step = STEPS.get(str(row["step"]))
        if step is None:
            continue
        if step in (DRAFT, AGREEMENT):
            plan = plan_for_code(session, str(row["case_no"]))
            manager = project_manager(session, plan.customer_id) if plan is not None else None
            if manager is None or manager.id != staff_id:
                continue
        elif not roles & set(step_roles(step)):
            continue
        views.append(_view(str(row["case_no"]), step.title, row, _earliest_due(row), now, kind="服务方案"))
    return views


def _earliest_due(row: dict[str, Any]) -> dt.datetime | None:
    """The earliest of a waiting step's ``deadlines`` (case, onboarding, plan, assessment rows); a naive one is UTC."""
    dues = sorted(dt.datetime.fromisoformat(v) for v in row["deadlines"].values())
    if not dues:
        return None
    return dues[0] if dues[0].tzinfo is not None else dues[0].replace(tzinfo=dt.UTC)


def _one_due(row: dict[str, Any]) -> dt.datetime | None:
    """The ``due_at`` of a waiting step's row (enquiry, feedback, callback, quality review)."""
    return dt.datetime.fromisoformat(row["due_at"]) if row["due_at"] else None


def _view(
    number: str,
    title: str,
    row: dict[str, Any],
    due_at: dt.datetime | None,
    now: dt.datetime,
    *,
    team: str = "",
    kind: str = "",
) -> WaitingStep:
    """One waiting step as the start page shows it: due and since in Shanghai time, overdue against ``now``."""
    return WaitingStep(
        case_no=number,
        step=str(row["step"]),
        title=title,
        since=local_time(dt.datetime.fromisoformat(row["since"])),
        due=local_time(due_at) if due_at else "—",
        due_at=due_at,
        overdue=due_at is not None and due_at <= now,
        flow_run_id=str(row["flow_run_id"]),
        team=team,
        kind=kind,
    )


def _enquiry_views(session: Session, staff_id: int, now: dt.datetime) -> list[WaitingStep]:
    """The enquiry steps the person may answer (``enquiries.check_answerer``: customer service; the department's
    answer also the departments the policy lists)."""
    from kefu.flows.enquiry import STEPS
    from kefu.tasks.enquiries import EnquiryRefused, check_answerer
    from kefu.tasks.enquiries import waiting_steps as enquiry_steps

    views = []
    for row in enquiry_steps(session):
        try:
            check_answerer(session, current_policy(), str(row["step"]), staff_id)
        except EnquiryRefused:
            continue
        step = STEPS.get(str(row["step"]))
        title = step.title if step else str(row["step"])
        views.append(_view(str(row["enquiry_no"]), title, row, _one_due(row), now, kind="咨询"))
    return views


def _feedback_views(session: Session, staff_id: int, now: dt.datetime) -> list[WaitingStep]:
    """The feedback steps the person may answer (``feedback.check_answerer``: the routed department and the
    supervisors; the follow-up also customer service)."""
    from kefu.flows.feedback import STEPS
    from kefu.tasks.feedback import FeedbackRefused, check_answerer
    from kefu.tasks.feedback import waiting_steps as feedback_steps

    views = []
    for row in feedback_steps(session):
        number = str(row["feedback_no"])
        try:
            check_answerer(session, current_policy(), number, str(row["step"]), staff_id)
        except FeedbackRefused:
            continue
        step = STEPS.get(str(row["step"]))
        title = step.title if step else str(row["step"])
        views.append(_view(number, title, row, _one_due(row), now, kind="意见反馈"))
    return views


def _callback_views(
    session: Session, staff_id: int, roles: set[Any], team: set[int], now: dt.datetime
) -> list[WaitingStep]:
    """The routine callbacks the person owns, those their team owns (marked ``team``), and those without an owner
    for the on-duty role (``complaints.ownership.rota_role``); ``case_no`` is the customer's code."""
    from kefu.flows.routine_callbacks import RESULT
    from kefu.models.people import Staff
    from kefu.tasks.callbacks import waiting_steps as callback_steps

    policy = current_policy()
    views = []
    for row in callback_steps(session, policy):
        owner = row["owner_id"]
        if owner == staff_id or (owner is None and policy.complaints.ownership.rota_role in roles):
            views.append(_view(str(row["code"]), RESULT.title, row, _one_due(row), now, kind="定期回访"))
        elif owner in team:
            name = session.get_one(Staff, owner).name
            views.append(_view(str(row["code"]), RESULT.title, row, _one_due(row), now, team=name, kind="定期回访"))
    return views


def _quality_views(session: Session, staff_id: int, now: dt.datetime) -> list[WaitingStep]:
    """The quality reviews the person may score (``quality.check_reviewer``: the agent's supervisor, never the
    agent); ``case_no`` is the review (``2026-11#12``), the title names the agent."""
    from kefu.flows.quality_check import SCORE
    from kefu.models.contacts import QualityReview
    from kefu.models.people import Staff
    from kefu.tasks.quality import ReviewRefused, check_reviewer
    from kefu.tasks.quality import waiting_steps as quality_steps

    views = []
    for row in quality_steps(session):
        review = session.get_one(QualityReview, row["review_id"])
        try:
            check_reviewer(session, review, staff_id)
        except ReviewRefused:
            continue
        title = f"{SCORE.title}：{session.get_one(Staff, review.agent_id).name}"
        views.append(_view(str(row["review"]), title, row, _one_due(row), now, kind="沟通记录质检"))
    return views
