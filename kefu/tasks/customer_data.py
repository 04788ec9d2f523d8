"""Customer data by role: the one rule of who may see a customer's personal data in full, the customer as each
reader may see them, and the access log of full readings (seed 004 §6, seed 002 §二: 客户资料保密，按权限访问).

**The rule** (``full_access_reason``): for the customer of one case, a customer's name, contact person, phone
numbers, e-mail, address and any ID number in full are for

1. the case's owner (首问责任制: the first receiver);
2. the owner's supervisors, up the chain (``staff.supervisor``);
3. the customer's key-account team (seed 001: project manager, customer-service specialist, logistics dispatcher,
   after-sales; ``key_account_team``);
4. the roles the policy lists in ``roles.customer_contact``;

and masked for everyone else, in every output: ``kefu case show`` and every other command, the desk and case pages
(through ``read_customer``), and always in what Prefect shows (run summaries, artifacts, run names, events: anyone
who can open the Prefect UI reads them) and in log files (``kefu.notifications.pii.install_log_masking``).

**The access log**: every full reading through ``read_customer`` records who, when, which case and customer,
through what and why the rule let them (``kefu.models.personal_data``); ``kefu access log`` lists it for
supervisors. Repository functions: they take the session and never commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from kefu.models.accounts import KeyAccountMember
from kefu.models.complaints import Complaint
from kefu.models.enums import Role
from kefu.models.people import Customer, Staff
from kefu.models.personal_data import PersonalDataAccess
from kefu.models.policy import Policy, current_policy
from kefu.notifications.pii import mask_email, mask_pii, mask_text

# Who may list the access log (``kefu access log``): the supervisors, and the senior managers above them.
ACCESS_LOG_READERS = frozenset({Role.SUPERVISOR, Role.SENIOR_MANAGER})
NOT_GIVEN = "—"
_REGION_MARKS = ("省", "市", "区", "县", "旗", "州")  # the end of a province, city or district name
_ADDRESS_HEAD = 12  # where the region names end at the latest


def supervisors_of(person: Staff | None) -> list[Staff]:
    """``person``'s supervisor, theirs, and so on up the chain (a loop in the directory ends the chain)."""
    chain: list[Staff] = []
    seen = {person.id} if person is not None else set()
    boss = person.supervisor if person is not None else None
    while boss is not None and boss.id not in seen:
        chain.append(boss)
        seen.add(boss.id)
        boss = boss.supervisor
    return chain


def key_account_team(customer: Customer | None) -> set[int]:
    """The staff ids of a key account's team; none for a general customer.

    Seed 001's team is a project manager, a customer-service specialist, a logistics dispatcher and after-sales:
    the ``key_account_team`` table (``kefu.models.accounts.KeyAccountMember``), plus the account manager recorded
    on the customer before the team had its table (``customers.account_manager_id``, the project manager).
    """
    if customer is None or not customer.is_key_account:
        return set()
    team = {customer.account_manager_id} if customer.account_manager_id is not None else set()
    session = object_session(customer)
    if session is not None and customer.id is not None:
        team.update(
            session.scalars(select(KeyAccountMember.staff_id).where(KeyAccountMember.customer_id == customer.id))
        )
    return team


def full_access_reason(reader: Staff | None, complaint: Complaint, policy: Policy | None = None) -> str | None:
    """Why ``reader`` may see the personal data of ``complaint``'s customer in full, or ``None``: masked.

    ``owner``, ``supervisor``, ``key_account_team`` or ``role:<role>`` (the first that applies); an inactive
    person, or nobody named, sees the masked form.
    """
    if reader is None or not reader.active:
        return None
    if complaint.owner_id is not None and reader.id == complaint.owner_id:
        return "owner"
    if any(boss.id == reader.id for boss in supervisors_of(complaint.owner)):
        return "supervisor"
    if reader.id in key_account_team(complaint.customer):
        return "key_account_team"
    contact = (policy or current_policy()).roles.customer_contact
    role = next((r for r in contact if r in reader.roles), None)
    return None if role is None else f"role:{role.value}"


