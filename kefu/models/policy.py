"""The policy model: every deadline, ladder, window, cadence and weight Kefu follows, as validated data.

The policy file (``policy/kefu.yaml`` by default) is the only place where durations live. Flows and
tasks ask this model; they never carry literal durations of their own.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)


class Severity(StrEnum):
    """投诉等级 (seed 003 §3.2)."""

    GENERAL = "general"  # 一般投诉
    IMPORTANT = "important"  # 重要投诉
    MAJOR = "major"  # 重大投诉


class Unit(StrEnum):
    """How a duration is counted (DESIGN.md §3)."""

    MINUTES = "minutes"  # clock minutes
    HOURS = "hours"  # clock hours
    WORKING_HOURS = "working_hours"  # only inside business windows of working days
    WORKING_DAYS = "working_days"  # end of the last window of the Nth working day after the start day


class MilestoneId(StrEnum):
    """The complaint milestones of DESIGN.md §1, by their exact ids."""

    FIRST_CONTACT = "first_contact"
    SOLUTION = "solution"
    RESOLUTION = "resolution"
    SUPERVISOR_REPORT = "supervisor_report"
    PROGRESS_UPDATE = "progress_update"
    TASK_FORCE = "task_force"
    PRELIMINARY_PLAN = "preliminary_plan"
    CALLBACK = "callback"


class Role(StrEnum):
    """Staff roles (seed 003 §3, seed 000 ch.2–3, seed 004): what a person may do is the policy's ``roles``."""

    AGENT = "agent"  # 客服人员
    SUPERVISOR = "supervisor"  # 主管
    SENIOR_MANAGER = "senior_manager"  # 高层管理人员
    MARKET = "market"  # 市场部
    OPERATIONS = "operations"  # 运营部
    FINANCE = "finance"  # 财务部
    TECHNOLOGY = "technology"  # 技术部
    PROJECT_MANAGER = "project_manager"  # 项目经理
    DISPATCHER = "dispatcher"  # 物流调度员
    AFTER_SALES = "after_sales"  # 售后服务人员
    ADMIN = "admin"  # 系统管理员: the staff directory and the gateway tokens


class Anchor(StrEnum):
    """The moment a milestone's clock starts."""

    RECEIPT = "receipt"  # 接到投诉
    RESOLUTION = "resolution"  # 投诉处理完成


PROMISED = "promised"
DUE_PLACEHOLDER = "{due}"
_DURATION = re.compile(r"^\s*(?P<amount>\d+(?:\.\d+)?)\s+(?P<unit>[a-z_]+)\s*$")
_UNIT_ALIASES = {"minute": "minutes", "hour": "hours", "working_hour": "working_hours", "working_day": "working_days"}


def _duration_fields(text: str) -> dict[str, Any]:
    match = _DURATION.match(text)
    unit = _UNIT_ALIASES.get(match["unit"], match["unit"]) if match else ""
    if not match or unit not in {u.value for u in Unit}:
        raise ValueError(
            f"'{text}' is not a duration; write an amount and a unit, e.g. '24 hours', "
            f"'4 working_hours', '7 working_days' (units: {', '.join(u.value for u in Unit)})"
        )
    return {"amount": float(match["amount"]), "unit": unit}


def _parse_due(value: Any) -> Any:
    """A milestone's due: 'promised' or a duration, with one clear message when it is neither."""
    if value == PROMISED or isinstance(value, Duration):
        return value
    if isinstance(value, str):
        return Duration.model_validate(_duration_fields(value))
    return Duration.model_validate(value)


