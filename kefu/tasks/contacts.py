"""Communication records (seed 000 第四章 2 沟通记录管理: every contact — time, channel, summary, the person
responsible, follow-up items) and the step records of the contact processes (routine callbacks, quality reviews).

``record_contact`` is the one way a contact is recorded, whichever door it comes in by: ``kefu contact log``,
``kefu account contact log``, the intake API's ``POST /api/v1/contacts``, a routine callback's result and any flow
step (``log_contact``, its own unit of work). It stores one channel vocabulary (``kefu.models.contacts``), refuses
what cannot be recorded with one ``ContactRefused`` (nothing written) and writes what the contact cadence reads
(``kefu.tasks.cadence``: a staff member responsible, the channel, the business review, the follow-up items).

The step kit's record for these processes is ``kefu.flows.contact_steps.ContactStepRecord`` (``ContactStepEvent``
rows, read here by ``waiting_keys`` and ``waiting_records``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from kefu.models.base import utcnow
from kefu.models.cadence import ContactFollowUp
from kefu.models.contacts import CONTACT_CHANNELS, ContactKind, ContactStepEvent, stored_channel
from kefu.models.directory import find_staff
from kefu.models.people import CommunicationRecord, Customer, Staff
from kefu.models.policy import Policy
from kefu.worktime import local_time

FOLLOW_UP_FORMAT = "item;owner;YYYY-MM-DD"
FUTURE_GRACE = dt.timedelta(minutes=5)  # clocks differ a little: a contact "now" on another machine is not refused


class ContactRefused(ValueError):
    """A contact Kefu cannot record; the message (zh-CN / English, one line) says why. Nothing was written."""


def parse_channel(text: str) -> str:
    """The stored channel ``text`` names (a channel, an alias such as ``mail``, or its zh-CN name)."""
    value = stored_channel(text)
    if value not in CONTACT_CHANNELS:
        known = "、".join(f"{c}（{n}）" for c, n in CONTACT_CHANNELS.items())
        raise ContactRefused(
            f"未知的沟通方式 {text.strip()}，可选：{known} / unknown channel '{text.strip()}' "
            f"(channels: {', '.join(CONTACT_CHANNELS)}; mail = email, face_to_face = visit)"
        )
    return value


def parse_contact_time(text: str, timezone: str, option: str = "--at") -> dt.datetime:
    """When a contact was, as people write it (``2026-12-02 10:30``: the policy's time zone; an ISO offset kept)."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ContactRefused(
            f"{option} {text}: 不是时间，例如 2026-12-02 10:30 / not a time: write YYYY-MM-DD HH:MM"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=ZoneInfo(timezone))


def find_customer(session: Session, code: str) -> Customer:
    """The customer ``code`` names (its code, or its id: 12 or C000012)."""
    from kefu.models.registry import find_customer as lookup

    customer = lookup(session, code)
    if customer is None:
        raise ContactRefused(
            f"没有客户编号为 {code.strip()} 的客户 / no customer '{code.strip()}' (give a customer code, e.g. C000012)"
        )
    return customer


def active_staff(session: Session, staff_id: int) -> Staff:
    person = session.get(Staff, staff_id)
    if person is None or not person.active:
        raise ContactRefused(f"员工编号 {staff_id} 不存在或已停用 (staff {staff_id} unknown or inactive)")
    return person


@dataclass(frozen=True)
class FollowUpEntry:
    """A follow-up item as given: what, who (sign-in name or staff id), by when (a day)."""

    item: str
    owner: str
    due_on: dt.date


def parse_follow_up(text: str) -> FollowUpEntry:
    """``item;owner;YYYY-MM-DD`` (a full-width ； works too)."""
    parts = [p.strip() for p in text.replace("；", ";").split(";")]
    if len(parts) != 3 or not all(parts):
        raise ContactRefused(f"跟进事项格式应为“事项;负责人;YYYY-MM-DD” / follow-up '{text}': write {FOLLOW_UP_FORMAT}")
    item, owner, day = parts
    try:
        due_on = dt.date.fromisoformat(day)
    except ValueError:
        raise ContactRefused(
            f"跟进事项的截止日期无效 / follow-up '{text}': '{day}' is not a date (YYYY-MM-DD)"
        ) from None
    return FollowUpEntry(item, owner, due_on)


