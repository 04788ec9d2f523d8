"""Enquiries (咨询) at the front door: the form's 咨询 choice and ``POST /api/v1/enquiries`` record one here.

The enquiry is written in one unit of work (idempotent by key: the form's one-time key, the gateway's
Idempotency-Key); an enquiry that is a complaint is registered here through the complaints' own registration
(``convert``: ``kefu enquiry to-complaint`` at once, the enquiry step's 转为投诉 choice by the dispatcher's next
pass). Its run is started by the ``case-deadlines`` sweeper within a minute (the enquiries table is the
outbox), so the intake needs no Prefect of its own. Only the number and the promise travel back, no personal data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from kefu.intake.frontdoor import FrontDoor
from kefu.intake.service import register_complaint
from kefu.intake.validation import Submission
from kefu.models.db import unit_of_work
from kefu.models.enums import Channel
from kefu.models.policy import Policy
from kefu.tasks import enquiries


@dataclass(frozen=True)
class Taken:
    enquiry_no: str
    received_at: dt.datetime
    due_at: dt.datetime
    cross_department: str  # the policy's cross-department target in words (需其他部门协助的1小时内给出解决方案)
    created: bool


def take_enquiry(
    door: FrontDoor,
    *,
    name: str,
    phone: str,
    content: str,
    email: str | None,
    channel: Channel,
    key: str | None,
    received_at: dt.datetime,
) -> Taken:
    """Record the enquiry (``EnquiryRefused``: nothing written, the reasons in zh-CN and English)."""
    policy, calendar = door.policy_and_calendar()
    new = enquiries.NewEnquiry(
        name=name, phone=phone, content=content, email=email, channel=channel, received_at=received_at,
        idempotency_key=key,
    )  # fmt: skip
    with unit_of_work(door.engine) as session:
        enquiry, created = enquiries.record_enquiry(session, new, policy, calendar, door.now())
        return Taken(
            enquiry.enquiry_no,
            enquiry.received_at,
            enquiry.due_at,
            enquiries.target_words(policy, "cross_department_solution"),
            created,
        )


def convert(session: Session, enquiry_no: str, staff_id: int, policy: Policy, now: dt.datetime) -> str:
    """Register the enquiry as a complaint through the intake's registration (``register_complaint``: customer,
    case number, owner — the staff member converting it, 首问责任制 — and the outbox row the dispatcher starts the
    case run from) with ``received_at`` = when the customer first spoke; link both; finish the enquiry. Returns
    the case number; a repeated call (or a retried pass) returns the same one (idempotency key ``enquiry:NO``)."""
    enquiry = enquiries.get_enquiry(session, enquiry_no)
    if enquiry.complaint is not None:
        return enquiry.complaint.case_no
    enquiries.request_conversion(session, enquiry_no, staff_id, now)
    submission = Submission(
        name=enquiry.name,
        phone=enquiry.phone,
        content=enquiry.content,
        email=enquiry.email,
        received_by=enquiry.owner_id or staff_id,
    )
    registration = register_complaint(
        session,
        submission,
        received_at=enquiry.received_at,
        channel=enquiry.channel,
        idempotency_key=f"enquiry:{enquiry.enquiry_no}",
        policy=policy,
    )
    enquiries.converted(session, enquiry, registration.complaint_id, registration.case_no, now)
    return registration.case_no


def convert_requested(engine: Engine, policy: Policy, now: dt.datetime) -> list[str]:
    """Enquiries whose step chose 转为投诉: registered as complaints now, one unit of work each (the dispatcher's
    pass). Returns the case numbers."""
    with unit_of_work(engine) as session:
        waiting = enquiries.conversions_requested(session)
    made = []
    for enquiry_no in waiting:
        with unit_of_work(engine) as session:
            enquiry = enquiries.get_enquiry(session, enquiry_no)
            made.append(convert(session, enquiry_no, enquiry.owner_id or 0, policy, now))
    return made
