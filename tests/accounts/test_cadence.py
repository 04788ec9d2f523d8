"""Contact cadence (seed 003 §2.3): key accounts need a phone or face-to-face contact each month and a business review
each quarter, general customers a contact each quarter. The daily check reminds the right person once before the
period ends, escalates to the supervisor when the period is over without the contact, does nothing on days off and
counts the make-up working days (调休); a recorded contact closes the gap. Contacts are recorded through
``kefu account contact log`` (the real console script, a clean environment), which refuses bad input whole."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from kefu.models import Channel, CommunicationRecord, Complaint, Customer, CustomerTier, Role, Severity, Staff
from kefu.models.accounts import BusinessFigures, KeyAccountMember, TeamRole
from kefu.models.cadence import AccountChange, CadenceNotice, ContactFollowUp, KpiImprovementTask
from kefu.models.db import make_engine, unit_of_work
from kefu.models.migrate import upgrade
from kefu.models.notifications import OutboxMessage
from kefu.models.policy import Policy
from kefu.tasks.account_followthrough import open_improvement_tasks
from kefu.tasks.accounts import assign_member
from kefu.tasks.cadence import check_cadence, contacted, period_of
from kefu.tasks.contacts import ContactRefused, FollowUpEntry, log_contact, record_contact
from kefu.worktime import WorkCalendar
from tests.support.clock import SHANGHAI
from tests.support.samples import AUTH
from tests.test_staff_directory import kefu, write_table

LONG_AGO = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)  # customers on record well before the periods tested


def at(day: str, hour: int = 9) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour), SHANGHAI)


def person(
    db: Session, login: str, role: Role, *, boss: Staff | None = None, on_duty: list[str] | None = None
) -> Staff:
    staff = Staff(name=login, login=login, email=f"{login}@kefu.example.com", supervisor=boss, on_duty=on_duty or [])
    staff.grant(role)
    db.add(staff)
    db.flush()
    return staff


def key_account(db: Session, code: str, pm: Staff, specialist: Staff | None = None) -> Customer:
    customer = Customer(code=code, name=f"{code}物流客户", tier=CustomerTier.KEY, phones=["13800138000"],
                        created_at=LONG_AGO)  # fmt: skip
    db.add(customer)
    db.flush()
    assign_member(db, customer, TeamRole.PROJECT_MANAGER, pm)
    if specialist is not None:
        assign_member(db, customer, TeamRole.SERVICE_SPECIALIST, specialist)
    return customer


def notices(db: Session) -> list[tuple[str | None, str, str, str, str | None]]:
    rows = db.execute(
        select(Customer.code, CadenceNotice.gap, CadenceNotice.period, CadenceNotice.stage, Staff.login)
        .join(Customer, Customer.id == CadenceNotice.customer_id)
        .outerjoin(Staff, Staff.id == CadenceNotice.staff_id)
        .order_by(CadenceNotice.id)
    ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def mails(db: Session) -> list[tuple[str, str]]:
    rows = db.execute(
        select(OutboxMessage.recipient, OutboxMessage.message_type)
        .where(OutboxMessage.message_type.like("contact_cadence%"))
        .order_by(OutboxMessage.id)
    ).all()
    return [(r, t) for r, t in rows]


def test_a_key_account_is_reminded_once_before_month_and_quarter_end_and_escalated_after_new_year(
    db: Session, policy: Policy, calendar: WorkCalendar
) -> None:
    boss = person(db, "boss", Role.SUPERVISOR)
    pm = person(db, "pm", Role.PROJECT_MANAGER, boss=boss)
    specialist = person(db, "cs", Role.AGENT, boss=boss)
    ka = key_account(db, "KA1", pm, specialist)
    db.commit()

    # December's last working day is Thu 31st; 5 working days before it the window opens (Fri 25th), not earlier.
    assert check_cadence(db, policy, calendar, at("2026-12-24")).notices == []
    first = check_cadence(db, policy, calendar, at("2026-12-25"))
    db.commit()
    assert notices(db) == [("KA1", "contact", "2026-12", "reminded", "pm"),
                           ("KA1", "business_review", "2026-Q4", "reminded", "pm")]  # fmt: skip
    assert [(n.code, n.stage, n.staff) for n in first.notices] == [("KA1", "reminded", "pm")] * 2
    mail = db.scalars(select(OutboxMessage).where(OutboxMessage.recipient == "pm@kefu.example.com")).first()
    assert mail is not None and "KA1" in mail.subject and "2026年12月31日 18:00" in mail.body_text
    assert "KA1物流客户" in mail.body_text  # the team sees its account's name in full
    assert "13800138000" not in mail.body_text  # personal data never in an internal mail
    assert "13800138000" not in first.markdown()
    assert "| KA1 | 重点客户 | 联系 | 2026-12 | 提醒 | pm |" in first.markdown()

    # Run again that day and on the following days: the same gaps are never told twice.
    for day in ("2026-12-25", "2026-12-28"):
        assert check_cadence(db, policy, calendar, at(day, 15)).notices == []
    db.commit()
    assert mails(db) == [("pm@kefu.example.com", "contact_cadence_reminder")] * 2

    # A phone call on the 29th closes December's contact gap, not the quarter's business review. A record of a
    # complaint received (no staff member responsible) is no contact of ours.
    record_contact(db, policy, ka, channel="phone", summary="月度电话沟通：发货量稳定", responsible=pm,
                   at=at("2026-12-29", 10), now=at("2026-12-29", 11),
                   follow_ups=[FollowUpEntry("寄送年度合同", "cs", dt.date(2026, 12, 30))])  # fmt: skip
    db.add(CommunicationRecord(customer_id=ka.id, at=at("2026-12-30"), channel="phone", summary="通过电话受理投诉"))
    db.commit()

    # The follow-up item's owner hears of it on its due day, once, while it is not done.
    assert check_cadence(db, policy, calendar, at("2026-12-29", 15)).notices == []
    due = check_cadence(db, policy, calendar, at("2026-12-30"))
    assert [(n.gap, n.period, n.staff) for n in due.notices] == [("follow_up", "#1", "cs")]
    assert check_cadence(db, policy, calendar, at("2026-12-31")).notices == []
    db.commit()
    follow_up = db.scalars(select(OutboxMessage).where(OutboxMessage.message_type == "follow_up_due")).one()
    assert follow_up.recipient == "cs@kefu.example.com" and "寄送年度合同" in follow_up.body_text

    # New Year's Day is a holiday and the 2nd and 3rd a weekend: nothing runs; Mon 4th is the first working day after
    # the quarter, when the missing business review goes to the project manager's supervisor.
    for day in ("2027-01-01", "2027-01-02", "2027-01-03"):
        skipped = check_cadence(db, policy, calendar, at(day))
        assert not skipped.working_day and skipped.notices == [] and "非工作日" in skipped.markdown()
    escalated = check_cadence(db, policy, calendar, at("2027-01-04"))
    assert check_cadence(db, policy, calendar, at("2027-01-05")).notices == []
    db.commit()
    assert [(n.code, n.gap, n.period, n.stage, n.staff) for n in escalated.notices] == [
        ("KA1", "business_review", "2026-Q4", "escalated", "boss")
    ]
    overdue = db.scalars(select(OutboxMessage).where(OutboxMessage.message_type == "contact_cadence_overdue")).one()
    assert overdue.recipient == "boss@kefu.example.com" and "负责人：pm" in overdue.body_text
    assert "2026-Q4" in overdue.subject and "全面业务回顾" in overdue.body_text


def test_general_customers_quarter_across_national_day_reach_the_last_complaint_owner_or_the_agent_on_duty(
    db: Session, policy: Policy, calendar: WorkCalendar
) -> None:
    boss = person(db, "boss2", Role.SUPERVISOR)
    owner = person(db, "owner", Role.AGENT, boss=boss)
    person(db, "duty", Role.AGENT, boss=boss, on_duty=["wed"])
    person(db, "tuesday", Role.AGENT, boss=boss, on_duty=["tue"])  # not on duty on the day of the reminder
    complained, quiet, called = (
        Customer(code=code, name=f"{code}贸易", created_at=LONG_AGO) for code in ("G1", "G2", "G3")
    )
    db.add_all([complained, quiet, called])
    db.flush()
    db.add(Complaint(case_no="TS-CAD-1", channel=Channel.PHONE, received_at=at("2026-05-06"), content="包装破损",
                     severity=Severity.GENERAL, customer_id=complained.id, owner_id=owner.id))  # fmt: skip
    record_contact(db, policy, called, channel="mail", summary="季度邮件回访", responsible=owner,
                   at=at("2026-08-03"), now=at("2026-08-03"))  # fmt: skip
    db.commit()

    # Q3's last working day is Wed 30 Sep; the Mid-Autumn Festival (Fri 25th) and the weekend do not count, so
    # the five working days are 23, 24, 28, 29, 30 Sep: Tue 22nd is too early.
    assert check_cadence(db, policy, calendar, at("2026-09-22")).notices == []
    check_cadence(db, policy, calendar, at("2026-09-23"))
    db.commit()
    assert notices(db) == [("G1", "contact", "2026-Q3", "reminded", "owner"),
                           ("G2", "contact", "2026-Q3", "reminded", "duty")]  # fmt: skip
    reminder = db.scalars(select(OutboxMessage).where(OutboxMessage.recipient == "owner@kefu.example.com")).one()
    assert "联系客户G***" in reminder.body_text and "G1贸易" not in reminder.body_text  # the name masked to an agent
    assert "kefu account contact log G1" in reminder.body_text

    # National Day: 1–7 October are days off (including the 调休 rest days); the first working day after the quarter
    # is Thu 8th. Nothing is escalated before it, and nothing twice.
    for day in ("2026-10-01", "2026-10-05", "2026-10-07"):
        assert check_cadence(db, policy, calendar, at(day)).notices == []
    check_cadence(db, policy, calendar, at("2026-10-08"))
    check_cadence(db, policy, calendar, at("2026-10-10"))  # a make-up working Saturday: runs, tells nobody again
    db.commit()
    assert notices(db)[2:] == [("G1", "contact", "2026-Q3", "escalated", "boss2"),
                               ("G2", "contact", "2026-Q3", "escalated", "boss2")]  # fmt: skip
    assert len(mails(db)) == 4 and not any(code == "G3" for code, *_ in notices(db))


def test_spring_festival_moves_februarys_last_working_day_to_the_make_up_saturday(
    db: Session, policy: Policy, calendar: WorkCalendar
) -> None:
    boss = person(db, "boss3", Role.SUPERVISOR)
    specialist = person(db, "spec", Role.AGENT, boss=boss)
    ka = Customer(code="KA2", name="KA2电子", tier=CustomerTier.KEY, created_at=LONG_AGO)
    db.add(ka)
    db.flush()
    assign_member(db, ka, TeamRole.SERVICE_SPECIALIST, specialist)  # no project manager: the specialist answers
    db.commit()

    # 2026: Spring Festival 16–23 Feb (23rd a 调休 rest day), Sat 28 Feb a make-up working day and the month's last.
    for day in ("2026-02-14", "2026-02-21", "2026-02-23"):
        assert check_cadence(db, policy, calendar, at(day)).notices == []
    check_cadence(db, policy, calendar, at("2026-02-24"))
    db.commit()
    assert notices(db) == [("KA2", "contact", "2026-02", "reminded", "spec")]
    mail = db.scalars(select(OutboxMessage).where(OutboxMessage.recipient == "spec@kefu.example.com")).one()
    assert "2026年2月28日 18:00" in mail.body_text
    assert check_cadence(db, policy, calendar, at("2026-03-01")).notices == []  # Sunday
    escalated = check_cadence(db, policy, calendar, at("2026-03-02"))
    db.commit()
    assert [(n.gap, n.period, n.stage, n.staff) for n in escalated.notices] == [
        ("contact", "2026-02", "escalated", "boss3")
    ]


def test_the_scheduled_flow_tells_each_gap_once_and_leaves_a_summary(
    prefect_server: str, engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if engine.dialect.name == "postgresql":
        pytest.skip("the flow hands the configured database to check_cadence: the SQLite run covers it")
    from kefu.flows.contact_cadence import contact_cadence
    from kefu.settings import get_settings

    with Session(engine, expire_on_commit=False) as session:
        pm = person(session, "flow.pm", Role.PROJECT_MANAGER)
        key_account(session, "KA9", pm)
        session.commit()
    monkeypatch.setenv("KEFU_DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        first = contact_cadence(at=at("2026-12-28"))
        second = contact_cadence(at=at("2026-12-28", 14))
        holiday = contact_cadence(at=at("2027-01-01"))
    finally:
        get_settings.cache_clear()
    assert first == {"reminded": 2, "escalated": 0}
    assert second == holiday == {"reminded": 0, "escalated": 0}
    with Session(engine) as session:
        assert mails(session) == [("flow.pm@kefu.example.com", "contact_cadence_reminder")] * 2


def test_kefu_account_contact_log_records_a_contact_and_refuses_bad_input_whole(sqlite_engine: Engine) -> None:
    engine, url = sqlite_engine, sqlite_engine.url.render_as_string(hide_password=False)
    with Session(engine, expire_on_commit=False) as session:
        pm = person(session, "li.pm", Role.PROJECT_MANAGER)
        person(session, "wang.ops", Role.OPERATIONS)
        key_account(session, "HX01", pm)
        session.commit()

    def counts() -> tuple[int, int]:
        with Session(engine) as session:
            return (
                session.scalar(select(func.count()).select_from(CommunicationRecord)) or 0,
                session.scalar(select(func.count()).select_from(ContactFollowUp)) or 0,
            )

    good = ["account", "contact", "log", "HX01", "--as", "li.pm", "--channel", "visit", "--summary", "季度业务回顾"]
    bad = {
        "unknown channel": (["--channel", "fax"], "unknown channel 'fax'"),
        "follow-up format": (["--follow-up", "补充报价;wang.ops"], "write item;owner;YYYY-MM-DD"),
        "follow-up date": (["--follow-up", "补充报价;wang.ops;2026-13-01"], "is not a date"),
        "follow-up owner": (["--follow-up", "补充报价;nobody;2026-12-31"], "no active staff 'nobody'"),
        "follow-up early": (
            ["--at", "2026-11-20 10:00", "--follow-up", "报价;wang.ops;2026-11-01"],
            "before the contact",
        ),
        "review by mail": (["--review", "--channel", "email"], "a business review is by"),
        "empty summary": (["--summary", "  "], "--summary"),
        "future": (["--at", "2099-01-01 10:00"], "in the future"),
        "bad time": (["--at", "tomorrow"], "write YYYY-MM-DD HH:MM"),
        "unknown customer": (["--channel", "phone"], None),
        "unknown person": (["--as", "ghost"], "--as ghost"),
    }
    for name, (extra, message) in bad.items():
        argv = list(good) + extra
        if name == "unknown customer":
            argv[3] = "NOPE"
        refused = kefu(url, *argv)
        assert refused.returncode == 2, (name, refused.stdout, refused.stderr)
        assert message is None or message in refused.stderr, (name, refused.stderr)
        assert "Traceback" not in refused.stderr
        assert counts() == (0, 0), name

    follow_ups = ["--follow-up", "补充报价；wang.ops；2026-11-30", "--follow-up", "安排仓库参观;li.pm;2026-12-10"]
    logged = kefu(url, *good, "--review", "--at", "2026-11-20 10:00", *follow_ups)
    assert logged.returncode == 0, logged.stderr
    assert "HX01: contact 1 recorded (visit, business review), 2 follow-up item(s)" in logged.stdout
    assert counts() == (1, 2)

    shown = kefu(url, "account", "show", "HX01")
    assert shown.returncode == 0, shown.stderr
    assert "2026-11-20 10:00" in shown.stdout and "拜访 业务回顾  li.pm: 季度业务回顾" in shown.stdout
    assert "follow-up #1: 补充报价 — wang.ops, due 2026-11-30" in shown.stdout

    not_owner = kefu(url, "account", "contact", "done", "1", "--as", "li.pm")
    assert not_owner.returncode == 2 and "only the item's owner" in not_owner.stderr
    missing = kefu(url, "account", "contact", "done", "9", "--as", "wang.ops")
    assert missing.returncode == 2 and "no follow-up item #9" in missing.stderr
    done = kefu(url, "account", "contact", "done", "1", "--as", "wang.ops")
    assert done.returncode == 0 and "follow-up #1 (补充报价) done" in done.stdout, done.stderr
    again = kefu(url, "account", "contact", "done", "1", "--as", "wang.ops")
    assert again.returncode == 2 and "done already" in again.stderr
    assert "follow-up #1: 补充报价 — wang.ops, done" in kefu(url, "account", "show", "HX01").stdout
    assert "contact cadence:" in shown.stdout and "业务回顾 business_review" in shown.stdout


async def test_a_gateway_records_a_contact_through_the_api_and_bad_input_stores_nothing(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    with Session(engine, expire_on_commit=False) as session:
        pm = person(session, "api.pm", Role.PROJECT_MANAGER)
        key_account(session, "KA5", pm)
        session.commit()
    follow_ups = [{"item": "发送报价", "owner": "api.pm", "due": "2026-11-30"}]
    good = {"customer": "KA5", "staff": "api.pm", "channel": "phone", "summary": "电话沟通：12月发货计划",
            "at": "2026-11-23T09:30:00", "follow_ups": follow_ups}  # fmt: skip
    for change, expected in [
        ({"channel": "fax"}, "unknown channel"),
        ({"customer": "NOPE"}, None),
        ({"summary": ""}, "summary"),
        ({"follow_ups": [{"item": "x", "owner": "ghost", "due": "2026-11-30"}]}, "no active staff 'ghost'"),
        ({"business_review": "yes"}, "business_review"),
        ({"extra": 1}, "unknown fields"),
    ]:
        refused = await client.post("/api/v1/contacts", json={**good, **change}, headers=AUTH)
        assert refused.status_code == 422, refused.text
        assert expected is None or expected in refused.json()["errors"][0]["message"]
    assert (await client.post("/api/v1/contacts", json=good)).status_code == 401
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(CommunicationRecord)) == 0

    made = await client.post("/api/v1/contacts", json=good, headers=AUTH)
    assert made.status_code == 201, made.text
    assert made.json()["customer"] == "KA5" and made.json()["at"] == "2026-11-23T09:30:00+08:00"
    with Session(engine) as session:
        record = session.scalars(select(CommunicationRecord)).one()
        assert record.channel == "phone" and record.responsible_staff_id == pm.id and not record.business_review
        follow_up = session.scalars(select(ContactFollowUp)).one()
        assert follow_up.item == "发送报价" and follow_up.due_on == dt.date(2026, 11, 30)


# --- KPI below floor → improvement task; demotion ------------------------------------------------------------------


def figures(db: Session, customer: Customer, month: dt.date, *, on_time: int, delivered: int, complaints: int) -> None:
    db.add(BusinessFigures(customer_id=customer.id, month=month, orders=100, volume=Decimal("1000"),
                           orders_on_time=on_time, deliveries_on_time=delivered, complaints=complaints))  # fmt: skip


def test_a_kpi_past_its_target_opens_one_improvement_task_for_the_project_manager(db: Session, policy: Policy) -> None:
    pm = person(db, "kpi.pm", Role.PROJECT_MANAGER)
    ka = key_account(db, "KA7", pm)
    general = Customer(code="GN7", name="GN7商贸", created_at=LONG_AGO)
    db.add(general)
    db.flush()
    november, october = dt.date(2026, 11, 1), dt.date(2026, 10, 1)
    figures(db, ka, november, on_time=90, delivered=99, complaints=2)  # 90% < 95%, 2% > 1%: two KPIs missed
    figures(db, ka, october, on_time=80, delivered=80, complaints=0)  # before `since`: not reopened history
    figures(db, general, november, on_time=50, delivered=50, complaints=9)  # not a key account: no task
    db.commit()

    opened = open_improvement_tasks(db, policy, since=november, now=at("2026-12-02"))
    again = open_improvement_tasks(db, policy, since=november, now=at("2026-12-03"))
    db.commit()
    assert opened == ["KA7:2026-11:order_on_time_rate", "KA7:2026-11:complaint_rate"] and again == []
    tasks = db.scalars(select(KpiImprovementTask).order_by(KpiImprovementTask.id)).all()
    assert [(t.kpi, t.owner_id, round(t.value or 0, 2), t.target) for t in tasks] == [
        ("order_on_time_rate", pm.id, 0.9, 0.95),
        ("complaint_rate", pm.id, 0.02, 0.01),
    ]
    sent = db.scalars(select(OutboxMessage).where(OutboxMessage.message_type == "kpi_improvement_task")).all()
    assert [m.recipient for m in sent] == ["kpi.pm@kefu.example.com"] * 2
    assert "订单处理及时率" in sent[0].subject and "90.0%" in sent[0].body_text and "不低于95.0%" in sent[0].body_text


def test_kefu_account_demote_is_a_senior_managers_audited_decision_and_bad_input_changes_nothing(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    engine, url = sqlite_engine, sqlite_engine.url.render_as_string(hide_password=False)
    with Session(engine, expire_on_commit=False) as session:
        pm = person(session, "d.pm", Role.PROJECT_MANAGER)
        person(session, "gao.zong", Role.SENIOR_MANAGER)
        key_account(session, "KD1", pm)
        session.add(Customer(code="GD1", name="GD1贸易", created_at=LONG_AGO))
        session.commit()
    today = dt.datetime.now(SHANGHAI).date()
    last_month = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    table = tmp_path / "figures.csv"
    write_table(table, [["customer", "month", "orders", "volume", "orders_on_time", "deliveries_on_time", "complaints"],
                        ["KD1", f"{last_month:%Y-%m}", "100", "500", "99", "90", "0"]])  # fmt: skip
    imported = kefu(url, "import", "business", str(table))
    assert imported.returncode == 0, imported.stderr
    assert f"improvement tasks opened (1): KD1:{last_month:%Y-%m}:delivery_on_time_rate" in imported.stdout
    shown = kefu(url, "account", "show", "KD1")
    assert f"{last_month:%Y-%m} 准时交付率 delivery_on_time_rate 90.0% (target 95.0%)  d.pm  open" in shown.stdout

    def state() -> tuple[CustomerTier, int, int]:
        with Session(engine) as session:
            customer = session.scalars(select(Customer).where(Customer.code == "KD1")).one()
            return (
                customer.tier,
                session.scalar(select(func.count()).select_from(KeyAccountMember)) or 0,
                session.scalar(select(func.count()).select_from(AccountChange)) or 0,
            )

    before = state()
    assert before == (CustomerTier.KEY, 1, 0)
    for argv, message in [
        (["KD1", "--as", "d.pm", "--reason", "业务量下降"], "only a senior manager"),
        (["KD1", "--as", "gao.zong", "--reason", "  "], "--reason"),
        (["GD1", "--as", "gao.zong", "--reason", "业务量下降"], "not a key account"),
        (["NOPE", "--as", "gao.zong", "--reason", "业务量下降"], "NOPE"),
        (["KD1", "--as", "ghost", "--reason", "业务量下降"], "--as ghost"),
    ]:
        refused = kefu(url, "account", "demote", *argv)
        assert refused.returncode == 2 and message in refused.stderr, (argv, refused.stderr)
        assert state() == before

    demoted = kefu(url, "account", "demote", "KD1", "--as", "gao.zong", "--reason", "连续两个季度业务量低于门槛")
    assert demoted.returncode == 0, demoted.stderr
    assert "KD1 is a general customer now; team of 1 ended" in demoted.stdout
    assert state() == (CustomerTier.GENERAL, 0, 1)
    shown = kefu(url, "account", "show", "KD1")
    assert "tier: 一般客户 general" in shown.stdout
    assert "by gao.zong: 连续两个季度业务量低于门槛  (team ended: project_manager d.pm)" in shown.stdout
    assert "delivery_on_time_rate 90.0% (target 95.0%)  d.pm  closed" in shown.stdout


def test_communication_records_made_before_the_cadence_survive_the_upgrade_and_count_as_ordinary_contacts(
    tmp_path: Path, policy: Policy
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "complaint_contact_name")
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO staff (id, name, login, email, active, on_duty, created_at) "
            "VALUES (3, '陈经理', 'chen', 'chen@kefu.example.com', 1, '[]', '2026-01-01 00:00:00')"
        ))  # fmt: skip
        connection.execute(text(
            "INSERT INTO customers (id, tier, name, code, phones, more_addresses, created_at) "
            "VALUES (7, 'key', '华星电子', 'HX01', '[]', '[]', '2025-10-05 00:00:00')"
        ))  # fmt: skip
        connection.execute(text(
            "INSERT INTO communication_records (customer_id, at, channel, summary, responsible_staff_id, "
            "follow_up_items, created_at) VALUES (7, '2026-12-01 02:00:00', 'visit', '拜访', 3, '[\"报价\"]', "
            "'2026-12-01 02:00:00')"
        ))  # fmt: skip
    upgrade(engine)
    with unit_of_work(engine) as session:
        record = session.scalars(select(CommunicationRecord)).one()
        assert (record.summary, record.follow_up_items, record.business_review) == ("拜访", ["报价"], None)
        december = period_of(dt.date(2026, 12, 2), 1)
        quarter = period_of(dt.date(2026, 12, 2), 3)
        rules = policy.contact_cadence.key
        assert contacted(session, [7], "contact", rules["contact"], december, SHANGHAI) == {7}
        assert contacted(session, [7], "business_review", rules["business_review"], quarter, SHANGHAI) == set()
    engine.dispose()


def test_a_flow_records_a_contact_as_a_step_and_a_wrong_one_writes_nothing(
    engine: Engine, kefu_database_url: str
) -> None:
    with Session(engine, expire_on_commit=False) as session:
        agent = person(session, "step.agent", Role.AGENT)
        session.add(Customer(code="GS1", name="GS1贸易", created_at=LONG_AGO))
        session.commit()
    with pytest.raises(ContactRefused, match="no active staff 'nobody'"):
        log_contact("GS1", "step.agent", "phone", "回访", follow_ups=["寄送样品;nobody;2099-01-01"])
    with pytest.raises(ContactRefused, match="GS9"):
        log_contact("GS9", "step.agent", "phone", "回访")
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(CommunicationRecord)) == 0
    record_id = log_contact(
        "GS1", "step.agent", "电话", "回访：对处理结果满意", follow_ups=["寄送样品;step.agent;2099-01-01"]
    )
    with Session(engine) as session:
        record = session.get_one(CommunicationRecord, record_id)
        assert (record.channel, record.responsible_staff_id, record.summary) == (
            "phone",
            agent.id,
            "回访：对处理结果满意",
        )
        assert session.scalars(select(ContactFollowUp.item)).all() == ["寄送样品"]


def test_a_routine_callback_by_mail_counts_as_the_general_customers_contact_of_the_quarter(
    db: Session, policy: Policy
) -> None:
    """The callbacks write ``mail`` (and visits ``face_to_face``) where the cadence says ``email`` (``visit``): the
    customer called back by mail this quarter has no gap and is not reminded again."""
    caller = person(db, "callback-agent", Role.AGENT)
    mailed, visited, nothing = (
        Customer(code=code, name=f"{code}贸易", created_at=LONG_AGO) for code in ("CBM1", "CBM2", "CBM3")
    )
    db.add_all([mailed, visited, nothing])
    db.flush()
    for customer, channel in ((mailed, "mail"), (visited, "face_to_face")):
        db.add(CommunicationRecord(customer_id=customer.id, at=at("2026-11-03"), channel=channel, summary="定期回访",
                                   responsible_staff_id=caller.id, kind="routine_callback"))  # fmt: skip
    db.flush()
    general = policy.contact_cadence.general["contact"].model_copy(update={"channels": ["phone", "email", "visit"]})
    quarter = period_of(dt.date(2026, 11, 20), general.every_months)
    ids = [mailed.id, visited.id, nothing.id]
    assert contacted(db, ids, "contact", general, quarter, SHANGHAI) == {mailed.id, visited.id}
