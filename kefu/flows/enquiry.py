"""The enquiry (咨询, seed 002 §三, seed 004 §四(一)): take it → answer directly (``enquiries.direct_answer``) or
refer it to a department (``enquiries.cross_department_solution``) → the department's solution, replied to the
customer → "anything else open?" (yes: take it again) → close. An enquiry that is a complaint becomes one with
one choice (or ``kefu enquiry to-complaint``), keeping its receipt time.

One run per enquiry (tag ``enquiry``), started by the ``case-deadlines`` sweeper from the enquiries table (the
table is the outbox; ``kefu enquiry add`` starts its run at once). Steps go through the step kit like the
complaint case's: typed forms in the Prefect UI or ``kefu enquiry submit``, stable keys, refusals asked again.
The promise is not a Prefect timeout: the sweeper escalates a breach from the database. Step keys are in flight
in open enquiries: never change them.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Any

from prefect import flow, get_run_logger
from pydantic import ConfigDict, Field

from kefu.engine.contract import made_at
from kefu.engine.events import case_work
from kefu.engine.forms import Choice, StepForm
from kefu.engine.steps import HumanSteps, Step, StepRefused, steps_by_name
from kefu.engine.waiting import RETRIES, RETRY_DELAY_SECONDS
from kefu.models.enums import Role
from kefu.models.policy import current_policy
from kefu.tasks import casework, enquiries
from kefu.worktime import calendar_for

ENQUIRY_FLOW = "enquiry"
ENQUIRY_DEPLOYMENT = f"{ENQUIRY_FLOW}/{ENQUIRY_FLOW}"
ENQUIRY_RUN_TAGS = ("kefu", "enquiry")


def enquiry_idempotency_key(enquiry_no: str, recorded_at: dt.datetime) -> str:
    """One run per enquiry: every creator of enquiry runs passes this key. The number restarts
    with a new database while the Prefect server keeps its runs (a restore, a test's fresh database): the moment the
    record was made keeps a new record from getting an old record's run."""
    return f"enquiry:{enquiry_no}:{made_at(recorded_at)}"


class Handling(StrEnum):
    ANSWER = "answer"
    REFER = "refer"
    COMPLAINT = "complaint"


def handling_words() -> dict[Handling, str]:
    return {Handling.ANSWER: "直接答复客户", Handling.REFER: "转其他部门处理", Handling.COMPLAINT: "转为投诉"}


def department_words() -> dict[Role, str]:
    return enquiries.department_words(current_policy())


def actor() -> Any:
    return Field(title="您的员工编号", description="完成本步骤的人的员工编号。")


class TakeInput(StepForm):
    """Answer directly (the reply goes to the customer), refer to a department, or register it as a complaint."""

    model_config = ConfigDict(title="受理咨询")

    actor_staff_id: int = actor()
    handling: Annotated[Handling, Choice(handling_words)] = Field(title="处理方式")
    reply: str = Field(default="", title="给客户的答复", description="直接答复时必填；发送前检查措辞。")
    department: Annotated[Role | None, Choice(department_words)] = Field(
        default=None, title="协助部门", description="转其他部门处理时必填（1小时内给出解决方案）。"
    )


class DepartmentInput(StepForm):
    model_config = ConfigDict(title="部门答复")

    actor_staff_id: int = actor()
    solution: str = Field(min_length=1, title="部门的解决方案")
    reply: str = Field(min_length=1, title="给客户的答复", description="发送前检查措辞。")


class AnythingElseInput(StepForm):
    model_config = ConfigDict(title="询问客户是否还有其他问题")

    actor_staff_id: int = actor()
    more: bool = Field(default=False, title="客户还有其他问题", description="打开：继续受理客户的其他问题。")


TAKE = Step("take", TakeInput)
DEPARTMENT = Step("department_answer", DepartmentInput)
ANYTHING_ELSE = Step("anything_else", AnythingElseInput)
STEPS = steps_by_name(TAKE, DEPARTMENT, ANYTHING_ELSE)


@flow(
    name=ENQUIRY_FLOW,
    flow_run_name="enquiry {enquiry_no}",
    persist_result=True,
    log_prints=False,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAY_SECONDS,
)
def enquiry(enquiry_no: str) -> str:
    logger = get_run_logger()
    record = EnquiryRecord(enquiry_no)
    steps = HumanSteps(record)
    while not finished(enquiry_no):
        taken = steps.ask(TAKE, check=lambda answer: take(enquiry_no, answer, record.current_key))
        if taken.handling is Handling.COMPLAINT:
            break  # registered as a complaint, the enquiry finished
        if taken.handling is Handling.REFER:
            steps.ask(DEPARTMENT, check=lambda answer: department_answered(enquiry_no, answer, record.current_key))
        if finished(enquiry_no) or not steps.ask(ANYTHING_ELSE).more:
            break
    close(enquiry_no)
    logger.info("enquiry %s finished", enquiry_no)
    return enquiry_no


def start_runs(enquiry_nos: list[str]) -> list[str]:
    """Create the run of each enquiry (one per enquiry: the idempotency key returns the run Prefect already has) and
    record it; the numbers started. The enquiries table is the outbox: what fails here is tried on the next sweep."""
    from prefect.client.orchestration import get_client

    started: list[str] = []
    if not enquiry_nos:
        return started
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(ENQUIRY_DEPLOYMENT)
        for enquiry_no in enquiry_nos:
            with case_work() as session:
                recorded_at = enquiries.get_enquiry(session, enquiry_no).created_at
            run = client.create_flow_run_from_deployment(
                deployment.id,
                parameters={"enquiry_no": enquiry_no},
                idempotency_key=enquiry_idempotency_key(enquiry_no, recorded_at),
                tags=list(ENQUIRY_RUN_TAGS),
            )
            with case_work() as session:
                row = enquiries.get_enquiry(session, enquiry_no)
                if row.flow_run_id is None:
                    row.flow_run_id = str(run.id)
            started.append(enquiry_no)
    return started


def finished(enquiry_no: str) -> bool:
    """Finished elsewhere (``kefu enquiry to-complaint``): the run stops asking."""
    with case_work() as session:
        return enquiries.get_enquiry(session, enquiry_no).finished


def _refusing(work: Any) -> Any:
    try:
        return work()
    except enquiries.EnquiryRefused as refused:
        raise StepRefused(str(refused)) from refused


def take(enquiry_no: str, answer: TakeInput, key: str) -> TakeInput:
    """The chosen handling, done: the reply (linted) sent, the referral to a department of the policy's list, or
    the complaint registered. A refusal (``EnquiryRefused``) asks the step again, having written nothing."""
    policy = current_policy()
    now = casework.system_clock()

    def work() -> TakeInput:
        with case_work() as session:
            if answer.handling is Handling.ANSWER:
                enquiries.answer(session, enquiry_no, answer.actor_staff_id, answer.reply, key, now)
            elif answer.handling is Handling.REFER:
                if answer.department is None:
                    raise enquiries.EnquiryRefused("请选择协助部门 / choose the department to refer it to")
                department = answer.department
                calendar = calendar_for(policy)
                enquiries.refer(session, enquiry_no, answer.actor_staff_id, department, policy, calendar, key, now)
            else:  # the intake registers the complaint (its registration path), keeping the receipt time
                enquiries.request_conversion(session, enquiry_no, answer.actor_staff_id, now)
        return answer

    return _refusing(work)  # type: ignore[no-any-return]


def department_answered(enquiry_no: str, answer: DepartmentInput, key: str) -> DepartmentInput:
    now = casework.system_clock()

    def work() -> DepartmentInput:
        with case_work() as session:
            enquiries.department_answered(
                session, enquiry_no, answer.actor_staff_id, answer.solution, answer.reply, key, now
            )
        return answer

    return _refusing(work)  # type: ignore[no-any-return]


def close(enquiry_no: str) -> None:
    with case_work() as session:
        enquiries.close(session, enquiry_no, casework.system_clock())


class EnquiryRecord:
    """The enquiry's side of the step kit: its waiting, completion and refusal events, its summary."""

    def __init__(self, enquiry_no: str) -> None:
        self.enquiry_no = enquiry_no
        self.current_key = ""  # the key of the answer being judged (the kit reads its outcome first)

    def admit(self, step: Step[Any], answer: dict[str, Any]) -> None:
        """The person answering must be active staff allowed to answer the step (``enquiries.check_answerer``)."""
        with case_work() as session:
            staff_id = int(answer.get("actor_staff_id") or 0)
            try:
                enquiries.check_answerer(session, current_policy(), step.name, staff_id)
            except enquiries.EnquiryRefused as refused:
                raise StepRefused(str(refused)) from refused

    def outcome(self, step: Step[Any], key: str) -> str | None:
        self.current_key = key
        with case_work() as session:
            return enquiries.step_outcomes(session, self.enquiry_no).get(key)

    def initial(self, step: Step[Any]) -> dict[str, Any]:
        return {}

    def summary(self, step: Step[Any]) -> str:
        """What the person answering needs (personal data masked: Prefect shows it)."""
        from kefu.models.enquiries import ENQUIRY_STATUS_ZH
        from kefu.notifications.pii import mask_pii
        from kefu.worktime import local_time

        policy = current_policy()
        with case_work() as session:
            e = enquiries.get_enquiry(session, self.enquiry_no)
            lines = [
                f"### 咨询 {e.enquiry_no}：{step.title}",
                f"- 状态：{ENQUIRY_STATUS_ZH[e.status]}",
                f"- 客户：{e.name[:1]}**（{mask_pii(e.phone)}）",
                f"- 受理时间：{local_time(e.received_at)}",
                f"- 时限：{enquiries.target_words(policy, e.target)}，至 {local_time(e.due_at)}"
                + ("（已答复）" if e.answered_at else ""),
                f"- 咨询内容：{e.content}",
            ]
            if e.department:
                lines.append(f"- 协助部门：{policy.roles.names.get(Role(e.department), e.department)}")
            if e.reply:
                lines.append(f"- 已答复：{e.reply}")
        return "\n".join(lines)

    def waiting(self, step: Step[Any], key: str, flow_run_id: str) -> None:
        with case_work() as session:
            e = enquiries.get_enquiry(session, self.enquiry_no)
            if e.flow_run_id is None:
                e.flow_run_id = flow_run_id
            enquiries.record_event(
                session, e, "waiting", key, "system", casework.system_clock(), step=step.name, flow_run_id=flow_run_id
            )

    def completed(self, step: Step[Any], key: str, answer: dict[str, Any]) -> None:
        with case_work() as session:
            e = enquiries.get_enquiry(session, self.enquiry_no)
            actor_id = answer.get("actor_staff_id")
            enquiries.record_event(
                session,
                e,
                "step_completed",
                key,
                f"staff:{actor_id}",
                casework.system_clock(),
                step=step.name,
                answer=answer,
            )

    def refused(self, step: Step[Any], key: str, reason: str, answer: dict[str, Any]) -> None:
        with case_work() as session:
            e = enquiries.get_enquiry(session, self.enquiry_no)
            enquiries.record_event(
                session,
                e,
                "step_refused",
                key,
                "system",
                casework.system_clock(),
                step=step.name,
                reason=reason,
                answer=answer,
            )
