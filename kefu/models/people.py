"""Customers and staff."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    Connection,
    Enum,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    event,
    false,
    func,
    text,
)
from sqlalchemy.orm import Mapped, Mapper, mapped_column, relationship

from kefu.models.base import Base, utcnow
from kefu.models.enums import CustomerTier, Role


def _enum(enum_cls: type, name: str) -> Enum:
    return Enum(enum_cls, name=name, native_enum=False, values_callable=lambda e: [m.value for m in e], length=32)


class Customer(Base):
    """客户基本信息 (seed 000 ch.4 客户信息表): name, contact person, contact methods, addresses, industry, needs and
    preferences. ``code`` (客户编号) names the customer on the command line and in Prefect (never the name);
    ``address`` is the main address, ``more_addresses`` further pick-up or delivery addresses."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str | None] = mapped_column(String(32), unique=True, index=True)  # a unique index: added in place
    tier: Mapped[CustomerTier] = mapped_column(_enum(CustomerTier, "customer_tier"), default=CustomerTier.GENERAL)
    name: Mapped[str] = mapped_column(String(200))
    contact_person: Mapped[str | None] = mapped_column(String(100))
    phones: Mapped[list[str]] = mapped_column(JSON, default=list)
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    address: Mapped[str | None] = mapped_column(String(500))
    more_addresses: Mapped[list[str]] = mapped_column(JSON, default=list)
    industry: Mapped[str | None] = mapped_column(String(100))
    needs: Mapped[str | None] = mapped_column(Text)
    preferences: Mapped[str | None] = mapped_column(Text)
    account_manager_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_customers_email_lower", func.lower(email)),)

    @property
    def is_key_account(self) -> bool:
        return self.tier is CustomerTier.KEY


class CustomerPhone(Base):
    """The phone index: a returning complainant is found by phone in one indexed lookup.

    A number belongs to the first customer who gave it. Kept in step with ``Customer.phones`` on every ORM
    write (see ``_index_phones``); intake's fast path writes both itself.
    """

    __tablename__ = "customer_phones"

    phone: Mapped[str] = mapped_column(String(32), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)


# Both backends (SQLite >= 3.24 and PostgreSQL): a number already owned by a customer is left alone. One text
# statement, compiled once, for the ORM event below and intake's batched registrations.
INDEX_PHONES = text(
    "INSERT INTO customer_phones (phone, customer_id) VALUES (:phone, :customer_id) ON CONFLICT (phone) DO NOTHING"
)


@event.listens_for(Customer, "after_insert")
@event.listens_for(Customer, "after_update")
def _index_phones(_mapper: Mapper[Customer], connection: Connection, customer: Customer) -> None:
    if customer.phones:
        connection.execute(INDEX_PHONES, [{"phone": p, "customer_id": customer.id} for p in customer.phones])


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Staff(Base):
    """A person of the staff directory (``kefu staff``): roles, supervisor, the weekdays on duty, a sign-in name.

    ``password_hash`` is an argon2id hash (never the password); ``password_one_time``: the password was
    generated and shown once (the first administrator's) and must be changed at the first sign-in.
    """

    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    login: Mapped[str | None] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))
    supervisor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    on_duty: Mapped[list[str]] = mapped_column(JSON, default=list)  # weekdays of the rota, WEEKDAYS order
    active: Mapped[bool] = mapped_column(default=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    password_one_time: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    role_rows: Mapped[list[StaffRole]] = relationship(
        back_populates="staff", cascade="all, delete-orphan", lazy="selectin"
    )
    supervisor: Mapped[Staff | None] = relationship(remote_side="Staff.id")

    @property
    def roles(self) -> set[Role]:
        return {row.role for row in self.role_rows}

    def grant(self, role: Role) -> None:
        if role not in self.roles:
            self.role_rows.append(StaffRole(role=role))

    def revoke(self, role: Role) -> None:
        self.role_rows[:] = [row for row in self.role_rows if row.role is not role]


class StaffRole(Base):
    __tablename__ = "staff_roles"
    __table_args__ = (UniqueConstraint("staff_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    role: Mapped[Role] = mapped_column(_enum(Role, "staff_role"))

    staff: Mapped[Staff] = relationship(back_populates="role_rows")


class CommunicationRecord(Base):
    """沟通记录: every contact with a customer (time, channel, summary, responsible person, follow-ups)."""

    __tablename__ = "communication_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    complaint_id: Mapped[int | None] = mapped_column(ForeignKey("complaints.id"), index=True)
    at: Mapped[dt.datetime]
    channel: Mapped[str] = mapped_column(String(32))
    summary: Mapped[str] = mapped_column(Text)
    responsible_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    follow_up_items: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # issue 17: what kind of contact (``kefu.models.contacts.ContactKind``), the customer's satisfaction (1–5) when
    # asked, remarks, and the follow-up item's owner and due time; ``follow_up_open``: a follow-up still to be done
    # (a problem a routine callback found that is not a complaint: feedback until the feedback process lands).
    kind: Mapped[str] = mapped_column(String(32), default="contact", server_default="contact", index=True)
    satisfaction: Mapped[int | None]
    remarks: Mapped[str | None] = mapped_column(Text)
    follow_up_owner_id: Mapped[int | None]  # a staff id (no FK: a column added in place on SQLite)
    follow_up_due_at: Mapped[dt.datetime | None]
    follow_up_open: Mapped[bool] = mapped_column(default=False, server_default=false())
    # 业务回顾 (seed 003 §2.3 每季度一次全面业务回顾和需求调研): this contact was the quarter's business review;
    # ``None`` for records made before the contact cadence (intake's complaint records): not a review.
    business_review: Mapped[bool | None]
