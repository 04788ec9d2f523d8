"""``kefu demo load``: a demo staff directory, customers and a few complaints, for a newcomer to try Kefu.

Everything is fictional (phones in 138 0013 8xxx, mail at example.com). The complaints are registered the way
the front door registers them, so with ``make up`` running each gets its case run and waits on its first step.
Loading twice adds nothing the second time.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from sqlalchemy import select

from kefu.models.db import unit_of_work
from kefu.models.directory import StaffEntry, add_people
from kefu.models.enums import Channel, CustomerTier
from kefu.models.people import Customer, Staff
from kefu.models.policy import current_policy

# login, name, roles, supervisor, on duty
# Their notices (a supervisor's urgent-case notice, reminders, escalations) reach the local mail sink at /outbox.
DEMO_MAIL_DOMAIN = "kefu.example.com"
DEMO_STAFF: list[tuple[str, str, list[str], str, str]] = [
    ("gao.jingli", "高经理", ["senior_manager"], "", "mon-fri"),
    ("wang.zhuguan", "王主管", ["supervisor"], "gao.jingli", "mon-fri"),
    ("li.kefu", "李客服", ["agent"], "wang.zhuguan", "mon-fri"),
    ("zhao.kefu", "赵客服", ["agent"], "wang.zhuguan", "tue-sat"),
    ("chen.xiangmu", "陈项目", ["project_manager"], "gao.jingli", "mon-fri"),
    ("zhou.diaodu", "周调度", ["dispatcher"], "wang.zhuguan", "mon-sun"),
    ("wu.shouhou", "吴售后", ["after_sales"], "wang.zhuguan", "mon-fri"),
    ("sun.yunying", "孙运营", ["operations"], "gao.jingli", "mon-fri"),
    ("qian.caiwu", "钱财务", ["finance"], "gao.jingli", "mon-fri"),
]

KEY_ACCOUNT = {"code": "HX01", "name": "华星电子有限公司", "contact_person": "刘经理", "phone": "13800138101"}
# The key account's service team (seed 001 §二.3): who owns its complaints, plans its service and hears of it.
KEY_ACCOUNT_TEAM = [
    ("project_manager", "chen.xiangmu"),
    ("service_specialist", "li.kefu"),
    ("dispatcher", "zhou.diaodu"),
    ("after_sales", "wu.shouhou"),
]

DEMO_COMPLAINTS: list[dict[str, Any]] = [
    {
        "channel": "hotline",
        "name": "张三",
        "phone": "13800138001",
        "email": "zhang.san@example.com",
        "order_no": "DEMO0001",
        "content": "快递比承诺的时间晚到了两天，耽误了使用。",
    },
    {
        "channel": "web",
        "name": "李四",
        "phone": "13800138002",
        "email": "li.si@example.com",
        "order_no": "DEMO0002",
        "content": "包裹外箱破损，里面的杯子碎了，希望赔偿。",
        "order_amount": "860",
    },
    {
        "channel": "email",
        "name": "刘经理",
        "phone": KEY_ACCOUNT["phone"],
        "email": "liu@example.com",
        "order_no": "DEMO0003",
        "content": "整批电子元件丢件，客户急等，请马上处理。",
        "urgent": True,
    },
]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help="demo data for trying Kefu")
    actions = parser.add_subparsers(dest="demo_action", required=True)
    load = actions.add_parser("load", help="a demo staff directory, customers and a few complaints")
    load.set_defaults(handler=run_load)


def run_load(args: argparse.Namespace) -> int:
    from kefu.intake.service import register_complaint
    from kefu.intake.validation import validate_submission
    from kefu.tasks.accounts import assign_member, parse_team_role

    policy = current_policy()
    now = dt.datetime.now(dt.UTC)
    with unit_of_work() as session:
        known = set(session.scalars(select(Staff.login).where(Staff.login.in_([s[0] for s in DEMO_STAFF]))))
        entries = [
            (
                n,
                StaffEntry(
                    name=name,
                    login=login,
                    roles=roles,
                    email=f"{login}@{DEMO_MAIL_DOMAIN}",
                    supervisor=boss,
                    on_duty=duty,
                ),
            )
            for n, (login, name, roles, boss, duty) in enumerate(DEMO_STAFF, start=1)
            if login not in known
        ]
        added = add_people(session, entries, policy) if entries else []
        manager = session.scalars(select(Staff).where(Staff.login == "chen.xiangmu")).one()
        if session.scalars(select(Customer).where(Customer.name == KEY_ACCOUNT["name"])).first() is None:
            account = Customer(
                code=KEY_ACCOUNT["code"],
                name=KEY_ACCOUNT["name"],
                contact_person=KEY_ACCOUNT["contact_person"],
                phones=[KEY_ACCOUNT["phone"]],
                tier=CustomerTier.KEY,
                account_manager_id=manager.id,
                needs="电子元件运输，防静电包装，次日达",
            )
            session.add(account)
            session.flush()
            for role, login in KEY_ACCOUNT_TEAM:
                member = session.scalars(select(Staff).where(Staff.login == login)).one()
                assign_member(session, account, parse_team_role(role), member)
        cases = []
        for n, body in enumerate(DEMO_COMPLAINTS, start=1):
            submission = validate_submission(body, now=now, timezone=policy.timezone)
            registration = register_complaint(
                session,
                submission,
                received_at=now,
                channel=Channel(body["channel"]),
                idempotency_key=f"demo:{n}",
                policy=policy,
            )
            cases.append((registration.case_no, registration.created))
    print(f"kefu demo load: {len(added)} staff added ({len(DEMO_STAFF) - len(added)} there already)")
    for case_no, created in cases:
        print(f"  complaint {case_no} {'registered' if created else '(there already)'}")
    print("Sign-in names: " + ", ".join(s[0] for s in DEMO_STAFF) + " (see kefu staff list)")
    code = KEY_ACCOUNT["code"]
    print(f"Key account {code} ({KEY_ACCOUNT['name']}) with its service team: kefu account show {code}")
    print("With make up running, each complaint gets its case run: kefu step list shows what waits.")
    print("To sign in as one of them at the operators' entrance: kefu staff password LOGIN prints a one-time password.")
    return 0
