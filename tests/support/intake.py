"""The intake app (``kefu.intake.app``) on the test database with the fixed clock, behind an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import Engine

from kefu.intake.app import create_app
from tests.support.clock import FixedClock
from tests.support.samples import intake_settings


@pytest.fixture
async def client(engine: Engine, clock: FixedClock) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(intake_settings(), engine, clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake.test") as http:
        yield http
