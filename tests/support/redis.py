"""The test Redis (127.0.0.1:6379 unless ``KEFU_TEST_REDIS_URL``): whether it answers, and a database of it for one
test or benchmark alone. Plain helpers, no pytest: the benchmarks use them too."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import redis

TEST_REDIS = os.environ.get("KEFU_TEST_REDIS_URL", "redis://127.0.0.1:6379")
CLAIM = "kefu-test:claimed"


def _redis_status() -> tuple[str | None, str]:
    try:
        with redis.Redis.from_url(TEST_REDIS, socket_connect_timeout=3, socket_timeout=3) as client:
            client.ping()
        return TEST_REDIS, "reachable"
    except redis.RedisError as exc:
        return None, f"not reachable at {TEST_REDIS} ({exc})"


REDIS_URL, REDIS_STATUS = _redis_status()


@contextmanager
def scratch_redis_database() -> Iterator[str]:
    """The URL of an empty database of the test Redis, claimed (databases 1–15; 0 is left to ``kefu up``'s default)
    so that concurrent test runs never share one (Prefect's streams have fixed names), emptied afterwards."""
    assert REDIS_URL is not None, f"Redis {REDIS_STATUS}"
    for db in range(1, 16):
        client = redis.Redis.from_url(f"{REDIS_URL}/{db}")
        if client.dbsize() == 0 and client.set(CLAIM, os.getpid(), nx=True, ex=3600):
            try:
                yield f"{REDIS_URL}/{db}"
            finally:
                client.flushdb()
                client.close()
            return
        client.close()
    raise RuntimeError(f"no empty database left on the test Redis {REDIS_URL}")
