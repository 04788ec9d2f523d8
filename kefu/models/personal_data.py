"""Who read a customer's personal data in full: the access log (seed 004 §6: 客户资料保密，按权限访问).

One row per reading of a case's customer in full (name, phone numbers, e-mail, address, ID numbers): who, when,
which case and customer, through what (``cli:case show``, ``page:case``, ...) and why the rule let them
(``owner``, ``supervisor``, ``key_account_team``, ``role:agent``). Masked readings write nothing. Append-only like
the case events; ``kefu access log`` lists it for supervisors. The rule itself is ``kefu.tasks.customer_data``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, event
from sqlalchemy.orm import Mapped, Session, mapped_column

from kefu.models.base import Base, utcnow


class PersonalDataAccess(Base):
    """One full reading of a customer's personal data."""

    __tablename__ = "personal_data_access"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    complaint_id: Mapped[int | None] = mapped_column(ForeignKey("complaints.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    through: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(64))


class AccessLogIsAppendOnly(Exception):
    """Readings in the access log are never changed or deleted."""


@event.listens_for(Session, "before_flush")
def _access_log_append_only(session: Session, _context: object, _instances: object) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, PersonalDataAccess) and (obj in session.deleted or session.is_modified(obj)):
            raise AccessLogIsAppendOnly(f"access log row {obj.id} cannot be changed or deleted")
