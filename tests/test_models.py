"""The system of record keeps what it is given: aware times, audit trails that only grow, one case number."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from kefu.models import (
    AuditTrailIsAppendOnly,
    CaseEvent,
    Channel,
    CommunicationRecord,
    Complaint,
    Customer,
    CustomerTier,
    Milestone,
    MilestoneId,
    Role,
    Severity,
    Staff,
)
from tests.support.clock import SHANGHAI


def _complaint(db: Session, case_no: str = "TS-20261009-0001") -> Complaint:
    agent = Staff(name="王芳")
    agent.grant(Role.AGENT)
    customer = Customer(name="上海某贸易公司", tier=CustomerTier.KEY, phones=["13800138000"], contact_person="李先生")
    complaint = Complaint(
        case_no=case_no,
        channel=Channel.HOTLINE,
        received_at=dt.datetime(2026, 10, 9, 17, 30, tzinfo=SHANGHAI),
        severity=Severity.IMPORTANT,
        content="货物破损，要求赔偿",
        customer=customer,
        owner=agent,
        order_ref="SO-1",
        order_amount=Decimal("12800.50"),
    )
    db.add(complaint)
    db.commit()
    return complaint


def test_times_come_back_timezone_aware_and_equal(db: Session) -> None:
    complaint = _complaint(db)
    db.expire_all()
    stored = db.scalars(select(Complaint)).one()
    assert stored.received_at.tzinfo is not None
    assert stored.received_at == dt.datetime(2026, 10, 9, 17, 30, tzinfo=SHANGHAI)
    assert stored.order_amount == Decimal("12800.50")
    assert stored.owner is not None and stored.owner.roles == {Role.AGENT}
    assert stored.customer is not None and stored.customer.is_key_account
    assert complaint.id == stored.id


def test_a_naive_time_is_refused(db: Session) -> None:
    db.add(
        Complaint(
            case_no="TS-NAIVE",
            channel=Channel.WEB,
            received_at=dt.datetime(2026, 10, 9, 17, 30),
            severity=Severity.GENERAL,
            content="x",
        )
    )
    with pytest.raises(StatementError, match="naive datetime"):
        db.commit()


def test_case_numbers_are_unique(db: Session) -> None:
    _complaint(db)
    db.add(
        Complaint(
            case_no="TS-20261009-0001",
            channel=Channel.WEB,
            received_at=dt.datetime(2026, 10, 9, tzinfo=SHANGHAI),
            severity=Severity.GENERAL,
            content="duplicate",
        )
    )
    with pytest.raises(IntegrityError):
        db.commit()


def test_one_milestone_of_each_kind_per_case(db: Session) -> None:
    complaint = _complaint(db)
    start = complaint.received_at
    for _ in range(2):
        db.add(
            Milestone(
                complaint_id=complaint.id, milestone=MilestoneId.RESOLUTION, starts_at=start, unit="x", target="1"
            )
        )
    with pytest.raises(IntegrityError):
        db.commit()


def test_the_audit_trail_only_grows(db: Session) -> None:
    complaint = _complaint(db)
    event = CaseEvent(complaint_id=complaint.id, actor="王芳", action="registered", data={"channel": "hotline"})
    db.add(event)
    db.commit()
    event.action = "rewritten"
    with pytest.raises(AuditTrailIsAppendOnly):
        db.commit()
    db.rollback()
    db.delete(event)
    with pytest.raises(AuditTrailIsAppendOnly):
        db.commit()
    db.rollback()
    assert db.scalars(select(CaseEvent.action)).all() == ["registered"]


def test_a_contact_is_recorded_with_its_follow_ups(db: Session) -> None:
    complaint = _complaint(db)
    assert complaint.customer_id is not None
    db.add(
        CommunicationRecord(
            customer_id=complaint.customer_id,
            complaint_id=complaint.id,
            at=dt.datetime(2026, 10, 10, 9, 5, tzinfo=SHANGHAI),
            channel=Channel.PHONE.value,
            summary="致电客户了解破损情况",
            responsible_staff_id=complaint.owner_id,
            follow_up_items=["补发货物", "回访"],
        )
    )
    db.commit()
    db.expire_all()
    record = db.scalars(select(CommunicationRecord)).one()
    assert record.follow_up_items == ["补发货物", "回访"]
    assert record.at.astimezone(SHANGHAI).hour == 9