def customer_access_reason(reader: Staff | None, customer: Customer, policy: Policy | None = None) -> str | None:
    """The rule for a customer read outside any case (``kefu customer show/list``, ``kefu account show``): the same
    rule with the customer's key-account team in the owner's place. In full for

    1. the key-account team (``key_account_team``) and their supervisors up the chain;
    2. supervisors and senior managers (``ACCESS_LOG_READERS``: the people who also audit the readings);
    3. the roles the policy lists in ``roles.customer_contact``;

    masked for everyone else; an inactive person, or nobody named, sees the masked form.
    """
    if reader is None or not reader.active:
        return None
    team = key_account_team(customer)
    if reader.id in team:
        return "key_account_team"
    if team and object_session(customer) is not None:
        members = object_session(customer).scalars(select(Staff).where(Staff.id.in_(team)))  # type: ignore[union-attr]
        if any(boss.id == reader.id for member in members for boss in supervisors_of(member)):
            return "supervisor"
    if reader.roles & ACCESS_LOG_READERS:
        return "supervisor"
    contact = (policy or current_policy()).roles.customer_contact
    role = next((r for r in contact if r in reader.roles), None)
    return None if role is None else f"role:{role.value}"


def mask_name(name: str) -> str:
    """``张三`` → ``张*``; ``华星电子有限公司`` → ``华*******``: the first character stays, to tell people apart."""
    name = name.strip()
    return name[:1] + "*" * max(len(name) - 1, 1) if name else name


def mask_phone(phone: str) -> str:
    """``13812348000`` → ``138****8000``; a number of another shape keeps its first three and last four digits."""
    masked = mask_pii(phone)
    if masked != phone:
        return masked
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 11 else "****"


def mask_address(address: str) -> str:
    """Province, city and district only: ``上海市浦东新区张江路88号`` → ``上海市浦东新区***``; never the street and
    number (an address without them reads ``***``)."""
    address = address.strip()
    head = address[:_ADDRESS_HEAD]
    cut = max((head.rfind(mark) for mark in _REGION_MARKS), default=-1)
    return address[: cut + 1] + "***" if 0 < cut < len(address) - 1 else "***"


