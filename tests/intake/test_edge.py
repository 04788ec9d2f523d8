"""The front door's edge (issue 18): limits on the bytes actually read, cross-site form posts refused, security
headers on every page, HEAD wherever GET, 415 for non-JSON API bodies, malformed bodies answered 422, invisible
format characters refused, and the API docs served from the installed package."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from kefu.intake.app import create_app
from kefu.models import Complaint
from tests.intake.test_form import FORM, case_no, form_key
from tests.support.clock import FixedClock
from tests.support.samples import AUTH, complaint_json, intake_settings

AS_JSON = {**AUTH, "Content-Type": "application/json"}
URLENCODED = {"Content-Type": "application/x-www-form-urlencoded"}


def complaints(engine: Engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(Complaint)) or 0


async def chunked(data: bytes, size: int = 16_384) -> AsyncIterator[bytes]:
    """A body sent in chunks with no Content-Length, as a client streaming it would."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def urlencoded(fields: dict[str, str]) -> bytes:
    return str(httpx.QueryParams(fields)).encode()


# ---------------------------------------------------------------- limits on what is read
async def test_a_chunked_oversize_form_post_is_refused_and_registers_nothing(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    key = form_key((await client.get("/")).text)
    body = urlencoded({**FORM, "form_key": key, **{f"pad{i}": "x" * 500_000 for i in range(4)}})  # 2 MB
    response = await client.post("/", content=chunked(body), headers=URLENCODED)
    assert response.status_code == 413
    assert "提交的内容太长了" in response.text and len(response.content) < 4096
    assert complaints(engine) == 0


async def test_a_chunked_oversize_status_lookup_is_refused(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/v1/complaints", json=complaint_json(), headers=AUTH)
    body = urlencoded({"case_no": created.json()["case_no"], "phone_last4": "8000", "pad": "y" * 100_000})
    response = await client.post("/status", content=chunked(body), headers=URLENCODED)
    assert response.status_code == 413
    assert 'id="status-result"' not in response.text


async def test_a_declared_oversize_body_is_refused_before_reading(client: httpx.AsyncClient) -> None:
    response = await client.post("/status", content=b"x" * 5000, headers=URLENCODED)
    assert response.status_code == 413
    api = await client.post("/api/v1/complaints", content=chunked(b"[" + b"1," * 20_000 + b"1]"), headers=AS_JSON)
    assert api.status_code == 413 and api.json()["errors"][0]["code"] == "payload_too_large"


async def test_a_refused_form_shows_back_only_a_bounded_excerpt(client: httpx.AsyncClient, engine: Engine) -> None:
    key = form_key((await client.get("/")).text)
    response = await client.post("/", data={**FORM, "name": "x" * 25_000, "form_key": key})  # under the 32 KiB limit
    assert response.status_code == 422
    assert "姓名最多50个字，现在有25000个字" in response.text  # counted on all of it
    assert "x" * 4000 in response.text and "x" * 4001 not in response.text and len(response.content) < 12_000
    assert complaints(engine) == 0


# ---------------------------------------------------------------- cross-site posts and the form key
@pytest.mark.parametrize(
    "headers",
    [{"Origin": "https://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}],
    ids=["foreign-origin", "null-origin", "sec-fetch-site"],
)
async def test_cross_site_form_posts_are_refused_with_a_friendly_page(
    client: httpx.AsyncClient, engine: Engine, headers: dict[str, str]
) -> None:
    key = form_key((await client.get("/")).text)
    response = await client.post("/", data={**FORM, "form_key": key}, headers=headers)
    assert response.status_code == 403
    assert "只受理从本网站页面提交的表单" in response.text and "没有保存任何内容" in response.text
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    assert complaints(engine) == 0
    same_site = await client.post(
        "/", data={**FORM, "form_key": key}, headers={"Origin": "http://intake.test", "Sec-Fetch-Site": "same-origin"}
    )
    assert same_site.status_code == 200 and case_no(same_site.text)


async def test_an_allowed_origin_may_post_the_form(engine: Engine, clock: FixedClock) -> None:
    app = create_app(intake_settings(intake_allowed_origins=["https://www.example.com"]), engine, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake.test") as http:
        key = form_key((await http.get("/")).text)
        ok = await http.post("/", data={**FORM, "form_key": key}, headers={"Origin": "https://www.example.com"})
        other = await http.post("/", data={**FORM, "form_key": key}, headers={"Origin": "https://www.example.org"})
    assert ok.status_code == 200 and other.status_code == 403


async def test_a_form_post_without_the_form_key_registers_nothing(client: httpx.AsyncClient, engine: Engine) -> None:
    response = await client.post("/", data=FORM)
    assert response.status_code == 400
    assert "没有保存任何内容" in response.text and FORM["content"] in response.text  # typed text kept
    assert complaints(engine) == 0
    again = await client.post("/", data={**FORM, "form_key": form_key(response.text)})  # the page's own key
    assert again.status_code == 200 and complaints(engine) == 1


# ---------------------------------------------------------------- headers and HEAD
PAGE_CSP_PARTS = ["default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"]


@pytest.fixture
async def with_outbox(engine: Engine, clock: FixedClock, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(intake_settings(mail_sink_enabled=True, var_dir=tmp_path / "var"), engine, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake.test") as http:
        yield http


async def test_every_html_page_carries_the_security_headers_and_no_inline_code(
    with_outbox: httpx.AsyncClient,
) -> None:
    http = with_outbox
    key = form_key((await http.get("/")).text)
    confirmation = await http.post("/", data={**FORM, "form_key": key})
    pages = {
        "form": await http.get("/"),
        "status": await http.get("/status"),
        "confirmation": confirmation,
        "refused form": await http.post(
            "/", data={**FORM, "phone": "12", "form_key": form_key((await http.get("/")).text)}
        ),
        "status result": await http.post(
            "/status", data={"case_no": case_no(confirmation.text), "phone_last4": "7000"}
        ),
        "too large": await http.post("/status", content=b"x" * 5000, headers=URLENCODED),
        "cross-site": await http.post("/", data=FORM, headers={"Origin": "https://evil.example"}),
    }
    assert 'id="status-result"' in pages["status result"].text
    for name, page in pages.items():
        assert page.headers["content-type"].startswith("text/html"), name
        csp = page.headers.get("content-security-policy", "")
        assert all(part in csp for part in PAGE_CSP_PARTS) and "unsafe-inline" not in csp, (name, csp)
        assert page.headers.get("x-content-type-options") == "nosniff", name
        assert page.headers.get("referrer-policy") == "same-origin", name
        assert page.headers.get("cache-control") == "no-store", name  # form keys and case details
        assert "<script" not in page.text and "<style" not in page.text and " style=" not in page.text, name
        for sheet in re.findall(r'<link rel="stylesheet" href="([^"]+)"', page.text):
            css = await http.get(sheet)
            assert css.status_code == 200 and css.headers["content-type"].startswith("text/css"), sheet


async def test_head_is_answered_wherever_get_is(with_outbox: httpx.AsyncClient) -> None:
    for url in ["/", "/status", "/healthz", "/docs", "/static/intake.css"]:
        get, head = await with_outbox.get(url), await with_outbox.head(url)
        assert head.status_code == get.status_code == 200, url
        assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"], url


# ---------------------------------------------------------------- the API's bodies
@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/x-www-form-urlencoded", None])
async def test_the_api_answers_415_for_anything_but_json(
    client: httpx.AsyncClient, engine: Engine, content_type: str | None
) -> None:
    import json

    headers = {**AUTH, "Content-Type": content_type} if content_type else AUTH
    response = await client.post("/api/v1/complaints", content=json.dumps(complaint_json()).encode(), headers=headers)
    assert response.status_code == 415
    assert response.json()["errors"][0]["code"] == "unsupported_media_type"
    assert complaints(engine) == 0
    charset = await client.post(
        "/api/v1/complaints", json=complaint_json(), headers={**AUTH, "Content-Type": "application/json; charset=utf-8"}
    )
    assert charset.status_code == 201


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 7000, "嵌套过深"),
        (b'{"":' * 3000 + b"1" + b"}" * 3000, "嵌套过深"),  # 15 KB, under the limit
        (b'{"order_amount": ' + b"9" * 5000 + b"}", "数字过长"),
        (b'{"name": "\xff\xfe"}', "UTF-8"),
    ],
    ids=["deep-list", "deep-object", "5000-digit-number", "invalid-utf8"],
)
async def test_malformed_api_bodies_answer_422_with_the_error_list(
    client: httpx.AsyncClient, engine: Engine, body: bytes, message: str
) -> None:
    response = await client.post("/api/v1/complaints", content=body, headers=AS_JSON)
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["code"] == "invalid_json" and message in error["message"]
    assert complaints(engine) == 0


async def test_a_5000_digit_amount_as_text_is_a_field_error(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/complaints", json=complaint_json(order_amount="9" * 5000), headers=AUTH)
    assert response.status_code == 422
    assert [e["code"] for e in response.json()["errors"]] == ["out_of_range"]


# ---------------------------------------------------------------- invisible format characters
@pytest.mark.parametrize(
    "name", ["用户\u202egnp.exe\u202c", "张\u200b三", "李\u2066四\u2069", "\ufeff王五", "赵\u200f六", "钱\u00ad七"]
)
async def test_names_with_invisible_format_characters_are_refused(
    client: httpx.AsyncClient, engine: Engine, name: str
) -> None:
    response = await client.post("/api/v1/complaints", json=complaint_json(name=name), headers=AUTH)
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["field"] == "name" and error["code"] == "format_characters" and "格式字符" in error["message"]
    key = form_key((await client.get("/")).text)
    page = await client.post("/", data={**FORM, "place": f"上海{name}", "form_key": key})
    assert page.status_code == 422 and "看不见的格式字符" in page.text
    assert complaints(engine) == 0


async def test_an_emoji_sequence_in_the_content_is_kept(client: httpx.AsyncClient) -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    response = await client.post(
        "/api/v1/complaints", json=complaint_json(content=f"一家人{family}等了三天也没收到快递。"), headers=AUTH
    )
    assert response.status_code == 201


# ---------------------------------------------------------------- the API docs
async def test_the_api_docs_load_swagger_from_the_package_not_a_cdn(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert assets and all(a.startswith("/static/") for a in assets), assets
    assert "<script>" not in docs.text  # no inline script: the page's CSP allows none
    assert "script-src 'self';" in docs.headers["content-security-policy"]
    for asset in assets:
        served = await client.get(asset)
        assert served.status_code == 200 and len(served.content) > 50, asset
    bundle = await client.get("/static/swagger/swagger-ui-bundle.js")
    assert b"SwaggerUIBundle" in bundle.content
    assert (await client.get("/openapi.json")).json()["paths"]["/api/v1/complaints"]


async def test_the_api_docs_can_be_turned_off(engine: Engine, clock: FixedClock) -> None:
    app = create_app(intake_settings(intake_api_docs=False), engine, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake.test") as http:
        assert (await http.get("/docs")).status_code == 404
        assert (await http.get("/openapi.json")).status_code == 404
        assert (await http.post("/api/v1/complaints", json=complaint_json(), headers=AUTH)).status_code == 201
