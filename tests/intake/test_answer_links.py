"""The customer's answer link, at the intake (no case run needed): opening it decides nothing, an expired link says
so, and a proposal staff already answered by phone is not decided again."""

from __future__ import annotations

import datetime as dt
import re

import httpx
from sqlalchemy import Engine, select

from kefu.intake.app import create_app
from kefu.models.answers import CustomerAnswerLink
from kefu.models.complaints import CaseEvent, Complaint
from kefu.models.db import unit_of_work
from kefu.models.enums import Channel, ComplaintStatus, Severity
from kefu.models.notifications import OutboxMessage
from kefu.models.people import Customer
from kefu.models.policy import Policy
from kefu.tasks.case_summary import render_step_summary
from kefu.tasks.casework import complete_step
from kefu.tasks.customer_answers import offer_solution
from kefu.worktime import calendar_for
from tests.support.clock import SHANGHAI
from tests.support.samples import intake_settings

PROPOSED_AT = dt.datetime(2026, 12, 2, 10, 0, tzinfo=SHANGHAI)  # a Wednesday


def proposed_case(engine: Engine, policy: Policy, case_no: str, *, email: str | None = "kehu@example.com") -> str:
    """A case whose first solution was just proposed to the customer; the token of its answer link."""
    with unit_of_work(engine) as session:
        session.add(
            Complaint(
                case_no=case_no,
                channel=Channel.WEB,
                received_at=PROPOSED_AT - dt.timedelta(hours=5),
                severity=Severity.GENERAL,
                status=ComplaintStatus.AWAITING_APPROVAL,
                customer=Customer(name="客户", email=email, phones=["13812345678"]),
                content="快递晚到两天",
            )
        )
        session.flush()
        offer_solution(
            session,
            case_no,
            0,
            solution="退还运费",
            promised_at=None,
            policy=policy,
            calendar=calendar_for(policy),
            now=PROPOSED_AT,
        )
        complaint = session.scalars(select(Complaint).where(Complaint.case_no == case_no)).one()
        mail = session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.message_type == "solution_proposal", OutboxMessage.complaint_id == complaint.id
            )
        ).one()
        found = re.search(r"/answer/([A-Za-z0-9_-]+)", mail.body_text)
        assert found and ("退还运费" in mail.body_text or mail.channel == "sms")
        return found.group(1)


async def test_opening_the_link_decides_nothing_and_an_expired_or_phone_answered_one_says_so(
    engine: Engine, policy: Policy
) -> None:
    open_token = proposed_case(engine, policy, "KF20261202-00001")
    phoned_token = proposed_case(engine, policy, "KF20261202-00002")
    with unit_of_work(engine) as session:  # staff recorded the second customer's answer, given by phone
        complete_step(session, "KF20261202-00002", "approve", "approve-0", "staff:1", PROPOSED_AT, data={})
    with unit_of_work(engine) as session:  # staff waiting on the approval step read that the customer may answer
        complaint = session.scalars(select(Complaint).where(Complaint.case_no == "KF20261202-00001")).one()
        summary = render_step_summary(
            session, policy, complaint, step="approve", title="客户确认方案", meets=(), now=PROPOSED_AT
        )
        assert "有效期至 2026-12-09 18:00 +08:00" in summary and "通过链接答复后本步骤自动完成" in summary
    now = [PROPOSED_AT + dt.timedelta(hours=1)]
    app = create_app(intake_settings(), engine, clock=lambda: now[0])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake.test") as http:
        # A mail scanner follows the link: GET and HEAD show the proposal and the form, and decide nothing.
        opened = await http.get(f"/answer/{open_token}?choice=accept")
        assert opened.status_code == 200 and "退还运费" in opened.text and 'id="choice-accept"' in opened.text
        assert (await http.head(f"/answer/{open_token}")).status_code == 200
        # A post without a choice decides nothing either; it shows the form again with what is missing.
        unchosen = await http.post(f"/answer/{open_token}", data={"comment": "?"})
        assert unchosen.status_code == 422 and "请选择" in unchosen.text
        # Another site's page cannot post the answer (the edge's same-origin rule).
        forged = await http.post(
            f"/answer/{open_token}", data={"choice": "accept"}, headers={"Origin": "https://evil.example"}
        )
        assert forged.status_code == 403
        # Staff answered the other case by phone: its link says the proposal is already answered.
        phoned = await http.post(f"/answer/{phoned_token}", data={"choice": "reject", "comment": "太慢"})
        assert phoned.status_code == 409 and "已经收到" in phoned.text and "KF20261202-00002" in phoned.text
        # The link is open for five working days (until 18:00 on the fifth); after that it has expired: it says until
        # when it was open, and decides nothing.
        now[0] = PROPOSED_AT + dt.timedelta(days=10)
        expired = await http.post(f"/answer/{open_token}", data={"choice": "accept"})
        assert expired.status_code == 410 and "过期" in expired.text and "2026年12月9日 18:00" in expired.text
        unknown = await http.get("/answer/not-a-token")
        assert unknown.status_code == 404 and "没有找到" in unknown.text
    with unit_of_work(engine) as session:
        links = session.scalars(select(CustomerAnswerLink)).all()
        assert [link.decided_at for link in links] == [None, None]
        decided = session.scalars(select(CaseEvent).where(CaseEvent.action == "customer_decided")).all()
        assert decided == []


def test_a_customer_without_an_email_address_gets_the_link_by_sms(engine: Engine, policy: Policy) -> None:
    token = proposed_case(engine, policy, "KF20261202-00003", email=None)
    with unit_of_work(engine) as session:
        sms = session.scalars(select(OutboxMessage).where(OutboxMessage.message_type == "solution_proposal")).one()
        assert sms.channel == "sms" and sms.recipient == "13812345678"
        assert sms.body_text.endswith(f"http://127.0.0.1:8000/answer/{token}")  # whole, last: phones link it
        assert "2026年12月9日18:00（北京时间）" in sms.body_text and len(sms.body_text) <= 3 * 67
