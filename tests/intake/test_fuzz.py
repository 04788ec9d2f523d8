"""Property-based fuzzing of the intake API and form (hypothesis, bounded): never a 5xx, never a partial
write, and script/HTML/SQL-injection strings are stored verbatim and always rendered escaped."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import escape
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from kefu.intake.app import create_app
from kefu.models import CaseEvent, CommunicationRecord, Complaint, Customer
from kefu.models.intake import IntakeOutbox
from tests.support.clock import RECEIVED, FixedClock
from tests.support.samples import AUTH, complaint_json, intake_settings

INJECTIONS = [
    "<script>alert('x')</script>",
    "'; DROP TABLE complaints; --",
    '" OR "1"="1',
    "<img src=x onerror=alert(1)>",
    "Robert'); DELETE FROM customers;--",
    "{{ 7*7 }} {% raw %}",
    "</textarea><svg onload=alert(1)>",
    "%27%3B--",
]
FIELDS = [
    "name",
    "phone",
    "email",
    "order_no",
    "order_amount",
    "product",
    "place",
    "problem_at",
    "content",
    "urgent",
    "preferred_contact_time",
    "channel",
    "received_at",
]
WRITTEN = (Complaint, IntakeOutbox, CommunicationRecord, CaseEvent)

anything = st.one_of(
    st.text(max_size=80),
    st.sampled_from(INJECTIONS),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=30).map(lambda s: s + "\x00"),
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
    st.lists(st.text(max_size=3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
bodies = st.builds(
    lambda changes, drop, injected: {
        **{k: v for k, v in complaint_json(**injected).items() if k not in drop},
        **changes,
    },
    st.dictionaries(st.sampled_from(FIELDS), anything, max_size=3),
    st.sets(st.sampled_from(FIELDS), max_size=2),
    st.fixed_dictionaries(
        {},
        optional={
            "name": st.sampled_from([s[:50] for s in INJECTIONS]),
            "content": st.sampled_from(INJECTIONS),
            "place": st.sampled_from(INJECTIONS),
            "product": st.sampled_from(INJECTIONS),
            "preferred_contact_time": st.sampled_from(INJECTIONS),
        },
    ),
)


def counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        return {t.__tablename__: session.scalar(select(func.count()).select_from(t)) or 0 for t in (*WRITTEN, Customer)}


class AppClient:
    """The real app over httpx's ASGI transport, driven from sync hypothesis tests on one event loop."""

    def __init__(self, engine: Engine) -> None:
        app = create_app(intake_settings(), engine, clock=FixedClock(RECEIVED))
        self.runner = asyncio.Runner()
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake.test")

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.runner.run(self.client.get(url, **kwargs))

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.runner.run(self.client.post(url, **kwargs))

    def close(self) -> None:
        self.runner.run(self.client.aclose())
        self.runner.close()


@pytest.fixture
def http(sqlite_engine: Engine) -> Any:
    client = AppClient(sqlite_engine)
    yield client
    client.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_the_api_never_fails_and_never_writes_half_a_complaint(
    http: AppClient, sqlite_engine: Engine, body: dict[str, Any]
) -> None:
    before = counts(sqlite_engine)
    raw = json.dumps(body).encode()  # as a gateway might send it, NaN and Infinity included
    response = http.post("/api/v1/complaints", content=raw, headers={**AUTH, "Content-Type": "application/json"})
    after = counts(sqlite_engine)
    assert response.status_code in (201, 422), response.text
    if response.status_code == 422:
        assert after == before
        errors = response.json()["errors"]
        assert errors and all(e["code"] and e["message"] for e in errors)
        return
    for table in WRITTEN:
        assert after[table.__tablename__] == before[table.__tablename__] + 1
    assert after["customers"] - before["customers"] in (0, 1)
    with Session(sqlite_engine) as session:
        complaint = session.scalars(select(Complaint).where(Complaint.case_no == response.json()["case_no"])).one()
        assert complaint.content == body["content"].strip()  # stored verbatim
        for field in ("product", "place", "preferred_contact_time"):
            value = body.get(field)
            assert getattr(complaint, field) == (value.strip() or None if isinstance(value, str) else None)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(evil=st.sampled_from(INJECTIONS), valid=st.booleans())
