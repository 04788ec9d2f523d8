"""The operators' entrance: ``create_app(settings=None, engine=None, clock=None)``; ``kefu up`` serves it with uvicorn
(``uvicorn kefu.desk.app:create_app --factory``) on ``KEFU_DESK_PORT``.

- ``/signin``, ``/signout``, ``/password`` (a one-time password must be changed before anything else): zh-CN
  pages; a session is a random token in an HttpOnly, SameSite=Lax cookie, kept hashed in Kefu's database with an
  absolute and an idle expiry (``kefu.models.signin``); wrong passwords lock a sign-in name for a while.
- ``/``: the signed-in person's waiting steps, the earliest due first, each linking to its run in the Prefect UI.
- ``/outbox``, ``/outbox/sms``: the local sinks' pages (``kefu.notifications.web``), for signed-in staff only.
- ``/prefect/…`` (the Prefect UI) and ``/api/…`` (its API, HTTP and WebSocket): ``kefu.desk.proxy``, signed-in
  staff only; resuming a case step records the signed-in person (``kefu.desk.steps``).

The pages pass through the intake's edge (``kefu.intake.edge``): body limits, security headers, and cross-site
form posts refused.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import AsyncIterator, Callable
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined
from sqlalchemy import Engine, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from kefu.desk.audit import audit, ensure_handler
from kefu.desk.proxy import PrefectProxy, Refusal, Signed, is_proxied
from kefu.engine.connection import prefect_auth_string
from kefu.intake.edge import BodyLimits, Edge
from kefu.models.db import default_engine, unit_of_work
from kefu.models.enums import Role
from kefu.models.people import Staff
from kefu.models.policy import current_policy
from kefu.models.signin import (
    PASSWORD_MIN_LENGTH,
    PasswordRefused,
    Rules,
    SignInRefused,
    change_password,
    end_session,
    session_person,
    sign_in,
    start_session,
)
from kefu.notifications.web import outbox_router
from kefu.settings import Settings, get_settings
from kefu.worktime.display import local_time

COOKIE = "kefu_desk"
MAX_FORM_BODY = 4096
STATIC = Path(__file__).resolve().parent / "static"
REPORT_FILE = re.compile(r"kefu-report-(?:weekly|monthly)-\d{4}-W?\d{2}\.(?P<kind>html|xlsx)")
REPORT_TYPES = {
    "html": "text/html; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
)
INTAKE_STATIC = Path(__file__).resolve().parent.parent / "intake" / "static"  # the outbox pages' style

Clock = Callable[[], dt.datetime]
_env = Environment(loader=PackageLoader("kefu.desk", "templates"), undefined=StrictUndefined, autoescape=True)

WRONG_ZH = "登录名或密码不正确。连续输错 {failures} 次，该登录名将被锁定 {minutes} 分钟。"
LOCKED_ZH = "登录失败次数过多，该登录名已被锁定，请在 {until}（北京时间）之后再试；如忘记密码请联系管理员。"
INACTIVE_ZH = "该账号已停用，不能登录。如有疑问请联系管理员。"
SIGNED_OUT_ZH = "您已退出登录。"
EXPIRED_ZH = "请先登录（会话已过期或尚未登录）。"


class SignInNeeded(Exception):
    """Raised by a page dependency: answer with a redirect to ``location``."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def rules(settings: Settings) -> Rules:
    return Rules(
        session=dt.timedelta(hours=settings.desk_session_hours),
        idle=dt.timedelta(minutes=settings.desk_session_idle_minutes),
        failures=settings.desk_lockout_failures,
        lock=dt.timedelta(minutes=settings.desk_lockout_minutes),
    )


def session_token(headers: Headers) -> str:
    cookie = SimpleCookie()
    try:
        cookie.load(headers.get("cookie", ""))
    except Exception:  # a malformed cookie header is no session
        return ""
    morsel = cookie.get(COOKIE)
    return morsel.value if morsel is not None else ""


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path on this site only."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _signed(person: Staff) -> Signed:
    return Signed(
        staff_id=person.id,
        login=person.login or str(person.id),
        name=person.name,
        one_time_password=person.password_one_time,
        administrator=Role.ADMIN in person.roles,
    )


