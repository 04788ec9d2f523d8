"""Notifications benchmark: messages rendered and linted per second, mails delivered per second to a
local aiosmtpd server (SQLite outbox). Prints one JSON object.

    .venv/bin/python bench/notifications.py [--render N] [--mails N]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from harness import ROOT  # noqa: F401  (first: it puts the repository root on sys.path for tests.support)

from kefu.models.db import make_engine, unit_of_work
from kefu.models.migrate import upgrade
from kefu.notifications import MessageType, Renderer, deliver_due, enqueue
from kefu.settings import Settings
from tests.support.processes import free_port

DUE = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC)
CONTEXT: dict[str, Any] = {
    "customer_name": "张三",
    "recipient_name": "李客服",
    "case_no": "TS-20261123-0001",
    "owner_name": "李客服",
    "next_contact_at": DUE,
    "task_force_lead": "王总",
    "commitment": "全额赔偿。",
    "progress": "已核实。",
    "solution": "补发货物。",
    "reply_by": DUE,
    "answer_url": "http://127.0.0.1:8000/a",
    "resolution": "已补发。",
    "callback_by": DUE,
    "closed_at": DUE,
    "last_contact_at": DUE,
    "severity": "重要",
    "milestone": "首次联系",
    "due_at": DUE,
    "reason": "即将超时",
    "customer_phone": "13812348000",
    "lead_name": "王总",
    "manager_name": "周经理",
    "manager_phone": "020-88886666",
    "cadence": "每月一次",
    "holiday_name": "春节",
}


class CountingHandler:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.count += 1
        return "250 OK"


def bench_render(n: int) -> float:
    renderer = Renderer()
    types = list(MessageType)
    start = time.perf_counter()
    for i in range(n):
        rendered = renderer.render(types[i % len(types)], CONTEXT)
        assert rendered.ok, rendered.findings
    return n / (time.perf_counter() - start)


def bench_deliver(n: int) -> tuple[float, int]:
    port = free_port()
    handler = CountingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
            upgrade(engine)
            now = dt.datetime.now(dt.UTC)
            with unit_of_work(engine) as session:
                for i in range(n):
                    enqueue(
                        session,
                        MessageType.PRE_BREACH_WARNING,
                        recipient_email=f"agent{i}@example.com",
                        context=CONTEXT,
                        now=now,
                    )
            settings = Settings(smtp_host="127.0.0.1", smtp_port=port, mail_batch_size=n)
            start = time.perf_counter()
            report = asyncio.run(deliver_due(engine, now, settings=settings))
            elapsed = time.perf_counter() - start
            engine.dispose()
            assert len(report.sent) == n == handler.count
            return n / elapsed, handler.count
    finally:
        controller.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--render", type=int, default=5000)
    parser.add_argument("--mails", type=int, default=500)
    args = parser.parse_args()
    rendered_per_s = bench_render(args.render)
    delivered_per_s, received = bench_deliver(args.mails)
    print(
        json.dumps(
            {
                "rendered_and_linted_per_second": round(rendered_per_s, 1),
                "render_messages": args.render,
                "mails_delivered_per_second": round(delivered_per_s, 1),
                "mails": args.mails,
                "mails_received_by_server": received,
                "backend": "sqlite outbox, aiosmtpd on 127.0.0.1, one SMTP connection",
            }
        )
    )


if __name__ == "__main__":
    main()
