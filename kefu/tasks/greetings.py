"""The holiday greeting (seed 002 §三 逢年过节给客户发信息): some working days before each public holiday of the
working calendar, the customers of the policy's segments get the ``holiday_greeting`` once per holiday.

``holidays_ahead`` names the holidays (the official calendar's names, the days off that only follow a make-up
working day left out, 除夕 counted with 春节) and their first day off; ``greet_customers`` queues the greetings
due at a moment: a holiday is due from its greeting day (the policy's ``working_days_before``-th working day
before it) until it begins, so a missed day catches up. Every greeting carries a dedupe key of holiday, year and
customer: a re-run queues nothing new. A customer is skipped, with the reason, when already greeted, over the
fatigue cap (count of customer messages to their address or mobile in the policy's window), or without an
address or mobile.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from kefu.models.enums import CustomerTier
from kefu.models.notifications import OutboxMessage
from kefu.models.people import Customer
from kefu.models.policy import Policy
from kefu.notifications import MessageRejected, MessageType, enqueue, enqueue_sms, mobile_number
from kefu.worktime import WorkCalendar

# Official names that are part of another holiday's days off, and names that are only days off in lieu.
_PART_OF = {"农历除夕": "春节"}
_NOT_A_HOLIDAY = ("休息日",)
_LOOK_AHEAD_DAYS = 40  # far enough for any working_days_before the policy allows (at most 15)


@dataclass(frozen=True)
class Holiday:
    name: str
    first_day: dt.date
    greet_on: dt.date  # the day the greeting is due

    @property
    def key(self) -> str:
        return f"{self.name}-{self.first_day.year}"


def holidays_ahead(calendar: WorkCalendar, today: dt.date, working_days_before: int) -> list[Holiday]:
    """The public holidays beginning after ``today`` within the look-ahead, with the day each greeting is due."""
    firsts: dict[tuple[str, int], dt.date] = {}
    for offset in range(1, _LOOK_AHEAD_DAYS + working_days_before * 3):
        day = today + dt.timedelta(days=offset)
        note = calendar.day_note(day)
        if note.working or note.reason.startswith(_NOT_A_HOLIDAY) or note.reason.startswith(("周末", "公司安排")):
            continue
        name = note.reason.partition("（")[0]
        name = _PART_OF.get(name, name)
        firsts.setdefault((name, day.year), day)
    result = []
    for (name, _), first in sorted(firsts.items(), key=lambda item: item[1]):
        if calendar.day_note(first - dt.timedelta(days=1)).reason.partition("（")[0] in (name, *_PART_OF):
            continue  # a day off in lieu (补假) after the holiday, not a holiday of its own
        greet_on, counted = first, 0
        while counted < working_days_before:
            greet_on -= dt.timedelta(days=1)
            counted += calendar.is_working_day(greet_on)
        result.append(Holiday(name, first, greet_on))
    return result


@dataclass
class GreetingReport:
    holidays: list[Holiday] = field(default_factory=list)
    queued: list[tuple[str, int, str]] = field(default_factory=list)  # holiday, customer id, channel
    skipped: list[tuple[str, int, str]] = field(default_factory=list)  # holiday, customer id, reason (zh-CN)

    def markdown(self) -> str:
        """The run's artifact: what was due, how many were greeted, who was skipped and why (ids only)."""
        lines = ["# 节假日问候", ""]
        if not self.holidays:
            return "\n".join([*lines, "今天没有需要发送的节日问候。"])
        for holiday in self.holidays:
            sent = sum(1 for h, _, _ in self.queued if h == holiday.key)
            lines.append(f"- {holiday.name}（{holiday.first_day.isoformat()}起）：已排队{sent}条")
        lines += ["", "## 未发送的客户", ""]
        if not self.skipped:
            return "\n".join([*lines, "无。"])
        lines += ["| 节日 | 客户编号 | 原因 |", "|---|---|---|"]
        lines += [f"| {h} | {cid} | {why} |" for h, cid, why in self.skipped]
        return "\n".join(lines)


ALREADY = "本节日已问候"
OVER_CAP = "近{days}天内已收到{count}条消息（上限{cap}条）"
NO_ADDRESS = "未留邮箱或手机号"
REJECTED = "措辞未通过检查"


def _dedupe(holiday: Holiday, customer: Customer) -> str:
    return f"greeting:{holiday.key}:customer:{customer.id}"


def _recent_messages(session: Session, addresses: list[str], since: dt.datetime) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(
                OutboxMessage.internal.is_(False),
                or_(*(func.lower(OutboxMessage.recipient) == a.lower() for a in addresses)),
                OutboxMessage.created_at >= since,
            )
        )
        or 0
    )


def greet_customers(session: Session, policy: Policy, calendar: WorkCalendar, now: dt.datetime) -> GreetingReport:
    """Queue the holiday greetings due at ``now`` (in the caller's session; see the module docstring)."""
    rules = policy.greetings
    today = now.astimezone(calendar.tz).date()
    due = [h for h in holidays_ahead(calendar, today, rules.working_days_before) if h.greet_on <= today]
    report = GreetingReport(holidays=due)
    if not due:
        return report
    tiers = [CustomerTier(s) for s in rules.segments]
    customers = session.scalars(select(Customer).where(Customer.tier.in_(tiers)).order_by(Customer.id)).all()
    since = now - dt.timedelta(days=rules.fatigue_window_days)
    for holiday in due:
        for customer in customers:
            dedupe = _dedupe(holiday, customer)
            if session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe)) is not None:
                report.skipped.append((holiday.key, customer.id, ALREADY))
                continue
            phone = mobile_number(customer.phones or [])
            addresses = [a for a in (customer.email, phone) if a]
            if not addresses:
                report.skipped.append((holiday.key, customer.id, NO_ADDRESS))
                continue
            count = _recent_messages(session, addresses, since)
            if count >= rules.fatigue_max_messages:
                why = OVER_CAP.format(days=rules.fatigue_window_days, count=count, cap=rules.fatigue_max_messages)
                report.skipped.append((holiday.key, customer.id, why))
                continue
            context = {"customer_name": customer.name, "holiday_name": holiday.name}
            try:
                if customer.email:
                    enqueue(
                        session,
                        MessageType.HOLIDAY_GREETING,
                        recipient_email=customer.email,
                        context=context,
                        dedupe_key=dedupe,
                        now=now,
                        calendar=calendar,
                    )
                else:
                    assert phone is not None
                    enqueue_sms(
                        session,
                        MessageType.HOLIDAY_GREETING,
                        phone=phone,
                        context=context,
                        dedupe_key=dedupe,
                        now=now,
                        calendar=calendar,
                    )
            except MessageRejected:
                report.skipped.append((holiday.key, customer.id, REJECTED))
                continue
            report.queued.append((holiday.key, customer.id, "mail" if customer.email else "sms"))
    return report
