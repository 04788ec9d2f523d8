"""The authenticating reverse proxy in front of the Prefect UI and API (HTTP, streamed, and WebSocket).

Only signed-in staff get through (``Gate``); the proxy adds Prefect's API auth string on the way (HTTP basic auth,
and the token of a WebSocket's first ``auth`` message) — the browser never sees it. What it changes on the way:

- ``/prefect/ui-settings`` (where the UI learns its API address and whether to ask for Prefect's own password):
  the API is the entrance's ``/api`` and no password is asked (the auth string is the proxy's business).
- ``POST /api/flow_runs/{id}/resume`` of a waiting case step (``kefu.desk.steps``): the step's
  ``actor_staff_id`` becomes the signed-in person whatever the form says, and a person whose roles may not answer
  the step gets a 403 with a zh-CN ``detail`` (what the Prefect UI shows) while nothing is forwarded.
- A step's form (its input schema, ``GET /api/flow_runs/{id}/input/…-schema``) loses its ``actor_staff_id`` field:
  the form does not ask who answers, the proxy fills it in.
- Writing or deleting a run's inputs (``POST /api/flow_runs/{id}/input``, ``DELETE …/input/{key}``: an answer
  around the resume) is refused.
- A change (POST, PUT, PATCH, DELETE) whose ``Origin`` is another site is refused (Prefect's CSRF token is
  checked as well: the UI fetches it through the proxy like any other request).
- Every other change is the administrators' (role ``admin``): a run's state set by hand (a case run cancelled or
  marked completed would leave its complaint without a live process), a run or deployment deleted, a deployment,
  work pool, automation, block or variable changed. What every signed-in person sends are reads the UI makes as
  POST (``…/filter``, ``…/paginate``, ``…/count``, ``…/history``, ``/api/ui/…``) and the resume of a step.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from kefu.engine.connection import basic_header
from kefu.settings import PREFECT_UI_BASE

API_PREFIX = "/api"
MAX_BODY = 16 * 1024 * 1024
CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
RESUME = re.compile(r"^/api/flow_runs/([0-9a-fA-F-]{36})/resume/?$")
# The reads the Prefect UI sends as POST: open to every signed-in person (any other change: administrators only).
READ_BY_POST = re.compile(r"^/api/(ui/.+|(.+/)?(filter|paginate|count|history|lateness)/?|events/count-by/\w+/?)$")
# Writing or deleting a run's inputs (an answer included) around the resume; reading them (``…/input/filter``) stays.
RUN_INPUT_WRITE = re.compile(r"^/api/flow_runs/[0-9a-fA-F-]{36}/input(/(?!filter/?$)[^/]+)?/?$")
STEP_SCHEMA = re.compile(r"^/api/flow_runs/[0-9a-fA-F-]{36}/input/[^/]+-schema$")
ACTOR_FIELD = "actor_staff_id"  # the field of every step form naming who answers (kefu.flows.complaint_case)
# Not passed on in either direction: hop-by-hop headers, the browser's cookies and credentials (the session
# cookie is the entrance's, the credentials are the proxy's own).
DROPPED_REQUEST = frozenset(
    {
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "cookie",
        "authorization",
        "content-length",
        "proxy-authorization",
        "origin",
        "referer",
    }
)
DROPPED_RESPONSE = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "trailer", "upgrade", "set-cookie", "date", "server"}
)

NOT_SIGNED_IN_ZH = "请先登录员工入口（会话已过期或尚未登录）。"
ONE_TIME_PASSWORD_ZH = "请先修改一次性密码，再使用系统。"  # noqa: S105 - a message, not a password
CROSS_SITE_ZH = "只受理从本系统页面发出的操作，这次请求来自其他网站，已被拒绝。"
RUN_INPUT_ZH = "不能直接写入流程运行的输入；请在步骤表单中提交。"
ADMIN_ONLY_ZH = (
    "此操作（更改流程运行的状态、删除运行，或更改部署、工作池、自动化等设置）仅限系统管理员。"
    "处理案件请在步骤表单中提交。"
)


@dataclass(frozen=True)
class Signed:
    """The signed-in person a request comes from."""

    staff_id: int
    login: str
    name: str
    one_time_password: bool
    administrator: bool = False  # holds the role ``admin``: may change what the UI's other buttons change


class Refusal(Exception):
    """An answer the proxy gives instead of forwarding: status and a zh-CN message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


# Who a request comes from (None: nobody signed in), from the request's scope.
Gate = Callable[[Scope], Awaitable[Signed | None]]
# Checks a resume answer: (person, flow run id, run input) -> the run input to forward, or ``Refusal``.
ResumeCheck = Callable[[Signed, str, dict[str, Any]], Awaitable[dict[str, Any]]]


def is_proxied(path: str) -> bool:
    return any(path == base or path.startswith(base + "/") for base in (API_PREFIX, PREFECT_UI_BASE))


