"""What the intake's pages and API share: the clock, the policy in force, the registrar, the read engine.

One ``FrontDoor`` per app. It holds no calendar of its own: each request takes the policy in force
(``current_policy``, re-read when the file changes) and that policy's calendar, so a changed policy file is
followed without a restart.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from kefu.intake.registrar import Registrar, RegistrarClosed
from kefu.intake.service import Registration
from kefu.intake.validation import Submission, mask_phone
from kefu.models.db import reading
from kefu.models.enums import Channel
from kefu.models.policy import Policy, current_policy
from kefu.worktime import Commitment, WorkCalendar, calendar_for, first_commitment

log = logging.getLogger("kefu.intake")

Clock = Callable[[], dt.datetime]
UNAVAILABLE_ZH = "系统暂时无法受理，您的投诉还没有提交成功（没有保存任何内容）。"


class IntakeUnavailable(Exception):
    """Nothing was stored: intake is shutting down or its database cannot take the complaint right now."""


class FrontDoor:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.now = clock
        self.read_engine = reading(engine)  # status lookups never wait for (nor hold up) the registrations
        # One writer thread commits every complaint waiting at that moment together (group commit).
        self.registrar = Registrar(engine, current_policy)
        self._timezone: str | None = None

    def policy_and_calendar(self) -> tuple[Policy, WorkCalendar]:
        """The policy in force and its working calendar."""
        policy = current_policy()
        self._timezone = policy.timezone
        return policy, calendar_for(policy)

    @property
    def timezone(self) -> str:
        """The policy's time zone as of this front door's last look at the policy, for reading the times a
        complainant gives without an offset.

        It does not look at the policy file again: a file check (a system call, which lets the writer thread
        run) between a request's arrival and its queueing made the writer start with half-full batches and
        cost each complaint about 10 % more CPU. The policy is looked at once per request, after registration.
        """
        if self._timezone is None:
            self.policy_and_calendar()
        assert self._timezone is not None
        return self._timezone

    def warm_up(self) -> None:
        """Build the calendar tables and rehearse a registration before the first customer arrives."""
        policy, calendar = self.policy_and_calendar()
        for severity in policy.complaints.severities:
            first_commitment(policy, calendar, severity, self.now(), key_account=False)
        self.registrar.rehearse()

    def staff_on_record(self, staff_id: int) -> bool:
        """An active staff member has this id (the receiver a gateway names, who will own the case)."""
        from sqlalchemy import select

        from kefu.models.people import Staff

        with self.read_engine.connect() as db:
            return bool(db.execute(select(Staff.active).where(Staff.id == staff_id)).scalar())

    async def register(
        self,
        submission: Submission,
        channel: Channel,
        key: str | None,
        received_at: dt.datetime,
    ) -> tuple[Registration, Commitment | None, ZoneInfo]:
        """Registered and committed (or found by its key), with the first time promised to the customer and
        the time zone (the policy's) to show times in."""
        try:
            registration = await self.registrar.register(submission, channel, key, received_at)
        except (RegistrarClosed, OperationalError) as exc:  # shutting down, or the database cannot take it now
            log.warning("complaint not registered, intake unavailable: %s", str(exc).splitlines()[0])
            raise IntakeUnavailable from exc
        policy, calendar = self.policy_and_calendar()
        commitment = first_commitment(
            policy, calendar, registration.severity, registration.received_at, key_account=registration.key_account
        )
        if registration.created:
            log.info(
                "complaint %s received via %s from %s",
                registration.case_no,
                channel.value,
                mask_phone(submission.phone),
            )
        return registration, commitment, calendar.tz
