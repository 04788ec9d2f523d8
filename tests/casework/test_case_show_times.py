"""Times inside a case's timeline — the due time a sweeper noted, a time a customer agreed to, when an answer link
expires — are stored as UTC ISO text in the event's data; ``kefu case show`` prints them in Shanghai time like
every other time an operator reads."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from sqlalchemy import select

from kefu.models.complaints import Complaint
from kefu.models.db import unit_of_work
from kefu.tasks.casework import record_event
from kefu.worktime import local_times_in
from tests.casework.test_case_lifecycle import new_case
from tests.casework.test_cli_and_staff import SHANGHAI_TIME, kefu
from tests.support.processes import free_port


def test_times_inside_the_timeline_s_event_data_are_shown_in_shanghai_time(case_db_url: str, tmp_path: Path) -> None:
    case_no = "KF-SHOW-TIME-0001"
    new_case(case_no, "快递晚到两天")
    due = dt.datetime(2026, 12, 2, 2, 13, 7, 835176, tzinfo=dt.UTC)
    agreed = dt.datetime(2026, 12, 3, 7, 30, tzinfo=dt.UTC)
    with unit_of_work() as session:
        complaint = session.scalars(select(Complaint).where(Complaint.case_no == case_no)).one()
        record_event(session, complaint, "progress_contact_due", "p1", "system", due, due_at=due.isoformat())
        answer = {"agreed_at": agreed.isoformat(), "day": "2026-12-03", "note": "客户约定 15:30 来电"}
        record_event(session, complaint, "first_contact", "c1", "staff:1", due, answer=answer)

    # Prefect is not needed to read a case: a closed port stands for the server.
    shown = kefu(tmp_path, f"http://127.0.0.1:{free_port()}/api", case_db_url, "case", "show", case_no)

    assert shown.returncode == 0, shown.stderr
    assert "+00:00" not in shown.stdout and "T02:13" not in shown.stdout
    assert "'due_at': '2026-12-02 10:13 +08:00'" in shown.stdout
    assert "'agreed_at': '2026-12-03 15:30 +08:00'" in shown.stdout
    assert "'day': '2026-12-03'" in shown.stdout  # a day is not a moment: left as it is
    assert "客户约定 15:30 来电" in shown.stdout
    assert len(SHANGHAI_TIME.findall(shown.stdout)) >= 4


def test_the_case_names_its_owner_as_people_know_them(case_db_url: str, tmp_path: Path) -> None:
    """The owner by name and sign-in name (its staff number beside them), not a bare ``owner_staff_id=9`` that a
    reader must look up in ``kefu staff list`` (a walk through checked a key account's complaint went to its
    customer-service specialist and could not tell from the number)."""
    from kefu.models.people import Staff

    case_no = "KF-SHOW-OWNER-0001"
    new_case(case_no, "货物外箱破损")
    with unit_of_work() as session:
        owner = Staff(name="李客服", login="show.owner")
        session.add(owner)
        session.flush()
        session.scalars(select(Complaint).where(Complaint.case_no == case_no)).one().owner_id = owner.id
        owner_id = owner.id

    shown = kefu(tmp_path, f"http://127.0.0.1:{free_port()}/api", case_db_url, "case", "show", case_no)

    assert shown.returncode == 0, shown.stderr
    assert f"owner=李客服 (show.owner, #{owner_id})" in shown.stdout.splitlines()[0]


def test_only_moments_with_an_offset_are_converted() -> None:
    data = {
        "at": "2026-12-02T16:05:00Z",
        "nested": [{"since": "2026-12-02T04:24:09.835176+00:00"}],
        "naive": "2026-12-02T04:24:09",  # no zone stated: shown as stored
        "text": "2026-12-02T04:24:09+00:00 之前联系",  # a sentence, not a time
        "amount": 8000,
    }
    assert local_times_in(data) == {
        "at": "2026-12-03 00:05 +08:00",
        "nested": [{"since": "2026-12-02 12:24 +08:00"}],
        "naive": "2026-12-02T04:24:09",
        "text": "2026-12-02T04:24:09+00:00 之前联系",
        "amount": 8000,
    }
    assert re.fullmatch(SHANGHAI_TIME, local_times_in("2026-12-02T02:13:07+00:00"))
