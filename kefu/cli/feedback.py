"""``kefu feedback``: customers' feedback and suggestions (客户反馈与建议) — record and route one (starting its
``feedback`` run), answer it for the department and close it after the follow-up (resuming the run's waiting step,
as ``kefu enquiry submit`` does; a record without a run yet is answered directly), list what is open."""

from __future__ import annotations

import argparse
import datetime as dt
import time
from typing import Any
from uuid import UUID

from kefu.cli import UsageError
from kefu.models.db import unit_of_work


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("feedback", help="customer feedback and suggestions (反馈与建议)")
    actions = parser.add_subparsers(dest="feedback_action", required=True)

    add = actions.add_parser("add", help="record feedback or a suggestion and route it to a department")
    add.add_argument("--as", dest="as_staff", required=True, metavar="STAFF")
    add.add_argument("--kind", choices=["feedback", "suggestion"], required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--phone", required=True)
    add.add_argument("--email")
    add.add_argument("--content", required=True)
    add.add_argument("--department", required=True, help="the responsible department (operations or 运营部, ...)")
    add.add_argument("--channel", default="hotline")
    add.set_defaults(handler=run_add)

    answer = actions.add_parser("answer", help="the department's answer, sent to the customer (resumes its run)")
    answer.add_argument("feedback")
    answer.add_argument("--as", dest="as_staff", required=True, metavar="STAFF")
    answer.add_argument("--solution", required=True, help="the department's answer (recorded)")
    answer.add_argument("--reply", required=True, help="what the customer reads (linted)")
    answer.add_argument("--reasonable", choices=["yes", "no"], help="suggestions: reported to management when yes")
    answer.set_defaults(handler=run_answer)

    close = actions.add_parser("close", help="the follow-up: the customer informed, anything else noted (closes it)")
    close.add_argument("feedback")
    close.add_argument("--as", dest="as_staff", required=True, metavar="STAFF")
    close.add_argument("--note", default="", help="anything else the customer raised")
    close.set_defaults(handler=run_close)

    listing = actions.add_parser("list", help="open feedback and suggestions with their deadlines")
    listing.set_defaults(handler=run_list)


def run_add(args: argparse.Namespace) -> int:
    from kefu.cli.step import acting_staff
    from kefu.models.enquiries import FeedbackKind
    from kefu.models.enums import Channel
    from kefu.models.policy import current_policy
    from kefu.tasks.feedback import FeedbackRefused, NewFeedback, record_feedback
    from kefu.worktime import calendar_for, local_time

    staff_id = acting_staff(args.as_staff, None)
    try:
        channel = Channel(args.channel)
    except ValueError:
        raise UsageError(f"--channel {args.channel!r}: one of {', '.join(c.value for c in Channel)}") from None
    policy = current_policy()
    now = dt.datetime.now(dt.UTC)
    new = NewFeedback(
        kind=FeedbackKind(args.kind), name=args.name, phone=args.phone, email=args.email, content=args.content,
        department=args.department, channel=channel, received_at=now, recorded_by=staff_id,
    )  # fmt: skip
    try:
        with unit_of_work() as session:
            row = record_feedback(session, new, policy, calendar_for(policy), now)
            number, due = row.feedback_no, row.due_at
    except FeedbackRefused as refused:
        raise UsageError(str(refused)) from None
    print(f"{number}: routed to {args.department}; answer due {local_time(due)}")
    _start_run(number)
    return 0


def _start_run(feedback_no: str) -> None:
    from kefu.engine.connection import PrefectDown, kefu_prefect
    from kefu.flows.feedback import start_runs

    try:
        with kefu_prefect():
            from prefect.exceptions import ObjectNotFound

            try:
                start_runs([feedback_no])
            except ObjectNotFound:
                print(f"{feedback_no}: no feedback deployment yet (start a kefu worker); the sweeper starts the run")
                return
        print(f"{feedback_no}: run started")
    except PrefectDown:
        print(f"{feedback_no}: Prefect is not answering; the case-deadlines sweeper starts its run once it is back")


# How long the command waits for the run: to suspend on the step (it is recorded just before), then to judge it.
RUN_WAIT_SECONDS = 60


def _through_the_run(feedback_no: str, step: str, data: dict[str, Any]) -> str:
    """Resume the run waiting on ``step`` with ``data`` (checked against the step's form) and wait for its verdict:
    the run's refusal becomes the command's error (the step waits again)."""
    from pydantic import ValidationError
    from sqlalchemy import select

    from kefu.engine.connection import kefu_prefect
    from kefu.engine.forms import form_answer
    from kefu.flows.feedback import STEPS
    from kefu.models.enquiries import FeedbackEvent
    from kefu.tasks.feedback import get_feedback, waiting_steps

    try:
        checked = form_answer(STEPS[step].input.model_validate(data))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise UsageError(f"invalid input for step '{step}': {problems}") from None
    deadline = time.monotonic() + RUN_WAIT_SECONDS
    while True:  # the run may be starting: its step is recorded as waiting just before it suspends
        with unit_of_work() as session:
            rows = [r for r in waiting_steps(session, feedback_no) if r["step"] == step]
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    if not rows:
        raise UsageError(f"{feedback_no} is not waiting on step '{step}' (its run: kefu feedback list)")
    key = str(rows[-1]["key"])
    with kefu_prefect():
        from prefect.exceptions import NotPausedError
        from prefect.flow_runs import resume_flow_run

        while True:
            try:
                resume_flow_run(UUID(rows[-1]["flow_run_id"]), run_input=checked)
                break
            except (NotPausedError, RuntimeError) as exc:
                if time.monotonic() > deadline:
                    raise UsageError(f"{feedback_no}: the run did not accept the input: {exc}") from None
                time.sleep(0.2)
    while True:  # the run judges the answer in its worker: its verdict is in the database
        with unit_of_work() as session:
            row = get_feedback(session, feedback_no)
            event = session.scalar(
                select(FeedbackEvent).where(
                    FeedbackEvent.feedback_id == row.id,
                    FeedbackEvent.key == key,
                    FeedbackEvent.action.in_(["step_completed", "step_refused"]),
                )
            )
            if event is not None:
                if event.action == "step_refused":
                    raise UsageError(f"{feedback_no} {step}: {event.data.get('reason')} (the step waits again)")
                return row.reply_sent or ""
        if time.monotonic() > deadline:
            print(f"{feedback_no} {step}: submitted; the run has not judged it yet (kefu feedback list)")
            return ""
        time.sleep(0.3)


def run_answer(args: argparse.Namespace) -> int:
    from kefu.cli.step import acting_staff
    from kefu.models.policy import current_policy
    from kefu.tasks.feedback import FeedbackRefused, answer_feedback, get_feedback

    staff_id = acting_staff(args.as_staff, None)
    reasonable = None if args.reasonable is None else args.reasonable == "yes"
    try:
        with unit_of_work() as session:
            row = get_feedback(session, args.feedback)
            if row.answered_at is not None:
                raise FeedbackRefused(f"{args.feedback}已答复 / {args.feedback} is answered already")
            has_run = row.flow_run_id is not None
    except FeedbackRefused as refused:
        raise UsageError(str(refused)) from None
    if has_run:  # the run's department step: its checks, its reply
        verdict = {None: None, True: "reasonable", False: "not_reasonable"}[reasonable]
        data = {"actor_staff_id": staff_id, "solution": args.solution, "reply": args.reply, "verdict": verdict}
        sent = _through_the_run(args.feedback, "department_answer", {k: v for k, v in data.items() if v is not None})
        print(f"{args.feedback}: answered; reply {sent}")
        return 0
    try:  # no run yet (Prefect was down when it was recorded): answered here; the run started later follows up
        with unit_of_work() as session:
            row = answer_feedback(
                session, args.feedback, staff_id, solution=args.solution, reply=args.reply, reasonable=reasonable,
                policy=current_policy(), now=dt.datetime.now(dt.UTC),
            )  # fmt: skip
            sent = row.reply_sent or ""
    except FeedbackRefused as refused:
        raise UsageError(str(refused)) from None
    print(f"{args.feedback}: answered; reply {sent}")
    return 0


def run_close(args: argparse.Namespace) -> int:
    from kefu.cli.step import acting_staff
    from kefu.tasks.feedback import FeedbackRefused, get_feedback

    staff_id = acting_staff(args.as_staff, None)
    try:
        with unit_of_work() as session:
            row = get_feedback(session, args.feedback)
            if row.closed_at is not None:
                raise FeedbackRefused(f"{args.feedback}已结束 / {args.feedback} is closed already")
            if row.answered_at is None:
                raise FeedbackRefused(f"{args.feedback}尚未答复 / {args.feedback} has no answer yet")
    except FeedbackRefused as refused:
        raise UsageError(str(refused)) from None
    data = {"actor_staff_id": staff_id, "customer_informed": True, "note": args.note}
    _through_the_run(args.feedback, "follow_up", data)
    print(f"{args.feedback}: closed")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from kefu.models.enquiries import Feedback
    from kefu.tasks.feedback import waiting_steps
    from kefu.worktime import local_time

    with unit_of_work() as session:
        rows = session.scalars(select(Feedback).where(Feedback.closed_at.is_(None)).order_by(Feedback.due_at)).all()
        waiting = {r["feedback_no"]: r["step"] for r in waiting_steps(session)}
        lines = [
            f"{r.feedback_no}  {r.kind.value:<10} {r.department:<12} "
            + (f"due {local_time(r.due_at)}" if r.answered_at is None else "answered")
            + (f"  waiting: {waiting[r.feedback_no]}" if r.feedback_no in waiting else "")
            for r in rows
        ]
    print("\n".join(lines) if lines else "nothing open")
    return 0
