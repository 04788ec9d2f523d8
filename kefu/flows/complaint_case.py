"""The complaint case (seed 003 §3): register → classify → (major: task force) → first contact / supervisor
report → investigate → propose → customer approval (reject → propose again) → resolve → callback
(unsatisfied → reopen to investigate) → close.

Each human step is asked through the step kit (``kefu.engine.steps``): the run suspends with a typed form
and a markdown summary of the case; the operator completes it from the run's page in the Prefect UI or
with ``kefu step submit``. A resumed run re-runs from the top: every ask has a stable key (step and round),
so earlier answers are replayed, and every side effect in ``kefu.tasks.casework`` is keyed in the database,
so nothing happens twice. Deadlines are not Prefect timeouts (they would fail the run): the
``case-deadlines`` sweeper escalates from the DB. The step keys below are in flight in open cases: never
change them (see ``kefu.engine.steps``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger
from pydantic import ConfigDict, Field, field_validator

from kefu.engine.contract import CASE_RUN_NAME, CASE_RUN_TAGS, COMPLAINT_CASE_FLOW
from kefu.engine.events import case_work
from kefu.engine.forms import Choice, StepForm
from kefu.engine.steps import HumanSteps, Step, StepRefused, steps_by_name
from kefu.engine.waiting import RETRIES, RETRY_DELAY_SECONDS, add_run_tags
from kefu.models.enums import ComplaintStatus, MilestoneId, Severity
from kefu.models.policy import Policy, current_policy
from kefu.tasks import case_summary, casework, customer_answers, customer_messages
from kefu.worktime import WorkCalendar

# --- The inputs of the human steps (what the UI form and ``kefu step submit`` accept) ---------------
# Field names are the JSON ``kefu step submit`` takes (README); titles and descriptions are what the form in
# the Prefect UI shows (zh-CN, the policy's words; see ``kefu.engine.forms`` for what that UI can show).


def severity_words() -> dict[Severity, str]:
    """The policy's names of the severities (一般投诉 / 重要投诉 / 重大投诉): the choices of the classify form."""
    return {severity: rule.name for severity, rule in current_policy().complaints.severities.items()}


def severity_criteria() -> str:
    """What makes a complaint each severity, in the policy's words (under the classify form's choice; the UI
    shows a field's description as one paragraph)."""
    rules = current_policy().complaints.severities.values()
    criteria = "；".join(f"**{rule.name}**：{rule.criteria}" for rule in rules if rule.criteria)
    explained = "预先选中的是规则建议的等级（见上方摘要），直接提交即确认；改定须填写理由（记入审计记录）。"
    return explained + (f"{criteria}。" if criteria else "")


def actor() -> Any:
    """The staff id field every step has (who answers it): the operators' entrance hides it from the form and sets it
    to the signed-in person (``kefu.desk.proxy``); ``kefu step submit --as`` sets it from the command line."""
    return Field(title="您的员工编号", description="完成本步骤的人的员工编号。")


class ClassifyInput(StepForm):
    """Confirm the proposed severity (leave it empty) or override it with a reason."""

    model_config = ConfigDict(title="投诉定级")

    actor_staff_id: int = Field(
        title="您的员工编号", description="定级人的员工编号；首位受理人即为本案负责人（首问责任制）。"
    )
    severity: Annotated[Severity | None, Choice(severity_words, severity_criteria)] = Field(
        default=None, title="投诉等级"
    )
    reason: str = Field(default="", title="改定理由", description="改定规则建议的等级时必填。")


class TaskForceInput(StepForm):
    model_config = ConfigDict(title="成立专项处理小组")

    actor_staff_id: int = actor()
    leader_staff_id: int = Field(title="组长的员工编号", description="专项处理小组由高层管理人员担任组长。")
    member_staff_ids: list[int] = Field(default_factory=list, title="组员的员工编号", description="可添加多位。")


class ContactInput(StepForm):
    model_config = ConfigDict(title="与客户联系")

    actor_staff_id: int = actor()
    summary: str = Field(min_length=1, title="联系内容", description="向客户说明了什么（致歉、承诺等）。")


class ReportInput(StepForm):
    model_config = ConfigDict(title="向上级主管报告")

    actor_staff_id: int = actor()
    summary: str = Field(min_length=1, title="报告内容", description="向上级主管报告的情况与拟定的调查安排。")


def cause_words() -> dict[str, str]:
    """The policy's causes (原因分类): the choices of the investigation form, each its own code."""
    return {cause: cause for cause in current_policy().complaints.causes}


def cause_help() -> str:
    return (
        "统计报表按原因分类总结投诉产生的原因和规律；本轮尚不能确定的可不选，"
        "以最后一轮选定的为准（均未选定的计入「未分类」）。"
    )


