"""The onboarding migration on a database that already holds nominations: they keep everything and, still open
without a run, are the ones the deadline duty opens onboarding runs for."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import text

from kefu.models.db import make_engine, unit_of_work
from kefu.models.migrate import upgrade
from kefu.tasks.onboarding import nomination_for_code, unopened


def test_nominations_made_before_onboarding_survive_the_upgrade_and_get_their_runs_opened(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "customer_registry")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO customers (id, tier, name, code, phones, more_addresses, created_at) "
                "VALUES (7, 'general', '华星电子', 'HX01', '[]', '[]', '2026-10-05 00:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO key_account_nominations (customer_id, source, month, score, explanation, status, at) "
                "VALUES (7, 'scoring', '2026-10-01', 81.5, '业务量居前', 'open', '2026-11-02 00:00:00')"
            )
        )
    upgrade(engine)
    with unit_of_work(engine) as session:
        row = nomination_for_code(session, "HX01")
        assert row is not None
        kept = (row.status, float(row.score or 0), row.explanation, row.flow_run_id)
        assert kept == ("open", 81.5, "业务量居前", None)
        assert unopened(session, dt.datetime(2026, 12, 1, tzinfo=dt.UTC)) == [(row.id, "HX01")]
    engine.dispose()