class Duration(BaseModel):
    """An amount of time in one unit, written in the policy file as e.g. ``24 hours`` or ``7 working_days``."""

    model_config = ConfigDict(frozen=True)

    amount: float = Field(gt=0)
    unit: Unit

    @model_validator(mode="before")
    @classmethod
    def _parse_text(cls, value: Any) -> Any:
        return _duration_fields(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _whole_working_days(self) -> Duration:
        if self.unit is Unit.WORKING_DAYS and self.amount != int(self.amount):
            raise ValueError("working_days must be a whole number of days")
        return self

    def __str__(self) -> str:
        amount = int(self.amount) if self.amount == int(self.amount) else self.amount
        return f"{amount} {self.unit.value}"


class MilestoneRule(BaseModel):
    """One row of the complaint deadline table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: MilestoneId
    name: str = Field(min_length=1, description="The policy's own term, shown to staff.")
    due: Annotated[Duration | Literal["promised"], BeforeValidator(_parse_due)] = Field(
        description="How long after the anchor the milestone is due; 'promised' = the time promised "
        "in the solution the customer accepted."
    )
    starts_at: Anchor = Anchor.RECEIPT
    customer_facing: bool = Field(
        default=False,
        description="Its time is promised to the customer (intake's confirmation, the status page); "
        "the others are internal steps such as reports to a supervisor or a task force.",
    )
    customer_wording: str | None = Field(
        default=None,
        description="The promise as the customer reads it, with '{due}' where the due time goes, "
        "e.g. '我们将在{due}之前与您联系'. Required for a customer-facing milestone.",
    )

    @model_validator(mode="after")
    def _wording_for_the_customer(self) -> MilestoneRule:
        wording = self.customer_wording
        if self.customer_facing and not (wording and wording.strip()):
            raise ValueError(
                f"'{self.id.value}' is customer-facing and needs a customer_wording, e.g. '我们将在{{due}}之前与您联系'"
            )
        if wording is None:
            return self
        if not self.customer_facing:
            raise ValueError(f"'{self.id.value}' has a customer_wording but is not customer_facing")
        if wording.count(DUE_PLACEHOLDER) != 1:
            raise ValueError(f"customer_wording '{wording}' must name the due time once, as '{DUE_PLACEHOLDER}'")
        if self.name in wording:
            raise ValueError(
                f"customer_wording '{wording}' repeats the internal name '{self.name}'; "
                "write the promise as the customer reads it"
            )
        return self


class SeverityRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    criteria: str = Field(
        default="",
        description="What makes a complaint this severity, in the policy's words (shown where people classify).",
    )
    milestones: list[MilestoneRule] = Field(min_length=1)
    progress_update_interval: Duration | None = Field(
        default=None, description="While unresolved, progress updates to the customer at this interval."
    )

    @field_validator("milestones")
    @classmethod
    def _unique_ids(cls, rules: list[MilestoneRule]) -> list[MilestoneRule]:
        seen: set[str] = set()
        for rule in rules:
            if rule.id in seen:
                raise ValueError(f"milestone '{rule.id.value}' is listed twice")
            seen.add(rule.id)
        if MilestoneId.RESOLUTION not in seen:
            raise ValueError("every severity needs a 'resolution' milestone")
        return rules


class ClassificationRule(BaseModel):
    """How rules propose a severity; a person confirms or overrides (seed 003 §3.2)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed_examples: dict[Severity, list[str]] = Field(
        default_factory=dict,
        description="The seed's own examples of each severity (seed 003 §3.2, its exact words): a complaint naming "
        "one is proposed at least that severity.",
    )
    general_keywords: list[str] = Field(
        default_factory=list, description="Words of a general complaint (recorded as the proposal's reason)."
    )
    major_keywords: list[str] = Field(default_factory=list)
    important_keywords: list[str] = Field(default_factory=list)
    important_order_amount: float = Field(
        gt=0, description="Order value (CNY) from which a case is at least important."
    )
    major_order_amount: float = Field(gt=0, description="Order value (CNY) from which a case is major.")
    key_account_raises_to: Severity = Severity.IMPORTANT
    urgent_raises_to: Severity = Severity.IMPORTANT
    urgent_keywords: list[str] = Field(default_factory=list)

    def is_urgent(self, content: str, *, flagged: bool) -> bool:
        """Urgent (the supervisor is told at once): flagged by the complainant or naming one of the urgent words."""
        return flagged or any(word in content for word in self.urgent_keywords)

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> ClassificationRule:
        if self.major_order_amount <= self.important_order_amount:
            raise ValueError("major_order_amount must be larger than important_order_amount")
        return self


class CallbackRule(MilestoneRule):
    """The satisfaction callback after resolution, and when its answer reopens the case (seed 003 §3.4)."""

    reopen_below: int = Field(
        description="A callback satisfaction (1–5) below this reopens the case: 处理直至客户满意."
    )

    @field_validator("reopen_below")
    @classmethod
    def _on_the_scale(cls, value: int) -> int:
        if not 2 <= value <= 5:
            raise ValueError(
                f"must be between 2 and 5 (satisfaction is scored 1–5; {value} would reopen "
                f"{'no case' if value < 2 else 'every case, forever'})"
            )
        return value


class OwnershipRule(BaseModel):
    """首问责任制 (seed 002 §二.1): who owns a complaint from registration on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: Literal["receiver_then_rota"] = Field(
        default="receiver_then_rota",
        description="The staff member a gateway names as the receiver owns the case; otherwise the on-duty staff "
        "of rota_role (their on-duty weekdays, `kefu staff`) take the day's complaints in turn, by case number.",
    )
    rota_role: Role = Role.AGENT
    key_account_specialist: bool = Field(
        default=True,
        description="A key account's complaint is owned by the customer-service specialist of its key-account team "
        "(issue 15), before the receiver and the rota; its project manager is told of every important or major one.",
    )
    hand_over: list[Role] = Field(
        default=[Role.SUPERVISOR, Role.SENIOR_MANAGER],
        description="Besides the owner, who may hand a case over to someone else (`kefu case hand-over`).",
    )


class PausePolicy(BaseModel):
    """While waiting on the customer the clock stops (issue 13): which milestones may pause and for how long at most;
    the paused working time is added to their due time when the pause ends."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    milestones: list[MilestoneId] = Field(min_length=1, description="The milestones whose clock a pause stops.")
    longest: Duration = Field(description="A pause counts at most this long; the sweeper then ends it.")
    roles: list[Role] = Field(
        default=[Role.AGENT, Role.SUPERVISOR, Role.SENIOR_MANAGER, Role.PROJECT_MANAGER],
        min_length=1,
        description="Who may start and end a pause (`kefu case pause`, `kefu case end-pause`).",
    )


# 原因分类: the causes a logistics complaint is counted under unless the policy file names its own
DEFAULT_CAUSES = ("延误", "破损", "丢件", "错发错派", "服务态度", "收费与理赔", "包装", "信息与系统", "其他")
UNCATEGORISED_CAUSE = "未分类"  # the report's word for a complaint whose investigation named no cause
CAUSE_MAX_LENGTH = 64  # complaints.category


class ComplaintPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    severities: dict[Severity, SeverityRule]
    key_account_overrides: dict[Severity, dict[MilestoneId, Duration]] = Field(default_factory=dict)
    callback: CallbackRule
    classification: ClassificationRule
    causes: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CAUSES),
        description="原因分类 (seed 003 §3.4 总结投诉产生的原因和规律): the causes an investigation names a complaint "
        "by, which the statistics report ranks; a complaint whose investigation named none counts as 未分类.",
    )
    # --- fidelity (issue 13): the clock stops while waiting on the customer ---
    pauses: PausePolicy | None = None
    # --- fidelity (issue 13): the first receiver owns the case ---
    ownership: OwnershipRule = Field(default_factory=OwnershipRule)
    # --- fidelity (issue 13): raising the severity never makes a promise to the customer later ---
    never_later: dict[str, list[MilestoneId]] = Field(
        default_factory=dict,
        description="Commitments to the customer (name -> the milestones that make it, e.g. first_explanation: "
        "[solution, progress_update, preliminary_plan]): a case's due time for one of them is the earliest its own "
        "severity and every lower severity would give; a severity without such a milestone takes the lower one's.",
    )

    @model_validator(mode="after")
    def _never_later_customer_facing(self) -> ComplaintPolicy:
        seen: dict[MilestoneId, str] = {}
        for name, ids in self.never_later.items():
            if not ids:
                raise ValueError(f"never_later.{name}: name at least one milestone")
            for milestone in ids:
                if milestone in seen:
                    raise ValueError(f"never_later: '{milestone.value}' is in both '{seen[milestone]}' and '{name}'")
                seen[milestone] = name
                rules = [r for s in self.severities.values() for r in s.milestones if r.id is milestone]
                if not rules:
                    raise ValueError(f"never_later.{name}: no severity has a milestone '{milestone.value}'")
                if any(not r.customer_facing for r in rules):
                    raise ValueError(
                        f"never_later.{name}: '{milestone.value}' is not customer-facing; only promises to the "
                        "customer are kept from a lower severity"
                    )
                if any(r.due == PROMISED for r in rules):
                    raise ValueError(f"never_later.{name}: '{milestone.value}' has no duration ('promised')")
        return self

    @field_validator("causes")
    @classmethod
    def _causes_named_once(cls, causes: list[str]) -> list[str]:
        cleaned = [c.strip() for c in causes]
        if not cleaned:
            raise ValueError("name at least one cause (原因分类)")
        for cause in cleaned:
            if not cause or len(cause) > CAUSE_MAX_LENGTH:
                raise ValueError(f"a cause is 1-{CAUSE_MAX_LENGTH} characters: '{cause}'")
            if cause == UNCATEGORISED_CAUSE:
                raise ValueError(f"'{UNCATEGORISED_CAUSE}' is what the report says for no cause; name another")
        doubled = sorted({c for c in cleaned if cleaned.count(c) > 1})
        if doubled:
            raise ValueError(f"a cause is named twice: {', '.join(doubled)}")
        return cleaned

    @model_validator(mode="after")
    def _pausable_known(self) -> ComplaintPolicy:
        known = {r.id for s in self.severities.values() for r in s.milestones} | {MilestoneId.CALLBACK}
        for milestone in self.pauses.milestones if self.pauses else []:
            if milestone not in known:
                raise ValueError(f"pauses.milestones: no severity has a milestone '{milestone.value}'")
        return self

    def milestone_name(self, severity: Severity, milestone: MilestoneId | str) -> str:
        """The policy's own term for a milestone of a case of ``severity`` (e.g. 与客户取得联系); one the case keeps
        from another severity's rule (an important complaint's first contact, kept by ``never_later``, or one met
        before a reclassification) by that rule's name; the id itself when no rule names it."""
        wanted = milestone.value if isinstance(milestone, MilestoneId) else milestone
        if wanted == MilestoneId.CALLBACK.value:
            return self.callback.name
        ordered = [self.severities[severity], *self.severities.values()]
        return next((r.name for s in ordered for r in s.milestones if r.id.value == wanted), wanted)

    def commitment_of(self, milestone: MilestoneId) -> str | None:
        """The never-later commitment a milestone makes (``never_later``), or None."""
        return next((name for name, ids in self.never_later.items() if milestone in ids), None)

    def lower_severities(self, severity: Severity) -> list[Severity]:
        """The severities below ``severity``, nearest first."""
        order = list(Severity)
        return list(reversed(order[: order.index(severity)]))

    def candidate_rules(self, severity: Severity, key_account: bool) -> list[tuple[Severity, MilestoneRule]]:
        """A severity's own rules, each with its key-account target as a second candidate (key-account targets
        only ever tighten: the planner takes the earlier of the two due times)."""
        overrides = self.key_account_overrides.get(severity, {}) if key_account else {}
        found: list[tuple[Severity, MilestoneRule]] = []
        for rule in self.severities[severity].milestones:
            found.append((severity, rule))
            if rule.id in overrides:
                found.append((severity, rule.model_copy(update={"due": overrides[rule.id]})))
        return found

    @model_validator(mode="after")
    def _complete(self) -> ComplaintPolicy:
        missing = [s.value for s in Severity if s not in self.severities]
        if missing:
            raise ValueError(f"severities missing: {', '.join(missing)}")
        for severity, overrides in self.key_account_overrides.items():
            known = {rule.id for rule in self.severities[severity].milestones}
            for milestone in overrides:
                if milestone not in known:
                    raise ValueError(
                        f"key_account_overrides.{severity.value}.{milestone.value}: "
                        f"'{severity.value}' complaints have no such milestone"
                    )
        if self.callback.id is not MilestoneId.CALLBACK or self.callback.starts_at is not Anchor.RESOLUTION:
            raise ValueError("callback must have id 'callback' and start at 'resolution'")
        if self.callback.due == PROMISED:
            raise ValueError("callback needs a duration, not 'promised'")
        return self

    def propose_severity(
        self, content: str, order_amount: Decimal | float | None, *, key_account: bool, urgent: bool
    ) -> tuple[Severity, list[str]]:
        """The severity the classification rules propose, and why (for the audit record); the highest rule wins.

        The one implementation: intake proposes with it at registration, the case flow's classify step
        proposes with it again before a person confirms or overrides.
        """
        rules = self.classification
        proposed: list[tuple[Severity, str]] = [(Severity.GENERAL, "default")]
        for example_of, words in rules.seed_examples.items():
            proposed += [(example_of, f"example:{w}") for w in words if w in content]
        proposed += [(Severity.GENERAL, f"keyword:{w}") for w in rules.general_keywords if w in content]
        proposed += [(Severity.MAJOR, f"keyword:{w}") for w in rules.major_keywords if w in content]
        proposed += [(Severity.IMPORTANT, f"keyword:{w}") for w in rules.important_keywords if w in content]
        amount = Decimal(str(order_amount or 0))
        if amount >= Decimal(str(rules.major_order_amount)):
            proposed.append((Severity.MAJOR, f"order_amount>={rules.major_order_amount}"))
        elif amount >= Decimal(str(rules.important_order_amount)):
            proposed.append((Severity.IMPORTANT, f"order_amount>={rules.important_order_amount}"))
        if key_account:
            proposed.append((rules.key_account_raises_to, "key_account"))
        if urgent:
            proposed.append((rules.urgent_raises_to, "urgent"))
        order = list(Severity)
        severity = max((s for s, _ in proposed), key=order.index)
        return severity, [why for _, why in proposed[1:]]

    def customer_rule(self, severity: Severity, milestone: MilestoneId) -> MilestoneRule | None:
        """The customer-facing rule of this milestone for a complaint of this severity (None: internal).

        Falls back to the milestone's rule of another severity, for a milestone kept from before a reclassification.
        """
        if milestone is MilestoneId.CALLBACK:
            rule: MilestoneRule | None = self.callback
        else:
            rule = next((r for r in self.severities[severity].milestones if r.id is milestone), None)
            if rule is None:
                others = (r for s in self.severities.values() for r in s.milestones if r.id is milestone)
                rule = next(others, None)
        return rule if rule is not None and rule.customer_facing else None


