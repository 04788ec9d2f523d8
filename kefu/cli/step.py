"""``kefu step``: the human steps case runs are waiting on, and completing them from the command line."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from kefu.cli import UsageError
from kefu.models.db import unit_of_work


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "step",
        help="every step waiting for a person: complaint cases, key-account onboarding and service plans, staff "
        "assessment, enquiries, feedback, routine callbacks and quality reviews",
    )
    actions = parser.add_subparsers(dest="step_action", required=True)
    listing = actions.add_parser(
        "list", help="the waiting steps with their due times (and, where step submit cannot answer, what does)"
    )
    listing.add_argument(
        "--case", help="only this case, enquiry or feedback number, customer code, MONTH/LOGIN or review (2026-11#12)"
    )
    listing.set_defaults(handler=run_list)
    submit = actions.add_parser("submit", help="complete a waiting step (resumes the case run)")
    submit.add_argument("case")
    submit.add_argument("step")
    source = submit.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="the step's input as JSON")
    source.add_argument("--file", type=Path, help="a JSON file with the step's input")
    submit.add_argument(
        "--as",
        dest="as_staff",
        metavar="STAFF",
        help="who answers (sign-in name or staff id): the step's actor_staff_id, checked against the roles the "
        "policy lets answer the step",
    )
    submit.set_defaults(handler=run_submit)


def run_list(args: argparse.Namespace) -> int:
    from kefu.tasks.assessment import waiting_steps as assessment_steps
    from kefu.tasks.casework import waiting_steps
    from kefu.tasks.onboarding import waiting_steps as onboarding_steps
    from kefu.tasks.service_plans import waiting_steps as plan_steps
    from kefu.worktime import local_time

    with unit_of_work() as session:
        rows = (
            [("", row) for row in waiting_steps(session, args.case)]
            + [("重点客户准入", row) for row in onboarding_steps(session, args.case)]
            + [("员工考核", row) for row in assessment_steps(session, args.case)]
            + [("服务方案", row) for row in plan_steps(session, args.case)]
        )
        others = other_steps(session, args.case)
    if not rows and not others:
        print("no waiting steps")
    for kind, row in rows:
        due = sorted((dt.datetime.fromisoformat(v), k) for k, v in row["deadlines"].items())
        deadlines = ", ".join(f"{k} due {local_time(at)}" for at, k in due)
        since = local_time(dt.datetime.fromisoformat(row["since"]))
        print(f"{row['case_no']}  {kind + '  ' if kind else ''}{row['step']:<18} since {since}  {deadlines}")
    for other in others:
        due_words = f"due {local_time(other.due_at)}" if other.due_at else "no due time"
        print(
            f"{other.ref}  {other.kind}  {other.step:<18} {other.title}  since {local_time(other.since)}  {due_words}"
        )
        print(f"    answer: {other.answer}")
    return 0


@dataclass(frozen=True)
class OtherStep:
    """A waiting step of a process ``kefu step submit`` does not answer, and what does answer it."""

    ref: str
    kind: str
    step: str
    title: str
    since: dt.datetime
    due_at: dt.datetime | None
    answer: str


def _titles() -> dict[str, dict[str, str]]:
    """The step titles of the enquiry, feedback, callback and quality-review flows, by kind (imports Prefect)."""
    from kefu.flows.enquiry import STEPS as ENQUIRY_STEPS
    from kefu.flows.feedback import STEPS as FEEDBACK_STEPS
    from kefu.flows.quality_check import SCORE
    from kefu.flows.routine_callbacks import RESULT

    return {
        "咨询": {name: s.title for name, s in ENQUIRY_STEPS.items()},
        "意见反馈": {name: s.title for name, s in FEEDBACK_STEPS.items()},
        "定期回访": {RESULT.name: RESULT.title},
        "沟通记录质检": {SCORE.name: SCORE.title},
    }


def other_steps(session: Any, ref: str | None = None, *, titled: bool = True) -> list[OtherStep]:
    """The steps enquiry, feedback, routine-callback and quality-review runs wait on (``ref``: only those of this
    enquiry or feedback number, customer code or review), each with the command or desk page that answers it.
    ``titled=False``: each step's name for its title, without importing the flows (and Prefect with them)."""
    from kefu.models.policy import current_policy
    from kefu.settings import get_settings
    from kefu.tasks import callbacks, enquiries, feedback, quality

    titles = _titles() if titled else {}

    def step(ref: str, kind: str, row: dict[str, Any], answer: str) -> OtherStep:
        title = titles.get(kind, {}).get(str(row["step"]), str(row["step"]))
        due_at = dt.datetime.fromisoformat(row["due_at"]) if row["due_at"] else None
        since = dt.datetime.fromisoformat(row["since"])
        return OtherStep(ref, kind, str(row["step"]), title, since, due_at, answer)

    def desk_form(row: dict[str, Any]) -> str:
        return f"the form on the desk, {get_settings().desk_url}/prefect/runs/flow-run/{row['flow_run_id']}"

    found: list[OtherStep] = []
    for row in enquiries.waiting_steps(session, ref):
        no, name = row["enquiry_no"], row["step"]
        found.append(step(no, "咨询", row, f"kefu enquiry submit {no} {name} --as STAFF --data JSON"))
    for row in feedback.waiting_steps(session, ref):
        no, name = row["feedback_no"], row["step"]
        if name == feedback.DEPARTMENT_STEP:
            command = f"kefu feedback answer {no} --as STAFF --solution TEXT --reply TEXT"
        else:
            command = f"kefu feedback close {no} --as STAFF [--note TEXT]"
        found.append(step(no, "意见反馈", row, command))
    for row in callbacks.waiting_steps(session, current_policy(), ref):
        found.append(step(row["code"], "定期回访", row, desk_form(row)))
    for row in quality.waiting_steps(session, ref):
        found.append(step(row["review"], "沟通记录质检", row, desk_form(row)))
    return found


