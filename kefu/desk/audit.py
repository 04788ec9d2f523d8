"""Sign-ins audited: one log line per successful sign-in, failed attempt, lock-out, sign-out and password change, on
the logger ``kefu.desk.audit`` (stderr, which ``kefu up`` writes to ``var/logs/desk.log``).

No password ever appears; a sign-in name that belongs to nobody is shown masked (``x***``): people type their
password into the name field. Phones, ID numbers and e-mails in a line are masked (``PersonalDataFilter``).
"""

from __future__ import annotations

import datetime as dt
import logging

from kefu.notifications.pii import PersonalDataFilter
from kefu.worktime.display import local_time

log = logging.getLogger("kefu.desk.audit")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # what ``kefu staff signins`` reads back


def ensure_handler() -> None:
    """Give the audit logger its own stderr handler (uvicorn configures only its own loggers)."""
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(FORMAT))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    if not any(isinstance(f, PersonalDataFilter) for f in log.filters):
        log.addFilter(PersonalDataFilter())


def shown_login(login: str, known: bool) -> str:
    login = login.strip().lower()[:64]
    if not login:
        return "(empty)"
    return login if known else f"{login[0]}***(unknown)"


def audit(
    event: str,
    login: str,
    *,
    known: bool,
    client: str,
    staff_id: int | None = None,
    until: dt.datetime | None = None,
) -> None:
    """One audit line: ``event=… login=… staff=… from=…`` (and ``until=`` for a lock-out)."""
    parts = [f"event={event}", f"login={shown_login(login, known)}"]
    if staff_id is not None:
        parts.append(f"staff={staff_id}")
    parts.append(f"from={client}")
    if until is not None:
        parts.append(f'until="{local_time(until)}"')
    log.info(" ".join(parts))
