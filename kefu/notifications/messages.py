"""Message types, their templates and builders: one enum value, one template pair, one builder each."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, UndefinedError
from markupsafe import Markup, escape

from kefu.models.base import utcnow
from kefu.models.policy import DUE_PLACEHOLDER, current_policy
from kefu.notifications.lint import Category, Finding, html_text, lint_text
from kefu.notifications.pii import mask_pii
from kefu.worktime.display import customer_date, customer_time


class MessageType(StrEnum):
    COMPLAINT_ACKNOWLEDGEMENT = "complaint_acknowledgement"
    MAJOR_APOLOGY = "major_apology"
    PROGRESS_UPDATE = "progress_update"
    SOLUTION_PROPOSAL = "solution_proposal"
    RESOLUTION_NOTICE = "resolution_notice"
    CALLBACK_INVITATION = "callback_invitation"
    SUPERVISOR_ESCALATION = "supervisor_escalation"
    PRE_BREACH_WARNING = "pre_breach_warning"
    TASK_FORCE_ASSIGNMENT = "task_force_assignment"
    KEY_ACCOUNT_WELCOME = "key_account_welcome"
    CONTACT_CADENCE_REMINDER = "contact_cadence_reminder"
    CONTACT_CADENCE_OVERDUE = "contact_cadence_overdue"
    KPI_IMPROVEMENT_TASK = "kpi_improvement_task"
    FOLLOW_UP_DUE = "follow_up_due"
    HOLIDAY_GREETING = "holiday_greeting"
    CASE_CLOSURE = "case_closure"
    PROGRESS_CONTACT_DUE = "progress_contact_due"
    STATISTICS_REPORT = "statistics_report"
    SURVEY_INVITATION = "survey_invitation"
    SURVEY_LOW_SCORE = "survey_low_score"
    KEY_ACCOUNT_TEAM_ASSIGNMENT = "key_account_team_assignment"
    ONBOARDING_REVIEW_OVERDUE = "onboarding_review_overdue"
    # Standard phrases of seed 002 §三 that staff send on a case (``kefu message send``).
    ORDER_CHASE = "order_chase"
    FREIGHT_QUERY = "freight_query"
    DAMAGED_GOODS = "damaged_goods"
    PRODUCT_DOUBT = "product_doubt"
    MISSING_ACCESSORIES = "missing_accessories"
    # Enquiries (咨询, seed 002 §三): the answer to the customer, and the breach notice to the supervisor.
    ENQUIRY_REPLY = "enquiry_reply"
    ENQUIRY_ESCALATION = "enquiry_escalation"
    FEEDBACK_REPLY = "feedback_reply"  # the department's answer to a customer's feedback or suggestion
    # Issue 17: the routine callback by mail (seed 004 §四(四) 邮件回访), a quality-check finding back to the agent.
    ROUTINE_CALLBACK = "routine_callback"
    QUALITY_FLAGGED = "quality_flagged"
    # 员工月度考核 (seed 004 §5): the published sheets to each person and their supervisor; a missed step escalates.
    ASSESSMENT_SHEET = "assessment_sheet"
    ASSESSMENT_OVERDUE = "assessment_overdue"
    FEEDBACK_ESCALATION = "feedback_escalation"  # the department's deadline passed unanswered: up the ladder
    # Key-account service plans (seed 001 §二.2) and the monthly service report (seed 001 §四.1).
    SERVICE_PLAN_PART_OVERDUE = "service_plan_part_overdue"
    SERVICE_AGREEMENT_RENEWAL = "service_agreement_renewal"
    SERVICE_REPORT = "service_report"


@dataclass(frozen=True)
class Spec:
    """What a message type needs: its audience and the context keys that must show in the text."""

    internal: bool
    required: tuple[str, ...]
    urgent: bool = False


SPECS: dict[MessageType, Spec] = {
    MessageType.COMPLAINT_ACKNOWLEDGEMENT: Spec(False, ("case_no", "owner_name", "next_contact_at")),
    MessageType.MAJOR_APOLOGY: Spec(
        False, ("case_no", "owner_name", "task_force_lead", "commitment", "next_contact_at")
    ),
    MessageType.PROGRESS_UPDATE: Spec(False, ("case_no", "owner_name", "progress", "next_contact_at")),
    MessageType.SOLUTION_PROPOSAL: Spec(False, ("case_no", "owner_name", "solution", "reply_by", "answer_url")),
    MessageType.RESOLUTION_NOTICE: Spec(False, ("case_no", "owner_name", "resolution")),
    MessageType.CALLBACK_INVITATION: Spec(False, ("case_no", "owner_name", "callback_by")),
    MessageType.CASE_CLOSURE: Spec(False, ("case_no", "owner_name", "closed_at")),
    MessageType.PROGRESS_CONTACT_DUE: Spec(True, ("case_no", "severity", "due_at", "last_contact_at"), urgent=True),
    MessageType.SUPERVISOR_ESCALATION: Spec(
        True, ("case_no", "owner_name", "severity", "milestone", "due_at", "reason"), urgent=True
    ),
    MessageType.PRE_BREACH_WARNING: Spec(True, ("case_no", "milestone", "due_at"), urgent=True),
    MessageType.TASK_FORCE_ASSIGNMENT: Spec(True, ("case_no", "lead_name", "due_at"), urgent=True),
    MessageType.KEY_ACCOUNT_WELCOME: Spec(False, ("manager_name", "manager_phone")),
    MessageType.CONTACT_CADENCE_REMINDER: Spec(True, ("customer_name", "cadence", "due_at")),
    # 客户沟通频率 (seed 003 §2.3): a gap still open when its period is over, to the owner's supervisor.
    # 重点客户考核 (seed 001 §三.4): a KPI past its target opens an improvement task for the project manager.
    # 沟通记录的跟进事项 (seed 000 ch.4): an item due and not done, to its owner.
    MessageType.FOLLOW_UP_DUE: Spec(True, ("customer_code", "item", "due_on", "follow_up_id")),
    MessageType.KPI_IMPROVEMENT_TASK: Spec(True, ("customer_code", "month", "kpi_name", "value", "target")),
    MessageType.CONTACT_CADENCE_OVERDUE: Spec(
        True, ("customer_code", "customer_name", "cadence", "period", "due_at", "owner_name")
    ),
    MessageType.HOLIDAY_GREETING: Spec(False, ("holiday_name",)),
    # To management (policy ``reports.recipients``): the period's figures, the HTML and XLSX files attached.
    MessageType.STATISTICS_REPORT: Spec(True, ("period_title", "total")),
    # 客户满意度调查 (seed 003 §4): the invitation with its single-use link; a key account's low score to its team.
    MessageType.SURVEY_INVITATION: Spec(False, ("survey_title", "survey_url", "reply_by")),
    MessageType.SURVEY_LOW_SCORE: Spec(True, ("customer_code", "low_scores", "answer_id")),
    # Key-account onboarding (seed 001 §二.1): the admitted account's team is told; a missed review escalates.
    MessageType.KEY_ACCOUNT_TEAM_ASSIGNMENT: Spec(True, ("customer_code", "customer_name", "team_role")),
    MessageType.ONBOARDING_REVIEW_OVERDUE: Spec(True, ("customer_code", "department", "due_at"), urgent=True),
    MessageType.ORDER_CHASE: Spec(False, ("case_no", "owner_name", "order_status")),
    MessageType.FREIGHT_QUERY: Spec(False, ("case_no", "owner_name")),
    MessageType.DAMAGED_GOODS: Spec(False, ("case_no", "owner_name", "damage_detail")),
    MessageType.PRODUCT_DOUBT: Spec(False, ("case_no", "owner_name")),
    MessageType.MISSING_ACCESSORIES: Spec(False, ("case_no", "owner_name", "accessory")),
    MessageType.ENQUIRY_REPLY: Spec(False, ("enquiry_no", "owner_name", "reply")),
    MessageType.ENQUIRY_ESCALATION: Spec(True, ("enquiry_no", "owner_name", "target", "due_at"), urgent=True),
    MessageType.FEEDBACK_REPLY: Spec(False, ("feedback_no", "kind_name", "reply")),
    MessageType.ROUTINE_CALLBACK: Spec(False, ("owner_name",)),
    MessageType.QUALITY_FLAGGED: Spec(True, ("record_at", "customer_name", "summary", "scores", "reason", "reviewer")),
    MessageType.ASSESSMENT_SHEET: Spec(True, ("month",)),
    MessageType.ASSESSMENT_OVERDUE: Spec(True, ("month", "staff_name", "evaluator", "due_at"), urgent=True),
    MessageType.FEEDBACK_ESCALATION: Spec(True, ("feedback_no", "kind_name", "department", "due_at"), urgent=True),
    MessageType.SERVICE_PLAN_PART_OVERDUE: Spec(True, ("customer_code", "department", "due_at"), urgent=True),
    MessageType.SERVICE_AGREEMENT_RENEWAL: Spec(True, ("customer_code", "document_ref", "ends_on")),
    # To the key account's contact: last month's KPIs; a KPI below its floor named with the commitment.
    MessageType.SERVICE_REPORT: Spec(
        False, ("month_title", "order_on_time_rate", "delivery_on_time_rate", "complaint_rate")
    ),
}

# The seed 002 §三 scenarios staff answer with a standard-phrase message on a case, in the seed's own terms.
STANDARD_PHRASES: dict[MessageType, str] = {
    MessageType.ORDER_CHASE: "催货的客户",
    MessageType.FREIGHT_QUERY: "客户对运费产生质疑",
    MessageType.DAMAGED_GOODS: "客户收货破损处理",
    MessageType.PRODUCT_DOUBT: "客户对产品质疑",
    MessageType.MISSING_ACCESSORIES: "客户反映配套物缺少",
}


class MessageContextError(ValueError):
    """The caller's context is missing a value the message type needs (a programming error)."""


