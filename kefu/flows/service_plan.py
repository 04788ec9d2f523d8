"""A key account's service plan (seed 001 §二.2 服务方案制定: 了解需求、制定初步方案 → 市场部、运营部、技术部共同完善 →
高层审批 → 签订服务协议), one run per plan, named after the customer's code and tagged ``key-account-service-plan``:

the project manager records the customer's needs and a draft plan → the departments of the policy's
``key_accounts.service_plan.parts`` work it out **in parallel**, each recording its part by its deadline → the senior
manager approves, or sends the plan back with reasons to the project manager, who revises it and it comes before
them again → the project manager records the signed service agreement (signing date, term, document reference, both
sides' obligations; bad dates are refused and the step waits again).

It is opened when the onboarding admits a key account, or by hand (``kefu account plan CODE --as LOGIN``).

The parallel parts have the onboarding reviews' shape (``kefu.flows.key_account_onboarding``, whose docstring
explains it): one ``service-plan-part`` run per plan and department (an idempotency key), not a subflow, each
suspended on its own form; the part is recorded in the database once, then the last one in resumes the plan run,
which waits on an internal step meanwhile and reads the parts from the database. Missed parts escalate by the
deadline duty (``case-deadlines``) as missed reviews do; the same duty mends a hand-back that did not land, opens a
plan whose run Prefect missed, and reminds the project manager of an agreement's renewal once,
``renewal_lead_days`` before its end date. The step keys are in flight in open plans: never change them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from pydantic import ConfigDict, Field

from kefu.engine.contract import made_at
from kefu.engine.forms import StepForm
from kefu.engine.steps import HumanSteps, Step, StepRefused, steps_by_name
from kefu.engine.waiting import RETRIES, RETRY_DELAY_SECONDS, add_run_tags, current_flow_run_id, run_client
from kefu.flows.key_account_onboarding import DEPARTMENT_NAMES, HAND_BACK_SECONDS, OPEN_AFTER, actor
from kefu.flows.key_account_onboarding import resume_waiting_for_reviews as resume_waiting
from kefu.models.db import unit_of_work
from kefu.models.enums import Role
from kefu.models.policy import current_policy
from kefu.tasks import service_plans as plans
from kefu.tasks.onboarding import OnboardingRefused, check_staff
from kefu.worktime import calendar_for, local_time

PLAN_FLOW = "key-account-service-plan"
PLAN_DEPLOYMENT = f"{PLAN_FLOW}/{PLAN_FLOW}"
PLAN_TAGS = ("kefu", "key-account", PLAN_FLOW)
PART_FLOW = "service-plan-part"
PART_DEPLOYMENT = f"{PART_FLOW}/{PART_FLOW}"


def plan_idempotency_key(plan_id: int, planned_at: dt.datetime) -> str:
    """One run per plan; ``planned_at``: the plan's ``at`` (ids restart with a new database: ``made_at``)."""
    return f"service-plan:{plan_id}:{made_at(planned_at)}"


def part_idempotency_key(plan_id: int, department: str, planned_at: dt.datetime) -> str:
    """One part run per plan and department, however often the plan run replays."""
    return f"service-plan-part:{plan_id}:{department}:{made_at(planned_at)}"


# --- The inputs of the human steps ---------------------------------------------------------------------------------


class DraftInput(StepForm):
    model_config = ConfigDict(title="客户需求与初步方案")

    actor_staff_id: int = actor()
    needs: str = Field(min_length=1, title="客户需求", description="与客户沟通了解到的需求。")
    draft: str = Field(min_length=1, title="初步服务方案")


class PartInput(StepForm):
    model_config = ConfigDict(title="完善服务方案")

    actor_staff_id: int = actor()
    part: str = Field(min_length=1, title="本部门的方案内容与意见")


class AwaitPartsInput(StepForm):
    """Internal: the plan run waits here for the departments' parts (their runs resume it)."""

    model_config = ConfigDict(title="等待各部门完善方案")

    note: str = Field(default="", title="说明", description="各部门提交后自动继续，无需填写。")


class PlanApprovalInput(StepForm):
    model_config = ConfigDict(title="服务方案高层审批")

    actor_staff_id: int = actor()
    approve: bool = Field(title="批准服务方案", description="关闭：退回项目经理修改（须说明理由）。")
    reason: str = Field(min_length=1, title="审批意见", description="批准意见或退回修改的理由。")


