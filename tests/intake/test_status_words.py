"""The status page speaks from the customer's side in every state a case can be in: its status in the customer's
words, the next step as the policy's customer wording with the time in 北京时间 — never a milestone's internal
name or id."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from kefu.intake.app import create_app
from kefu.intake.labels import STATUS_ZH
from kefu.models.complaints import Complaint, Milestone
from kefu.models.enums import ComplaintStatus, Severity
from kefu.models.policy import DUE_PLACEHOLDER, MilestoneRule, Policy
from kefu.notifications.lint import html_text
from tests.support.clock import SHANGHAI, FixedClock
from tests.support.samples import AUTH, complaint_json, intake_settings

RECEIVED = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)


def internal_words(policy: Policy) -> set[str]:
    rules = [rule for severity in policy.complaints.severities.values() for rule in severity.milestones]
    rules.append(policy.complaints.callback)
    return {rule.name for rule in rules} | {rule.id.value for rule in rules}


def open_milestones(policy: Policy, severity: Severity) -> list[tuple[MilestoneRule, dt.datetime]]:
    """Every milestone of the severity and the callback, open: the internal ones due first, then the
    customer-facing ones in the policy's order, an hour apart."""
    rules = [*policy.complaints.severities[severity].milestones, policy.complaints.callback]
    ordered = sorted(rules, key=lambda rule: rule.customer_facing)
    return [(rule, RECEIVED + dt.timedelta(hours=i + 1)) for i, rule in enumerate(ordered)]


async def status_text(client: httpx.AsyncClient, case_no: str) -> str:
    page = await client.post("/status", data={"case_no": case_no, "phone_last4": "8000"})
    assert page.status_code == 200
    return html_text(page.text)


@pytest.fixture
async def client(engine: Engine, clock: FixedClock) -> AsyncIterator[httpx.AsyncClient]:
    """The intake app, its status lookups not rate limited: this customer looks up many times."""
    app = create_app(intake_settings(), engine, clock=clock, status_rate_limit=(1000, 60.0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake.test") as http:
        yield http


@pytest.mark.parametrize("severity", list(Severity))
async def test_every_status_shows_the_customers_words_and_no_internal_milestone_name(
    client: httpx.AsyncClient, engine: Engine, policy: Policy, severity: Severity
) -> None:
    created = await client.post("/api/v1/complaints", json=complaint_json(), headers=AUTH)
    case_no = created.json()["case_no"]
    milestones = open_milestones(policy, severity)
    first_facing, due = next((rule, due) for rule, due in milestones if rule.customer_facing)
    promise = first_facing.customer_wording or ""
    when = f"{due.year}年{due.month}月{due.day}日 {due:%H:%M}（北京时间）"
    expected_next = "接下来：" + promise.replace(DUE_PLACEHOLDER, when) + "。"
    forbidden = internal_words(policy)

    for with_open_milestones in (True, False):
        with Session(engine) as session:
            complaint = session.scalars(select(Complaint).where(Complaint.case_no == case_no)).one()
            session.execute(delete(Milestone).where(Milestone.complaint_id == complaint.id))
            complaint.severity = severity
            for rule, due_at in milestones:
                session.add(
                    Milestone(
                        complaint_id=complaint.id,
                        milestone=rule.id,
                        starts_at=RECEIVED,
                        due_at=due_at,
                        unit="hours",
                        target="1",
                        met_at=None if with_open_milestones else due_at,
                    )
                )
            session.commit()
        for status in ComplaintStatus:
            with Session(engine) as session:
                complaint = session.scalars(select(Complaint).where(Complaint.case_no == case_no)).one()
                complaint.status = status
                session.commit()
            text = await status_text(client, case_no)
            assert f"当前状态：{STATUS_ZH[status]}" in text
            assert "受理时间：2026年11月23日 10:00（北京时间）" in text
            if with_open_milestones:
                assert expected_next in text, text
            elif status is ComplaintStatus.REGISTERED:  # before the case is planned: the policy's first promise
                assert "接下来：我们将在" in text, text
            else:
                assert "接下来" not in text, text  # everything promised is done: no promise shown
            said = sorted(word for word in forbidden if word in text)
            assert not said, f"{severity.value}/{status.value}: the status page says {said}"
