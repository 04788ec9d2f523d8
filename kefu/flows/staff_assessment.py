"""员工月度考核 (seed 004 §5(二) 考核: 每月一次; 工作业绩、工作态度、专业能力; 上级评价、客户评价、自我评价), two flows:

``staff-assessment`` (monthly, the policy's ``staff_assessment.schedule``; it opens the month only on the month's
first working day, or for the ``month`` it is given): Kefu measures last month's figures for each assessed person
(the policy's ``assessed_roles``: 客服人员) — answer accuracy, complaint milestones met on time, callback
satisfaction (``kefu.tasks.assessment``) — writes one sheet per person with the deadlines of its two steps, and opens
the sheet runs.

``assessment-sheet``: **one run per person and evaluator** — the person's self-assessment (自我评价) and their
supervisor's assessment (上级评价) are two runs, open at the same time, each suspended on its own typed form (1–5 per
item of 工作态度 and 专业能力, and a comment; the measured performance is Kefu's, shown above the form). Why two runs
and not one run asking self then supervisor: a run can wait on one suspend at a time, and the supervisor should not
have to wait for the person (nor the other way round); each run has its own deadline, its own refusal rounds and
its own missing mark. Only the person may answer their self step and only their supervisor (the staff directory's
``supervisor_id``) theirs: the step kit's staff check (``SheetRecord.admit``) refuses anybody else with the reason,
and the step waits again. The answer is written into the sheet once, then the run tries to publish.

**Deadlines** are rows, not Prefect timeouts (which would fail the run): ``self_deadline`` and
``supervisor_deadline`` (working days from the opening). The deadline duty (``case-deadlines``, every minute) marks a
step still pending at its deadline as missing, escalates it once by internal mail to the supervisor of whoever should
have answered it (the person's supervisor for a self step, the supervisor's supervisor for a supervisor step), and
cancels its run; it also opens sheet runs Prefect missed and publishes a month that is complete.

**Publication**, once per month, by whoever completes the month (the last sheet run or the duty): every sheet's
evaluator scores and evaluator-weighted total (missing parts re-normalised and flagged), the ranking, a Prefect table
artifact and a markdown artifact (``staff-assessment-YYYY-MM``), each person's own sheet mailed to them and each
supervisor their team's sheets (internal mail through the outbox; staff names and figures, no customer data). The
monthly statistics report then shows the team view; ``kefu assessment show --month YYYY-MM`` prints it.

Resumed runs re-run from the top: the step is asked through the step kit (stable keys, answers replayed) and every
side effect is keyed in the database. The step keys are in flight in open sheets: never change them.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from pydantic import ConfigDict, Field

from kefu.engine.contract import (
    ASSESSMENT_FLOW,
    ASSESSMENT_RUN_TAGS,
    SHEET_DEPLOYMENT,
    SHEET_FLOW,
    SHEET_RUN_NAME,
    sheet_idempotency_key,
)
from kefu.engine.forms import StepForm
from kefu.engine.steps import HumanSteps, Step, StepRefused, steps_by_name
from kefu.engine.waiting import RETRIES, RETRY_DELAY_SECONDS, add_run_tags
from kefu.models.assessment import PENDING
from kefu.models.db import unit_of_work
from kefu.models.policy import current_policy
from kefu.tasks import assessment
from kefu.tasks.assessment import ABILITY_ITEMS, ATTITUDE_ITEMS, EVALUATOR_ZH, SELF, SUPERVISOR
from kefu.worktime import calendar_for, local_time

# A sheet whose run is not there after this long is opened by the deadline duty (technical, not policy).
OPEN_AFTER = dt.timedelta(minutes=1)


def score(title: str) -> Any:
    return Field(ge=1, le=5, title=f"{title}（1–5分）", description="1 很差，2 较差，3 合格，4 良好，5 优秀。")


# --- The inputs of the human steps (``kefu step submit MONTH/LOGIN STEP``, the run's page in the Prefect UI) --------


class AssessmentInput(StepForm):
    model_config = ConfigDict(title="考核评分")

    actor_staff_id: int = Field(title="您的员工编号", description="完成本步骤的人的员工编号。")
    discipline: int = score(ATTITUDE_ITEMS["discipline"])
    teamwork: int = score(ATTITUDE_ITEMS["teamwork"])
    responsibility: int = score(ATTITUDE_ITEMS["responsibility"])
    product_knowledge: int = score(ABILITY_ITEMS["product_knowledge"])
    service_skills: int = score(ABILITY_ITEMS["service_skills"])
    comment: str = Field(min_length=1, title="评语", description="本月表现与改进建议。")

    def scores(self) -> dict[str, int]:
        return {k: int(getattr(self, k)) for k in (*ATTITUDE_ITEMS, *ABILITY_ITEMS)}


class SelfAssessmentInput(AssessmentInput):
    model_config = ConfigDict(title="自我评价")


class SupervisorAssessmentInput(AssessmentInput):
    model_config = ConfigDict(title="上级评价")


SELF_STEP = Step("self_assessment", SelfAssessmentInput, title="自我评价")
SUPERVISOR_STEP = Step("supervisor_assessment", SupervisorAssessmentInput, title="上级评价")
STEPS = steps_by_name(SELF_STEP, SUPERVISOR_STEP)
STEP_OF: dict[str, Step[Any]] = {SELF: SELF_STEP, SUPERVISOR: SUPERVISOR_STEP}
EVALUATOR_OF = {SELF_STEP.name: SELF, SUPERVISOR_STEP.name: SUPERVISOR}


# --- The processes --------------------------------------------------------------------------------------------------


@flow(
    name=ASSESSMENT_FLOW,
    persist_result=True,
    log_prints=False,
    retries=RETRIES,  # opening is keyed: a re-run opens nothing twice
    retry_delay_seconds=RETRY_DELAY_SECONDS,
)
def staff_assessment(month: str = "") -> str:
    """Open last month's assessment on the month's first working day (or ``month``, YYYY-MM, whenever asked)."""
    logger = get_run_logger()
    add_run_tags(ASSESSMENT_RUN_TAGS)
    policy = current_policy()
    now = assessment.system_clock()
    if not month:
        if not assessment.is_opening_day(now, calendar_for(policy), policy.timezone):
            logger.info("not the month's first working day: the assessment opens then")
            return "not-opening-day"
        month = assessment.previous_month(now, policy.timezone)
    sheets = open_month(month, now)
    opened = open_sheet_runs(month, sheets)
    publish_if_complete(month, now)
    logger.info("assessment %s: %s sheets, %s runs opened", month, len(sheets), opened)
    return month


@flow(
    name=SHEET_FLOW,
    flow_run_name=SHEET_RUN_NAME,
    persist_result=True,
    log_prints=False,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAY_SECONDS,
)
def assessment_sheet(sheet_id: int, evaluator: str, month: str, staff_id: int) -> str:
    """One evaluator's step of one person's sheet: its form, the answer written once, then the month published when
    it is complete."""
    add_run_tags(ASSESSMENT_RUN_TAGS)
    if still_open(sheet_id, evaluator):
        steps = HumanSteps(SheetRecord(sheet_id, evaluator))
        answer: AssessmentInput = steps.ask(STEP_OF[evaluator])
        record_answer(sheet_id, evaluator, answer)
        get_run_logger().info("%s %s of staff %s recorded", month, evaluator, staff_id)
    publish_if_complete(month, assessment.system_clock())
    return "done"


# --- The business verbs (each one unit of work, keyed: a replay writes nothing) ----------------------------------


def open_month(month: str, now: dt.datetime) -> list[tuple[int, str, int]]:
    """The month's sheets (idempotent); the (sheet id, evaluator, staff id) of the pending steps without a run."""
    policy = current_policy()
    with unit_of_work() as session:
        sheets = assessment.open_month(session, policy, calendar_for(policy), month, now)
        return unopened_steps(sheets)


