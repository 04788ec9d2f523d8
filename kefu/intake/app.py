"""The intake front door: the customers' web form and status page, and the JSON API for channel gateways.

``create_app(settings=None, engine=None)`` assembles the app from its parts; ``kefu up`` serves it with uvicorn
(``uvicorn kefu.intake.app:create_app --factory``). The parts: ``pages`` (form, confirmation, status page),
``api`` (gateway API), ``frontdoor`` (what both share), ``registrar`` and ``service`` (the write path: every
accepted complaint is registered in one transaction with its outbox row; the dispatcher starts its case flow),
``status`` (status and commitments), ``labels`` (zh-CN display names), ``validation`` (every field check) —
and, in the embedded default, the local mail sink's page (``kefu.notifications.web``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
from collections.abc import AsyncIterator

from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from kefu.intake.api import api_router
from kefu.intake.frontdoor import Clock, FrontDoor
from kefu.intake.pages import pages_router
from kefu.intake.validation import INTAKE_CHANNELS
from kefu.models.db import default_engine
from kefu.notifications.web import outbox_router
from kefu.settings import Settings, get_settings


def create_app(
    settings: Settings | None = None,
    engine: Engine | None = None,
    *,
    clock: Clock | None = None,
    status_rate_limit: tuple[int, float] = (10, 60.0),
) -> FastAPI:
    settings = settings or get_settings()
    the_engine = engine or default_engine()
    door = FrontDoor(the_engine, clock or (lambda: dt.datetime.now(dt.UTC)))
    tokens = [t.get_secret_value().encode() for t in settings.intake_api_tokens if t.get_secret_value()]

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(door.warm_up)
        # Everything loaded at start (policy, calendars, SQLAlchemy, jinja) lives as long as the process: keep
        # it out of the garbage collector's full passes, which otherwise stall every request for ~100 ms.
        gc.collect()
        gc.freeze()
        yield
        await run_in_threadpool(door.registrar.close)  # what is queued is committed and answered first

    app = FastAPI(
        lifespan=lifespan,
        title="Kefu intake",
        version="1",
        description="Complaint intake for channel gateways (hotline, email, web, IM, face-to-face, social).",
    )
    app.state.engine = the_engine
    app.state.registrar = door.registrar
    # On the app's own router, not include_router: FastAPI 0.150 matches an included router's routes twice per
    # request (the router, then its route), work the benchmarked hot path does not need.
    pages_router(door, status_rate_limit=status_rate_limit, router=app.router)
    api_router(door, tokens, router=app.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # The embedded default's local sinks: queued messages and received mails at /outbox, SMS at /outbox/sms.
    if settings.mail_sink_enabled or settings.sms_provider == "sink":
        app.include_router(outbox_router(settings, the_engine))

    app.state.channels = [c.value for c in INTAKE_CHANNELS]
    return app
