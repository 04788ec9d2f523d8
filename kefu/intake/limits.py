"""Rate limits the status page shares across every intake process: counters in Kefu's own database.

A limit is ``limit`` attempts per fixed window of ``window`` seconds per key, counted with one atomic upsert
(``INSERT … ON CONFLICT DO UPDATE … RETURNING``, SQLite and PostgreSQL alike), so several intake processes
behind one address — or one attacker spread over them — see the same count. Keys are stored hashed: a client's
address never lands in the table. Windows older than the current one are deleted as new ones start.

The status page uses two: every lookup per client (the connection's peer; forwarded headers only count from
configured proxies), and lookups per case number, refunded when the digits were right — so guessing the last four
digits of one case is limited however many clients the guesses come from.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, delete, update
from sqlalchemy.dialects import postgresql, sqlite

from kefu.models.db import unit_of_work
from kefu.models.intake import RateLimitHit


class SharedRateLimit:
    """At most ``limit`` hits per key in each ``window``-second window, counted in the database ``engine``."""

    def __init__(self, engine: Engine, scope: str, limit: int, window: float, clock: Callable[[], dt.datetime]) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a rate limit needs limit >= 1 and window > 0")
        self.engine, self.scope, self.limit, self.window, self.clock = engine, scope, limit, window, clock
        dialect = engine.dialect.name
        if dialect not in {"sqlite", "postgresql"}:
            raise ValueError(f"no shared rate limit for the {dialect} dialect")
        self._insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        # Keys this process saw over the limit, with their window: refused without writing again, so a flood of
        # refused attempts costs no database write each.
        self._over: dict[str, int] = {}

    def _key(self, key: str) -> str:
        return hashlib.sha256(f"{self.scope}\0{key}".encode()).hexdigest()[:64]

    def _window_start(self) -> int:
        now = self.clock().timestamp()
        return int(now // self.window * self.window)

    def hit(self, key: str) -> bool:
        """Count one attempt; True while the window's count is within the limit."""
        start = self._window_start()
        if self._over.get(key) == start:
            return False
        statement = (
            self._insert(RateLimitHit)
            .values(scope=self.scope, key=self._key(key), window_start=start, hits=1)
            .on_conflict_do_update(
                index_elements=[RateLimitHit.scope, RateLimitHit.key, RateLimitHit.window_start],
                set_={"hits": RateLimitHit.hits + 1},
            )
            .returning(RateLimitHit.hits)
        )
        with unit_of_work(self.engine) as session:
            hits = int(session.execute(statement).scalar_one())
            if hits == 1:  # a new window: forget the ones that ended
                session.execute(
                    delete(RateLimitHit).where(
                        RateLimitHit.scope == self.scope, RateLimitHit.window_start < start - int(self.window)
                    )
                )
        if hits <= self.limit:
            return True
        if len(self._over) > 10_000:
            self._over = {k: w for k, w in self._over.items() if w == start}
        self._over[key] = start
        return False

    def refund(self, key: str) -> None:
        """Take one attempt back (the lookup succeeded)."""
        with unit_of_work(self.engine) as session:
            session.execute(
                update(RateLimitHit)
                .where(
                    RateLimitHit.scope == self.scope,
                    RateLimitHit.key == self._key(key),
                    RateLimitHit.window_start == self._window_start(),
                    RateLimitHit.hits > 0,
                )
                .values(hits=RateLimitHit.hits - 1)
            )
