"""The test PostgreSQL server: whether it answers, and scratch databases on it.

PostgreSQL is used when ``KEFU_TEST_DATABASE_URL`` names one or the local server at 127.0.0.1:5432 answers
(user ``postgres``, database ``test``). Plain helpers, no pytest: the benchmarks use them too.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import URL, make_url

LOCAL_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _admin_connect(url: str, **options: object) -> psycopg.Connection[tuple[object, ...]]:
    parsed = make_url(url)
    return psycopg.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password,
        dbname=parsed.database or "postgres",
        **options,  # type: ignore[arg-type]
    )


def _postgres_url() -> tuple[str | None, str]:
    url = os.environ.get("KEFU_TEST_DATABASE_URL") or LOCAL_POSTGRES
    if not url.startswith("postgresql"):
        return None, f"KEFU_TEST_DATABASE_URL={url} is not PostgreSQL"
    try:
        with _admin_connect(url, connect_timeout=3):
            return url, "reachable"
    except psycopg.Error as exc:
        return None, f"not reachable ({str(exc).strip().splitlines()[0]})"


POSTGRES_URL, POSTGRES_STATUS = _postgres_url()


@contextmanager
def scratch_postgres_database(prefix: str) -> Iterator[URL]:
    """A new, empty database on the test PostgreSQL server (its URL, psycopg driver), dropped afterwards."""
    assert POSTGRES_URL is not None, f"PostgreSQL {POSTGRES_STATUS}"
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with _admin_connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRES_URL).set(database=name)
    finally:
        with _admin_connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def recreate_postgres_database(url: URL) -> None:
    """Drop the database ``url`` names (its connections closed) and create it again, empty: a lost database."""
    with _admin_connect(POSTGRES_URL or LOCAL_POSTGRES, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{url.database}"')
