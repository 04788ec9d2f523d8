"""People and complaints for tests: the staff ladder, customers, complaints (in the database or not)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest
from sqlalchemy.orm import Session

from kefu.models.complaints import Complaint
from kefu.models.enums import Channel, ComplaintStatus, CustomerTier, Role, Severity
from kefu.models.people import Customer, Staff
from tests.support.clock import SHANGHAI


@pytest.fixture
def ladder(db: Session) -> dict[str, Staff]:
    """An agent (the owner), their supervisor and a senior manager: who a case escalates to, in order."""
    senior = Staff(name="高经理")
    senior.grant(Role.SENIOR_MANAGER)
    supervisor = Staff(name="主管")
    supervisor.grant(Role.SUPERVISOR)
    db.add_all([senior, supervisor])
    db.flush()
    agent = Staff(name="客服", supervisor_id=supervisor.id)
    agent.grant(Role.AGENT)
    db.add(agent)
    db.commit()
    return {"owner": agent, "supervisor": supervisor, "senior_manager": senior}


def new_customer(*, key: bool = False) -> Customer:
    """A customer, a key account when ``key``."""
    return Customer(name="客户", tier=CustomerTier.KEY if key else CustomerTier.GENERAL)


MakeComplaint = Callable[..., Complaint]


@pytest.fixture
def make_complaint(db: Session) -> MakeComplaint:
    """Registered complaints (each with its own customer and case number), committed to the test database."""
    counter = iter(range(1, 10_000))

    def make(
        content: str = "快递晚到两天",
        *,
        received_at: dt.datetime = dt.datetime(2026, 11, 2, 10, 0, tzinfo=SHANGHAI),
        amount: str = "100",
        key: bool = False,
        urgent: bool = False,
    ) -> Complaint:
        complaint = Complaint(
            case_no=f"KF-T-{next(counter):04d}",
            channel=Channel.HOTLINE,
            received_at=received_at,
            severity=Severity.GENERAL,
            status=ComplaintStatus.REGISTERED,
            urgent=urgent,
            customer=new_customer(key=key),
            order_amount=Decimal(amount),
            content=content,
        )
        db.add(complaint)
        db.commit()
        return complaint

    return make