def unopened_steps(sheets: list[Any]) -> list[tuple[int, str, int]]:
    found: list[tuple[int, str, int]] = []
    for sheet in sheets:
        if sheet.self_status == PENDING and sheet.self_run_id is None:
            found.append((sheet.id, SELF, sheet.staff_id))
        if sheet.supervisor_status == PENDING and sheet.supervisor_run_id is None:
            found.append((sheet.id, SUPERVISOR, sheet.staff_id))
    return found


def open_sheet_runs(month: str, steps: list[tuple[int, str, int]], client: Any = None) -> int:
    """One ``assessment-sheet`` run per pending step (idempotency keys), its id written on the sheet."""
    from prefect.client.orchestration import get_client

    if not steps:
        return 0
    if client is None:
        with get_client(sync_client=True) as own:
            return open_sheet_runs(month, steps, own)
    deployment = client.read_deployment_by_name(SHEET_DEPLOYMENT)
    for sheet_id, evaluator, staff_id in steps:
        with unit_of_work() as session:
            created_at = assessment.get_sheet(session, sheet_id).created_at
        run = client.create_flow_run_from_deployment(
            deployment.id,
            parameters={"sheet_id": sheet_id, "evaluator": evaluator, "month": month, "staff_id": staff_id},
            idempotency_key=sheet_idempotency_key(sheet_id, evaluator, created_at),
        )
        with unit_of_work() as session:
            sheet = assessment.get_sheet(session, sheet_id)
            if evaluator == SELF:
                sheet.self_run_id = str(run.id)
            else:
                sheet.supervisor_run_id = str(run.id)
    return len(steps)


