"""A campaign's invitations and the survey link, at the intake (no Prefect needed): the fatigue cap skips the
customer asked twice lately, opening the link answers nothing, the form's POST records the answer once, a second
POST is refused politely, a bad field is named and records nothing, an expired link says so."""

from __future__ import annotations

import datetime as dt

import httpx
from sqlalchemy import Engine, select

from kefu.intake.app import create_app
from kefu.models.db import unit_of_work
from kefu.models.notifications import OutboxMessage
from kefu.models.policy import Policy
from kefu.models.surveys import CampaignKind, CollectedBy, Segment, SurveyAnswer, SurveyInvitation
from kefu.tasks.surveys import invite, open_campaign, progress, results
from kefu.worktime import WorkCalendar
from tests.support.clock import SHANGHAI
from tests.support.samples import intake_settings
from tests.surveys.support import LAUNCH, answer_form, customers, survey_tokens


async def test_the_link_shows_the_form_records_one_answer_and_refuses_a_second_or_late_one(
    engine: Engine, policy: Policy, calendar: WorkCalendar
) -> None:
    with unit_of_work(engine) as session:
        customers(session)
        campaign = open_campaign(
            session, policy, calendar, kind=CampaignKind.AD_HOC, segment=Segment.ALL, reason="新产品上线后的专项调查",
            launched_by="li.kefu", now=LAUNCH,
        )  # fmt: skip
        report = invite(session, policy, calendar, campaign, LAUNCH)
        closes_at, campaign_id = campaign.closes_at, campaign.id
    assert report.invited == ["SV01", "SV02", "SV03"]
    assert report.skipped == [
        ("SV04", "近90天内已被邀请2次（调查与回访合计，上限2次）"),
        ("SV05", "未留邮箱，无法发送问卷（可电话访谈）"),
    ]
    assert closes_at == dt.datetime(2026, 12, 16, 18, 0, tzinfo=SHANGHAI)  # ten working days
    with unit_of_work(engine) as session:
        tokens = survey_tokens(session)
        mail = session.scalars(select(OutboxMessage).where(OutboxMessage.recipient == "hd@example.com")).one()
        assert mail.not_before == LAUNCH and "尊敬的华东建材" in mail.body_text  # within the business window
        assert "2026年12月16日 18:00" in mail.body_text
    assert set(tokens) == {"hd@example.com", "nf@example.com", "zs@example.com"}

    now = [LAUNCH + dt.timedelta(hours=2)]
    app = create_app(intake_settings(), engine, clock=lambda: now[0])
    token = tokens["zs@example.com"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake.test") as http:
        # A mail scanner follows the link: the questionnaire, nothing answered.
        opened = await http.get(f"/survey/{token}")
        assert opened.status_code == 200 and "产品质量" in opened.text and "推荐" in opened.text
        assert (await http.head(f"/survey/{token}")).status_code == 200
        again = await http.get(f"/survey/{token}")
        assert again.status_code == 200 and 'id="submit"' in again.text  # still open: opening burnt nothing
        # A missing score is named; the NPS out of range too; nothing recorded either time.
        form = answer_form(policy, 4, 9, "送货很准时")
        partial = {k: v for k, v in form.items() if k != "logistics_speed"}
        missing = await http.post(f"/survey/{token}", data=partial)
        assert missing.status_code == 422 and "请为「物流速度」打分" in missing.text
        assert 'data-field="logistics_speed"' in missing.text and "送货很准时" in missing.text  # kept
        too_high = await http.post(f"/survey/{token}", data={**form, "nps": "11"})
        assert too_high.status_code == 422 and 'data-field="nps"' in too_high.text
        # Another site's page cannot post it.
        forged = await http.post(f"/survey/{token}", data=form, headers={"Origin": "https://evil.example"})
        assert forged.status_code == 403
        # The customer's own answer: once.
        answered = await http.post(f"/survey/{token}", data=form)
        assert answered.status_code == 200 and "感谢您的评价" in answered.text
        second = await http.post(f"/survey/{token}", data=answer_form(policy, 1, 0))
        assert second.status_code == 409 and "无需再次提交" in second.text
        assert (await http.get(f"/survey/{token}")).status_code == 200  # says it is in, politely
        # After the campaign's close the other links have expired.
        now[0] = closes_at + dt.timedelta(minutes=1)
        late = await http.post(f"/survey/{tokens['nf@example.com']}", data=form)
        assert late.status_code == 410 and "2026年12月16日 18:00" in late.text and "截止" in late.text
        assert (await http.get("/survey/not-a-token")).status_code == 404
    with unit_of_work(engine) as session:
        [answer] = session.scalars(select(SurveyAnswer)).all()
        assert answer.scores == dict.fromkeys(policy.surveys.dimensions, 4) and answer.nps == 9
        assert answer.collected_by is CollectedBy.LINK and answer.comment == "送货很准时"
        opened_rows = session.scalars(select(SurveyInvitation).where(SurveyInvitation.opened_at.is_not(None))).all()
        assert [row.customer.code for row in opened_rows] == ["SV03"]  # the unopened link stays unopened
        assert progress(session, campaign_id) == [("重点客户", 2, 0, 0), ("一般客户", 1, 1, 1), ("合计", 3, 1, 1)]
        figures = results(session, policy, campaign_id)
        assert (figures.invited, figures.answered, figures.response_rate, figures.nps) == (3, 1, 33.3, 100.0)
