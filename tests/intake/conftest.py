"""Fixtures of the intake tests: the real app on a real database, with a fixed clock."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from kefu.engine.contract import COMPLAINT_CASE_DEPLOYMENT, COMPLAINT_CASE_FLOW
from kefu.intake.app import create_app
from kefu.models.db import make_engine
from kefu.models.migrate import upgrade
from kefu.settings import Settings
from tests.prefect_fixtures import prefect_post

TOKEN = "gateway-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Monday 2026-11-23 10:00 in Shanghai: a working day, inside the business window.
RECEIVED = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)


def intake_settings(**overrides: Any) -> Settings:
    return Settings(intake_api_tokens=[SecretStr(TOKEN)], mail_sink_enabled=False, **overrides)


def complaint_json(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": "hotline",
        "name": "张三",
        "phone": "13800138000",
        "email": "zhang.san@example.com",
        "order_no": "SF1234567890",
        "product": "同城快递",
        "place": "北京市海淀区中关村大街1号",
        "problem_at": "2026-11-22 15:30",
        "content": "包裹外箱破损，里面的杯子碎了，希望赔偿。",
        "urgent": False,
        "preferred_contact_time": "工作日下午",
    }
    body.update(overrides)
    return body


@pytest.fixture
def clock() -> list[dt.datetime]:
    """The app's clock: tests move it by replacing the one element."""
    return [RECEIVED]


@pytest.fixture
async def client(engine: Engine, clock: list[dt.datetime]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(intake_settings(), engine, clock=lambda: clock[0])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake.test") as http:
        yield http


_days = itertools.count()


def unique_receipt_time() -> dt.datetime:
    """A receipt time on a day no other test of this session uses: case numbers (and so the case flow
    idempotency keys on the shared Prefect server) never collide between tests."""
    return dt.datetime(2031, 1, 1, 2, 0, tzinfo=dt.UTC) + dt.timedelta(days=next(_days))


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite database (file) for the heavy tests that run on one backend only."""
    engine = make_engine(f"sqlite:///{tmp_path / 'kefu.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def case_deployment(prefect_server: str) -> str:
    """The ``complaint-case`` deployment on the test Prefect server: its id.

    Registered as metadata (flow + deployment) so tests can count case flow runs; a Kefu worker executing the
    real flow under the same names takes these runs when a test starts one.
    """
    served = httpx.get(f"{prefect_server}/deployments/name/{COMPLAINT_CASE_DEPLOYMENT}", timeout=30)
    if served.status_code == 200:  # the casework tests' worker registered the real one: keep it as it is
        return str(served.json()["id"])
    flow = prefect_post(f"{prefect_server}/flows/", {"name": COMPLAINT_CASE_FLOW}).json()
    _, name = COMPLAINT_CASE_DEPLOYMENT.split("/")
    deployment = prefect_post(
        f"{prefect_server}/deployments/", {"name": name, "flow_id": flow["id"], "parameter_openapi_schema": {}}
    ).json()
    return str(deployment["id"])


def case_runs(api_url: str, deployment_id: str, case_nos: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Every run of the case deployment per case number (by its parameters), read from Prefect."""
    runs: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = httpx.post(
            f"{api_url}/flow_runs/filter",
            json={"deployments": {"id": {"any_": [deployment_id]}}, "limit": 200, "offset": offset},
            timeout=30,
        )
        page.raise_for_status()
        runs.extend(page.json())
        if len(page.json()) < 200:
            break
        offset += 200
    wanted = set(case_nos)
    found: dict[str, list[dict[str, Any]]] = {c: [] for c in case_nos}
    for run in runs:
        case_no = run["parameters"].get("case_no")
        if case_no in wanted:
            found[case_no].append(run)
    return found
