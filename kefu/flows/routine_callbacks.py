"""Routine callbacks (seed 004 §四(四) 定期回访; policy ``callbacks``).

Two flows. ``routine-callbacks`` runs every day (working days only: on a holiday or weekend it opens nothing, and
the customers due that day are found on the next working day): it finds the customers due, opens one callback each
for its owner and starts one ``routine-callback`` run per callback. Why one run per customer: a run suspends on one
step at a time and a suspended step cannot live in a subflow, so a daily run asking every customer's callback in
turn would hold the tenth customer's callback until the ninth is answered. Each callback run is named after the
customer's code (``callback KA-001``), tagged ``routine-callback``, created with the idempotency key
``routine-callback:<code>:<day>:<made at>`` (a re-run of the daily flow starts nothing twice), and read top to bottom:

mail the customer (邮件回访 only) → the owner records the result (reached, satisfaction, remarks, the problem found)
→ the communication record, and the problem routed: a complaint registered with the callback's time as its receipt
time (the intake's registration path: the complaint's case starts from the outbox like any other), or a follow-up.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import ConfigDict, Field, field_validator

from kefu.engine.contract import made_at
from kefu.engine.forms import Choice, StepForm
from kefu.engine.steps import HumanSteps, Step, StepRefused
from kefu.engine.waiting import RETRIES, RETRY_DELAY_SECONDS
from kefu.flows.contact_steps import ContactStepRecord
from kefu.models.contacts import channel_zh
from kefu.models.db import unit_of_work
from kefu.models.people import Customer, Staff
from kefu.models.policy import current_policy
from kefu.tasks import callbacks
from kefu.tasks.callbacks import PROBLEM_WORDS, CallbackResult, ProblemRoute
from kefu.tasks.customer_data import mask_name
from kefu.worktime import calendar_for

ROUTINE_CALLBACK_FLOW = "routine-callback"
ROUTINE_CALLBACK_DEPLOYMENT = f"{ROUTINE_CALLBACK_FLOW}/{ROUTINE_CALLBACK_FLOW}"
ROUTINE_CALLBACK_TAG = "routine-callback"


def _shanghai(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=ZoneInfo(current_policy().timezone))


class CallbackResultInput(StepForm):
    """The result of one routine callback, as the person who made it records it."""

    model_config = ConfigDict(title="定期回访结果")

    actor_staff_id: int = Field(title="您的员工编号", description="进行回访的员工编号。")
    reached: bool = Field(default=True, title="已联系上客户", description="关闭：未联系上（明天不会再次安排）。")
    satisfaction: int | None = Field(
        default=None,
        ge=1,
        le=5,
        title="客户满意度（1–5）",
        description="产品质量、服务态度、物流速度等方面的总体满意度。",
    )
    summary: str = Field(min_length=1, title="回访内容", description="客户的意见和建议。")
    remarks: str = Field(default="", title="备注")
    problem: Annotated[ProblemRoute, Choice(lambda: PROBLEM_WORDS)] = Field(
        default=ProblemRoute.NONE, title="发现的问题如何处理"
    )
    problem_text: str = Field(default="", title="问题描述", description="登记为投诉或跟进事项时必填。")
    contacted_at: dt.datetime | None = Field(
        default=None, title="回访时间", description="与客户通话或客户回信的时间（北京时间）；留空为提交时间。"
    )
    follow_up_due_at: dt.datetime | None = Field(default=None, title="跟进期限", description="记为跟进事项时必填。")
    department: str = Field(
        default="", title="反馈转交部门", description="记为意见反馈时必填：转交的部门（如 运营部），按部门时限处理。"
    )

    @field_validator("contacted_at", "follow_up_due_at")
    @classmethod
    def _local_when_naive(cls, value: dt.datetime | None) -> dt.datetime | None:
        """A time written without an offset is the policy's (Shanghai) time, as people write it."""
        return _shanghai(value)


RESULT = Step("routine_callback", CallbackResultInput, key="routine-callback")


@flow(name="routine-callbacks", log_prints=False)
def routine_callbacks(at: dt.datetime | None = None) -> dict[str, int]:
    """Open today's routine callbacks and start one callback run each (on working days only)."""
    policy = current_policy()
    now = at or dt.datetime.now(dt.UTC)
    with unit_of_work() as session:
        report = callbacks.due_callbacks(session, policy, calendar_for(policy), now)
        opened = [
            (
                c.id,
                callbacks.customer_ref(session.get_one(Customer, c.customer_id)),
                c.due_on.isoformat(),
                c.flow_run_id,
            )
            for c in callbacks.open_callbacks(session, policy, report)
        ]
    create_markdown_artifact(key="routine-callbacks", markdown=report.markdown(), description="Routine callbacks due")
    started = 0
    for callback_id, code, due_on, run_id in opened:
        if run_id is None:
            start_callback_run(callback_id, code, due_on)
            started += 1
    get_run_logger().info("routine callbacks: %d due, %d skipped", len(report.due), len(report.skipped))
    return {"due": len(report.due), "skipped": len(report.skipped), "started": started}