class InvestigateInput(StepForm):
    model_config = ConfigDict(title="调查分析")

    actor_staff_id: int = actor()
    departments: list[str] = Field(min_length=1, title="参与调查的部门", description="例如：运营部、技术部。")
    findings: str = Field(min_length=1, title="调查结果")
    cause: Annotated[str | None, Choice(cause_words, cause_help)] = Field(default=None, title="原因分类")
    done: bool = Field(default=True, title="调查已完成", description="关闭：本轮之后还要再调查一轮。")


class ProposeInput(StepForm):
    model_config = ConfigDict(title="提出解决方案")

    actor_staff_id: int = actor()
    solution: str = Field(min_length=1, title="解决方案")
    promised_completion_at: dt.datetime | None = Field(
        default=None,
        title="承诺完成时间",
        description="一般投诉：方案中向客户承诺的完成时间（北京时间），即本案「在承诺的时间内完成处理」的期限。",
    )

    @field_validator("promised_completion_at")
    @classmethod
    def _local_when_naive(cls, value: dt.datetime | None) -> dt.datetime | None:
        """A time written without an offset is the policy's (Shanghai) time, as people write it."""
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=ZoneInfo(current_policy().timezone))


class ApprovalInput(StepForm):
    """The customer's answer to the proposal: recorded by staff (given by phone), or the customer's own through the
    link in the proposal message (``customer_link``, filled by the intake's answer page, never by staff)."""

    model_config = ConfigDict(title="客户确认方案")

    actor_staff_id: int | None = Field(
        default=None,
        title="您的员工编号",
        description="记录客户答复（如电话答复）的员工编号。客户已通过确认链接答复时，本步骤会自动完成。",
    )
    accepted: bool = Field(title="客户接受该方案", description="关闭：客户不接受，重新提出方案。")
    comment: str = Field(default="", title="客户意见")
    customer_link: int | None = Field(
        default=None,
        title="客户确认链接编号",
        description="由客户确认页面自动填写；员工记录客户答复时请留空。",
    )


class ResolveInput(StepForm):
    model_config = ConfigDict(title="完成处理")

    actor_staff_id: int = actor()
    summary: str = Field(min_length=1, title="处理结果")


class CallbackInput(StepForm):
    model_config = ConfigDict(title="满意度回访")

    actor_staff_id: int = actor()
    satisfaction: int = Field(
        ge=1, le=5, title="客户满意度（1–5）", description="1 很不满意，5 很满意；低于上方摘要所写的分数将重新处理。"
    )
    comment: str = Field(default="", title="客户意见")


# --- The human steps: form, milestones met, status reached (escalation: the sweeper climbs the policy ladder
# on the milestones listed here) ----------------------------------------------------------------------------

CLASSIFY = Step("classify", ClassifyInput)
FORM_TASK_FORCE = Step("task_force", TaskForceInput, (MilestoneId.TASK_FORCE,))
CONTACT = Step("first_contact", ContactInput, (MilestoneId.FIRST_CONTACT,))
REPORT = Step("supervisor_report", ReportInput, (MilestoneId.SUPERVISOR_REPORT,))
INVESTIGATE = Step("investigate", InvestigateInput, (), ComplaintStatus.INVESTIGATING)
PROPOSE = Step(
    "propose",
    ProposeInput,
    (MilestoneId.SOLUTION, MilestoneId.PROGRESS_UPDATE, MilestoneId.PRELIMINARY_PLAN),
    ComplaintStatus.AWAITING_APPROVAL,
)
APPROVE = Step("approve", ApprovalInput, (), ComplaintStatus.RESOLVING)
RESOLVE = Step("resolve", ResolveInput, (MilestoneId.RESOLUTION,), ComplaintStatus.RESOLVED)
CALLBACK = Step("callback", CallbackInput, (MilestoneId.CALLBACK,))
STEPS = steps_by_name(CLASSIFY, FORM_TASK_FORCE, CONTACT, REPORT, INVESTIGATE, PROPOSE, APPROVE, RESOLVE, CALLBACK)


# --- The process ---------------------------------------------------------------------------------------


