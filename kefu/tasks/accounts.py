"""Key accounts (seed 001): the team, the monthly business figures (imported all or nothing, complaints counted from
Kefu's own cases when not given) and nominations for the programme. Repository functions: they take the session
and never commit."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu.models.accounts import BusinessFigures, KeyAccountMember, KeyAccountNomination, NominationSource, TeamRole
from kefu.models.complaints import Complaint
from kefu.models.directory import DirectoryError, ImportRefused, RowProblem
from kefu.models.enums import CustomerTier
from kefu.models.people import Customer, Staff
from kefu.models.policy import Policy
from kefu.models.registry import find_customer
from kefu.models.tables import read_table

if TYPE_CHECKING:
    import pandas as pd

FIGURE_COLUMNS_FRAME = (
    "customer_id",
    "month",
    "orders",
    "volume",
    "orders_on_time",
    "deliveries_on_time",
    "complaints",
)
FIGURE_COLUMNS = ("customer", "month", "orders", "volume", "orders_on_time", "deliveries_on_time", "complaints")
_MONTH = re.compile(r"(\d{4})[-/.年](\d{1,2})月?(?:[-/.]\d{1,2}日?)?(?: 00:00:00)?")


class AccountError(DirectoryError):
    """A key-account change Kefu refuses: nothing was changed."""


# --- the team ------------------------------------------------------------------------------------------------------


def parse_team_role(text: str) -> TeamRole:
    from kefu.models.accounts import TEAM_ROLE_ZH

    text = text.strip()
    for role, name in TEAM_ROLE_ZH.items():
        if text in {role.value, name}:
            return role
    known = ", ".join(f"{r.value} ({n})" for r, n in TEAM_ROLE_ZH.items())
    raise AccountError(f"unknown team role '{text}' (team roles: {known})")


def team_members(session: Session, customer_id: int) -> list[tuple[TeamRole, Staff]]:
    """The customer's team, in the seed's order (project manager first)."""
    rows = session.execute(
        select(KeyAccountMember.team_role, Staff)
        .join(Staff, Staff.id == KeyAccountMember.staff_id)
        .where(KeyAccountMember.customer_id == customer_id)
    ).tuples()
    order = list(TeamRole)
    return sorted(rows, key=lambda r: order.index(r[0]))


def assign_member(session: Session, customer: Customer, role: TeamRole, person: Staff) -> None:
    """``person`` takes ``role`` in ``customer``'s team (replacing whoever held it). Only a key account has one."""
    if not customer.is_key_account:
        raise AccountError(f"customer {customer.code} is not a key account: its team comes with admission")
    if not person.active:
        raise AccountError(f"{person.login or person.id} is deactivated")
    member = session.scalars(
        select(KeyAccountMember).where(KeyAccountMember.customer_id == customer.id, KeyAccountMember.team_role == role)
    ).first()
    if member is None:
        session.add(KeyAccountMember(customer_id=customer.id, staff_id=person.id, team_role=role))
    else:
        member.staff_id = person.id
    if role is TeamRole.PROJECT_MANAGER:
        customer.account_manager_id = person.id
    session.flush()


# --- business figures ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FigureRow:
    customer_id: int
    month: dt.date
    orders: int
    volume: Decimal
    orders_on_time: int
    deliveries_on_time: int
    complaints: int | None


def parse_month(text: str) -> dt.date | None:
    """``2026-11``, ``2026/11``, ``2026年11月``, ``2026-11-01`` → 2026-11-01; ``None`` for anything else."""
    match = _MONTH.fullmatch(text.strip())
    if match is None or not 1 <= int(match.group(2)) <= 12:
        return None
    return dt.date(int(match.group(1)), int(match.group(2)), 1)


def _count(row: dict[str, str], column: str, reasons: list[str], *, optional: bool = False) -> int | None:
    text = row.get(column, "").strip().replace(",", "")
    if not text and optional:
        return None
    if text.endswith(".0"):
        text = text[:-2]  # a spreadsheet's whole number
    if not text.isdigit():
        reasons.append(f"{column} '{row.get(column, '')}' is not a whole number ≥ 0")
        return None
    return int(text)


