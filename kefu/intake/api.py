"""The JSON API for channel gateways: ``POST /api/v1/complaints`` and ``GET /api/v1/complaints/{case_no}``.

Bearer tokens: named tokens made with ``kefu token add`` (stored as hashes, revocable) or ``KEFU_INTAKE_API_TOKENS``;
an ``Idempotency-Key`` makes a retry return the case the first request created (201 the first time, 200 after, 409
with other content); 413 for bodies over 16 KiB (counted as read, chunked or not), 415 for anything but JSON, 422
listing every problem of a malformed body (bad UTF-8, nesting too deep, numbers too long), 503 with ``Retry-After``
when nothing could be stored. No personal data in the answers.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from kefu.intake.frontdoor import UNAVAILABLE_ZH, FrontDoor, IntakeUnavailable
from kefu.intake.labels import status_label
from kefu.intake.service import IdempotencyKeyReused, Registration, registration_of
from kefu.intake.status import case_status
from kefu.intake.validation import (
    FieldError,
    Submission,
    SubmissionInvalid,
    is_case_no,
    is_idempotency_key,
    parse_channel,
    parse_received_at,
    validate_submission,
)
from kefu.models.access import TOKEN_PREFIX, token_is_valid
from kefu.models.complaints import Complaint
from kefu.models.db import unit_of_work
from kefu.models.enums import Channel
from kefu.worktime import Commitment, local_moment

MAX_API_BODY = 16 * 1024  # bytes; a complaint is at most 2,000 characters of content


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
    problem_at: str | None = Field(
        default=None,
        description="ISO 8601; without offset = local time in the policy's time zone (Asia/Shanghai)",
    )
    urgent: bool = False
    preferred_contact_time: str | None = Field(default=None, max_length=100)
    staff_id: int | None = Field(
        default=None,
        description="首问责任制: the staff id of the person who received the complaint at the gateway; they own the "
        "case. Without it the policy's rota names the owner.",
    )
    received_at: str | None = Field(
        default=None, description="When the channel received it (ISO 8601 with offset); default: now"
    )


class CommitmentOut(BaseModel):
    milestone: str
    name: str = Field(description="The milestone's internal name in the policy, for staff; not for customers")
    due_at: dt.datetime
    promise: str = Field(
        description="The promise as the customer reads it, from the policy's customer wording, with the due time "
        "in 北京时间 to the minute — what a channel tells the customer"
    )


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


def _errors(status: int, errors: list[FieldError], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errors": [e.as_dict() for e in errors]}, status_code=status, headers=headers)


def _error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"errors": [{"field": field, "code": code, "message": message}]}, status_code=status)


def complaint_out(complaint: Registration, commitment: Commitment | None, timezone: str) -> dict[str, Any]:
    """The case as a gateway reads it; times in the policy's time zone with their offset, like the commitment's."""

    def local(moment: dt.datetime) -> dt.datetime:
        return local_moment(moment, timezone)

    return ComplaintOut(
        case_no=complaint.case_no,
        channel=complaint.channel.value,
        status=complaint.status.value,
        status_label=status_label(complaint.status),
        severity=complaint.severity.value,
        urgent=complaint.urgent,
        received_at=local(complaint.received_at),
        next_commitment=CommitmentOut(
            milestone=commitment.milestone.value,
            name=commitment.name,
            due_at=local(commitment.due_at),
            promise=commitment.in_words(),
        )
        if commitment
        else None,
        flow_run_id=complaint.flow_run_id,
    ).model_dump(mode="json")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorsOut, "description": "Missing or unknown token"},
    413: {"model": ErrorsOut, "description": "Body larger than 16 KiB"},
    415: {"model": ErrorsOut, "description": "Body not sent as application/json"},
    422: {"model": ErrorsOut, "description": "Invalid complaint: every problem, per field"},
}


def is_json(content_type: str | None) -> bool:
    """``application/json`` or ``application/<something>+json``, any parameters."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def api_router(door: FrontDoor, tokens: list[bytes], *, router: APIRouter | None = None) -> APIRouter:
    """The gateway API on ``router`` (default: a new one); ``tokens``: the accepted bearer tokens."""
    router = router if router is not None else APIRouter()

    def authorised(request: Request) -> bool:
        """A token from the environment (``KEFU_INTAKE_API_TOKENS``) or a named token not revoked (looked up on
        every request: a revoke takes effect on the next one)."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        given = token.strip()
        if any(hmac.compare_digest(given.encode(), t) for t in tokens):
            return True
        if not given.startswith(TOKEN_PREFIX):
            return False
        with unit_of_work(door.read_engine) as session:
            return token_is_valid(session, given)

    def unauthorised() -> JSONResponse:
        response = _error(401, "unauthorized", "缺少或无效的访问令牌（Authorization: Bearer <token>）")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @router.post(
        "/api/v1/complaints",
        status_code=201,
        summary="Register a complaint from a channel gateway",
        responses={
            200: {"model": ComplaintOut, "description": "Repeated Idempotency-Key: the case created before"},
            201: {"model": ComplaintOut, "description": "Registered"},
            409: {"model": ErrorsOut, "description": "Idempotency-Key reused with a different complaint"},
            503: {"model": ErrorsOut, "description": "Nothing stored; retry later with the same Idempotency-Key"},
            **ERROR_RESPONSES,
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
        if not await run_in_threadpool(authorised, request):
            return unauthorised()
        if not is_json(request.headers.get("content-type")):
            return _error(415, "unsupported_media_type", "请求体应为 JSON（Content-Type: application/json）")
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_API_BODY):
            return _error(413, "payload_too_large", f"请求体不能超过 {MAX_API_BODY} 字节")
        body = bytearray()  # the edge stops reading past MAX_API_BODY too; this loop keeps the API whole alone
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_API_BODY:
                return _error(413, "payload_too_large", f"请求体不能超过 {MAX_API_BODY} 字节")
        key = request.headers.get("idempotency-key")
        if key is not None and not is_idempotency_key(key):
            return _error(
                422, "invalid_idempotency_key", "Idempotency-Key 应为 1–128 个可见 ASCII 字符", "Idempotency-Key"
            )
        try:
            data = json.loads(bytes(body).decode("utf-8"))
        except RecursionError:
            return _error(422, "invalid_json", "请求体的 JSON 嵌套过深")
        except ValueError as exc:  # bad UTF-8, bad JSON, or an integer too long to convert (over 4,300 digits)
            why = (
                "数字过长"
                if not isinstance(exc, UnicodeDecodeError | json.JSONDecodeError)
                else "不是有效的 UTF-8 JSON"
            )
            return _error(422, "invalid_json", f"请求体{why}")
        if not isinstance(data, dict):
            return _error(422, "invalid_json", "请求体应为 JSON 对象")
        received_at = door.now()
        errors: list[FieldError] = []
        channel = parse_channel(data.get("channel"))
        if isinstance(channel, FieldError):
            errors.append(channel)
        claimed = data.get("received_at")
        if claimed is not None:
            parsed = parse_received_at(claimed, received_at)
            if isinstance(parsed, FieldError):
                errors.append(parsed)
            else:
                received_at = parsed
        unknown = sorted(set(data) - set(ComplaintIn.model_fields))
        for name in unknown[:10]:
            errors.append(FieldError(str(name)[:64], "unknown_field", "不认识的字段"))
        submission: Submission | None = None
        try:
            submission = validate_submission(data, now=door.now(), timezone=door.timezone)
        except SubmissionInvalid as exc:
            errors = exc.errors + errors
        receiver = None if submission is None else submission.received_by
        if receiver is not None and not await run_in_threadpool(door.staff_on_record, receiver):
            errors.append(FieldError("staff_id", "unknown_staff", f"员工编号 {receiver} 不存在或已停用"))
        if errors or submission is None or isinstance(channel, FieldError):
            return _errors(422, errors)
        try:
            complaint, commitment, _tz = await door.register(
                submission, channel, f"api:{key}" if key else None, received_at
            )
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
            complaint_out(complaint, commitment, door.timezone),
            status_code=201 if complaint.created else 200,
            headers={"Location": f"/api/v1/complaints/{complaint.case_no}"},
        )

    @router.post(
        "/api/v1/enquiries",
        status_code=201,
        summary="Record an enquiry (咨询) from a channel gateway",
        responses={
            200: {"description": "Repeated Idempotency-Key: the enquiry recorded before"},
            201: {"description": "Recorded; its run starts within a minute (the deadline sweeper)"},
            409: {"model": ErrorsOut, "description": "Idempotency-Key reused with a different enquiry"},
            **ERROR_RESPONSES,
        },
    )
    async def api_enquiry(request: Request) -> JSONResponse:
        """Fields: name, phone, content (required), email, channel (default im), received_at (when the customer
        first spoke; default now). Idempotent by the Idempotency-Key header like complaints."""
        from kefu.intake.enquiries import take_enquiry
        from kefu.tasks.enquiries import EnquiryRefused

        if not await run_in_threadpool(authorised, request):
            return unauthorised()
        if not is_json(request.headers.get("content-type")):
            return _error(415, "unsupported_media_type", "请求体应为 JSON（Content-Type: application/json）")
        body = await request.body()
        if len(body) > MAX_API_BODY:
            return _error(413, "payload_too_large", f"请求体不能超过 {MAX_API_BODY} 字节")
        key = request.headers.get("idempotency-key")
        if key is not None and not is_idempotency_key(key):
            return _error(
                422, "invalid_idempotency_key", "Idempotency-Key 应为 1–128 个可见 ASCII 字符", "Idempotency-Key"
            )
        try:
            data = json.loads(body.decode("utf-8"))
        except (ValueError, RecursionError):
            return _error(422, "invalid_json", "请求体不是有效的 UTF-8 JSON")
        if not isinstance(data, dict):
            return _error(422, "invalid_json", "请求体应为 JSON 对象")
        errors: list[FieldError] = []
        known = {"name", "phone", "email", "content", "channel", "received_at"}
        for name in sorted(set(data) - known)[:10]:
            errors.append(FieldError(str(name)[:64], "unknown_field", "不认识的字段"))
        texts = {f: data.get(f) for f in ("name", "phone", "email", "content")}
        for field, value in texts.items():
            if value is not None and not isinstance(value, str):
                errors.append(FieldError(field, "invalid_type", "应为文本"))
        channel = parse_channel(data.get("channel", Channel.IM.value))
        if isinstance(channel, FieldError):
            errors.append(channel)
        received_at = door.now()
        if data.get("received_at") is not None:
            parsed = parse_received_at(data["received_at"], received_at)
            if isinstance(parsed, FieldError):
                errors.append(parsed)
            else:
                received_at = parsed
        if errors or isinstance(channel, FieldError):
            return _errors(422, errors)
        try:
            taken = await run_in_threadpool(
                lambda: take_enquiry(
                    door,
                    name=str(texts["name"] or ""),
                    phone=str(texts["phone"] or ""),
                    content=str(texts["content"] or ""),
                    email=texts["email"],
                    channel=channel,
                    key=f"api-enquiry:{key}" if key else None,
                    received_at=received_at,
                )
            )
        except EnquiryRefused as refused:
            status, code = (409, "idempotency_key_reused") if "幂等键" in str(refused) else (422, "invalid_enquiry")
            return _error(status, code, str(refused))
        body_out = {
            "enquiry_no": taken.enquiry_no,
            "received_at": local_moment(taken.received_at, door.timezone).isoformat(),
            "answer_due_at": local_moment(taken.due_at, door.timezone).isoformat(),
            "created": taken.created,
        }
        return JSONResponse(body_out, status_code=201 if taken.created else 200)

    @router.post(
        "/api/v1/contacts",
        status_code=201,
        summary="Record a contact with a customer (沟通记录, seed 003 §2.3)",
        responses={201: {"description": "Recorded"}, **ERROR_RESPONSES},
    )
    async def api_contact(request: Request) -> JSONResponse:
        """Fields: customer (code), staff (sign-in name or id of the person responsible), channel (phone, visit,
        meeting, email, im, sms, hotline, web, social; mail = email, face_to_face = visit), summary (required), at
        (ISO 8601; without offset the policy's time zone; default now), business_review (bool), follow_ups:
        [{item, owner, due (YYYY-MM-DD)}]. Anything wrong: 422, nothing stored; refused as ``kefu contact log``
        refuses it (``kefu.tasks.contacts.record_contact``)."""
        if not await run_in_threadpool(authorised, request):
            return unauthorised()
        if not is_json(request.headers.get("content-type")):
            return _error(415, "unsupported_media_type", "请求体应为 JSON（Content-Type: application/json）")
        body = await request.body()
        if len(body) > MAX_API_BODY:
            return _error(413, "payload_too_large", f"请求体不能超过 {MAX_API_BODY} 字节")
        try:
            data = json.loads(body.decode("utf-8"))
        except (ValueError, RecursionError):
            return _error(422, "invalid_json", "请求体不是有效的 UTF-8 JSON")
        if not isinstance(data, dict):
            return _error(422, "invalid_json", "请求体应为 JSON 对象")
        result = await run_in_threadpool(lambda: _record_contact(door, data))
        if isinstance(result, str):
            return _error(422, "invalid_contact", result)
        return JSONResponse(result, status_code=201)

    @router.get(
        "/api/v1/complaints/{case_no}",
        summary="Status of a complaint (no personal data)",
        responses={200: {"model": ComplaintOut}, 404: {"model": ErrorsOut}, 401: {"model": ErrorsOut}},
    )
    def api_get(case_no: str, request: Request) -> JSONResponse:
        if not authorised(request):
            return unauthorised()
        if not is_case_no(case_no):
            return _error(404, "not_found", "没有这个投诉编号")
        policy, calendar = door.policy_and_calendar()
        with unit_of_work(door.read_engine) as session:
            complaint = session.scalars(select(Complaint).where(Complaint.case_no == case_no)).one_or_none()
            if complaint is None:
                return _error(404, "not_found", "没有这个投诉编号")
            status = case_status(session, complaint, policy, calendar)
            body = complaint_out(registration_of(session, complaint.id), status.next_commitment, policy.timezone)
        return JSONResponse(body)

    return router


CONTACT_FIELDS = {"customer", "staff", "channel", "summary", "at", "business_review", "follow_ups"}


def _record_contact(door: FrontDoor, data: dict[str, Any]) -> dict[str, Any] | str:
    """The contact recorded (its id, customer code, time), or why not (nothing stored)."""

    from kefu.models.directory import find_staff
    from kefu.models.registry import customer_code
    from kefu.tasks.contacts import ContactRefused, FollowUpEntry, find_customer, record_contact

    unknown = sorted(str(k) for k in set(data) - CONTACT_FIELDS)
    if unknown:
        return f"不认识的字段 / unknown fields: {', '.join(unknown[:10])}"
    texts = {f: data.get(f) for f in ("customer", "staff", "channel", "summary")}
    # an empty summary is the task's to refuse (its reason the same as at every other door)
    missing = [f for f, v in texts.items() if not isinstance(v, str) or (f != "summary" and not v.strip())]
    if missing:
        return f"缺少字段或不是文本 / missing or not text: {', '.join(missing)}"
    if not isinstance(data.get("business_review", False), bool):
        return "business_review 应为 true 或 false / business_review must be a boolean"
    policy, _calendar = door.policy_and_calendar()
    now = door.now()
    at = None
    if data.get("at") is not None:
        try:
            at = dt.datetime.fromisoformat(str(data["at"]))
        except ValueError:
            return "at 应为 ISO 8601 时间 / at: not an ISO 8601 time"
        if at.tzinfo is None:
            at = at.replace(tzinfo=ZoneInfo(policy.timezone))
    raw = data.get("follow_ups") or []
    entries: list[FollowUpEntry] = []
    if not isinstance(raw, list):
        return "follow_ups 应为列表 / follow_ups must be a list"
    for n, item in enumerate(raw, start=1):
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("item", "owner", "due")):
            return f"follow_ups[{n}]: 应含 item、owner、due 文本 / needs item, owner and due as text"
        try:
            due = dt.date.fromisoformat(item["due"])
        except ValueError:
            return f"follow_ups[{n}]: due 应为 YYYY-MM-DD / due is not a date"
        entries.append(FollowUpEntry(item["item"].strip(), item["owner"].strip(), due))
    try:
        with unit_of_work(door.engine) as session:
            customer = find_customer(session, str(texts["customer"]))
            person = find_staff(session, str(texts["staff"]))
            if person is None:
                raise ContactRefused(f"没有该员工 / no staff member '{texts['staff']}'")
            record = record_contact(
                session, policy, customer, channel=str(texts["channel"]), summary=str(texts["summary"]),
                responsible=person, at=at, business_review=bool(data.get("business_review", False)),
                follow_ups=entries, now=now,
            )  # fmt: skip
            return {
                "id": record.id,
                "customer": customer_code(customer),
                "at": local_moment(record.at, policy.timezone).isoformat(),
                "channel": record.channel,
                "follow_ups": len(entries),
            }
    except ContactRefused as exc:
        return str(exc)
