"""The first time promised to a customer — shown the moment a complaint is accepted — is the earliest
customer-facing deadline of the full milestone plan, in the policy's customer wording, for every severity,
key accounts, urgent complaints and the holiday and make-up-day (调休) edges of the calendar."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from kefu.models.policy import MilestoneId, Policy, Severity
from kefu.worktime import WorkCalendar, first_commitment, plan_complaint_milestones

CST = ZoneInfo("Asia/Shanghai")


def at(month: int, day: int, hour: int, minute: int = 0, year: int = 2026) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=CST)


RECEIPTS = [
    pytest.param(at(11, 23, 10), id="monday-inside-the-window"),
    pytest.param(at(11, 27, 17, 59), id="friday-a-minute-before-the-end-of-the-day"),
    pytest.param(at(11, 28, 23, 30), id="saturday-night"),
    pytest.param(at(9, 30, 16), id="eve-of-national-day"),
    pytest.param(at(10, 4, 9), id="inside-the-national-day-holiday"),
    pytest.param(at(10, 9, 18, 30), id="friday-before-the-make-up-saturday"),
    pytest.param(at(10, 10, 10), id="on-the-make-up-saturday"),
    pytest.param(at(2, 13, 17), id="before-the-spring-festival"),
    pytest.param(at(12, 31, 23, 59), id="new-years-eve-into-an-unconfirmed-year"),
]


@pytest.mark.parametrize("received", RECEIPTS)
@pytest.mark.parametrize("key_account", [False, True], ids=["general-customer", "key-account"])
@pytest.mark.parametrize("severity", list(Severity))
def test_the_first_commitment_is_the_plans_earliest_customer_facing_deadline(
    policy: Policy, calendar: WorkCalendar, severity: Severity, key_account: bool, received: dt.datetime
) -> None:
    plan = plan_complaint_milestones(policy, calendar, severity, received, key_account=key_account)
    facing = [m for m in plan.milestones if policy.complaints.customer_rule(severity, m.id) and m.due_at is not None]
    earliest = min(facing, key=lambda m: m.due_at or received)
    rule = policy.complaints.customer_rule(severity, earliest.id)

    commitment = first_commitment(policy, calendar, severity, received, key_account=key_account)

    assert commitment is not None and rule is not None
    assert (commitment.milestone, commitment.due_at) == (earliest.id, earliest.due_at)
    assert commitment.wording == rule.customer_wording
    assert commitment.name == earliest.name


@pytest.mark.parametrize(
    ("content", "flagged", "key_account", "received", "milestone", "due", "promise"),
    [
        pytest.param(
            "快递晚到两天",
            False,
            False,
            at(11, 23, 10),
            MilestoneId.FIRST_CONTACT,
            at(11, 24, 10),
            ("我们将在", "之前与您联系"),
            id="general-first-contact-within-24h",
        ),
        pytest.param(
            "快递晚到两天",
            False,
            True,
            at(11, 23, 10),
            MilestoneId.FIRST_CONTACT,
            at(11, 23, 22),
            ("我们将在", "之前与您联系"),
            id="key-account-raised-to-important-contacted-in-12h-like-a-general-key-account",
        ),
        pytest.param(
            "快递晚到两天",
            True,
            False,
            at(11, 23, 10),
            MilestoneId.FIRST_CONTACT,
            at(11, 24, 10),
            ("我们将在", "之前与您联系"),
            id="flagged-urgent-general-raised-to-important-still-contacted-within-24h",
        ),
        pytest.param(
            "请加急处理，货物延误",
            False,
            False,
            at(11, 23, 10),
            MilestoneId.FIRST_CONTACT,
            at(11, 24, 10),
            ("我们将在", "之前与您联系"),
            id="urgent-word-raised-to-important-still-contacted-within-24h",
        ),
        pytest.param(
            "搬运时受伤",
            False,
            False,
            at(9, 30, 22),
            MilestoneId.FIRST_CONTACT,
            at(10, 1, 4),
            ("我们将在", "之前与您联系"),
            id="major-apology-within-6h-even-on-national-day",
        ),
        pytest.param(
            "搬运时受伤",
            False,
            True,
            at(10, 10, 10),
            MilestoneId.FIRST_CONTACT,
            at(10, 10, 14),
            ("我们将在", "之前与您联系"),
            id="major-key-account-4h-on-the-make-up-saturday",
        ),
    ],
)
def test_what_a_complainant_is_promised_at_intake(
    policy: Policy,
    calendar: WorkCalendar,
    content: str,
    flagged: bool,
    key_account: bool,
    received: dt.datetime,
    milestone: MilestoneId,
    due: dt.datetime,
    promise: tuple[str, str],
) -> None:
    urgent = policy.complaints.classification.is_urgent(content, flagged=flagged)
    severity, _why = policy.complaints.propose_severity(content, None, key_account=key_account, urgent=urgent)

    commitment = first_commitment(policy, calendar, severity, received, key_account=key_account)

    assert commitment is not None
    assert (commitment.milestone, commitment.due_at) == (milestone, due)
    assert commitment.promise() == promise
    plan = plan_complaint_milestones(policy, calendar, severity, received, key_account=key_account)
    planned = plan.get(milestone)
    assert planned is not None and planned.due_at == due


def test_internal_milestones_are_never_promised_to_the_customer(policy: Policy, calendar: WorkCalendar) -> None:
    # A major complaint's task force (1 h) and an important one's supervisor report (12 h) come first, but the
    # customer is promised the first contact (6 h; important: 24 h, as a general complaint).
    received = at(11, 23, 10)
    major = first_commitment(policy, calendar, Severity.MAJOR, received, key_account=False)
    important = first_commitment(policy, calendar, Severity.IMPORTANT, received, key_account=False)
    assert major is not None and major.milestone is MilestoneId.FIRST_CONTACT
    assert important is not None and important.milestone is MilestoneId.FIRST_CONTACT