def check_figures(session: Session, rows: Sequence[tuple[int, dict[str, str]]]) -> list[FigureRow]:
    """Every row checked (customer known, month, whole numbers, on-time counts not above orders, one row per
    customer and month); ``ImportRefused`` with every bad row, else the rows."""
    problems: list[RowProblem] = []
    checked: list[FigureRow] = []
    seen: dict[tuple[int, dt.date], int] = {}
    for line, row in rows:
        reasons: list[str] = []
        customer = find_customer(session, row.get("customer", "")) if row.get("customer", "").strip() else None
        if customer is None:
            reasons.append(f"no customer '{row.get('customer', '')}' (give a customer code)")
        month = parse_month(row.get("month", ""))
        if month is None:
            reasons.append(f"month '{row.get('month', '')}' is not a month (2026-11)")
        orders = _count(row, "orders", reasons)
        on_time = _count(row, "orders_on_time", reasons)
        delivered = _count(row, "deliveries_on_time", reasons)
        complaints = _count(row, "complaints", reasons, optional=True)
        volume: Decimal | None = None
        try:
            volume = Decimal(row.get("volume", "").strip().replace(",", ""))
            if not volume.is_finite() or volume < 0:
                raise InvalidOperation
        except InvalidOperation:
            reasons.append(f"volume '{row.get('volume', '')}' is not a number ≥ 0")
        for name, value in (("orders_on_time", on_time), ("deliveries_on_time", delivered)):
            if value is not None and orders is not None and value > orders:
                reasons.append(f"{name} ({value}) is more than orders ({orders})")
        if customer is not None and month is not None:
            key = (customer.id, month)
            if key in seen:
                reasons.append(f"{row['customer']} {month:%Y-%m} is also on line {seen[key]}")
            seen.setdefault(key, line)
        problems.extend(RowProblem(line, r) for r in reasons)
        if not reasons:
            assert customer is not None and month is not None and orders is not None and volume is not None
            assert on_time is not None and delivered is not None
            checked.append(FigureRow(customer.id, month, orders, volume, on_time, delivered, complaints))
    if problems:
        raise ImportRefused(problems)
    return checked


def import_figures(session: Session, path: Path) -> list[FigureRow]:
    """A file of monthly figures, all or nothing; a customer's month already on record is replaced by the file's."""
    rows = check_figures(session, read_table(path, FIGURE_COLUMNS, FIGURE_COLUMNS[:-1]))
    for row in rows:
        existing = session.scalars(
            select(BusinessFigures).where(
                BusinessFigures.customer_id == row.customer_id, BusinessFigures.month == row.month
            )
        ).first()
        target = existing or BusinessFigures(customer_id=row.customer_id, month=row.month)
        target.orders, target.volume = row.orders, row.volume
        target.orders_on_time, target.deliveries_on_time = row.orders_on_time, row.deliveries_on_time
        target.complaints = row.complaints
        session.add(target)
    session.flush()
    return rows


def figures_frame(session: Session, *, customer_id: int | None = None, policy: Policy) -> pd.DataFrame:
    """Every customer's monthly figures as one frame (``customer_id, month, orders, volume, orders_on_time,
    deliveries_on_time, complaints``); a month without a complaint count gets the number of the customer's
    complaints Kefu received that month (on the policy's clock)."""
    import pandas as pd

    query = select(
        BusinessFigures.customer_id,
        BusinessFigures.month,
        BusinessFigures.orders,
        BusinessFigures.volume,
        BusinessFigures.orders_on_time,
        BusinessFigures.deliveries_on_time,
        BusinessFigures.complaints,
    )
    if customer_id is not None:
        query = query.where(BusinessFigures.customer_id == customer_id)
    frame = pd.DataFrame(session.execute(query).all(), columns=list(FIGURE_COLUMNS_FRAME))
    if frame.empty:
        return frame
    frame["month"] = pd.to_datetime(frame["month"])
    frame["volume"] = frame["volume"].astype(float)
    missing = frame["complaints"].isna()
    if missing.any():
        cases = select(Complaint.customer_id, Complaint.received_at).where(Complaint.customer_id.is_not(None))
        if customer_id is not None:
            cases = cases.where(Complaint.customer_id == customer_id)
        received = pd.DataFrame(session.execute(cases).all(), columns=["customer_id", "received_at"])
        counted = pd.Series(dtype="int64")
        if not received.empty:
            local = pd.to_datetime(received["received_at"], utc=True).dt.tz_convert(policy.timezone)
            received["month"] = local.dt.tz_localize(None).dt.to_period("M").dt.to_timestamp()
            counted = received.groupby(["customer_id", "month"]).size()
        keys = pd.MultiIndex.from_frame(frame.loc[missing, ["customer_id", "month"]])
        frame.loc[missing, "complaints"] = counted.reindex(keys, fill_value=0).to_numpy()
    frame["complaints"] = frame["complaints"].astype("int64")
    return frame


