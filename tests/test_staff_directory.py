"""The staff directory, gateway tokens, the first administrator and the demo data, through the console script as a
person runs it (a clean environment: only Kefu's own settings), on each database backend."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest
from openpyxl import Workbook
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from kefu.intake.app import create_app
from kefu.models import Complaint, Customer, CustomerTier, Role, Staff
from kefu.models.access import ApiToken, verify_password
from kefu.models.accounts import KeyAccountMember
from kefu.models.intake import IntakeOutbox
from kefu.models.policy import Policy
from kefu.settings import Settings
from kefu.tasks.casework import StepRejected, check_answer_staff
from tests.support.clock import FixedClock
from tests.support.samples import complaint_json

KEFU = str(Path(sys.executable).parent / "kefu")


def kefu(database_url: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """The console script with only PATH and Kefu's database in its environment, run outside the project (no
    ``.env`` is read)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "KEFU_DATABASE_URL": database_url}
    return subprocess.run(
        [KEFU, *argv], env=env, capture_output=True, text=True, timeout=120, check=False, cwd=tempfile.gettempdir()
    )


def people(engine: Engine) -> dict[str, Staff]:
    with Session(engine) as session:
        return {s.login or str(s.id): s for s in session.scalars(select(Staff))}


def test_staff_are_added_granted_revoked_deactivated_and_listed_and_a_bad_command_changes_nothing(
    sqlite_engine: Engine,
) -> None:
    engine, database_url = sqlite_engine, sqlite_engine.url.render_as_string(hide_password=False)
    added = kefu(
        database_url, "staff", "add", "wang.zhuguan", "--name", "王主管", "--role", "主管", "--on-duty", "mon-fri"
    )
    assert added.returncode == 0, added.stderr
    agent = kefu(
        database_url, "staff", "add", "li.kefu", "--name", "李客服", "--role", "agent",
        "--supervisor", "wang.zhuguan", "--phone", "13800138000", "--on-duty", "mon-wed,sat",
    )  # fmt: skip
    assert agent.returncode == 0, agent.stderr
    unknown_role = kefu(database_url, "staff", "add", "x.y", "--name", "某", "--role", "pilot")
    assert unknown_role.returncode == 2 and "unknown role 'pilot'" in unknown_role.stderr
    assert len(unknown_role.stderr.splitlines()) == 1

    assert kefu(database_url, "staff", "grant", "li.kefu", "after_sales", "物流调度员").returncode == 0
    assert kefu(database_url, "staff", "revoke", "li.kefu", "dispatcher").returncode == 0
    assert kefu(database_url, "staff", "deactivate", "li.kefu").returncode == 0
    listing = kefu(database_url, "staff", "list", "--all")
    assert listing.returncode == 0, listing.stderr
    line = next(x for x in listing.stdout.splitlines() if "li.kefu" in x)
    assert "agent(客服人员)" in line and "after_sales(售后服务人员)" in line and "dispatcher" not in line
    assert "supervisor: wang.zhuguan" in line and "on duty: mon,tue,wed,sat" in line
    assert "13800138000" not in listing.stdout and "138****8000" in line  # a phone is personal data
    assert line.endswith("[deactivated]")
    directory = people(engine)
    assert set(directory) == {"wang.zhuguan", "li.kefu"}
    assert directory["li.kefu"].active is False
    assert directory["li.kefu"].supervisor_id == directory["wang.zhuguan"].id
    assert directory["li.kefu"].roles == {Role.AGENT, Role.AFTER_SALES}


BAD_ROWS = [
    ["name", "login", "roles", "email", "supervisor", "on_duty"],
    ["王主管", "wang.zhuguan", "supervisor", "wang@example.com", "", "mon-fri"],
    ["李客服", "li.kefu", "客服人员", "li@example.com", "wang.zhuguan", "mon-fri"],
    ["", "bad login", "pilot", "not-an-email", "ghost", "someday"],
    ["赵客服", "li.kefu", "agent", "", "", ""],
    ["钱财务", "qian", "", "", "", ""],
]
BAD_REPORT = [
    "line 4: name is empty",
    "line 4: login 'bad login' must be",
    "line 4: unknown role 'pilot'",
    "line 4: email 'not-an-email' is not an e-mail address",
    "line 4: on duty 'someday'",
    "line 4: supervisor 'ghost' is neither",
    "line 5: login 'li.kefu' is also on line 3",
    "line 6: no role given",
]


