"""``kefu deadlines``: the complaint deadlines the policy sets for a receipt time (a public contract).

kefu deadlines --severity {general,important,major} --received-at ISO8601
               [--resolved-at ISO8601] [--key-account] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from kefu.cli import UsageError
from kefu.models.policy import Severity, current_policy
from kefu.worktime import MilestonePlan, WorkCalendar, plan_complaint_milestones


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "deadlines",
        help="the complaint deadlines for a receipt time, on the Chinese working-day calendar",
        description="Compute every complaint milestone the policy sets (DESIGN.md §1, §3).",
    )
    parser.add_argument("--severity", required=True, choices=[s.value for s in Severity])
    parser.add_argument("--received-at", required=True, help="ISO 8601; without an offset it is Asia/Shanghai time")
    parser.add_argument("--resolved-at", help="ISO 8601; adds the satisfaction callback (3 working days after)")
    parser.add_argument("--promised-at", help="ISO 8601; the completion time promised in an accepted solution")
    parser.add_argument("--key-account", action="store_true", help="the customer is a key account (重点客户)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def parse_moment(text: str, option: str, calendar: WorkCalendar) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{option} '{text}' is not an ISO 8601 time (e.g. 2026-10-09T17:30:00+08:00)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=calendar.tz)
    return moment


def to_json(plan: MilestonePlan) -> dict[str, Any]:
    return {
        "severity": plan.severity.value,
        "received_at": plan.received_at.isoformat(),
        "key_account": plan.key_account,
        "milestones": [
            {
                "id": m.id.value,
                "name": m.name,
                "starts_at": m.starts_at.isoformat(),
                "due_at": m.due_at.isoformat() if m.due_at else None,
                "unit": m.unit,
                "target": m.target,
                "provisional": m.provisional,
                "explanation": m.explanation,
                "rule_from": m.rule_from.value if m.rule_from else None,
            }
            for m in plan.milestones
        ],
        "warnings": plan.warnings,
    }


def to_table(plan: MilestonePlan) -> str:
    account = "（重点客户）" if plan.key_account else ""
    head = f"投诉等级 {plan.severity.value}{account}，接到投诉 {plan.received_at.isoformat()}"
    rows = [("milestone", "name", "due_at", "target"), ("-" * 17, "-" * 8, "-" * 25, "-" * 16)]
    for m in plan.milestones:
        due = m.due_at.isoformat() if m.due_at else "（以承诺为准）"
        flag = " 暂定" if m.provisional else ""
        rows.append((m.id.value, m.name, due + flag, f"{m.target} {m.unit}" if m.unit != "promised" else "promised"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(3)]
    lines = [head, ""]
    lines += ["  ".join(str(cell).ljust(widths[i]) if i < 3 else str(cell) for i, cell in enumerate(r)) for r in rows]
    lines.append("")
    lines += [f"{m.id.value}: {m.explanation}" for m in plan.milestones]
    lines += [f"警告: {w}" for w in plan.warnings]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    policy = current_policy()
    calendar = WorkCalendar(policy)
    received = parse_moment(args.received_at, "--received-at", calendar)
    resolved = parse_moment(args.resolved_at, "--resolved-at", calendar) if args.resolved_at else None
    promised = parse_moment(args.promised_at, "--promised-at", calendar) if args.promised_at else None
    if resolved is not None and resolved < received:
        raise UsageError("--resolved-at is before --received-at")
    if promised is not None and promised < received:
        raise UsageError("--promised-at is before --received-at")
    plan = plan_complaint_milestones(
        policy,
        calendar,
        Severity(args.severity),
        received,
        key_account=args.key_account,
        resolved_at=resolved,
        promised_at=promised,
    )
    if args.json:
        print(json.dumps(to_json(plan), ensure_ascii=False, indent=2))
    else:
        print(to_table(plan))
    return 0
