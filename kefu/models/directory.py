"""The staff directory: who works here, their roles (the policy's), their supervisor, the weekdays they are on
duty, and the first administrator. Repository functions: they take the session and never commit.

A person is named on the command line by their sign-in name (``login``) or their staff id. An import is all or
nothing: every row is checked first (against the directory and against the other rows), and one bad row means
nothing is imported, with every bad row reported by its line and reason.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kefu.models.access import hash_password, new_password
from kefu.models.people import WEEKDAYS, Staff, StaffRole
from kefu.models.policy import Policy, Role

LOGIN = re.compile(r"[a-z][a-z0-9._-]{1,63}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
PHONE = re.compile(r"\+?[0-9][0-9 -]{5,30}")
COLUMNS = ("name", "login", "roles", "email", "phone", "supervisor", "on_duty")
FIRST_ADMIN_LOGIN = "admin"


class DirectoryError(ValueError):
    """A directory change Kefu refuses (unknown person, bad value): nothing was changed."""


@dataclass(frozen=True)
class RowProblem:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class ImportRefused(DirectoryError):
    def __init__(self, problems: list[RowProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


@dataclass
class StaffEntry:
    """One person as given on the command line or in an import row (strings as typed)."""

    name: str
    login: str
    roles: list[str] = field(default_factory=list)
    email: str = ""
    phone: str = ""
    supervisor: str = ""
    on_duty: str = ""


def find_staff(session: Session, ref: str) -> Staff | None:
    """The person a command names: a staff id (digits) or a sign-in name."""
    ref = ref.strip()
    if ref.isdigit():
        return session.get(Staff, int(ref))
    return session.scalars(select(Staff).where(Staff.login == ref.lower())).first()


def get_staff(session: Session, ref: str) -> Staff:
    person = find_staff(session, ref)
    if person is None:
        raise DirectoryError(f"no staff member '{ref}' (give a sign-in name or a staff id)")
    return person


def parse_role(text: str, policy: Policy) -> Role:
    """A role by its id (``agent``) or its name in the policy (``客服人员``)."""
    text = text.strip()
    for role, name in policy.roles.names.items():
        if text in {role.value, name}:
            return role
    known = ", ".join(f"{r.value} ({n})" for r, n in policy.roles.names.items())
    raise DirectoryError(f"unknown role '{text}' (roles: {known})")


def parse_on_duty(text: str) -> list[str]:
    """``mon-fri``, ``mon,wed,fri`` or ``mon-fri,sat`` -> the weekdays in order; empty -> none."""
    days: set[str] = set()
    for part in re.split(r"[,;\s]+", text.strip().lower()):
        if not part:
            continue
        first, _, last = part.partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise DirectoryError(f"on duty '{text}': days are {', '.join(WEEKDAYS)}, e.g. mon-fri or mon,wed,fri")
        start, end = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        if end < start:
            raise DirectoryError(f"on duty '{part}': the range runs backwards")
        days.update(WEEKDAYS[start : end + 1])
    return [d for d in WEEKDAYS if d in days]


def _split_roles(text: str) -> list[str]:
    return [r for r in re.split(r"[,;，；、\s]+", text.strip()) if r]


def _checked(entry: StaffEntry, policy: Policy) -> tuple[list[str], list[Role], list[str]]:
    """Problems with one entry on its own, its roles and its on-duty days."""
    problems: list[str] = []
    if not entry.name.strip():
        problems.append("name is empty")
    elif len(entry.name.strip()) > 100:
        problems.append("name is longer than 100 characters")
    if not LOGIN.fullmatch(entry.login.strip().lower()):
        problems.append(
            f"login '{entry.login}' must be 2–64 characters: a letter, then letters, digits, '.', '_' or '-'"
        )
    roles: list[Role] = []
    if not entry.roles:
        problems.append("no role given")
    for text in entry.roles:
        try:
            roles.append(parse_role(text, policy))
        except DirectoryError as exc:
            problems.append(str(exc))
    if entry.email.strip() and not EMAIL.fullmatch(entry.email.strip()):
        problems.append(f"email '{entry.email}' is not an e-mail address")
    if entry.phone.strip() and not PHONE.fullmatch(entry.phone.strip()):
        problems.append("phone is not a phone number")  # the number itself is personal data: not repeated
    days: list[str] = []
    try:
        days = parse_on_duty(entry.on_duty)
    except DirectoryError as exc:
        problems.append(str(exc))
    return problems, roles, days


def add_people(session: Session, entries: Sequence[tuple[int, StaffEntry]], policy: Policy) -> list[Staff]:
    """Add every entry (``(line, entry)``) or none: ``ImportRefused`` lists each bad one with its line and reason.

    A supervisor is named by sign-in name or staff id, of someone in the directory or in ``entries``.
    """
    problems: list[RowProblem] = []
    logins = {e.login.strip().lower() for _, e in entries}
    existing = set(session.scalars(select(Staff.login).where(Staff.login.in_(logins))))
    seen: dict[str, int] = {}
    checked: list[tuple[StaffEntry, list[Role], list[str]]] = []
    for line, entry in entries:
        reasons, roles, days = _checked(entry, policy)
        login = entry.login.strip().lower()
        if login in existing:
            reasons.append(f"login '{login}' is taken by someone in the directory")
        elif login in seen:
            reasons.append(f"login '{login}' is also on line {seen[login]}")
        seen.setdefault(login, line)
        boss = entry.supervisor.strip().lower()
        if boss:
            if boss == login:
                reasons.append("a person cannot be their own supervisor")
            elif boss not in logins:
                found = find_staff(session, boss)
                if found is None or not found.active:
                    reasons.append(
                        f"supervisor '{entry.supervisor}' is neither an active staff member nor one of the people "
                        "being added"
                    )
        problems.extend(RowProblem(line, r) for r in reasons)
        checked.append((entry, roles, days))
    if problems:
        raise ImportRefused(problems)
    added: dict[str, Staff] = {}
    for entry, roles, days in checked:
        person = Staff(
            name=entry.name.strip(),
            login=entry.login.strip().lower(),
            email=entry.email.strip() or None,
            phone=entry.phone.strip() or None,
            on_duty=days,
        )
        for role in roles:
            person.grant(role)
        session.add(person)
        added[person.login or ""] = person
    session.flush()
    for entry, _, _ in checked:
        boss = entry.supervisor.strip().lower()
        if boss:
            chief = added.get(boss) or find_staff(session, boss)
            assert chief is not None  # checked above
            added[entry.login.strip().lower()].supervisor_id = chief.id
    session.flush()
    return list(added.values())


def read_rows(path: Path) -> list[tuple[int, StaffEntry]]:
    """The people in a CSV (UTF-8, a header row) or XLSX file (first sheet, a header row), with their line numbers.

    Columns: ``name, login, roles, email, phone, supervisor, on_duty``; ``roles`` separated by commas, spaces
    or 、. Unknown or missing required columns are refused before any row is read.
    """
    suffix = path.suffix.lower()
    if suffix == ".csv":
        table = _csv_rows(path.read_bytes())
    elif suffix == ".xlsx":
        table = _xlsx_rows(path)
    else:
        raise DirectoryError(f"{path.name}: give a .csv or .xlsx file")
    if not table:
        raise DirectoryError(f"{path.name} is empty: a header row ({', '.join(COLUMNS)}) then one row per person")
    _, header = table[0]
    columns = [h.strip().lower() for h in header]
    unknown = [c for c in columns if c and c not in COLUMNS]
    missing = [c for c in ("name", "login", "roles") if c not in columns]
    if unknown or missing:
        raise DirectoryError(
            f"{path.name} line 1: "
            + "; ".join(
                ([f"unknown column(s) {', '.join(unknown)}"] if unknown else [])
                + ([f"missing column(s) {', '.join(missing)}"] if missing else [])
            )
            + f" (columns: {', '.join(COLUMNS)})"
        )
    entries: list[tuple[int, StaffEntry]] = []
    for line, cells in table[1:]:
        if not any(c.strip() for c in cells):
            continue
        values = {c: (cells[i] if i < len(cells) else "") for i, c in enumerate(columns) if c}
        entries.append(
            (
                line,
                StaffEntry(
                    name=values.get("name", ""),
                    login=values.get("login", ""),
                    roles=_split_roles(values.get("roles", "")),
                    email=values.get("email", ""),
                    phone=values.get("phone", ""),
                    supervisor=values.get("supervisor", ""),
                    on_duty=values.get("on_duty", ""),
                ),
            )
        )
    if not entries:
        raise DirectoryError(f"{path.name} has a header but no people")
    return entries


def _csv_rows(data: bytes) -> list[tuple[int, list[str]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DirectoryError(f"the file is not UTF-8 text (byte {exc.start}); save the CSV as UTF-8") from None
    reader = csv.reader(io.StringIO(text))
    rows: list[tuple[int, list[str]]] = []
    line = 1
    for cells in reader:
        rows.append((line, cells))
        line = reader.line_num + 1
    return rows


def _xlsx_rows(path: Path) -> list[tuple[int, list[str]]]:
    from zipfile import BadZipFile

    from openpyxl import load_workbook

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (BadZipFile, OSError, KeyError, ValueError) as exc:
        raise DirectoryError(f"{path.name} is not a readable XLSX workbook: {exc}") from None
    try:
        sheet = book.worksheets[0]
        return [
            (n, ["" if v is None else str(v).strip() for v in values])
            for n, values in enumerate(sheet.iter_rows(values_only=True), start=1)
        ]
    finally:
        book.close()


def set_roles(session: Session, person: Staff, roles: Iterable[Role], *, grant: bool) -> None:
    """Grant or revoke ``roles``; refuses to take the admin role from the last active administrator."""
    roles = list(roles)
    if grant:
        for role in roles:
            person.grant(role)
    else:
        if Role.ADMIN in roles and Role.ADMIN in person.roles:
            _keep_an_admin(session, person)
        for role in roles:
            person.revoke(role)
    session.flush()


def deactivate(session: Session, person: Staff) -> None:
    """A person who left: kept (the cases they worked on name them) but no longer accepted on any step."""
    if Role.ADMIN in person.roles and person.active:
        _keep_an_admin(session, person)
    person.active = False
    session.flush()


def _keep_an_admin(session: Session, leaving: Staff) -> None:
    others = session.scalar(
        select(func.count(Staff.id))
        .join(StaffRole)
        .where(StaffRole.role == Role.ADMIN, Staff.active.is_(True), Staff.id != leaving.id)
    )
    if not others:
        raise DirectoryError(
            f"{leaving.login or leaving.id} is the last active administrator: grant admin to someone else first"
        )


def first_administrator(session: Session) -> tuple[Staff, str] | None:
    """On a directory without any administrator: create one, with a one-time password; else ``None``.

    Returns the person and the password, to be shown once (only its argon2 hash is stored; it must be changed at
    the first sign-in).
    """
    any_admin = session.scalars(select(StaffRole.id).where(StaffRole.role == Role.ADMIN).limit(1)).first()
    if any_admin is not None:
        return None
    login = FIRST_ADMIN_LOGIN
    taken = session.scalars(select(Staff.login).where(Staff.login.like(f"{FIRST_ADMIN_LOGIN}%")))
    used = set(taken)
    number = 1
    while login in used:
        number += 1
        login = f"{FIRST_ADMIN_LOGIN}{number}"
    password = new_password()
    person = Staff(name="系统管理员", login=login, password_hash=hash_password(password), password_one_time=True)
    person.grant(Role.ADMIN)
    session.add(person)
    session.flush()
    return person, password
