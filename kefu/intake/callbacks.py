"""A routine callback's problem becomes a complaint (定期回访发现的问题): the callback's step records what the customer
raised (``RoutineCallback.complaint_wanted``) and the intake dispatcher's next pass registers it here, through the
intake's own write path, received when the customer spoke (the callback's time), the caller its first receiver, once
(keyed by the callback)."""

from __future__ import annotations

from sqlalchemy import Engine

from kefu.intake.service import register_complaint
from kefu.intake.validation import Submission
from kefu.models.contacts import RoutineCallback
from kefu.models.db import unit_of_work
from kefu.models.enums import Channel
from kefu.models.people import CommunicationRecord, Customer
from kefu.models.policy import Policy
from kefu.tasks.callbacks import complaints_wanted


def register_wanted(engine: Engine, policy: Policy) -> list[str]:
    """Register the complaints routine callbacks found, one unit of work each. Returns the case numbers."""
    with unit_of_work(engine) as session:
        waiting = complaints_wanted(session)
    made = []
    for callback_id in waiting:
        with unit_of_work(engine) as session:
            callback = session.get_one(RoutineCallback, callback_id)
            if callback.complaint_id is not None or callback.record_id is None or not callback.complaint_wanted:
                continue
            record = session.get_one(CommunicationRecord, callback.record_id)
            customer = session.get_one(Customer, callback.customer_id)
            phones = customer.phones or []
            registration = register_complaint(
                session,
                Submission(
                    name=customer.name,
                    phone=phones[0] if phones else "",
                    content=callback.complaint_wanted,
                    email=customer.email,
                    received_by=record.responsible_staff_id,
                ),
                received_at=record.at,  # the complaint clock starts when the customer spoke
                channel=Channel.PHONE if callback.channel == "phone" else Channel.EMAIL,
                idempotency_key=f"routine-callback:{callback.id}",
                policy=policy,
            )
            callback.complaint_id = registration.complaint_id
            record.complaint_id = registration.complaint_id
            made.append(registration.case_no)
    return made
