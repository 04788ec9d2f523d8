"""Deployments: what Kefu serves — which flows, on which schedules and triggers, described how.

Every part of Kefu adds its deployments to ``all_deployments``. They are deployments of the work pool ``kefu``
(entrypoints in the installed ``kefu`` package, no source to pull); ``kefu worker`` registers them at start and
Kefu workers execute their runs (``kefu.engine.worker``, the Prefect adapter's side: how they are executed). Cron
schedules run on the policy file's time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Served:
    """A deployment and its flow. ``resumable``: the flow may be re-run from the top at any moment (every side
    effect keyed in the database), so a run orphaned by a crashed worker is simply run again. It travels to the
    workers as the deployment's job variable ``resumable``."""

    flow: Any
    deployment: Any
    resumable: bool = False

    @property
    def name(self) -> str:
        return str(self.deployment.name)


def on_the_pool(flow: Any, *, resumable: bool = False, **options: Any) -> Served:
    """A deployment of ``flow`` on Kefu's work pool, found by the workers as a module path of the installed package."""
    from prefect.types.entrypoint import EntrypointType

    from kefu.engine.contract import WORK_POOL

    deployment = flow.to_deployment(
        work_pool_name=WORK_POOL,
        entrypoint_type=EntrypointType.MODULE_PATH,
        job_variables={"resumable": resumable},
        **options,
    )
    return Served(flow, deployment, resumable=resumable)


def all_deployments() -> list[Served]:
    """The deployments Kefu's workers execute (imports flows lazily: start-up stays light)."""
    from prefect.schedules import Cron

    from kefu.engine.contract import COMPLAINT_CASE_DEPLOYMENT_NAME
    from kefu.flows.backup import backup
    from kefu.flows.calendar_check import calendar_check
    from kefu.flows.case_deadlines import case_deadlines
    from kefu.flows.complaint_case import complaint_case
    from kefu.flows.deliver_mail import deliver_mail
    from kefu.models.policy import current_policy

    policy = current_policy()
    timezone = policy.timezone  # the policy's clock: "08:00" is 08:00 where the staff work
    return [
        on_the_pool(
            calendar_check,
            name="calendar-check",
            schedule=Cron("0 8 * * *", timezone=timezone),
            tags=["kefu", "calendar"],
            description="每天08:00列出未来的节假日与调休，提醒尚未确认的年度日历。",
        ),
        on_the_pool(
            complaint_case,
            resumable=True,
            name=COMPLAINT_CASE_DEPLOYMENT_NAME,
            tags=["kefu", "complaint"],
            description="投诉处理流程：受理→分级→联系→调查→方案→客户确认→处理→回访→结案。",
        ),
        on_the_pool(
            case_deadlines,
            resumable=True,
            name="case-deadlines",
            schedule=Cron("* * * * *", timezone=timezone),
            tags=["kefu", "deadlines"],
            description="每分钟检查投诉时限：预警、超时升级与提醒（数据库为准，不重复发送）。",
        ),
        on_the_pool(
            deliver_mail,
            name="deliver-mail",
            schedule=Cron("* * * * *", timezone=timezone),
            concurrency_limit=1,  # one delivery pass at a time: passes do not claim rows
            tags=["kefu", "mail"],
            description="每分钟发送到期邮件（客户邮件在工作时间段内发出），并更新死信列表。",
        ),
        Served(
            backup,
            backup.to_deployment(
                name="backup",
                schedule=Cron(policy.backups.schedule, timezone=timezone),
                concurrency_limit=1,
                tags=["kefu", "backup"],
                description="按策略定时备份客户资料（Kefu 数据库），成功后删除过期备份（始终保留最新几份）。",
            ),
        ),
    ]
