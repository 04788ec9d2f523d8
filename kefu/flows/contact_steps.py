"""The step kit's record for the contact processes, whose subject is not a complaint (routine callbacks, quality
reviews): their waiting / completed / refused records are ``ContactStepEvent`` rows keyed by subject and step key, so a
resumed run writes nothing twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from kefu.engine.steps import Step, StepRefused
from kefu.models.contacts import ContactStepEvent
from kefu.models.db import unit_of_work
from kefu.tasks.contacts import ContactRefused, active_staff


class ContactStepRecord:
    """The step kit's record for one subject (``callback:<id>``, ``quality:<id>``): ``summary`` gives the markdown
    above the form, ``admit`` refuses answers the process cannot take whatever the step."""

    def __init__(
        self,
        subject: str,
        summary: Callable[[Step[Any]], str],
        admit: Callable[[Step[Any], dict[str, Any]], None] | None = None,
    ) -> None:
        self.subject = subject
        self._summary = summary
        self._admit = admit
        self._outcomes: dict[str, str] | None = None

    def summary(self, step: Step[Any]) -> str:
        return self._summary(step)

    def initial(self, step: Step[Any]) -> dict[str, Any]:
        return {}

    def admit(self, step: Step[Any], answer: dict[str, Any]) -> None:
        if self._admit is not None:
            self._admit(step, answer)
        staff_id = answer.get("actor_staff_id")
        if staff_id is not None:
            with unit_of_work() as session:
                try:
                    active_staff(session, int(staff_id))
                except ContactRefused as refused:
                    raise StepRefused(str(refused)) from refused

    def outcome(self, step: Step[Any], key: str) -> str | None:
        if self._outcomes is None:
            with unit_of_work() as session:
                rows = session.execute(
                    select(ContactStepEvent.key, ContactStepEvent.outcome).where(
                        ContactStepEvent.subject == self.subject, ContactStepEvent.outcome != "waiting"
                    )
                )
                self._outcomes = {row.key: row.outcome for row in rows}
        return self._outcomes.get(key)

    def _record(self, step: Step[Any], key: str, outcome: str, **values: Any) -> None:
        with unit_of_work() as session:
            exists = session.scalar(
                select(ContactStepEvent.id).where(
                    ContactStepEvent.subject == self.subject,
                    ContactStepEvent.key == key,
                    ContactStepEvent.outcome == outcome,
                )
            )
            if exists is None:
                session.add(ContactStepEvent(subject=self.subject, step=step.name, key=key, outcome=outcome, **values))
        if self._outcomes is not None and outcome != "waiting":
            self._outcomes[key] = outcome

    def waiting(self, step: Step[Any], key: str, flow_run_id: str) -> None:
        self._record(step, key, "waiting", flow_run_id=flow_run_id, data={})

    def completed(self, step: Step[Any], key: str, answer: dict[str, Any]) -> None:
        self._record(step, key, "completed", data=answer)

    def refused(self, step: Step[Any], key: str, reason: str, answer: dict[str, Any]) -> None:
        self._record(step, key, "refused", data=answer, reason=reason)
