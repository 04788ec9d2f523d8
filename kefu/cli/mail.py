"""``kefu mail``: the outbox seen by operators.

kefu mail dead [--json]   mails and SMS Kefu gave up on (refused for good or too many attempts), recipients masked
kefu mail send            deliver every due mail and SMS now
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from sqlalchemy import Engine, inspect

from kefu.cli import UsageError
from kefu.models.db import default_engine
from kefu.notifications import dead_letters, deliver_due, mask_recipient
from kefu.notifications.pii import mask_text


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("mail", help="the mail outbox: dead letters, delivery")
    sub = parser.add_subparsers(dest="mail_command", required=True)
    dead = sub.add_parser("dead", help="list dead letters (mails that will not be delivered)")
    dead.add_argument("--json", action="store_true", help="print JSON")
    dead.set_defaults(handler=run_dead)
    send = sub.add_parser("send", help="deliver every due mail and SMS now")
    send.set_defaults(handler=run_send)


def _engine() -> Engine:
    engine = default_engine()
    if not inspect(engine).has_table("outbox_messages"):
        raise UsageError("the database has no outbox yet; run `kefu db upgrade` first")
    return engine


def run_dead(args: argparse.Namespace) -> int:
    letters = dead_letters(_engine())
    rows = [
        {
            "id": d.id,
            "type": d.message_type,
            "complaint_id": d.complaint_id,
            "channel": d.channel,
            "recipient": mask_recipient(d.recipient),
            "attempts": d.attempts,
            "error": mask_text(d.last_error or ""),
            "created_at": d.created_at.isoformat(),
        }
        for d in letters
    ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    elif not rows:
        print("没有死信（no dead letters）")
    else:
        for r in rows:
            print(
                f"#{r['id']}  {r['type']}  case={r['complaint_id']}  {r['recipient']}  x{r['attempts']}  {r['error']}"
            )
    return 0


def run_send(args: argparse.Namespace) -> int:
    report = asyncio.run(deliver_due(_engine()))
    print(json.dumps(report.as_dict()))
    return 0