class AgreementInput(StepForm):
    model_config = ConfigDict(title="签订服务协议")

    actor_staff_id: int = actor()
    signed_on: dt.date = Field(title="签订日期")
    starts_on: dt.date = Field(title="协议生效日")
    ends_on: dt.date = Field(title="协议到期日")
    document_ref: str = Field(min_length=1, max_length=100, title="协议编号", description="协议文本的编号或存档位置。")
    company_obligations: str = Field(min_length=1, title="我方义务")
    customer_obligations: str = Field(min_length=1, title="客户义务")


DRAFT = Step("plan_draft", DraftInput, title="客户需求与初步方案")
AWAIT_PARTS = Step("await_plan_parts", AwaitPartsInput, title="等待各部门完善方案")
APPROVAL = Step("plan_approval", PlanApprovalInput, title="服务方案高层审批")
AGREEMENT = Step("agreement", AgreementInput, title="签订服务协议")
PARTS = {
    department: Step(f"plan_part_{department}", PartInput, roles=(department,), title=f"{name}完善服务方案")
    for department, name in DEPARTMENT_NAMES.items()
}
STEPS = steps_by_name(DRAFT, AWAIT_PARTS, APPROVAL, AGREEMENT, *PARTS.values())
INTERNAL = {AWAIT_PARTS.name}


# --- The processes --------------------------------------------------------------------------------------------------


@flow(
    name=PLAN_FLOW,
    flow_run_name="{code}",
    persist_result=True,
    log_prints=False,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAY_SECONDS,
)
def service_plan(plan_id: int, code: str) -> str:
    """One key account's service plan; returns ``signed`` when the agreement is recorded."""
    steps = HumanSteps(PlanRecord(plan_id))
    if begin(plan_id) == plans.SIGNED:
        return plans.SIGNED  # a replay after the signing

    # the project manager: the customer's needs and a draft
    record_draft(plan_id, steps.ask(DRAFT))

    # the departments work it out, in parallel: one run each; wait until the last one is in
    open_parts(plan_id, code)
    while pending_parts(plan_id):
        steps.ask(AWAIT_PARTS)

    # the senior manager approves, or sends it back to the project manager with the reasons
    sent_back = 0
    while not (decision := steps.ask(APPROVAL)).approve:
        sent_back += 1
        send_back(plan_id, sent_back, decision)
        record_draft(plan_id, steps.ask(DRAFT))
    approve(plan_id, decision)

    # the signed service agreement (bad dates refused: the step waits again)
    sign(plan_id, steps.ask(AGREEMENT, check=check_agreement))
    get_run_logger().info("service plan of %s: agreement signed", code)
    return plans.SIGNED


@flow(
    name=PART_FLOW,
    flow_run_name="{code} {department}",
    persist_result=True,
    log_prints=False,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAY_SECONDS,
)
def service_plan_part(plan_id: int, department: str, code: str) -> str:
    """One department's part of one plan: its form, the part recorded once, then the hand-back."""
    steps = HumanSteps(PlanRecord(plan_id, department))
    answer = steps.ask(PARTS[department])
    with unit_of_work() as session:
        plans.record_part(
            session, plan_id, department, part=answer.part, author_id=answer.actor_staff_id, now=plans.system_clock()
        )
    hand_back(plan_id)
    return "recorded"


# --- The business verbs (each one unit of work, keyed: a replay writes nothing) ------------------------------------


def begin(plan_id: int) -> str:
    add_run_tags(PLAN_TAGS)
    with unit_of_work() as session:
        plan = plans.get_plan(session, plan_id)
        if plan.status != plans.SIGNED:
            plan.flow_run_id = str(current_flow_run_id())
        return plan.status


def record_draft(plan_id: int, answer: DraftInput) -> None:
    with unit_of_work() as session:
        plans.record_draft(session, plan_id, needs=answer.needs, draft=answer.draft)


def open_parts(plan_id: int, code: str) -> None:
    """The part rows (deadlines from the policy) and one part run per department (idempotency keys)."""
    policy = current_policy()
    with unit_of_work() as session:
        rows = plans.open_parts(session, plan_id, policy, calendar_for(policy), plans.system_clock())
        departments = [r.department for r in rows if r.flow_run_id is None]
        planned_at = plans.get_plan(session, plan_id).at
    if not departments:
        return
    client = run_client()
    deployment = client.read_deployment_by_name(PART_DEPLOYMENT)
    for department in departments:
        run = client.create_flow_run_from_deployment(
            deployment.id,
            parameters={"plan_id": plan_id, "department": department, "code": code},
            idempotency_key=part_idempotency_key(plan_id, department, planned_at),
        )
        with unit_of_work() as session:
            part = plans.part_of(session, plan_id, department)
            assert part is not None
            part.flow_run_id = str(run.id)


