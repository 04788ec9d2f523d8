"""The intake's edge: what every request and answer passes through before the pages and the API see it.

A pure ASGI middleware (``Edge``), innermost-but-one (inside Starlette's error middleware, outside the routes):

- **Bodies are limited by what is read, not what is declared.** Each route has a byte limit (``BodyLimits``); a
  declared ``Content-Length`` over it is refused before reading, and a body that grows past it while being read
  (chunked, or a lying length) stops the read: whatever the route would have answered is dropped and the client
  gets 413 — a short zh-CN page, or the API's JSON error list. Nothing is processed from an oversize body.
- **Cross-site form posts are refused.** A ``POST`` outside the API whose ``Origin`` is another site (or
  ``null``), or whose ``Sec-Fetch-Site`` says it came from another site, gets a friendly zh-CN page (403) and
  reaches no route. Other origins can be allowed (``KEFU_INTAKE_ALLOWED_ORIGINS``).
- **Security headers on every answer**: a Content-Security-Policy without inline script or style (the pages'
  style is a file, the form works without JavaScript), ``frame-ancestors 'none'``, ``nosniff``, no referrer,
  and ``Cache-Control: no-store`` on everything but static files — the pages carry a one-time form key or a
  case's details, the API's answers case data.
- **HEAD is answered wherever GET is** (the GET route runs, its body is not sent), for uptime monitors.
"""

from __future__ import annotations

import contextlib
import html
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
# Swagger UI (the gateway API's docs, no customer data) sets style attributes from its own script bundle.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
API_PREFIX = "/api/"
STATIC_PREFIX = "/static/"
DOCS_PATHS = ("/docs",)

TOO_LARGE_ZH = "提交的内容太长了（超过 {limit} 字节），系统没有处理。请精简后再提交。"
CROSS_SITE_ZH = (
    "为了保护您的信息，本系统只受理从本网站页面提交的表单，这次提交来自其他网站，已被拒绝，没有保存任何内容。"
    "如需投诉或查询进度，请直接打开本网站的页面重新填写。"
)


class BodyTooLarge(Exception):
    """Raised from ``receive`` when a body grows past its route's limit; the edge answers 413."""


@dataclass(frozen=True)
class BodyLimits:
    """Bytes read at most per request: ``exact`` paths first, then the longest matching ``prefixes``, else
    ``default``."""

    default: int
    exact: Mapping[str, int] = field(default_factory=dict)
    prefixes: Mapping[str, int] = field(default_factory=dict)

    def for_path(self, path: str) -> int:
        if path in self.exact:
            return self.exact[path]
        matches = [p for p in self.prefixes if path.startswith(p)]
        return self.prefixes[max(matches, key=len)] if matches else self.default


def _page(title: str, message: str) -> bytes:
    return (
        '<!doctype html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{html.escape(title)} · 客服中心</title><link rel="stylesheet" href="/static/intake.css"></head>'
        f'<body><nav><a href="/">提交投诉</a><a href="/status">查询处理进度</a></nav><h1>{html.escape(title)}</h1>'
        f'<div class="errors" role="alert"><p id="edge-message">{html.escape(message)}</p></div></body></html>\n'
    ).encode()


def _json_error(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"field": None, "code": code, "message": message}]}, ensure_ascii=False).encode()


class Edge:
    """See the module docstring. ``allowed_origins``: other sites' origins (``https://host[:port]``) whose
    pages may post forms here."""

    def __init__(self, app: ASGIApp, *, limits: BodyLimits, allowed_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.limits = limits
        self.allowed_origins = {o.rstrip("/").lower() for o in allowed_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        head = scope["method"] == "HEAD"
        if head:
            scope = {**scope, "method": "GET"}
        headers = Headers(scope=scope)
        api = path.startswith(API_PREFIX)
        respond = _Responder(send, path, head)
        if scope["method"] == "POST" and not api and self._cross_site(headers):
            await respond.page(403, "无法受理来自其他网站的提交", CROSS_SITE_ZH)
            return
        limit = self.limits.for_path(path)
        declared = headers.get("content-length")
        if declared is not None and (not declared.strip().isdigit() or int(declared) > limit):
            await respond.too_large(api, limit)
            return
        received = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise BodyTooLarge
            return message

        async def edge_send(message: Message) -> None:
            if too_large:
                return  # the route's answer to a body it never got whole is replaced by the 413 below
            await respond.send(message)

        with contextlib.suppress(BodyTooLarge):  # raised by limited_receive, through a route that did not catch it
            await self.app(scope, limited_receive, edge_send)
        if too_large and not respond.started:
            await respond.too_large(api, limit)

    def _cross_site(self, headers: Headers) -> bool:
        origin = headers.get("origin")
        if origin is not None:
            origin = origin.strip().rstrip("/").lower()
            if origin in self.allowed_origins:
                return False
            host = (headers.get("host") or "").strip().lower()
            return not host or urlsplit(origin).netloc != host
        site = headers.get("sec-fetch-site")
        return site is not None and site.strip().lower() not in {"same-origin", "none"}


class _Responder:
    """Sends the answer with the edge's headers (and without a body for HEAD)."""

    def __init__(self, send: Send, path: str, head: bool) -> None:
        self._send, self.path, self.head = send, path, head
        self.started = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self._secure(MutableHeaders(scope=message))
        elif message["type"] == "http.response.body" and self.head:
            message = {**message, "body": b""}
        await self._send(message)

    def _secure(self, headers: MutableHeaders) -> None:
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")  # no-referrer would make browsers send Origin: null
        if not self.path.startswith(STATIC_PREFIX):
            headers.setdefault("Cache-Control", "no-store")
        if headers.get("content-type", "").startswith("text/html"):
            headers.setdefault("Content-Security-Policy", DOCS_CSP if self.path in DOCS_PATHS else PAGE_CSP)
            headers.setdefault("X-Frame-Options", "DENY")

    async def _answer(self, status: int, body: bytes, content_type: str) -> None:
        await self.send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),  # what the client still sends is not read
                ],
            }
        )
        await self.send({"type": "http.response.body", "body": body})

    async def page(self, status: int, title: str, message: str) -> None:
        await self._answer(status, _page(title, message), "text/html; charset=utf-8")

    async def too_large(self, api: bool, limit: int) -> None:
        if api:
            body = _json_error("payload_too_large", f"请求体不能超过 {limit} 字节")
            await self._answer(413, body, "application/json")
        else:
            await self.page(413, "提交的内容太长", TOO_LARGE_ZH.format(limit=limit))