def test_injection_strings_are_rendered_escaped_on_every_page(
    http: AppClient, sqlite_engine: Engine, evil: str, valid: bool
) -> None:
    form = {
        "name": evil[:50],
        "phone": "13500135000" if valid else evil,
        "place": evil,
        "product": evil,
        "content": f"{evil} 货物丢失",
        "preferred_contact_time": evil,
        "form_key": re.search(r'value="([0-9a-f]{32})"', http.get("/").text).group(1),  # type: ignore[union-attr]
    }
    page = http.post("/", data=form)
    assert page.status_code == (200 if valid else 422)
    for raw in [evil, evil[:50]]:
        if "<" in raw or '"' in raw:
            assert raw not in page.text
    if not valid:
        assert str(escape(evil[:50])) in page.text  # what was typed is shown back, escaped
        return
    case_no = re.search(r'id="case-no">([A-Z0-9-]+)<', page.text).group(1)  # type: ignore[union-attr]
    status = http.post("/status", data={"case_no": case_no, "phone_last4": "5000"})
    assert evil not in status.text and case_no in status.text
    with Session(sqlite_engine) as session:
        complaint = session.scalars(select(Complaint).where(Complaint.case_no == case_no)).one()
        assert complaint.place == evil.strip() and complaint.content == f"{evil} 货物丢失".strip()


# ---------------------------------------------------------------- every route, malformed in every way (issue 18)
NASTY: list[Any] = [
    "9" * 5000,
    "1e999999",
    "-0",
    "NaN",
    "\u202egnp.exe",
    "张\u200b三",
    "\x00",
    "a\r\nb",
    "\ud7ff",
    "名" * 3000,
    [[[[[]]]]],
    {"a": {"b": {}}},
    10**300,
    1e308,
    -1,
    True,
    None,
    "",
]
RAW_BODIES = [
    b"[" * 7000,
    b'{"order_amount": ' + b"9" * 5000 + b"}",
    b'{"name": "\xff\xfe"}',
    b'{"":' * 3000 + b"1" + b"}" * 3000,
    b"\xef\xbb\xbf{}",
    b"null",
    b"1e99999",
    b'"\\ud800"',
    b"",
    b"\x00" * 64,
    b"name=%FF%FE&content=%E5",
    b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n',
    b"&&&===&&",
]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=latin-1",
    "application/vnd.kefu+json",
    "text/plain",
    "application/xml",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=b",
    "multipart/form-data",
    None,
]
PATHS = [
    "/",
    "/status",
    "/healthz",
    "/docs",
    "/openapi.json",
    "/static/intake.css",
    "/static/swagger/swagger-ui.css",
    "/static/../../etc/passwd",
    "/api/v1/complaints/KF20261123-00001",
    "/api/v1/complaints/%00",
    "/api/v1/complaints/" + "9" * 5000,
    "/nowhere",
]


async def _chunks(data: bytes) -> Any:
    for start in range(0, len(data), 8192):
        yield data[start : start + 8192]


def fuzzed_request(rng: Any, n: int) -> tuple[str, str, dict[str, Any], str]:
    """One request: method, path, httpx arguments, and what it is ('api', 'form', or 'other')."""
    kind = rng.choices(["api", "form", "status", "other"], weights=[50, 27, 5, 18])[0]
    headers: dict[str, str] = {}
    if kind == "other":
        method = rng.choice(["GET", "GET", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "POST"])
        body = rng.choice(RAW_BODIES) if method in {"PUT", "PATCH", "POST"} else b""
        return method, rng.choice(PATHS), {"content": body or None}, kind
    if kind == "api":
        headers.update(AUTH if rng.random() < 0.95 else {"Authorization": "Bearer nope"})
        if rng.random() < 0.4:
            body = rng.choice(RAW_BODIES)
        else:
            fields = complaint_json(phone=f"139{n:08d}")
            for _ in range(rng.choices([0, 1, 2, 3], weights=[1, 4, 3, 2])[0]):
                fields[rng.choice([*FIELDS, "unknown_" + str(rng.randint(0, 9))])] = rng.choice(NASTY)
            body = json.dumps(fields).encode()
        content_type = rng.choice(CONTENT_TYPES) if rng.random() < 0.3 else "application/json"
        path = "/api/v1/complaints"
    else:
        path = "/" if kind == "form" else "/status"
        if kind == "form":
            fields = {"name": "王五", "phone": f"137{n:08d}", "content": f"第{n}件：冷链货物到达时已经化冻。"}
        else:
            fields = {"case_no": f"KF20261123-{n % 100000:05d}", "phone_last4": f"{n % 10000:04d}"}
        for _ in range(rng.choices([0, 1, 2, 3], weights=[1, 4, 3, 2])[0]):
            fields[rng.choice(["name", "phone", "content", "place", "problem_at", "order_amount", "urgent"])] = str(
                rng.choice(NASTY)
            )
        if kind == "form" and rng.random() < 0.8:
            fields["form_key"] = f"{n:032x}"
        body = rng.choice(RAW_BODIES) if rng.random() < 0.15 else urlencoded_body(fields)
        content_type = rng.choice(CONTENT_TYPES) if rng.random() < 0.2 else "application/x-www-form-urlencoded"
        if rng.random() < 0.05:
            headers["Origin"] = rng.choice(["https://evil.example", "null", "http://intake.test"])
    if content_type:
        headers["Content-Type"] = content_type
    if rng.random() < 0.05:
        body += b"x" * rng.choice([5_000, 40_000])  # past the status page's or the form's limit
    content: Any = _chunks(body) if rng.random() < 0.2 else body
    return "POST", path, {"content": content, "headers": headers}, kind


