"""``kefu case show CASE``: the timeline of a case (steps, who, when, milestones, escalations)."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy import select

from kefu.cli import UsageError
from kefu.models.db import unit_of_work


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("case", help="complaint cases")
    actions = parser.add_subparsers(dest="case_action", required=True)
    show = actions.add_parser("show", help="the timeline of one case")
    show.add_argument("case")
    show.add_argument(
        "--as",
        dest="as_staff",
        metavar="STAFF",
        help="who reads it (sign-in name or staff id): the customer's personal data in full for the case's owner, "
        "their supervisors, the customer's key-account team and the roles in the policy's roles.customer_contact "
        "(the reading is recorded in the access log); masked for anyone else and without --as",
    )
    show.set_defaults(handler=run_show)
    contact = actions.add_parser(
        "contact",
        help="record a progress contact with the customer (meets the progress contact due); --mail also sends them a "
        "progress update",
    )
    contact.add_argument("case")
    contact.add_argument("--as", dest="as_staff", metavar="STAFF", required=True, help="who was in touch")
    contact.add_argument("--summary", required=True, help="what the customer was told (the update's text with --mail)")
    contact.add_argument("--mail", action="store_true", help="send the customer a progress update with this text")
    contact.set_defaults(handler=run_contact)
    hand = actions.add_parser("hand-over", help="hand a case to another owner (首问责任制: explicit and audited)")
    hand.add_argument("case")
    hand.add_argument("--to", required=True, metavar="STAFF", help="the new owner (sign-in name or staff id)")
    hand.add_argument("--as", dest="as_staff", required=True, metavar="STAFF", help="who hands it over")
    hand.add_argument("--reason", required=True, help="why (recorded on the case)")
    hand.set_defaults(handler=run_hand_over)
    pause = actions.add_parser(
        "pause", help="waiting for the customer: stop the clock of the milestones that may pause"
    )
    pause.add_argument("case")
    pause.add_argument("--as", dest="as_staff", required=True, metavar="STAFF", help="who (sign-in name or staff id)")
    pause.add_argument("--reason", required=True, help="what the case waits for from the customer (recorded)")
    pause.set_defaults(handler=run_pause)
    resume = actions.add_parser("end-pause", help="the customer answered: the clock runs again, due times move on")
    resume.add_argument("case")
    resume.add_argument("--as", dest="as_staff", required=True, metavar="STAFF", help="who (sign-in name or staff id)")
    resume.add_argument("--note", default="", help="what the customer answered (recorded)")
    resume.set_defaults(handler=run_end_pause)


def _active(session: Any, option: str, ref: str) -> Any:
    from kefu.models.directory import find_staff

    person = find_staff(session, ref)
    if person is None or not person.active:
        raise UsageError(f"{option} {ref}: no active staff member by that sign-in name or id")
    return person


def run_pause(args: argparse.Namespace) -> int:
    from kefu.models.policy import current_policy
    from kefu.tasks.casework import CaseNotFound, StepRejected, pause_case, system_clock
    from kefu.worktime import calendar_for

    policy = current_policy()
    with unit_of_work() as session:
        person = _active(session, "--as", args.as_staff)
        try:
            paused = pause_case(
                session, args.case, policy, calendar_for(policy), by=person, reason=args.reason, now=system_clock()
            )
        except CaseNotFound:
            raise UsageError(f"no case {args.case}") from None
        except StepRejected as refused:
            raise UsageError(str(refused)) from None
    print(f"{args.case}: clock stopped for {', '.join(m.value for m in paused)} (waiting for the customer)")
    return 0


def run_end_pause(args: argparse.Namespace) -> int:
    from kefu.models.policy import current_policy
    from kefu.tasks.casework import CaseNotFound, StepRejected, end_pause, system_clock
    from kefu.worktime import calendar_for

    policy = current_policy()
    with unit_of_work() as session:
        person = _active(session, "--as", args.as_staff)
        try:
            hours = end_pause(
                session,
                args.case,
                policy,
                calendar_for(policy),
                actor=f"staff:{person.id}",
                note=args.note,
                now=system_clock(),
                by=person,
            )
        except CaseNotFound:
            raise UsageError(f"no case {args.case}") from None
        except StepRejected as refused:
            raise UsageError(str(refused)) from None
    print(f"{args.case}: clock running again; {hours:g} working hours paused, added to the paused due times")
    return 0


def run_hand_over(args: argparse.Namespace) -> int:
    from kefu.models.directory import find_staff
    from kefu.models.policy import current_policy
    from kefu.tasks.casework import CaseNotFound, StepRejected, hand_over, system_clock

    with unit_of_work() as session:
        people = {}
        for option, ref in (("--as", args.as_staff), ("--to", args.to)):
            person = find_staff(session, ref)
            if person is None or not person.active:
                raise UsageError(f"{option} {ref}: no active staff member by that sign-in name or id")
            people[option] = person
        try:
            complaint = hand_over(
                session,
                args.case,
                current_policy(),
                to=people["--to"],
                by=people["--as"],
                reason=args.reason,
                now=system_clock(),
            )
        except CaseNotFound:
            raise UsageError(f"no case {args.case}") from None
        except StepRejected as refused:
            raise UsageError(str(refused)) from None
        print(f"{complaint.case_no}: owner is now staff {complaint.owner_id} ({people['--to'].login or ''})")
    return 0


def run_contact(args: argparse.Namespace) -> int:
    import datetime as dt

    from kefu.engine.events import case_work
    from kefu.models.directory import find_staff
    from kefu.models.policy import current_policy
    from kefu.tasks.casework import CaseNotFound, StepRejected, check_step_role
    from kefu.tasks.customer_messages import ContactRefused, record_progress_contact
    from kefu.worktime import calendar_for

    policy = current_policy()
    with case_work() as session:
        person = find_staff(session, args.as_staff)
        if person is None or not person.active:
            raise UsageError(f"--as {args.as_staff}: no active staff member by that sign-in name or id")
        try:
            check_step_role(person, "first_contact", policy)  # the roles that contact customers about a case
            notice = record_progress_contact(
                session,
                args.case,
                person.id,
                args.summary,
                dt.datetime.now(dt.UTC),
                mail=args.mail,
                policy=policy,
                calendar=calendar_for(policy),
            )
        except CaseNotFound:
            raise UsageError(f"no case {args.case}") from None
        except (ContactRefused, StepRejected) as refused:
            raise UsageError(str(refused)) from None
    sent = f", progress update {notice.get('mail') or notice.get('sms')} ({notice.get('channel')})" if notice else ""
    print(f"{args.case}: progress contact recorded{sent}")
    return 0


THROUGH = "kefu case show"


def pause_line(pause: dict[str, Any]) -> str:
    """One paused interval of a milestone's ledger: when, who, why, and the working time it counts."""
    from datetime import datetime

    from kefu.worktime import local_time

    start = local_time(datetime.fromisoformat(str(pause["from"])))
    if pause.get("until") is None:
        limit = local_time(datetime.fromisoformat(str(pause["counts_until"])))
        return f"paused {start} → (waiting for the customer; counts until {limit})  by {pause['by']}: {pause['reason']}"
    end = local_time(datetime.fromisoformat(str(pause["until"])))
    return (
        f"paused {start} → {end}  by {pause['by']}: {pause['reason']}  ended by {pause.get('ended_by')}"
        f"{': ' + str(pause['note']) if pause.get('note') else ''}  paused working time {pause['working_hours']:g} h"
    )