@flow(
    name=COMPLAINT_CASE_FLOW,
    flow_run_name=CASE_RUN_NAME,
    persist_result=True,
    log_prints=False,
    retries=RETRIES,  # an API or database hiccup re-runs the case from the top: every step is keyed
    retry_delay_seconds=RETRY_DELAY_SECONDS,
)
def complaint_case(case_no: str) -> str:
    logger = get_run_logger()
    policy = current_policy()
    calendar = WorkCalendar(policy)
    steps = HumanSteps(CaseRecord(case_no))

    # register (idempotent: owner, milestones, urgent notice to the supervisor)
    register(case_no, policy, calendar)

    # classify: rules propose, a person confirms or overrides (with a reason); milestones follow
    severity = steps.ask(CLASSIFY, check=lambda answer: classify(case_no, answer, policy, calendar))
    tag_run(case_no)

    # major: form the task force; important: the supervisor report; then the first contact (every severity: a
    # higher severity never makes the promise to the customer later — ``complaints.never_later``)
    if severity is Severity.MAJOR:
        task_force = steps.ask(FORM_TASK_FORCE)
        apologise_for_major(case_no, task_force.leader_staff_id)  # the customer: apology, commitment, task force
    if severity is Severity.IMPORTANT:
        steps.ask(REPORT)
    steps.ask(CONTACT)

    reopened = proposals = 0
    while True:
        # investigate: several departments, as many rounds as it takes
        while not steps.ask(INVESTIGATE, check=lambda answer: name_cause(case_no, answer)).done:
            continue

        # propose → the customer's approval (through the link in the proposal, or given by phone and recorded by
        # staff); a rejection goes back to proposal
        while True:
            proposed = steps.ask(PROPOSE)
            if severity is Severity.GENERAL and proposed.promised_completion_at is not None:
                promise_resolution(case_no, policy, calendar, proposed.promised_completion_at)
            offer_solution(case_no, proposals, proposed, policy, calendar)
            proposals += 1
            if steps.ask(APPROVE).accepted:
                break

        # resolve (starts the callback clock), then the satisfaction callback; an unsatisfied customer reopens
        resolved = steps.ask(RESOLVE)
        mark_resolved(case_no, policy, calendar, reopened)
        notify_resolution(case_no, reopened, resolved.summary)  # what was done, when we call back
        if steps.ask(CALLBACK).satisfaction >= policy.complaints.callback.reopen_below:
            break
        reopened += 1
        reopen(case_no, reopened)

    close(case_no)
    notify_closure(case_no)
    logger.info("case %s closed", case_no)
    return case_no


# --- The business verbs (each one unit of work; every write keyed, so a replay writes nothing) -----------


def register(case_no: str, policy: Policy, calendar: WorkCalendar) -> None:
    with case_work() as session:
        casework.register_case(session, case_no, policy, calendar, owner_id=None, now=casework.system_clock())


def classify(case_no: str, answer: ClassifyInput, policy: Policy, calendar: WorkCalendar) -> Severity:
    """Confirm or override the proposed severity; an answer the policy refuses (an override without a reason)
    raises ``StepRefused``, so the kit records it and asks again: the operator never gets a failed case."""
    try:
        with case_work() as session:
            complaint = casework.get_case(session, case_no)
            if complaint.owner_id is None:
                complaint.owner_id = answer.actor_staff_id  # 首问责任制: the first receiver owns the case
            casework.classify_case(
                session,
                case_no,
                policy,
                calendar,
                severity=answer.severity,
                actor=f"staff:{answer.actor_staff_id}",
                reason=answer.reason,
                now=casework.system_clock(),
            )
            return complaint.severity
    except casework.StepRejected as refused:
        raise StepRefused(str(refused)) from refused


def name_cause(case_no: str, answer: InvestigateInput) -> InvestigateInput:
    """The cause the investigation names (原因分类) is the complaint's, for the statistics report; a round that names
    none leaves the one named before."""
    if answer.cause is not None:
        with case_work() as session:
            casework.get_case(session, case_no).category = answer.cause
    return answer


def tag_run(case_no: str) -> None:
    """Severity and account tags on the run, so operators can filter case runs in the UI."""
    with case_work() as session:
        complaint = casework.get_case(session, case_no)
        tags = [*CASE_RUN_TAGS, f"severity:{complaint.severity.value}"]
        tags.append("key-account" if casework.is_key_account(complaint) else "general-account")
    add_run_tags(tags)


def promise_resolution(case_no: str, policy: Policy, calendar: WorkCalendar, promised_at: dt.datetime) -> None:
    with case_work() as session:
        casework.promise_resolution(session, case_no, policy, calendar, promised_at)


def offer_solution(case_no: str, number: int, proposed: ProposeInput, policy: Policy, calendar: WorkCalendar) -> None:
    """The proposal to the customer, with their single-use answer link (once per proposal)."""
    with case_work() as session:
        customer_answers.offer_solution(
            session,
            case_no,
            number,
            solution=proposed.solution,
            promised_at=proposed.promised_completion_at,
            policy=policy,
            calendar=calendar,
            now=casework.system_clock(),
        )


