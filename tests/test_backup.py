"""Backups (seed 004 §6): ``kefu backup`` and ``kefu restore`` as the installed console script, on SQLite and on
PostgreSQL, with a clean environment; the retention policy deletes exactly the expired files."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from kefu.models.complaints import CaseEvent, Complaint
from kefu.models.enums import Channel, ComplaintStatus, CustomerTier, Severity
from kefu.models.intake import IntakeOutbox
from kefu.models.notifications import OutboxMessage
from kefu.models.people import Customer, Staff
from kefu.models.policy import BackupPolicy
from kefu.tasks.backup import Backup, backup_name, expired, list_backups, parse_backup_name
from tests.support.clock import SHANGHAI

KEFU = Path(sys.executable).parent / "kefu"  # the console script the package installs


def kefu(*args: str, url: str, var: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(var.parent), "KEFU_DATABASE_URL": url, "KEFU_VAR_DIR": str(var)}
    return subprocess.run(
        [str(KEFU), *args], capture_output=True, text=True, env={**env, **extra}, timeout=120, check=False
    )


def seed(engine: Engine, cases: int = 3) -> None:
    from sqlalchemy.orm import Session

    now = dt.datetime.now(dt.UTC)
    with Session(engine) as session:
        agent = Staff(name="客服")
        session.add(agent)
        for n in range(1, cases + 1):
            case_no = f"KF-BK-{n:04d}"
            complaint = Complaint(
                case_no=case_no,
                channel=Channel.HOTLINE,
                received_at=now,
                severity=Severity.GENERAL,
                status=ComplaintStatus.INVESTIGATING,
                customer=Customer(
                    name=f"客户{n}", phones=[f"1380000{n:04d}"], email=f"c{n}@example.com", tier=CustomerTier.GENERAL
                ),
                content="快递晚到两天",
            )
            session.add(complaint)
            session.flush()
            session.add(IntakeOutbox(complaint_id=complaint.id, case_no=case_no, created_at=now))
            for action, key in [
                ("registered", "register"),
                ("classify", "classify-0"),
                ("first_contact", "first-contact-0"),
            ]:
                session.add(
                    CaseEvent(complaint_id=complaint.id, actor="staff:1", action=action, data={"key": key}, at=now)
                )
            session.add(
                OutboxMessage(
                    message_type="complaint_ack",
                    complaint_id=complaint.id,
                    recipient=f"c{n}@example.com",
                    subject="已收到您的投诉",
                    body_text="您好",
                    body_html="<p>您好</p>",
                    message_id=f"<bk-{n}@kefu>",
                    dedupe_key=f"ack:{case_no}",
                    not_before=now,
                )
            )
        session.commit()


def snapshot(engine: Engine) -> dict[str, Any]:
    with engine.connect() as connection:
        cases = connection.execute(select(Complaint.case_no, Complaint.status).order_by(Complaint.case_no)).all()
        events = connection.execute(
            select(Complaint.case_no, CaseEvent.action, CaseEvent.data)
            .join(Complaint, Complaint.id == CaseEvent.complaint_id)
            .order_by(CaseEvent.id)
        ).all()
        mails = connection.execute(
            select(OutboxMessage.message_id, OutboxMessage.dedupe_key).order_by(OutboxMessage.id)
        )
        intake = connection.execute(select(IntakeOutbox.case_no).order_by(IntakeOutbox.id)).all()
        return {
            "cases": [tuple(r) for r in cases],
            "events": [(c, a, d["key"]) for c, a, d in events],
            "mails": [tuple(r) for r in mails],
            "intake": [r[0] for r in intake],
        }


def wipe(engine: Engine) -> None:
    """The database is lost: every table gone (PostgreSQL) or the file deleted (SQLite)."""
    engine.dispose()
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    else:
        database = Path(str(engine.url.database))
        for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
            path.unlink(missing_ok=True)


def only_file(directory: Path) -> Path:
    [file] = [p for p in directory.iterdir() if parse_backup_name(p)]
    return file


def test_a_backup_restored_after_the_database_is_lost_has_every_case_step_and_mail(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    seed(engine)
    before = snapshot(engine)
    assert len(before["cases"]) == 3 and len(before["events"]) == 9 and len(before["mails"]) == 3

    made = kefu("backup", url=database_url, var=tmp_path / "var")
    assert made.returncode == 0, made.stderr
    file = only_file(tmp_path / "var" / "backups")  # the default directory: var/backups
    assert str(file) in made.stdout
    kind = "postgresql" if engine.dialect.name == "postgresql" else "sqlite"
    parsed = parse_backup_name(file)
    assert parsed is not None and parsed.kind == kind
    assert file.name.startswith(f"kefu-{dt.datetime.now(SHANGHAI):%Y%m%d}T") and "+0800" in file.name

    wipe(engine)
    restored = kefu("restore", str(file), url=database_url, var=tmp_path / "var")
    assert restored.returncode == 0, restored.stderr
    assert snapshot(engine) == before


def test_restore_refuses_a_live_database_without_force_and_changes_nothing(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    seed(engine, cases=2)
    var = tmp_path / "var"
    assert kefu("backup", "--to", str(tmp_path / "elsewhere"), url=database_url, var=var).returncode == 0
    file = only_file(tmp_path / "elsewhere")
    with engine.begin() as connection:
        connection.execute(text("UPDATE complaints SET status = 'closed' WHERE case_no = 'KF-BK-0001'"))
    live = snapshot(engine)

    refused = kefu("restore", str(file), url=database_url, var=var)
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "holds data" in refused.stderr and "--force" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert snapshot(engine) == live

    engine.dispose()
    forced = kefu("restore", str(file), "--force", url=database_url, var=var)
    assert forced.returncode == 0, forced.stderr
    restored = snapshot(engine)
    assert ("KF-BK-0001", ComplaintStatus.INVESTIGATING) in restored["cases"]
    assert restored["events"] == live["events"] and restored["mails"] == live["mails"]


def test_restore_names_a_missing_file_or_a_backup_of_the_other_kind(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    var = tmp_path / "var"
    missing = kefu("restore", str(tmp_path / "nope.dump"), url=database_url, var=var)
    assert missing.returncode == 1 and "no such backup file" in missing.stderr

    junk = tmp_path / "junk.dump"
    junk.write_bytes(b"not a backup")
    assert "neither a PostgreSQL" in kefu("restore", str(junk), url=database_url, var=var).stderr

    other_url = f"sqlite:///{tmp_path / 'other.db'}"
    if engine.dialect.name == "postgresql":  # a SQLite backup offered to PostgreSQL
        from kefu.models.db import make_engine
        from kefu.models.migrate import upgrade

        other = make_engine(other_url)
        upgrade(other)
        other.dispose()
        assert kefu("backup", "--to", str(tmp_path / "b"), url=other_url, var=var).returncode == 0
        wrong = kefu("restore", str(only_file(tmp_path / "b")), url=database_url, var=var)
        assert wrong.returncode == 1
        assert "is a sqlite backup; the configured database is postgresql" in wrong.stderr
    else:
        not_kefu = tmp_path / "plain.sqlite3"
        import sqlite3

        with sqlite3.connect(not_kefu) as connection:
            connection.execute("CREATE TABLE t (x)")
        wrong = kefu("restore", str(not_kefu), url=database_url, var=var)
        assert wrong.returncode == 1 and "not of a Kefu database" in wrong.stderr


# --- retention -------------------------------------------------------------------------------------------

RETENTION = BackupPolicy(keep_days=30, keep_at_least=7, schedule="0 2 * * *")
NOW = dt.datetime(2026, 12, 1, 2, 0, tzinfo=SHANGHAI)


def aged(days: float, kind: str = "sqlite") -> Backup:
    taken = NOW - dt.timedelta(days=days)
    path = Path("/backups") / backup_name(kind, taken, "Asia/Shanghai")  # type: ignore[arg-type]
    parsed = parse_backup_name(path)
    assert parsed is not None
    return parsed


@pytest.mark.parametrize(
    ("ages", "gone"),
    [
        ([0, 2, 5, 10, 31, 35, 40, 45, 60, 90], [45, 60, 90]),  # the newest 7 stay, however old
        ([0, 1, 2, 3, 4, 5, 6, 7, 8, 29.9], []),  # nothing older than 30 days
        ([0, 100, 200], []),  # fewer than keep_at_least: none goes
        ([0, 1, 2, 3, 4, 5, 6, 30.01, 31], [30.01, 31]),
    ],
)
def test_retention_deletes_what_is_older_than_keep_days_but_never_the_newest_keep_at_least(
    ages: list[float], gone: list[float]
) -> None:
    backups = [aged(a) for a in ages]
    assert sorted(expired(backups, RETENTION, NOW), key=lambda b: b.path.name) == sorted(
        (aged(a) for a in gone), key=lambda b: b.path.name
    )


def test_kefu_backup_deletes_exactly_the_expired_backups_after_it_succeeded(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    if engine.dialect.name == "postgresql":
        pytest.skip("retention does not depend on the database kind: the SQLite run covers it")
    directory = tmp_path / "backups"
    directory.mkdir()
    now = dt.datetime.now(dt.UTC)
    ages = {
        2: "sqlite",
        5: "postgresql",
        10: "sqlite",
        31: "sqlite",
        35: "sqlite",
        40: "sqlite",
        45: "sqlite",
        60: "postgresql",
        90: "sqlite",
    }
    files = {
        age: directory / backup_name(kind, now - dt.timedelta(days=age), "Asia/Shanghai") for age, kind in ages.items()
    }  # type: ignore[arg-type]
    for file in files.values():
        file.write_bytes(b"old backup")
    (directory / "notes.txt").write_text("not a backup", encoding="utf-8")
    (directory / "kefu-export.csv").write_text("not a backup either", encoding="utf-8")

    # A failed backup deletes nothing.
    failed = kefu(
        "backup", "--to", str(directory), url=f"sqlite:///{tmp_path / 'missing' / 'x.db'}", var=tmp_path / "var"
    )
    assert failed.returncode == 1 and failed.stderr.startswith("kefu backup: error:")
    assert all(f.exists() for f in files.values())

    made = kefu("backup", "--to", str(directory), url=database_url, var=tmp_path / "var")
    assert made.returncode == 0, made.stderr
    remaining = {p.name for p in directory.iterdir()}
    expected_gone = {files[45].name, files[60].name, files[90].name}  # the newest 7 (new one, 2 … 40 days) stay
    assert remaining.isdisjoint(expected_gone)
    assert {f.name for a, f in files.items() if a <= 40} <= remaining
    assert {"notes.txt", "kefu-export.csv"} <= remaining
    assert len(list_backups(directory)) == 7
    for name in expected_gone:
        assert name in made.stdout


@pytest.mark.slow
def test_backup_and_restore_work_on_the_embedded_postgresql_that_make_up_uses(embedded_var_dir: Path) -> None:
    """No database configured: the commands find the embedded PostgreSQL 18 under var/pg (its socket) and use the
    wheel's pg_dump and psql; the server runs while this test holds it (as ``make up`` would)."""
    from kefu.models import embedded_pg
    from kefu.models.db import make_engine
    from kefu.models.migrate import upgrade
    from kefu.settings import Settings

    embedded_pg.attach(embedded_var_dir / "pg")
    url = Settings(var_dir=embedded_var_dir).embedded_database_url("kefu", "psycopg")
    engine = make_engine(url)
    upgrade(engine)
    seed(engine, cases=2)
    before = snapshot(engine)
    env = {"PATH": os.environ["PATH"], "HOME": str(embedded_var_dir.parent), "KEFU_VAR_DIR": str(embedded_var_dir)}

    made = subprocess.run([str(KEFU), "backup"], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert made.returncode == 0, made.stderr
    file = only_file(embedded_var_dir / "backups")
    assert file.name.endswith("-postgresql.dump")
    refused = subprocess.run(
        [str(KEFU), "restore", str(file)], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert refused.returncode == 1 and "holds data" in refused.stderr

    wipe(engine)
    restored = subprocess.run(
        [str(KEFU), "restore", str(file)], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert restored.returncode == 0, restored.stderr
    assert snapshot(engine) == before
    engine.dispose()


@pytest.mark.prefect
def test_the_scheduled_backup_flow_writes_a_backup_and_applies_the_retention(
    prefect_server: str, engine: Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if engine.dialect.name == "postgresql":
        pytest.skip("the flow hands the configured URL to the same code as `kefu backup`: the SQLite run covers it")
    from kefu.flows.backup import backup
    from kefu.settings import get_settings

    seed(engine, cases=1)
    directory = tmp_path / "backups"
    directory.mkdir()
    expired_file = directory / backup_name("sqlite", dt.datetime.now(dt.UTC) - dt.timedelta(days=400), "Asia/Shanghai")
    expired_file.write_bytes(b"old")
    for days in range(1, 8):  # seven newer ones: the 400-day-old file is not among the newest seven
        (
            directory / backup_name("sqlite", dt.datetime.now(dt.UTC) - dt.timedelta(days=days), "Asia/Shanghai")
        ).write_bytes(b"x")
    monkeypatch.setenv("KEFU_DATABASE_URL", database_url)
    monkeypatch.setenv("KEFU_BACKUP_DIR", str(directory))
    get_settings.cache_clear()
    try:
        made = Path(backup())
    finally:
        get_settings.cache_clear()
    assert made.parent == directory and made.name.endswith("-sqlite.sqlite3")
    assert not expired_file.exists()
    assert len(list_backups(directory)) == 8


def test_a_postgresql_restore_blocked_by_another_user_of_the_database_gives_up_and_changes_nothing(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's backup API waits for its own lock: this is about PostgreSQL's locks")
    seed(engine, cases=1)
    var = tmp_path / "var"
    assert kefu("backup", url=database_url, var=var).returncode == 0
    file = only_file(var / "backups")
    with engine.connect() as holder:  # like a running `kefu up`: a transaction that has read the cases
        holder.execute(select(Complaint.case_no)).all()
        blocked = kefu("restore", str(file), "--force", url=database_url, var=var)
        holder.rollback()
    assert blocked.returncode == 1
    assert "stop `kefu up` first" in blocked.stderr and "nothing was changed" in blocked.stderr
    assert snapshot(engine)["cases"] == [("KF-BK-0001", ComplaintStatus.INVESTIGATING)]
