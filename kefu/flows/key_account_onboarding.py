"""Key-account onboarding (seed 001 §二.1 重点客户识别流程: 调研 → 相关部门评审 → 高层审批 → 纳入), one run per
nomination, named after the customer's code and tagged ``key-account-onboarding``:

market research (the market department) → the departments' reviews **in parallel** (the policy's
``key_accounts.onboarding.reviews``: market, operations, finance, technology, each with its deadline) → the senior
manager's decision, with every department's decision and comments in front of them (a rejection by a department
does not end the onboarding: the senior manager decides) → admitted (the customer becomes a key account, its team is
assigned and each member told by internal mail) or rejected (the nomination closed with the reason).

**The shape of the parallel reviews.** A suspended step cannot live in a subflow (Prefect 3.8.8, DESIGN.md §4), and
one run can wait on one suspend key at a time, so the reviews cannot be four waits inside the onboarding run. Each
department's review is a run of its own: the ``onboarding-review`` deployment, one run per nomination and department
(an idempotency key of the nomination's id and the moment it was made: a replayed onboarding run opens no
second one), not linked as a subflow. Each review run
suspends on its own form (the department's review step), records the decision in Kefu's database (once: the review
row's decision is written only while empty), then hands back: when no review is pending any more it resumes the
onboarding run, which meanwhile waits suspended on an internal step (``await-reviews``, a form with no required
field, not listed among the people's steps). The onboarding run decides nothing from what resumed it: it reads the
reviews from the database, and asks again (next round) while any is pending. So a worker restart loses no review (the
decision is in the database before the run hands back; a review run re-run from the top replays its answer and
records nothing twice), counts none twice (one row per department), and a resume that did not land (the onboarding
run was not suspended yet, Prefect was down) is mended by the deadline duty (``case-deadlines``), which resumes an
onboarding run still waiting on reviews that are all in, and opens the runs of nominations Prefect missed.

**Review deadlines** are rows, not Prefect timeouts (which would fail the run): each review's ``due_at`` from the
policy; the same duty escalates a missed review to the reviewing department's supervisor at its deadline and to a
senior manager one ``escalation.reminder_interval`` later, once each (``kefu.tasks.onboarding.sweep``).

Resumed runs re-run from the top: every step is asked through the step kit (stable keys, answers replayed) and every
side effect below is keyed in the database. The step keys are in flight in open onboardings: never change them.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from pydantic import ConfigDict, Field

from kefu.engine.contract import (
    ONBOARDING_DEPLOYMENT,
    ONBOARDING_FLOW,
    ONBOARDING_RUN_NAME,
    ONBOARDING_RUN_TAGS,
    REVIEW_DEPLOYMENT,
    REVIEW_FLOW,
    REVIEW_RUN_NAME,
    onboarding_idempotency_key,
    review_idempotency_key,
)
from kefu.engine.forms import StepForm
from kefu.engine.steps import HumanSteps, Step, StepRefused, steps_by_name
from kefu.engine.waiting import RETRIES, RETRY_DELAY_SECONDS, add_run_tags, current_flow_run_id, run_client
from kefu.models.accounts import TEAM_ROLE_ZH, TeamRole
from kefu.models.db import unit_of_work
from kefu.models.enums import Role
from kefu.models.policy import current_policy
from kefu.tasks import onboarding
from kefu.worktime import calendar_for, local_time

# How long a review run keeps trying to hand back to an onboarding run that is not suspended yet (technical, not
# policy: the onboarding run suspends within seconds; the deadline duty mends anything later).
HAND_BACK_SECONDS = 120.0
# A nomination whose run is not there after this long is opened by the deadline duty (technical: the nominating
# command or the monthly run opens it at once when Prefect answers).
OPEN_AFTER = dt.timedelta(minutes=1)


def actor() -> Any:
    return Field(title="您的员工编号", description="完成本步骤的人的员工编号。")


# --- The inputs of the human steps (``kefu step submit CODE STEP``, the run's page in the Prefect UI) ---------------


class ResearchInput(StepForm):
    model_config = ConfigDict(title="市场调研")

    actor_staff_id: int = actor()
    findings: str = Field(min_length=1, title="调研结论", description="客户的业务规模、合作潜力、行业地位与需求。")


class ReviewInput(StepForm):
    model_config = ConfigDict(title="部门评审")

    actor_staff_id: int = actor()
    approve: bool = Field(title="同意纳入重点客户", description="关闭：不同意（须在评审意见中说明理由）。")
    comments: str = Field(min_length=1, title="评审意见")


class AwaitReviewsInput(StepForm):
    """Internal: the onboarding run waits here for the departments' reviews (their review runs resume it)."""

    model_config = ConfigDict(title="等待各部门评审")

    note: str = Field(default="", title="说明", description="各部门评审全部提交后自动继续，无需填写。")