@dataclass(frozen=True)
class Rendered:
    message_type: MessageType
    internal: bool
    subject: str
    text: str
    html: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def zh_time(value: dt.datetime | str, tz: ZoneInfo) -> str:
    """A time as a message writes it: ``2026年12月2日 10:00（北京时间）`` (``customer_time``)."""
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise MessageContextError(f"naive datetime {value!r} in a message context")
    return customer_time(value, tz)


# A promise to the customer when the caller has none of the policy's customer wordings at hand.
DEFAULT_PROMISE = "我们将在" + DUE_PLACEHOLDER + "之前与您联系"


def _promise(wording: str, due: str) -> str:
    """The policy's customer wording (``我们将在{due}之前与您联系``) with the due time in place.

    Markup in (HTML part), Markup out."""
    before, _, after = wording.partition(DUE_PLACEHOLDER)
    return before + due + after


class Renderer:
    """Renders and lints messages; the jinja environments are built once.

    Besides the caller's context, every template gets ``signature`` (the policy's ``letters.signature``) and
    ``letter_date`` (the day the message is written, ``render(..., now=...)``, in the renderer's time zone)."""

    def __init__(self, tz: ZoneInfo | str | None = None, loader: Any = None, signature: str | None = None) -> None:
        """``tz``: where times are written in messages; ``signature``: who signs letters to customers; by default
        both from the policy in force."""
        if tz is None or signature is None:
            policy = current_policy()
            tz = policy.timezone if tz is None else tz
            signature = policy.letters.signature if signature is None else signature
        self.tz = ZoneInfo(tz) if isinstance(tz, str) else tz
        self.signature = signature
        loader = loader or PackageLoader("kefu.notifications", "templates")
        self.text_env = Environment(loader=loader, undefined=StrictUndefined, autoescape=False)  # noqa: S701 (plain-text part)
        self.html_env = Environment(loader=loader, undefined=StrictUndefined, autoescape=True)
        for env in (self.text_env, self.html_env):
            env.filters["zh_time"] = lambda v: zh_time(v, self.tz)
            env.globals["DEFAULT_PROMISE"] = DEFAULT_PROMISE
        self.text_env.filters["promise"] = lambda wording, due: _promise(wording, zh_time(due, self.tz))
        self.html_env.filters["promise"] = lambda wording, due: _promise(
            escape(wording), Markup("<strong>%s</strong>") % zh_time(due, self.tz)
        )

    def render(
        self, message_type: MessageType, context: Mapping[str, Any], *, now: dt.datetime | None = None
    ) -> Rendered:
        """Render both parts and lint them as their readers see them: the plain text, and the HTML part's text
        (a finding only the HTML part has says so). ``now``: the day the letter is dated (default: now)."""
        message_type = MessageType(message_type)
        spec = SPECS[message_type]
        missing = [k for k in spec.required if context.get(k) in (None, "")]
        if missing:
            raise MessageContextError(f"{message_type.value}: context lacks {', '.join(missing)}")
        values = {"signature": self.signature, "letter_date": customer_date(now or utcnow(), self.tz), **context}
        try:
            text_tmpl = self.text_env.get_template(f"{message_type.value}.txt.j2")
            full = text_tmpl.render(values)
            html = self.html_env.get_template(f"{message_type.value}.html.j2").render(values)
        except UndefinedError as exc:
            raise MessageContextError(f"{message_type.value}: {exc.message}") from exc
        subject, _, text = full.strip().partition("\n")
        text = text.strip() + "\n"
        if spec.internal:
            subject, text, html = mask_pii(subject), mask_pii(text), mask_pii(html)
        customer = not spec.internal
        findings = lint_text(subject + "\n" + text, customer_facing=customer, letter=customer)
        html_as_read = html_text(html)
        for finding in lint_text(html_as_read, customer_facing=customer, letter=customer):
            if finding not in findings:
                findings.append(Finding(finding.category, f"{finding.detail}（HTML版）"))
        for key in spec.required:
            shown = zh_time(context[key], self.tz) if isinstance(context[key], dt.datetime) else str(context[key])
            if spec.internal:
                shown = mask_pii(shown)
            if shown not in text and shown not in subject:
                findings.append(Finding(Category.MISSING_ELEMENT, key))
            elif shown not in html_as_read and escape(shown) not in html:  # a link's address is in its href
                findings.append(Finding(Category.MISSING_ELEMENT, f"{key}（HTML版）"))
        return Rendered(message_type, spec.internal, subject.strip(), text, html, findings)

    def render_body(self, message_type: MessageType, context: Mapping[str, Any]) -> str:
        """Only the ``body`` block of the text version (no subject, greeting or closing): what an SMS is made of.

        A template with an ``sms`` block gives that instead (a body too long for a phone); one without a ``body``
        block gives its whole text without the subject line."""
        message_type = MessageType(message_type)
        missing = [k for k in SPECS[message_type].required if context.get(k) in (None, "")]
        if missing:
            raise MessageContextError(f"{message_type.value}: context lacks {', '.join(missing)}")
        template = self.text_env.get_template(f"{message_type.value}.txt.j2")
        try:
            if "sms" in template.blocks:  # a short version of its own (e.g. the proposal: the link, not the solution)
                return "".join(template.blocks["sms"](template.new_context(dict(context))))
            if "body" in template.blocks:
                return "".join(template.blocks["body"](template.new_context(dict(context))))
            return template.render(context).strip().partition("\n")[2]
        except UndefinedError as exc:
            raise MessageContextError(f"{message_type.value}: {exc.message}") from exc


def _builder(message_type: MessageType) -> Callable[..., dict[str, Any]]:
    spec = SPECS[message_type]

    def build(**context: Any) -> dict[str, Any]:
        missing = [k for k in spec.required if context.get(k) in (None, "")]
        if missing:
            raise MessageContextError(f"{message_type.value}: missing {', '.join(missing)}")
        return context

    build.__name__ = f"build_{message_type.value}"
    build.__doc__ = f"Context for {message_type.value}; requires {', '.join(spec.required)}."
    return build


BUILDERS: dict[MessageType, Callable[..., dict[str, Any]]] = {t: _builder(t) for t in MessageType}
