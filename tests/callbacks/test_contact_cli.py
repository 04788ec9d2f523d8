"""``kefu contact log`` as people run it: a contact recorded with its channel, satisfaction and follow-up; bad input
refused with a clear message and nothing recorded; ``kefu contact list`` masks the customer's phone."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from kefu.models.enums import Role
from kefu.models.people import CommunicationRecord, Customer, Staff

KEFU = str(Path(sys.executable).parent / "kefu")


def kefu(database_url: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """The console script with only PATH and Kefu's database in its environment, run outside the project."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "KEFU_DATABASE_URL": database_url}
    return subprocess.run(
        [KEFU, *argv], env=env, capture_output=True, text=True, timeout=120, check=False, cwd=tempfile.gettempdir()
    )


@pytest.fixture
def people(db: Session) -> tuple[int, int]:
    agent = Staff(name="王客服", login="wang")
    agent.grant(Role.AGENT)
    retired = Staff(name="离职", login="gone", active=False)
    customer = Customer(code="CT-001", name="华东建材", phones=["13812348000"])
    db.add_all([agent, retired, customer])
    db.commit()
    return agent.id, customer.id


def records(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(CommunicationRecord)) or 0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["CT-404", "--as", "wang", "--channel", "phone", "--summary", "x"], "没有客户编号为 CT-404"),
        (["CT-001", "--as", "nobody", "--channel", "phone", "--summary", "x"], "--as nobody"),
        (["CT-001", "--as", "gone", "--channel", "phone", "--summary", "x"], "--as gone"),
        (["CT-001", "--as", "wang", "--channel", "fax", "--summary", "x"], "未知的沟通方式 fax"),
        (["CT-001", "--as", "wang", "--channel", "phone", "--summary", "  "], "摘要不能为空"),
        (["CT-001", "--as", "wang", "--channel", "phone", "--summary", "x", "--satisfaction", "7"], "1–5"),
        (["CT-001", "--as", "wang", "--channel", "phone", "--summary", "x", "--at", "yesterday"], "不是时间"),
        (["CT-001", "--as", "wang", "--channel", "phone", "--summary", "x", "--at", "2099-01-01 10:00"], "晚于现在"),
        (["CT-001", "--as", "wang", "--channel", "phone", "--summary", "x", "--kind", "gossip"], "未知类型"),
        (["CT-001", "--as", "wang", "--channel", "phone", "--summary", "x", "--follow-up-due", "2026-12-09"], "跟进"),
    ],
)
def test_bad_contact_input_is_refused_and_records_nothing(
    engine: Engine, database_url: str, people: tuple[int, int], argv: list[str], message: str
) -> None:
    done = kefu(database_url, "contact", "log", *argv)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert records(engine) == 0


def test_a_contact_is_logged_with_its_follow_up_and_listed_masked(
    engine: Engine, database_url: str, people: tuple[int, int]
) -> None:
    agent_id, customer_id = people
    done = kefu(
        database_url,
        *("contact", "log", "CT-001", "--as", "wang", "--channel", "phone"),
        *("--summary", "客户来电（13812348000）询问12月运价", "--at", "2026-12-01 10:30", "--satisfaction", "4"),
        *("--follow-up", "12月5日前寄送新运价表", "--follow-up-due", "2026-12-05 18:00"),
    )
    assert done.returncode == 0, done.stderr
    with Session(engine) as session:
        record = session.scalars(select(CommunicationRecord)).one()
        assert (record.customer_id, record.responsible_staff_id, record.channel, record.kind) == (
            customer_id,
            agent_id,
            "phone",
            "contact",
        )
        assert record.satisfaction == 4 and record.follow_up_open and record.follow_up_owner_id == agent_id
        assert record.at.isoformat() == "2026-12-01T02:30:00+00:00"  # written in Shanghai time
    listed = kefu(database_url, "contact", "list", "CT-001")
    assert listed.returncode == 0, listed.stderr
    assert "2026-12-01 10:30" in listed.stdout and "138****8000" in listed.stdout and "满意度4" in listed.stdout
    assert "13812348000" not in listed.stdout and "寄送新运价表" in listed.stdout


def test_kefu_contact_quality_prints_each_agents_month_and_refuses_a_bad_month(
    db: Session, database_url: str, people: tuple[int, int]
) -> None:
    import datetime as dt

    from kefu.models.contacts import QualityReview

    agent_id, customer_id = people
    for accuracy in (2, 4):
        record = CommunicationRecord(
            customer_id=customer_id, at=dt.datetime(2026, 11, 3, tzinfo=dt.UTC), channel="phone", summary="联系"
        )
        db.add(record)
        db.flush()
        db.add(
            QualityReview(
                year=2026,
                month=11,
                record_id=record.id,
                agent_id=agent_id,
                due_at=dt.datetime(2026, 12, 8, tzinfo=dt.UTC),
                status="scored",
                scores={"accuracy": accuracy, "courtesy": 5, "completeness": 4, "standard_phrases": 4},
                flagged=accuracy <= 2,
            )
        )
    db.commit()
    done = kefu(database_url, "contact", "quality", "2026-11")
    assert done.returncode == 0, done.stderr
    assert "王客服" in done.stdout and "评了2条" in done.stdout and "退回1条" in done.stdout
    assert "准确性 3.00" in done.stdout
    bad = kefu(database_url, "contact", "quality", "2026-13")
    assert bad.returncode == 2 and "YYYY-MM" in bad.stderr