def validate(step: str, data: dict[str, Any]) -> dict[str, Any]:
    """The step's input model checks the data before anything reaches Prefect or the database; returns the answer
    as the step's form sends it (what the Prefect server checks: a choice in the policy's words, e.g. a severity
    given as ``major`` or ``重大投诉`` becomes ``重大投诉``; an empty optional field left out)."""
    from pydantic import ValidationError

    from kefu.engine.forms import form_answer
    from kefu.flows import key_account_onboarding, service_plan
    from kefu.flows.complaint_case import STEPS as CASE_STEPS
    from kefu.flows.staff_assessment import STEPS as ASSESSMENT_STEPS

    people = {k: v for k, v in key_account_onboarding.STEPS.items() if k not in key_account_onboarding.INTERNAL}
    plan = {k: v for k, v in service_plan.STEPS.items() if k not in service_plan.INTERNAL}
    STEPS = {**CASE_STEPS, **people, **ASSESSMENT_STEPS, **plan}
    if step not in STEPS:
        raise UsageError(f"unknown step '{step}' (steps: {', '.join(STEPS)})")
    try:
        model = STEPS[step].input.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise UsageError(f"invalid input for step '{step}': {problems}") from None
    return form_answer(model)


def _check_override(session: Any, case_no: str, checked: dict[str, Any]) -> None:
    """The case flow's classification rule, checked before the run gets the answer: an override needs a reason."""
    from kefu.flows.complaint_case import ClassifyInput
    from kefu.models.policy import current_policy
    from kefu.tasks.casework import StepRejected, check_classification, get_case

    answer = ClassifyInput.model_validate(checked)
    try:
        check_classification(current_policy(), get_case(session, case_no), answer.severity, answer.reason)
    except StepRejected as refused:
        raise UsageError(str(refused)) from None


def _check_approval(session: Any, case_no: str, checked: dict[str, Any]) -> None:
    from kefu.tasks.casework import StepRejected, get_case
    from kefu.tasks.customer_answers import check_customer_answer

    try:
        check_customer_answer(session, get_case(session, case_no), checked)
    except StepRejected as refused:
        raise UsageError(str(refused)) from None


def submit(case_no: str, step: str, data: dict[str, Any]) -> None:
    """Check ``data`` as the run would (its form, the staff it names, the step's rules), then resume the run.

    The Prefect server is checked first, before Prefect is even imported: with it down, nothing starts.
    """
    from kefu.engine.connection import kefu_prefect

    with kefu_prefect():
        _submit(case_no, step, data)


def _submit(case_no: str, step: str, data: dict[str, Any]) -> None:
    from kefu.models.policy import current_policy
    from kefu.tasks.casework import StepRejected, check_answer_staff, waiting_steps

    checked = validate(step, data)
    if step in _onboarding_steps():
        return _submit_onboarding(case_no, step, checked)
    if step in _assessment_steps():
        return _submit_assessment(case_no, step, checked)
    if step in _plan_steps():
        return _submit_plan(case_no, step, checked)
    with unit_of_work() as session:
        rows = [r for r in waiting_steps(session, case_no) if r["step"] == step]
        if rows:
            try:
                check_answer_staff(session, checked, step, current_policy())
            except StepRejected as refused:
                raise UsageError(str(refused)) from None
            if step == "classify":
                _check_override(session, case_no, checked)
            if step == "approve":  # staff record the customer's answer (by phone); the link's answers come from intake
                _check_approval(session, case_no, checked)
    if not rows:
        raise UsageError(f"case {case_no} is not waiting on step '{step}'")
    _resume(case_no, UUID(rows[-1]["flow_run_id"]), checked)


def _onboarding_steps() -> set[str]:
    from kefu.flows.key_account_onboarding import INTERNAL, STEPS

    return set(STEPS) - INTERNAL


def _assessment_steps() -> set[str]:
    from kefu.flows.staff_assessment import STEPS

    return set(STEPS)