def masked_data(value: Any) -> Any:
    """A case event's data (or any JSON value) with every string's phones, ID numbers and e-mails masked."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {k: masked_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked_data(v) for v in value]
    return value


@dataclass(frozen=True)
class CustomerView:
    """A customer as one reader may see them: in full (``full``) or masked."""

    name: str
    contact_person: str | None
    phones: tuple[str, ...]
    email: str | None
    address: str | None
    key_account: bool
    full: bool
    more_addresses: tuple[str, ...] = ()

    def line(self) -> str:
        """One line for a terminal: ``customer: 张* (一般客户)  phone: 138****8000  email: z***@example.com ...``."""
        tier = "重点客户 key account" if self.key_account else "一般客户"
        contact = f"  contact: {self.contact_person}" if self.contact_person else ""
        return (
            f"customer: {self.name} ({tier}){contact}  phone: {', '.join(self.phones) or NOT_GIVEN}  "
            f"email: {self.email or NOT_GIVEN}  address: {self.address or NOT_GIVEN}"
        )


def customer_view(customer: Customer, *, full: bool) -> CustomerView:
    """``customer`` in full, or masked for a reader the rule does not entitle."""
    if full:
        return CustomerView(
            customer.name,
            customer.contact_person,
            tuple(customer.phones or ()),
            customer.email,
            customer.address,
            customer.is_key_account,
            True,
            tuple(customer.more_addresses or ()),
        )
    return CustomerView(
        mask_name(customer.name),
        mask_name(customer.contact_person) if customer.contact_person else None,
        tuple(mask_phone(p) for p in customer.phones or ()),
        mask_email(customer.email) if customer.email else None,
        mask_address(customer.address) if customer.address else None,
        customer.is_key_account,
        False,
        tuple(mask_address(a) for a in customer.more_addresses or ()),
    )


def read_customer(
    session: Session,
    reader: Staff | None,
    complaint: Complaint,
    *,
    through: str,
    policy: Policy | None = None,
    now: dt.datetime | None = None,
) -> CustomerView | None:
    """The customer of ``complaint`` as ``reader`` may see them; a full reading is recorded in the access log.

    The one call for anything showing a case's customer to a person (``kefu case show --as``, the case page):
    ``through`` names the way in (``kefu case show``, ``page:case``). ``None`` for a case without a customer.
    """
    customer = complaint.customer
    if customer is None:
        return None
    reason = full_access_reason(reader, complaint, policy)
    if reader is not None and reason is not None:
        session.add(
            PersonalDataAccess(
                staff_id=reader.id,
                complaint_id=complaint.id,
                customer_id=customer.id,
                at=now or dt.datetime.now(dt.UTC),
                through=through[:64],
                reason=reason,
            )
        )
        session.flush()
    return customer_view(customer, full=reason is not None)


def read_registered_customer(
    session: Session,
    reader: Staff | None,
    customer: Customer,
    *,
    through: str,
    policy: Policy | None = None,
    now: dt.datetime | None = None,
) -> CustomerView:
    """``customer`` (outside any case) as ``reader`` may see them; a full reading is recorded in the access log
    (without a case). The one call for the registry's outputs (``kefu customer show``, ``list``)."""
    reason = customer_access_reason(reader, customer, policy)
    if reader is not None and reason is not None:
        session.add(
            PersonalDataAccess(
                staff_id=reader.id,
                complaint_id=None,
                customer_id=customer.id,
                at=now or dt.datetime.now(dt.UTC),
                through=through[:64],
                reason=reason,
            )
        )
        session.flush()
    return customer_view(customer, full=reason is not None)


@dataclass(frozen=True)
class AccessRow:
    at: dt.datetime
    staff_id: int
    staff: str  # sign-in name, else the staff id
    staff_name: str
    case_no: str | None
    through: str
    reason: str


class AccessLogRefused(PermissionError):
    """The person may not list the access log."""


def check_access_log_reader(person: Staff | None) -> Staff:
    """Only active supervisors and senior managers list who read customers' personal data."""
    if person is None or not person.active or not (person.roles & ACCESS_LOG_READERS):
        who = "nobody named" if person is None else (person.login or str(person.id))
        raise AccessLogRefused(
            f"{who} may not list the personal data access log (roles that may: "
            f"{', '.join(sorted(r.value for r in ACCESS_LOG_READERS))})"
        )
    return person


def access_log(
    session: Session,
    *,
    case_no: str | None = None,
    staff_id: int | None = None,
    since: dt.datetime | None = None,
    limit: int = 1000,
) -> list[AccessRow]:
    """Full readings of customers' personal data, newest first, by case, by reader and from a time."""
    query = (
        select(PersonalDataAccess, Staff, Complaint.case_no)
        .join(Staff, Staff.id == PersonalDataAccess.staff_id)
        .outerjoin(Complaint, Complaint.id == PersonalDataAccess.complaint_id)
    )
    if case_no is not None:
        query = query.where(Complaint.case_no == case_no)
    if staff_id is not None:
        query = query.where(PersonalDataAccess.staff_id == staff_id)
    if since is not None:
        query = query.where(PersonalDataAccess.at >= since)
    query = query.order_by(PersonalDataAccess.at.desc(), PersonalDataAccess.id.desc()).limit(limit)
    return [
        AccessRow(row.at, person.id, person.login or str(person.id), person.name, number, row.through, row.reason)
        for row, person, number in session.execute(query).all()
    ]
