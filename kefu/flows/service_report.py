"""The monthly service report to the key accounts' contacts (seed 001 §四.1): last month's KPIs mailed to each key
account once (``kefu.tasks.service_reports``), and a table artifact of what was sent (customer codes only).
Resumable: a re-run finds every account's report queued already and sends nothing new."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from kefu.flows.key_account_identification import scored_month
from kefu.models.base import utcnow
from kefu.models.db import unit_of_work
from kefu.models.policy import current_policy
from kefu.tasks.service_reports import ALREADY_QUEUED, ALREADY_SENT, SENT, ReportOutcome, send_service_reports
from kefu.worktime import local_time

REPORT_FLOW = "key-account-service-report"
ARTIFACT_KEY = "key-account-service-reports"
# A report is queued, not sent, by the run: a customer's mail waits in the outbox for the next send window.
OUTCOME_ZH = {
    SENT: "已排入发件箱",
    ALREADY_QUEUED: "此前已排入发件箱",
    ALREADY_SENT: "此前已发送",
    "no_address": "无联系邮箱",
    "no_figures": "无当月业务数据",
}
LEAVES_AT = "发出时间（北京时间）"


def report_table(outcomes: list[ReportOutcome], timezone: str) -> list[dict[str, str]]:
    """The artifact's rows: each key account by code, what happened and when its mail leaves (or left)."""
    return [
        {
            "客户编号": o.code,
            "结果": OUTCOME_ZH.get(o.outcome, o.outcome),
            LEAVES_AT: local_time(o.leaves_at, timezone),
            "未达标指标": o.below or "—",
        }
        for o in outcomes
    ]


@flow(name=REPORT_FLOW, log_prints=False)
def service_report(as_of: str | None = None) -> list[str]:
    """Mail the reports of ``as_of`` (YYYY-MM, default last month on the policy's clock); returns the codes sent."""
    policy = current_policy()
    month = scored_month(as_of, policy.timezone)
    with unit_of_work() as session:
        outcomes = send_service_reports(session, policy, month, utcnow())
    queued = sum(o.outcome == SENT for o in outcomes)
    create_table_artifact(
        key=ARTIFACT_KEY,
        table=report_table(outcomes, policy.timezone),
        description=f"## {month:%Y年%m月} 重点客户服务报告\n\n本次排入发件箱 {queued} 份"
        "（客户邮件在发送时段内发出，见发出时间）。",
    )
    sent = [o.code for o in outcomes if o.outcome == SENT]
    get_run_logger().info("%s: %d service reports queued", f"{month:%Y-%m}", len(sent))
    return sent
