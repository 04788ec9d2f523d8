"""The feedback-flow migration on a database that already holds feedback: the answered ones count as closed (no
follow-up run is started for them), the open ones keep everything and are the ones the sweeper starts runs for."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from kefu.models.db import make_engine, unit_of_work
from kefu.models.migrate import upgrade
from kefu.tasks.feedback import get_feedback, runs_to_start


def test_feedback_recorded_before_its_runs_survives_the_upgrade(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "complaint_contact_name")
    insert = (
        "INSERT INTO feedback (feedback_no, kind, channel, received_at, name, phone, content, department, due_at, "
        "answered_at, reply, created_at) VALUES (:no, 'suggestion', 'hotline', '2026-11-02 02:00:00', '张三', "
        "'13812348000', '希望周末提货', 'operations', '2026-11-04 10:00:00', :answered, :reply, '2026-11-02 02:00:00')"
    )
    with engine.begin() as connection:
        connection.execute(text(insert), {"no": "FK-20261102-0001", "answered": "2026-11-03 02:00:00", "reply": "好"})
        connection.execute(text(insert), {"no": "FK-20261102-0002", "answered": None, "reply": None})
    upgrade(engine)
    with unit_of_work(engine) as session:
        answered, still_open = get_feedback(session, "FK-20261102-0001"), get_feedback(session, "FK-20261102-0002")
        assert answered.closed_at == answered.answered_at and answered.reply == "好"
        assert (still_open.closed_at, still_open.escalation_level, still_open.content) == (None, 0, "希望周末提货")
        assert runs_to_start(session) == ["FK-20261102-0002"]
    engine.dispose()
