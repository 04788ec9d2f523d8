"""``kefu contact``: communication records (沟通记录, seed 000 第四章 2) — log one contact with a customer, list a
customer's records; the month's quality-check scores per agent (``kefu contact quality 2026-11``).

``kefu contact log`` and ``kefu account contact log`` are two doors to the same record: both call
``kefu.tasks.contacts.record_contact``, take the same channels and refuse the same contact the same way."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from kefu.cli import UsageError
from kefu.models.db import unit_of_work


def register(subparsers: Any) -> None:
    from kefu.models.contacts import CHANNEL_ALIASES, CONTACT_CHANNELS, ContactKind

    aliases = ", ".join(f"{a} = {c}" for a, c in CHANNEL_ALIASES.items() if a.isascii())
    parser = subparsers.add_parser("contact", help="communication records (沟通记录): log, list; quality scores")
    actions = parser.add_subparsers(dest="contact_action", required=True)

    log = actions.add_parser(
        "log",
        help="record one contact with a customer (the same record as kefu account contact log, which also takes "
        "--review and follow-up items with a due day)",
    )
    log.add_argument("customer", help="customer code (客户编号)")
    log.add_argument(
        "--as", dest="as_staff", required=True, metavar="STAFF", help="who made the contact (sign-in name or id)"
    )
    log.add_argument(
        "--channel",
        required=True,
        help=f"one of: {', '.join(CONTACT_CHANNELS)} (also {aliases}, or the zh-CN name, e.g. 电话)",
    )
    log.add_argument("--summary", required=True, help="what was said (内容摘要)")
    log.add_argument("--at", help="when (e.g. '2026-12-02 10:30', Shanghai time); default now")
    log.add_argument(
        "--kind", default=ContactKind.CONTACT.value, help=f"one of: {', '.join(k.value for k in ContactKind)}"
    )
    log.add_argument("--satisfaction", type=int, help="the customer's satisfaction, 1-5")
    log.add_argument("--remarks", default="")
    log.add_argument("--follow-up", default="", help="a follow-up item (后续跟进事项)")
    log.add_argument("--follow-up-owner", metavar="STAFF", help="who follows up (default: --as)")
    log.add_argument("--follow-up-due", help="by when (Shanghai time)")
    log.set_defaults(handler=run_log)

    listing = actions.add_parser("list", help="a customer's communication records, newest last")
    listing.add_argument("customer", help="customer code (客户编号)")
    listing.set_defaults(handler=run_list)

    scores = actions.add_parser("quality", help="each agent's quality-check scores of a month (YYYY-MM)")
    scores.add_argument("month", help="e.g. 2026-11")
    scores.set_defaults(handler=run_quality)


def _staff(session: Any, ref: str, option: str) -> Any:
    from kefu.models.directory import find_staff

    person = find_staff(session, ref)
    if person is None or not person.active:
        raise UsageError(f"{option} {ref}: 没有此在职员工 (no active staff member by that sign-in name or id)")
    return person


def run_log(args: argparse.Namespace) -> int:
    from kefu.models.contacts import ContactKind
    from kefu.models.policy import current_policy
    from kefu.tasks.contacts import ContactRefused, find_customer, parse_contact_time, record_contact

    policy = current_policy()
    try:
        kind = ContactKind(args.kind)
    except ValueError:
        raise UsageError(f"--kind {args.kind}: 未知类型 (unknown kind)") from None
    try:
        at = parse_contact_time(args.at, policy.timezone) if args.at else None
        due = parse_contact_time(args.follow_up_due, policy.timezone, "--follow-up-due") if args.follow_up_due else None
        with unit_of_work() as session:
            person = _staff(session, args.as_staff, "--as")
            owner = _staff(session, args.follow_up_owner, "--follow-up-owner") if args.follow_up_owner else None
            if args.follow_up.strip() and owner is None:
                owner = person
            record = record_contact(
                session,
                policy,
                find_customer(session, args.customer),
                at=at,
                channel=args.channel,
                summary=args.summary,
                responsible=person,
                kind=kind,
                satisfaction=args.satisfaction,
                remarks=args.remarks,
                follow_up=args.follow_up,
                follow_up_owner=owner,
                follow_up_due_at=due,
            )
            record_id = record.id
    except ContactRefused as refused:
        raise UsageError(str(refused)) from None
    print(f"kefu contact log: recorded contact {record_id} with {args.customer}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from kefu.models.contacts import CONTACT_KIND_ZH, channel_zh
    from kefu.models.people import CommunicationRecord, Staff
    from kefu.models.policy import current_policy
    from kefu.notifications.pii import mask_text
    from kefu.tasks.contacts import ContactRefused, find_customer
    from kefu.worktime import local_time

    zone = current_policy().timezone
    try:
        with unit_of_work() as session:
            customer = find_customer(session, args.customer)
            rows = session.execute(
                select(CommunicationRecord, Staff.name)
                .outerjoin(Staff, Staff.id == CommunicationRecord.responsible_staff_id)
                .where(CommunicationRecord.customer_id == customer.id)
                .order_by(CommunicationRecord.at, CommunicationRecord.id)
            ).all()
            for record, staff_name in rows:
                kind = CONTACT_KIND_ZH.get(record.kind, record.kind)
                satisfaction = f" 满意度{record.satisfaction}" if record.satisfaction else ""
                follow = f" 跟进：{'；'.join(record.follow_up_items)}" if record.follow_up_items else ""
                print(
                    f"{local_time(record.at, zone)}  {channel_zh(record.channel)}  {kind}"
                    f"  {staff_name or '—'}{satisfaction}  {mask_text(record.summary)}{follow}"
                )
    except ContactRefused as refused:
        raise UsageError(str(refused)) from None
    return 0


def run_quality(args: argparse.Namespace) -> int:
    from kefu.models.people import Staff
    from kefu.tasks.quality import CRITERIA, quality_scores

    try:
        year, month = (int(part) for part in args.month.split("-"))
        dt.date(year, month, 1)
    except ValueError:
        raise UsageError(f"{args.month}: 月份应写作 YYYY-MM，例如 2026-11 (a month is YYYY-MM)") from None
    with unit_of_work() as session:
        scores = quality_scores(session, year, month)
        for staff_id, score in sorted(scores.items()):
            person = session.get(Staff, staff_id)
            means = "  ".join(f"{CRITERIA[k]} {v:.2f}" for k, v in score.means.items())
            print(
                f"{staff_id}  {person.name if person else '?'}  评了{score.reviewed}条  退回{score.flagged}条  {means}"
            )
    if not scores:
        print(f"kefu contact quality: no scored reviews for {args.month}")
    return 0
