"""The complaint process as the policy means it (issue 13): urgent cases, the policy on each case, the first
receiver's ownership and handovers, the paused clock — against a real database and an injected clock."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu.models.complaints import CaseEvent, Complaint
from kefu.models.notifications import OutboxMessage
from kefu.models.people import Staff
from kefu.models.policy import Policy
from kefu.tasks.case_summary import render_step_summary
from kefu.tasks.casework import register_case
from kefu.worktime import WorkCalendar
from tests.support.clock import SHANGHAI
from tests.support.factories import MakeComplaint


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


def events(db: Session, complaint: Complaint, action: str) -> list[CaseEvent]:
    query = select(CaseEvent).where(CaseEvent.complaint_id == complaint.id, CaseEvent.action == action)
    return list(db.scalars(query.order_by(CaseEvent.id)).all())


def test_an_urgent_case_tells_the_supervisor_by_mail_at_intake_and_every_summary_says_urgent(
    db: Session, policy: Policy, calendar: WorkCalendar, ladder: dict[str, Staff], make_complaint: MakeComplaint
) -> None:
    ladder["supervisor"].email = "boss@example.com"
    urgent, ordinary = make_complaint(urgent=True), make_complaint()
    for complaint in (urgent, ordinary):
        register_case(db, complaint.case_no, policy, calendar, owner_id=ladder["owner"].id, now=at(2, 10))
    db.commit()
    (notice,) = events(db, urgent, "notified")
    assert notice.data["reason"] == "urgent" and notice.data["recipient_staff_id"] == ladder["supervisor"].id
    mails = db.scalars(select(OutboxMessage).where(OutboxMessage.complaint_id == urgent.id)).all()
    assert [m.recipient for m in mails if m.internal] == ["boss@example.com"]
    assert all(m.not_before.replace(tzinfo=dt.UTC) <= at(2, 10) for m in mails if m.internal)  # at once
    assert events(db, ordinary, "notified") == []
    for step, title in (("classify", "投诉定级"), ("investigate", "调查分析"), ("callback", "满意度回访")):
        summary = render_step_summary(db, policy, urgent, step=step, title=title, meets=(), now=at(2, 10))
        assert summary.startswith(f"### 【紧急投诉】{title} · 投诉 {urgent.case_no}")
        plain = render_step_summary(db, policy, ordinary, step=step, title=title, meets=(), now=at(2, 10))
        assert "紧急投诉】" not in plain