def _parse_window(value: Any) -> Any:
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", value)
        if not match:
            raise ValueError(f"'{value}' is not a business window; write it as 'HH:MM-HH:MM', e.g. '09:00-12:00'")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        return {"start": dt.time(h1, m1), "end": dt.time(h2, m2)}
    return value


class BusinessWindow(BaseModel):
    model_config = ConfigDict(frozen=True)

    start: dt.time
    end: dt.time

    @model_validator(mode="after")
    def _ordered(self) -> BusinessWindow:
        if self.end <= self.start:
            raise ValueError(f"window {self.start:%H:%M}-{self.end:%H:%M} ends before it starts")
        return self

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


Window = Annotated[BusinessWindow, BeforeValidator(_parse_window)]


class CalendarDay(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    date: dt.date
    name: str = Field(min_length=1)


class CalendarPolicy(BaseModel):
    """Working days: the Chinese public-holiday calendar (with 调休) plus the company's own changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    country: Literal["CN"] = "CN"
    confirmed_years: list[int] = Field(
        default_factory=list,
        description="Years whose official arrangement the company entered here by hand; counted as confirmed.",
    )
    extra_holidays: list[CalendarDay] = Field(default_factory=list, description="Company days off (removals).")
    extra_workdays: list[CalendarDay] = Field(default_factory=list, description="Company working days (additions).")

    @model_validator(mode="after")
    def _no_day_both(self) -> CalendarPolicy:
        both = {d.date for d in self.extra_holidays} & {d.date for d in self.extra_workdays}
        if both:
            days = ", ".join(sorted(d.isoformat() for d in both))
            raise ValueError(f"{days}: listed both as extra holiday and extra workday")
        return self


class EscalationPolicy(BaseModel):
    """升级: warn before a breach, then climb the ladder one level per breach/reminder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    warn_at_percent: float = Field(gt=0, lt=100, description="Pre-breach warning when this share of the time is used.")
    ladder: list[Literal["owner", "supervisor", "senior_manager"]] = Field(min_length=1)
    reminder_interval: Duration

    @field_validator("ladder")
    @classmethod
    def _ladder_order(cls, ladder: list[str]) -> list[str]:
        if ladder[0] != "owner" or len(set(ladder)) != len(ladder):
            raise ValueError("the ladder starts at 'owner' and names each level once")
        return ladder


class EnquiryPolicy(BaseModel):
    """Seed 002 reply rules for enquiries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    direct_answer: Duration
    cross_department_solution: Duration
    departments: list[Role] = Field(
        default=[Role.MARKET, Role.OPERATIONS, Role.FINANCE, Role.TECHNOLOGY],
        min_length=1,
        description="The departments an enquiry may be referred to (needing another department: "
        "``cross_department_solution`` applies); their people answer the department step.",
    )


def _default_feedback_deadlines() -> dict[Role, Duration]:
    days = {Role.MARKET: 3, Role.OPERATIONS: 2, Role.FINANCE: 3, Role.TECHNOLOGY: 5, Role.AFTER_SALES: 2}
    return {role: Duration(amount=n, unit=Unit.WORKING_DAYS) for role, n in days.items()}


class FeedbackPolicy(BaseModel):
    """客户反馈与建议 (seed 000 ch.4 §3–4, seed 004 §四(四)4): the departments feedback and suggestions are routed to,
    and how long each has to answer (from receipt; the answer then goes to the customer)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    department_deadlines: dict[Role, Duration] = Field(
        default_factory=_default_feedback_deadlines, min_length=1, description="Department (a role) -> its deadline."
    )


ContactChannel = Literal["phone", "visit", "meeting", "email", "im"]
CADENCE_GAPS = ("contact", "business_review")  # a rule's name: any contact, or the business review (业务回顾)


class ContactRule(BaseModel):
    """One cadence rule: at least one contact by one of ``channels`` in every period of ``every_months`` months
    (calendar periods from January: 1 = each month, 3 = each quarter)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    every_months: int = Field(ge=1, le=12)
    channels: list[ContactChannel] = Field(min_length=1)

    @field_validator("every_months")
    @classmethod
    def _divides_the_year(cls, value: int) -> int:
        if 12 % value:
            raise ValueError("every_months must divide the year (1, 2, 3, 4, 6 or 12): periods start in January")
        return value


class CadenceOwners(BaseModel):
    """Who answers for a segment's cadence (seed 003 §2.3: 重要客户 the sales side, 一般客户 客服人员): a key account's
    team roles in order (the first one the team has), a general customer's last complaint owner, else the
    customer-service staff on duty that day (the complaint rota's role, one of them by the customer's number)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: list[Literal["project_manager", "service_specialist", "dispatcher", "after_sales"]] = Field(
        default=["project_manager", "service_specialist"], min_length=1
    )
    general: list[Literal["last_complaint_owner", "on_duty_agent"]] = Field(
        default=["last_complaint_owner", "on_duty_agent"], min_length=1
    )


class ContactCadence(BaseModel):
    """客户沟通频率 (seed 003 §2.3): the rules per segment (``key``: key accounts, ``general``: everyone else), who
    answers for them, and the daily check's settings: remind the owner ``remind_working_days_before`` working days
    before the period's last working day; a gap still open when the period is over goes to the owner's supervisor
    on the ``escalate_after_working_days``-th working day after it; the check runs on ``schedule`` (cron, the
    policy's time zone), working days only."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: dict[str, ContactRule]
    general: dict[str, ContactRule]
    owners: CadenceOwners = Field(default_factory=CadenceOwners)
    remind_working_days_before: int = Field(default=5, ge=1, le=40)
    escalate_after_working_days: int = Field(default=1, ge=1, le=20)
    schedule: str = Field(default="0 9 * * *", description="Cron (five fields, the policy's time zone).")

    @field_validator("key", "general")
    @classmethod
    def _known_gaps(cls, rules: dict[str, ContactRule]) -> dict[str, ContactRule]:
        bad = [name for name in rules if name not in CADENCE_GAPS]
        if bad:
            raise ValueError(f"cadence rules are {', '.join(CADENCE_GAPS)}, not {', '.join(bad)}")
        return rules

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        return BackupPolicy._cron(value)


class GreetingPolicy(BaseModel):
    """节假日问候 (seed 002 §三 逢年过节给客户发信息): which customers get the holiday greeting, how many working days
    before each public holiday, and the fatigue cap: no customer gets a greeting when they already had
    ``fatigue_max_messages`` messages from us in the last ``fatigue_window_days`` days."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    working_days_before: int = Field(default=2, ge=1, le=15)
    segments: list[Literal["key", "general"]] = Field(default=["key"], min_length=1)
    fatigue_max_messages: int = Field(default=3, ge=1, le=50)
    fatigue_window_days: int = Field(default=7, ge=1, le=90)


class SurveyScale(BaseModel):
    """A question's answer range, both ends included."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    low: int = Field(ge=0)
    high: int = Field(le=10)

    @model_validator(mode="after")
    def _ordered(self) -> SurveyScale:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class SurveyFatigue(BaseModel):
    """No customer is asked more than ``max_asks`` times in ``window_days`` days, counting every survey invitation
    (any campaign) and every complaint callback invitation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_asks: int = Field(ge=1, le=20)
    window_days: int = Field(ge=1, le=366)


class CallbackFatigue(BaseModel):
    """No routine callback for a customer who already had ``max_contacts`` contacts from us (customer messages and
    communication records) in the last ``window_days`` days."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_contacts: int = Field(default=3, ge=1, le=50)
    window_days: int = Field(default=7, ge=1, le=90)


class CallbackPolicy(BaseModel):
    """定期回访 (seed 004 §四(四)): how often each segment is called back (months since the last routine callback),
    by which channel (电话回访 / 邮件回访), the daily run's time, and the fatigue cap."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    every_months: dict[Literal["key", "general"], int] = Field(default={"key": 1, "general": 3})
    channel: dict[Literal["key", "general"], Literal["phone", "mail"]] = Field(
        default={"key": "phone", "general": "mail"}
    )
    schedule: str = "0 9 * * *"
    fatigue: CallbackFatigue = Field(default_factory=CallbackFatigue)

    @field_validator("every_months")
    @classmethod
    def _months(cls, value: dict[str, int]) -> dict[str, int]:
        for segment, months in value.items():
            if not 1 <= months <= 24:
                raise ValueError(f"callbacks.every_months.{segment}: {months} is not between 1 and 24")
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        return _check_cron(value)


class QualityCheckPolicy(BaseModel):
    """沟通记录质检 (seed 000 第五章 定期对客服人员的沟通记录进行审核, seed 003 §2.4): each month's sample of every
    agent's communication records, the seed of its draw, the supervisor's deadline, and the score (1–5) at or
    below which a record is flagged back to the agent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sample_per_agent: int = Field(default=3, ge=1, le=100)
    seed: str = Field(default="kefu", min_length=1)
    review_within: Duration = Field(default_factory=lambda: Duration.model_validate("5 working_days"))
    flag_at_or_below: int = Field(default=2, ge=1, le=5)
    schedule: str = "0 9 1 * *"

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        return _check_cron(value)


class SurveyPolicy(BaseModel):
    """客户满意度调查 (seed 003 §4): the yearly survey of all customers, key accounts more often, ad hoc campaigns;
    the questions (the dimensions on ``scale``, an NPS question on ``nps``, a comment), how long an invitation's
    link stays open, the fatigue cap and the low score that alerts a key account's team."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    full_survey_every_months: int = Field(ge=1, le=12, description="At least yearly (seed 003 §4).")
    key_account_survey_every_months: int = Field(ge=1, le=12)
    dimensions: dict[str, str] = Field(min_length=1)
    scale: SurveyScale = Field(default=SurveyScale(low=1, high=5))
    nps: SurveyScale = Field(default=SurveyScale(low=0, high=10))
    launch_day: int = Field(default=5, ge=1, le=28, description="Day of the month a scheduled campaign starts.")
    launch_time: dt.time = Field(default=dt.time(9, 30), description="Time of day (policy's clock) it starts.")
    link_valid_for: Duration = Field(default=Duration(amount=10, unit=Unit.WORKING_DAYS))
    fatigue: SurveyFatigue = Field(default=SurveyFatigue(max_asks=2, window_days=90))
    low_score_below: int = Field(default=3, description="A key account's score below this alerts its team.")
    low_nps_below: int = Field(default=7, description="A key account's NPS answer below this alerts its team.")
    sweep_schedule: str = Field(
        default="0 8 * * *", description="Cron (policy's clock): progress of open campaigns, closing expired ones."
    )

    @field_validator("dimensions")
    @classmethod
    def _dimension_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key, label in value.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", key) or not label.strip():
                raise ValueError(f"dimension '{key}': keys are lower-case identifiers, each with a zh-CN label")
        return value

    @field_validator("sweep_schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        return BackupPolicy._cron(value)

    @model_validator(mode="after")
    def _key_more_often(self) -> SurveyPolicy:
        if self.key_account_survey_every_months > self.full_survey_every_months:
            raise ValueError("key accounts are surveyed at least as often as everyone else")
        for name in ("full_survey_every_months", "key_account_survey_every_months"):
            if 12 % getattr(self, name):
                raise ValueError(f"{name} must divide the year (1, 2, 3, 4, 6 or 12)")
        if self.scale.low != 1 or self.nps.low != 0:
            raise ValueError("the dimension scale starts at 1 and the NPS question at 0")
        if not self.scale.low < self.low_score_below <= self.scale.high:
            raise ValueError(f"low_score_below must be within the scale ({self.scale.low}–{self.scale.high})")
        if not self.nps.low < self.low_nps_below <= self.nps.high:
            raise ValueError(f"low_nps_below must be within the NPS scale ({self.nps.low}–{self.nps.high})")
        return self

    def cron(self, every_months: int, *, besides: int | None = None) -> str:
        """The five-field cron of a campaign every ``every_months`` months from January, on the launch day; without
        the months of a campaign every ``besides`` months (the key accounts' survey skips the full survey's
        months: the full survey asks them then)."""
        taken = set(range(1, 13, besides)) if besides else set()
        months = ",".join(str(m) for m in range(1, 13, every_months) if m not in taken) or "1"
        return f"{self.launch_time.minute} {self.launch_time.hour} {self.launch_day} {months} *"


class BackupPolicy(BaseModel):
    """定期备份客户资料 (seed 004 §6): when the scheduled backup runs and how long backups are kept."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_days: int = Field(ge=1, description="Backups older than this many days are deleted after a new one.")
    keep_at_least: int = Field(ge=1, description="The newest backups kept whatever their age (never fewer).")
    schedule: str = Field(description="Cron expression (five fields) on the policy's time zone.")

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from cronsim import CronSim, CronSimError

        try:
            CronSim(value, dt.datetime(2026, 1, 1))  # noqa: DTZ001 - only the expression is checked
        except CronSimError as exc:
            raise ValueError(f"'{value}' is not a cron expression of five fields ({exc})") from exc
        return value


class LetterPolicy(BaseModel):
    """How a mail to a customer is signed (落款): '此致／敬礼', then this signature and the date."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    signature: str = Field(
        default="客户服务部",
        min_length=1,
        max_length=40,
        description="The sender under every letter to a customer, e.g. '某某物流客户服务部'.",
    )

    @field_validator("signature")
    @classmethod
    def _one_line_no_spaces(cls, value: str) -> str:
        if not value.strip() or any(ch.isspace() for ch in value):
            raise ValueError(f"signature '{value}' must be one word without spaces, e.g. '某某物流客户服务部'")
        return value


class CustomerAnswerPolicy(BaseModel):
    """The customer's own answers (issue 13): how long a solution proposal's answer link stays open.

    A company setting: the seeds say only that the customer must accept the solution (seed 003 §3.3)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    link_valid_for: Duration = Field(
        default=Duration(amount=5, unit=Unit.WORKING_DAYS),
        description="From the proposal until the link expires; afterwards the customer answers by phone.",
    )


def _weights_sum_to_one(weights: dict[str, float], what: str) -> dict[str, float]:
    if any(w < 0 for w in weights.values()):
        raise ValueError(f"{what} weights cannot be negative")
    if abs(sum(weights.values()) - 1.0) > 1e-9:
        raise ValueError(f"{what} weights must add up to 1 (they add up to {sum(weights.values()):g})")
    return weights


# The criteria of the monthly assessment (seed 004 §5(二)): the first three are measured by Kefu, the last two are
# scored 1–5 by the supervisor and by the person themselves.
MEASURED_CRITERIA = ("answer_accuracy", "order_on_time_rate", "complaint_satisfaction")
SCORED_CRITERIA = ("attitude", "ability")


class StaffAssessmentPolicy(BaseModel):
    """员工月度考核 (seed 004 §5(二)): the evaluators' shares (上级评价 / 客户评价 / 自我评价, each [X]% in the seed),
    the criteria's weights, who is assessed, the deadlines of the self and supervisor steps (working days from the
    month's opening), the pass and excellent marks (0–100) and when the month is opened (cron, the policy's time
    zone; the flow opens the month on its first working day only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    evaluator_weights: dict[Literal["supervisor", "customer", "self"], float]
    criteria_weights: dict[str, float] = Field(min_length=1)
    assessed_roles: list[Role] = Field(default_factory=lambda: [Role.AGENT], min_length=1)
    self_deadline: Duration = Field(default_factory=lambda: Duration(amount=3, unit=Unit.WORKING_DAYS))
    supervisor_deadline: Duration = Field(default_factory=lambda: Duration(amount=5, unit=Unit.WORKING_DAYS))
    pass_mark: float = Field(default=60, ge=0, le=100)
    excellent_mark: float = Field(default=90, ge=0, le=100)
    schedule: str = Field(default="30 9 1-7 * *", description="Cron (five fields): runs open the month once.")

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        return _check_cron(value)

    @model_validator(mode="after")
    def _marks(self) -> StaffAssessmentPolicy:
        if self.excellent_mark <= self.pass_mark:
            raise ValueError(f"excellent_mark ({self.excellent_mark:g}) must be above pass_mark ({self.pass_mark:g})")
        return self

    @field_validator("evaluator_weights")
    @classmethod
    def _evaluators(cls, weights: dict[str, float]) -> dict[str, float]:
        return _weights_sum_to_one(weights, "evaluator")

    @field_validator("criteria_weights")
    @classmethod
    def _criteria(cls, weights: dict[str, float]) -> dict[str, float]:
        known = (*MEASURED_CRITERIA, *SCORED_CRITERIA)
        unknown = [k for k in weights if k not in known]
        if unknown:
            raise ValueError(f"unknown criteria {', '.join(unknown)} (criteria: {', '.join(known)})")
        return _weights_sum_to_one(weights, "criteria")


class ReportRecipient(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="How the mail greets them, e.g. '公司管理层'.")
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")


def _check_cron(value: str) -> str:
    from cronsim import CronSim, CronSimError

    try:
        CronSim(value, dt.datetime(2026, 1, 1))  # noqa: DTZ001 - only the expression is checked
    except CronSimError as exc:
        raise ValueError(f"'{value}' is not a cron expression of five fields ({exc})") from exc
    return value


class ReportPolicy(BaseModel):
    """投诉统计与原因分析，提交公司管理层 (seed 003 §3.4): when the weekly and monthly reports run (cron on the
    policy's time zone), who receives them, and how many causes the report ranks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weekly_schedule: str = Field(description="Cron (five fields): the report of the last complete week.")
    monthly_schedule: str = Field(description="Cron (five fields): the report of the last complete month.")
    recipients: list[ReportRecipient] = Field(min_length=1, description="Management: each gets the mail.")
    top_causes: int = Field(default=10, ge=1, le=50)

    @field_validator("weekly_schedule", "monthly_schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        return _check_cron(value)


class RolePolicy(BaseModel):
    """Who is who and who may do what: every role's zh-CN name, and the roles that may answer each human step of a
    complaint case (checked for the form in the Prefect UI and for ``kefu step submit`` alike)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    names: dict[Role, str] = Field(description="Each role's name as staff read it (客服人员, 主管, ...).")
    complaint_steps: dict[str, list[Role]] = Field(
        min_length=1, description="Human step of the complaint case -> the roles that may answer it."
    )
    customer_contact: list[Role] = Field(
        default_factory=list,
        description="Roles that see every customer's personal data in full, besides each case's owner, the owner's "
        "supervisors and the customer's key-account team (kefu.tasks.customer_data); everyone else sees it masked.",
    )

    @field_validator("names")
    @classmethod
    def _every_role_named(cls, names: dict[Role, str]) -> dict[Role, str]:
        missing = [r.value for r in Role if not names.get(r, "").strip()]
        if missing:
            raise ValueError(f"roles without a name: {', '.join(missing)}")
        return names

    @field_validator("complaint_steps")
    @classmethod
    def _someone_may_answer(cls, steps: dict[str, list[Role]]) -> dict[str, list[Role]]:
        nobody = [step for step, roles in steps.items() if not roles]
        if nobody:
            raise ValueError(f"no role may answer step(s) {', '.join(nobody)}")
        return steps

    policy_replan: list[Role] = Field(
        default=[Role.SUPERVISOR, Role.SENIOR_MANAGER, Role.ADMIN],
        min_length=1,
        description="Who may move the open cases to an edited policy (`kefu policy replan --as`).",
    )

    def may_answer(self, step: str) -> list[Role]:
        """The roles that may answer ``step``; none for a step the policy does not list (nobody may)."""
        return self.complaint_steps.get(step, [])


# --- key accounts (seed 001): identification and KPIs ---------------------------------------------------------------

Source = Annotated[str, Field(min_length=1, pattern=r"^(seed \d{3}.*|company)$")]


class Criterion(BaseModel):
    """One identification criterion: its zh-CN name, its weight, and where the setting comes from (``seed NNN §x`` or
    ``company``: a company setting where the seed names the criterion but gives no number)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    weight: float = Field(ge=0, le=1)
    source: Source


class IdentificationPolicy(BaseModel):
    """重点客户识别 (seed 001 §二.1: 业务量、合作潜力、行业影响力): how the monthly scoring measures each criterion, its
    weights and the threshold. Each criterion scores 0–1 and the score is 100 × the weighted sum (see
    ``kefu.tasks.account_scores``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    criteria: dict[Literal["business_volume", "cooperation_potential", "industry_influence"], Criterion]
    months: int = Field(ge=1, le=36, description="Months of figures behind the business volume.")
    growth_months: int = Field(
        ge=1, le=12, description="Cooperation potential: the last N months against the N before."
    )
    industry_influence: dict[str, float] = Field(description="Industry (as the registry writes it) -> influence 0–1.")
    industry_influence_default: float = Field(ge=0, le=1)
    threshold: float = Field(gt=0, le=100, description="A customer scoring this or more is a candidate.")
    source: Source

    @field_validator("criteria")
    @classmethod
    def _weights(cls, criteria: dict[str, Criterion]) -> dict[str, Criterion]:
        missing = {"business_volume", "cooperation_potential", "industry_influence"} - set(criteria)
        if missing:
            raise ValueError(f"criteria missing: {', '.join(sorted(missing))} (seed 001 names all three)")
        _weights_sum_to_one({k: c.weight for k, c in criteria.items()}, "criteria")
        return criteria

    @field_validator("industry_influence")
    @classmethod
    def _influence(cls, table: dict[str, float]) -> dict[str, float]:
        bad = [k for k, v in table.items() if not 0 <= v <= 1]
        if bad:
            raise ValueError(f"industry influence must be between 0 and 1: {', '.join(bad)}")
        return table


class KpiPolicy(BaseModel):
    """重点客户评估 (seed 001 §三.4: 订单处理及时率、准时交付率、投诉率): the floors (rates) and the complaint ceiling a
    key account's month is held to; the seed names the KPIs, the numbers are company settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order_on_time_floor: float = Field(ge=0, le=1)
    delivery_on_time_floor: float = Field(ge=0, le=1)
    complaint_rate_ceiling: float = Field(ge=0, le=1)
    source: Source


class ReviewRule(BaseModel):
    """One department's review of a key-account candidate: its deadline from the review's start."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deadline: Duration


class OnboardingPolicy(BaseModel):
    """重点客户纳入 (seed 001 §二.1: 调研 → 相关部门评审 → 高层审批 → 纳入): who researches, which departments review
    (each with its deadline, in parallel), who approves, and how a missed review climbs: at its deadline to the
    reviewing department's supervisor, one ``escalation.reminder_interval`` later to a senior manager. The steps are
    the seed's; the deadlines are company settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    research_role: Role = Role.MARKET
    reviews: dict[Role, ReviewRule] = Field(min_length=1)
    approver_role: Role = Role.SENIOR_MANAGER
    source: Source

    @field_validator("reviews")
    @classmethod
    def _departments(cls, reviews: dict[Role, ReviewRule]) -> dict[Role, ReviewRule]:
        allowed = {Role.MARKET, Role.OPERATIONS, Role.FINANCE, Role.TECHNOLOGY}
        bad = [r.value for r in reviews if r not in allowed]
        if bad:
            raise ValueError(f"reviews are by departments ({', '.join(sorted(allowed))}), not {', '.join(bad)}")
        return reviews


class ServicePlanPolicy(BaseModel):
    """服务方案制定 (seed 001 §二.2: 了解需求、制定初步方案 → 市场部、运营部、技术部共同完善 → 高层审批 → 签订服务协议):
    the departments working the draft out in parallel (each records its part by its deadline; a missed one
    climbs like an onboarding review), who approves, and how long before an agreement's end date its renewal comes
    up (a reminder to the project manager). The steps are the seed's; the numbers are company settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    parts: dict[Role, ReviewRule] = Field(
        default_factory=lambda: {
            Role.MARKET: ReviewRule(deadline=Duration(amount=5, unit=Unit.WORKING_DAYS)),
            Role.OPERATIONS: ReviewRule(deadline=Duration(amount=5, unit=Unit.WORKING_DAYS)),
            Role.TECHNOLOGY: ReviewRule(deadline=Duration(amount=5, unit=Unit.WORKING_DAYS)),
        },
        min_length=1,
    )
    approver_role: Role = Role.SENIOR_MANAGER
    renewal_lead_days: int = Field(default=60, ge=1, le=365, description="Days before the end date: renewal due.")
    source: Source = "company"

    @field_validator("parts")
    @classmethod
    def _departments(cls, parts: dict[Role, ReviewRule]) -> dict[Role, ReviewRule]:
        allowed = {Role.MARKET, Role.OPERATIONS, Role.FINANCE, Role.TECHNOLOGY}
        bad = [r.value for r in parts if r not in allowed]
        if bad:
            raise ValueError(f"plan parts are by departments ({', '.join(sorted(allowed))}), not {', '.join(bad)}")
        return parts


class ServiceReportPolicy(BaseModel):
    """重点客户服务报告 (seed 001 §四.1: 客户有权获得服务报告): the monthly report to each key account's contact (last
    month's KPIs against ``kpi``), when it runs, and the improvement commitment a KPI below its floor is named with.
    Company settings: the seed gives the right, not the schedule or the wording."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schedule: str = Field(default="0 9 3 * *", description="Cron (the policy's time zone) of the monthly run.")
    improvement_commitment: str = Field(
        default="针对未达标的指标，我们已安排项目经理牵头制定改进措施，并将在下月服务报告中向您通报改进进展。",
        min_length=1,
    )
    source: Source = "company"

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        return BackupPolicy._cron(value)


class KeyAccountPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    identification: IdentificationPolicy
    kpi: KpiPolicy
    onboarding: OnboardingPolicy
    service_plan: ServicePlanPolicy = Field(default_factory=ServicePlanPolicy)
    service_report: ServiceReportPolicy = Field(default_factory=ServiceReportPolicy)
    identification_schedule: str = Field(description="Cron (five fields, the policy's time zone) of the monthly run.")

    @field_validator("identification_schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        return BackupPolicy._cron(value)


class Policy(BaseModel):
    """The whole policy file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    timezone: str = "Asia/Shanghai"
    business_windows: list[Window] = Field(min_length=1)
    calendar: CalendarPolicy = Field(default_factory=CalendarPolicy)
    complaints: ComplaintPolicy
    escalation: EscalationPolicy
    enquiries: EnquiryPolicy
    contact_cadence: ContactCadence
    surveys: SurveyPolicy
    staff_assessment: StaffAssessmentPolicy
    backups: BackupPolicy
    letters: LetterPolicy = Field(default_factory=LetterPolicy)
    roles: RolePolicy
    customer_answers: CustomerAnswerPolicy = Field(default_factory=CustomerAnswerPolicy)
    reports: ReportPolicy
    # --- fidelity (issue 13): where each rule comes from ---
    sources: dict[str, str] = Field(
        default_factory=dict,
        description="Policy key (dotted, e.g. 'escalation.ladder') -> 'seed NNN §x' (the seed's own rule) or "
        "'company' (a company setting: the seeds state no value). `kefu policy check` lists the company settings.",
    )

    @model_validator(mode="after")
    def _sources_known(self) -> Policy:
        for key, source in self.sources.items():
            if not SOURCE.fullmatch(source):
                raise ValueError(
                    f"sources.{key}: '{source}' is neither 'company' nor 'seed NNN §x' (e.g. 'seed 003 §3.2')"
                )
            try:
                policy_value(self, key)
            except KeyError:
                raise ValueError(f"sources.{key}: the policy has no such key") from None
        unmarked = [key for key in MUST_NAME_SOURCE if key not in self.sources]
        if unmarked:
            raise ValueError(
                f"sources: say whether these come from a seed or are company settings: {', '.join(unmarked)}"
            )
        return self

    def company_settings(self) -> dict[str, Any]:
        """The values the seeds do not state (``sources: company``), by key."""
        return {key: policy_value(self, key) for key, source in self.sources.items() if source == COMPANY}

    greetings: GreetingPolicy = Field(default_factory=GreetingPolicy)
    feedback: FeedbackPolicy = Field(default_factory=FeedbackPolicy)
    key_accounts: KeyAccountPolicy
    callbacks: CallbackPolicy = Field(default_factory=CallbackPolicy)
    quality_checks: QualityCheckPolicy = Field(default_factory=QualityCheckPolicy)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone '{value}'") from exc
        return value

    @field_validator("business_windows")
    @classmethod
    def _windows_apart(cls, windows: list[BusinessWindow]) -> list[BusinessWindow]:
        ordered = sorted(windows, key=lambda w: w.start)
        for before, after in itertools.pairwise(ordered):
            if after.start < before.end:
                raise ValueError(f"business windows {before} and {after} overlap")
        return ordered


COMPANY = "company"
SOURCE = re.compile(r"company|seed \d{3}( §[0-9A-Za-z.()（）一二三四五六七八九十]+)?")
# Rules the seeds do not give a value for: the policy file must say where each one comes from (issue 13).
MUST_NAME_SOURCE = (
    "complaints.classification.seed_examples",
    "complaints.classification.general_keywords",
    "complaints.classification.important_keywords",
    "complaints.classification.major_keywords",
    "complaints.classification.important_order_amount",
    "complaints.classification.major_order_amount",
    "complaints.classification.urgent_keywords",
    "complaints.key_account_overrides",
    "escalation.warn_at_percent",
    "escalation.ladder",
    "escalation.reminder_interval",
)


def policy_value(policy: BaseModel, key: str) -> Any:
    """The value at a dotted key of the policy (``complaints.classification.major_keywords``); KeyError if none."""
    value: Any = policy
    for part in key.split("."):
        if isinstance(value, BaseModel) and part in type(value).model_fields:
            value = getattr(value, part)
        elif isinstance(value, dict) and part in {str(k) for k in value}:
            value = next(v for k, v in value.items() if str(k) == part)
        else:
            raise KeyError(key)
    return value


class PolicyError(Exception):
    """The policy file cannot be used; the message names the key and the reason."""


def _format_errors(path: Path, exc: ValidationError) -> str:
    lines = [f"policy file {path} is invalid:"]
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)


def parse_policy(text: str, source: Path = Path("<policy>")) -> Policy:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"policy file {source} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PolicyError(f"policy file {source} must hold a mapping at the top level")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_format_errors(source, exc)) from exc


def load_policy(path: Path) -> Policy:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"policy file {path} cannot be read: {exc.strerror}") from exc
    return parse_policy(text, path)


@lru_cache(maxsize=4)
def _load_cached(path: str, mtime_ns: int) -> Policy:
    return load_policy(Path(path))


def current_policy() -> Policy:
    """The policy file named by the settings (re-read when the file changes); raises PolicyError."""
    from kefu.settings import get_settings

    path = get_settings().policy_file
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise PolicyError(f"policy file {path} cannot be read: {exc.strerror}") from exc
    return _load_cached(str(path), mtime)
