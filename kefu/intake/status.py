"""Status and commitments: what a customer (status page) or a gateway (API) may read about a case.

No personal data: the case number, its status in words, the receipt time and the next time promised to the
customer. The promise comes from the case's open milestones, or — before the case flow has planned them —
from the policy (``first_commitment``), so the answer is the same before and after the flow starts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu.intake.labels import status_label
from kefu.intake.validation import phone_last4
from kefu.models.complaints import Complaint, Milestone
from kefu.models.enums import ComplaintStatus
from kefu.models.policy import Policy
from kefu.worktime import Commitment, WorkCalendar, first_commitment, next_open_commitment


@dataclass(frozen=True)
class CaseStatus:
    case_no: str
    status: str
    status_label: str
    received_at: dt.datetime
    next_commitment: Commitment | None


def next_commitment(
    session: Session, complaint: Complaint, policy: Policy, calendar: WorkCalendar
) -> Commitment | None:
    """The next open customer-facing deadline: from the case's milestones, or the policy plan before they exist."""
    rows = session.execute(
        select(Milestone.milestone, Milestone.due_at).where(
            Milestone.complaint_id == complaint.id, Milestone.met_at.is_(None), Milestone.due_at.is_not(None)
        )
    ).all()
    if rows:
        return next_open_commitment(policy, complaint.severity, ((m, due) for m, due in rows if due is not None))
    if complaint.status is not ComplaintStatus.REGISTERED:
        return None
    key_account = complaint.customer is not None and complaint.customer.is_key_account
    return first_commitment(policy, calendar, complaint.severity, complaint.received_at, key_account=key_account)


def case_status_for_customer(
    session: Session, case_no: str, last4: str, policy: Policy, calendar: WorkCalendar
) -> CaseStatus | None:
    """The status a customer may see, or None — the same None for 'no such case' and 'wrong digits'."""
    complaint = session.scalars(select(Complaint).where(Complaint.case_no == case_no)).one_or_none()
    if complaint is None or complaint.customer is None:
        return None
    digits_match = any(phone_last4(p) == last4 for p in complaint.customer.phones)
    if not digits_match:
        return None
    return case_status(session, complaint, policy, calendar)


def case_status(session: Session, complaint: Complaint, policy: Policy, calendar: WorkCalendar) -> CaseStatus:
    return CaseStatus(
        case_no=complaint.case_no,
        status=complaint.status.value,
        status_label=status_label(complaint.status),
        received_at=complaint.received_at,
        next_commitment=next_commitment(session, complaint, policy, calendar),
    )
