"""The callbacks migration adds its columns to communication records in place: a database of the previous head with
customers, complaints and communication records in it upgrades, and its records read as plain contacts."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from kefu.models.db import make_engine
from kefu.models.migrate import upgrade


def test_a_database_with_communication_records_upgrades_and_keeps_them(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "customer_registry")
    with engine.begin() as db:
        db.execute(
            text(
                "INSERT INTO customers (id, name, tier, phones, more_addresses, created_at) "
                "VALUES (1, '华东建材', 'general', '[]', '[]', '2026-11-01 02:00:00')"
            )
        )
        db.execute(
            text(
                "INSERT INTO communication_records (id, customer_id, at, channel, summary, follow_up_items, "
                "created_at) VALUES (7, 1, '2026-11-02 02:00:00', 'phone', '联系', '[]', '2026-11-02 02:00:00')"
            )
        )
    upgrade(engine)
    with engine.connect() as db:
        row = db.execute(
            text("SELECT kind, satisfaction, follow_up_open, summary FROM communication_records WHERE id = 7")
        ).one()
        assert tuple(row) == ("contact", None, 0, "联系")
        assert db.execute(text("SELECT count(*) FROM routine_callbacks")).scalar() == 0
    engine.dispose()