def still_open(sheet_id: int, evaluator: str) -> bool:
    with unit_of_work() as session:
        return assessment.status_of(assessment.get_sheet(session, sheet_id), evaluator) == PENDING


def record_answer(sheet_id: int, evaluator: str, answer: AssessmentInput) -> None:
    with unit_of_work() as session:
        assessment.record_answer(
            session, sheet_id, evaluator, answer.scores(), answer.comment, answer.actor_staff_id,
            assessment.system_clock(),
        )  # fmt: skip


def publish_if_complete(month: str, now: dt.datetime) -> bool:
    """Publish the month when no step is pending (once): results and ranks, mails, then the artifacts."""
    policy = current_policy()
    with unit_of_work() as session:
        if not assessment.publish(session, policy, month, now):
            return False
        rows = assessment.table_rows(session, policy, month)
        note = assessment.marks_note(policy)
    publish_artifacts(month, rows, note)
    return True


def publish_artifacts(month: str, rows: list[tuple[str, ...]], note: str) -> None:
    """The ranked table on the run's page (table + markdown), when a run is there to carry them."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact
    from prefect.context import FlowRunContext

    if FlowRunContext.get() is None:
        return
    key = f"staff-assessment-{month}"
    records = [dict(zip(assessment.COLUMNS, row, strict=True)) for row in rows]
    create_table_artifact(records, key=key, description=f"{month} 员工月度考核排名。{note}")
    markdown = f"## {month} 员工月度考核\n\n{assessment.markdown_table(rows)}\n\n{note}\n"
    create_markdown_artifact(markdown, key=f"{key}-md", description=f"{month} 员工月度考核")


# --- The deadline duty's part (``case-deadlines``, every minute) ------------------------------------------------


def assessment_deadlines(now: dt.datetime) -> list[str]:
    """Missed steps marked missing (escalated once, their runs cancelled), sheet runs Prefect missed opened, complete
    months published. Returns what was done."""
    done: list[str] = []
    stops: list[str] = []
    with unit_of_work() as session:
        for sheet, evaluator in assessment.overdue(session, now):
            run_id = assessment.mark_missing(session, sheet, evaluator, now)
            done.append(f"{sheet.month}/{sheet.staff_id}:{evaluator}:missing")
            if run_id:
                stops.append(run_id)
        months = assessment.unpublished_months(session)
        unopened = {
            month: unopened_steps([s for s in assessment.sheets_of(session, month) if s.created_at <= now - OPEN_AFTER])
            for month in months
        }
    for month in months:
        if publish_if_complete(month, now):
            done.append(f"{month}:published")
    try:
        cancel_runs(stops)
        for month, steps in unopened.items():
            if steps:
                open_sheet_runs(month, steps)
                done.append(f"{month}:{len(steps)} sheet runs opened")
    except Exception as exc:  # Prefect unreachable: the marks are in; the next minute tries the runs again
        logging.getLogger("kefu.assessment").warning("assessment runs not mended: %r", exc, exc_info=True)
    return done


def cancel_runs(run_ids: list[str]) -> None:
    """Stop the runs of missed steps (their step is recorded missing: an answer can no longer come)."""
    if not run_ids:
        return
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled

    with get_client(sync_client=True) as client:
        for run_id in run_ids:
            client.set_flow_run_state(
                UUID(run_id), Cancelled(message="考核步骤逾期未填，已记为缺失 / step missed its deadline"), force=True
            )


# --- The step kit's side: the sheet's audit trail, the staff check, the summary -----------------------------------


class SheetRecord:
    """The assessment's side of the step kit for one sheet and evaluator."""

    def __init__(self, sheet_id: int, evaluator: str) -> None:
        self.sheet_id = sheet_id
        self.evaluator = evaluator

    def admit(self, step: Step[Any], answer: dict[str, Any]) -> None:
        with unit_of_work() as session:
            try:
                assessment.check_answer(session, self.sheet_id, self.evaluator, answer.get("actor_staff_id"))
            except assessment.AssessmentRefused as refused:
                raise StepRefused(str(refused)) from refused

    def outcome(self, step: Step[Any], key: str) -> str | None:
        with unit_of_work() as session:
            return assessment.step_outcomes(session, self.sheet_id, self.evaluator).get(key)

    def initial(self, step: Step[Any]) -> dict[str, Any]:
        return {}

    def summary(self, step: Step[Any]) -> str:
        with unit_of_work() as session:
            return render_summary(session, self.sheet_id, self.evaluator)

    def waiting(self, step: Step[Any], key: str, flow_run_id: str) -> None:
        self._event("waiting", key, "system", flow_run_id=flow_run_id, step=step.name)

    def completed(self, step: Step[Any], key: str, answer: dict[str, Any]) -> None:
        self._event("step_completed", key, f"staff:{answer.get('actor_staff_id')}", step=step.name, answer=answer)

    def refused(self, step: Step[Any], key: str, reason: str, answer: dict[str, Any]) -> None:
        self._event("step_refused", key, "system", step=step.name, reason=reason, answer=answer)

    def _event(self, action: str, key: str, actor: str, **data: Any) -> None:
        with unit_of_work() as session:
            assessment.record_event(
                session, self.sheet_id, self.evaluator, action, key, actor, assessment.system_clock(), **data
            )


