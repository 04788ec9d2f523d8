"""One contact, whichever door it comes in by (``kefu contact log``, ``kefu account contact log``, the intake API's
``POST /api/v1/contacts``): the same channels accepted, the same contact refused for the same reason with nothing
written, and the key-account contact cadence sees it the same way. The commands are the real console script in a
clean environment."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from kefu.models import CommunicationRecord, Customer, CustomerTier, Role
from kefu.models.cadence import ContactFollowUp
from kefu.models.policy import Policy
from kefu.tasks.cadence import check_cadence
from kefu.worktime import WorkCalendar
from tests.accounts.test_cadence import LONG_AGO, at, key_account, notices, person
from tests.support.samples import AUTH
from tests.test_staff_directory import kefu


def test_a_key_accounts_contact_logged_with_kefu_contact_log_closes_its_cadence_gap_like_the_account_command(
    db: Session, database_url: str, policy: Policy, calendar: WorkCalendar
) -> None:
    """A meeting (会议: one of the cadence's channels for key accounts) logged through either command counts as the
    month's contact: only the account nobody contacted is reminded before November ends."""
    pm = person(db, "door.pm", Role.PROJECT_MANAGER)
    for code in ("KA-CL", "KA-AC", "KA-NONE"):
        key_account(db, code, pm)
    db.commit()

    by_contact = kefu(database_url, "contact", "log", "KA-CL", "--as", "door.pm", "--channel", "meeting",
                      "--summary", "月度会议：11月发货计划", "--at", "2026-11-10 10:00")  # fmt: skip
    assert by_contact.returncode == 0, by_contact.stderr
    by_account = kefu(database_url, "account", "contact", "log", "KA-AC", "--as", "door.pm", "--channel", "meeting",
                      "--summary", "月度会议：11月发货计划", "--at", "2026-11-10 10:00")  # fmt: skip
    assert by_account.returncode == 0, by_account.stderr

    # November's last working day is Mon 30th: on Tue 24th the five working days before it have begun.
    check_cadence(db, policy, calendar, at("2026-11-24"))
    db.commit()
    assert notices(db) == [("KA-NONE", "contact", "2026-11", "reminded", "door.pm")]
    records = db.execute(
        select(Customer.code, CommunicationRecord.channel, CommunicationRecord.responsible_staff_id)
        .join(Customer, Customer.id == CommunicationRecord.customer_id)
        .order_by(Customer.code)
    ).all()
    assert [tuple(r) for r in records] == [("KA-AC", "meeting", pm.id), ("KA-CL", "meeting", pm.id)]


REFUSED = {
    "future time": ({"at": "2099-01-01 10:00"}, "晚于现在"),
    "unknown channel": ({"channel": "fax"}, "未知的沟通方式 fax"),
    "empty summary": ({"summary": "  "}, "摘要不能为空"),
    "unknown customer": ({"customer": "NOPE"}, "NOPE"),
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_a_contact_is_refused_for_the_same_reason_by_both_commands_and_the_api_and_nothing_is_written(
    client: httpx.AsyncClient, engine: Engine, database_url: str, case: str
) -> None:
    with Session(engine, expire_on_commit=False) as session:
        person(session, "door.agent", Role.AGENT)
        session.add(Customer(code="DOOR1", name="DOOR1贸易", tier=CustomerTier.GENERAL, created_at=LONG_AGO))
        session.commit()
    change, named = REFUSED[case]
    given = {"customer": "DOOR1", "channel": "phone", "summary": "电话沟通：运价", "at": "2026-11-10 10:00", **change}
    argv = [given["customer"], "--as", "door.agent", "--channel", given["channel"], "--summary", given["summary"]]
    argv += ["--at", given["at"]]

    reasons = []
    for command in (("contact", "log"), ("account", "contact", "log")):
        refused = kefu(database_url, *command, *argv)
        assert refused.returncode == 2, (command, refused.stdout)
        [line] = refused.stderr.splitlines()  # the reason in one line, no traceback
        reasons.append(line.split(": error: ", 1)[1])
    body = {"customer": given["customer"], "staff": "door.agent", "channel": given["channel"],
            "summary": given["summary"], "at": given["at"].replace(" ", "T")}  # fmt: skip
    answer = await client.post("/api/v1/contacts", json=body, headers=AUTH)
    assert answer.status_code == 422, answer.text
    reasons.append(answer.json()["errors"][0]["message"])

    assert reasons[0] == reasons[1] == reasons[2], reasons
    assert named in reasons[0]
    if case == "unknown channel":  # it names the channels accepted
        assert all(channel in reasons[0] for channel in ("phone", "visit", "meeting", "email"))
    if case == "future time":
        assert "2099-01-01 10:00 +08:00" in reasons[0]
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(CommunicationRecord)) == 0
        assert session.scalar(select(func.count()).select_from(ContactFollowUp)) == 0


def test_every_door_accepts_the_names_either_door_accepted_and_stores_one_vocabulary(
    db: Session, database_url: str
) -> None:
    """``mail`` (``kefu contact log``'s word) and 电话 (the account command's alias) work through both commands; what
    is stored is the cadence's vocabulary."""
    person(db, "names.agent", Role.AGENT)
    db.add(Customer(code="NAMES1", name="NAMES1贸易", created_at=LONG_AGO))
    db.commit()
    given = ("mail", "电话", "face_to_face", "hotline")
    for command in (("contact", "log"), ("account", "contact", "log")):
        for channel in given:
            done = kefu(database_url, *command, "NAMES1", "--as", "names.agent", "--channel", channel,
                        "--summary", f"{channel}沟通")  # fmt: skip
            assert done.returncode == 0, (command, channel, done.stderr)
    listed = kefu(database_url, "contact", "list", "NAMES1")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("电子邮件") == 2 and listed.stdout.count("拜访") == 2
    stored = db.scalars(select(CommunicationRecord.channel).order_by(CommunicationRecord.id)).all()
    assert stored == ["email", "phone", "visit", "hotline"] * 2
