"""The intake front door: the customers' web form and status page, and the JSON API for channel gateways.

``create_app(settings=None, engine=None)`` assembles the app from its parts; ``kefu up`` serves it with uvicorn
(``uvicorn kefu.intake.app:create_app --factory``). The parts: ``pages`` (form, confirmation, status page),
``api`` (gateway API), ``frontdoor`` (what both share), ``registrar`` and ``service`` (the write path: every
accepted complaint is registered in one transaction with its outbox row; the dispatcher starts its case flow),
``status`` (status and commitments), ``labels`` (zh-CN display names), ``validation`` (every field check),
``edge`` (body limits, security headers, cross-site refusal, HEAD), ``limits`` (the status page's shared rate
limits). The local sinks' pages (``kefu.notifications.web``) are the operators' and live behind their sign-in, on the
entrance (``kefu.desk``).

The client is the connection's peer; ``X-Forwarded-For`` counts only from ``KEFU_INTAKE_TRUSTED_PROXIES`` (``kefu
up`` starts uvicorn with ``--no-proxy-headers``, so uvicorn's own default trust of 127.0.0.1 is off). The API docs
(``/docs``, when ``KEFU_INTAKE_API_DOCS`` is on) load Swagger UI from the installed ``swagger-ui-bundle-v2``
package, never from a CDN.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
from collections.abc import AsyncIterator
from pathlib import Path

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.staticfiles import StaticFiles
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from kefu.intake.answers import ANSWER_PREFIX, MAX_ANSWER_BODY, answers_router
from kefu.intake.api import MAX_API_BODY, api_router
from kefu.intake.edge import API_PREFIX, BodyLimits, Edge
from kefu.intake.frontdoor import Clock, FrontDoor
from kefu.intake.pages import MAX_FORM_BODY, MAX_STATUS_BODY, pages_router
from kefu.intake.surveys import MAX_SURVEY_BODY, SURVEY_PREFIX, surveys_router
from kefu.intake.validation import INTAKE_CHANNELS
from kefu.models.db import default_engine
from kefu.settings import Settings, get_settings


def create_app(
    settings: Settings | None = None,
    engine: Engine | None = None,
    *,
    clock: Clock | None = None,
    status_rate_limit: tuple[int, float] = (10, 60.0),
    case_rate_limit: tuple[int, float] = (10, 3600.0),
) -> FastAPI:
    """``status_rate_limit``: status lookups per client per window (seconds); ``case_rate_limit``: failed lookups
    per case number per window, from any client."""
    from kefu.notifications.pii import install_log_masking

    install_log_masking()  # uvicorn's access and error logs, the intake's own
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
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.intake_api_docs else None,
    )
    app.state.engine = the_engine
    app.state.registrar = door.registrar
    # On the app's own router, not include_router: FastAPI 0.150 matches an included router's routes twice per
    # request (the router, then its route), work the benchmarked hot path does not need.
    pages_router(door, status_rate_limit=status_rate_limit, case_rate_limit=case_rate_limit, router=app.router)
    api_router(door, tokens, router=app.router)
    answers_router(app.router, the_engine, door.now, settings.prefect_api_url)  # the customer's answer links
    surveys_router(app.router, the_engine, door.now)  # survey invitations' links

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.mount("/static/swagger", StaticFiles(directory=Path(swagger_ui_bundle.swagger_ui_path)), name="swagger")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if settings.intake_api_docs:

        @app.get("/docs", include_in_schema=False)
        def docs() -> HTMLResponse:
            return HTMLResponse(DOCS_PAGE)

    app.state.channels = [c.value for c in INTAKE_CHANNELS]
    app.add_middleware(
        Edge,
        limits=BodyLimits(
            default=4096,
            exact={"/": MAX_FORM_BODY, "/status": MAX_STATUS_BODY},
            prefixes={API_PREFIX: MAX_API_BODY, ANSWER_PREFIX: MAX_ANSWER_BODY, SURVEY_PREFIX: MAX_SURVEY_BODY},
        ),
        allowed_origins=settings.intake_allowed_origins,
    )
    if settings.intake_trusted_proxies:  # outermost: the edge and the routes see the client the proxy saw
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.intake_trusted_proxies)
    return app


STATIC = Path(__file__).resolve().parent / "static"
DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Kefu intake API</title>
<link rel="stylesheet" href="/static/swagger/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/static/swagger/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script>
</body></html>
"""
