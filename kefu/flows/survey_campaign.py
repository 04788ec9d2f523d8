"""Satisfaction survey campaigns (seed 003 §4), read top to bottom.

``survey_campaign`` opens a campaign (the yearly one for all customers and the key accounts' at the policy's
cadence by schedule, an ad hoc one with ``kefu survey launch``), invites the segment's customers within the fatigue
cap, and leaves on its run page the invitations' progress, who was skipped and why, and the campaign's progress by
segment. It then ends: nobody's answer is awaited by a suspended run.

``survey_sweep`` runs daily (the policy's ``sweep_schedule``): for every open campaign it publishes the progress so
far (invited, opened, answered by segment; answered/invited as a progress artifact), and closes the campaigns whose
links have expired, publishing their results (average per dimension, NPS, response rate) as a table artifact.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.runtime import flow_run

from kefu.models.db import unit_of_work
from kefu.models.policy import current_policy
from kefu.models.surveys import CampaignKind, Segment, SurveyCampaign
from kefu.tasks.surveys import campaign_title, invite, open_campaign, open_campaigns, progress, results
from kefu.worktime import calendar_for

PROGRESS_COLUMNS = ("客户类别", "已邀请", "已打开", "已答复")


def _now(at: dt.datetime | None) -> dt.datetime:
    return at or dt.datetime.now(dt.UTC)


def _progress_table(campaign_id: int) -> list[dict[str, Any]]:
    with unit_of_work() as session:
        rows = progress(session, campaign_id)
    return [dict(zip(PROGRESS_COLUMNS, row, strict=True)) for row in rows]


def publish_progress(campaign: int, title: str) -> list[dict[str, Any]]:
    table = _progress_table(campaign)
    total = table[-1]
    create_table_artifact(
        key=f"survey-{campaign}-progress",
        table=table,
        description=f"满意度调查{campaign}（{title}）进度：按客户类别的邀请、打开与答复人数",
    )
    share = 100.0 * total["已答复"] / total["已邀请"] if total["已邀请"] else 0.0
    create_progress_artifact(
        progress=min(share, 100.0),
        key=f"survey-{campaign}-answered",
        description=f"满意度调查{campaign}：已答复/已邀请",
    )
    return table


def publish_results(campaign_id: int, title: str) -> None:
    """The campaign's results as a table artifact: average per dimension, NPS, response rate."""
    policy = current_policy()
    with unit_of_work() as session:
        figures = results(session, policy, campaign_id)
    create_table_artifact(
        key=f"survey-{campaign_id}-results",
        table=figures.table(),
        description=(
            f"满意度调查{campaign_id}（{title}）结果：各维度平均分（{policy.surveys.scale.low}–"
            f"{policy.surveys.scale.high}分）、净推荐值、回复率（{figures.answered}/{figures.invited}）"
        ),
    )


def mark_closed(campaign_id: int, now: dt.datetime) -> None:
    with unit_of_work() as session:
        found = session.get(SurveyCampaign, campaign_id)
        assert found is not None
        found.closed_at = now


@flow(name="survey-campaign", log_prints=False)
def survey_campaign(
    segment: str = "all",
    reason: str = "",
    kind: str = "ad_hoc",
    launched_by: str = "schedule",
    at: dt.datetime | None = None,
) -> dict[str, Any]:
    """Open a campaign for ``segment`` (all, key, general) and invite its customers (see the module docstring)."""
    policy = current_policy()
    calendar = calendar_for(policy)
    now = _now(at)
    with unit_of_work() as session:
        campaign = open_campaign(
            session, policy, calendar, kind=CampaignKind(kind), segment=Segment(segment), reason=reason,
            launched_by=launched_by, now=now,
        )  # fmt: skip
        campaign_id, title = campaign.id, campaign_title(campaign)
    sending: UUID = create_progress_artifact(  # type: ignore[assignment]  # sync in a sync flow
        progress=0.0, key=f"survey-{campaign_id}-inviting", description=f"满意度调查{campaign_id}：发出邀请"
    )

    def moved(done: int, total: int) -> None:
        if total and (done == total or done % 50 == 0):
            update_progress_artifact(artifact_id=sending, progress=100.0 * done / total)

    with unit_of_work() as session:
        found = session.get(SurveyCampaign, campaign_id)
        assert found is not None
        report = invite(session, policy, calendar, found, now, on_progress=moved)
    update_progress_artifact(artifact_id=sending, progress=100.0)
    create_markdown_artifact(
        key=f"survey-{campaign_id}-summary", markdown=report.markdown(title), description="邀请与未邀请的客户（及原因）"
    )
    publish_progress(campaign_id, title)
    get_run_logger().info(
        "survey campaign %s: %d invited, %d skipped", campaign_id, len(report.invited), len(report.skipped)
    )
    return {
        "campaign": campaign_id,
        "invited": len(report.invited),
        "skipped": len(report.skipped),
        "flow_run": str(flow_run.id),
    }


@flow(name="survey-sweep", log_prints=False)
def survey_sweep(at: dt.datetime | None = None) -> dict[str, Any]:
    """Progress of every open campaign; close the expired ones and publish their results."""
    now = _now(at)
    with unit_of_work() as session:
        campaigns = [(c.id, campaign_title(c), c.closes_at) for c in open_campaigns(session)]
    closed = []
    for campaign_id, title, closes_at in campaigns:
        publish_progress(campaign_id, title)
        if now < closes_at:
            continue
        publish_results(campaign_id, title)
        mark_closed(campaign_id, now)  # once its results are on the run page: a failed sweep publishes them again
        closed.append(campaign_id)
    get_run_logger().info("surveys: %d open, closed %s", len(campaigns) - len(closed), closed or "none")
    return {"open": [c[0] for c in campaigns if c[0] not in closed], "closed": closed, "flow_run": str(flow_run.id)}
