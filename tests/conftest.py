"""Shared fixtures: real databases (SQLite always, PostgreSQL when it answers), the policy, the calendar.

Every test that takes ``engine`` (or ``db``) runs once per available backend. PostgreSQL is used when
``KEFU_TEST_DATABASE_URL`` names one or the local server at 127.0.0.1:5432 answers; the test header
says which backends ran. Each backend gets a fresh database migrated with Kefu's own migrations.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import URL, Engine, make_url, text
from sqlalchemy.orm import Session

from kefu.models import Base
from kefu.models.db import make_engine
from kefu.models.migrate import upgrade
from kefu.models.policy import Policy, load_policy
from kefu.settings import DEFAULT_POLICY_FILE, get_settings
from kefu.worktime import WorkCalendar

pytest_plugins = ["tests.prefect_fixtures"]

LOCAL_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _postgres_url() -> tuple[str | None, str]:
    url = os.environ.get("KEFU_TEST_DATABASE_URL") or LOCAL_POSTGRES
    if not url.startswith("postgresql"):
        return None, f"KEFU_TEST_DATABASE_URL={url} is not PostgreSQL"
    parsed = make_url(url)
    try:
        with psycopg.connect(
            host=parsed.host or "127.0.0.1",
            port=parsed.port or 5432,
            user=parsed.username or "postgres",
            password=parsed.password,
            dbname=parsed.database or "postgres",
            connect_timeout=3,
        ):
            return url, "reachable"
    except psycopg.Error as exc:
        return None, f"not reachable ({str(exc).strip().splitlines()[0]})"


POSTGRES_URL, POSTGRES_STATUS = _postgres_url()
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])


def pytest_report_header(config: pytest.Config) -> list[str]:
    if POSTGRES_URL:
        shown = make_url(POSTGRES_URL).render_as_string(hide_password=True)
        return [
            f"kefu database backends: sqlite and postgresql ({shown})",
            "prefect test server: on postgresql (a fresh database)",
        ]
    return [
        f"kefu database backends: sqlite only — PostgreSQL {POSTGRES_STATUS}",
        "prefect test server: on sqlite",
    ]


def _admin_connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    parsed = make_url(url)
    return psycopg.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password,
        dbname=parsed.database or "postgres",
        autocommit=True,
    )


@contextmanager
def scratch_postgres_database(prefix: str) -> Iterator[URL]:
    """A new, empty database on the test PostgreSQL server (its URL, psycopg driver), dropped afterwards."""
    assert POSTGRES_URL is not None
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with _admin_connect(POSTGRES_URL) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRES_URL).set(database=name)
    finally:
        with _admin_connect(POSTGRES_URL) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", params=BACKENDS)
def migrated_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A freshly migrated database per backend for the whole session: a template file or a new PG database."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "template.db"
        engine = make_engine(f"sqlite:///{path}")
        upgrade(engine)
        engine.dispose()
        yield f"sqlite-template:{path}"
        return
    with scratch_postgres_database("kefu_test") as database:
        url = database.render_as_string(hide_password=False)
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url


@pytest.fixture
def engine(migrated_database: str, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty, migrated database of the current backend."""
    if migrated_database.startswith("sqlite-template:"):
        path = tmp_path / "kefu.db"
        shutil.copyfile(migrated_database.removeprefix("sqlite-template:"), path)
        eng = make_engine(f"sqlite:///{path}")
        yield eng
        eng.dispose()
        return
    eng = make_engine(migrated_database)
    yield eng
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with eng.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    eng.dispose()


@pytest.fixture
def database_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    """A session on the test database; the test commits what it wants to be seen."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy(DEFAULT_POLICY_FILE)


@pytest.fixture(scope="session")
def calendar(policy: Policy) -> WorkCalendar:
    return WorkCalendar(policy)


@pytest.fixture
def policy_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the shipped policy file that Kefu follows for this test (``KEFU_POLICY_FILE``); change it with
    ``edit_policy`` while the code under test runs."""
    path = tmp_path / "policy.yaml"
    shutil.copy(DEFAULT_POLICY_FILE, path)
    monkeypatch.setenv("KEFU_POLICY_FILE", str(path))
    get_settings.cache_clear()
    yield path
    monkeypatch.undo()
    get_settings.cache_clear()


def edit_policy(path: Path, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in a policy file, as an operator would, with a later modification time."""
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    before = path.stat().st_mtime_ns
    path.write_text(text.replace(old, new), encoding="utf-8")
    later = before + 1_000_000_000  # file times can be coarser than two quick writes
    os.utime(path, ns=(later, later))
