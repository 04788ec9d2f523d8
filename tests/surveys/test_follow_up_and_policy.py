"""Phone and visit answers entered by staff, the key account's low-score alert (and no alert otherwise), and the
survey policy's checks and schedules."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select

from kefu.deployments import all_deployments
from kefu.intake.surveys import validate_answer
from kefu.models.db import unit_of_work
from kefu.models.notifications import OutboxMessage
from kefu.models.policy import Policy, PolicyError, parse_policy
from kefu.models.surveys import CampaignKind, CollectedBy, Segment
from kefu.settings import DEFAULT_POLICY_FILE
from kefu.tasks.surveys import AnswerInvalid, SurveyError, alert_low_score, enter_answer, open_campaign
from kefu.worktime import WorkCalendar
from tests.surveys.support import LAUNCH, customers


def test_a_key_accounts_low_score_by_visit_alerts_its_team_once_and_other_answers_alert_nobody(
    engine: Engine, policy: Policy, calendar: WorkCalendar
) -> None:
    good = {key: "4" for key in policy.surveys.dimensions}
    with unit_of_work(engine) as session:
        customers(session)
        campaign = open_campaign(
            session, policy, calendar, kind=CampaignKind.KEY_ACCOUNT, segment=Segment.KEY, reason="季度调查",
            launched_by="schedule", now=LAUNCH,
        )  # fmt: skip
        campaign_id = campaign.id

        def enter(code: str, scores: dict[str, str], nps: str, via: CollectedBy = CollectedBy.VISIT) -> list[str]:
            row = enter_answer(
                session, policy, campaign_id=campaign_id, customer_code_=code, via=via, login="chen.xiangmu",
                answer=validate_answer(policy, scores, nps, "包装需要改进"), now=LAUNCH,
            )  # fmt: skip
            first = alert_low_score(session, policy, row, LAUNCH, calendar)
            assert alert_low_score(session, policy, row, LAUNCH, calendar) == []  # once per answer
            return first

        assert enter("SV01", {**good, "price": "2"}, "8") == ["chen.xiangmu"]  # a dimension under 3
        assert enter("SV02", good, "6") == []  # low NPS, but SV02 has no team on record
        with pytest.raises(SurveyError, match="not in campaign"):
            enter("SV03", {k: "1" for k in good}, "0")  # a general customer is not in the key accounts' campaign
        with pytest.raises(SurveyError, match="already answered"):
            enter("SV01", good, "9", CollectedBy.PHONE)
        with pytest.raises(SurveyError, match=r"closed at 2026-12-16 18:00 \+08:00"):  # its links expired then
            enter_answer(
                session, policy, campaign_id=campaign_id, customer_code_="SV02", via=CollectedBy.PHONE,
                login="chen.xiangmu", answer=validate_answer(policy, good, "9", ""),
                now=campaign.closes_at,
            )  # fmt: skip
    with unit_of_work(engine) as session:
        [alert] = session.scalars(select(OutboxMessage).where(OutboxMessage.message_type == "survey_low_score")).all()
        assert (
            "价格合理性2分" in alert.body_text and "项目经理" in alert.body_text and "推荐意愿" not in alert.body_text
        )
        assert alert.body_text.count("kefu survey to-complaint") == 1
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 1


def test_an_answer_with_a_bad_field_is_refused_naming_it(policy: Policy) -> None:
    good = {key: "5" for key in policy.surveys.dimensions}
    cases = [
        ({**good, "speed": "5"}, "10", "", "speed", "没有这个调查维度"),
        ({k: v for k, v in good.items() if k != "brand_image"}, "10", "", "brand_image", "请为「品牌形象」打分"),
        ({**good, "price": "0"}, "10", "", "price", "1到5之间的整数"),
        ({**good, "price": "4.5"}, "10", "", "price", "1到5之间的整数"),
        (good, "-1", "", "nps", "0到10之间的整数"),
        (good, "9", "好\u202e评", "comment", "看不见的格式字符"),
        (good, "9", "好" * 2001, "comment", "最多2000个字"),
    ]
    for scores, nps, comment, field, message in cases:
        with pytest.raises(AnswerInvalid) as refused:
            validate_answer(policy, scores, nps, comment)
        assert refused.value.field == field and message in refused.value.message


def test_the_survey_policy_is_checked_and_its_campaigns_are_scheduled_on_its_clock(policy: Policy) -> None:
    text = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
    for old, new, said in [
        ("key_account_survey_every_months: 3", "key_account_survey_every_months: 5", "must divide the year"),
        ("low_score_below: 3 ", "low_score_below: 6 ", "low_score_below must be within the scale"),
        ('sweep_schedule: "0 8 * * *"', 'sweep_schedule: "0 8 * *"', "surveys.sweep_schedule"),
        ("fatigue: {max_asks: 2", "fatigue: {max_asks: 0", "surveys.fatigue.max_asks"),
    ]:
        assert old in text
        with pytest.raises(PolicyError, match=said):
            parse_policy(text.replace(old, new, 1))
    crons = {
        d.name: (d.deployment.schedules[0].schedule.cron, d.deployment.schedules[0].schedule.timezone)
        for d in all_deployments()
        if d.name.startswith("survey-")
    }
    assert crons == {
        "survey-yearly": ("30 9 5 1 *", "Asia/Shanghai"),  # yearly, January the 5th
        "survey-key-accounts": ("30 9 5 4,7,10 *", "Asia/Shanghai"),  # quarterly, not in the yearly one's month
        "survey-sweep": ("0 8 * * *", "Asia/Shanghai"),
    }
    assert policy.surveys.cron(1, besides=3) == "30 9 5 2,3,5,6,8,9,11,12 *"


def test_a_phone_answer_is_entered_for_a_customer_without_a_code_by_the_code_kefu_customer_list_shows(
    engine: Engine, policy: Policy, calendar: WorkCalendar
) -> None:
    """`kefu customer list` names a customer registered at the front door (no code of its own) C + its id, e.g.
    C000012; `kefu survey enter C000012 ...` finds that customer (it said "no customer with code" before)."""
    with unit_of_work(engine) as session:
        made = customers(session)
        made["SV03"].code = None
        session.flush()
        shown = f"C{made['SV03'].id:06d}"
        campaign = open_campaign(
            session, policy, calendar, kind=CampaignKind.AD_HOC, segment=Segment.GENERAL, reason="专项调查",
            launched_by="cli", now=LAUNCH,
        )  # fmt: skip
        good = {key: "4" for key in policy.surveys.dimensions}
        row = enter_answer(
            session, policy, campaign_id=campaign.id, customer_code_=shown, via=CollectedBy.PHONE, login="li.kefu",
            answer=validate_answer(policy, good, "9", ""), now=LAUNCH,
        )  # fmt: skip
        assert row.customer_id == made["SV03"].id
        with pytest.raises(SurveyError, match="no customer with code 'C999999'"):
            enter_answer(
                session, policy, campaign_id=campaign.id, customer_code_="C999999", via=CollectedBy.PHONE,
                login="li.kefu", answer=validate_answer(policy, good, "9", ""), now=LAUNCH,
            )  # fmt: skip