def write_table(path: Path, rows: list[list[str]]) -> None:
    if path.suffix == ".csv":
        path.write_text("\n".join(",".join(r) for r in rows) + "\n", encoding="utf-8")
        return
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    book.save(path)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_an_import_with_bad_rows_lists_every_one_with_its_line_and_reason_and_imports_nobody(
    engine: Engine, database_url: str, tmp_path: Path, suffix: str
) -> None:
    bad = tmp_path / f"staff{suffix}"
    write_table(bad, BAD_ROWS)
    refused = kefu(database_url, "staff", "import", str(bad))
    assert refused.returncode == 2
    lines = refused.stderr.splitlines()
    assert lines[0] == f"kefu staff import: {bad.name}: nothing imported; fix these rows:"
    assert len(lines) == 1 + len(BAD_REPORT)
    for expected, got in zip(BAD_REPORT, lines[1:], strict=True):
        assert got.strip().startswith(expected), (expected, got)
    assert people(engine) == {}  # not even the good rows

    good = tmp_path / f"good{suffix}"
    write_table(good, [*BAD_ROWS[:3], ["赵客服", "zhao.kefu", "agent、after_sales", "", "wang.zhuguan", "tue-sat"]])
    imported = kefu(database_url, "staff", "import", str(good))
    assert imported.returncode == 0, imported.stderr
    assert "3 people added" in imported.stdout
    directory = people(engine)
    assert directory["zhao.kefu"].roles == {Role.AGENT, Role.AFTER_SALES}
    assert directory["zhao.kefu"].supervisor_id == directory["wang.zhuguan"].id
    assert directory["zhao.kefu"].on_duty == ["tue", "wed", "thu", "fri", "sat"]


def test_an_import_with_an_unknown_column_names_it_and_imports_nobody(sqlite_engine: Engine, tmp_path: Path) -> None:
    engine, database_url = sqlite_engine, sqlite_engine.url.render_as_string(hide_password=False)
    path = tmp_path / "staff.csv"
    write_table(path, [["name", "login", "roles", "salary"], ["王主管", "wang", "supervisor", "9000"]])
    refused = kefu(database_url, "staff", "import", str(path))
    assert refused.returncode == 2 and "line 1: unknown column(s) salary" in refused.stderr
    assert people(engine) == {}


def test_the_first_up_creates_one_administrator_with_a_one_time_password_and_a_trial_token_and_the_next_none(
    tmp_path: Path,
) -> None:
    """``kefu up`` on an empty database; ``--prepare-only`` stops it where the components would start."""
    url = f"sqlite:///{tmp_path / 'kefu.db'}"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "KEFU_DATABASE_URL": url,
        "KEFU_PREFECT_DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:1/prefect",  # no embedded server
        "KEFU_VAR_DIR": str(tmp_path / "var"),
    }

    def up() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KEFU, "up", "--prepare-only"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=tmp_path,
        )

    first = up()
    assert first.returncode == 0, first.stderr
    password = re.search(r"sign-in name 'admin', one-time password (\S+)", first.stdout)
    token = re.search(r"API token 'try-the-api' .*\n\s+(kefu_\S+)", first.stdout)
    assert password and token, first.stdout
    second = up()
    assert second.returncode == 0, second.stderr
    assert "administrator" not in second.stdout and "kefu_" not in second.stdout

    from kefu.models.db import make_engine

    engine = make_engine(url)
    with Session(engine) as session:
        admins = [s for s in session.scalars(select(Staff)) if Role.ADMIN in s.roles]
        assert len(admins) == 1 and admins[0].login == "admin" and admins[0].password_one_time
        stored = admins[0].password_hash or ""
        assert password[1] not in stored and verify_password(stored, password[1])
        assert not verify_password(stored, "admin")
        [trial] = session.scalars(select(ApiToken))
        assert token[1] not in (trial.token_hash, trial.shown_prefix) and trial.active
    engine.dispose()
    assert token[1] != password[1]


async def test_a_named_token_opens_the_gateway_api_until_it_is_revoked_then_the_next_request_is_refused(
    engine: Engine, database_url: str, clock: FixedClock
) -> None:
    made = kefu(database_url, "token", "add", "hotline-gateway")
    assert made.returncode == 0, made.stderr
    token = made.stdout.splitlines()[-1]
    assert token.startswith("kefu_")
    again = kefu(database_url, "token", "add", "hotline-gateway")
    assert again.returncode == 2 and "exists already" in again.stderr

    app = create_app(Settings(mail_sink_enabled=False), engine, clock=clock)  # no token from the environment
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake.test") as http:
        first = await http.post("/api/v1/complaints", json=complaint_json(), headers=auth)
        assert first.status_code == 201, first.text
        case_no = first.json()["case_no"]
        assert (await http.get(f"/api/v1/complaints/{case_no}", headers=auth)).status_code == 200
        forged = await http.get(f"/api/v1/complaints/{case_no}", headers={"Authorization": f"Bearer {token}x"})
        assert forged.status_code == 401

        revoked = kefu(database_url, "token", "revoke", "hotline-gateway")
        assert revoked.returncode == 0, revoked.stderr
        refused = await http.post("/api/v1/complaints", json=complaint_json(phone="13900139000"), headers=auth)
        assert refused.status_code == 401
        assert (await http.get(f"/api/v1/complaints/{case_no}", headers=auth)).status_code == 401
    listing = kefu(database_url, "token", "list")
    assert "hotline-gateway" in listing.stdout and "revoked" in listing.stdout and token not in listing.stdout
    with Session(engine) as session:
        assert session.scalar(select(func.count(Complaint.id))) == 1
        stored = session.scalars(select(ApiToken)).one()
        assert token not in (stored.token_hash, stored.shown_prefix)


