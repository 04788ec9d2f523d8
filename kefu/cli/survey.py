"""``kefu survey``: satisfaction survey campaigns (seed 003 §4).

- ``kefu survey launch --segment all|key|general --reason TEXT [--as LOGIN]``: an ad hoc campaign now (after a new
  product or a major change): the ``survey-campaign`` flow run on the running Prefect server (its run page shows
  the invitations' progress, who was skipped and why, and the progress by segment); prints the same.
- ``kefu survey enter CUSTOMER --campaign ID --via phone|visit --as LOGIN --scores KEY=N,... --nps N [--comment
  TEXT]``: an answer collected by phone interview or visit (dimension keys or their zh-CN labels); a bad field is
  named and nothing is recorded.
- ``kefu survey to-complaint ANSWER_ID --as LOGIN``: the answer's comment registered as a complaint through the
  intake's path (its case run starts), linked to the answer.
- ``kefu survey list``: the campaigns with their progress; ``kefu survey results ID``: a campaign's figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from kefu.cli import UsageError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("survey", help="satisfaction survey campaigns: launch, enter answers, follow up")
    actions = parser.add_subparsers(dest="survey_action", required=True)
    launch = actions.add_parser("launch", help="an ad hoc campaign now (a flow run on the Prefect server)")
    launch.add_argument("--segment", required=True, choices=["all", "key", "general"])
    launch.add_argument("--reason", required=True, help="why (e.g. 新产品上线后的专项调查)")
    launch.add_argument("--as", dest="login", default=None, help="your login (recorded as who launched it)")
    launch.set_defaults(handler=run_launch)
    enter = actions.add_parser("enter", help="an answer collected by phone interview or visit")
    enter.add_argument("customer", help="the customer's code (客户编号)")
    enter.add_argument("--campaign", required=True, type=int)
    enter.add_argument("--via", required=True, choices=["phone", "visit"])
    enter.add_argument("--as", dest="login", required=True, help="the login of who collected it")
    enter.add_argument("--scores", required=True, help="KEY=N per dimension, comma-separated (keys or labels)")
    enter.add_argument("--nps", required=True, help="the NPS answer, 0–10")
    enter.add_argument("--comment", default="")
    enter.set_defaults(handler=run_enter)
    to_complaint = actions.add_parser("to-complaint", help="register an answer's comment as a complaint")
    to_complaint.add_argument("answer", type=int)
    to_complaint.add_argument("--as", dest="login", required=True)
    to_complaint.set_defaults(handler=run_to_complaint)
    actions.add_parser("list", help="the campaigns and their progress").set_defaults(handler=run_list)
    shown = actions.add_parser("results", help="a campaign's figures: average per dimension, NPS, response rate")
    shown.add_argument("campaign", type=int)
    shown.set_defaults(handler=run_results)


def parse_scores(text: str, dimensions: dict[str, str]) -> dict[str, str]:
    by_label = {label: key for key, label in dimensions.items()}
    scores: dict[str, str] = {}
    for part in [p for p in text.replace("，", ",").split(",") if p.strip()]:
        name, sep, value = part.partition("=")
        if not sep:
            raise UsageError(f"--scores: '{part.strip()}' is not KEY=N (e.g. service_attitude=4 or 服务态度=4)")
        scores[by_label.get(name.strip(), name.strip())] = value.strip()
    return scores


def run_launch(args: argparse.Namespace) -> int:
    from kefu.engine.connection import kefu_prefect

    if not args.reason.strip():
        raise UsageError("--reason is empty: say why this campaign is run")
    if args.login:
        from kefu.models.db import unit_of_work
        from kefu.tasks.surveys import SurveyError, find_staff

        try:
            with unit_of_work() as session:
                find_staff(session, args.login)
        except SurveyError as exc:
            raise UsageError(str(exc)) from None
    with kefu_prefect():
        from kefu.flows.survey_campaign import survey_campaign

        result = survey_campaign(
            segment=args.segment, reason=args.reason, kind="ad_hoc", launched_by=args.login or "cli"
        )
    from sqlalchemy import select

    from kefu.models.db import unit_of_work
    from kefu.models.surveys import SurveyInvitation

    print(f"survey campaign {result['campaign']}: {result['invited']} invited, {result['skipped']} skipped")
    print(f"flow run {result['flow_run']} (its page shows the progress; results when the campaign closes)")
    with unit_of_work() as session:
        skipped = session.scalars(
            select(SurveyInvitation).where(
                SurveyInvitation.campaign_id == result["campaign"], SurveyInvitation.skipped_reason.is_not(None)
            )
        ).all()
        for row in skipped:
            print(f"  skipped {row.customer.code or '#' + str(row.customer_id)}: {row.skipped_reason}")
    return 0


def run_enter(args: argparse.Namespace) -> int:
    from kefu.intake.surveys import validate_answer
    from kefu.models.db import unit_of_work
    from kefu.models.policy import current_policy
    from kefu.models.surveys import CollectedBy
    from kefu.tasks.surveys import SurveyError, alert_low_score, enter_answer
    from kefu.worktime import calendar_for

    policy = current_policy()
    scores = parse_scores(args.scores, policy.surveys.dimensions)
    now = dt.datetime.now(dt.UTC)
    try:
        answer = validate_answer(policy, scores, args.nps, args.comment)
        with unit_of_work() as session:
            row = enter_answer(
                session, policy, campaign_id=args.campaign, customer_code_=args.customer,
                via=CollectedBy(args.via), login=args.login, answer=answer, now=now,
            )  # fmt: skip
            alerted = alert_low_score(session, policy, row, now, calendar_for(policy))
            answer_id = row.id
    except SurveyError as exc:
        raise UsageError(f"{exc}; nothing recorded") from None
    print(f"answer {answer_id} recorded ({args.via}) for customer {args.customer} in campaign {args.campaign}")
    if alerted:
        print(f"low score: the key account's team alerted ({', '.join(alerted)})")
    return 0


def run_to_complaint(args: argparse.Namespace) -> int:
    from kefu.intake.surveys import to_complaint
    from kefu.models.db import unit_of_work
    from kefu.models.policy import current_policy
    from kefu.tasks.surveys import SurveyError

    try:
        with unit_of_work() as session:
            case_no, created = to_complaint(session, current_policy(), args.answer, args.login, dt.datetime.now(dt.UTC))
    except SurveyError as exc:
        raise UsageError(str(exc)) from None
    if created:
        print(f"answer {args.answer}: complaint {case_no} registered (its case run starts: kefu case show {case_no})")
    else:
        print(f"answer {args.answer} is complaint {case_no} already")
    return 0


def run_list(_args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from kefu.models.db import unit_of_work
    from kefu.models.policy import current_policy
    from kefu.models.surveys import SurveyCampaign
    from kefu.tasks.surveys import campaign_title, progress
    from kefu.worktime import local_time

    policy = current_policy()
    with unit_of_work() as session:
        for campaign in session.scalars(select(SurveyCampaign).order_by(SurveyCampaign.id)):
            total = progress(session, campaign.id)[-1]
            state = "closed" if campaign.closed_at else f"open until {local_time(campaign.closes_at, policy.timezone)}"
            print(
                f"{campaign.id}  {campaign_title(campaign)}  {state}  invited {total[1]}, opened {total[2]}, "
                f"answered {total[3]}  — {campaign.reason}"
            )
    return 0


def run_results(args: argparse.Namespace) -> int:
    from kefu.models.db import unit_of_work
    from kefu.models.policy import current_policy
    from kefu.models.surveys import SurveyCampaign
    from kefu.tasks.surveys import results

    policy = current_policy()
    with unit_of_work() as session:
        if session.get(SurveyCampaign, args.campaign) is None:
            raise UsageError(f"no survey campaign {args.campaign}")
        figures = results(session, policy, args.campaign)
    for row in figures.table():
        print(f"{row['指标']}\t{row['数值']}\t{row['答卷数']}")
    return 0
