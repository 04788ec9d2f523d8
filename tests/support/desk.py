"""The operators' entrance in tests: a Prefect server that, like ``kefu up``'s, requires its auth string and CSRF
tokens and serves its UI under /prefect, and the entrance app on a real uvicorn in a thread in front of it."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from argon2 import PasswordHasher
from prefect.states import Suspended
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from kefu.desk.app import create_app
from kefu.engine import prefect_private
from kefu.engine.connection import PrefectAuth
from kefu.flows.complaint_case import ClassifyInput
from kefu.models import Complaint, Role, Staff
from kefu.settings import PREFECT_UI_BASE, Settings
from kefu.tasks.casework import record_event
from tests.support.prefect import PrefectServer
from tests.support.processes import free_port

AUTH_STRING = "kefu:entrance-test-secret"
UP_AUTH_STRING = "kefu:up-test-secret"  # what the tests of ``kefu up`` give it (KEFU_PREFECT_AUTH_STRING)


def up_auth() -> PrefectAuth:
    """How a test talks to the Prefect server ``kefu up`` started: its auth string and CSRF tokens, as Kefu does."""
    return PrefectAuth(UP_AUTH_STRING)


PASSWORD = "correct horse battery"
# The people of these tests get a cheap argon2id hash (a verify follows the parameters in the hash): the default
# costs up to a second on a loaded test machine, per attempt.
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def add_person(engine: Engine, login: str, *roles: Role, password: str = PASSWORD) -> int:
    """A person of the staff directory who can sign in with ``password``; their staff id."""
    with Session(engine) as session:
        person = Staff(name=f"员工{login}", login=login, password_hash=CHEAP.hash(password))
        for role in roles:
            person.grant(role)
        session.add(person)
        session.commit()
        return person.id


def desk_client(app: object, base_url: str = "http://desk.test") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def signed_in_desk(app: object, engine: Engine, login: str = "desk.agent") -> AsyncIterator[httpx.AsyncClient]:
    """A client of the entrance ``app``, signed in as a new agent ``login``."""
    add_person(engine, login, Role.AGENT)
    async with desk_client(app) as http:
        answer = await http.post("/signin", data={"login": login, "password": PASSWORD, "next": "/"})
        assert answer.status_code == 303, answer.text
        yield http


@dataclass(frozen=True)
class GuardedPrefect:
    api_url: str
    root: str
    auth_string: str


@pytest.fixture(scope="session")
def guarded_prefect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuardedPrefect]:
    """A Prefect server (SQLite) configured as ``kefu up`` configures its own: auth string, CSRF protection on,
    the UI under /prefect. Started once per session (the session's shared server runs without auth)."""
    server = PrefectServer(tmp_path_factory.mktemp("guarded-prefect-home"))
    server.env = {
        **server.env,
        "PREFECT_UI_ENABLED": "true",
        "PREFECT_SERVER_API_AUTH_STRING": AUTH_STRING,
        "PREFECT_SERVER_CSRF_PROTECTION_ENABLED": "true",
        "PREFECT_UI_SERVE_BASE": PREFECT_UI_BASE,
        "PREFECT_SERVER_UI_V2_ENABLED": "false",
    }
    try:
        server.start()  # inside: a server that never answers is stopped too
        yield GuardedPrefect(server.api_url, server.api_url.removesuffix("/api"), AUTH_STRING)
    finally:
        server.stop()


def entrance_settings(tmp_path: Path, prefect: GuardedPrefect, **changes: object) -> Settings:
    return Settings.model_validate(
        {
            "var_dir": tmp_path / "var",
            "prefect_api_url": prefect.api_url,
            "prefect_auth_string": prefect.auth_string,
            **changes,
        }
    )


class Served:
    """An ASGI app on a real uvicorn at 127.0.0.1 in a thread of this process."""

    def __init__(self, app: object) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", ws="websockets-sansio")  # type: ignore[arg-type]
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        started = threading.Event()

        def watch() -> None:
            while not self.server.started and self.thread.is_alive():
                threading.Event().wait(0.05)
            started.set()

        threading.Thread(target=watch, daemon=True).start()
        assert started.wait(20) and self.server.started, "uvicorn did not start"
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def serve_entrance(settings: Settings, engine: Engine) -> Served:
    return Served(create_app(settings, engine))


def waiting_run(prefect: GuardedPrefect, db: Session, complaint: Complaint, step: str = "classify") -> str:
    """A case run suspended on ``step`` as the step kit leaves it (schema saved, state Suspended with its keyset),
    made through Kefu's own Prefect client auth; and the case's "waiting" event naming it."""
    key = step
    keyset = prefect_private.suspend_keys(Suspended(timeout_seconds=None, pause_key=key))
    with httpx.Client(base_url=prefect.api_url, auth=PrefectAuth(prefect.auth_string), timeout=30) as api:
        flow = api.post("/flows/", json={"name": "complaint-case-entrance-test"}).json()
        run = api.post(
            "/flow_runs/",
            json={
                "flow_id": flow["id"],
                "parameters": {"case_no": complaint.case_no},
                "state": {
                    "type": "PAUSED",
                    "name": "Suspended",
                    "state_details": {"pause_key": key, "run_input_keyset": keyset, "pause_reschedule": False},
                },
            },
        )
        assert run.status_code == 201, run.text
        run_id = str(run.json()["id"])
        schema = prefect_private.input_schema(ClassifyInput)
        saved = api.post(f"/flow_runs/{run_id}/input", json={"key": keyset["schema"], "value": json.dumps(schema)})
        assert saved.status_code == 201, saved.text
    record_event(db, complaint, "waiting", key, "system", complaint.received_at, step=step, flow_run_id=run_id)
    db.commit()
    return run_id


def run_state(prefect: GuardedPrefect, run_id: str) -> dict[str, Any]:
    with httpx.Client(base_url=prefect.api_url, auth=PrefectAuth(prefect.auth_string), timeout=30) as api:
        state: dict[str, Any] = api.get(f"/flow_runs/{run_id}").json()["state"]
        inputs = api.post(f"/flow_runs/{run_id}/input/filter", json={"prefix": "", "limit": 100}).json()
        state["answers"] = [json.loads(i["value"]) for i in inputs if i["key"].endswith("-response")]
        return state