def cross_site(headers: Headers) -> bool:
    origin = headers.get("origin")
    if origin is None:
        site = headers.get("sec-fetch-site")
        return site is not None and site.strip().lower() not in {"same-origin", "none"}
    host = (headers.get("host") or "").strip().lower()
    return not host or urlsplit(origin.strip().lower()).netloc != host


class PrefectProxy:
    """An ASGI app forwarding ``/api`` and ``/prefect`` to the Prefect server at ``upstream`` (its root URL)."""

    def __init__(
        self,
        upstream: str,
        auth_string: str | None,
        gate: Gate,
        resume_check: ResumeCheck,
        *,
        public_url: str = "",
        timeout: float = 60.0,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.auth_string = auth_string
        self.gate = gate
        self.resume_check = resume_check
        self.public_url = public_url.rstrip("/")
        self.http = httpx.AsyncClient(
            base_url=self.upstream, timeout=httpx.Timeout(timeout, connect=10.0), follow_redirects=False
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path: str = scope["path"]
        api = path == API_PREFIX or path.startswith(API_PREFIX + "/")
        try:
            person = await self.gate(scope)
            if person is None:
                raise Refusal(401, NOT_SIGNED_IN_ZH)
            if person.one_time_password:
                raise Refusal(403, ONE_TIME_PASSWORD_ZH)
            method = scope["method"]
            if method in CHANGES and cross_site(headers):
                raise Refusal(403, CROSS_SITE_ZH)
            if method in CHANGES and RUN_INPUT_WRITE.match(path):
                raise Refusal(403, RUN_INPUT_ZH)
            resume = RESUME.match(path)
            if api and method in CHANGES and not (resume or READ_BY_POST.match(path) or person.administrator):
                raise Refusal(403, ADMIN_ONLY_ZH)
            body = await _read_body(receive)
            if method == "POST" and resume:
                body = await self._checked_resume(person, resume.group(1), body)
        except Refusal as refused:
            if not api and refused.status == 401:
                await _redirect(send, "/signin?next=" + quote(_full_path(scope), safe="/"))
            elif not api and refused.status == 403 and refused.message == ONE_TIME_PASSWORD_ZH:
                await _redirect(send, "/password")
            else:
                await _json(send, refused.status, {"detail": refused.message})
            return
        if path == f"{PREFECT_UI_BASE}/ui-settings":
            await self._ui_settings(scope, headers, send)
            return
        if scope["method"] == "GET" and STEP_SCHEMA.match(path):
            await self._step_schema(scope, headers, send)
            return
        await self._forward(scope, headers, body, send)

    def upstream_headers(self, headers: Headers, *, identity: bool = False) -> list[tuple[str, str]]:
        out = [(k, v) for k, v in headers.items() if k.lower() not in DROPPED_REQUEST]
        if "accept-encoding" not in headers:  # else httpx asks for gzip, which the client never said it reads
            out.append(("accept-encoding", "identity"))
        if identity:
            out = [(k, v) for k, v in out if k.lower() != "accept-encoding"] + [("accept-encoding", "identity")]
        if self.auth_string is not None:
            out.append(("authorization", basic_header(self.auth_string)))
        return out

    async def _checked_resume(self, person: Signed, flow_run_id: str, body: bytes) -> bytes:
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            raise Refusal(400, "提交的内容不是有效的 JSON。") from None
        if not isinstance(payload, dict):
            raise Refusal(400, "提交的内容不是有效的 JSON 对象。")
        run_input = payload.get("run_input")
        run_input = run_input if isinstance(run_input, dict) else {}
        payload["run_input"] = await self.resume_check(person, flow_run_id, run_input)
        return json.dumps(payload, ensure_ascii=False).encode()

    async def _forward(self, scope: Scope, headers: Headers, body: bytes, send: Send) -> None:
        request = self.http.build_request(
            scope["method"],
            _full_path(scope),
            headers=self.upstream_headers(headers),
            content=body if body or scope["method"] in CHANGES else None,
        )
        try:
            response = await self.http.send(request, stream=True)
        except httpx.HTTPError:
            await _json(send, 502, {"detail": "流程引擎（Prefect 服务器）暂时没有响应，请稍后再试。"})
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": self._response_headers(response.headers.multi_items()),
                }
            )
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    async def _ui_settings(self, scope: Scope, headers: Headers, send: Send) -> None:
        """The UI's settings with the entrance as its API and no password prompt of Prefect's own."""
        try:
            response = await self.http.get(_full_path(scope), headers=self.upstream_headers(headers, identity=True))
        except httpx.HTTPError:
            await _json(send, 502, {"detail": "流程引擎（Prefect 服务器）暂时没有响应，请稍后再试。"})
            return
        if response.status_code != 200:
            await _json(send, response.status_code, response.json())
            return
        settings = response.json()
        origin = self.public_url or f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"
        settings["api_url"] = f"{origin}{API_PREFIX}"
        settings["auth"] = None
        await _json(send, 200, settings)

    async def _step_schema(self, scope: Scope, headers: Headers, send: Send) -> None:
        """A step's form without the field naming who answers (the signed-in person does)."""
        try:
            response = await self.http.get(_full_path(scope), headers=self.upstream_headers(headers, identity=True))
        except httpx.HTTPError:
            await _json(send, 502, {"detail": "流程引擎（Prefect 服务器）暂时没有响应，请稍后再试。"})
            return
        body = response.content
        with contextlib.suppress(ValueError):
            schema = json.loads(body)
            properties = schema.get("properties") if isinstance(schema, dict) else None
            if response.status_code == 200 and isinstance(properties, dict) and ACTOR_FIELD in properties:
                del properties[ACTOR_FIELD]
                schema["required"] = [f for f in schema.get("required", []) if f != ACTOR_FIELD]
                body = json.dumps(schema, ensure_ascii=False).encode()
        content_type = response.headers.get("content-type", "text/plain; charset=utf-8")
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": [
                    (b"content-type", content_type.encode("latin-1")),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                    (b"x-content-type-options", b"nosniff"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        import websockets
        from websockets.asyncio.client import connect

        socket = WebSocket(scope, receive, send)
        person = await self.gate(scope)
        if person is None or person.one_time_password or cross_site(socket.headers):
            await socket.close(code=1008, reason="not signed in")
            return
        offered = [p.strip() for h in socket.headers.getlist("sec-websocket-protocol") for p in h.split(",") if p]
        url = "ws" + self.upstream.removeprefix("http") + _full_path(scope)
        try:
            upstream = await connect(
                url,
                subprotocols=[websockets.Subprotocol(p) for p in offered] or None,
                additional_headers={"Authorization": basic_header(self.auth_string)} if self.auth_string else None,
                open_timeout=10,
            )
        except (OSError, websockets.WebSocketException, TimeoutError):
            await socket.close(code=1011, reason="upstream unavailable")
            return
        await socket.accept(subprotocol=upstream.subprotocol)
        first = True

        async def client_to_upstream() -> None:
            nonlocal first
            while True:
                message = await socket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                text, data = message.get("text"), message.get("bytes")
                if text is not None:
                    if first:
                        text = self._with_auth(text)
                    await upstream.send(text)
                elif data is not None:
                    await upstream.send(data)
                first = False

        async def upstream_to_client() -> None:
            async for message in upstream:
                if isinstance(message, str):
                    await socket.send_text(message)
                else:
                    await socket.send_bytes(message)

        tasks = [asyncio.create_task(client_to_upstream()), asyncio.create_task(upstream_to_client())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, websockets.WebSocketException, WebSocketDisconnect):
                    await task
            code, reason = upstream.close_code, upstream.close_reason
            await upstream.close()
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await socket.close(code=code or 1000, reason=reason or "")

    def _response_headers(self, items: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
        return _response_headers(items, self.upstream)

    def _with_auth(self, text: str) -> str:
        """A WebSocket's first message, Prefect's ``auth``: its token becomes the auth string."""
        try:
            message = json.loads(text)
        except ValueError:
            return text
        if isinstance(message, dict) and message.get("type") == "auth":
            message["token"] = self.auth_string
            return str(json.dumps(message))
        return text


def _full_path(scope: Scope) -> str:
    query: str = scope.get("query_string", b"").decode("latin-1")
    path: str = scope["path"]
    return path + (f"?{query}" if query else "")


def _response_headers(items: list[tuple[str, str]], upstream: str) -> list[tuple[bytes, bytes]]:
    """The upstream's headers for the browser: hop-by-hop ones dropped, a redirect to the upstream's own address
    made relative (the browser stays on the entrance), the entrance's security headers added where missing."""
    out: list[tuple[bytes, bytes]] = []
    for name, value in items:
        if name.lower() in DROPPED_RESPONSE:
            continue
        if name.lower() == "location" and value.startswith(upstream):
            value = value.removeprefix(upstream) or "/"
        out.append((name.lower().encode(), value.encode("latin-1")))
    names = {k for k, _ in out}
    for header in (
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"x-frame-options", b"DENY"),
    ):
        if header[0] not in names:
            out.append(header)
    return out


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise Refusal(413, "提交的内容太长。")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _json(send: Send, status: int, body: Any) -> None:
    data = json.dumps(body, ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", str(len(data)).encode()),
                (b"cache-control", b"no-store"),
                (b"x-content-type-options", b"nosniff"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def _redirect(send: Send, location: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", location.encode()), (b"content-length", b"0"), (b"cache-control", b"no-store")],
        }
    )
    await send({"type": "http.response.body", "body": b""})