def callback_idempotency_key(code: str, due_on: str, opened_at: dt.datetime) -> str:
    """One run per callback; ``opened_at``: the callback row's ``created_at`` (a customer's code and day come again
    with a new database, where the callback is a new one: ``made_at``)."""
    return f"routine-callback:{code}:{due_on}:{made_at(opened_at)}"


def start_callback_run(callback_id: int, code: str, due_on: str) -> None:
    from prefect.deployments import run_deployment

    from kefu.models.contacts import RoutineCallback

    with unit_of_work() as session:
        opened_at = session.get_one(RoutineCallback, callback_id).created_at
    run = run_deployment(
        ROUTINE_CALLBACK_DEPLOYMENT,
        parameters={"customer_code": code, "due_on": due_on},
        timeout=0,
        idempotency_key=callback_idempotency_key(code, due_on, opened_at),
        tags=["kefu", ROUTINE_CALLBACK_TAG],
        as_subflow=False,
    )
    with unit_of_work() as session:
        session.get_one(RoutineCallback, callback_id).flow_run_id = str(run.id)  # type: ignore[union-attr]


@flow(
    name=ROUTINE_CALLBACK_FLOW,
    flow_run_name="callback {customer_code}",
    persist_result=True,
    log_prints=False,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAY_SECONDS,
)
def routine_callback(customer_code: str, due_on: str) -> str:
    policy = current_policy()
    calendar = calendar_for(policy)
    with unit_of_work() as session:
        callback = callbacks.callback_of(session, customer_code, due_on)
        callback_id = callback.id
        callbacks.send_callback_mail(session, callback, calendar, dt.datetime.now(dt.UTC))  # 邮件回访 (once)
    steps = HumanSteps(
        ContactStepRecord(f"callback:{callback_id}", lambda step: callback_summary(customer_code, due_on))
    )
    answer = steps.ask(RESULT, check=lambda given: checked(given, customer_code, due_on))
    with unit_of_work() as session:
        callbacks.record_result(session, callbacks.callback_of(session, customer_code, due_on), answer, policy)
    return customer_code


def checked(answer: CallbackResultInput, customer_code: str, due_on: str) -> CallbackResult:
    """A problem to route needs its description, a follow-up its due time, feedback a department it may go to and a
    customer it can be answered on: refused (the step waits again)."""
    if answer.problem is not ProblemRoute.NONE and not answer.problem_text.strip():
        raise StepRefused("登记投诉、跟进事项或意见反馈时须填写问题描述")
    if answer.problem is ProblemRoute.FOLLOW_UP and answer.follow_up_due_at is None:
        raise StepRefused("记为跟进事项时须填写跟进期限")
    if answer.problem is ProblemRoute.FEEDBACK:
        from kefu.tasks.feedback import FeedbackRefused, department_of

        try:
            department_of(current_policy(), answer.department)
        except FeedbackRefused as refused:
            raise StepRefused(str(refused)) from None
        with unit_of_work() as session:
            customer = session.get_one(Customer, callbacks.callback_of(session, customer_code, due_on).customer_id)
            if not customer.phones:
                raise StepRefused("客户没有联系电话，意见反馈无法登记；请记为跟进事项")
    now = dt.datetime.now(dt.UTC)
    if answer.contacted_at is not None and answer.contacted_at > now + dt.timedelta(minutes=5):
        raise StepRefused("回访时间不能晚于现在")
    return CallbackResult(
        actor_staff_id=answer.actor_staff_id,
        contacted_at=answer.contacted_at or now,
        satisfaction=answer.satisfaction,
        summary=answer.summary if answer.reached else f"未联系上：{answer.summary}",
        remarks=answer.remarks,
        problem=answer.problem,
        problem_text=answer.problem_text.strip(),
        follow_up_due_at=answer.follow_up_due_at,
        department=answer.department.strip(),
    )


def callback_summary(customer_code: str, due_on: str) -> str:
    """Above the form: the customer (name masked: Prefect shows it), segment, channel and owner."""
    with unit_of_work() as session:
        callback = callbacks.callback_of(session, customer_code, due_on)
        customer = session.get_one(Customer, callback.customer_id)
        owner = session.get(Staff, callback.owner_id) if callback.owner_id else None
        tier = "重点客户" if customer.is_key_account else "一般客户"
        lines: list[Any] = [
            f"### 定期回访 {customer_code}",
            f"- 客户：{mask_name(customer.name)}（{tier}）",
            f"- 回访方式：{channel_zh(callback.channel)}回访",
            f"- 到期日：{due_on}",
            f"- 负责人：{owner.name if owner else '未指定（请值班客服认领）'}",
            "",
            "回访内容：客户对产品质量、服务态度、物流速度等方面的满意度，以及意见和建议（seed 004 §四(四)）。",
        ]
        if callback.channel == "mail":
            lines.append("已向客户发出回访邮件；收到客户回信后在此记录。")
        return "\n".join(str(line) for line in lines)