def urlencoded_body(fields: dict[str, str]) -> bytes:
    return str(httpx.QueryParams(fields)).encode()


FUZZED_REQUESTS = 10_000


@pytest.mark.slow  # issue 18 asks for at least 10,000 requests: 77 s measured on the shared 2 cores at load 7
def test_ten_thousand_malformed_requests_across_every_route_get_no_5xx_and_no_partial_write(
    sqlite_engine: Engine,
) -> None:
    import random
    import time

    app = create_app(intake_settings(), sqlite_engine, clock=FixedClock(RECEIVED))
    rng = random.Random(18)
    statuses: dict[int, int] = {}
    registered = 0

    async def run() -> int:
        nonlocal registered
        sent = 0
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake.test") as client:
            for batch in range(FUZZED_REQUESTS // 50):
                requests = [fuzzed_request(rng, batch * 50 + i) for i in range(50)]
                answers = await asyncio.gather(*(client.request(m, p, **kw) for m, p, kw, _ in requests))
                for (method, path, _, kind), answer in zip(requests, answers, strict=True):
                    sent += 1
                    statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
                    assert answer.status_code < 500, (method, path, answer.status_code, answer.text[:300])
                    assert len(answer.content) < 64 * 1024 or path.startswith(("/static/", "/openapi")), path
                    if kind == "api" and answer.status_code >= 400 and answer.status_code != 405:
                        assert answer.json()["errors"][0]["code"], answer.text
                    registered += (kind == "api" and answer.status_code == 201) or (
                        kind == "form" and 'id="case-no"' in answer.text
                    )
        return sent

    started = time.monotonic()
    sent = asyncio.run(run())
    elapsed = time.monotonic() - started
    print(f"{sent} fuzzed requests in {elapsed:.1f} s: {dict(sorted(statuses.items()))}")
    assert sent >= 10_000
    after = counts(sqlite_engine)
    assert registered > 100  # some of them were valid complaints, registered whole
    for table in WRITTEN:  # every registered complaint whole, nothing from a refused one
        assert after[table.__tablename__] == registered, (table.__tablename__, after, registered)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.binary(max_size=600),
        st.sampled_from(RAW_BODIES),
        st.recursive(st.none() | st.integers() | st.text(max_size=5), lambda inner: st.lists(inner, max_size=3))
        .map(json.dumps)
        .map(str.encode),
    ),
    route=st.sampled_from(["/api/v1/complaints", "/", "/status"]),
    content_type=st.sampled_from(CONTENT_TYPES),
)
def test_any_bytes_to_any_route_get_a_4xx_or_a_registration_never_a_5xx(
    http: AppClient, sqlite_engine: Engine, body: bytes, route: str, content_type: str | None
) -> None:
    before = counts(sqlite_engine)
    headers = {**AUTH, "Content-Type": content_type} if content_type else dict(AUTH)
    response = http.post(route, content=body, headers=headers)
    assert response.status_code < 500, response.text[:300]
    assert counts(sqlite_engine) == before  # none of these is a whole complaint
