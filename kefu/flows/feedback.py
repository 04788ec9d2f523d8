"""Customer feedback and suggestions (客户反馈与建议, seed 000 ch.4 §3–4, seed 004 §四(四)4): recorded and routed to the
responsible department (its deadline from ``feedback.department_deadlines``) → the department's answer, the reply
linted and sent to the customer (a suggestion also judged reasonable or not: the reasonable ones go to management in
the monthly ``suggestions-report``) → the follow-up: the customer informed, anything else noted → closed.

One run per feedback record (tag ``feedback``, named after its number), started by ``kefu feedback add`` or by the
``case-deadlines`` sweeper for records without one (the table is the outbox). Steps go through the step kit: typed
forms in the Prefect UI (through the operators' entrance) or ``kefu feedback answer`` / ``kefu feedback close``,
stable keys, refusals asked again. The deadline is not a Prefect timeout: the sweeper escalates a missed one from
the database (``kefu.tasks.feedback.sweep``). Step keys are in flight in open feedback: never change them.
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
from kefu.models.policy import current_policy
from kefu.tasks import casework
from kefu.tasks import feedback as work

FEEDBACK_FLOW = "feedback"
FEEDBACK_DEPLOYMENT = f"{FEEDBACK_FLOW}/{FEEDBACK_FLOW}"
FEEDBACK_RUN_TAGS = ("kefu", "feedback")


def feedback_idempotency_key(feedback_no: str, recorded_at: dt.datetime) -> str:
    """One run per feedback record: every creator of feedback runs passes this key. The number restarts
    with a new database while the Prefect server keeps its runs (a restore, a test's fresh database): the moment the
    record was made keeps a new record from getting an old record's run."""
    return f"feedback:{feedback_no}:{made_at(recorded_at)}"


class Verdict(StrEnum):
    REASONABLE = "reasonable"
    NOT_REASONABLE = "not_reasonable"


def verdict_words() -> dict[Verdict, str]:
    return {Verdict.REASONABLE: "合理（报管理层）", Verdict.NOT_REASONABLE: "不合理"}


def actor() -> Any:
    return Field(title="您的员工编号", description="完成本步骤的人的员工编号。")


class DepartmentAnswerInput(StepForm):
    """The responsible department's answer, and the reply the customer reads (checked before it is sent)."""

    model_config = ConfigDict(title="部门答复")

    actor_staff_id: int = actor()
    solution: str = Field(min_length=1, title="部门的处理意见")
    reply: str = Field(min_length=1, title="给客户的回复", description="发送前检查措辞。")
    verdict: Annotated[Verdict | None, Choice(verdict_words)] = Field(
        default=None, title="建议是否合理", description="仅建议必填：合理的建议每月报管理层。"
    )

    @property
    def reasonable(self) -> bool | None:
        return None if self.verdict is None else self.verdict is Verdict.REASONABLE


class FollowUpInput(StepForm):
    model_config = ConfigDict(title="跟进并结束")

    actor_staff_id: int = actor()
    customer_informed: bool = Field(
        default=False, title="客户已知悉处理结果", description="回复未能发出时，请先电话告知客户。"
    )
    note: str = Field(default="", title="客户的其他问题或备注", description="客户另有咨询或投诉的，请另行登记。")


DEPARTMENT = Step(work.DEPARTMENT_STEP, DepartmentAnswerInput)
FOLLOW_UP = Step(work.FOLLOW_UP_STEP, FollowUpInput)
STEPS = steps_by_name(DEPARTMENT, FOLLOW_UP)


@flow(
    name=FEEDBACK_FLOW,
    flow_run_name="feedback {feedback_no}",
    persist_result=True,
    log_prints=False,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAY_SECONDS,
)
def feedback(feedback_no: str) -> str:
    logger = get_run_logger()
    record = FeedbackRecord(feedback_no)
    steps = HumanSteps(record)
    if not answered_elsewhere(feedback_no):
        steps.ask(DEPARTMENT, check=lambda answer: department_answered(feedback_no, answer, record.current_key))
    steps.ask(FOLLOW_UP, check=lambda answer: followed_up(feedback_no, answer, record.current_key))
    logger.info("feedback %s closed", feedback_no)
    return feedback_no


def start_runs(feedback_nos: list[str]) -> list[str]:
    """Create the run of each record (one per record: the idempotency key returns the run Prefect already has) and
    record it; the numbers started. The feedback table is the outbox: what fails here is tried on the next sweep."""
    from prefect.client.orchestration import get_client

    started: list[str] = []
    if not feedback_nos:
        return started
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(FEEDBACK_DEPLOYMENT)
        for feedback_no in feedback_nos:
            with case_work() as session:
                recorded_at = work.get_feedback(session, feedback_no).created_at
            run = client.create_flow_run_from_deployment(
                deployment.id,
                parameters={"feedback_no": feedback_no},
                idempotency_key=feedback_idempotency_key(feedback_no, recorded_at),
                tags=list(FEEDBACK_RUN_TAGS),
            )
            with case_work() as session:
                row = work.get_feedback(session, feedback_no)
                if row.flow_run_id is None:
                    row.flow_run_id = str(run.id)
            started.append(feedback_no)
    return started


def answered_elsewhere(feedback_no: str) -> bool:
    """Answered before its run asked (``kefu feedback answer`` while it had no run): the run only follows up. A
    replay of the run's own answer asks again and gets it from the kit's record."""
    with case_work() as session:
        return work.answered_directly(session, feedback_no)


def _refusing(action: Any) -> Any:
    try:
        return action()
    except work.FeedbackRefused as refused:
        raise StepRefused(str(refused)) from refused


def department_answered(feedback_no: str, answer: DepartmentAnswerInput, key: str) -> DepartmentAnswerInput:
    """The answer recorded and the reply (linted) sent through the outbox; a refusal asks again, nothing written."""
    now = casework.system_clock()

    def action() -> DepartmentAnswerInput:
        with case_work() as session:
            if work.answered_directly(session, feedback_no):
                return answer  # answered without the run while it was about to wait: nothing more to send
            work.answer_feedback(
                session, feedback_no, answer.actor_staff_id, solution=answer.solution, reply=answer.reply,
                reasonable=answer.reasonable, policy=current_policy(), now=now, key=key,
            )  # fmt: skip
        return answer

    return _refusing(action)  # type: ignore[no-any-return]


def followed_up(feedback_no: str, answer: FollowUpInput, key: str) -> FollowUpInput:
    now = casework.system_clock()

    def action() -> FollowUpInput:
        with case_work() as session:
            work.follow_up(session, feedback_no, answer.actor_staff_id, informed=answer.customer_informed,
                           note=answer.note, key=key, now=now)  # fmt: skip
        return answer

    return _refusing(action)  # type: ignore[no-any-return]


class FeedbackRecord:
    """The feedback's side of the step kit: its waiting, completion and refusal events, its summary."""

    def __init__(self, feedback_no: str) -> None:
        self.feedback_no = feedback_no
        self.current_key = ""  # the key of the answer being judged (the kit reads its outcome first)

    def admit(self, step: Step[Any], answer: dict[str, Any]) -> None:
        """The person answering must be active staff allowed to (``kefu.tasks.feedback.check_answerer``)."""
        with case_work() as session:
            staff_id = int(answer.get("actor_staff_id") or 0)
            try:
                work.check_answerer(session, current_policy(), self.feedback_no, step.name, staff_id)
            except work.FeedbackRefused as refused:
                raise StepRefused(str(refused)) from refused

    def outcome(self, step: Step[Any], key: str) -> str | None:
        self.current_key = key
        with case_work() as session:
            return work.step_outcomes(session, self.feedback_no).get(key)

    def initial(self, step: Step[Any]) -> dict[str, Any]:
        return {}

    def summary(self, step: Step[Any]) -> str:
        """What the person answering needs (personal data masked: Prefect shows it)."""
        from kefu.models.enquiries import FEEDBACK_KIND_ZH
        from kefu.models.enums import Role
        from kefu.notifications.pii import mask_pii
        from kefu.worktime import local_time

        policy = current_policy()
        with case_work() as session:
            row = work.get_feedback(session, self.feedback_no)
            kind = FEEDBACK_KIND_ZH[row.kind]
            department = policy.roles.names.get(Role(row.department), row.department)
            lines = [
                f"### 客户{kind} {row.feedback_no}：{step.title}",
                f"- 客户：{row.name[:1]}**（{mask_pii(row.phone)}）",
                f"- 收到时间：{local_time(row.received_at)}",
                f"- 责任部门：{department}，答复时限至 {local_time(row.due_at)}"
                + ("（已答复）" if row.answered_at else ""),
                f"- {kind}内容：{mask_pii(row.content)}",
            ]
            if row.reply:
                sent = {"mail": "已发邮件", "sms": "已发短信", "no_address": "未能发出，请电话告知客户"}
                lines.append(f"- 给客户的回复（{sent.get(row.reply_sent or '', '')}）：{mask_pii(row.reply)}")
        return "\n".join(lines)

    def waiting(self, step: Step[Any], key: str, flow_run_id: str) -> None:
        with case_work() as session:
            row = work.get_feedback(session, self.feedback_no)
            if row.flow_run_id is None:
                row.flow_run_id = flow_run_id
            work.record_event(
                session, row, "waiting", key, "system", casework.system_clock(), step=step.name, flow_run_id=flow_run_id
            )

    def completed(self, step: Step[Any], key: str, answer: dict[str, Any]) -> None:
        with case_work() as session:
            row = work.get_feedback(session, self.feedback_no)
            work.record_event(session, row, "step_completed", key, f"staff:{answer.get('actor_staff_id')}",
                              casework.system_clock(), step=step.name, answer=answer)  # fmt: skip

    def refused(self, step: Step[Any], key: str, reason: str, answer: dict[str, Any]) -> None:
        with case_work() as session:
            row = work.get_feedback(session, self.feedback_no)
            work.record_event(session, row, "step_refused", key, "system", casework.system_clock(),
                              step=step.name, reason=reason, answer=answer)  # fmt: skip