# --- nominations ---------------------------------------------------------------------------------------------------


def open_nomination(session: Session, customer_id: int) -> KeyAccountNomination | None:
    return session.scalars(
        select(KeyAccountNomination).where(
            KeyAccountNomination.customer_id == customer_id, KeyAccountNomination.status == "open"
        )
    ).first()


def nominate(
    session: Session,
    customer: Customer,
    *,
    source: NominationSource,
    by: Staff | None = None,
    reason: str | None = None,
    month: dt.date | None = None,
    score: float | None = None,
    explanation: str | None = None,
) -> KeyAccountNomination:
    """Put ``customer`` forward for the programme; refused for a key account or one already nominated."""
    if customer.tier is CustomerTier.KEY:
        raise AccountError(f"customer {customer.code} is already a key account")
    if open_nomination(session, customer.id) is not None:
        raise AccountError(f"customer {customer.code} is already nominated (its onboarding is open)")
    row = KeyAccountNomination(
        customer_id=customer.id,
        source=source,
        nominated_by_id=by.id if by is not None else None,
        reason=reason,
        month=month,
        score=None if score is None else Decimal(f"{score:.2f}"),
        explanation=explanation,
    )
    session.add(row)
    session.flush()
    return row


def nominated_customer_ids(session: Session) -> set[int]:
    """Customers with an open nomination."""
    return set(session.scalars(select(KeyAccountNomination.customer_id).where(KeyAccountNomination.status == "open")))


# --- identification ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A general customer scoring at or above the threshold, not yet nominated: code, industry, score, the
    explanation (no personal data: the code, not the name)."""

    customer_id: int
    code: str
    industry: str | None
    score: float
    explanation: str


def customers_frame(session: Session) -> pd.DataFrame:
    import pandas as pd

    rows = session.execute(select(Customer.id, Customer.code, Customer.industry, Customer.tier)).all()
    frame = pd.DataFrame(rows, columns=["customer_id", "code", "industry", "tier"])
    frame["code"] = [c or f"C{i:06d}" for i, c in zip(frame["customer_id"], frame["code"], strict=True)]
    return frame


def new_candidates(session: Session, policy: Policy, as_of: dt.date) -> list[Candidate]:
    """The month's new candidates: every customer scored (``account_scores.score_customers``), those at or above
    the threshold that are general customers without an open nomination, highest score first."""
    from kefu.tasks.account_scores import explain, score_customers

    rules = policy.key_accounts.identification
    customers = customers_frame(session)
    if customers.empty:
        return []
    figures = figures_frame(session, policy=policy)
    if figures.empty:
        return []
    scores = score_customers(figures, customers, rules, as_of)
    info = customers.set_index("customer_id")
    taken = nominated_customer_ids(session)
    above = scores[scores["score"] >= rules.threshold].sort_values(["score", "customer_id"], ascending=[False, True])
    result: list[Candidate] = []
    for _, row in above.iterrows():
        customer_id = int(row["customer_id"])
        if info.at[customer_id, "tier"] == CustomerTier.KEY or customer_id in taken:
            continue
        given = info.at[customer_id, "industry"]
        industry = str(given) if isinstance(given, str) and given else None
        result.append(
            Candidate(
                customer_id, str(info.at[customer_id, "code"]), industry, float(row["score"]),
                explain(row, industry, rules),
            )
        )  # fmt: skip
    return result
