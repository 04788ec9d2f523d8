"""Fixtures of the intake tests: the real app on a real database, with a fixed clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from kefu.intake.app import create_app
from kefu.settings import Settings

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
