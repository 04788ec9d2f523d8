"""The status page's rate limits hold (issue 18): a forwarded header cannot make one client many, guesses at one
case are limited from however many clients, and the counts are shared by every intake process on the database."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from kefu.cli.up import intake_components
from kefu.intake.app import create_app
from kefu.settings import Settings
from tests.support.clock import RECEIVED, FixedClock
from tests.support.databases import migrated_sqlite
from tests.support.processes import free_port, running, wait_healthy
from tests.support.samples import AUTH, TOKEN, complaint_json, intake_settings


def client_at(app: object, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40_000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://intake.test")


async def lookup(http: httpx.AsyncClient, case_no: str, last4: str, **headers: str) -> httpx.Response:
    return await http.post("/status", data={"case_no": case_no, "phone_last4": last4}, headers=headers)


async def test_guesses_at_one_case_are_limited_however_many_clients_send_them(
    engine: Engine, clock: FixedClock
) -> None:
    app = create_app(intake_settings(), engine, clock=clock, status_rate_limit=(100, 60.0), case_rate_limit=(3, 3600.0))
    async with client_at(app, "10.0.0.1") as first:
        case_no = (await first.post("/api/v1/complaints", json=complaint_json(), headers=AUTH)).json()["case_no"]
        for _ in range(5):  # right digits: given back, never locking the customer out
            assert 'id="status-result"' in (await lookup(first, case_no, "8000")).text
    answers = []
    for i in range(2, 7):  # five clients, one wrong guess each
        async with client_at(app, f"10.0.0.{i}") as other:
            answers.append((await lookup(other, case_no, f"{i:04d}")).status_code)
    assert answers == [200, 200, 200, 429, 429]
    async with client_at(app, "10.0.0.99") as last:
        right = await lookup(last, case_no, "8000")
        assert right.status_code == 429 and 'id="status-result"' not in right.text  # a right guess now is no use
        assert "查询错误次数过多" in right.text
        other_case = await lookup(last, "KF20261123-09999", "1234")
        assert other_case.status_code == 200  # other cases are not affected
    clock.now = RECEIVED + dt.timedelta(hours=2)  # the next window
    async with client_at(app, "10.0.0.99") as later:
        assert 'id="status-result"' in (await lookup(later, case_no, "8000")).text


async def test_several_intake_processes_share_one_count(engine: Engine, clock: FixedClock) -> None:
    one, two = (create_app(intake_settings(), engine, clock=clock, status_rate_limit=(4, 60.0)) for _ in range(2))
    answers = []
    for app in [one, two, one, two, one, two]:
        async with client_at(app, "10.0.0.7") as http:
            answers.append((await lookup(http, "KF20261123-00001", "1234")).status_code)
    assert answers == [200, 200, 200, 200, 429, 429]
    clock.now = RECEIVED + dt.timedelta(minutes=1)
    async with client_at(one, "10.0.0.7") as http:
        assert (await lookup(http, "KF20261123-00001", "1234")).status_code == 200


async def test_forwarded_headers_count_only_from_a_configured_proxy(engine: Engine, clock: FixedClock) -> None:
    def lookups_answered(trusted: list[str]) -> object:
        app = create_app(
            intake_settings(intake_trusted_proxies=trusted), engine, clock=clock, status_rate_limit=(3, 60.0)
        )

        async def run() -> list[int]:
            answers = []
            async with client_at(app, "192.0.2.10") as http:
                for i in range(5):
                    response = await lookup(http, "KF20261123-00001", "1234", **{"X-Forwarded-For": f"203.0.113.{i}"})
                    answers.append(response.status_code)
            return answers

        return run()

    assert await lookups_answered(["192.0.2.10"]) == [200] * 5  # the proxy's word: five customers
    assert await lookups_answered([]) == [200, 200, 200, 429, 429]  # nobody's word: one client


@pytest.mark.slow
def test_kefu_up_serves_intake_without_believing_forwarded_headers(tmp_path: Path) -> None:
    """The intake as ``kefu up`` starts it (uvicorn believes X-Forwarded-For from 127.0.0.1 unless told not to)."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEFU_")},
        "KEFU_DATABASE_URL": migrated_sqlite(tmp_path / "kefu.db"),
        "KEFU_VAR_DIR": str(tmp_path / "var"),
        "KEFU_INTAKE_PORT": str(port),
        "KEFU_INTAKE_API_TOKENS": f'["{TOKEN}"]',
    }
    env.pop("FORWARDED_ALLOW_IPS", None)
    argv = intake_components(Settings(intake_port=port))[0].argv
    base = f"http://127.0.0.1:{port}"
    with running(argv, env, tmp_path / "intake.log", cwd=tmp_path) as process:
        wait_healthy(f"{base}/healthz", process, tmp_path / "intake.log")
        answers = [
            httpx.post(
                f"{base}/status",
                data={"case_no": "KF20261123-00001", "phone_last4": f"{i:04d}"},
                headers={"X-Forwarded-For": f"203.0.113.{i}"},
                timeout=10,
            ).status_code
            for i in range(12)
        ]
        head = httpx.head(f"{base}/", timeout=10)
    assert answers == [200] * 10 + [429, 429]
    assert head.status_code == 200 and "server" not in head.headers
