"""The summary above a complaint step's form in the Prefect UI: what the person needs to decide, in zh-CN.

Prefect shows it to everyone who can open the run (the open-source server has no roles), so it carries what a
decision needs — the complaint's content, order, product and place, the deadline of the step, the rules'
proposal — with phone, ID numbers and e-mail addresses masked, the place only to its city (at intake it is the
customer's address too), and no customer name or contact: those are on
Kefu's own case page behind sign-in, which the summary links to. Times are Shanghai time to the minute with
the offset; a missing value reads 未填写, a flag 是/否: never a Python literal.

The summary is written once, when the run starts waiting on a step (Prefect keeps the first one saved for a
step's key), so it says when it was written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu.models.answers import CustomerAnswerLink
from kefu.models.complaints import CaseEvent, Complaint, Milestone
from kefu.models.enums import CHANNEL_ZH, ComplaintStatus, MilestoneId, Severity
from kefu.models.policy import Policy
from kefu.notifications.pii import mask_email, mask_pii
from kefu.settings import get_settings
from kefu.tasks.casework import is_key_account, propose_severity
from kefu.tasks.customer_data import mask_address
from kefu.worktime import local_time, yes_no

NOT_GIVEN = "未填写"
STATUS_WORDS = {  # as staff call the stages of a case
    ComplaintStatus.REGISTERED: "已登记，待定级",
    ComplaintStatus.CLASSIFIED: "已定级",
    ComplaintStatus.INVESTIGATING: "调查中",
    ComplaintStatus.PROPOSING: "制定方案中",
    ComplaintStatus.AWAITING_APPROVAL: "方案待客户确认",
    ComplaintStatus.RESOLVING: "按方案处理中",
    ComplaintStatus.RESOLVED: "已处理，待回访",
    ComplaintStatus.CLOSED: "已结案",
}
RUNG_WORDS = {"owner": "负责人", "supervisor": "上级主管", "senior_manager": "高层管理人员"}


def masked(text: str | None) -> str:
    """Free text a customer wrote, for a page anyone with Prefect access reads: phones, IDs, e-mails masked."""
    if text is None or not text.strip():
        return NOT_GIVEN
    return mask_email(mask_pii(text.strip()))


def masked_place(text: str | None) -> str:
    """The place of the problem: at intake it is also the customer's address, so only its first characters
    (province and city, as a rule) — the full address is on Kefu's case page, by role."""
    if text is None or not text.strip():
        return NOT_GIVEN
    return mask_address(masked(text))


def severity_name(policy: Policy, severity: Severity) -> str:
    return policy.complaints.severities[severity].name


def milestone_name(policy: Policy, severity: Severity, milestone: MilestoneId) -> str:
    """The policy's name of a milestone (that of another severity for one kept from before a reclassification)."""
    return policy.complaints.milestone_name(severity, milestone)


def rule_reason(why: str) -> str:
    """One reason of the rules' proposal (``keyword:丢件``, ``order_amount>=5000``, ...) in words."""
    kind, _, value = why.partition(":")
    if kind == "keyword":
        return f"内容含「{value}」"
    if kind == "example":
        return f"内容含制度示例「{value}」"
    if why.startswith("order_amount>="):
        return f"订单金额不低于 {Decimal(why.removeprefix('order_amount>=')):,.0f} 元"
    return {"key_account": "重点客户", "urgent": "紧急投诉"}.get(why, why)


def amount(value: Decimal | None) -> str:
    return NOT_GIVEN if value is None else f"{value:,.2f} 元"


def milestone_state(row: Milestone) -> str:
    if row.met_at is not None:
        return f"已完成（{local_time(row.met_at)}）"
    if row.breached_at is not None:
        rungs = list(RUNG_WORDS.values())
        level = f"，已升级至{rungs[min(row.escalation_level, len(rungs) - 1)]}" if row.escalation_level else ""
        return f"**已超时**{level}"
    return "待完成"


def milestone_line(policy: Policy, complaint: Complaint, row: Milestone) -> str:
    name = milestone_name(policy, complaint.severity, row.milestone)
    due = "按方案承诺的时间（尚未承诺）" if row.due_at is None else f"{local_time(row.due_at)} 前"
    provisional = "（暂定：该年节假日安排尚未公布）" if row.provisional else ""
    return f"{name}：{due}{provisional} · {milestone_state(row)}"


def step_deadlines(policy: Policy, complaint: Complaint, meets: Iterable[str]) -> list[str]:
    """The deadlines a step completes; for a step that completes none, the case's next open deadline."""
    wanted = set(meets)
    rows = [m for m in complaint.milestones if m.milestone.value in wanted]
    label = "本步骤期限"
    if not rows:
        open_rows = sorted((m for m in complaint.milestones if m.met_at is None and m.due_at), key=_due)
        rows, label = open_rows[:1], "下一个期限"
    if not rows:
        return [f"- **{label}**：无"]
    return [f"- **{label}**：{milestone_line(policy, complaint, row)}" for row in rows]