class SeniorApprovalInput(StepForm):
    model_config = ConfigDict(title="高层审批")

    actor_staff_id: int = actor()
    admit: bool = Field(title="批准纳入重点客户", description="关闭：不予纳入。")
    reason: str = Field(min_length=1, title="审批意见", description="批准或不予纳入的理由（记入提名记录）。")
    project_manager_staff_id: int | None = Field(default=None, title="项目经理的员工编号", description="批准时必填。")
    service_specialist_staff_id: int | None = Field(
        default=None, title="客服专员的员工编号", description="批准时必填。"
    )
    dispatcher_staff_id: int | None = Field(default=None, title="物流调度员的员工编号", description="批准时必填。")
    after_sales_staff_id: int | None = Field(default=None, title="售后服务人员的员工编号", description="批准时必填。")


# --- The steps ------------------------------------------------------------------------------------------------------


RESEARCH = Step("research", ResearchInput, title="市场调研")
AWAIT_REVIEWS = Step("await_reviews", AwaitReviewsInput, title="等待各部门评审")
SENIOR_APPROVAL = Step("senior_approval", SeniorApprovalInput, title="高层审批")
# A department the policy may list (``OnboardingPolicy``); the policy says which ones review. Titles: the departments'
# names as the policy's ``roles.names`` give them.
DEPARTMENT_NAMES = {"market": "市场部", "operations": "运营部", "finance": "财务部", "technology": "技术部"}
REVIEWS = {
    department: Step(f"review_{department}", ReviewInput, roles=(department,), title=f"{name}评审")
    for department, name in DEPARTMENT_NAMES.items()
}
STEPS = steps_by_name(RESEARCH, AWAIT_REVIEWS, SENIOR_APPROVAL, *REVIEWS.values())
INTERNAL = {AWAIT_REVIEWS.name}


def step_roles(step: Step[Any]) -> list[Role]:
    """Who may answer ``step``: the policy's researcher and approver roles, a review's own department."""
    if step is RESEARCH:
        return [current_policy().key_accounts.onboarding.research_role]
    if step is SENIOR_APPROVAL:
        return [current_policy().key_accounts.onboarding.approver_role]
    return [Role(r) for r in step.roles]


# --- The processes --------------------------------------------------------------------------------------------------


@flow(
    name=ONBOARDING_FLOW,
    flow_run_name=ONBOARDING_RUN_NAME,
    persist_result=True,
    log_prints=False,
    retries=RETRIES,  # a hiccup re-runs it from the top: every step is keyed
    retry_delay_seconds=RETRY_DELAY_SECONDS,
)
def key_account_onboarding(nomination_id: int, code: str) -> str:
    """One candidate's onboarding; returns how it ended (``admitted`` or ``rejected``)."""
    logger = get_run_logger()
    steps = HumanSteps(OnboardingRecord(nomination_id))
    ended = begin(nomination_id)
    if ended is not None:
        return ended  # closed before (a replay after the decision)

    # market research (the market department)
    steps.ask(RESEARCH)

    # the departments' reviews, in parallel: one review run each; wait until the last one is in
    open_reviews(nomination_id, code)
    while pending_reviews(nomination_id):
        steps.ask(AWAIT_REVIEWS)

    # the senior manager decides, every review in front of them (a department's rejection included)
    decision = steps.ask(SENIOR_APPROVAL, check=check_decision)
    if decision.admit:
        admit(nomination_id, decision)
        outcome = onboarding.ADMITTED
        plan_service(code)  # the service plan comes next (seed 001 §二.2): its own run
    else:
        reject(nomination_id, decision)
        outcome = onboarding.REJECTED
    logger.info("onboarding of %s: %s", code, outcome)
    return outcome