def run_show(args: argparse.Namespace) -> int:
    from kefu.models.complaints import CaseEvent
    from kefu.models.directory import find_staff
    from kefu.models.people import Staff
    from kefu.tasks.casework import CaseNotFound, get_case
    from kefu.tasks.customer_data import masked_data, read_customer
    from kefu.worktime import local_time, local_times_in

    with unit_of_work() as session:
        reader = None
        if args.as_staff is not None:
            reader = find_staff(session, args.as_staff)
            if reader is None or not reader.active:
                raise UsageError(f"--as {args.as_staff}: no active staff member by that sign-in name or id")
        try:
            complaint = get_case(session, args.case)
        except CaseNotFound:
            raise UsageError(f"no case {args.case}") from None
        customer = read_customer(session, reader, complaint, through=THROUGH)  # a full reading is logged
        full = customer is not None and customer.full
        owner = session.get(Staff, complaint.owner_id) if complaint.owner_id is not None else None
        owned_by = "—" if owner is None else f"{owner.name} ({owner.login or '—'}, #{owner.id})"
        print(
            f"{complaint.case_no}  severity={complaint.severity.value}  status={complaint.status.value}  "
            f"owner={owned_by}  reopened={complaint.reopen_count}  cause={complaint.category or '—'}"
            + ("  URGENT 紧急投诉" if complaint.urgent else "")
        )
        if complaint.policy_hash is not None:
            print(f"policy: version {complaint.policy_version}, content {complaint.policy_hash[:12]}")
        if customer is not None:
            print(customer.line())
        print("milestones:")
        for m in complaint.milestones:
            state = "met " + local_time(m.met_at) if m.met_at else ("BREACHED" if m.breached_at else "open")
            print(f"  {m.milestone.value:<18} due {local_time(m.due_at):<24} {state}  level={m.escalation_level}")
            for pause in m.paused_intervals or []:
                print(f"    {pause_line(pause)}")
        print("timeline:")
        events = session.scalars(
            select(CaseEvent).where(CaseEvent.complaint_id == complaint.id).order_by(CaseEvent.at, CaseEvent.id)
        ).all()
        for e in events:
            extra = {k: v for k, v in e.data.items() if k not in ("key", "flow_run_id")}
            extra = extra if full else masked_data(extra)  # answers may quote a phone number or an e-mail
            extra = local_times_in(extra)  # stored as UTC; people read the policy's zone
            print(f"  {local_time(e.at)}  {e.action:<18} {e.actor:<14} {extra}")
    return 0
