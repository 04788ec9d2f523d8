"""A customer who leaves only a phone number hears from us: intake → the case's registration → an SMS in the sink."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select

from kefu.desk.app import create_app as create_desk
from kefu.intake.app import create_app
from kefu.models import CaseEvent, Complaint
from kefu.models.db import unit_of_work
from kefu.models.policy import Policy
from kefu.notifications import deliver_due
from kefu.settings import get_settings
from kefu.tasks.casework import register_case
from kefu.worktime import WorkCalendar
from tests.support.clock import FixedClock
from tests.support.desk import signed_in_desk
from tests.support.samples import AUTH, complaint_json, intake_settings


@pytest.fixture
def company_signature(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The company's SMS signature, configured as in production (``KEFU_SMS_SIGNATURE``)."""
    monkeypatch.setenv("KEFU_SMS_SIGNATURE", "顺达快运")
    get_settings.cache_clear()
    yield "顺达快运"
    get_settings.cache_clear()


async def test_a_complaint_with_only_a_phone_is_acknowledged_by_sms_with_the_signature(
    engine: Engine, clock: FixedClock, policy: Policy, calendar: WorkCalendar, tmp_path: Path, company_signature: str
) -> None:
    settings = intake_settings(var_dir=tmp_path)
    app = create_app(settings, engine, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake.test") as client:
        body = complaint_json(phone="13800138000")
        del body["email"]
        accepted = await client.post("/api/v1/complaints", json=body, headers={**AUTH, "Idempotency-Key": "sms-1"})
        assert accepted.status_code == 201, accepted.text
        case_no = accepted.json()["case_no"]

        with unit_of_work(engine) as session:  # the case flow's first step
            register_case(session, case_no, policy, calendar, owner_id=None, now=clock.now)
        report = await deliver_due(engine, clock.now, settings=settings)
        assert len(report.sent) == 1

    async with signed_in_desk(create_desk(settings, engine, clock=clock), engine) as desk:  # the operators' page
        page = await desk.get("/outbox/sms")
    assert page.status_code == 200
    assert f"【{company_signature}】您好，" in page.text and case_no in page.text
    assert "138****8000" in page.text and "13800138000" not in page.text  # the operators' page masks the phone

    with unit_of_work(engine) as session:
        complaint = session.scalars(select(Complaint).where(Complaint.case_no == case_no)).one()
        [acknowledged] = session.scalars(
            select(CaseEvent).where(CaseEvent.complaint_id == complaint.id, CaseEvent.action == "acknowledged")
        ).all()
        assert acknowledged.data["channel"] == "sms" and acknowledged.data["sms"] == "queued"
