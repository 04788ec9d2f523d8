"""Communication records (seed 000 第四章 2 沟通记录管理: every contact — time, channel, summary, the person
responsible, follow-up items) and the step records of the contact processes (routine callbacks, quality reviews).

``log_contact`` records one contact (``kefu contact log``, a routine callback's result); the step kit's record for
these processes is ``kefu.flows.contact_steps.ContactStepRecord`` (``ContactStepEvent`` rows, read here by
``waiting_keys`` and ``waiting_records``).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from kefu.models.contacts import CONTACT_CHANNELS, ContactKind, ContactStepEvent
from kefu.models.people import CommunicationRecord, Customer, Staff


class ContactRefused(ValueError):
    """A communication record that cannot be recorded as given (the reason in zh-CN and English)."""


def find_customer(session: Session, code: str) -> Customer:
    customer = session.scalar(select(Customer).where(Customer.code == code))
    if customer is None:
        raise ContactRefused(f"没有客户编号为 {code} 的客户 (no customer with code {code})")
    return customer


def active_staff(session: Session, staff_id: int) -> Staff:
    person = session.get(Staff, staff_id)
    if person is None or not person.active:
        raise ContactRefused(f"员工编号 {staff_id} 不存在或已停用 (staff {staff_id} unknown or inactive)")
    return person


def log_contact(
    session: Session,
    customer: Customer,
    *,
    at: dt.datetime,
    channel: str,
    summary: str,
    staff_id: int | None,
    kind: ContactKind = ContactKind.CONTACT,
    satisfaction: int | None = None,
    remarks: str | None = None,
    follow_up: str | None = None,
    follow_up_owner_id: int | None = None,
    follow_up_due_at: dt.datetime | None = None,
    complaint_id: int | None = None,
) -> CommunicationRecord:
    """Record one contact (in the caller's transaction); raises ``ContactRefused`` for what cannot be recorded."""
    if channel not in CONTACT_CHANNELS:
        raise ContactRefused(
            f"未知的沟通方式 {channel}，可选：{'、'.join(CONTACT_CHANNELS)} (unknown channel {channel})"
        )
    if not summary.strip():
        raise ContactRefused("沟通内容摘要不能为空 (the summary is empty)")
    if satisfaction is not None and not 1 <= satisfaction <= 5:
        raise ContactRefused(f"满意度须为 1–5，收到 {satisfaction} (satisfaction must be 1-5)")
    if at.tzinfo is None:
        raise ContactRefused("沟通时间须带时区 (the time needs a time zone)")
    if staff_id is not None:
        active_staff(session, staff_id)
    if follow_up_owner_id is not None:
        active_staff(session, follow_up_owner_id)
    if (follow_up_owner_id is not None or follow_up_due_at is not None) and not (follow_up or "").strip():
        raise ContactRefused("指定了跟进负责人或期限，但未写跟进事项 (a follow-up owner or due time without the item)")
    record = CommunicationRecord(
        customer_id=customer.id,
        complaint_id=complaint_id,
        at=at,
        channel=channel,
        summary=summary.strip(),
        responsible_staff_id=staff_id,
        follow_up_items=[follow_up.strip()] if follow_up and follow_up.strip() else [],
        kind=kind.value,
        satisfaction=satisfaction,
        remarks=remarks or None,
        follow_up_owner_id=follow_up_owner_id,
        follow_up_due_at=follow_up_due_at,
        follow_up_open=bool(follow_up and follow_up.strip()),
    )
    session.add(record)
    session.flush()
    return record


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
