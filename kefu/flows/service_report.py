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
from kefu.tasks.service_reports import SENT, send_service_reports

REPORT_FLOW = "key-account-service-report"
ARTIFACT_KEY = "key-account-service-reports"
OUTCOME_ZH = {SENT: "已发送", "already_sent": "此前已发送", "no_address": "无联系邮箱", "no_figures": "无当月业务数据"}


@flow(name=REPORT_FLOW, log_prints=False)
def service_report(as_of: str | None = None) -> list[str]:
    """Mail the reports of ``as_of`` (YYYY-MM, default last month on the policy's clock); returns the codes sent."""
    policy = current_policy()
    month = scored_month(as_of, policy.timezone)
    with unit_of_work() as session:
        outcomes = send_service_reports(session, policy, month, utcnow())
    create_table_artifact(
        key=ARTIFACT_KEY,
        table=[
            {"客户编号": o.code, "结果": OUTCOME_ZH.get(o.outcome, o.outcome), "未达标指标": o.below or "—"}
            for o in outcomes
        ],
        description=f"## {month:%Y年%m月} 重点客户服务报告\n\n本次发送 {sum(o.outcome == SENT for o in outcomes)} 份。",
    )
    sent = [o.code for o in outcomes if o.outcome == SENT]
    get_run_logger().info("%s: %d service reports queued", f"{month:%Y-%m}", len(sent))
    return sent
