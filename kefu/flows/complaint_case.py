"""The complaint case (seed 003 §3): register → classify → (major: task force) → first contact / supervisor
report → investigate → propose → customer approval (reject → propose again) → resolve → callback
(unsatisfied → reopen to investigate) → close.

Each human step suspends the run with a typed input and a markdown summary of the case; the operator
completes it from the run's page in the Prefect UI or with ``kefu step submit``. A resumed run re-runs
from the top: every suspend has a stable key (step and round), so earlier answers are replayed, and every
side effect in ``kefu.tasks.casework`` is keyed in the database, so nothing happens twice. Deadlines are
not Prefect timeouts (they would fail the run): the ``case-deadlines`` sweeper escalates from the DB.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, TypeVar

from prefect import flow, get_run_logger
from prefect.context import get_run_context
from prefect.input import RunInput
from pydantic import Field

from kefu.engine.contract import CASE_RUN_NAME
from kefu.engine.waiting import RETRIES, RETRY_DELAY_SECONDS, Answers, run_client, suspend_until_answered
from kefu.models.db import unit_of_work
from kefu.models.enums import ComplaintStatus, MilestoneId, Severity
from kefu.models.policy import Policy, current_policy
from kefu.tasks import casework
from kefu.worktime import WorkCalendar

# --- The inputs of the human steps (what the UI form and ``kefu step submit`` accept) ---------------


class ClassifyInput(RunInput):
    """Confirm the proposed severity (leave empty) or override it with a reason."""

    actor_staff_id: int = Field(description="Staff id of the person classifying (the first receiver owns the case).")
    severity: Severity | None = None
    reason: str = ""


class TaskForceInput(RunInput):
    actor_staff_id: int
    leader_staff_id: int = Field(description="Senior manager leading the special team.")
    member_staff_ids: list[int] = Field(default_factory=list)


class ContactInput(RunInput):
    actor_staff_id: int
    summary: str = Field(min_length=1, description="What was said to the customer (apology, commitment).")


class ReportInput(RunInput):
    actor_staff_id: int
    summary: str = Field(min_length=1)


class InvestigateInput(RunInput):
    actor_staff_id: int
    departments: list[str] = Field(min_length=1)
    findings: str = Field(min_length=1)
    done: bool = Field(default=True, description="False: another investigation round follows.")


class ProposeInput(RunInput):
    actor_staff_id: int
    solution: str = Field(min_length=1)
    promised_completion_at: dt.datetime | None = Field(
        default=None, description="General complaints: the completion time promised to the customer."
    )


class ApprovalInput(RunInput):
    actor_staff_id: int
    accepted: bool
    comment: str = ""


class ResolveInput(RunInput):
    actor_staff_id: int
    summary: str = Field(min_length=1)


class CallbackInput(RunInput):
    actor_staff_id: int
    satisfaction: int = Field(ge=1, le=5)
    comment: str = ""


@dataclass(frozen=True)
class Step:
    """A human step: its input model, the milestones completing it meets, the status it moves the case to.

    Escalation is the same for every step: the sweeper climbs the policy ladder on the milestones listed here.
    """

    name: str
    input: type[RunInput]
    meets: tuple[MilestoneId, ...]
    status: ComplaintStatus | None = None


CLASSIFY = Step("classify", ClassifyInput, ())
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
STEPS = {
    s.name: s for s in (CLASSIFY, FORM_TASK_FORCE, CONTACT, REPORT, INVESTIGATE, PROPOSE, APPROVE, RESOLVE, CALLBACK)
}
UNSATISFIED_BELOW = 3  # callback satisfaction 1–2 reopens the case

T = TypeVar("T", bound=RunInput)


def summary_markdown(case_no: str, step: str) -> str:
    """The case as operators see it on the run page: ids and deadlines only, no personal data."""
    with unit_of_work() as session:
        complaint = casework.get_case(session, case_no)
        lines = [
            f"## 投诉 {case_no} — 待办: **{step}**",
            "",
            f"- 等级 severity: `{complaint.severity.value}`; 状态 status: `{complaint.status.value}`",
            f"- 紧急 urgent: {complaint.urgent}; 重点客户 key account: {casework.is_key_account(complaint)}",
            f"- 负责人 owner staff id: {complaint.owner_id}; 重开次数 reopened: {complaint.reopen_count}",
            "",
            "| milestone | due | met | breached | level |",
            "|---|---|---|---|---|",
        ]
        for m in complaint.milestones:
            cells = [m.milestone.value, m.due_at, m.met_at or "", m.breached_at or "", m.escalation_level]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def wait_for(step: Step, case_no: str, answers: Answers, round_no: int = 0) -> Any:
    """Wait until a person completes ``step`` (stable key per step and round); record it once."""
    key = f"{step.name.replace('_', '-')}-{round_no}"  # Prefect keys: lowercase, digits, dashes
    given = answers.given(key)
    if given is not None:
        answer = step.input(**given)
    else:
        with unit_of_work() as session:
            complaint = casework.get_case(session, case_no)
            casework.record_event(
                session,
                complaint,
                "waiting",
                key,
                "system",
                casework.system_clock(),
                step=step.name,
                flow_run_id=str(answers.flow_run_id),
            )
        model = step.input.with_initial_data(description=summary_markdown(case_no, step.name))
        answer = suspend_until_answered(model, key)
    data = answer.model_dump(mode="json", exclude={"metadata"})
    with unit_of_work() as session:
        casework.complete_step(
            session,
            case_no,
            step.name,
            key,
            f"staff:{data.get('actor_staff_id')}",
            casework.system_clock(),
            meets=step.meets,
            status=step.status,
            data=data,
        )
    return answer


def classify(case_no: str, answers: Answers, policy: Policy, calendar: WorkCalendar) -> Severity:
    """The classification step: an answer the policy refuses (an override without a reason) is recorded and
    asked again, so the operator is never left with a failed case."""
    attempt = 0
    while True:
        answer = wait_for(CLASSIFY, case_no, answers, attempt)
        try:
            with unit_of_work() as session:
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
            with unit_of_work() as session:
                casework.refuse_step(session, case_no, "classify", f"classify-{attempt}", str(refused))
            attempt += 1


def _set_tags(case_no: str) -> None:
    with unit_of_work() as session:
        complaint = casework.get_case(session, case_no)
        tags = ["kefu", "complaint", f"severity:{complaint.severity.value}"]
        tags.append("key-account" if casework.is_key_account(complaint) else "general-account")
    run = get_run_context().flow_run  # type: ignore[union-attr]
    if run is not None and set(tags) - set(run.tags):
        run_client().update_flow_run(run.id, tags=sorted(set(run.tags) | set(tags)))


@flow(
    name="complaint-case",
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
    answers = Answers()

    # register (idempotent: owner, milestones, urgent notice to the supervisor)
    with unit_of_work() as session:
        casework.register_case(session, case_no, policy, calendar, owner_id=None, now=casework.system_clock())

    # classify: rules propose, a person confirms or overrides (with a reason); milestones follow
    severity = classify(case_no, answers, policy, calendar)
    _set_tags(case_no)

    # major: form the task force; then first contact or supervisor report as the severity requires
    if severity is Severity.MAJOR:
        wait_for(FORM_TASK_FORCE, case_no, answers)
    if severity is Severity.IMPORTANT:
        wait_for(REPORT, case_no, answers)
    else:
        wait_for(CONTACT, case_no, answers)

    investigation = 0
    proposal = 0
    reopen = 0
    while True:
        # investigate: several departments, several rounds
        while not wait_for(INVESTIGATE, case_no, answers, investigation).done:
            investigation += 1
        investigation += 1

        # propose → customer approval; a rejection goes back to proposal
        while True:
            proposed = wait_for(PROPOSE, case_no, answers, proposal)
            if severity is Severity.GENERAL and proposed.promised_completion_at is not None:
                with unit_of_work() as session:
                    casework.promise_resolution(session, case_no, policy, calendar, proposed.promised_completion_at)
            approved = wait_for(APPROVE, case_no, answers, proposal).accepted
            proposal += 1
            if approved:
                break

        # resolve (starts the callback clock), then the satisfaction callback
        wait_for(RESOLVE, case_no, answers, reopen)
        with unit_of_work() as session:
            casework.mark_resolved(session, case_no, policy, calendar, reopen)
        callback = wait_for(CALLBACK, case_no, answers, reopen)
        if callback.satisfaction >= UNSATISFIED_BELOW:
            break
        reopen += 1
        with unit_of_work() as session:
            casework.reopen_case(session, case_no, reopen, casework.system_clock())

    with unit_of_work() as session:
        casework.close_case(session, case_no, casework.system_clock())
    logger.info("case %s closed", case_no)
    return case_no