def pending_parts(plan_id: int) -> list[str]:
    with unit_of_work() as session:
        return plans.pending_departments(session, plan_id)


def send_back(plan_id: int, round_no: int, decision: PlanApprovalInput) -> None:
    with unit_of_work() as session:
        plans.send_back(
            session, plan_id, round_no, by=decision.actor_staff_id, reason=decision.reason, now=plans.system_clock()
        )


def approve(plan_id: int, decision: PlanApprovalInput) -> None:
    with unit_of_work() as session:
        plans.approve(session, plan_id, by=decision.actor_staff_id, reason=decision.reason, now=plans.system_clock())


def check_agreement(answer: AgreementInput) -> AgreementInput:
    today = plans.system_clock().astimezone(calendar_for(current_policy()).tz).date()
    try:
        plans.check_agreement_dates(answer.signed_on, answer.starts_on, answer.ends_on, today)
    except plans.PlanRefused as refused:
        raise StepRefused(str(refused)) from refused
    return answer


def sign(plan_id: int, answer: AgreementInput) -> None:
    with unit_of_work() as session:
        plans.sign(
            session, plan_id, signed_on=answer.signed_on, starts_on=answer.starts_on, ends_on=answer.ends_on,
            document_ref=answer.document_ref, company_obligations=answer.company_obligations,
            customer_obligations=answer.customer_obligations, by=answer.actor_staff_id, now=plans.system_clock(),
        )  # fmt: skip


def hand_back(plan_id: int) -> None:
    """When no part is pending any more, resume the plan run waiting for them (the onboarding's hand-back)."""
    with unit_of_work() as session:
        if plans.pending_departments(session, plan_id):
            return
        run_id = plans.get_plan(session, plan_id).flow_run_id
    if run_id is not None:
        resume_waiting(run_client(), UUID(run_id), patience=HAND_BACK_SECONDS, stem=AWAIT_PARTS.key)


# --- Opening a run (the onboarding's admission, ``kefu account plan``, the duty's mend) ---------------------------


def start_plan_run(plan_id: int, code: str, client: Any = None) -> UUID:
    from prefect.client.orchestration import get_client

    if client is None:
        with get_client(sync_client=True) as own:
            return start_plan_run(plan_id, code, own)
    with unit_of_work() as session:
        planned_at = plans.get_plan(session, plan_id).at
    deployment = client.read_deployment_by_name(PLAN_DEPLOYMENT)
    run = client.create_flow_run_from_deployment(
        deployment.id,
        parameters={"plan_id": plan_id, "code": code},
        idempotency_key=plan_idempotency_key(plan_id, planned_at),
    )
    return UUID(str(run.id))


def open_service_plan(code: str) -> tuple[int, UUID | None]:
    """The key account's open plan (a new one when it has none) and its run; the run is ``None`` when Prefect did not
    answer (the deadline duty opens it later). Raises ``PlanRefused`` for a customer that cannot have a plan."""
    from kefu.models.registry import get_customer

    with unit_of_work() as session:
        plan, _ = plans.open_plan(session, get_customer(session, code), plans.system_clock())
        plan_id = plan.id
    try:
        return plan_id, start_plan_run(plan_id, code)
    except Exception as exc:  # Prefect down: the plan is recorded; the duty opens its run
        get_logger().warning("service plan %s (%s): run not opened now (%r)", plan_id, code, exc)
        return plan_id, None


def get_logger() -> Any:
    import logging

    try:
        return get_run_logger()
    except Exception:  # outside a run (the command line)
        return logging.getLogger("kefu.service_plans")


def plan_duties(now: dt.datetime) -> list[str]:
    """The deadline duty's part: missed parts escalated, agreements' renewals reminded (once each), a plan run still
    waiting on parts that are all in resumed, a plan whose run was never opened opened."""
    from prefect.client.orchestration import get_client

    policy = current_policy()
    calendar = calendar_for(policy)
    with unit_of_work() as session:
        fired = plans.sweep(session, policy, calendar, now)
        fired += plans.remind_renewals(session, policy, now.astimezone(calendar.tz).date(), now)
    with unit_of_work() as session:
        waiting = plans.waiting_for_parts(session)
        unopened = plans.unopened(session, now - OPEN_AFTER)
    if not waiting and not unopened:
        return fired
    with get_client(sync_client=True) as client:
        for plan_id, run_id in waiting:
            if resume_waiting(client, UUID(run_id), patience=0, stem=AWAIT_PARTS.key):
                fired.append(f"plan {plan_id}:parts-in")
        for plan_id, code in unopened:
            try:
                start_plan_run(plan_id, code, client)
            except Exception as exc:
                get_logger().warning("service plan %s (%s): run not opened (%s)", plan_id, code, exc)
                continue
            fired.append(f"{code}:service-plan-opened")
    return fired


