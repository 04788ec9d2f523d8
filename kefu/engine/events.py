"""A case speaks Prefect's event language: its facts announced as Prefect events, after they are committed.

Each fact ``kefu.tasks.casework`` records (registration, a completed step, a milestone's warning and breach, an
escalation, a reopen, the close) becomes one event ``kefu.case.<fact>`` whose resource is the case
(``kefu.case.TS-20261123-0001``) with the labels ``kefu.severity``, ``kefu.milestone``, ``kefu.due_at`` (Shanghai
time with its offset) and the fact's own (step, level, ...): ids, severities and times, never personal data.
Operators see them in the UI's Event Feed and build Automations on them (README, "Case events").

Announced only after the unit of work that wrote the fact has committed (a rolled-back fact is never announced),
and only by the unit of work that wrote it (a replayed case writes nothing, so it announces nothing again).
Events are fire-and-forget: Prefect's events client sends them in the background, and a process that dies between
the commit and the send loses them (the database keeps the fact; the case's audit trail is the record). Each event's
id is derived from the case and the fact's key, so a repeat within Prefect's dedupe window is dropped by the server.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from kefu.models.db import unit_of_work
from kefu.tasks.casework import CaseFact, case_facts

log = logging.getLogger("kefu.events")
PREFIX = "kefu.case"
_IDS = uuid.UUID("6a1d3f0e-8c0b-4f7e-9a55-2f1c0b7d4e11")  # the namespace of the events' ids


def case_resource(case_no: str) -> str:
    """The case as a Prefect resource id: ``kefu.case.TS-20261123-0001``."""
    return f"{PREFIX}.{case_no}"


def event_name(fact: CaseFact) -> str:
    return f"{PREFIX}.{fact.event}"


def event_id(fact: CaseFact) -> uuid.UUID:
    """The same id for the same fact of the same case (the server drops a repeat within its dedupe window)."""
    return uuid.uuid5(_IDS, f"{fact.case_no}/{fact.key}")


def announce(facts: Iterable[CaseFact]) -> int:
    """Emit each fact as a Prefect event (fire-and-forget); returns how many were handed to Prefect's client.

    Never raises: an event that cannot be sent is logged, the fact stays in the database. Without a Prefect API
    URL (a process Kefu's settings did not point at Prefect) nothing is sent: Prefect's client would otherwise
    start a temporary server of its own to send to.
    """
    from prefect.events import emit_event
    from prefect.settings import PREFECT_API_URL

    facts = list(facts)
    if not facts or not PREFECT_API_URL.value():
        return 0
    sent = 0
    for fact in facts:
        try:
            emitted = emit_event(
                event_name(fact),
                resource={"prefect.resource.id": case_resource(fact.case_no), "prefect.resource.name": fact.case_no,
                          **fact.labels},
                payload={"case_no": fact.case_no, "key": fact.key, "at": fact.at.isoformat()},
                id=event_id(fact),
            )  # fmt: skip
        except Exception:  # events are an operator's window, never a reason for a case step to fail
            log.exception("case event %s of %s not sent", fact.event, fact.case_no)
            continue
        sent += emitted is not None
    return sent


@contextmanager
def case_work() -> Iterator[Session]:
    """A unit of work on cases whose facts are announced as Prefect events once it has committed."""
    with unit_of_work() as session:
        yield session
    announce(case_facts(session))
