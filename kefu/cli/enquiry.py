"""``kefu enquiry``: enquiries (咨询) — record a call, answer the waiting steps, turn one into a complaint, mark an
answer wrong (supervisors), and the answer accuracy of a month."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from typing import Any
from uuid import UUID

from kefu.cli import UsageError
from kefu.models.db import unit_of_work


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("enquiry", help="customer enquiries (咨询)")
    actions = parser.add_subparsers(dest="enquiry_action", required=True)

    add = actions.add_parser("add", help="record an enquiry taken by phone (starts its run)")
    add.add_argument("--as", dest="as_staff", required=True, metavar="STAFF", help="who took the call")
    add.add_argument("--name", required=True, help="the customer's name")
    add.add_argument("--phone", required=True, help="the customer's phone")
    add.add_argument("--email", help="the customer's e-mail (the reply goes there; else by SMS)")
    add.add_argument("--content", required=True, help="what the customer asks")
    add.add_argument("--channel", default="hotline", help="hotline (default), im, email, face_to_face, ...")
    add.add_argument(
        "--received-at", help="when the customer first spoke (ISO, default now; without offset: the policy's time)"
    )
    add.set_defaults(handler=run_add)

    listing = actions.add_parser("list", help="steps enquiry runs wait on, with the open promise")
    listing.add_argument("--enquiry", help="only this enquiry number")
    listing.set_defaults(handler=run_list)

    submit = actions.add_parser("submit", help="complete a waiting step (take, department_answer, anything_else)")
    submit.add_argument("enquiry")
    submit.add_argument("step")
    submit.add_argument("--data", required=True, help="the step's input as JSON")
    submit.add_argument("--as", dest="as_staff", required=True, metavar="STAFF")
    submit.set_defaults(handler=run_submit)

    convert = actions.add_parser("to-complaint", help="register the enquiry as a complaint (keeps its receipt time)")
    convert.add_argument("enquiry")
    convert.add_argument("--as", dest="as_staff", required=True, metavar="STAFF")
    convert.set_defaults(handler=run_to_complaint)

    wrong = actions.add_parser("mark-wrong", help="a supervisor marks an enquiry's answer wrong")
    wrong.add_argument("enquiry")
    wrong.add_argument("--as", dest="as_staff", required=True, metavar="STAFF")
    wrong.add_argument("--reason", required=True)
    wrong.set_defaults(handler=run_mark_wrong)

    accuracy = actions.add_parser("accuracy", help="answer accuracy per agent for a month (staff assessment)")
    accuracy.add_argument("--month", required=True, help="YYYY-MM (the policy's time zone)")
    accuracy.set_defaults(handler=run_accuracy)


def _staff_id(ref: str) -> int:
    from kefu.cli.step import acting_staff

    return acting_staff(ref, None)


def _received_at(raw: str | None, timezone: str) -> dt.datetime:
    from zoneinfo import ZoneInfo

    if raw is None:
        return dt.datetime.now(dt.UTC)
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise UsageError(f"--received-at {raw!r} is not an ISO time (e.g. 2026-12-02T10:15)") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=ZoneInfo(timezone))


def run_add(args: argparse.Namespace) -> int:
    from kefu.engine.events import case_work
    from kefu.models.enums import Channel
    from kefu.models.policy import current_policy
    from kefu.tasks import enquiries
    from kefu.worktime import calendar_for, local_time

    try:
        channel = Channel(args.channel)
    except ValueError:
        raise UsageError(f"--channel {args.channel!r}: one of {', '.join(c.value for c in Channel)}") from None
    policy = current_policy()
    staff_id = _staff_id(args.as_staff)
    new = enquiries.NewEnquiry(
        name=args.name,
        phone=args.phone,
        email=args.email,
        content=args.content,
        channel=channel,
        received_at=_received_at(args.received_at, policy.timezone),
        owner_id=staff_id,
    )
    try:
        with case_work() as session:
            enquiry, _ = enquiries.record_enquiry(session, new, policy, calendar_for(policy), dt.datetime.now(dt.UTC))
            enquiry_no, due = enquiry.enquiry_no, enquiry.due_at
    except enquiries.EnquiryRefused as refused:
        raise UsageError(str(refused)) from None
    print(f"{enquiry_no}: recorded; answer due {local_time(due)}")
    _start_run(enquiry_no)
    return 0


def _start_run(enquiry_no: str) -> None:
    from kefu.engine.connection import PrefectDown, kefu_prefect
    from kefu.flows.enquiry import start_runs

    try:
        with kefu_prefect():
            from prefect.exceptions import ObjectNotFound

            try:
                start_runs([enquiry_no])
            except ObjectNotFound:
                print(f"{enquiry_no}: no enquiry deployment yet (start a kefu worker); the sweeper starts the run")
                return
        print(f"{enquiry_no}: run started")
    except PrefectDown:
        print(f"{enquiry_no}: Prefect is not answering; the case-deadlines sweeper starts its run once it is back")


def run_list(args: argparse.Namespace) -> int:
    from kefu.tasks.enquiries import waiting_steps
    from kefu.worktime import local_time

    with unit_of_work() as session:
        rows = waiting_steps(session, args.enquiry)
    if not rows:
        print("no waiting steps")
    for row in rows:
        due = f"  answer due {local_time(dt.datetime.fromisoformat(row['due_at']))}" if row["due_at"] else ""
        print(
            f"{row['enquiry_no']}  {row['step']:<18} since {local_time(dt.datetime.fromisoformat(row['since']))}{due}"
        )
    return 0


def validate(step: str, data: dict[str, Any]) -> dict[str, Any]:
    from pydantic import ValidationError

    from kefu.engine.forms import form_answer
    from kefu.flows.enquiry import STEPS

    if step not in STEPS:
        raise UsageError(f"unknown step '{step}' (steps: {', '.join(STEPS)})")
    try:
        model = STEPS[step].input.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise UsageError(f"invalid input for step '{step}': {problems}") from None
    return form_answer(model)


def submit(enquiry_no: str, step: str, data: dict[str, Any]) -> None:
    """Check ``data`` against the step's form, then resume the enquiry's run waiting on it."""
    from kefu.engine.connection import kefu_prefect

    checked = validate(step, data)
    from kefu.tasks.enquiries import waiting_steps

    with unit_of_work() as session:
        rows = [r for r in waiting_steps(session, enquiry_no) if r["step"] == step]
    if not rows:
        raise UsageError(f"enquiry {enquiry_no} is not waiting on step '{step}'")
    with kefu_prefect():
        from prefect.exceptions import NotPausedError
        from prefect.flow_runs import resume_flow_run

        deadline = time.monotonic() + 30  # the step is recorded just before the run suspends
        while True:
            try:
                resume_flow_run(UUID(rows[-1]["flow_run_id"]), run_input=checked)
                return
            except (NotPausedError, RuntimeError) as exc:
                if time.monotonic() > deadline:
                    raise UsageError(f"enquiry {enquiry_no}: the run did not accept the input: {exc}") from None
                time.sleep(0.2)


def run_submit(args: argparse.Namespace) -> int:
    try:
        data = json.loads(args.data)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--data is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError("the step input must be a JSON object")
    from kefu.cli.step import acting_staff

    data = {**data, "actor_staff_id": acting_staff(args.as_staff, data.get("actor_staff_id"))}
    submit(args.enquiry, args.step, data)
    print(f"{args.enquiry} {args.step}: submitted")
    return 0


def run_to_complaint(args: argparse.Namespace) -> int:
    """One action: the complaint registered (receipt time kept, the intake's dispatcher starts its case run), the
    enquiry finished, and its run cancelled when it waits (a run that resumes later stops by itself)."""
    from kefu.engine.events import case_work
    from kefu.intake.enquiries import convert
    from kefu.models.enums import Role
    from kefu.models.policy import current_policy
    from kefu.tasks import enquiries

    staff_id = _staff_id(args.as_staff)
    try:
        with case_work() as session:
            if not enquiries.has_role(session, staff_id, [Role.AGENT, Role.SUPERVISOR, Role.SENIOR_MANAGER]):
                raise enquiries.EnquiryRefused(
                    "只有客服人员或主管可以转为投诉 / only customer service staff may do this"
                )
            case_no = convert(session, args.enquiry, staff_id, current_policy(), dt.datetime.now(dt.UTC))
            run_id = enquiries.get_enquiry(session, args.enquiry).flow_run_id
    except enquiries.EnquiryRefused as refused:
        raise UsageError(str(refused)) from None
    print(f"{args.enquiry}: registered as complaint {case_no}")
    if run_id:
        _cancel_run(run_id, case_no)
    return 0


def _cancel_run(run_id: str, case_no: str) -> None:
    from kefu.engine.connection import PrefectDown, kefu_prefect

    try:
        with kefu_prefect():
            from prefect.client.orchestration import get_client
            from prefect.states import Cancelled

            with get_client(sync_client=True) as client:
                state = client.read_flow_run(UUID(run_id)).state
                if state is not None and state.is_paused():
                    client.set_flow_run_state(UUID(run_id), Cancelled(message=f"已转为投诉 {case_no}"), force=True)
    except PrefectDown:
        print("Prefect is not answering: the enquiry's run stops by itself when it is next resumed")


def run_mark_wrong(args: argparse.Namespace) -> int:
    from kefu.tasks import enquiries

    staff_id = _staff_id(args.as_staff)
    try:
        with unit_of_work() as session:
            enquiries.mark_wrong(session, args.enquiry, staff_id, args.reason, dt.datetime.now(dt.UTC))
    except enquiries.EnquiryRefused as refused:
        raise UsageError(str(refused)) from None
    print(f"{args.enquiry}: answer marked wrong")
    return 0


def run_accuracy(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from kefu.models.people import Staff
    from kefu.models.policy import current_policy
    from kefu.tasks.enquiries import answer_accuracy

    try:
        year, month = (int(part) for part in args.month.split("-"))
        dt.date(year, month, 1)
    except ValueError:
        raise UsageError(f"--month {args.month!r}: write YYYY-MM") from None
    with unit_of_work() as session:
        figures = answer_accuracy(session, year, month, current_policy().timezone)
        names = {s.id: s.name for s in session.scalars(select(Staff).where(Staff.id.in_(list(figures))))}
    if not figures:
        print("no answered enquiries")
    for staff_id, figure in sorted(figures.items()):
        print(f"{staff_id}  {names.get(staff_id, '')}  answered {figure.answered}  wrong {figure.wrong}  "
              f"accuracy {figure.accuracy:.0%}")  # fmt: skip
    return 0