@flow(
    name=REVIEW_FLOW,
    flow_run_name=REVIEW_RUN_NAME,
    persist_result=True,
    log_prints=False,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAY_SECONDS,
)
def onboarding_review(nomination_id: int, department: str, code: str) -> str:
    """One department's review of one candidate: its form, its decision recorded once, then the hand-back."""
    steps = HumanSteps(OnboardingRecord(nomination_id, department))
    answer = steps.ask(REVIEWS[department])
    record_review(nomination_id, department, answer)
    hand_back(nomination_id)
    get_run_logger().info("%s review of %s: %s", department, code, "approved" if answer.approve else "rejected")
    return onboarding.APPROVED if answer.approve else onboarding.REJECTED


# --- The business verbs (each one unit of work, keyed: a replay writes nothing) ----------------------------------


def begin(nomination_id: int) -> str | None:
    """Bind the nomination to this run and tag it; the outcome if the nomination is closed already."""
    add_run_tags(ONBOARDING_RUN_TAGS)
    with unit_of_work() as session:
        nomination = onboarding.get_nomination(session, nomination_id)
        if nomination.status != "open":
            return nomination.status
        nomination.flow_run_id = str(current_flow_run_id())
    return None


def open_reviews(nomination_id: int, code: str) -> None:
    """The review rows (deadlines from the policy) and one review run per department (idempotency keys)."""
    policy = current_policy()
    with unit_of_work() as session:
        rows = onboarding.open_reviews(session, nomination_id, policy, calendar_for(policy), onboarding.system_clock())
        departments = [r.department for r in rows if r.flow_run_id is None]
        nominated_at = onboarding.get_nomination(session, nomination_id).at
    if not departments:
        return
    client = run_client()
    deployment = client.read_deployment_by_name(REVIEW_DEPLOYMENT)
    for department in departments:
        run = client.create_flow_run_from_deployment(
            deployment.id,
            parameters={"nomination_id": nomination_id, "department": department, "code": code},
            idempotency_key=review_idempotency_key(nomination_id, department, nominated_at),
        )
        with unit_of_work() as session:
            review = onboarding.review_of(session, nomination_id, department)
            assert review is not None
            review.flow_run_id = str(run.id)


def pending_reviews(nomination_id: int) -> list[str]:
    with unit_of_work() as session:
        return onboarding.pending_departments(session, nomination_id)


def check_decision(answer: SeniorApprovalInput) -> SeniorApprovalInput:
    """Admitting names the whole team (project manager, customer-service specialist, dispatcher, after-sales)."""
    if answer.admit:
        missing = [field for field in onboarding.TEAM_FIELDS if getattr(answer, field) is None]
        if missing:
            raise StepRefused(
                "批准纳入时须指定服务团队：项目经理、客服专员、物流调度员、售后服务人员 / admitting needs the whole "
                f"team: {', '.join(missing)}"
            )
    return answer


def admit(nomination_id: int, decision: SeniorApprovalInput) -> None:
    team: dict[TeamRole, int] = {}
    for field, role in onboarding.TEAM_FIELDS.items():
        staff_id = getattr(decision, field)
        assert staff_id is not None
        team[role] = staff_id
    with unit_of_work() as session:
        onboarding.admit(
            session, nomination_id, team, decided_by=decision.actor_staff_id, reason=decision.reason,
            now=onboarding.system_clock(),
        )  # fmt: skip


def plan_service(code: str) -> None:
    """The admitted account's service plan and its run (``kefu.flows.service_plan``); keyed: a replay opens none."""
    from kefu.flows.service_plan import open_service_plan
    from kefu.tasks.service_plans import PlanRefused

    try:
        open_service_plan(code)
    except PlanRefused as refused:  # the admission stands; the plan is opened by hand (kefu account plan)
        get_run_logger().warning("service plan of %s not opened: %s", code, refused)


def reject(nomination_id: int, decision: SeniorApprovalInput) -> None:
    with unit_of_work() as session:
        onboarding.reject(
            session, nomination_id, decided_by=decision.actor_staff_id, reason=decision.reason,
            now=onboarding.system_clock(),
        )  # fmt: skip


def record_review(nomination_id: int, department: str, answer: ReviewInput) -> None:
    with unit_of_work() as session:
        onboarding.record_review(
            session, nomination_id, department, approve=answer.approve, comments=answer.comments,
            reviewer_id=answer.actor_staff_id, now=onboarding.system_clock(),
        )  # fmt: skip