def _due(row: Milestone) -> dt.datetime:
    assert row.due_at is not None
    return row.due_at if row.due_at.tzinfo else row.due_at.replace(tzinfo=dt.UTC)


def last_refusal(session: Session, complaint: Complaint, step: str) -> str | None:
    rows = session.scalars(
        select(CaseEvent)
        .where(CaseEvent.complaint_id == complaint.id, CaseEvent.action == "step_refused")
        .order_by(CaseEvent.id.desc())
    ).all()
    return next((str(row.data.get("reason")) for row in rows if row.data.get("step") == step), None)


def approval_lines(session: Session, complaint: Complaint) -> list[str]:
    """How the customer answers the current proposal: by the link in the proposal message, or by phone (staff)."""
    link = session.scalars(
        select(CustomerAnswerLink)
        .where(CustomerAnswerLink.complaint_id == complaint.id)
        .order_by(CustomerAnswerLink.id.desc())
        .limit(1)
    ).first()
    if link is None:
        return ["客户答复后，请填写您的员工编号并记录客户的意见。"]
    if link.decided_at is not None:
        answer = "同意" if link.accepted else "不同意"
        return [f"**客户已于 {local_time(link.decided_at)} 通过确认链接答复：{answer}**，本步骤将自动完成。"]
    return [
        f"方案已发送给客户，附确认链接（有效期至 {local_time(link.expires_at)}）：客户通过链接答复后本步骤自动完成。"
        "客户通过电话等方式答复时，请填写您的员工编号并记录客户的意见（「客户确认链接编号」请留空）。"
    ]


def case_page(case_no: str) -> str:
    return get_settings().case_page_url.replace("{case_no}", case_no)


def render_step_summary(
    session: Session,
    policy: Policy,
    complaint: Complaint,
    *,
    step: str,
    title: str,
    meets: Iterable[str],
    now: dt.datetime,
) -> str:
    """The markdown shown above the form of ``step`` (named ``title``) of ``complaint``."""
    case_no = complaint.case_no
    urgent = "【紧急投诉】" if complaint.urgent else ""  # seed 003 §3.1: every summary of an urgent case says so
    lines = [f"### {urgent}{title} · 投诉 {case_no}", ""]
    refusal = last_refusal(session, complaint, step)
    if refusal:
        lines += [f"> **上次提交未被接受**：{refusal}。请修改后重新提交。", ""]
    lines += step_deadlines(policy, complaint, meets)
    lines += [
        f"- **投诉内容**：{masked(complaint.content)}",
        f"- **订单**：{masked(complaint.order_ref)}（订单金额：{amount(complaint.order_amount)}）",
        f"- **产品或服务**：{masked(complaint.product)}",
        f"- **发生地点**：{masked_place(complaint.place)}",
        f"- **问题发生时间**：{local_time(complaint.problem_at) if complaint.problem_at else NOT_GIVEN}",
        f"- **受理**：{local_time(complaint.received_at)}，{CHANNEL_ZH.get(complaint.channel, complaint.channel)}",
        f"- **投诉等级**：{severity_name(policy, complaint.severity)}；**状态**：{STATUS_WORDS[complaint.status]}",
        f"- **紧急**：{yes_no(complaint.urgent)}；**重点客户**：{yes_no(is_key_account(complaint))}；"
        f"**负责人员工编号**：{NOT_GIVEN if complaint.owner_id is None else complaint.owner_id}；"
        f"**重新处理次数**：{complaint.reopen_count}",
    ]
    if step == "classify":
        proposed, why = propose_severity(policy, complaint)
        reasons = "、".join(rule_reason(w) for w in why) or "未触发升级规则"
        proposal = f"**规则建议**：{severity_name(policy, proposed)}（{reasons}）"
        lines += ["", f"{proposal}。表单已预选此等级，直接提交即确认；改定须填写理由。", ""]
        lines += [f"- **{rule.name}**：{rule.criteria or NOT_GIVEN}" for rule in policy.complaints.severities.values()]
    if step == "approve":
        lines += ["", *approval_lines(session, complaint)]
    if step == "callback":
        reopen_below = policy.complaints.callback.reopen_below
        lines += ["", f"客户满意度低于 {reopen_below} 分时，本案将重新处理（直至客户满意）。"]
    lines += ["", "**全部期限**", ""]
    lines += [f"- {milestone_line(policy, complaint, row)}" for row in sorted(complaint.milestones, key=_sort_key)]
    lines += [
        "",
        f"客户姓名和联系方式不在此显示（电话等个人信息已隐去）。完整资料见 [Kefu 案件页]({case_page(case_no)})"
        "（需登录员工入口）。"
        "表单内容所有能打开 Prefect 的人都看得到：请勿在表单中填写客户的电话、证件号码、地址等个人信息。",
        "",
        f"摘要生成于 {local_time(now)}。",
    ]
    return "\n".join(lines)


def _sort_key(row: Milestone) -> tuple[int, dt.datetime]:
    return (0, _due(row)) if row.due_at is not None else (1, dt.datetime.max.replace(tzinfo=dt.UTC))
