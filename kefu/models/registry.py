"""The customer registry (客户信息表, seed 000 ch.4): add customers one by one or from a file, all or nothing, and
find them by code. Repository functions: they take the session and never commit.

A customer is known by a code (客户编号, given or ``C000123`` from its id). A phone number or e-mail address that
belongs to a customer already on record (or to another row of the same file) is a duplicate: refused, with the
customer who has it named by code. Rows are checked like the staff directory's (``RowProblem``, ``ImportRefused``):
one bad row and nothing is added, every bad row listed with its line and reason. Personal data is never repeated in
a reason (a bad phone is "not a phone number", not the number).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from kefu.models.directory import EMAIL, DirectoryError, ImportRefused, RowProblem
from kefu.models.people import Customer, CustomerPhone
from kefu.models.tables import read_table

COLUMNS = (
    "code", "name", "contact_person", "phones", "email", "address", "more_addresses", "industry", "needs",
    "preferences",
)  # fmt: skip
CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
_MOBILE = re.compile(r"1[3-9]\d{9}")
_LANDLINE = re.compile(r"0\d{2,3}-?\d{7,8}(-\d{1,6})?")
_LIST_SEPARATORS = re.compile(r"[;；、\n]+")
_PHONE_SEPARATORS = re.compile(r"[,，;；、/]+")


class CustomerNotFound(DirectoryError):
    pass


@dataclass
class CustomerEntry:
    """One customer as given on the command line or in an import row (strings as typed)."""

    name: str
    code: str = ""
    contact_person: str = ""
    phones: list[str] = field(default_factory=list)
    email: str = ""
    address: str = ""
    more_addresses: list[str] = field(default_factory=list)
    industry: str = ""
    needs: str = ""
    preferences: str = ""

    @classmethod
    def from_row(cls, row: dict[str, str]) -> CustomerEntry:
        return cls(
            name=row.get("name", ""),
            code=row.get("code", ""),
            contact_person=row.get("contact_person", ""),
            phones=[p for p in _PHONE_SEPARATORS.split(row.get("phones", "")) if p],
            email=row.get("email", ""),
            address=row.get("address", ""),
            more_addresses=[a.strip() for a in _LIST_SEPARATORS.split(row.get("more_addresses", "")) if a.strip()],
            industry=row.get("industry", ""),
            needs=row.get("needs", ""),
            preferences=row.get("preferences", ""),
        )


def normalise_phone(raw: str) -> str | None:
    """``+86 138-0013-8000`` → ``13800138000``; a landline keeps one dash after its area code; ``None``: not a
    Chinese mobile or landline number."""
    text = re.sub(r"[\s()（）]", "", raw)
    for prefix in ("+86", "0086"):
        text = text.removeprefix(prefix)
    digits = text.replace("-", "")
    if _MOBILE.fullmatch(digits):
        return digits
    if _LANDLINE.fullmatch(text):
        if "-" in text:
            return text
        area = 3 if digits[1] in "12" else 4  # 010 and 02x have three digits, every other area code four
        return f"{digits[:area]}-{digits[area:]}"
    return None


def customer_code(customer: Customer) -> str:
    return customer.code or f"C{customer.id:06d}"


def find_customer(session: Session, ref: str) -> Customer | None:
    """The customer a command names: its code, or its id (digits)."""
    ref = ref.strip()
    found = session.scalars(select(Customer).where(func.upper(Customer.code) == ref.upper())).first()
    if found is None and ref.isdigit():
        found = session.get(Customer, int(ref))
    if found is None and re.fullmatch(r"[Cc]\d{6}", ref):
        found = session.get(Customer, int(ref[1:]))
    return found


def get_customer(session: Session, ref: str) -> Customer:
    customer = find_customer(session, ref)
    if customer is None:
        raise CustomerNotFound(f"no customer '{ref}' (give a customer code, e.g. C000012)")
    return customer


def _checked(entry: CustomerEntry) -> tuple[list[str], list[str]]:
    problems: list[str] = []
    name = entry.name.strip()
    if not name:
        problems.append("name is empty")
    elif len(name) > 200:
        problems.append("name is longer than 200 characters")
    if entry.code.strip() and not CODE.fullmatch(entry.code.strip()):
        problems.append(f"code '{entry.code}' must be 1–32 letters, digits, '-' or '_'")
    if len(entry.contact_person.strip()) > 100:
        problems.append("contact person is longer than 100 characters")
    phones: list[str] = []
    for number, raw in enumerate(entry.phones, start=1):
        phone = normalise_phone(raw)
        if phone is None:
            problems.append(f"phone {number} is not a mobile or landline number")  # the number is personal data
        elif phone not in phones:
            phones.append(phone)
    email = entry.email.strip()
    if email and (not EMAIL.fullmatch(email) or len(email) > 254):
        problems.append("email is not an e-mail address")
    if not phones and not email:
        problems.append("give a phone number or an e-mail address (联系方式)")
    for what, text, limit in (("address", entry.address, 500), ("industry", entry.industry, 100)):
        if len(text.strip()) > limit:
            problems.append(f"{what} is longer than {limit} characters")
    return problems, phones


def add_customers(session: Session, entries: Sequence[tuple[int, CustomerEntry]]) -> list[Customer]:
    """Add every entry (``(line, entry)``) or none: ``ImportRefused`` lists each bad one with its line and reason,
    duplicates (phone or e-mail of a customer on record, or of another row) with the customer or line that has it."""
    problems: list[RowProblem] = []
    checked: list[tuple[CustomerEntry, list[str]]] = []
    for line, entry in entries:
        own, phones = _checked(entry)
        checked.append((entry, phones))
        problems.extend(RowProblem(line, r) for r in own)
    all_phones = {p for _, phones in checked for p in phones}
    all_emails = {e.email.strip().lower() for e, _ in checked if e.email.strip()}
    all_codes = {e.code.strip().upper() for e, _ in checked if e.code.strip()}
    phone_owner = {
        phone: customer_code(customer)
        for phone, customer in session.execute(
            select(CustomerPhone.phone, Customer)
            .join(Customer, Customer.id == CustomerPhone.customer_id)
            .where(CustomerPhone.phone.in_(all_phones))
        ).tuples()
    }
    email_owner = {
        (c.email or "").lower(): customer_code(c)
        for c in session.scalars(select(Customer).where(func.lower(Customer.email).in_(all_emails)))
    }
    taken_codes = set(
        session.scalars(select(func.upper(Customer.code)).where(or_(func.upper(Customer.code).in_(all_codes))))
    )
    seen_phone: dict[str, int] = {}
    seen_email: dict[str, int] = {}
    seen_code: dict[str, int] = {}
    for (line, entry), (_, phones) in zip(entries, checked, strict=True):
        reasons: list[str] = []
        for number, phone in enumerate(phones, start=1):
            if phone in phone_owner:
                reasons.append(f"duplicate: phone {number} belongs to customer {phone_owner[phone]}")
            elif phone in seen_phone:
                reasons.append(f"duplicate: phone {number} is also on line {seen_phone[phone]}")
            seen_phone.setdefault(phone, line)
        email = entry.email.strip().lower()
        if email:
            if email in email_owner:
                reasons.append(f"duplicate: email belongs to customer {email_owner[email]}")
            elif email in seen_email:
                reasons.append(f"duplicate: email is also on line {seen_email[email]}")
            seen_email.setdefault(email, line)
        code = entry.code.strip().upper()
        if code:
            if code in taken_codes:
                reasons.append(f"code '{entry.code.strip()}' is taken by a customer on record")
            elif code in seen_code:
                reasons.append(f"code '{entry.code.strip()}' is also on line {seen_code[code]}")
            seen_code.setdefault(code, line)
        problems.extend(RowProblem(line, r) for r in reasons)
    if problems:
        raise ImportRefused(sorted(problems, key=lambda p: p.line))
    added: list[Customer] = []
    for entry, phones in checked:
        customer = Customer(
            code=entry.code.strip() or None,
            name=entry.name.strip(),
            contact_person=entry.contact_person.strip() or None,
            phones=phones,
            email=entry.email.strip() or None,
            address=entry.address.strip() or None,
            more_addresses=entry.more_addresses,
            industry=entry.industry.strip() or None,
            needs=entry.needs.strip() or None,
            preferences=entry.preferences.strip() or None,
        )
        session.add(customer)
        added.append(customer)
    session.flush()
    for customer in added:
        if customer.code is None:
            customer.code = f"C{customer.id:06d}"
    session.flush()
    return added


def read_customers(path: Path) -> list[tuple[int, CustomerEntry]]:
    """The customers of a CSV (UTF-8) or XLSX file with a header row; ``phones`` separated by commas, semicolons,
    slashes or 、, ``more_addresses`` by semicolons or 、."""
    return [(line, CustomerEntry.from_row(row)) for line, row in read_table(path, COLUMNS, ("name",))]