def create_app(settings: Settings | None = None, engine: Engine | None = None, *, clock: Clock | None = None) -> Any:
    settings = settings or get_settings()
    the_engine = engine or default_engine()
    now: Clock = clock or (lambda: dt.datetime.now(dt.UTC))
    the_rules = rules(settings)
    ensure_handler()

    def client(request: Request) -> str:
        return request.client.host if request.client else "-"

    def lookup(token: str) -> Signed | None:
        with unit_of_work(the_engine) as session:
            person = session_person(session, token, now(), the_rules)
            return None if person is None else _signed(person)

    async def gate(scope: Scope) -> Signed | None:
        token = session_token(Headers(scope=scope))
        return await run_in_threadpool(lookup, token) if token else None

    async def resume_check(person: Signed, flow_run_id: str, run_input: dict[str, Any]) -> dict[str, Any]:
        run = await proxy.http.get(f"/api/flow_runs/{flow_run_id}", headers=proxy.upstream_headers(Headers(headers={})))
        if run.status_code != 200:
            raise Refusal(run.status_code, "找不到该流程运行。")
        parameters = run.json().get("parameters") or {}
        case_no = parameters.get("case_no") or parameters.get("code")  # a case, or a key-account onboarding
        from kefu.desk.steps import answer_as, enquiry_answer_as, feedback_answer_as  # paid on the first answer

        sheet_id = parameters.get("sheet_id")
        if case_no is None and isinstance(sheet_id, int):  # a staff assessment step (员工考核)
            from kefu.desk.steps import assessment_answer_as

            return await run_in_threadpool(
                assessment_answer_as, the_engine, person.staff_id, sheet_id, flow_run_id, run_input
            )
        enquiry_no = parameters.get("enquiry_no")
        if case_no is None and isinstance(enquiry_no, str):  # an enquiry run's step (咨询)
            return await run_in_threadpool(
                enquiry_answer_as, the_engine, person.staff_id, enquiry_no, flow_run_id, run_input
            )
        feedback_no = parameters.get("feedback_no")
        if case_no is None and isinstance(feedback_no, str):  # a feedback run's step (反馈与建议)
            return await run_in_threadpool(
                feedback_answer_as, the_engine, person.staff_id, feedback_no, flow_run_id, run_input
            )

        return await run_in_threadpool(
            answer_as,
            the_engine,
            person.staff_id,
            case_no if isinstance(case_no, str) else None,
            flow_run_id,
            run_input,
        )

    proxy = PrefectProxy(
        settings.prefect_api_url.rstrip("/").removesuffix("/api"),
        prefect_auth_string(settings),
        gate,
        resume_check,
        public_url=settings.desk_public_url,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await proxy.aclose()

    pages = FastAPI(lifespan=lifespan, title="Kefu desk", docs_url=None, redoc_url=None, openapi_url=None)

    @pages.exception_handler(SignInNeeded)
    async def redirect(_request: Request, exc: SignInNeeded) -> Response:
        return RedirectResponse(exc.location, status_code=303)

    async def signed_in(request: Request) -> Signed:
        person = await gate(request.scope)
        if person is None:
            raise SignInNeeded("/signin?next=" + request.url.path)
        return person

    async def ready(person: Signed = Depends(signed_in)) -> Signed:  # noqa: B008 - FastAPI's way
        if person.one_time_password:
            raise SignInNeeded("/password")
        return person

    def page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
        values.setdefault("person", None)
        values.setdefault("error", "")
        values.setdefault("notice", "")
        return HTMLResponse(_env.get_template(name).render(**values), status_code=status)

    def set_cookie(response: Response, token: str) -> None:
        response.set_cookie(
            COOKIE,
            token,
            max_age=int(the_rules.session.total_seconds()),
            httponly=True,
            samesite="lax",
            secure=settings.desk_cookie_secure,
            path="/",
        )

    @pages.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @pages.get("/signin", response_class=HTMLResponse)
    async def signin_form(request: Request, next: str = "/", out: int = 0) -> Response:
        if await gate(request.scope) is not None:
            return RedirectResponse(safe_next(next), status_code=303)
        notice = SIGNED_OUT_ZH if out else (EXPIRED_ZH if next != "/" else "")
        return page("signin.html", title="员工登录", next=safe_next(next), login="", notice=notice)

    @pages.post("/signin", response_class=HTMLResponse)
    async def signin(request: Request) -> Response:
        form = await request.form()
        login, password = str(form.get("login", "")), str(form.get("password", ""))
        target = safe_next(str(form.get("next", "/")))

        def attempt() -> tuple[str, bool] | SignInRefused:
            with unit_of_work(the_engine) as session:
                known = session.scalar(select(Staff.id).where(Staff.login == login.strip().lower()[:64]))
                try:
                    person = sign_in(session, login, password, now(), the_rules)
                except SignInRefused as refused:
                    event = {"wrong": "signin_failed", "inactive": "signin_inactive"}.get(refused.reason)
                    event = event or ("lockout" if refused.just_locked else "signin_locked")
                    audit(
                        event,
                        login,
                        known=known is not None,
                        client=client(request),
                        staff_id=known,
                        until=refused.until if refused.reason == "locked" else None,
                    )
                    return refused  # the failure count is committed
                token = start_session(session, person, now(), the_rules)
                audit("signin", login, known=True, client=client(request), staff_id=person.id)
                return token, person.password_one_time

        result = await run_in_threadpool(attempt)
        if isinstance(result, SignInRefused):
            if result.reason == "locked":
                error, status = LOCKED_ZH.format(until=local_time(result.until)), 429
            elif result.reason == "inactive":
                error, status = INACTIVE_ZH, 403
            else:
                error = WRONG_ZH.format(
                    failures=settings.desk_lockout_failures, minutes=f"{settings.desk_lockout_minutes:g}"
                )
                status = 401
            return page("signin.html", status, title="员工登录", next=target, login=login[:64], error=error)
        token, one_time = result
        response = RedirectResponse("/password" if one_time else target, status_code=303)
        set_cookie(response, token)
        return response

    @pages.post("/signout")
    async def signout(request: Request) -> Response:
        token = session_token(Headers(scope=request.scope))
        person = await gate(request.scope) if token else None
        if token:

            def end() -> None:
                with unit_of_work(the_engine) as session:
                    end_session(session, token, now())

            await run_in_threadpool(end)
        if person is not None:
            audit("signout", person.login, known=True, client=client(request), staff_id=person.staff_id)
        response = RedirectResponse("/signin?out=1", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @pages.get("/password", response_class=HTMLResponse)
    async def password_form(person: Signed = Depends(signed_in)) -> Response:  # noqa: B008
        return page(
            "password.html",
            title="修改密码",
            person=person,
            one_time=person.one_time_password,
            min_length=PASSWORD_MIN_LENGTH,
        )

    @pages.post("/password", response_class=HTMLResponse)
    async def password(request: Request, person: Signed = Depends(signed_in)) -> Response:  # noqa: B008
        form = await request.form()
        values = [str(form.get(k, "")) for k in ("current", "new", "repeated")]

        def change() -> str:
            with unit_of_work(the_engine) as session:
                staff = session.get(Staff, person.staff_id)
                assert staff is not None  # the session holds: the person exists and is active
                try:
                    change_password(session, staff, *values)
                except PasswordRefused as refused:
                    return str(refused)
            return ""

        error = await run_in_threadpool(change)
        audit(
            "password_refused" if error else "password_changed",
            person.login,
            known=True,
            client=client(request),
            staff_id=person.staff_id,
        )
        if error:
            return page(
                "password.html",
                400,
                title="修改密码",
                person=person,
                one_time=person.one_time_password,
                min_length=PASSWORD_MIN_LENGTH,
                error=error,
            )
        return RedirectResponse("/", status_code=303)

    @pages.get("/", response_class=HTMLResponse)
    async def start(person: Signed = Depends(ready)) -> Response:  # noqa: B008

        def read() -> tuple[Any, str]:
            from kefu.desk.steps import my_waiting_steps

            steps = my_waiting_steps(the_engine, person.staff_id, now())
            with unit_of_work(the_engine) as session:
                staff = session.get(Staff, person.staff_id)
                names = current_policy().roles.names
                roles = "、".join(names[r] for r in sorted(staff.roles)) if staff else ""
            return steps, roles

        steps, roles = await run_in_threadpool(read)
        return page("start.html", title="我的待办", person=person, steps=steps, roles=roles or "无角色")

    @pages.get("/cases", response_class=HTMLResponse)
    async def find_cases(q: str = "", person: Signed = Depends(ready)) -> Response:  # noqa: B008
        from kefu.desk.cases import search_cases

        def read() -> list[Any]:
            with unit_of_work(the_engine) as session:
                reader = session.get(Staff, person.staff_id)
                return search_cases(session, reader, q, current_policy()) if reader is not None else []

        hits = await run_in_threadpool(read) if q.strip() else []
        if len(hits) == 1 and q.strip():
            return RedirectResponse(f"/cases/{hits[0].case_no}", status_code=303)
        return page("search.html", title="查找案件", person=person, q=q[:100], hits=hits, searched=bool(q.strip()))

    @pages.get("/cases/{case_no}", response_class=HTMLResponse)
    async def show_case(case_no: str, person: Signed = Depends(ready)) -> Response:  # noqa: B008
        from kefu.desk.cases import case_page

        def read() -> Any:
            with unit_of_work(the_engine) as session:  # commits the access log's row of a full reading
                reader = session.get(Staff, person.staff_id)
                return case_page(session, reader, case_no, current_policy(), now()) if reader is not None else None

        view = await run_in_threadpool(read)
        if view is None:
            return page("search.html", 404, title="查找案件", person=person, q=case_no[:100], hits=[], searched=True)
        return page("case.html", title=f"案件 {view.case_no}", person=person, case=view)

    @pages.get("/reports/{name}")
    async def report_file(name: str, person: Signed = Depends(ready)) -> Response:  # noqa: B008
        """A statistics report's HTML or XLSX file from the reports folder (the report run's page links here)."""
        found = REPORT_FILE.fullmatch(name)
        path = settings.resolved_reports_dir / name
        if found is None or not path.is_file():
            return page("search.html", 404, title="报告文件", person=person, q="", hits=[], searched=False,
                        error=f"没有这份报告文件：{name[:100]}")  # fmt: skip
        # The report's own inline style and charts (no script); the entrance's pages allow none inline.
        headers = {"Content-Security-Policy": REPORT_CSP} if found["kind"] == "html" else {}
        return Response(path.read_bytes(), media_type=REPORT_TYPES[found["kind"]], headers=headers)

    if settings.mail_sink_enabled or settings.sms_provider == "sink":  # the embedded default's local sinks
        pages.include_router(outbox_router(settings, the_engine), dependencies=[Depends(ready)])
    pages.mount("/static/desk", StaticFiles(directory=STATIC), name="desk-static")
    pages.mount("/static", StaticFiles(directory=INTAKE_STATIC), name="static")

    edged = Edge(pages, limits=BodyLimits(default=MAX_FORM_BODY), allowed_origins=())
    return Entrance(edged, proxy, pages)


class Entrance:
    """``/api`` and ``/prefect`` to the proxy, everything else (lifespan included) to the pages."""

    def __init__(self, pages: Any, proxy: PrefectProxy, fastapi_app: FastAPI) -> None:
        self.pages, self.proxy, self.app = pages, proxy, fastapi_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in {"http", "websocket"} and is_proxied(scope["path"]):
            await self.proxy(scope, receive, send)
        else:
            await self.pages(scope, receive, send)
