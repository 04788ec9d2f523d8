"""Staff sign in at the operators' entrance: a wrong password is refused and counted, repeated failures lock the
sign-in name, the first administrator must replace the one-time password first, and a session ends when it
expires, idles or its person is deactivated."""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from kefu.desk import audit
from kefu.desk.app import create_app
from kefu.models import Role, Staff
from kefu.models.directory import first_administrator
from kefu.settings import Settings
from tests.support.clock import FixedClock
from tests.support.desk import PASSWORD, add_person, desk_client
from tests.test_staff_directory import KEFU, kefu


def desk_settings(tmp_path: Path, **changes: object) -> Settings:
    values: dict[str, object] = {
        "var_dir": tmp_path / "var",
        "prefect_api_url": "http://127.0.0.1:9/api",  # nothing listens: these tests never pass the proxy
        "prefect_auth_string": "kefu:test",
        **changes,
    }
    return Settings.model_validate(values)


async def sign_in(http: httpx.AsyncClient, login: str, password: str) -> httpx.Response:
    return await http.post("/signin", data={"login": login, "password": password, "next": "/"})


async def test_a_person_signs_in_reaches_the_outbox_and_signs_out(sqlite_engine: Engine, tmp_path: Path) -> None:
    engine = sqlite_engine
    add_person(engine, "li.kefu", Role.AGENT)
    async with desk_client(create_app(desk_settings(tmp_path), engine)) as http:
        before = await http.get("/outbox")
        assert before.status_code == 303 and before.headers["location"].startswith("/signin")
        signed = await sign_in(http, "li.kefu", PASSWORD)
        assert signed.status_code == 303 and signed.headers["location"] == "/"
        cookie = signed.headers["set-cookie"]
        assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
        assert (await http.get("/outbox")).status_code == 200
        start = await http.get("/")
        assert "我的待办" in start.text and "员工li.kefu" in start.text
        out = await http.post("/signout")
        assert out.status_code == 303
        http.cookies.set("kefu_desk", cookie.split(";")[0].split("=", 1)[1])  # the old cookie, replayed
        assert (await http.get("/outbox")).status_code == 303