def record_contact(
    session: Session,
    policy: Policy,
    customer: Customer,
    *,
    channel: str,
    summary: str,
    responsible: Staff,
    at: dt.datetime | None = None,
    kind: ContactKind = ContactKind.CONTACT,
    satisfaction: int | None = None,
    remarks: str | None = None,
    business_review: bool = False,
    follow_ups: Sequence[FollowUpEntry] = (),
    follow_up: str | None = None,
    follow_up_owner: Staff | None = None,
    follow_up_due_at: dt.datetime | None = None,
    complaint_id: int | None = None,
    now: dt.datetime | None = None,
) -> CommunicationRecord:
    """One contact with ``customer`` as a communication record (in the caller's transaction); everything checked
    first (``ContactRefused``: nothing written).

    ``follow_ups``: follow-up items with their owner and due day (``ContactFollowUp`` rows, reminded by the daily
    cadence check). ``follow_up`` (with ``follow_up_owner`` and ``follow_up_due_at``): the record's own follow-up
    item, as ``kefu contact log`` and a routine callback give it."""
    now = now or utcnow()
    at = at or now
    channel = parse_channel(channel)
    summary = summary.strip()
    if not summary:
        raise ContactRefused("沟通内容摘要不能为空 / the summary (--summary) is empty: say what was discussed")
    if at.tzinfo is None:
        raise ContactRefused("沟通时间须带时区 / the contact's time needs a time zone")
    if at > now + FUTURE_GRACE:
        raise ContactRefused(
            f"沟通时间 {local_time(at, policy.timezone)} 晚于现在 / a contact cannot be recorded in the future"
        )
    if satisfaction is not None and not 1 <= satisfaction <= 5:
        raise ContactRefused(f"满意度须为 1–5，收到 {satisfaction} / satisfaction must be 1-5")
    if not responsible.active:
        raise ContactRefused(f"{responsible.login or responsible.id} 已停用 / is deactivated")
    if business_review:
        review_rule = policy.contact_cadence.key.get("business_review")
        if review_rule is not None and channel not in review_rule.channels:
            allowed = "、".join(CONTACT_CHANNELS[c] for c in review_rule.channels)
            raise ContactRefused(
                f"业务回顾须通过{allowed}进行 / "
                f"a business review is by {', '.join(review_rule.channels)}, not {channel}"
            )
    item = (follow_up or "").strip()
    if (follow_up_owner is not None or follow_up_due_at is not None) and not item:
        raise ContactRefused("指定了跟进负责人或期限，但未写跟进事项 / a follow-up owner or due time without the item")
    if follow_up_owner is not None and not follow_up_owner.active:
        raise ContactRefused(f"跟进负责人 {follow_up_owner.login or follow_up_owner.id} 已停用 / is deactivated")
    contact_day = at.astimezone(ZoneInfo(policy.timezone)).date()
    owners: list[Staff] = []
    for entry in follow_ups:
        owner = find_staff(session, entry.owner)
        if owner is None or not owner.active:
            raise ContactRefused(
                f"跟进事项负责人不存在或已停用 / follow-up '{entry.item}': no active staff '{entry.owner}'"
            )
        if entry.due_on < contact_day:
            raise ContactRefused(
                f"跟进事项的截止日期早于沟通日期 / follow-up '{entry.item}': due {entry.due_on} is before the contact"
            )
        owners.append(owner)
    items = [f"{e.item}（{o.login or o.id}，{e.due_on:%Y-%m-%d}前）" for e, o in zip(follow_ups, owners, strict=True)]
    record = CommunicationRecord(
        customer_id=customer.id,
        complaint_id=complaint_id,
        at=at,
        channel=channel,
        summary=summary,
        responsible_staff_id=responsible.id,
        follow_up_items=([item] if item else []) + items,
        kind=kind.value,
        satisfaction=satisfaction,
        remarks=(remarks or "").strip() or None,
        follow_up_owner_id=follow_up_owner.id if follow_up_owner is not None and item else None,
        follow_up_due_at=follow_up_due_at if item else None,
        follow_up_open=bool(item),
        business_review=business_review,
        created_at=now,
    )
    session.add(record)
    session.flush()
    for entry, owner in zip(follow_ups, owners, strict=True):
        session.add(ContactFollowUp(record_id=record.id, item=entry.item, owner_id=owner.id, due_on=entry.due_on))
    session.flush()
    return record


def log_contact(
    customer_code: str,
    responsible: str,
    channel: str,
    summary: str,
    *,
    at: dt.datetime | None = None,
    business_review: bool = False,
    follow_ups: Sequence[str] = (),
    complaint_id: int | None = None,
) -> int:
    """The step any flow calls to record a contact (customer by code, responsible person by sign-in name or id,
    follow-ups as ``item;owner;YYYY-MM-DD``) in its own unit of work: ``record_contact``; returns the record's id.
    ``ContactRefused`` (and nothing written) when any part is wrong."""
    from kefu.models.db import unit_of_work
    from kefu.models.policy import current_policy

    entries = [parse_follow_up(text) for text in follow_ups]
    policy = current_policy()
    with unit_of_work() as session:
        customer = find_customer(session, customer_code)
        person = find_staff(session, responsible)
        if person is None:
            raise ContactRefused(f"没有该员工 / no staff member '{responsible}'")
        record = record_contact(
            session, policy, customer, channel=channel, summary=summary, responsible=person, at=at,
            business_review=business_review, follow_ups=entries, complaint_id=complaint_id,
        )  # fmt: skip
        return record.id


def waiting_keys(session: Session, subject: str) -> list[str]:
    """The step keys ``subject`` waits on now (recorded waiting, not yet completed or refused)."""
    rows = session.execute(
        select(ContactStepEvent.key, ContactStepEvent.outcome).where(ContactStepEvent.subject == subject)
    ).all()
    done = {row.key for row in rows if row.outcome != "waiting"}
    return [row.key for row in rows if row.outcome == "waiting" and row.key not in done]


def waiting_records(session: Session, prefix: str) -> list[ContactStepEvent]:
    """The waiting records of the subjects starting with ``prefix`` (``callback:``, ``quality:``) not yet completed
    or refused: the steps their runs are suspended on, oldest first."""
    answered = aliased(ContactStepEvent)
    done = (
        select(answered.id)
        .where(
            answered.subject == ContactStepEvent.subject,
            answered.key == ContactStepEvent.key,
            answered.outcome != "waiting",
        )
        .exists()
    )
    query = select(ContactStepEvent).where(
        ContactStepEvent.subject.startswith(prefix), ContactStepEvent.outcome == "waiting", ~done
    )
    return list(session.scalars(query.order_by(ContactStepEvent.id)))
