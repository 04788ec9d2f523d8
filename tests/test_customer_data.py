"""Customer data by role: who sees a customer's personal data in full (one rule), what everyone else sees, the
access log of full readings, and log records with personal data masked in every Kefu process."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu.models.complaints import Complaint
from kefu.models.enums import Channel, ComplaintStatus, CustomerTier, Role, Severity
from kefu.models.people import Customer, Staff
from kefu.models.personal_data import AccessLogIsAppendOnly, PersonalDataAccess
from kefu.models.policy import Policy
from kefu.notifications.pii import install_log_masking
from kefu.tasks.customer_data import (
    AccessLogRefused,
    access_log,
    check_access_log_reader,
    full_access_reason,
    mask_address,
    masked_data,
    read_customer,
)
from tests.support.clock import SHANGHAI

PHONE, ID_NO, EMAIL = "13912345678", "110101199003071234", "wang.wu@example.com"
ADDRESS = "北京市朝阳区建国路88号院3号楼"


def person(db: Session, name: str, login: str, *roles: Role, boss: Staff | None = None) -> Staff:
    staff = Staff(name=name, login=login, supervisor_id=boss.id if boss else None)
    for role in roles:
        staff.grant(role)
    db.add(staff)
    db.flush()
    return staff


@pytest.fixture
def directory(db: Session) -> dict[str, Staff]:
    """A small directory: a senior manager over a supervisor over two agents, a dispatcher, a project manager who
    is a key account's manager, and someone in market."""
    senior = person(db, "高总", "gao", Role.SENIOR_MANAGER)
    chief = person(db, "赵主管", "zhao", Role.SUPERVISOR, boss=senior)
    owner = person(db, "李客服", "li", Role.AGENT, boss=chief)
    other = person(db, "孙客服", "sun", Role.AGENT, boss=chief)
    dispatcher = person(db, "周调度", "zhou", Role.DISPATCHER)
    manager = person(db, "陈项目", "chen", Role.PROJECT_MANAGER)
    market = person(db, "吴市场", "wu", Role.MARKET, boss=senior)
    db.commit()
    return {s.login or "": s for s in (senior, chief, owner, other, dispatcher, manager, market)}


def case(db: Session, owner: Staff, *, key_manager: Staff | None = None, no: str = "KF-PD-0001") -> Complaint:
    customer = Customer(
        name="王五",
        contact_person="王五",
        phones=[PHONE],
        email=EMAIL,
        address=ADDRESS,
        tier=CustomerTier.KEY if key_manager else CustomerTier.GENERAL,
        account_manager_id=key_manager.id if key_manager else None,
    )
    complaint = Complaint(
        case_no=no,
        channel=Channel.HOTLINE,
        received_at=dt.datetime(2026, 11, 2, 10, 0, tzinfo=SHANGHAI),
        severity=Severity.GENERAL,
        status=ComplaintStatus.REGISTERED,
        customer=customer,
        owner_id=owner.id,
        content=f"身份证 {ID_NO}，电话 {PHONE}",
    )
    db.add(complaint)
    db.commit()
    return complaint


def agents_see_contact(policy: Policy) -> Policy:
    """A company that lets every agent call any customer back: ``roles.customer_contact`` widened to agents."""
    roles = policy.roles.model_copy(update={"customer_contact": [Role.AGENT]})
    return policy.model_copy(update={"roles": roles})


def test_the_owner_their_supervisors_up_the_chain_and_the_key_account_team_see_in_full_whatever_the_roles_policy(
    db: Session, directory: dict[str, Staff], policy: Policy
) -> None:
    narrow = policy  # the shipped policy: customer_contact names no role (issue 12: owner, supervisors, team only)
    assert policy.roles.customer_contact == []
    wide = agents_see_contact(policy)
    complaint = case(db, directory["li"], key_manager=directory["chen"])
    reasons = {login: full_access_reason(s, complaint, narrow) for login, s in directory.items()}
    assert reasons == {
        "li": "owner",
        "zhao": "supervisor",
        "gao": "supervisor",  # the supervisor's supervisor
        "chen": "key_account_team",
        "sun": None,  # an agent of the same team, not on this case
        "zhou": None,
        "wu": None,  # under the senior manager, but not above the owner
    }
    # A company's roles.customer_contact adds whole roles: here agents (not dispatchers or market).
    assert full_access_reason(directory["sun"], complaint, wide) == "role:agent"
    assert full_access_reason(directory["zhou"], complaint, wide) is None
    assert full_access_reason(directory["wu"], complaint, wide) is None
    assert full_access_reason(None, complaint, wide) is None
    directory["li"].active = False  # a person who left sees nothing in full, even on their own case
    assert full_access_reason(directory["li"], complaint, narrow) is None
    general = case(db, directory["sun"], no="KF-PD-0002")  # a general customer has no key-account team
    assert full_access_reason(directory["chen"], general, narrow) is None


