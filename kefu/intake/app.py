"""The intake front door: the customers' web form and status page, and the JSON API for channel gateways.

``create_app(settings=None, engine=None)`` builds the FastAPI app; ``kefu up`` serves it with uvicorn
(``uvicorn kefu.intake.app:create_app --factory``). Every accepted complaint is registered in one
transaction with its outbox row (see ``service.register_complaint``); the dispatcher starts its case flow.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hmac
import importlib
import importlib.util
import json
import logging
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import BaseModel, Field
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool

from kefu.intake.registrar import Registrar, RegistrarClosed
from kefu.intake.service import (
    STATUS_ZH,
    CaseStatus,
    Commitment,
    IdempotencyKeyReused,
    Registration,
    case_status,
    case_status_for_customer,
    first_commitment,
    registration_of,
)
from kefu.intake.validation import (
    FIELD_LABELS,
    INTAKE_CHANNELS,
    FieldError,
    Submission,
    SubmissionInvalid,
    mask_phone,
    parse_channel,
    validate_submission,
)
from kefu.models.complaints import Complaint
from kefu.models.db import default_engine, reading, unit_of_work
from kefu.models.enums import Channel, MilestoneId
from kefu.models.policy import Policy, current_policy
from kefu.settings import Settings, get_settings
from kefu.worktime import WorkCalendar

log = logging.getLogger("kefu.intake")

TEMPLATES = Path(__file__).resolve().parent / "templates"
MAX_API_BODY = 16 * 1024  # bytes; a complaint is at most 2,000 characters of content
MAX_FORM_BODY = 32 * 1024
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")
_CASE_NO = re.compile(r"^[A-Z]{2}\d{8}-\d{5}$")
_COMMITMENT_ACTION = {
    MilestoneId.FIRST_CONTACT: "与您联系",
    MilestoneId.SOLUTION: "向您提出解决方案",
    MilestoneId.PROGRESS_UPDATE: "向您告知处理进展和初步解决方案",
    MilestoneId.PRELIMINARY_PLAN: "向您提供初步处理方案",
    MilestoneId.RESOLUTION: "处理完毕",
    MilestoneId.CALLBACK: "回访您",
}
Clock = Callable[[], dt.datetime]
UNAVAILABLE_ZH = "系统暂时无法受理，您的投诉还没有提交成功（没有保存任何内容）。"


class IntakeUnavailable(Exception):
    """Nothing was stored: intake is shutting down or its database cannot take the complaint right now."""


class ComplaintIn(BaseModel):
    """A complaint as a channel gateway sends it (validated by Kefu's own rules; errors answer 422)."""

    channel: str = Field(description="hotline, email, web, im, face_to_face or social")
    name: str = Field(max_length=50, description="投诉人姓名")
    phone: str = Field(max_length=32, description="中国大陆手机号（11位）或带区号的座机号")
    content: str = Field(min_length=5, max_length=2000, description="投诉内容")
    email: str | None = Field(default=None, max_length=254)
    order_no: str | None = Field(default=None, max_length=64)
    order_amount: str | None = Field(default=None, description="Order value in CNY, e.g. '1280.50'")
    product: str | None = Field(default=None, max_length=200)
    place: str | None = Field(default=None, max_length=200)
    problem_at: str | None = Field(default=None, description="ISO 8601; without offset = Asia/Shanghai")
    urgent: bool = False
    preferred_contact_time: str | None = Field(default=None, max_length=100)
    received_at: str | None = Field(
        default=None, description="When the channel received it (ISO 8601 with offset); default: now"
    )


class CommitmentOut(BaseModel):
    milestone: str
    name: str
    due_at: dt.datetime


class ComplaintOut(BaseModel):
    case_no: str
    channel: str
    status: str
    status_label: str
    severity: str
    urgent: bool
    received_at: dt.datetime
    next_commitment: CommitmentOut | None
    flow_run_id: str | None = None


class ErrorItem(BaseModel):
    field: str | None
    code: str
    message: str


class ErrorsOut(BaseModel):
    errors: list[ErrorItem]


class RateLimiter:
    """At most ``limit`` attempts per ``window`` seconds per client (in memory: one intake process)."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        now = self.clock()
        with self._lock:
            hits = self._hits.setdefault(client, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            if len(self._hits) > 10_000:
                self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > now - self.window}
            return True


def _errors(status: int, errors: list[FieldError], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errors": [e.as_dict() for e in errors]}, status_code=status, headers=headers)


def _error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"errors": [{"field": field, "code": code, "message": message}]}, status_code=status)


def create_app(
    settings: Settings | None = None,
    engine: Engine | None = None,
    *,
    clock: Clock | None = None,
    status_rate_limit: tuple[int, float] = (10, 60.0),
) -> FastAPI:
    settings = settings or get_settings()
    the_engine = engine or default_engine()
    now: Clock = clock or (lambda: dt.datetime.now(dt.UTC))
    tz = ZoneInfo(settings.timezone)
    tokens = [t.get_secret_value().encode() for t in settings.intake_api_tokens if t.get_secret_value()]
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined)
    limiter = RateLimiter(*status_rate_limit)
    calendars: dict[int, WorkCalendar] = {}

    def policy_and_calendar() -> tuple[Policy, WorkCalendar]:
        policy = current_policy()
        calendar = calendars.get(id(policy))
        if calendar is None:
            calendars.clear()
            calendar = calendars[id(policy)] = WorkCalendar(policy)
        return policy, calendar

    def local(moment: dt.datetime) -> str:
        return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**context), status_code=status)

    # One writer thread commits every complaint waiting at that moment together (group commit).
    registrar = Registrar(the_engine, current_policy, timezone=settings.timezone)

    def warm_up() -> None:
        """Build the calendar tables and rehearse a registration before the first customer arrives."""
        policy, calendar = policy_and_calendar()
        for severity in policy.complaints.severities:
            first_commitment(policy, calendar, severity, now(), key_account=False)
        registrar.rehearse()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(warm_up)
        # Everything loaded at start (policy, calendars, SQLAlchemy, jinja) lives as long as the process: keep
        # it out of the garbage collector's full passes, which otherwise stall every request for ~100 ms.
        gc.collect()
        gc.freeze()
        yield
        await run_in_threadpool(registrar.close)  # what is queued is committed and answered first

    app = FastAPI(
        lifespan=lifespan,
        title="Kefu intake",
        version="1",
        description="Complaint intake for channel gateways (hotline, email, web, IM, face-to-face, social).",
    )
    app.state.engine = the_engine
    read_engine = reading(the_engine)  # status lookups never wait for (nor hold up) the registrations

    app.state.registrar = registrar

    async def register(
        submission: Submission, channel: Channel, key: str | None, received_at: dt.datetime
    ) -> tuple[Registration, Commitment | None]:
        try:
            registration = await registrar.register(submission, channel, key, received_at)
        except (RegistrarClosed, OperationalError) as exc:  # shutting down, or the database cannot take it now
            log.warning("complaint not registered, intake unavailable: %s", str(exc).splitlines()[0])
            raise IntakeUnavailable from exc
        policy, calendar = policy_and_calendar()
        commitment = first_commitment(
            policy, calendar, registration.severity, registration.received_at, key_account=registration.key_account
        )
        if registration.created:
            log.info(
                "complaint %s received via %s from %s",
                registration.case_no,
                channel.value,
                mask_phone(submission.phone),
            )
        return registration, commitment

    # ---------------------------------------------------------------- web form (customers)
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def form() -> HTMLResponse:
        return page("form.html", errors=[], values={}, labels=FIELD_LABELS, form_key=uuid.uuid4().hex)

    @app.post("/", response_class=HTMLResponse, include_in_schema=False)
    async def submit_form(request: Request) -> Response:
        if int(request.headers.get("content-length") or 0) > MAX_FORM_BODY:
            return page(
                "form.html",
                413,
                errors=[FieldError("content", "too_large", "提交的内容太长了，请精简后再提交")],
                values={},
                labels=FIELD_LABELS,
                form_key=uuid.uuid4().hex,
            )
        form_data = await request.form()
        values = {k: v for k, v in form_data.items() if isinstance(v, str)}
        form_key = values.get("form_key", "")
        if not re.fullmatch(r"[0-9a-f]{32}", form_key):
            form_key = uuid.uuid4().hex
        received_at = now()
        try:
            submission = validate_submission(values, now=received_at, timezone=settings.timezone)
        except SubmissionInvalid as exc:
            return page("form.html", 422, errors=exc.errors, values=values, labels=FIELD_LABELS, form_key=form_key)
        try:
            complaint, commitment = await register(submission, Channel.WEB, f"web:{form_key}", received_at)
        except IntakeUnavailable:
            return page(
                "form.html",
                503,
                notice=UNAVAILABLE_ZH + "您填写的内容都还在，请稍后再点一次「提交投诉」。",
                errors=[],
                values=values,
                labels=FIELD_LABELS,
                form_key=form_key,  # the same form: a second press cannot make two cases
            )
        except IdempotencyKeyReused:
            # The same form was sent again with changed content: treat it as a new form.
            complaint, commitment = await register(submission, Channel.WEB, f"web:{uuid.uuid4().hex}", received_at)
        return page(
            "confirmation.html",
            case_no=complaint.case_no,
            received_at=local(complaint.received_at),
            commitment=commitment,
            commitment_at=local(commitment.due_at) if commitment else "",
            commitment_action=_COMMITMENT_ACTION.get(commitment.milestone, commitment.name) if commitment else "",
            urgent=complaint.urgent,
        )

    # ---------------------------------------------------------------- status page (customers)
    def status_page(status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("message", "")
        context.setdefault("result", None)
        context.setdefault("case_no", "")
        return page("status.html", status, **context)

    @app.get("/status", response_class=HTMLResponse, include_in_schema=False)
    def status_form() -> HTMLResponse:
        return status_page()

    @app.post("/status", response_class=HTMLResponse, include_in_schema=False)
    async def status_lookup(request: Request) -> HTMLResponse:
        client = request.client.host if request.client else "unknown"
        if not limiter.allow(client):
            return status_page(429, message="查询过于频繁，请一分钟后再试。")
        if int(request.headers.get("content-length") or 0) > 4096:
            return status_page(413, message="请求内容过长。")
        form_data = await request.form()
        case_no = str(form_data.get("case_no") or "").strip().upper()
        last4 = str(form_data.get("phone_last4") or "").strip()
        not_found = "没有找到与该投诉编号和电话后四位相符的记录，请核对后再试。"
        shown_case_no = case_no if _CASE_NO.fullmatch(case_no) else ""
        if not _CASE_NO.fullmatch(case_no) or not re.fullmatch(r"\d{4}", last4):
            return status_page(200, message=not_found, case_no=shown_case_no)

        def lookup() -> CaseStatus | None:
            policy, calendar = policy_and_calendar()
            with unit_of_work(read_engine) as session:
                return case_status_for_customer(session, case_no, last4, policy, calendar)

        result = await run_in_threadpool(lookup)
        if result is None:
            return status_page(200, message=not_found, case_no=shown_case_no)
        upcoming = result.next_commitment
        return status_page(
            result=result,
            case_no=case_no,
            received_at=local(result.received_at),
            next_name=upcoming.name if upcoming else "",
            next_at=local(upcoming.due_at) if upcoming else "",
        )

    # ---------------------------------------------------------------- gateway API
    def authorised(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        given = token.strip().encode()
        return any(hmac.compare_digest(given, t) for t in tokens)

    def unauthorised() -> JSONResponse:
        response = _error(401, "unauthorized", "缺少或无效的访问令牌（Authorization: Bearer <token>）")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    def complaint_out(complaint: Registration, commitment: Commitment | None) -> dict[str, Any]:
        return ComplaintOut(
            case_no=complaint.case_no,
            channel=complaint.channel.value,
            status=complaint.status.value,
            status_label=STATUS_ZH.get(complaint.status, complaint.status.value),
            severity=complaint.severity.value,
            urgent=complaint.urgent,
            received_at=complaint.received_at,
            next_commitment=CommitmentOut(
                milestone=commitment.milestone.value, name=commitment.name, due_at=commitment.due_at
            )
            if commitment
            else None,
            flow_run_id=complaint.flow_run_id,
        ).model_dump(mode="json")

    error_responses: dict[int | str, dict[str, Any]] = {
        401: {"model": ErrorsOut, "description": "Missing or unknown token"},
        413: {"model": ErrorsOut, "description": "Body larger than 16 KiB"},
        422: {"model": ErrorsOut, "description": "Invalid complaint: every problem, per field"},
    }

    @app.post(
        "/api/v1/complaints",
        status_code=201,
        summary="Register a complaint from a channel gateway",
        responses={
            200: {"model": ComplaintOut, "description": "Repeated Idempotency-Key: the case created before"},
            201: {"model": ComplaintOut, "description": "Registered"},
            409: {"model": ErrorsOut, "description": "Idempotency-Key reused with a different complaint"},
            503: {"model": ErrorsOut, "description": "Nothing stored; retry later with the same Idempotency-Key"},
            **error_responses,
        },
        openapi_extra={
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "maxLength": 128},
                    "description": "A retried submission with the same key returns the same case (200).",
                }
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ComplaintIn.model_json_schema()}},
            },
        },
    )
    async def api_register(request: Request) -> JSONResponse:
        if not authorised(request):
            return unauthorised()
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_API_BODY):
            return _error(413, "payload_too_large", f"请求体不能超过 {MAX_API_BODY} 字节")
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_API_BODY:
                return _error(413, "payload_too_large", f"请求体不能超过 {MAX_API_BODY} 字节")
        key = request.headers.get("idempotency-key")
        if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
            return _error(
                422, "invalid_idempotency_key", "Idempotency-Key 应为 1–128 个可见 ASCII 字符", "Idempotency-Key"
            )
        try:
            data = json.loads(bytes(body).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return _error(422, "invalid_json", "请求体不是有效的 UTF-8 JSON")
        if not isinstance(data, dict):
            return _error(422, "invalid_json", "请求体应为 JSON 对象")
        received_at = now()
        errors: list[FieldError] = []
        channel = parse_channel(data.get("channel"))
        if isinstance(channel, FieldError):
            errors.append(channel)
        claimed = data.get("received_at")
        if claimed is not None:
            parsed = _parse_received_at(claimed, received_at)
            if isinstance(parsed, FieldError):
                errors.append(parsed)
            else:
                received_at = parsed
        unknown = sorted(set(data) - set(ComplaintIn.model_fields))
        for name in unknown[:10]:
            errors.append(FieldError(str(name)[:64], "unknown_field", "不认识的字段"))
        submission: Submission | None = None
        try:
            submission = validate_submission(data, now=now(), timezone=settings.timezone)
        except SubmissionInvalid as exc:
            errors = exc.errors + errors
        if errors or submission is None or isinstance(channel, FieldError):
            return _errors(422, errors)
        try:
            complaint, commitment = await register(submission, channel, f"api:{key}" if key else None, received_at)
        except IntakeUnavailable:
            response = _error(503, "unavailable", UNAVAILABLE_ZH + "请稍后用同一个 Idempotency-Key 重试。")
            response.headers["Retry-After"] = "5"
            return response
        except IdempotencyKeyReused as exc:
            return _error(
                409,
                "idempotency_key_reused",
                f"该 Idempotency-Key 已用于投诉 {exc.case_no}，但内容不同",
                "Idempotency-Key",
            )
        return JSONResponse(
            complaint_out(complaint, commitment),
            status_code=201 if complaint.created else 200,
            headers={"Location": f"/api/v1/complaints/{complaint.case_no}"},
        )

    @app.get(
        "/api/v1/complaints/{case_no}",
        summary="Status of a complaint (no personal data)",
        responses={200: {"model": ComplaintOut}, 404: {"model": ErrorsOut}, 401: {"model": ErrorsOut}},
    )
    def api_get(case_no: str, request: Request) -> JSONResponse:
        if not authorised(request):
            return unauthorised()
        if not _CASE_NO.fullmatch(case_no):
            return _error(404, "not_found", "没有这个投诉编号")
        policy, calendar = policy_and_calendar()
        with unit_of_work(read_engine) as session:
            complaint = session.scalars(select(Complaint).where(Complaint.case_no == case_no)).one_or_none()
            if complaint is None:
                return _error(404, "not_found", "没有这个投诉编号")
            status = case_status(session, complaint, policy, calendar)
            body = complaint_out(registration_of(session, complaint.id), status.next_commitment)
        return JSONResponse(body)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    if settings.mail_sink_enabled and importlib.util.find_spec("kefu.notifications.web") is not None:
        app.include_router(importlib.import_module("kefu.notifications.web").router)

    app.state.channels = [c.value for c in INTAKE_CHANNELS]
    return app


def _parse_received_at(raw: Any, now: dt.datetime) -> dt.datetime | FieldError:
    message = "received_at 应为带时区的 ISO 8601 时间，不晚于现在、不早于7天前"
    if not isinstance(raw, str):
        return FieldError("received_at", "invalid_datetime", message)
    try:
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        return FieldError("received_at", "invalid_datetime", message)
    if moment.tzinfo is None or moment > now + dt.timedelta(minutes=5) or moment < now - dt.timedelta(days=7):
        return FieldError("received_at", "invalid_datetime", message)
    return moment.astimezone(dt.UTC)
