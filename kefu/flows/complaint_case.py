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
from typing import Any

from prefect import flow, get_run_logger
from prefect.input import RunInput
from pydantic import Field

from kefu.engine.contract import CASE_RUN_NAME, CASE_RUN_TAGS, COMPLAINT_CASE_FLOW
from kefu.engine.events import case_work
from kefu.engine.steps import HumanSteps, Step, StepRefused, steps_by_name
from kefu.engine.waiting import RETRIES, RETRY_DELAY_SECONDS, add_run_tags
from kefu.models.enums import ComplaintStatus, MilestoneId, Severity
from kefu.models.policy import Policy, current_policy
from kefu.tasks import casework
from kefu.worktime import WorkCalendar, local_time, yes_no

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

    # major: form the task force; then the supervisor report or the first contact, as the severity requires
    if severity is Severity.MAJOR:
        steps.ask(FORM_TASK_FORCE)
    steps.ask(REPORT if severity is Severity.IMPORTANT else CONTACT)

    reopened = 0
    while True:
        # investigate: several departments, as many rounds as it takes
        while not steps.ask(INVESTIGATE).done:
            continue

        # propose → customer approval; a rejection goes back to proposal
        while True:
            proposed = steps.ask(PROPOSE)
            if severity is Severity.GENERAL and proposed.promised_completion_at is not None:
                promise_resolution(case_no, policy, calendar, proposed.promised_completion_at)
            if steps.ask(APPROVE).accepted:
                break

        # resolve (starts the callback clock), then the satisfaction callback; an unsatisfied customer reopens
        steps.ask(RESOLVE)
        mark_resolved(case_no, policy, calendar, reopened)
        if steps.ask(CALLBACK).satisfaction >= policy.complaints.callback.reopen_below:
            break
        reopened += 1
        reopen(case_no, reopened)

    close(case_no)
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
        """Every staff id an answer names must be known and active (the task force's leader a senior manager)."""
        with case_work() as session:
            try:
                casework.check_answer_staff(session, answer)
            except casework.StepRejected as refused:
                raise StepRefused(str(refused)) from refused

    def outcome(self, step: Step[Any], key: str) -> str | None:
        if self._outcomes is None:
            with case_work() as session:
                self._outcomes = casework.step_outcomes(session, self.case_no, STEPS)
        return self._outcomes.get(key)

    def summary(self, step: Step[Any]) -> str:
        """The case as operators see it on the run page: ids and deadlines only, no personal data."""
        with case_work() as session:
            complaint = casework.get_case(session, self.case_no)
            lines = [
                f"## 投诉 {self.case_no} — 待办: **{step.name}**",
                "",
                f"- 等级 severity: `{complaint.severity.value}`; 状态 status: `{complaint.status.value}`",
                f"- 紧急 urgent: {yes_no(complaint.urgent)}; "
                f"重点客户 key account: {yes_no(casework.is_key_account(complaint))}",
                f"- 负责人 owner staff id: {'—' if complaint.owner_id is None else complaint.owner_id}; "
                f"重开次数 reopened: {complaint.reopen_count}",
                "",
                "| milestone | due | met | breached | level |",
                "|---|---|---|---|---|",
            ]
            for m in complaint.milestones:
                cells = [
                    m.milestone.value,
                    local_time(m.due_at),
                    local_time(m.met_at),
                    local_time(m.breached_at),
                    m.escalation_level,
                ]
                lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        return "\n".join(lines)

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
        with case_work() as session:
            casework.complete_step(
                session,
                self.case_no,
                step.name,
                key,
                f"staff:{answer.get('actor_staff_id')}",
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
