"""Deployments: what Kefu serves — which flows, on which schedules and triggers, described how.

Every part of Kefu adds its deployments to ``all_deployments``. They are deployments of the work pool ``kefu``
(entrypoints in the installed ``kefu`` package, no source to pull); ``kefu worker`` registers them at start and
Kefu workers execute their runs (``kefu.engine.worker``, the Prefect adapter's side: how they are executed). Cron
schedules run on the policy file's time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SHIFT_START = "0 0 * * *"  # a duty's daily run starts at midnight, the policy's


@dataclass(frozen=True)
class Served:
    """A deployment and its flow. ``resumable``: the flow may be re-run from the top at any moment (every side
    effect keyed in the database), so a run orphaned by a crashed worker is simply run again. It travels to the
    workers as the deployment's job variable ``resumable``. ``duty``: a day-long shift (``kefu.engine.shift``): the
    workers keep one run of it on shift (job variable ``duty``)."""

    flow: Any
    deployment: Any
    resumable: bool = False
    duty: bool = False

    @property
    def name(self) -> str:
        return str(self.deployment.name)


def on_the_pool(flow: Any, *, resumable: bool = False, duty: bool = False, **options: Any) -> Served:
    """A deployment of ``flow`` on Kefu's work pool, found by the workers as a module path of the installed package.

    ``duty``: a shift of one run a day (resumable, one at a time, started at midnight on the policy's clock and by
    the workers when none is on shift)."""
    from prefect.types.entrypoint import EntrypointType

    from kefu.engine.contract import WORK_POOL

    deployment = flow.to_deployment(
        work_pool_name=WORK_POOL,
        entrypoint_type=EntrypointType.MODULE_PATH,
        job_variables={"resumable": resumable or duty, "duty": duty},
        **options,
    )
    return Served(flow, deployment, resumable=resumable or duty, duty=duty)


def all_deployments() -> list[Served]:
    """The deployments Kefu's workers execute (imports flows lazily: start-up stays light)."""
    from prefect.schedules import Cron

    from kefu.engine.contract import (
        ASSESSMENT_FLOW,
        ASSESSMENT_RUN_TAGS,
        CASE_RUN_TAGS,
        COMPLAINT_CASE_DEPLOYMENT_NAME,
        ONBOARDING_FLOW,
        ONBOARDING_RUN_TAGS,
        REVIEW_FLOW,
        SHEET_FLOW,
    )
    from kefu.flows.backup import backup
    from kefu.flows.calendar_check import calendar_check
    from kefu.flows.case_deadlines import case_deadlines
    from kefu.flows.complaint_case import complaint_case
    from kefu.flows.contact_cadence import contact_cadence
    from kefu.flows.deliver_mail import deliver_mail
    from kefu.flows.enquiry import ENQUIRY_FLOW, ENQUIRY_RUN_TAGS, enquiry
    from kefu.flows.feedback import FEEDBACK_FLOW, FEEDBACK_RUN_TAGS, feedback
    from kefu.flows.holiday_greeting import holiday_greeting
    from kefu.flows.key_account_identification import key_account_identification
    from kefu.flows.key_account_onboarding import key_account_onboarding, onboarding_review
    from kefu.flows.quality_check import quality_check, quality_review
    from kefu.flows.routine_callbacks import routine_callback, routine_callbacks
    from kefu.flows.service_plan import PART_FLOW, PLAN_FLOW, PLAN_TAGS, service_plan, service_plan_part
    from kefu.flows.service_report import REPORT_FLOW, service_report
    from kefu.flows.staff_assessment import assessment_sheet, staff_assessment
    from kefu.flows.statistics_report import statistics_report
    from kefu.flows.suggestions_report import suggestions_report
    from kefu.flows.survey_campaign import survey_campaign, survey_sweep
    from kefu.models.policy import current_policy

    policy = current_policy()
    surveys = policy.surveys
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
            tags=list(CASE_RUN_TAGS),  # every case run carries them, ``kefu:case`` among them
            description="投诉处理流程：受理→分级→联系→调查→方案→客户确认→处理→回访→结案。",
        ),
        on_the_pool(
            enquiry,
            resumable=True,  # every step and reply keyed in the database
            name=ENQUIRY_FLOW,
            tags=list(ENQUIRY_RUN_TAGS),
            description="咨询处理流程：受理→直接答复（10分钟内）或转部门（1小时内给出解决方案）→询问是否还有其他问题→结束；可一键转为投诉。",
        ),
        on_the_pool(
            feedback,
            resumable=True,  # every answer, reply and closing keyed in the database
            name=FEEDBACK_FLOW,
            tags=list(FEEDBACK_RUN_TAGS),
            description="客户反馈与建议：记录并转责任部门→部门在时限内答复（建议判断是否合理），回复客户→跟进告知客户→结束。",
        ),
        on_the_pool(
            suggestions_report,
            resumable=True,  # it writes only its artifact
            name="suggestions-report",
            schedule=Cron(policy.reports.monthly_schedule, timezone=timezone),
            concurrency_limit=1,
            tags=["kefu", "reports", "feedback"],
            description="每月按月报时间，列出上月客户的合理化建议（已由责任部门答复客户）及超时未答复的反馈，供管理层审阅。",
        ),
        # The duties: one run a day each that works on every minute (``kefu.engine.shift``), not a run a minute
        # burying the cases in the Runs list; one at a time (passes do not claim rows).
        on_the_pool(
            case_deadlines,
            duty=True,
            name="case-deadlines",
            schedule=Cron(SHIFT_START, timezone=timezone),
            concurrency_limit=1,
            tags=["kefu", "duty", "deadlines"],
            description="每天一个运行，全天每分钟检查投诉时限：预警、超时升级与提醒（数据库为准，不重复发送）。",
        ),
        on_the_pool(
            deliver_mail,
            duty=True,
            name="deliver-mail",
            schedule=Cron(SHIFT_START, timezone=timezone),
            concurrency_limit=1,
            tags=["kefu", "duty", "mail"],
            description="每天一个运行，全天每分钟发送到期邮件（客户邮件在工作时间段内发出），并更新死信列表。",
        ),
        on_the_pool(
            holiday_greeting,
            resumable=True,  # every greeting is keyed by holiday and customer
            name="holiday-greeting",
            schedule=Cron("30 8 * * *", timezone=timezone),
            concurrency_limit=1,
            tags=["kefu", "greetings"],
            description="每天08:30按策略在法定节假日前向客户发送节日问候（每位客户每个节日一次，遵守消息频次上限）。",
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
        # The statistics reports (policy ``reports``): the last complete week / month, on the policy's clock.
        # Resumable: a re-run rewrites the same files and queues no second mail.
        on_the_pool(
            statistics_report,
            resumable=True,
            name="report-weekly",
            parameters={"kind": "weekly"},
            schedule=Cron(policy.reports.weekly_schedule, timezone=timezone),
            tags=["kefu", "report"],
            description="每周投诉统计周报（上一完整周）：网页报告、Excel工作簿与运行页上的统计表，邮件发送管理层。",
        ),
        on_the_pool(
            statistics_report,
            resumable=True,
            name="report-monthly",
            parameters={"kind": "monthly"},
            schedule=Cron(policy.reports.monthly_schedule, timezone=timezone),
            tags=["kefu", "report"],
            description="每月投诉统计月报（上一完整月）：网页报告、Excel工作簿与运行页上的统计表，邮件发送管理层。",
        ),
        # Key accounts (issue 15): the monthly scoring; nominations are keyed, so a re-run repeats nothing.
        on_the_pool(
            key_account_identification,
            resumable=True,
            name="key-account-identification",
            schedule=Cron(policy.key_accounts.identification_schedule, timezone=timezone),
            concurrency_limit=1,
            tags=["kefu", "key-account"],
            description="每月按业务量、合作潜力、行业影响力为全部客户评分，列出达到门槛的新候选重点客户（附评分说明）。",
        ),
        # Contact cadence (seed 003 §2.3, policy ``contact_cadence``): daily, working days only (the run checks);
        # every reminder and escalation keyed by customer, gap and period, so a re-run tells nobody twice.
        on_the_pool(
            contact_cadence,
            resumable=True,
            name="contact-cadence",
            schedule=Cron(policy.contact_cadence.schedule, timezone=timezone),
            concurrency_limit=1,
            tags=["kefu", "key-account", "cadence"],
            description="每个工作日检查客户联系频率：重点客户每月电话或面对面联系、每季度业务回顾，一般客户每季度联系；期末前提醒负责人，逾期升级至其主管（同一缺口只提醒一次）。",
        ),
        # Satisfaction surveys (seed 003 §4, policy ``surveys``): the yearly campaign for all customers, the key
        # accounts' at their cadence (not in the yearly campaign's months), and the daily sweep that publishes
        # progress and closes expired campaigns. Resumable: a scheduled campaign is found again the same day and
        # every invitation is keyed by campaign and customer.
        on_the_pool(
            survey_campaign,
            resumable=True,
            name="survey-yearly",
            parameters={"segment": "all", "kind": "yearly", "reason": "年度全面客户满意度调查"},
            schedule=Cron(surveys.cron(surveys.full_survey_every_months), timezone=timezone),
            tags=["kefu", "survey"],
            description="每年至少一次全面客户满意度调查：向全部客户发送问卷邀请（遵守调查频次上限），运行页显示进度。",
        ),
        on_the_pool(
            survey_campaign,
            resumable=True,
            name="survey-key-accounts",
            parameters={"segment": "key", "kind": "key_account", "reason": "重点客户定期满意度调查"},
            schedule=Cron(
                surveys.cron(surveys.key_account_survey_every_months, besides=surveys.full_survey_every_months),
                timezone=timezone,
            ),
            tags=["kefu", "survey", "key-account"],
            description="按策略的频率向重点客户发送满意度问卷邀请（全面调查的月份除外），运行页显示进度。",
        ),
        on_the_pool(
            survey_sweep,
            resumable=True,
            name="survey-sweep",
            schedule=Cron(surveys.sweep_schedule, timezone=timezone),
            concurrency_limit=1,
            tags=["kefu", "survey"],
            description="每天更新进行中的满意度调查进度；链接到期的调查结束并公布结果（各维度平均分、NPS、回复率）。",
        ),
        # Onboarding: one run per nomination (research → parallel department reviews → senior approval), and one
        # review run per department, each suspended on its own form (``kefu.flows.key_account_onboarding``).
        on_the_pool(
            key_account_onboarding,
            resumable=True,
            name=ONBOARDING_FLOW,
            tags=list(ONBOARDING_RUN_TAGS),
            description="重点客户纳入流程：市场调研→各相关部门并行评审→高层审批→纳入（指定服务团队并通知）或不予纳入。",
        ),
        on_the_pool(
            onboarding_review,
            resumable=True,
            name=REVIEW_FLOW,
            tags=[*ONBOARDING_RUN_TAGS, "review"],
            description="重点客户纳入的部门评审：一个部门一个运行，同意或不同意并填写意见；全部评审提交后继续高层审批。",
        ),
        # Issue 17: routine callbacks (daily, working days) and the monthly quality check, each opening one run per
        # customer / sampled record that waits for a person (``kefu.flows.routine_callbacks``, ``quality_check``).
        on_the_pool(
            routine_callbacks,
            resumable=True,  # callbacks are keyed by customer and day, their runs by idempotency key
            name="routine-callbacks",
            schedule=Cron(policy.callbacks.schedule, timezone=timezone),
            concurrency_limit=1,
            tags=["kefu", "routine-callback"],
            description="每个工作日按策略找出到期的定期回访客户（遵守联系频次上限），为每位客户开启一个回访运行。",
        ),
        on_the_pool(
            routine_callback,
            resumable=True,
            name="routine-callback",
            tags=["kefu", "routine-callback"],
            description="定期回访一位客户：（邮件回访先发邮件）记录回访结果与满意度，发现的问题登记为投诉或跟进事项。",
        ),
        on_the_pool(
            quality_check,
            resumable=True,
            name="quality-check",
            schedule=Cron(policy.quality_checks.schedule, timezone=timezone),
            concurrency_limit=1,
            tags=["kefu", "quality-check"],
            description="每月随机（可复现）抽取每位客服人员上月的沟通记录，交其主管评分。",
        ),
        on_the_pool(
            quality_review,
            resumable=True,
            name="quality-review",
            tags=["kefu", "quality-check"],
            description="主管为一条沟通记录评分（准确性、礼貌、完整性、标准用语）；不合格的退回客服人员。",
        ),
        # Staff assessment (seed 004 §5): the monthly run opens last month's sheets on the first working day; one
        # sheet run per person and evaluator (self, supervisor), each suspended on its form
        # (``kefu.flows.staff_assessment``).
        on_the_pool(
            staff_assessment,
            resumable=True,
            name=ASSESSMENT_FLOW,
            schedule=Cron(policy.staff_assessment.schedule, timezone=timezone),
            concurrency_limit=1,
            tags=list(ASSESSMENT_RUN_TAGS),
            description="每月第一个工作日开启上月员工考核：计算工作业绩数据，为每位客服人员开启自我评价与上级评价（各有期限）。",
        ),
        on_the_pool(
            assessment_sheet,
            resumable=True,
            name=SHEET_FLOW,
            tags=[*ASSESSMENT_RUN_TAGS, "sheet"],
            description="员工考核表的一项评价（自我评价或上级评价）：1–5分评分并填写评语；全部完成或逾期后公布排名并邮件通知。",
        ),
        # Service plans (seed 001 §二.2): one run per plan, one part run per department (the onboarding's shape).
        on_the_pool(
            service_plan,
            resumable=True,
            name=PLAN_FLOW,
            tags=list(PLAN_TAGS),
            description="重点客户服务方案：项目经理了解需求并制定初步方案→各部门并行完善→高层审批（可退回修改）→签订服务协议。",
        ),
        on_the_pool(
            service_plan_part,
            resumable=True,
            name=PART_FLOW,
            tags=[*PLAN_TAGS, "part"],
            description="服务方案的部门完善：一个部门一个运行，提交本部门的方案内容与意见；全部提交后进入高层审批。",
        ),
        # The monthly service report to each key account's contact (seed 001 §四.1); keyed per account and month.
        on_the_pool(
            service_report,
            resumable=True,
            name=REPORT_FLOW,
            schedule=Cron(policy.key_accounts.service_report.schedule, timezone=timezone),
            concurrency_limit=1,
            tags=["kefu", "key-account", "report"],
            description="每月向每个重点客户的联系人发送上月服务报告（订单处理及时率、准时交付率、投诉率；未达标指标附改进承诺）。",
        ),
    ]
