"""Prefect side of notifications: deliver due mails and SMS every minute; show dead letters as an artifact.

One run a day keeps the shift (``kefu.engine.shift``): a delivery pass on every minute. The dead-letter table is
published when the shift starts and whenever a pass gives up on a message, not every minute.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from prefect import flow
from prefect.artifacts import create_table_artifact
from prefect.context import FlowRunContext

from kefu.engine.shift import ShiftClock, SystemClock, keep_shift, run_on_shift, shift_logger, shift_until
from kefu.models.db import default_engine
from kefu.models.policy import current_policy
from kefu.notifications import DeadLetter, dead_letters, deliver_due, mask_recipient

DUTY = "deliver-mail"


def publish_dead_letters(letters: list[DeadLetter]) -> None:
    """A table artifact ``mail-dead-letters`` (ids, type, case id, masked recipient, error): no personal data."""
    create_table_artifact(
        key="mail-dead-letters",
        table=[
            {
                "id": d.id,
                "type": d.message_type,
                "complaint_id": d.complaint_id,
                "channel": d.channel,
                "recipient": mask_recipient(d.recipient),
                "attempts": d.attempts,
                "error": d.last_error or "",
            }
            for d in letters
        ],
        description=f"死信：{len(letters)} 条消息（邮件或短信）无法投递，请核对收件地址或手机号后重新处理。",
    )


class Delivery:
    """The delivery passes of one shift; remembers the dead letters it last published."""

    def __init__(self) -> None:
        self.published: tuple[int, ...] | None = None

    def __call__(self, now: dt.datetime) -> dict[str, int] | None:
        """Send what is due at ``now``; returns the report when something was sent, retried or given up."""
        engine = default_engine()
        report = asyncio.run(deliver_due(engine, now)).as_dict()
        # Published at the shift's start and when a pass gave up on a message; only a run has a page to show it.
        if (self.published is None or report["dead"]) and FlowRunContext.get() is not None:
            letters = dead_letters(engine)
            publish_dead_letters(letters)
            self.published = tuple(d.id for d in letters)
        return report if any(report.values()) else None


def delivery_shift(clock: ShiftClock, until: dt.datetime) -> int:
    """A delivery pass now and on every minute until ``until``; the number of passes."""
    return keep_shift(DUTY, Delivery(), clock=clock, until=until, log=shift_logger(), on_shift=run_on_shift)


@flow(name=DUTY, log_prints=False)
def deliver_mail() -> int:
    """Today's shift of mail and SMS delivery (the policy's day): a pass on every minute until midnight."""
    clock = SystemClock()
    return delivery_shift(clock, shift_until(current_policy().timezone, clock))
