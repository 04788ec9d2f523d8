"""Engine and session factory: one session per unit of work.

Repository functions take a session and never commit; the caller's ``unit_of_work`` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from kefu.models.embedded_pg import attach
from kefu.settings import get_settings


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            dbapi_connection.isolation_level = None  # the driver's own BEGIN is replaced by ours below
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(connection):  # type: ignore[no-untyped-def]
            # Every transaction takes SQLite's write lock when it starts. With the default deferred BEGIN, two
            # threads that both read and then write deadlock: one of them waits out the whole busy timeout
            # and fails with "database is locked". Taking the lock first makes writers queue instead.
            # A transaction that only reads (``reading(engine)``) takes no lock: WAL readers never wait.
            read_only = connection.get_execution_options().get(READ_ONLY, False)
            connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True)


READ_ONLY = "kefu_read_only"


def reading(engine: Engine) -> Engine:
    """The same database for transactions that only read: on SQLite they do not take the write lock, so they
    neither wait for writers nor make writers wait (the front door's group commit, above all)."""
    return engine.execution_options(**{READ_ONLY: True})


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    return make_engine(url)


def default_engine() -> Engine:
    """The configured database; with no ``KEFU_DATABASE_URL``, database ``kefu`` on the embedded PostgreSQL
    under ``var/pg``, started by whichever process needs it first (see ``kefu.models.embedded_pg``)."""
    settings = get_settings()
    if not settings.database_url:
        attach(settings.embedded_pg_dir)
    return engine_for(settings.resolved_database_url())


def session_factory(engine: Engine | None = None) -> sessionmaker[Session]:
    return sessionmaker(bind=engine or default_engine(), expire_on_commit=False)


@contextmanager
def unit_of_work(engine: Engine | None = None) -> Iterator[Session]:
    """A session that commits when the block ends normally and rolls back on any error."""
    session = session_factory(engine)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