# --- The step kit's side --------------------------------------------------------------------------------------------


def step_roles(step: Step[Any]) -> list[Role]:
    if step is APPROVAL:
        return [current_policy().key_accounts.service_plan.approver_role]
    return [Role(r) for r in step.roles]


def check_answer(session: Any, plan_id: int, step: Step[Any], answer: dict[str, Any]) -> None:
    """Who may answer: the account's project manager the needs, draft and agreement; a department its part; the
    policy's approver the decision. Raises ``OnboardingRefused`` (the onboarding's staff check)."""
    if step in (DRAFT, AGREEMENT):
        check_staff(session, answer, [], current_policy().roles.names)
        manager = plans.project_manager(session, plans.get_plan(session, plan_id).customer_id)
        if manager is None or manager.id != answer.get("actor_staff_id"):
            raise OnboardingRefused(
                f"只有该客户的项目经理可以填写此步骤 / only the account's project manager answers {step.name}"
            )
        return
    check_staff(session, answer, step_roles(step), current_policy().roles.names)


class PlanRecord:
    """The plan's side of the step kit (events, staff checks, summary); ``department``: a part run's."""

    def __init__(self, plan_id: int, department: str | None = None) -> None:
        self.plan_id = plan_id
        self.department = department

    def admit(self, step: Step[Any], answer: dict[str, Any]) -> None:
        if step.name in INTERNAL:
            return
        with unit_of_work() as session:
            try:
                check_answer(session, self.plan_id, step, answer)
            except OnboardingRefused as refused:
                raise StepRefused(str(refused)) from refused

    def outcome(self, step: Step[Any], key: str) -> str | None:
        with unit_of_work() as session:
            return plans.step_outcomes(session, self.plan_id).get(key)

    def initial(self, step: Step[Any]) -> dict[str, Any]:
        return {}

    def summary(self, step: Step[Any]) -> str:
        with unit_of_work() as session:
            return render_summary(session, self.plan_id, step)

    def waiting(self, step: Step[Any], key: str, flow_run_id: str) -> None:
        data: dict[str, Any] = {"step": step.name, "flow_run_id": flow_run_id}
        if step.name in INTERNAL:
            data["internal"] = True
        if self.department is not None:
            data["department"] = self.department
        with unit_of_work() as session:
            plans.record_event(session, self.plan_id, "waiting", key, "system", plans.system_clock(), **data)

    def completed(self, step: Step[Any], key: str, answer: dict[str, Any]) -> None:
        who = answer.get("actor_staff_id")
        with unit_of_work() as session:
            plans.record_event(
                session, self.plan_id, "step_completed", key, f"staff:{who}" if who else "system",
                plans.system_clock(), step=step.name, answer=answer,
            )  # fmt: skip

    def refused(self, step: Step[Any], key: str, reason: str, answer: dict[str, Any]) -> None:
        with unit_of_work() as session:
            plans.record_event(
                session, self.plan_id, "step_refused", key, "system", plans.system_clock(), step=step.name,
                reason=reason, answer=answer,
            )  # fmt: skip


def render_summary(session: Any, plan_id: int, step: Step[Any]) -> str:
    """What the person answering sees above the form (zh-CN; the customer's code and name, no personal data)."""
    policy = current_policy()
    names = policy.roles.names
    plan = plans.get_plan(session, plan_id)
    customer = plan.customer
    lines = [f"## {step.title}：{plans.code_of(customer)} {customer.name}", ""]
    if plan.needs:
        lines.append(f"- 客户需求：{plan.needs}")
    if plan.draft:
        lines.append(f"- 初步方案：{plan.draft}")
    backs = [e for e in plans.events(session, plan_id) if e.action == "sent_back"]
    if backs:
        lines.append(f"- **高层退回修改**：{backs[-1].data.get('reason', '')}")
    rows = plans.parts(session, plan_id)
    if rows:
        lines += ["", "| 部门 | 方案内容与意见 | 期限（北京时间） |", "|---|---|---|"]
        for row in rows:
            text = (row.part or "待提交").replace("|", "｜").replace("\n", " ")
            lines.append(
                f"| {names.get(Role(row.department), row.department)} | {text} | "
                f"{local_time(row.due_at, policy.timezone)} |"
            )
    return "\n".join(lines)
