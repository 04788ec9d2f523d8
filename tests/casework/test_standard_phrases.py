"""Staff send a standard phrase of seed 002 §三 to the customer of a case: linted, in the business windows,
recorded on the case; a wrong type, a missing field or a person who may not contact customers queue nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kefu.models.complaints import CaseEvent, Complaint
from kefu.models.db import unit_of_work
from kefu.models.enums import Channel, ComplaintStatus, Role, Severity
from kefu.models.notifications import OutboxMessage
from kefu.models.people import Customer, Staff
from kefu.notifications import MessageType
from kefu.notifications.messages import STANDARD_PHRASES
from kefu.tasks.customer_messages import ContactRefused, send_standard_phrase
from tests.casework.test_cli_and_staff import kefu
from tests.support.clock import SHANGHAI
from tests.support.samples import CONTEXTS

SUNDAY_NIGHT = dt.datetime(2026, 11, 29, 21, 0, tzinfo=SHANGHAI)


def _case(session: Session, case_no: str, **customer: str | list[str]) -> Complaint:
    owner = Staff(name="李客服")
    complaint = Complaint(
        case_no=case_no,
        channel=Channel.HOTLINE,
        received_at=SUNDAY_NIGHT,
        severity=Severity.GENERAL,
        status=ComplaintStatus.INVESTIGATING,
        customer=Customer(name="张三", **customer),
        owner=owner,
        content="货物破损",
    )
    session.add(complaint)
    session.flush()
    return complaint


@pytest.mark.parametrize("message_type", list(STANDARD_PHRASES))
def test_every_standard_phrase_goes_to_the_customer_of_the_case_in_the_window_and_is_recorded(
    db: Session, message_type: MessageType
) -> None:
    complaint = _case(db, "KF-PHR-0001", email="zhang@example.com")
    fields = {k: v for k, v in CONTEXTS[message_type].items() if k not in ("case_no", "owner_name", "customer_name")}
    notice = send_standard_phrase(db, "KF-PHR-0001", 7, message_type, fields, SUNDAY_NIGHT)
    db.commit()
    assert notice == {"channel": "mail", "mail": "queued"}
    mail = db.scalars(select(OutboxMessage).where(OutboxMessage.complaint_id == complaint.id)).one()
    assert mail.message_type == message_type.value and mail.recipient == "zhang@example.com"
    assert "KF-PHR-0001" in mail.subject and "李客服" in mail.body_text and "尊敬的张三" in mail.body_text
    assert mail.not_before == dt.datetime(2026, 11, 30, 9, 0, tzinfo=SHANGHAI)  # Monday's first business window
    event = db.scalars(select(CaseEvent).where(CaseEvent.action == "customer_notified")).one()
    assert event.actor == "staff:7" and event.data["message"] == message_type.value


def test_a_customer_with_only_a_mobile_gets_the_phrase_by_sms(db: Session) -> None:
    complaint = _case(db, "KF-PHR-0002", phones=["13812348000"])
    send_standard_phrase(db, "KF-PHR-0002", 7, MessageType.FREIGHT_QUERY, {}, SUNDAY_NIGHT)
    sms = db.scalars(select(OutboxMessage).where(OutboxMessage.complaint_id == complaint.id)).one()
    assert sms.channel == "sms" and "KF-PHR-0002" in sms.body_text and "毛重结算运费" in sms.body_text


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        pytest.param({}, "order_status", id="missing-field"),
        pytest.param({"order_status": "可发货", "price": "1"}, "price", id="unknown-field"),
        pytest.param({"order_status": "这不关我的事"}, "推诿", id="lint"),
    ],
)
def test_a_phrase_that_cannot_be_sent_as_asked_queues_nothing(db: Session, fields: dict[str, str], named: str) -> None:
    _case(db, "KF-PHR-0003", email="zhang@example.com")
    with pytest.raises(ContactRefused, match=named):
        send_standard_phrase(db, "KF-PHR-0003", 7, MessageType.ORDER_CHASE, fields, SUNDAY_NIGHT)
    assert db.scalar(select(func.count()).select_from(OutboxMessage)) == 0
    assert db.scalar(select(func.count()).select_from(CaseEvent)) == 0


def test_kefu_message_send_queues_the_phrase_and_refuses_someone_who_may_not_contact_customers(
    case_db_url: str, tmp_path: Path
) -> None:
    with unit_of_work() as session:
        agent = Staff(name="李客服", login="li.phrase")
        agent.grant(Role.AGENT)
        finance = Staff(name="财务", login="cai.phrase")
        finance.grant(Role.FINANCE)
        session.add_all([agent, finance])
        _case(session, "KF-PHR-0004", email="zhang4@example.com")
    api = "http://127.0.0.1:9/api"  # not needed: the message is Kefu's own record
    args = ["message", "send", "damaged_goods", "--case", "KF-PHR-0004"]
    done = kefu(tmp_path, api, case_db_url, *args, "--as", "li.phrase", "--field", "damage_detail=乳胶漆2桶破损")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "KF-PHR-0004: damaged_goods queued (mail)"
    refused = kefu(tmp_path, api, case_db_url, *args, "--as", "cai.phrase", "--field", "damage_detail=破损")
    assert refused.returncode == 2 and "may not" in refused.stderr and len(refused.stderr.splitlines()) == 1
    unknown = kefu(tmp_path, api, case_db_url, "message", "send", "apology", "--case", "KF-PHR-0004", "--as", "x")
    assert unknown.returncode == 2 and "unknown message type 'apology'" in unknown.stderr
    with unit_of_work() as session:
        # the casework database is shared with the other case tests: this case's customer's mail only
        mails = session.scalars(select(OutboxMessage).where(OutboxMessage.recipient == "zhang4@example.com")).all()
        assert [(m.message_type, m.recipient) for m in mails] == [("damaged_goods", "zhang4@example.com")]
        assert "乳胶漆2桶破损" in mails[0].body_text
