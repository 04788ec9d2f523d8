"""Quality checks of communication records (seed 000 第五章 1, seed 003 §2.4; policy ``quality_checks``).

``quality-check`` runs on the 1st of each month for the month before: it draws the month's reproducible random
sample of each agent's communication records and starts one ``quality-review`` run per sampled record, for the
agent's supervisor (one run per record, named ``quality <month> #<review>``: a run suspends on one step at a time
and a suspended step cannot live in a subflow). The review run asks the supervisor's four scores (准确性、礼貌、
完整性、标准用语, 1–5) in a typed step; a flagged record goes back to the agent by internal mail with the reason.
"""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import ConfigDict, Field

from kefu.engine.contract import made_at
from kefu.engine.forms import StepForm
from kefu.engine.steps import HumanSteps, Step, StepRefused
from kefu.engine.waiting import RETRIES, RETRY_DELAY_SECONDS
from kefu.flows.contact_steps import ContactStepRecord
from kefu.models.contacts import QualityReview
from kefu.models.db import unit_of_work
from kefu.models.people import Staff
from kefu.models.policy import current_policy
from kefu.tasks import quality
from kefu.worktime import calendar_for, local_time

QUALITY_REVIEW_FLOW = "quality-review"
QUALITY_REVIEW_DEPLOYMENT = f"{QUALITY_REVIEW_FLOW}/{QUALITY_REVIEW_FLOW}"


def _score(title: str) -> int:
    return Field(ge=1, le=5, title=f"{title}（1–5）")  # type: ignore[no-any-return]


class QualityScoreInput(StepForm):
    model_config = ConfigDict(title="沟通记录质检评分")

    actor_staff_id: int = Field(title="您的员工编号", description="评分主管的员工编号。")
    accuracy: int = _score("准确性")
    courtesy: int = _score("礼貌")
    completeness: int = _score("完整性")
    standard_phrases: int = _score("标准用语")
    reason: str = Field(default="", title="原因", description="有评分不高于策略阈值时必填：将随记录退回客服人员。")


SCORE = Step("quality_score", QualityScoreInput, key="quality-score")


@flow(name="quality-check", log_prints=False)
def quality_check(year: int | None = None, month: int | None = None, at: dt.datetime | None = None) -> dict[str, int]:
    """Draw the month's sample (default: the month before ``at``) and start one review run per sampled record."""
    policy = current_policy()
    now = at or dt.datetime.now(dt.UTC)
    if year is None or month is None:
        year, month = quality.previous_month(now, policy.timezone)
    with unit_of_work() as session:
        reviews = [
            (r.id, r.agent_id, r.flow_run_id)
            for r in quality.open_reviews(session, policy, calendar_for(policy), year, month, now)
        ]
    lines = [f"# 沟通记录质检 {year}-{month:02d}", "", "| 质检编号 | 客服员工编号 |", "|---|---|"]
    lines += [f"| {review_id} | {agent_id} |" for review_id, agent_id, _ in reviews]
    create_markdown_artifact(key="quality-check", markdown="\n".join(lines), description="Quality-check sample")
    for review_id, _, run_id in reviews:
        if run_id is None:
            start_review_run(review_id, year, month)
    get_run_logger().info("quality check %d-%02d: %d records drawn", year, month, len(reviews))
    return {"drawn": len(reviews)}


def quality_review_idempotency_key(review_id: int, drawn_at: dt.datetime) -> str:
    """One review run per drawn record; ``drawn_at``: the review row's ``created_at`` (ids restart with a new
    database: ``made_at``)."""
    return f"quality-review:{review_id}:{made_at(drawn_at)}"


def start_review_run(review_id: int, year: int, month: int) -> None:
    from prefect.deployments import run_deployment

    with unit_of_work() as session:
        drawn_at = session.get_one(QualityReview, review_id).created_at
    run = run_deployment(
        QUALITY_REVIEW_DEPLOYMENT,
        parameters={"review_id": review_id},
        flow_run_name=f"quality {year}-{month:02d} #{review_id}",
        timeout=0,
        idempotency_key=quality_review_idempotency_key(review_id, drawn_at),
        tags=["kefu", "quality-check"],
        as_subflow=False,
    )
    with unit_of_work() as session:
        session.get_one(QualityReview, review_id).flow_run_id = str(run.id)  # type: ignore[union-attr]


@flow(
    name=QUALITY_REVIEW_FLOW,
    flow_run_name="quality review #{review_id}",
    persist_result=True,
    log_prints=False,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAY_SECONDS,
)
def quality_review(review_id: int) -> int:
    steps = HumanSteps(ContactStepRecord(f"quality:{review_id}", lambda step: review_summary(review_id)))
    steps.ask(SCORE, check=lambda answer: score(review_id, answer))
    return review_id


def score(review_id: int, answer: QualityScoreInput) -> None:
    """Scores by someone who may not give them, or a flag without its reason: refused (the step waits again)."""
    policy = current_policy()
    try:
        with unit_of_work() as session:
            review = session.get_one(QualityReview, review_id)
            quality.check_reviewer(session, review, answer.actor_staff_id)
            quality.score_review(
                session,
                policy,
                review,
                reviewer_id=answer.actor_staff_id,
                scores={k: getattr(answer, k) for k in quality.CRITERIA},
                reason=answer.reason,
                now=dt.datetime.now(dt.UTC),
            )
    except quality.ReviewRefused as refused:
        raise StepRefused(str(refused)) from refused


def review_summary(review_id: int) -> str:
    """Above the form: the record (personal data masked: Prefect shows it), the agent, the deadline."""
    policy = current_policy()
    with unit_of_work() as session:
        review = session.get_one(QualityReview, review_id)
        item = quality.reviewed(session, review)
        agent = session.get_one(Staff, review.agent_id)
        return "\n".join(
            [
                f"### 沟通记录质检 {review.year}-{review.month:02d}",
                f"- 客服人员：{agent.name}",
                f"- 时间：{local_time(item.at, policy.timezone)}（{item.how}）",
                f"- 内容：{quality.masked(item.text, item.customer)}",
                f"- 评分期限：{local_time(review.due_at, policy.timezone)}",
                "",
                f"各项 1–5 分；任一项不高于 {policy.quality_checks.flag_at_or_below} 分即退回客服人员改进"
                "（须写原因）。",
            ]
        )