def render_summary(session: Any, sheet_id: int, evaluator: str) -> str:
    """What the person answering sees above the form (zh-CN; staff names and Kefu's figures, no customer data)."""
    policy = current_policy()
    sheet = assessment.get_sheet(session, sheet_id)
    measured = assessment.measured_scores(sheet)
    lines = [
        f"## {sheet.month} 员工月度考核 · {EVALUATOR_ZH[evaluator]}：{sheet.staff.name}",
        "",
        f"请于 **{local_time(assessment.due_of(sheet, evaluator), policy.timezone)}** 之前填写；逾期记为缺失。",
        "",
        "工作业绩由 Kefu 按本月数据计算：",
        "",
        f"- 客户咨询解答准确率：{assessment._pct(sheet.answer_accuracy)}%（{sheet.answers} 条）",
        f"- 订单处理及时率：{assessment._pct(sheet.on_time_rate)}%（{sheet.milestones} 个时限节点）",
        f"- 客户投诉处理满意度：{assessment._num(sheet.satisfaction)}（{sheet.callbacks} 次回访）",
        "",
        "请为工作态度（工作纪律、团队协作、责任心）与专业能力（产品知识掌握程度、服务技巧运用能力）各项打 1–5 分。",
    ]
    if all(v is None for v in measured.values()):
        lines.append("")
        lines.append("（本月暂无工作业绩数据。）")
    return "\n".join(lines)
