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
