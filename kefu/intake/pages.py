"""The customers' HTML pages: the complaint form (no JavaScript needed) with its confirmation, and the status page.

zh-CN, autoescaped. The confirmation shows the case number and the first time the policy promises the
customer, the status page the next one — both in the milestone's customer wording from the policy (never
the milestone's internal name), with times as customers read them (``customer_time``: 北京时间, to the
minute). The status page answers the same for "no such
case" and "wrong digits", and is rate limited per client and per case number (``limits``: shared by every intake
process). The form takes only posts that carry its one-time key; what it shows back of a refused post is bounded.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.concurrency import run_in_threadpool

from kefu.intake.frontdoor import UNAVAILABLE_ZH, FrontDoor, IntakeUnavailable
from kefu.intake.labels import FIELD_LABELS
from kefu.intake.limits import SharedRateLimit
from kefu.intake.service import IdempotencyKeyReused
from kefu.intake.status import CaseStatus, case_status_for_customer
from kefu.intake.validation import (
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
TOO_MANY_ZH = "查询过于频繁，请一分钟后再试。"
CASE_LOCKED_ZH = "该投诉编号的查询错误次数过多，为保护您的信息已暂停查询，请一小时后再试，或致电客服热线。"
NO_FORM_KEY_ZH = (
    "这次提交不是从本网站的投诉页面发出的（或页面不完整），没有保存任何内容。请核对下面的内容，再点一次「提交投诉」。"
)
ECHO_LIMIT = 4000  # characters of each field a refused form shows back: never more than the form can hold, twice


def pages_router(
    door: FrontDoor,
    *,
    status_rate_limit: tuple[int, float],
    case_rate_limit: tuple[int, float],
    router: APIRouter | None = None,
) -> APIRouter:
    """``/`` (the form and its confirmation) and ``/status`` (the status page), on ``router`` (default: a new one)."""
    router = router if router is not None else APIRouter()
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined)
    per_client = SharedRateLimit(door.engine, "status_client", *status_rate_limit, clock=door.now)
    per_case = SharedRateLimit(door.engine, "status_case", *case_rate_limit, clock=door.now)

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**context), status_code=status)

    # ---------------------------------------------------------------- the complaint form
    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def form() -> HTMLResponse:
        return page("form.html", errors=[], values={}, labels=FIELD_LABELS, form_key=uuid.uuid4().hex)

    @router.post("/", response_class=HTMLResponse, include_in_schema=False)
    async def submit_form(request: Request) -> Response:
        # The edge has limited the body (MAX_FORM_BODY read at most) and refused other sites' posts.
        form_data = await request.form()
        fields = {k: v for k, v in form_data.items() if isinstance(v, str) and k in FIELD_LABELS}
        values = {k: v[:ECHO_LIMIT] for k, v in fields.items()}  # what a refused post shows back
        form_key = str(form_data.get("form_key") or "")
        if not is_form_key(form_key):  # not from our form page: nothing is registered
            return page(
                "form.html",
                400,
                notice=NO_FORM_KEY_ZH,
                errors=[],
                values=values,
                labels=FIELD_LABELS,
                form_key=uuid.uuid4().hex,
            )
        received_at = door.now()
        if form_data.get("kind") == "enquiry":  # 咨询: recorded as an enquiry (the form's default is a complaint)
            return await run_in_threadpool(enquiry_page, fields, values, form_key)
        try:
            submission = validate_submission(fields, now=received_at, timezone=door.timezone)
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

    def enquiry_page(fields: dict[str, str], values: dict[str, str], form_key: str) -> HTMLResponse:
        """The 咨询 choice: the enquiry recorded (once per form key) and its number and promise shown; a refusal
        shows the form again with the reasons, nothing stored."""
        from kefu.intake.enquiries import take_enquiry
        from kefu.tasks.enquiries import EnquiryRefused

        try:
            taken = take_enquiry(
                door,
                name=fields.get("name", ""),
                phone=fields.get("phone", ""),
                content=fields.get("content", ""),
                email=fields.get("email"),
                channel=Channel.WEB,
                key=f"web-enquiry:{form_key}",
                received_at=door.now(),
            )
        except EnquiryRefused as refused:
            notice = "提交未成功：" + "；".join(part.split(" / ")[0] for part in str(refused).split("；")) + "。"
            values = {**values, "kind": "enquiry"}
            return page("form.html", 422, notice=notice, errors=[], values=values, labels=FIELD_LABELS,
                        form_key=form_key)  # fmt: skip
        tz = door.timezone
        return page(
            "enquiry_confirmation.html",
            enquiry_no=taken.enquiry_no,
            received_at=customer_time(taken.received_at, tz),
            due_at=customer_time(taken.due_at, tz),
            cross_department=taken.cross_department,
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
        # The client as the connection (or a configured proxy) says, never as a request header claims.
        client = request.client.host if request.client else "unknown"
        if not await run_in_threadpool(per_client.hit, client):
            return status_page(429, message=TOO_MANY_ZH)
        form_data = await request.form()  # the edge has limited the body to MAX_STATUS_BODY
        case_no = str(form_data.get("case_no") or "").strip().upper()
        last4 = str(form_data.get("phone_last4") or "").strip()
        shown_case_no = case_no if is_case_no(case_no) else ""
        if not is_case_no(case_no) or not is_phone_last4(last4):
            return status_page(200, message=NOT_FOUND_ZH, case_no=shown_case_no)
        # Every guess at one case counts, from whichever client; a right one is given back below.
        if not await run_in_threadpool(per_case.hit, case_no):
            return status_page(429, message=CASE_LOCKED_ZH, case_no=shown_case_no)
        policy, calendar = door.policy_and_calendar()

        def lookup() -> CaseStatus | None:
            with unit_of_work(door.read_engine) as session:
                return case_status_for_customer(session, case_no, last4, policy, calendar)

        result = await run_in_threadpool(lookup)
        if result is None:
            return status_page(200, message=NOT_FOUND_ZH, case_no=shown_case_no)
        await run_in_threadpool(per_case.refund, case_no)
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