def hand_back(nomination_id: int) -> None:
    """When no review is pending any more, resume the onboarding run waiting for them. It may not be suspended yet
    (it is between its check and its suspend): try again for a while; the deadline duty mends what is left."""
    with unit_of_work() as session:
        if onboarding.pending_departments(session, nomination_id):
            return  # another department's review is still out: the last one hands back
        run_id = onboarding.get_nomination(session, nomination_id).flow_run_id
    if run_id is not None:
        resume_waiting_for_reviews(run_client(), UUID(run_id), patience=HAND_BACK_SECONDS)


def resume_waiting_for_reviews(client: Any, run_id: UUID, *, patience: float, stem: str = AWAIT_REVIEWS.key) -> bool:
    """Resume ``run_id`` if it waits for the reviews (suspended on ``await-reviews``, or the internal step ``stem`` of
    another process with parallel runs: the service plan's parts); with ``patience`` seconds, wait for it to get there
    while it is still running. True when a resume was accepted."""
    deadline = time.monotonic() + patience
    while True:
        state = client.read_flow_run(run_id).state
        if state is None or state.is_final():
            return False
        if state.is_paused():
            key = state.state_details.pause_key or ""
            if not key.startswith(f"{stem}-"):
                return False  # past the reviews (the senior manager's step): it has read them
            result = client.resume_flow_run(run_id, run_input={})
            if str(result.status.value).upper() == "ACCEPT":
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(1.0)  # another process's run: its state is the only signal


# --- Opening a run (the monthly scoring, ``kefu account nominate``, the duty's mend) -----------------------------


def start_onboarding(nomination_id: int, code: str, client: Any = None) -> UUID:
    """The onboarding run of a nomination (one per nomination: its idempotency key, its id and the moment it was
    made), created from the deployment."""
    from prefect.client.orchestration import get_client

    if client is None:
        with get_client(sync_client=True) as own:
            return start_onboarding(nomination_id, code, own)
    with unit_of_work() as session:
        nominated_at = onboarding.get_nomination(session, nomination_id).at
    deployment = client.read_deployment_by_name(ONBOARDING_DEPLOYMENT)
    run = client.create_flow_run_from_deployment(
        deployment.id,
        parameters={"nomination_id": nomination_id, "code": code},
        idempotency_key=onboarding_idempotency_key(nomination_id, nominated_at),
    )
    return UUID(str(run.id))


def mend_onboardings(now: dt.datetime) -> list[str]:
    """The deadline duty's mend (every minute): resume an onboarding run still suspended on the reviews when they are
    all in (its last review's hand-back did not land), open the run of a nomination Prefect missed. Returns the
    customer codes acted on."""
    from prefect.client.orchestration import get_client

    with unit_of_work() as session:
        waiting = onboarding.waiting_for_reviews(session)
        unopened = onboarding.unopened(session, now - OPEN_AFTER)
    done: list[str] = []
    if not waiting and not unopened:
        return done
    with get_client(sync_client=True) as client:
        for nomination_id, run_id in waiting:
            if resume_waiting_for_reviews(client, UUID(run_id), patience=0):
                done.append(f"nomination {nomination_id}:reviews-in")
        for nomination_id, code in unopened:
            try:
                start_onboarding(nomination_id, code, client)
            except Exception as exc:
                get_run_logger().warning("nomination %s (%s): onboarding run not opened (%s)", nomination_id, code, exc)
                continue
            done.append(f"{code}:onboarding-opened")
    return done


# --- The step kit's side: the onboarding audit trail, the summary ----------------------------------------------------


