"""Only signed-in staff reach Prefect, through the entrance: the Prefect API refuses whoever does not come through
it, the proxy refuses whoever has not signed in, the UI learns to call the entrance, WebSockets pass, and a step
answered through it records the signed-in person — or is refused, the run still waiting, when their roles may not
answer it."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
import websockets
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from kefu.desk.app import create_app
from kefu.models import Role
from tests.support.desk import (
    PASSWORD,
    GuardedPrefect,
    add_person,
    entrance_settings,
    run_state,
    serve_entrance,
    waiting_run,
)
from tests.support.factories import MakeComplaint
from tests.test_staff_directory import KEFU

pytestmark = pytest.mark.slow


def entrance(app: object, base_url: str = "http://desk.test") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)  # type: ignore[arg-type]


async def signed_in(http: httpx.AsyncClient, login: str) -> httpx.AsyncClient:
    answer = await http.post("/signin", data={"login": login, "password": PASSWORD, "next": "/"})
    assert answer.status_code == 303, answer.text
    return http


async def test_prefect_answers_only_through_the_entrance_and_only_signed_in_staff(
    guarded_prefect: GuardedPrefect, sqlite_engine: Engine, tmp_path: Path
) -> None:
    around = httpx.get(f"{guarded_prefect.api_url}/flow_runs/{uuid.uuid4()}", timeout=30)
    assert around.status_code == 401  # straight to the Prefect server, without the auth string
    changed = httpx.post(f"{guarded_prefect.api_url}/flow_runs/filter", json={"limit": 1}, timeout=30)
    assert changed.status_code in (401, 403)  # a change: refused for its missing CSRF token first
    add_person(sqlite_engine, "li.kefu", Role.AGENT)
    app = create_app(entrance_settings(tmp_path, guarded_prefect), sqlite_engine)
    async with entrance(app) as http:
        unsigned = await http.post("/api/flow_runs/filter", json={"limit": 1})
        assert unsigned.status_code == 401 and "请先登录" in unsigned.json()["detail"]
        page = await http.get("/prefect/runs")
        assert page.status_code == 303 and page.headers["location"] == "/signin?next=/prefect/runs"

        await signed_in(http, "li.kefu")
        csrf = await http.get("/api/csrf-token", params={"client": "ui-1"})  # the UI's own CSRF handshake
        assert csrf.status_code == 200
        headers = {"Prefect-Csrf-Token": csrf.json()["token"], "Prefect-Csrf-Client": "ui-1"}
        runs = await http.post("/api/flow_runs/filter", json={"limit": 1}, headers=headers)
        assert runs.status_code == 200 and isinstance(runs.json(), list)
        assert "authorization" not in {k.lower() for k in runs.headers}
        without_csrf = await http.post("/api/flow_runs/filter", json={"limit": 1})
        assert without_csrf.status_code == 403  # Prefect's CSRF protection stays on behind the proxy
        forged = await http.post(
            "/api/flow_runs/filter", json={"limit": 1}, headers={**headers, "Origin": "https://evil.example"}
        )
        assert forged.status_code == 403

        settings = (await http.get("/prefect/ui-settings")).json()
        assert settings["api_url"] == "http://desk.test/api" and settings["auth"] is None  # no password prompt
        assert settings["csrf_enabled"] is True
        ui = await http.get("/prefect/", headers={"Accept": "text/html"})
        assert ui.status_code == 200 and "<html" in ui.text.lower()


async def test_a_websocket_through_the_entrance_is_authenticated_by_the_proxy(
    guarded_prefect: GuardedPrefect, sqlite_engine: Engine, tmp_path: Path
) -> None:
    add_person(sqlite_engine, "li.kefu", Role.AGENT)
    with serve_entrance(entrance_settings(tmp_path, guarded_prefect), sqlite_engine) as served:
        async with httpx.AsyncClient(base_url=served.url) as http:
            await signed_in(http, "li.kefu")
            cookie = f"kefu_desk={http.cookies['kefu_desk']}"
        ws_url = served.url.replace("http", "ws") + "/api/events/out"
        async with websockets.connect(
            ws_url, subprotocols=[websockets.Subprotocol("prefect")], additional_headers={"Cookie": cookie}
        ) as socket:
            await socket.send(json.dumps({"type": "auth", "token": None}))  # the browser knows no secret
            assert json.loads(await socket.recv()) == {"type": "auth_success"}
        with pytest.raises(websockets.InvalidStatus):  # not signed in: refused before the upgrade
            async with websockets.connect(ws_url, subprotocols=[websockets.Subprotocol("prefect")]):
                pass


async def test_a_step_answered_through_the_entrance_records_the_signed_in_person_and_refuses_a_role_that_may_not(
    guarded_prefect: GuardedPrefect, db: Session, engine: Engine, make_complaint: MakeComplaint, tmp_path: Path
) -> None:
    agent = add_person(engine, "li.kefu", Role.AGENT)
    add_person(engine, "zhao.caiwu", Role.FINANCE)
    other = add_person(engine, "wang.zhuguan", Role.SUPERVISOR)
    complaint = make_complaint()
    run_id = waiting_run(guarded_prefect, db, complaint)
    app = create_app(entrance_settings(tmp_path, guarded_prefect), engine)
    answer = {"run_input": {"actor_staff_id": other, "severity": "一般投诉", "reason": ""}}

    async def resume(login: str) -> httpx.Response:
        async with entrance(app) as http:
            await signed_in(http, login)
            token = (await http.get("/api/csrf-token", params={"client": login})).json()["token"]
            headers = {"Prefect-Csrf-Token": token, "Prefect-Csrf-Client": login}
            return await http.post(f"/api/flow_runs/{run_id}/resume", json=answer, headers=headers)

    async def start_page(login: str) -> str:
        async with entrance(app) as http:
            await signed_in(http, login)
            return (await http.get("/")).text

    mine = await start_page("li.kefu")  # the agent's waiting steps link to the run's form in the Prefect UI
    assert complaint.case_no in mine and f'href="/prefect/runs/flow-run/{run_id}"' in mine and "投诉定级" in mine
    assert complaint.case_no not in await start_page("zhao.caiwu")  # finance may not classify: not listed

    async with entrance(app) as http:  # the form asks nothing about who answers: the signed-in person does
        await signed_in(http, "li.kefu")
        form = await http.get(f"/api/flow_runs/{run_id}/input/suspended-classify-schema")
        assert form.status_code == 200 and "severity" in form.json()["properties"]
        assert "actor_staff_id" not in form.json()["properties"] and "actor_staff_id" not in form.json()["required"]
        token = (await http.get("/api/csrf-token", params={"client": "plant"})).json()["token"]
        planted = await http.post(
            f"/api/flow_runs/{run_id}/input",
            json={"key": "suspended-classify-response", "value": json.dumps({"actor_staff_id": other})},
            headers={"Prefect-Csrf-Token": token, "Prefect-Csrf-Client": "plant"},
        )
        assert planted.status_code == 403 and "不能直接写入" in planted.json()["detail"]  # no answer around the resume

    refused = await resume("zhao.caiwu")
    assert refused.status_code == 403
    assert "无权处理此步骤" in refused.json()["detail"] and "客服人员" in refused.json()["detail"]
    still = run_state(guarded_prefect, run_id)
    assert still["type"] == "PAUSED" and still["answers"] == []

    accepted = await resume("li.kefu")
    assert accepted.status_code in (200, 201) and accepted.json()["status"] == "ACCEPT", accepted.text
    after = run_state(guarded_prefect, run_id)
    assert after["type"] != "PAUSED"
    assert [a["actor_staff_id"] for a in after["answers"]] == [agent]  # not the supervisor the form named


def test_kefu_step_submit_reaches_the_guarded_server_with_the_auth_string(
    guarded_prefect: GuardedPrefect, db: Session, engine: Engine, make_complaint: MakeComplaint, tmp_path: Path
) -> None:
    """``kefu step submit`` as a person runs it (a clean environment: Kefu's settings only) sends the auth string
    and Prefect's CSRF token: the step is answered."""
    if engine.dialect.name != "sqlite":
        pytest.skip("the command reaches Prefect the same way on either database; its start-up costs seconds")
    agent = add_person(engine, "li.kefu", Role.AGENT)
    complaint = make_complaint()
    run_id = waiting_run(guarded_prefect, db, complaint)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "KEFU_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "KEFU_PREFECT_API_URL": guarded_prefect.api_url,
        "KEFU_PREFECT_AUTH_STRING": guarded_prefect.auth_string,
        "KEFU_VAR_DIR": str(tmp_path / "var"),
    }
    data = json.dumps({"severity": "一般投诉"}, ensure_ascii=False)
    argv = [KEFU, "step", "submit", complaint.case_no, "classify", "--data", data, "--as", "li.kefu"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [a["actor_staff_id"] for a in run_state(guarded_prefect, run_id)["answers"]] == [agent]


async def test_only_an_administrator_changes_a_run_by_hand_through_the_entrance(
    guarded_prefect: GuardedPrefect, db: Session, engine: Engine, make_complaint: MakeComplaint, tmp_path: Path
) -> None:
    """A case run cancelled or deleted by hand would leave its complaint without a live process: through the
    entrance, the UI's reads and the steps' answers are everyone's, every other change the administrators'."""
    add_person(engine, "li.kefu", Role.AGENT)
    add_person(engine, "wang.zhuguan", Role.SUPERVISOR)
    add_person(engine, "root.admin", Role.ADMIN)
    run_id = waiting_run(guarded_prefect, db, make_complaint())
    app = create_app(entrance_settings(tmp_path, guarded_prefect), engine)

    async def as_person(login: str, method: str, path: str, body: object = None) -> httpx.Response:
        async with entrance(app) as http:
            await signed_in(http, login)
            token = (await http.get("/api/csrf-token", params={"client": login})).json()["token"]
            headers = {"Prefect-Csrf-Token": token, "Prefect-Csrf-Client": login}
            return await http.request(method, path, json=body, headers=headers)

    cancel = {"state": {"type": "CANCELLED", "name": "Cancelled"}, "force": True}
    for login in ("li.kefu", "wang.zhuguan"):
        refused = await as_person(login, "POST", f"/api/flow_runs/{run_id}/set_state", cancel)
        assert refused.status_code == 403 and "仅限系统管理员" in refused.json()["detail"], refused.text
        deleted = await as_person(login, "DELETE", f"/api/flow_runs/{run_id}")
        assert deleted.status_code == 403
        read = await as_person(login, "POST", "/api/flow_runs/filter", {"limit": 1})
        assert read.status_code == 200  # the UI's reads sent as POST stay open
        counted = await as_person(login, "POST", "/api/ui/flow_runs/count-task-runs", {"flow_run_ids": [run_id]})
        assert counted.status_code == 200
    assert run_state(guarded_prefect, run_id)["type"] == "PAUSED"  # still waiting for its step
    done = await as_person("root.admin", "POST", f"/api/flow_runs/{run_id}/set_state", cancel)
    assert done.status_code in (200, 201), done.text
    assert run_state(guarded_prefect, run_id)["type"] == "CANCELLED"
