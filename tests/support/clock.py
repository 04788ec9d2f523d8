"""One clock for the tests: Shanghai time, one fixed moment, and a clock the tests move by hand."""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest

SHANGHAI = ZoneInfo("Asia/Shanghai")

# Monday 2026-11-23 10:00 in Shanghai: a working day, inside the business window.
RECEIVED = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)


class FixedClock:
    """A clock that shows ``now`` until a test sets another time; pass it where code takes ``clock=``."""

    def __init__(self, now: dt.datetime = RECEIVED) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> FixedClock:
    """The app's clock, at ``RECEIVED``: tests move it by setting ``clock.now``."""
    return FixedClock(RECEIVED)


_days = itertools.count()


def unique_receipt_time() -> dt.datetime:
    """A receipt time on a day no other test of this session uses: case numbers (and so the case flow
    idempotency keys on the shared Prefect server) never collide between tests."""
    return dt.datetime(2031, 1, 1, 2, 0, tzinfo=dt.UTC) + dt.timedelta(days=next(_days))