def apologise_for_major(case_no: str, leader_id: int) -> None:
    with case_work() as session:
        customer_messages.apologise_for_major(session, case_no, leader_id, casework.system_clock())


def notify_resolution(case_no: str, round_no: int, summary: str) -> None:
    with case_work() as session:
        customer_messages.notify_resolution(session, case_no, round_no, summary, casework.system_clock())


def notify_closure(case_no: str) -> None:
    with case_work() as session:
        customer_messages.notify_closure(session, case_no, casework.system_clock())


def mark_resolved(case_no: str, policy: Policy, calendar: WorkCalendar, round_no: int) -> None:
    with case_work() as session:
        casework.mark_resolved(session, case_no, policy, calendar, round_no)


def reopen(case_no: str, reopen_no: int) -> None:
    with case_work() as session:
        casework.reopen_case(session, case_no, reopen_no, casework.system_clock())


def close(case_no: str) -> None:
    with case_work() as session:
        casework.close_case(session, case_no, casework.system_clock())


class CaseRecord:
    """The complaint case's side of the step kit: its waiting, completion and refusal events, its summary."""

    def __init__(self, case_no: str) -> None:
        self.case_no = case_no
        self._outcomes: dict[str, str] | None = None  # key → "completed" | "refused", read once per execution

    def admit(self, step: Step[Any], answer: dict[str, Any]) -> None:
        """Every staff id an answer names must be known and active (the task force's leader a senior manager), and
        the person answering must hold a role the policy lets answer this step."""
        with case_work() as session:
            try:
                if step is APPROVE:  # the customer's own answer (link), or staff recording it
                    complaint = casework.get_case(session, self.case_no)
                    customer_answers.check_customer_answer(session, complaint, answer)
                casework.check_answer_staff(session, answer, step.name, current_policy())
            except casework.StepRejected as refused:
                raise StepRefused(str(refused)) from refused

    def outcome(self, step: Step[Any], key: str) -> str | None:
        if self._outcomes is None:
            with case_work() as session:
                self._outcomes = casework.step_outcomes(session, self.case_no, STEPS)
        return self._outcomes.get(key)

    def initial(self, step: Step[Any]) -> dict[str, Any]:
        """The classify form starts at the rules' proposal (in the policy's words): confirming is submitting it."""
        if step is not CLASSIFY:
            return {}
        with case_work() as session:
            proposed, _ = casework.propose_severity(current_policy(), casework.get_case(session, self.case_no))
        return {"severity": severity_words()[proposed]}

    def summary(self, step: Step[Any]) -> str:
        """What the person answering needs on the run page (zh-CN; personal data masked: Prefect shows it)."""
        with case_work() as session:
            return case_summary.render_step_summary(
                session,
                current_policy(),
                casework.get_case(session, self.case_no),
                step=step.name,
                title=step.title,
                meets=step.meets,
                now=casework.system_clock(),
            )

    def waiting(self, step: Step[Any], key: str, flow_run_id: str) -> None:
        with case_work() as session:
            complaint = casework.get_case(session, self.case_no)
            casework.record_event(
                session,
                complaint,
                "waiting",
                key,
                "system",
                casework.system_clock(),
                step=step.name,
                flow_run_id=flow_run_id,
            )

    def completed(self, step: Step[Any], key: str, answer: dict[str, Any]) -> None:
        actor = f"staff:{answer.get('actor_staff_id')}"
        by_link = step is APPROVE and answer.get("customer_link") is not None
        if by_link:
            actor = "customer:link"
        with case_work() as session:
            if step is APPROVE:  # who decided, and how (the step's own event keeps the answer exactly as given:
                # ``kefu recover`` hands it back to a new run, whose form forbids other fields)
                casework.record_event(
                    session,
                    casework.get_case(session, self.case_no),
                    "approval_decided",
                    key,
                    actor,
                    casework.system_clock(),
                    decided_by="customer" if by_link else "staff",
                    via="link" if by_link else "phone",
                    accepted=answer.get("accepted"),
                )
            casework.complete_step(
                session,
                self.case_no,
                step.name,
                key,
                actor,
                casework.system_clock(),
                meets=tuple(MilestoneId(m) for m in step.meets),
                status=None if step.status is None else ComplaintStatus(step.status),
                data=answer,
            )
        if self._outcomes is not None:
            self._outcomes[key] = "completed"

    def refused(self, step: Step[Any], key: str, reason: str, answer: dict[str, Any]) -> None:
        with case_work() as session:
            casework.refuse_step(session, self.case_no, step.name, key, reason, answer)
        if self._outcomes is not None:
            self._outcomes[key] = "refused"