def _submit_assessment(ref: str, step: str, checked: dict[str, Any]) -> None:
    """An assessment step (``REF`` is ``MONTH/LOGIN`` of the person assessed): only they (self) or their supervisor
    may answer, while the step is open; then the resume."""
    from kefu.flows.staff_assessment import EVALUATOR_OF
    from kefu.tasks.assessment import AssessmentRefused, check_answer, waiting_steps

    with unit_of_work() as session:
        rows = [r for r in waiting_steps(session, ref) if r["step"] == step]
        if not rows:
            raise UsageError(f"the assessment {ref} is not waiting on step '{step}'")
        try:
            check_answer(session, rows[-1]["sheet_id"], EVALUATOR_OF[step], checked.get("actor_staff_id"))
        except AssessmentRefused as refused:
            raise UsageError(str(refused)) from None
    _resume(ref, UUID(rows[-1]["flow_run_id"]), checked)


def _submit_onboarding(code: str, step: str, checked: dict[str, Any]) -> None:
    """An onboarding step (``CODE`` is the customer's code): the step's staff checks, then the resume."""
    from kefu.flows.key_account_onboarding import STEPS, check_answer
    from kefu.tasks.onboarding import OnboardingRefused, waiting_steps

    with unit_of_work() as session:
        rows = [r for r in waiting_steps(session, code) if r["step"] == step]
        if not rows:
            raise UsageError(f"customer {code}'s onboarding is not waiting on step '{step}'")
        try:
            check_answer(session, STEPS[step], checked)
        except OnboardingRefused as refused:
            raise UsageError(str(refused)) from None
    _resume(code, UUID(rows[-1]["flow_run_id"]), checked)


def _plan_steps() -> set[str]:
    from kefu.flows.service_plan import INTERNAL, STEPS

    return set(STEPS) - INTERNAL


def _submit_plan(code: str, step: str, checked: dict[str, Any]) -> None:
    """A service-plan step (``CODE`` is the customer's code): the step's staff checks, then the resume."""
    from kefu.flows.service_plan import STEPS, check_answer
    from kefu.tasks.onboarding import OnboardingRefused
    from kefu.tasks.service_plans import plan_for_code, waiting_steps

    with unit_of_work() as session:
        rows = [r for r in waiting_steps(session, code) if r["step"] == step]
        plan = plan_for_code(session, code)
        if not rows or plan is None:
            raise UsageError(f"customer {code}'s service plan is not waiting on step '{step}'")
        try:
            check_answer(session, plan.id, STEPS[step], checked)
        except OnboardingRefused as refused:
            raise UsageError(str(refused)) from None
    _resume(code, UUID(rows[-1]["flow_run_id"]), checked)


def _resume(case_no: str, run_id: UUID, checked: dict[str, Any]) -> None:
    import httpx
    from prefect.exceptions import NotPausedError
    from prefect.flow_runs import resume_flow_run

    from kefu.engine.connection import PrefectDown, prefect_api_url

    # The step is announced just before the run suspends: give the suspend a moment to land (bounded).
    deadline = time.monotonic() + 30
    while True:
        try:
            resume_flow_run(run_id, run_input=checked)
            return
        except (NotPausedError, RuntimeError) as exc:
            if time.monotonic() > deadline:
                raise UsageError(f"case {case_no}: the run did not accept the input: {exc}") from None
            time.sleep(0.2)
        except httpx.TransportError:
            raise PrefectDown(
                f"the Prefect server at {prefect_api_url()} stopped answering; is 'make up' running?"
            ) from None


def answered_elsewhere(ref: str, step: str) -> None:
    """A waiting step of a process ``kefu step submit`` does not answer (an enquiry's, a callback's, ...): refused,
    naming what does answer it. Prefect is not imported: with its server down, nothing must start."""
    with unit_of_work() as session:
        for other in other_steps(session, ref, titled=False):
            if other.step == step:
                raise UsageError(f"{ref} {step} is a {other.kind} step; step submit does not answer it: {other.answer}")


def acting_staff(ref: str, given: object) -> int:
    """The staff id of ``--as STAFF`` (sign-in name or id); the input may not name someone else as the actor."""
    from kefu.models.directory import find_staff

    with unit_of_work() as session:
        person = find_staff(session, ref)
        if person is None or not person.active:
            raise UsageError(f"--as {ref}: no active staff member by that sign-in name or id")
        staff_id = person.id
    if given is not None and given != staff_id:
        raise UsageError(f"--as {ref} is staff id {staff_id}, but the input names actor_staff_id {given}")
    return staff_id


def run_submit(args: argparse.Namespace) -> int:
    text = args.data if args.data is not None else args.file.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--data is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError("the step input must be a JSON object")
    answered_elsewhere(args.case, args.step)
    if args.as_staff is not None:
        data = {**data, "actor_staff_id": acting_staff(args.as_staff, data.get("actor_staff_id"))}
    submit(args.case, args.step, data)
    print(f"{args.case} {args.step}: submitted")
    return 0
