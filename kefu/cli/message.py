"""``kefu message send TYPE --case CASE --as STAFF [--field k=v]``: a standard phrase of seed 002 §三 to a customer."""

from __future__ import annotations

import argparse
from typing import Any

from kefu.cli import UsageError


def register(subparsers: Any) -> None:
    from kefu.notifications.messages import STANDARD_PHRASES

    parser = subparsers.add_parser("message", help="standard-phrase messages to customers")
    actions = parser.add_subparsers(dest="message_action", required=True)
    send = actions.add_parser(
        "send",
        help="send the customer of a case a standard phrase (linted, in the business windows, recorded on the case)",
        description="Types: " + "; ".join(f"{t.value} ({name})" for t, name in STANDARD_PHRASES.items()),
    )
    send.add_argument("type", metavar="TYPE", help="the message type, e.g. order_chase")
    send.add_argument("--case", required=True, help="the case number")
    send.add_argument("--as", dest="as_staff", metavar="STAFF", required=True, help="who sends it (sign-in or id)")
    send.add_argument(
        "--field", action="append", default=[], metavar="KEY=VALUE", help="a value the type needs (repeatable)"
    )
    send.set_defaults(handler=run_send)


def _fields(pairs: list[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--field {pair!r}: expected KEY=VALUE")
        fields[key.strip()] = value
    return fields


def run_send(args: argparse.Namespace) -> int:
    import datetime as dt

    from kefu.engine.events import case_work
    from kefu.models.directory import find_staff
    from kefu.models.policy import current_policy
    from kefu.notifications.messages import STANDARD_PHRASES, MessageType
    from kefu.tasks.casework import CaseNotFound, StepRejected, check_step_role
    from kefu.tasks.customer_messages import ContactRefused, send_standard_phrase

    known = {t.value: t for t in STANDARD_PHRASES}
    if args.type not in known:
        raise UsageError(f"unknown message type {args.type!r}; one of {', '.join(known)}")
    message_type: MessageType = known[args.type]
    fields = _fields(args.field)
    policy = current_policy()
    with case_work() as session:
        person = find_staff(session, args.as_staff)
        if person is None or not person.active:
            raise UsageError(f"--as {args.as_staff}: no active staff member by that sign-in name or id")
        try:
            check_step_role(person, "first_contact", policy)  # the roles that contact customers about a case
            notice = send_standard_phrase(session, args.case, person.id, message_type, fields, dt.datetime.now(dt.UTC))
        except CaseNotFound:
            raise UsageError(f"no case {args.case}") from None
        except (ContactRefused, StepRejected) as refused:
            raise UsageError(str(refused)) from None
    channel = notice.get("channel", "mail")
    print(f"{args.case}: {message_type.value} {notice.get(channel)} ({channel})")
    return 0