def test_a_full_reading_is_logged_with_who_when_which_case_and_how_and_a_masked_one_shows_no_number_and_logs_nothing(
    db: Session, directory: dict[str, Staff], policy: Policy
) -> None:
    complaint = case(db, directory["li"])
    at = dt.datetime(2026, 11, 3, 9, 30, tzinfo=SHANGHAI)
    full = read_customer(db, directory["zhao"], complaint, through="page:case", policy=policy, now=at)
    assert full is not None and full.full and full.phones == (PHONE,) and full.email == EMAIL
    assert full.address == ADDRESS and full.name == "王五"
    masked = read_customer(db, directory["zhou"], complaint, through="kefu case show", policy=policy, now=at)
    assert masked is not None and not masked.full
    line = masked.line()
    for secret in (PHONE, EMAIL, "建国路88号", "王五"):
        assert secret not in line
    assert "139****5678" in line and "w***@example.com" in line and "北京市朝阳区***" in line and "王*" in line
    db.commit()
    rows = db.scalars(select(PersonalDataAccess)).all()
    assert [(r.staff_id, r.complaint_id, r.through, r.reason) for r in rows] == [
        (directory["zhao"].id, complaint.id, "page:case", "supervisor")
    ]
    assert rows[0].at == at
    db.delete(rows[0])
    with pytest.raises(AccessLogIsAppendOnly):  # nobody covers their tracks
        db.flush()
    db.rollback()

    listed = access_log(db, case_no=complaint.case_no)
    assert [(r.staff, r.case_no, r.through) for r in listed] == [("zhao", complaint.case_no, "page:case")]
    assert access_log(db, staff_id=directory["zhou"].id) == []
    assert access_log(db, since=at + dt.timedelta(minutes=1)) == []
    assert check_access_log_reader(directory["zhao"]) is directory["zhao"]
    for refused in (directory["li"], directory["zhou"], None):
        with pytest.raises(AccessLogRefused):
            check_access_log_reader(refused)


def test_masked_forms_keep_the_region_and_hide_every_number_in_free_text_and_answers() -> None:
    assert mask_address("上海市浦东新区张江路88号") == "上海市浦东新区***"
    assert mask_address("张江路88号") == "***"
    answer = {"summary": f"已致电 {PHONE}，核对身份证 {ID_NO}，邮件 {EMAIL}", "departments": ["运营部"], "n": 3}
    assert masked_data(answer) == {
        "summary": "已致电 139****5678，核对身份证 110101********1234，邮件 w***@example.com",
        "departments": ["运营部"],
        "n": 3,
    }


@pytest.fixture
def masked_logging() -> Iterator[None]:
    """Log masking installed as a Kefu process installs it, taken out again after the test (this is pytest's
    process)."""
    factory = logging.getLogRecordFactory()
    install_log_masking()
    install_log_masking()  # idempotent: a second call adds nothing
    try:
        yield
    finally:
        logging.setLogRecordFactory(factory)


@pytest.mark.usefixtures("masked_logging")
def test_every_log_record_is_written_with_phones_id_numbers_and_emails_masked_whatever_the_logger(
    tmp_path: Path,
) -> None:
    path = tmp_path / "worker.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    loggers = [logging.getLogger(n) for n in ("kefu.worker", "prefect.flow_runs", "uvicorn.error")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.INFO)
    try:
        loggers[0].info("customer %s called about %s", PHONE, {"email": EMAIL})
        loggers[1].warning("step answer: 身份证 %s", ID_NO)
        try:
            raise ValueError(f"no such recipient {EMAIL} / {PHONE}")
        except ValueError:
            loggers[2].exception("delivery failed")
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
            logger.propagate = True
            logger.setLevel(logging.NOTSET)
        handler.close()
    written = path.read_text(encoding="utf-8")
    for secret in (PHONE, ID_NO, EMAIL):
        assert secret not in written
    assert "kefu.worker customer 139****5678 called about {'email': 'w***@example.com'}" in written
    assert "110101********1234" in written and "ValueError: no such recipient w***@example.com" in written