class OnboardingRecord:
    """The onboarding's side of the step kit (its events, its staff checks, its summary). ``department``: the review
    run's department (its waits name it, for the deadlines shown)."""

    def __init__(self, nomination_id: int, department: str | None = None) -> None:
        self.nomination_id = nomination_id
        self.department = department
        self._outcomes: dict[str, str] | None = None

    def admit(self, step: Step[Any], answer: dict[str, Any]) -> None:
        if step.name in INTERNAL:
            return
        with unit_of_work() as session:
            try:
                check_answer(session, step, answer)
            except onboarding.OnboardingRefused as refused:
                raise StepRefused(str(refused)) from refused

    def outcome(self, step: Step[Any], key: str) -> str | None:
        if self._outcomes is None:
            with unit_of_work() as session:
                self._outcomes = onboarding.step_outcomes(session, self.nomination_id)
        return self._outcomes.get(key)

    def initial(self, step: Step[Any]) -> dict[str, Any]:
        return {}

    def summary(self, step: Step[Any]) -> str:
        with unit_of_work() as session:
            return render_summary(session, self.nomination_id, step)

    def waiting(self, step: Step[Any], key: str, flow_run_id: str) -> None:
        data: dict[str, Any] = {"step": step.name, "flow_run_id": flow_run_id}
        if step.name in INTERNAL:
            data["internal"] = True
        if self.department is not None:
            data["department"] = self.department
        with unit_of_work() as session:
            onboarding.record_event(
                session, self.nomination_id, "waiting", key, "system", onboarding.system_clock(), **data
            )

    def completed(self, step: Step[Any], key: str, answer: dict[str, Any]) -> None:
        who = answer.get("actor_staff_id")
        with unit_of_work() as session:
            onboarding.record_event(
                session, self.nomination_id, "step_completed", key, f"staff:{who}" if who else "system",
                onboarding.system_clock(), step=step.name, answer=answer,
            )  # fmt: skip
        if self._outcomes is not None:
            self._outcomes[key] = "completed"

    def refused(self, step: Step[Any], key: str, reason: str, answer: dict[str, Any]) -> None:
        with unit_of_work() as session:
            onboarding.record_event(
                session, self.nomination_id, "step_refused", key, "system", onboarding.system_clock(), step=step.name,
                reason=reason, answer=answer,
            )  # fmt: skip
        if self._outcomes is not None:
            self._outcomes[key] = "refused"


def check_answer(session: Any, step: Step[Any], answer: dict[str, Any]) -> None:
    """The staff checks of an onboarding step (the flow's and ``kefu step submit``'s): the person answering holds a
    role that may answer it, every staff id named is active staff. Raises ``OnboardingRefused``."""
    onboarding.check_staff(session, answer, step_roles(step), current_policy().roles.names)


def render_summary(session: Any, nomination_id: int, step: Step[Any]) -> str:
    """What the person answering sees above the form (zh-CN; the customer's code and name, no personal data)."""
    policy = current_policy()
    names = policy.roles.names
    nomination = onboarding.get_nomination(session, nomination_id)
    customer = nomination.customer
    lines = [
        f"## {step.title}：{customer.code or customer.id} {customer.name}",
        "",
        f"- 行业：{customer.industry or '—'}",
        f"- 提名：{'月度评分' if nomination.source.value == 'scoring' else '市场部推荐'}"
        + (f"，得分 {nomination.score}" if nomination.score is not None else ""),
    ]
    if nomination.explanation:
        lines.append(f"- 评分说明：{nomination.explanation}")
    if nomination.reason:
        lines.append(f"- 推荐理由：{nomination.reason}")
    for event in onboarding.events(session, nomination_id):
        if event.action == "step_completed" and event.data.get("step") == RESEARCH.name:
            lines.append(f"- 市场调研结论：{event.data['answer'].get('findings', '')}")
    rows = onboarding.reviews(session, nomination_id)
    if rows:
        lines += ["", "| 部门 | 评审结果 | 评审意见 | 期限（北京时间） |", "|---|---|---|---|"]
        for row in rows:
            decided = onboarding.DECISION_ZH.get(row.decision or "", "待评审")
            comments = (row.comments or "—").replace("|", "｜").replace("\n", " ")
            lines.append(
                f"| {names.get(Role(row.department), row.department)} | {decided} | {comments} | "
                f"{local_time(row.due_at, policy.timezone)} |"
            )
        if any(r.decision == onboarding.REJECTED for r in rows):
            lines += ["", "**有部门不同意纳入**（理由见上表），请高层管理人员审批决定。"]
    if step is SENIOR_APPROVAL:
        lines += team_candidate_lines(session)
    return "\n".join(lines)


def team_candidate_lines(session: Any) -> list[str]:
    """The people who may fill each place of the team, with the staff number the form asks for (a senior manager
    in the Prefect UI has no staff list at hand)."""
    lines = ["", "**服务团队人选**（批准时在下方填写员工编号）：", "", "| 团队角色 | 在职人员（员工编号） |"]
    lines.append("|---|---|")
    for place, people in onboarding.team_candidates(session).items():
        listed = "、".join(f"{p.name}（{p.login or '—'}，编号 {p.id}）" for p in people)
        listed = listed or "—（员工目录中暂无此角色的在职人员）"
        lines.append(f"| {TEAM_ROLE_ZH[place]} | {listed} |")
    return lines
