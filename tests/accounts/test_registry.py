"""The customer registry, the key-account team and the business figures, through the console script as a person
runs it (a clean environment: only Kefu's database), on SQLite; the team's place in the one rule on both backends."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from kefu.models import Complaint, Customer, CustomerTier, Role, Staff
from kefu.models.accounts import BusinessFigures, TeamRole
from kefu.models.personal_data import PersonalDataAccess
from kefu.models.registry import get_customer
from kefu.tasks.accounts import assign_member
from kefu.tasks.customer_data import full_access_reason, key_account_team
from tests.support.clock import SHANGHAI
from tests.test_staff_directory import kefu, write_table

HEADER = ["code", "name", "contact_person", "phones", "email", "address", "industry", "needs", "preferences"]
GOOD = [
    HEADER,
    ["HX01", "华星电子有限公司", "张三", "13800138000, 021-5555 6666", "zhang@hx.example.com",
     "上海市浦东新区张江路88号", "电子", "每日发货", "上午送达"],
    ["", "李四贸易", "李四", "+86 139 0013 9000", "", "北京市朝阳区建国路1号", "零售", "", ""],
]  # fmt: skip


def customers(engine: Engine) -> dict[str, Customer]:
    with Session(engine) as session:
        return {c.code or "": c for c in session.scalars(select(Customer))}


def test_a_customer_file_with_bad_rows_or_duplicates_imports_nothing_and_lists_every_bad_row(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    engine, url = sqlite_engine, sqlite_engine.url.render_as_string(hide_password=False)
    good = tmp_path / "customers.csv"
    write_table(good, [[f'"{cell}"' if "," in cell else cell for cell in row] for row in GOOD])
    imported = kefu(url, "customer", "import", str(good))
    assert imported.returncode == 0, imported.stderr
    assert "2 customers added" in imported.stdout
    registry = customers(engine)
    assert registry["HX01"].phones == ["13800138000", "021-55556666"] and registry["HX01"].industry == "电子"
    assert registry["C000002"].phones == ["13900139000"] and registry["C000002"].preferences is None

    bad = tmp_path / "more.xlsx"
    write_table(
        bad,
        [
            HEADER,
            ["OK1", "正常客户", "", "13700137000", "", "", "", "", ""],  # good on its own: not imported either
            ["", "", "", "12345", "not-an-email", "", "", "", ""],
            ["X2", "重复电话", "", "138-0013-8000", "ZHANG@hx.example.com", "", "", "", ""],
            ["X3", "同文件重复", "", "13700137000", "", "", "", "", ""],
            ["hx01", "重复编号", "", "", "new@example.com", "", "", "", ""],
            ["X5", "没有联系方式", "", "", "", "", "", "", ""],
        ],
    )
    refused = kefu(url, "customer", "import", str(bad))
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        "kefu customer import: more.xlsx: nothing imported; fix these rows:",
        "  line 3: name is empty",
        "  line 3: phone 1 is not a mobile or landline number",
        "  line 3: email is not an e-mail address",
        "  line 4: duplicate: phone 1 belongs to customer HX01",
        "  line 4: duplicate: email belongs to customer HX01",
        "  line 5: duplicate: phone 1 is also on line 2",
        "  line 6: code 'hx01' is taken by a customer on record",
        "  line 7: give a phone number or an e-mail address (联系方式)",
    ]
    assert "13800138000" not in refused.stderr  # a number is personal data: never repeated
    assert set(customers(engine)) == {"HX01", "C000002"}

    again = kefu(url, "customer", "add", "另一家", "--phone", "139 0013 9000")
    assert again.returncode == 2 and "phone 1 belongs to customer C000002" in again.stderr
    assert len(customers(engine)) == 2


def test_customer_show_and_list_show_personal_data_in_full_only_to_the_team_and_supervisors(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    engine, url = sqlite_engine, sqlite_engine.url.render_as_string(hide_password=False)
    with Session(engine) as session:
        staff = {}
        roles = [("pm", Role.PROJECT_MANAGER), ("other.pm", Role.PROJECT_MANAGER), ("boss", Role.SUPERVISOR)]
        for login, role in roles:
            staff[login] = Staff(name=login, login=login)
            staff[login].grant(role)
        session.add_all(staff.values())
        session.add(
            Customer(code="HX01", name="华星电子有限公司", contact_person="张三", phones=["13800138000"],
                     email="zhang@hx.example.com", address="上海市浦东新区张江路88号", tier=CustomerTier.KEY,
                     more_addresses=["江苏省苏州市工业园区星湖街1号"], needs="联系13800138000")
        )  # fmt: skip
        session.flush()
        assign_member(session, get_customer(session, "HX01"), TeamRole.SERVICE_SPECIALIST, staff["pm"])
        session.commit()

    member = kefu(url, "customer", "show", "HX01", "--as", "pm")
    assert member.returncode == 0, member.stderr
    assert "13800138000" in member.stdout and "华星电子有限公司" in member.stdout
    assert "江苏省苏州市工业园区星湖街1号" in member.stdout and "team: 客服专员 pm (pm)" in member.stdout
    outsider = kefu(url, "customer", "list", "--as", "other.pm")  # the role alone is not the team
    assert outsider.returncode == 0, outsider.stderr
    assert "138****8000" in outsider.stdout and "z***@hx.example.com" in outsider.stdout
    assert "13800138000" not in outsider.stdout and "张江路" not in outsider.stdout
    assert "华星电子" not in outsider.stdout
    supervisor = kefu(url, "customer", "list", "--as", "boss")
    assert supervisor.returncode == 0 and "13800138000" in supervisor.stdout

    with Session(engine) as session:
        readings = session.execute(select(PersonalDataAccess.reason, PersonalDataAccess.through)).all()
    assert sorted(readings) == [("key_account_team", "kefu customer show"), ("supervisor", "kefu customer list")]


def test_the_team_table_feeds_the_one_rule_for_a_key_accounts_cases(db: Session) -> None:
    dispatcher = Staff(name="调度", login="diao")
    dispatcher.grant(Role.DISPATCHER)
    customer = Customer(code="K1", name="客户", tier=CustomerTier.KEY)
    case = Complaint(
        case_no="KF-T-0001", channel="hotline", received_at=dt.datetime(2026, 11, 2, 10, tzinfo=SHANGHAI),
        severity="general", customer=customer, content="晚到",
    )  # fmt: skip
    db.add_all([dispatcher, case])
    db.flush()
    assert full_access_reason(dispatcher, case) is None
    assign_member(db, customer, TeamRole.DISPATCHER, dispatcher)
    assert key_account_team(customer) == {dispatcher.id}
    assert full_access_reason(dispatcher, case) == "key_account_team"
    customer.tier = CustomerTier.GENERAL  # left the programme: the team no longer sees it in full
    assert full_access_reason(dispatcher, case) is None


FIGURES_HEADER = ["customer", "month", "orders", "volume", "orders_on_time", "deliveries_on_time", "complaints"]


def test_business_figures_import_all_or_nothing_and_count_kefus_own_complaints_when_not_given(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    engine, url = sqlite_engine, sqlite_engine.url.render_as_string(hide_password=False)
    with Session(engine) as session:
        customer = Customer(code="HX01", name="华星", tier=CustomerTier.KEY, industry="电子")
        session.add(customer)
        for day in (3, 20):  # two complaints received in November (Shanghai time), one on 1 December 07:00 Shanghai
            session.add(
                Complaint(
                    case_no=f"KF-T-{day}",
                    channel="hotline",
                    severity="general",
                    customer=customer,
                    content="晚到",
                    received_at=dt.datetime(2026, 11, day, 10, tzinfo=SHANGHAI),
                )
            )
        session.add(
            Complaint(
                case_no="KF-T-D1",
                channel="hotline",
                severity="general",
                customer=customer,
                content="晚到",
                received_at=dt.datetime(2026, 12, 1, 7, tzinfo=SHANGHAI),
            )
        )
        session.commit()  # fmt: skip
    bad = tmp_path / "bad.csv"
    write_table(bad, [
        FIGURES_HEADER,
        ["HX01", "2026-10", "100", "50000", "98", "95", "1"],
        ["NOPE", "2026-13", "x", "-1", "5", "5", ""],
        ["HX01", "2026-11", "10", "1", "11", "1", ""],
        ["HX01", "2026-10", "10", "1", "1", "1", ""],
    ])  # fmt: skip
    refused = kefu(url, "import", "business", str(bad))
    assert refused.returncode == 2
    assert refused.stderr.splitlines()[1:] == [
        "  line 3: no customer 'NOPE' (give a customer code)",
        "  line 3: month '2026-13' is not a month (2026-11)",
        "  line 3: orders 'x' is not a whole number ≥ 0",
        "  line 3: volume '-1' is not a number ≥ 0",
        "  line 4: orders_on_time (11) is more than orders (10)",
        "  line 5: HX01 2026-10 is also on line 2",
    ]
    with Session(engine) as session:
        assert session.scalar(select(func.count(BusinessFigures.id))) == 0

    good = tmp_path / "good.csv"
    write_table(good, [
        FIGURES_HEADER,
        ["HX01", "2026-10", "100", "50000", "98", "95", "1"],
        ["HX01", "2026年11月", "200", "80000.50", "180", "199", ""],
    ])  # fmt: skip
    imported = kefu(url, "import", "business", str(good))
    assert imported.returncode == 0, imported.stderr
    shown = kefu(url, "account", "show", "HX01")
    assert shown.returncode == 0, shown.stderr
    october = next(line for line in shown.stdout.splitlines() if line.startswith("2026-10"))
    november = next(line for line in shown.stdout.splitlines() if line.startswith("2026-11"))
    assert october.split()[5:9] == ["1", "98.0%", "95.0%", "1.0%"]
    # November: Kefu's own two complaints that month (not December's), 180/200 on time is below the 95% floor
    assert november.split()[5:9] == ["2", "90.0%", "99.5%", "1.0%"]
    assert november.endswith("below target: order_on_time_rate")
