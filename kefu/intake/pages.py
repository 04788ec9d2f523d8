"""The customers' HTML pages: the complaint form (no JavaScript needed) with its confirmation, and the status page.

zh-CN, autoescaped. The confirmation shows the case number and the first time the policy promises the
customer, the status page the next one — both in the milestone's customer wording from the policy (never
the milestone's internal name), with times as customers read them (``customer_time``: 北京时间, to the
minute). The status page answers the same for "no such
case" and "wrong digits", and is rate limited per client.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.concurrency import run_in_threadpool

from kefu.intake.frontdoor import UNAVAILABLE_ZH, FrontDoor, IntakeUnavailable
from kefu.intake.labels import FIELD_LABELS
from kefu.intake.service import IdempotencyKeyReused
from kefu.intake.status import CaseStatus, case_status_for_customer
from kefu.intake.validation import (
    FieldError,
    SubmissionInvalid,
    is_case_no,
    is_form_key,
    is_phone_last4,
    validate_submission,
)
from kefu.models.db import unit_of_work
from kefu.models.enums import Channel
from kefu.worktime import customer_time

TEMPLATES = Path(__file__).resolve().parent / "templates"
MAX_FORM_BODY = 32 * 1024
MAX_STATUS_BODY = 4096
NOT_FOUND_ZH = "没有找到与该投诉编号和电话后四位相符的记录，请核对后再试。"


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


def pages_router(
    door: FrontDoor, *, status_rate_limit: tuple[int, float], router: APIRouter | None = None
) -> APIRouter:
    """``/`` (the form and its confirmation) and ``/status`` (the status page), on ``router`` (default: a new one)."""
    router = router if router is not None else APIRouter()
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined)
    limiter = RateLimiter(*status_rate_limit)

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**context), status_code=status)

    # ---------------------------------------------------------------- the complaint form
    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def form() -> HTMLResponse:
        return page("form.html", errors=[], values={}, labels=FIELD_LABELS, form_key=uuid.uuid4().hex)

    @router.post("/", response_class=HTMLResponse, include_in_schema=False)
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
        if not is_form_key(form_key):
            form_key = uuid.uuid4().hex
        received_at = door.now()
        try:
            submission = validate_submission(values, now=received_at, timezone=door.timezone)
        except SubmissionInvalid as exc:
            return page("form.html", 422, errors=exc.errors, values=values, labels=FIELD_LABELS, form_key=form_key)
        try:
            complaint, commitment, tz = await door.register(submission, Channel.WEB, f"web:{form_key}", received_at)
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
            complaint, commitment, tz = await door.register(
                submission, Channel.WEB, f"web:{uuid.uuid4().hex}", received_at
            )
        before, after = commitment.promise() if commitment else ("", "")
        return page(
            "confirmation.html",
            case_no=complaint.case_no,
            received_at=customer_time(complaint.received_at, tz),
            commitment=commitment,
            commitment_at=customer_time(commitment.due_at, tz) if commitment else "",
            promise_before=before,
            promise_after=after,
            urgent=complaint.urgent,
        )

    # ---------------------------------------------------------------- the status page
    def status_page(status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("message", "")
        context.setdefault("result", None)
        context.setdefault("case_no", "")
        return page("status.html", status, **context)

    @router.get("/status", response_class=HTMLResponse, include_in_schema=False)
    def status_form() -> HTMLResponse:
        return status_page()

    @router.post("/status", response_class=HTMLResponse, include_in_schema=False)
    async def status_lookup(request: Request) -> HTMLResponse:
        client = request.client.host if request.client else "unknown"
        if not limiter.allow(client):
            return status_page(429, message="查询过于频繁，请一分钟后再试。")
        if int(request.headers.get("content-length") or 0) > MAX_STATUS_BODY:
            return status_page(413, message="请求内容过长。")
        form_data = await request.form()
        case_no = str(form_data.get("case_no") or "").strip().upper()
        last4 = str(form_data.get("phone_last4") or "").strip()
        shown_case_no = case_no if is_case_no(case_no) else ""
        if not is_case_no(case_no) or not is_phone_last4(last4):
            return status_page(200, message=NOT_FOUND_ZH, case_no=shown_case_no)
        policy, calendar = door.policy_and_calendar()

        def lookup() -> CaseStatus | None:
            with unit_of_work(door.read_engine) as session:
                return case_status_for_customer(session, case_no, last4, policy, calendar)

        result = await run_in_threadpool(lookup)
        if result is None:
            return status_page(200, message=NOT_FOUND_ZH, case_no=shown_case_no)
        upcoming = result.next_commitment
        before, after = upcoming.promise() if upcoming else ("", "")
        return status_page(
            result=result,
            case_no=case_no,
            received_at=customer_time(result.received_at, calendar.tz),
            next_at=customer_time(upcoming.due_at, calendar.tz) if upcoming else "",
            promise_before=before,  # the policy's customer wording around the due time, never the milestone's name
            promise_after=after,
        )

    return router
