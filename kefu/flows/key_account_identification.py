"""The monthly identification of key accounts (seed 001 §二.1 重点客户识别): score every customer on business volume,
cooperation potential and industry influence (the policy's ``key_accounts.identification``), nominate each new
candidate at or above the threshold, and list them with the score's explanation as a table artifact. The month's
figures also open the improvement tasks of key accounts past a KPI target (seed 001 §三.4).

Each candidate gets one onboarding run (research → department reviews → senior approval:
``kefu.flows.key_account_onboarding``), opened by ``start_onboarding``.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from kefu.models.accounts import NominationSource
from kefu.models.db import unit_of_work
from kefu.models.people import Customer
from kefu.models.policy import current_policy
from kefu.tasks.accounts import Candidate, new_candidates, nominate, open_nomination

ARTIFACT_KEY = "key-account-candidates"


def scored_month(as_of: str | None, zone: str) -> dt.date:
    """The month scored: ``as_of`` (YYYY-MM or a day), else last month on the policy's clock (its figures are in)."""
    if as_of:
        return dt.date.fromisoformat(as_of if len(as_of) > 7 else f"{as_of}-01").replace(day=1)
    today = dt.datetime.now(ZoneInfo(zone)).date()
    return (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)


@task(task_run_name="score every customer for {month}")
def score_customers(month: dt.date) -> list[Candidate]:
    with unit_of_work() as session:
        return new_candidates(session, current_policy(), month)


@task(task_run_name="nominate {candidate.code}")
def record_nomination(candidate: Candidate, month: dt.date) -> int:
    """The candidate's nomination (source ``scoring``, with its score and explanation); idempotent: a customer with
    an open nomination keeps it."""
    with unit_of_work() as session:
        existing = open_nomination(session, candidate.customer_id)
        if existing is not None:
            return existing.id
        customer = session.get(Customer, candidate.customer_id)
        assert customer is not None
        row = nominate(
            session, customer, source=NominationSource.SCORING, month=month, score=candidate.score,
            explanation=candidate.explanation,
        )  # fmt: skip
        return row.id


def start_onboarding(nomination_id: int, code: str) -> None:
    """One onboarding run per nomination (``kefu.flows.key_account_onboarding``), named after the customer's code and
    tagged ``key-account-onboarding``; a nomination whose run cannot be opened now (no onboarding deployment, Prefect
    not answering) stays open and the deadline duty opens its run later."""
    from kefu.flows.key_account_onboarding import start_onboarding as open_run

    logger = get_run_logger()
    try:
        run_id = open_run(nomination_id, code)
    except Exception as exc:
        logger.warning(
            "nomination %s (%s): onboarding run not opened now (%s); the duty retries", nomination_id, code, exc
        )
        return
    logger.info("nomination %s (%s): onboarding run %s", nomination_id, code, run_id)


def publish_candidates(month: dt.date, candidates: list[Candidate], threshold: float) -> None:
    create_table_artifact(
        key=ARTIFACT_KEY,
        table=[
            {"客户编号": c.code, "行业": c.industry or "—", "得分": round(c.score, 2), "评分说明": c.explanation}
            for c in candidates
        ],
        description=(
            f"## {month:%Y年%m月} 重点客户识别\n\n新候选客户 {len(candidates)} 家（得分 ≥ {threshold:g}，"
            "按业务量、合作潜力、行业影响力评分；已是重点客户或已被推荐的不再列出）。"
        ),
    )


@task(task_run_name="improvement tasks for {month}")
def open_improvement_tasks(month: dt.date) -> list[str]:
    """A key account's month past a KPI target opens an improvement task for its project manager (seed 001 §三.4),
    once per account, month and KPI."""
    from kefu.tasks.account_followthrough import open_improvement_tasks as open_tasks

    with unit_of_work() as session:
        return open_tasks(session, current_policy(), since=month)


@flow(name="key-account-identification", log_prints=False)
def key_account_identification(as_of: str | None = None) -> list[str]:
    """Score the month (``as_of``: YYYY-MM, default last month), nominate the new candidates, publish the table;
    returns the candidates' codes."""
    policy = current_policy()
    month = scored_month(as_of, policy.timezone)
    candidates = score_customers(month)
    for candidate in candidates:
        nomination_id = record_nomination(candidate, month)
        start_onboarding(nomination_id, candidate.code)
    publish_candidates(month, candidates, policy.key_accounts.identification.threshold)
    tasks = open_improvement_tasks(month)
    if tasks:
        get_run_logger().info("%s: improvement tasks opened: %s", f"{month:%Y-%m}", ", ".join(tasks))
    get_run_logger().info("%s: %d new key-account candidates", f"{month:%Y-%m}", len(candidates))
    return [c.code for c in candidates]
