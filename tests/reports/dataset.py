"""A known dataset for the statistics report: twelve complaints in November 2026 whose every figure is computed by
hand below (``EXPECTED``), nine in October (the previous period) and one in December (outside both); and three key
accounts, two with November business figures (``KEY_ACCOUNTS``) and one without.

Times are Shanghai time; November 2026 has no public holiday, so working days are Monday to Friday, windows
09:00–12:00 and 15:00–18:00. The report is of the whole month, as of its end (2026-12-01 00:00).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from kefu.models.accounts import BusinessFigures
from kefu.models.complaints import CaseEvent, Complaint, Milestone
from kefu.models.enums import Channel, ComplaintStatus, CustomerTier, MilestoneId, Severity
from kefu.models.people import Customer
from tests.support.clock import SHANGHAI

PHONE = "13800138000"  # in the complaints' text and the customer's record: must never appear in a report
CUSTOMER = "保密客户张三"


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"2026-{text}").replace(tzinfo=SHANGHAI)


H, W, P, WD = "hours", "working_hours", "promised", "working_days"
# (milestone, unit, due, met); due/met "MM-DD HH:MM" or None
Row = tuple[str, str, str | None, str | None]

# case: severity, category, channel, received, reopen_count, [first departments of each investigation], milestones
CASES: list[tuple[Severity, str | None, Channel, str, int, list[list[str]], list[Row]]] = [
    # general: first_contact 24 h, solution 48 h, resolution as promised
    (
        Severity.GENERAL,
        "破损",
        Channel.HOTLINE,
        "11-02 09:00",
        0,
        [["运营部"]],
        [
            ("first_contact", H, "11-03 09:00", "11-02 11:00"),
            ("solution", H, "11-04 09:00", "11-03 09:00"),
            ("resolution", P, "11-06 18:00", "11-05 10:00"),
        ],
    ),
    (
        Severity.GENERAL,
        "破损",
        Channel.HOTLINE,
        "11-03 10:00",
        0,
        [["运营部", "技术部"]],
        [
            ("first_contact", H, "11-04 10:00", "11-04 14:00"),
            ("solution", H, "11-05 10:00", None),
            ("resolution", P, None, None),
        ],
    ),
    (
        Severity.GENERAL,
        "延误",
        Channel.HOTLINE,
        "11-09 09:00",
        1,
        [["运营部"]],
        [
            ("first_contact", H, "11-10 09:00", "11-09 13:00"),
            ("solution", H, "11-11 09:00", "11-10 09:00"),
            ("resolution", P, "11-13 18:00", "11-12 09:00"),
        ],
    ),
    (
        Severity.GENERAL,
        "丢件",
        Channel.WEB,
        "11-20 15:00",
        0,
        [["运营部"]],
        [
            ("first_contact", H, "11-21 15:00", "11-21 15:00"),
            ("solution", H, "11-22 15:00", "11-23 15:00"),
            ("resolution", P, "11-27 18:00", "11-30 12:00"),
        ],
    ),
    (
        Severity.GENERAL,
        "破损",
        Channel.WEB,
        "11-30 20:00",
        0,
        [],
        [
            ("first_contact", H, "12-01 20:00", None),
            ("solution", H, "12-02 20:00", None),
            ("resolution", P, None, None),
        ],
    ),
    # important: supervisor_report 12 h, progress_update 48 h, resolution 7 working days
    (
        Severity.IMPORTANT,
        "延误",
        Channel.HOTLINE,
        "11-02 10:00",
        0,
        [["技术部"], ["运营部"]],
        [
            ("supervisor_report", H, "11-02 22:00", "11-02 12:00"),
            ("progress_update", H, "11-04 10:00", "11-03 10:00"),
            ("resolution", WD, "11-11 18:00", "11-06 12:00"),
        ],
    ),
    (
        Severity.IMPORTANT,
        "破损",
        Channel.EMAIL,
        "11-10 16:00",
        1,
        [["运营部"]],
        [
            ("supervisor_report", H, "11-11 04:00", "11-11 06:00"),
            ("progress_update", H, "11-12 16:00", "11-11 16:00"),
            ("resolution", WD, "11-19 18:00", "11-13 17:00"),
        ],
    ),
    (
        Severity.IMPORTANT,
        "延误",
        Channel.HOTLINE,
        "11-16 09:00",
        0,
        [["财务部"]],
        [
            ("supervisor_report", H, "11-16 21:00", None),
            ("progress_update", H, "11-18 09:00", "11-19 09:00"),
            ("resolution", WD, "11-25 18:00", None),
        ],
    ),
    (
        Severity.IMPORTANT,
        "丢件",
        Channel.EMAIL,
        "11-27 11:00",
        0,
        [],
        [
            ("supervisor_report", H, "11-27 23:00", "11-27 12:00"),
            ("progress_update", H, "11-29 11:00", None),
            ("resolution", WD, "12-08 18:00", None),
        ],
    ),
    # major: task_force 1 h, first_contact 6 h, preliminary_plan 24 h, resolution 15 working days
    (
        Severity.MAJOR,
        "破损",
        Channel.HOTLINE,
        "11-04 09:00",
        0,
        [["技术部"]],
        [
            ("task_force", H, "11-04 10:00", "11-04 09:30"),
            ("first_contact", H, "11-04 15:00", "11-04 12:00"),
            ("preliminary_plan", H, "11-05 09:00", "11-05 08:00"),
            ("resolution", WD, "11-25 18:00", "11-20 10:00"),
        ],
    ),
    (
        Severity.MAJOR,
        "延误",
        Channel.WEB,
        "11-18 14:00",
        0,
        [],
        [
            ("task_force", H, "11-18 15:00", "11-18 16:00"),
            ("first_contact", H, "11-18 20:00", "11-18 21:00"),
            ("preliminary_plan", H, "11-19 14:00", None),
            ("resolution", WD, "12-09 18:00", None),
        ],
    ),
    (
        Severity.MAJOR,
        None,
        Channel.IM,
        "11-25 09:00",
        0,
        [],
        [
            ("task_force", H, "11-25 10:00", "11-25 09:10"),
            ("first_contact", H, "11-25 15:00", "11-25 14:00"),
            ("preliminary_plan", H, "11-26 09:00", "11-26 09:00"),
            ("resolution", WD, "12-16 18:00", None),
        ],
    ),
]
OCTOBER = ["破损"] * 2 + ["延误"] * 6 + ["安全"]  # the previous period: categories only


# (code, orders, orders processed on time, deliveries on time, complaints; None: Kefu counts them) for November.
KEY_ACCOUNTS: list[tuple[str, int, int, int, int | None]] = [
    ("KA-001", 200, 196, 188, None),  # its one complaint is the first case of CASES: 0.5 %
    ("KA-002", 100, 90, 99, 2),
]


def load(session: Session) -> None:
    customer = Customer(name=CUSTOMER, phones=[PHONE], email="zhangsan@example.com")
    session.add(customer)
    accounts = [Customer(name=f"重点客户{code}", code=code, tier=CustomerTier.KEY) for code, *_ in KEY_ACCOUNTS]
    quiet = Customer(name="没有本月数据的重点客户", code="KA-003", tier=CustomerTier.KEY)
    session.add_all([*accounts, quiet])
    session.flush()
    for account, (_, orders, orders_on_time, deliveries_on_time, complaints) in zip(
        accounts, KEY_ACCOUNTS, strict=True
    ):
        session.add(
            BusinessFigures(
                customer_id=account.id,
                month=dt.date(2026, 11, 1),
                orders=orders,
                volume=orders * 10,
                orders_on_time=orders_on_time,
                deliveries_on_time=deliveries_on_time,
                complaints=complaints,
            )
        )
    session.add(  # October only: not in November's table
        BusinessFigures(
            customer_id=quiet.id,
            month=dt.date(2026, 10, 1),
            orders=50,
            volume=500,
            orders_on_time=50,
            deliveries_on_time=50,
            complaints=0,
        )
    )
    number = 0

    def complaint(severity: Severity, category: str | None, channel: Channel, received: dt.datetime) -> Complaint:
        nonlocal number
        number += 1
        return Complaint(
            case_no=f"TS-2026-{number:04d}",
            channel=channel,
            received_at=received,
            severity=severity,
            category=category,
            status=ComplaintStatus.CLASSIFIED,
            customer_id=customer.id,
            content=f"{CUSTOMER}投诉，电话{PHONE}",
        )

    for severity, category, channel, received, reopened, investigations, milestones in CASES:
        row = complaint(severity, category, channel, at(received))
        if number == 1:
            row.customer_id = accounts[0].id
        row.reopen_count = reopened
        row.milestones = [
            Milestone(
                milestone=MilestoneId(m),
                starts_at=at(received),
                due_at=at(due) if due else None,
                unit=unit,
                target="x",
                met_at=at(met) if met else None,
            )
            for m, unit, due, met in milestones
        ]
        session.add(row)
        session.flush()
        for n, departments in enumerate(investigations):
            data: dict[str, Any] = {"key": f"investigate-{n}", "departments": departments, "findings": PHONE}
            session.add(
                CaseEvent(complaint_id=row.id, actor="staff:1", action="investigate", data=data, at=at(received))
            )
            session.flush()
    for n, category in enumerate(OCTOBER):
        session.add(complaint(Severity.GENERAL, category, Channel.HOTLINE, at("10-05 10:00") + dt.timedelta(days=n)))
    session.add(complaint(Severity.GENERAL, "破损", Channel.HOTLINE, at("12-01 00:00")))  # December: outside
    session.commit()


# Every table of the November report, computed by hand (see the comments in CASES for the policy's targets).
EXPECTED: dict[str, list[tuple[Any, ...]]] = {
    "severity": [("一般投诉", 5, 41.7), ("重要投诉", 4, 33.3), ("重大投诉", 3, 25.0), ("合计", 12, 100.0)],
    "category": [("破损", 5, 41.7), ("延误", 4, 33.3), ("丢件", 2, 16.7), ("未分类", 1, 8.3), ("合计", 12, 100.0)],
    "channel": [
        ("客服热线", 6, 50.0),
        ("电子邮件", 2, 16.7),
        ("网站", 3, 25.0),
        ("在线客服", 1, 8.3),
        ("合计", 12, 100.0),
    ],
    "department": [
        ("运营部", 5, 41.7),
        ("未指定（尚未调查）", 4, 33.3),
        ("技术部", 2, 16.7),
        ("财务部", 1, 8.3),
        ("合计", 12, 100.0),
    ],
    # orders, order-processing on time, on-time delivery and complaint rates (%), KPIs missed (floors 95 %, 95 %,
    # ceiling 1 %); 合计 pooled: 286/300, 287/300, 3/300
    "key-accounts": [
        ("KA-001", 200, 98.0, 94.0, 0.5, "准时交付率"),
        ("KA-002", 100, 90.0, 99.0, 2.0, "订单处理及时率、投诉率"),
        ("合计", 300, 95.3, 95.7, 1.0, "2 家未达标"),
    ],
    # on time, late, breached, not yet due, total, on-time rate
    "sla": [
        ("一般投诉", "与客户取得联系", 3, 1, 0, 1, 5, 75.0),
        ("一般投诉", "给出解决方案", 2, 1, 1, 1, 5, 50.0),
        ("一般投诉", "在承诺的时间内完成处理", 2, 1, 0, 2, 5, 66.7),
        ("重要投诉", "向上级主管报告", 2, 1, 1, 0, 4, 50.0),
        ("重要投诉", "说明处理进度和初步解决方案", 2, 1, 1, 0, 4, 50.0),
        ("重要投诉", "完成处理", 2, 0, 1, 1, 4, 66.7),
        ("重大投诉", "立即成立专项处理小组", 2, 1, 0, 0, 3, 66.7),
        ("重大投诉", "与客户联系致歉并承诺", 2, 1, 0, 0, 3, 66.7),
        ("重大投诉", "给出初步处理方案", 2, 0, 1, 0, 3, 66.7),
        ("重大投诉", "完成处理", 1, 0, 0, 2, 3, 100.0),
        ("合计", "", 20, 7, 5, 7, 39, 62.5),
    ],
    # clock hours: general first contact 2, 28, 4, 24; resolution 73, 72, 237 — important first contact (progress
    # update) 24, 24, 72; resolution in working hours 26 (Mon 10:00 → Fri 12:00) and 19 (Tue 16:00 → Fri 17:00) —
    # major first contact 3, 7, 5; resolution 73 working hours (Wed 09:00 → Fri two weeks later 10:00)
    "durations": [
        ("一般投诉", "首次联系", "自然时间", 4, 14.0, 26.8),
        ("一般投诉", "完成处理", "自然时间", 3, 73.0, 204.2),
        ("重要投诉", "首次联系", "自然时间", 3, 24.0, 62.4),
        ("重要投诉", "完成处理", "工作时间", 2, 22.5, 25.3),
        ("重大投诉", "首次联系", "自然时间", 3, 5.0, 6.6),
        ("重大投诉", "完成处理", "工作时间", 1, 73.0, 73.0),
    ],
    "reopen": [(12, 2, 16.7)],
    # top 2 causes (the test's policy), the rest as 其他: 丢件 2 + 安全 0 against 安全 1 in October; 未分类 (no
    # cause named yet) apart, never ranked
    "causes": [
        (1, "破损", 5, 2, 3, 150.0),
        (2, "延误", 4, 6, -2, -33.3),
        ("", "其他", 2, 1, 1, 100.0),
        ("", "未分类", 1, 0, 1, "—"),
        ("", "合计", 12, 9, 3, 33.3),
    ],
}
HEADLINE = {"投诉总数": 12, "按时率（%）": 62.5, "重开率（%）": 16.7, "上期投诉总数": 9}