def test_demo_load_fills_a_directory_customers_and_complaints_and_contact_details_show_in_full_only_to_the_case_people(
    sqlite_engine: Engine,
) -> None:
    engine, database_url = sqlite_engine, sqlite_engine.url.render_as_string(hide_password=False)
    loaded = kefu(database_url, "demo", "load")
    assert loaded.returncode == 0, loaded.stderr
    again = kefu(database_url, "demo", "load")
    assert again.returncode == 0, again.stderr
    assert "0 staff added" in again.stdout and "(there already)" in again.stdout
    directory = people(engine)
    roles = set().union(*(s.roles for s in directory.values()))
    assert {Role.AGENT, Role.SUPERVISOR, Role.SENIOR_MANAGER, Role.DISPATCHER, Role.AFTER_SALES} <= roles
    assert all(s.supervisor_id for login, s in directory.items() if login != "gao.jingli")
    with Session(engine) as session:
        assert session.scalar(select(func.count(Complaint.id))) == 3
        assert session.scalar(select(func.count(IntakeOutbox.id))) == 3  # the dispatcher starts their case runs
        key = session.scalars(select(Customer).where(Customer.tier == CustomerTier.KEY)).one()
        assert key.account_manager_id == directory["chen.xiangmu"].id
        assert key.code == "HX01" and "kefu account show HX01" in loaded.stdout
        team = {m.team_role.value: m.staff_id for m in session.scalars(select(KeyAccountMember))}
        expected = {"project_manager": "chen.xiangmu", "service_specialist": "li.kefu", "dispatcher": "zhou.diaodu",
                    "after_sales": "wu.shouhou"}  # fmt: skip
        assert team == {role: directory[login].id for role, login in expected.items()}
        [urgent] = [c for c in session.scalars(select(Complaint)) if c.customer_id == key.id]
        assert urgent.owner_id == directory["li.kefu"].id  # the account's customer-service specialist owns it
    case_no = re.findall(r"complaint (\S+) registered", loaded.stdout)[0]

    def shown_as(*who: str) -> str:
        result = kefu(database_url, "case", "show", case_no, *who)
        assert result.returncode == 0, result.stderr
        return next(x for x in result.stdout.splitlines() if x.startswith("customer:"))

    with Session(engine) as session:
        owner_id = session.scalars(select(Complaint.owner_id).where(Complaint.case_no == case_no)).one()
    assert all(s.email for s in directory.values())  # their notices reach the mail sink
    # In full for the case's owner (the day's on-duty agent, 首问责任制) and the owner's supervisor
    readers = [("--as", str(owner_id)), ("--as", "wang.zhuguan")] if owner_id is not None else []
    for reader in readers:
        full = shown_as(*reader)
        assert "13800138001" in full and "zhang.san@example.com" in full
    for masked in (shown_as("--as", "zhou.diaodu"), shown_as()):  # a dispatcher; nobody named
        assert "138****8001" in masked and "z***@example.com" in masked and "13800138001" not in masked


@pytest.mark.parametrize(
    ("role", "step", "accepted"),
    [
        (Role.AGENT, "classify", True),
        (Role.DISPATCHER, "classify", False),
        (Role.DISPATCHER, "investigate", True),
        (Role.FINANCE, "callback", False),
        (Role.ADMIN, "first_contact", False),
        (Role.SENIOR_MANAGER, "task_force", True),
    ],
)
def test_only_the_roles_the_policy_lists_for_a_step_may_answer_it(
    db: Session, policy: Policy, role: Role, step: str, accepted: bool
) -> None:
    person = Staff(name="员工", login=f"p.{role.value}")
    person.grant(role)
    db.add(person)
    db.flush()
    answer = {"actor_staff_id": person.id}
    if accepted:
        check_answer_staff(db, answer, step, policy)
        return
    with pytest.raises(StepRejected, match=rf"may not answer step '{step}'") as refused:
        check_answer_staff(db, answer, step, policy)
    assert policy.roles.names[role] in str(refused.value)  # the person reads their role's name
