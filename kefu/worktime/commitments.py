"""Commitments: the times the policy promises the customer, as the front door and the status page show them.

A commitment is the earliest open customer-facing milestone of a case (``customer_facing`` in the policy's
milestone rules). ``first_commitment`` is the fast path the front door takes for every complaint it accepts:
only the due times (``WorkCalendar.due_at``), not the explained plan of ``plan_complaint_milestones`` — and
it always agrees with that plan's earliest customer-facing deadline.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from kefu.models.policy import DUE_PLACEHOLDER, MilestoneId, Policy, Severity
from kefu.worktime.calendar import WorkCalendar
from kefu.worktime.display import customer_time
from kefu.worktime.milestones import case_rules


@dataclass(frozen=True)
class Commitment:
    """A time promised to the customer: which milestone, its policy name (for staff and gateways), the
    promise in the customer's words (``{due}`` where the time goes) and the due time (local time)."""

    milestone: MilestoneId
    name: str
    due_at: dt.datetime
    wording: str

    def promise(self) -> tuple[str, str]:
        """The customer's wording around the due time: the words before it and the words after it."""
        before, _, after = self.wording.partition(DUE_PLACEHOLDER)
        return before, after

    def in_words(self, tz: ZoneInfo | str | None = None) -> str:
        """The promise as the customer reads it, e.g. ``我们将在2026年12月2日 10:00（北京时间）之前与您联系``:
        the policy's customer wording with the due time written for a customer (``customer_time``)."""
        return self.wording.replace(DUE_PLACEHOLDER, customer_time(self.due_at, tz))


def first_commitment(
    policy: Policy, calendar: WorkCalendar, severity: Severity, received_at: dt.datetime, *, key_account: bool
) -> Commitment | None:
    """The first time the policy promises the customer something (e.g. 首次联系 within 24 h) for a complaint
    received at ``received_at``; None when no customer-facing milestone has a known time yet."""
    first: Commitment | None = None
    for chosen in case_rules(policy, calendar, severity, received_at, key_account=key_account):
        rule, due_at = chosen.rule, chosen.due_at
        if not rule.customer_facing or due_at is None:
            continue  # internal, or "promised": known only once the customer accepts a solution
        if first is None or due_at < first.due_at:
            assert rule.customer_wording is not None  # the policy model requires it of a customer-facing rule
            first = Commitment(rule.id, rule.name, due_at, rule.customer_wording)
    return first


def next_open_commitment(
    policy: Policy, severity: Severity, open_milestones: Iterable[tuple[MilestoneId, dt.datetime]]
) -> Commitment | None:
    """The earliest customer-facing one among a case's open milestones (id, due time), or None."""
    first: Commitment | None = None
    for milestone, due_at in open_milestones:
        rule = policy.complaints.customer_rule(severity, milestone)
        if rule is None:
            continue
        if first is None or due_at < first.due_at:
            assert rule.customer_wording is not None
            first = Commitment(milestone, rule.name, due_at, rule.customer_wording)
    return first