async def test_a_wrong_password_is_refused_and_five_in_a_row_lock_the_name_for_fifteen_minutes(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    engine = sqlite_engine
    add_person(engine, "li.kefu", Role.AGENT)
    clock = FixedClock()
    async with desk_client(create_app(desk_settings(tmp_path), engine, clock=clock)) as http:
        wrong = await sign_in(http, "li.kefu", "not the password")
        assert wrong.status_code == 401 and "登录名或密码不正确" in wrong.text and "kefu_desk" not in http.cookies
        unknown = await sign_in(http, "nobody", "whatever")
        assert unknown.status_code == 401 and "登录名或密码不正确" in unknown.text  # no hint who exists
        for _ in range(3):
            await sign_in(http, "li.kefu", "still wrong")
        locked = await sign_in(http, "li.kefu", "fifth wrong")
        assert locked.status_code == 429 and "已被锁定" in locked.text
        right_but_locked = await sign_in(http, "li.kefu", PASSWORD)
        assert right_but_locked.status_code == 429 and "kefu_desk" not in http.cookies
        clock.now += dt.timedelta(minutes=15, seconds=1)
        assert (await sign_in(http, "li.kefu", PASSWORD)).status_code == 303


async def test_the_first_administrator_must_replace_the_one_time_password_before_anything_else(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    engine = sqlite_engine
    with Session(engine) as session:
        created = first_administrator(session)
        assert created is not None
        login, one_time = created[0].login or "", created[1]
        session.commit()
    async with desk_client(create_app(desk_settings(tmp_path), engine)) as http:
        signed = await sign_in(http, login, one_time)
        assert signed.headers["location"] == "/password"
        assert (await http.get("/")).headers["location"] == "/password"
        assert (await http.get("/prefect/runs")).headers["location"] == "/password"
        assert (await http.get("/api/flow_runs/filter")).status_code == 403
        short = await http.post("/password", data={"current": one_time, "new": "short", "repeated": "short"})
        assert short.status_code == 400 and "至少需要" in short.text
        changed = await http.post(
            "/password", data={"current": one_time, "new": "a new long secret", "repeated": "a new long secret"}
        )
        assert changed.headers["location"] == "/"
        assert (await http.get("/")).status_code == 200
    async with desk_client(create_app(desk_settings(tmp_path), engine)) as http:
        assert (await sign_in(http, login, one_time)).status_code == 401  # the one-time password is gone
        assert (await sign_in(http, login, "a new long secret")).headers["location"] == "/"


async def test_a_session_ends_when_it_idles_expires_or_its_person_is_deactivated(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    engine = sqlite_engine
    staff_id = add_person(engine, "li.kefu", Role.AGENT)
    clock = FixedClock()
    settings = desk_settings(tmp_path, desk_session_idle_minutes=30, desk_session_hours=8)
    async with desk_client(create_app(settings, engine, clock=clock)) as http:
        await sign_in(http, "li.kefu", PASSWORD)
        clock.now += dt.timedelta(minutes=29)
        assert (await http.get("/")).status_code == 200
        clock.now += dt.timedelta(minutes=31)  # 31 minutes since the last request
        assert (await http.get("/")).headers["location"].startswith("/signin")
        assert (await http.get("/api/flow_runs/x")).json() == {"detail": "请先登录员工入口（会话已过期或尚未登录）。"}

        await sign_in(http, "li.kefu", PASSWORD)
        for _ in range(16):  # in use all the time, but not longer than 8 hours
            clock.now += dt.timedelta(minutes=29)
            assert (await http.get("/")).status_code == 200
        clock.now += dt.timedelta(minutes=29)
        assert (await http.get("/")).status_code == 303

        await sign_in(http, "li.kefu", PASSWORD)
        with Session(engine) as session:
            person = session.get(Staff, staff_id)
            assert person is not None
            person.active = False
            session.commit()
        assert (await http.get("/")).status_code == 303
        refused = await sign_in(http, "li.kefu", PASSWORD)
        assert refused.status_code == 403 and "已停用" in refused.text


async def test_a_form_posted_from_another_site_is_refused(sqlite_engine: Engine, tmp_path: Path) -> None:
    engine = sqlite_engine
    add_person(engine, "li.kefu", Role.AGENT)
    async with desk_client(create_app(desk_settings(tmp_path), engine)) as http:
        forged = await http.post(
            "/signin", data={"login": "li.kefu", "password": PASSWORD}, headers={"Origin": "https://evil.example"}
        )
        assert forged.status_code == 403 and "kefu_desk" not in http.cookies


async def test_the_entrance_pages_carry_the_security_headers_and_no_inline_code(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    add_person(sqlite_engine, "li.kefu", Role.AGENT)
    async with desk_client(create_app(desk_settings(tmp_path, mail_sink_enabled=True), sqlite_engine)) as http:
        pages = {"sign-in": await http.get("/signin")}
        await sign_in(http, "li.kefu", PASSWORD)
        for url in ("/", "/password", "/outbox", "/outbox/sms"):
            pages[url] = await http.get(url)
    for name, page in pages.items():
        assert page.status_code == 200, name
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"], name
        assert page.headers["cache-control"] == "no-store" and page.headers["x-content-type-options"] == "nosniff"
        assert "<script" not in page.text and " style=" not in page.text, name


async def test_an_administrator_gives_a_person_a_one_time_password_that_ends_their_lock_out(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    add_person(sqlite_engine, "li.kefu", Role.AGENT)
    async with desk_client(create_app(desk_settings(tmp_path), sqlite_engine)) as http:
        for _ in range(5):
            await sign_in(http, "li.kefu", "forgotten")
        assert (await sign_in(http, "li.kefu", PASSWORD)).status_code == 429
        given = kefu(sqlite_engine.url.render_as_string(hide_password=False), "staff", "password", "li.kefu")
        assert given.returncode == 0, given.stderr
        one_time = given.stdout.split("one-time password for 'li.kefu': ")[1].split()[0]
        assert (await sign_in(http, "li.kefu", one_time)).headers["location"] == "/password"
        unknown = kefu(sqlite_engine.url.render_as_string(hide_password=False), "staff", "password", "nobody")
        assert unknown.returncode == 2 and "no staff member 'nobody'" in unknown.stderr


async def test_sign_ins_failures_lock_outs_sign_outs_and_password_changes_are_audited_without_passwords(
    sqlite_engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = sqlite_engine
    staff_id = add_person(engine, "li.kefu", Role.AGENT)
    settings = desk_settings(tmp_path, desk_lockout_failures=2)
    caplog.set_level(logging.INFO, logger="kefu.desk.audit")
    async with desk_client(create_app(settings, engine)) as http:
        await sign_in(http, "li.kefu", "wrong password 1")
        await sign_in(http, "13812348000 secret", "whatever")  # a password typed into the name field
        assert (await sign_in(http, "li.kefu", PASSWORD)).status_code == 303
        new = {"current": PASSWORD, "new": "a new long password", "repeated": "a new long password"}
        assert (await http.post("/password", data=new)).status_code == 303
        await http.post("/signout")
        await sign_in(http, "li.kefu", "wrong password 2")
        await sign_in(http, "li.kefu", "wrong password 3")  # the second in a row: locked
        await sign_in(http, "li.kefu", "a new long password")  # refused while locked
    lines = [r.getMessage() for r in caplog.records if r.name == "kefu.desk.audit"]
    events = [line.split()[0] for line in lines]
    assert events == [
        "event=signin_failed",
        "event=signin_failed",
        "event=signin",
        "event=password_changed",
        "event=signout",
        "event=signin_failed",
        "event=lockout",
        "event=signin_locked",
    ], lines
    assert f"login=li.kefu staff={staff_id} from=" in lines[2]
    assert "login=1***(unknown)" in lines[1] and "13812348000" not in caplog.text  # an unknown name, masked
    assert 'until="' in lines[6] and "+08:00" in lines[6]
    for secret in ("wrong password", "secret", "whatever", PASSWORD, "a new long password"):
        assert secret not in caplog.text


async def test_kefu_staff_signins_lists_the_audit_lines_of_the_entrances_log(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    """The entrance's stderr is var/logs/desk.log under ``kefu up``; here a file handler with the same format."""
    engine = sqlite_engine
    add_person(engine, "li.kefu", Role.AGENT)
    add_person(engine, "wang.zhuguan", Role.SUPERVISOR)
    log_file = tmp_path / "var" / "logs" / "desk.log"
    log_file.parent.mkdir(parents=True)
    log_file.write_text('INFO:     127.0.0.1:5000 - "GET /healthz HTTP/1.1" 200 OK\n', encoding="utf-8")
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter(audit.FORMAT))
    audit.log.addHandler(handler)
    try:
        async with desk_client(create_app(desk_settings(tmp_path), engine)) as http:
            await sign_in(http, "li.kefu", "wrong password")
            await sign_in(http, "wang.zhuguan", PASSWORD)
            await sign_in(http, "li.kefu", PASSWORD)
    finally:
        audit.log.removeHandler(handler)
        handler.close()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "KEFU_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "KEFU_VAR_DIR": str(tmp_path / "var"),
    }
    argv = [KEFU, "staff", "signins", "--login", "li.kefu"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split("INFO ")[-1].split()[0] for line in lines] == ["event=signin_failed", "event=signin"], lines
    assert all("login=li.kefu" in line for line in lines) and "wrong password" not in done.stdout
    newest = subprocess.run([*argv[:3], "--limit", "1"], env=env, capture_output=True, text=True, check=False)
    assert newest.returncode == 0, newest.stderr
    [only] = newest.stdout.splitlines()  # everyone's lines, the newest one: not the health check's
    assert "INFO event=signin login=li.kefu staff=" in only
