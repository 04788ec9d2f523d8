"""``kefu feedback``: customers' feedback and suggestions (客户反馈与建议) — record and route one, answer it."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

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

    answer = actions.add_parser("answer", help="the department's answer, sent to the customer")
    answer.add_argument("feedback")
    answer.add_argument("--as", dest="as_staff", required=True, metavar="STAFF")
    answer.add_argument("--solution", required=True, help="the department's answer (recorded)")
    answer.add_argument("--reply", required=True, help="what the customer reads (linted)")
    answer.add_argument("--reasonable", choices=["yes", "no"], help="suggestions: reported to management when yes")
    answer.set_defaults(handler=run_answer)

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
    return 0


def run_answer(args: argparse.Namespace) -> int:
    from kefu.cli.step import acting_staff
    from kefu.models.policy import current_policy
    from kefu.tasks.feedback import FeedbackRefused, answer_feedback

    staff_id = acting_staff(args.as_staff, None)
    reasonable = None if args.reasonable is None else args.reasonable == "yes"
    try:
        with unit_of_work() as session:
            row = answer_feedback(
                session, args.feedback, staff_id, solution=args.solution, reply=args.reply, reasonable=reasonable,
                policy=current_policy(), now=dt.datetime.now(dt.UTC),
            )  # fmt: skip
            sent = row.reply_sent
    except FeedbackRefused as refused:
        raise UsageError(str(refused)) from None
    print(f"{args.feedback}: answered; reply {sent}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from kefu.models.enquiries import Feedback
    from kefu.worktime import local_time

    with unit_of_work() as session:
        rows = session.scalars(select(Feedback).where(Feedback.answered_at.is_(None)).order_by(Feedback.due_at)).all()
        lines = [f"{r.feedback_no}  {r.kind.value:<10} {r.department:<12} due {local_time(r.due_at)}" for r in rows]
    print("\n".join(lines) if lines else "nothing open")
    return 0
