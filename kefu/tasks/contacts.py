"""Communication records (seed 000 第四章 2 沟通记录管理: every contact — time, channel, summary, the person
responsible, follow-up items) and the step records of the contact processes (routine callbacks, quality reviews).

``log_contact`` records one contact (``kefu contact log``, a routine callback's result); ``ContactStepRecord`` is the
step kit's ``StepRecord`` for a process whose subject is not a complaint: its waiting / completed / refused records
are ``ContactStepEvent`` rows keyed by subject and step key, so a resumed run writes nothing twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu.engine.steps import Step, StepRefused
from kefu.models.contacts import CONTACT_CHANNELS, ContactKind, ContactStepEvent
from kefu.models.db import unit_of_work
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


class ContactStepRecord:
    """The step kit's record for one subject (``callback:<id>``, ``quality:<id>``): ``summary`` gives the markdown
    above the form, ``admit`` refuses answers the process cannot take whatever the step."""

    def __init__(
        self,
        subject: str,
        summary: Callable[[Step[Any]], str],
        admit: Callable[[Step[Any], dict[str, Any]], None] | None = None,
    ) -> None:
        self.subject = subject
        self._summary = summary
        self._admit = admit
        self._outcomes: dict[str, str] | None = None

    def summary(self, step: Step[Any]) -> str:
        return self._summary(step)

    def initial(self, step: Step[Any]) -> dict[str, Any]:
        return {}

    def admit(self, step: Step[Any], answer: dict[str, Any]) -> None:
        if self._admit is not None:
            self._admit(step, answer)
        staff_id = answer.get("actor_staff_id")
        if staff_id is not None:
            with unit_of_work() as session:
                try:
                    active_staff(session, int(staff_id))
                except ContactRefused as refused:
                    raise StepRefused(str(refused)) from refused

    def outcome(self, step: Step[Any], key: str) -> str | None:
        if self._outcomes is None:
            with unit_of_work() as session:
                rows = session.execute(
                    select(ContactStepEvent.key, ContactStepEvent.outcome).where(
                        ContactStepEvent.subject == self.subject, ContactStepEvent.outcome != "waiting"
                    )
                )
                self._outcomes = {row.key: row.outcome for row in rows}
        return self._outcomes.get(key)

    def _record(self, step: Step[Any], key: str, outcome: str, **values: Any) -> None:
        with unit_of_work() as session:
            exists = session.scalar(
                select(ContactStepEvent.id).where(
                    ContactStepEvent.subject == self.subject,
                    ContactStepEvent.key == key,
                    ContactStepEvent.outcome == outcome,
                )
            )
            if exists is None:
                session.add(ContactStepEvent(subject=self.subject, step=step.name, key=key, outcome=outcome, **values))
        if self._outcomes is not None and outcome != "waiting":
            self._outcomes[key] = outcome

    def waiting(self, step: Step[Any], key: str, flow_run_id: str) -> None:
        self._record(step, key, "waiting", flow_run_id=flow_run_id, data={})

    def completed(self, step: Step[Any], key: str, answer: dict[str, Any]) -> None:
        self._record(step, key, "completed", data=answer)

    def refused(self, step: Step[Any], key: str, reason: str, answer: dict[str, Any]) -> None:
        self._record(step, key, "refused", data=answer, reason=reason)


def waiting_keys(session: Session, subject: str) -> list[str]:
    """The step keys ``subject`` waits on now (recorded waiting, not yet completed or refused)."""
    rows = session.execute(
        select(ContactStepEvent.key, ContactStepEvent.outcome).where(ContactStepEvent.subject == subject)
    ).all()
    done = {row.key for row in rows if row.outcome != "waiting"}
    return [row.key for row in rows if row.outcome == "waiting" and row.key not in done]
