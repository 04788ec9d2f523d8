"""A real SMTP server (aiosmtpd, in-process thread) with injected faults, and sample message contexts."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from kefu.notifications import MessageType
from kefu.settings import Settings

SHANGHAI = ZoneInfo("Asia/Shanghai")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class FaultySMTPHandler:
    """Accepts mail and stores it; ``faults[recipient]`` lists what to do on the next attempts:
    ``"421"``, ``"451"``, ``"550"`` (reply codes at RCPT), ``"drop"`` (close the connection),
    ``"slow"`` (answer RCPT after ``slow_seconds``, longer than the client's timeout)."""

    faults: dict[str, list[str]] = field(default_factory=dict)
    received: list[Message] = field(default_factory=list)
    slow_seconds: float = 1.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        with self.lock:
            pending = self.faults.get(address, [])
            fault = pending.pop(0) if pending else None
        if fault == "421":
            return "421 4.3.2 Service not available, closing channel"
        if fault == "451":
            return "451 4.7.1 Greylisted, try again later"
        if fault == "550":
            return "550 5.1.1 Mailbox unavailable"
        if fault == "drop":
            assert server.transport is not None
            server.transport.close()
            return "250 OK"
        if fault == "slow":
            await asyncio.sleep(self.slow_seconds)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        with self.lock:
            self.received.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"

    def message_ids(self) -> list[str]:
        with self.lock:
            return [str(m["Message-ID"]) for m in self.received]


@dataclass
class SMTPServer:
    handler: FaultySMTPHandler
    settings: Settings


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    handler = FaultySMTPHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    settings = Settings(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_timeout_seconds=0.3,
        mail_retry_base_seconds=60,
        mail_retry_max_seconds=600,
        mail_max_attempts=3,
    )
    try:
        yield SMTPServer(handler, settings)
    finally:
        controller.stop()


DUE = dt.datetime(2026, 11, 24, 18, 0, tzinfo=SHANGHAI)

CONTEXTS: dict[MessageType, dict[str, Any]] = {
    MessageType.COMPLAINT_ACKNOWLEDGEMENT: {
        "customer_name": "张三",
        "case_no": "TS-20261123-0001",
        "owner_name": "李客服",
        "next_contact_at": DUE,
    },
    MessageType.MAJOR_APOLOGY: {
        "customer_name": "张三",
        "case_no": "TS-20261123-0001",
        "owner_name": "李客服",
        "task_force_lead": "王总",
        "commitment": "全额赔偿破损货物，并免费重新发货。",
        "next_contact_at": DUE,
    },
    MessageType.PROGRESS_UPDATE: {
        "customer_name": "张三",
        "case_no": "TS-20261123-0001",
        "owner_name": "李客服",
        "progress": "已与承运方核实破损情况，赔偿申请已提交财务。",
        "next_contact_at": DUE,
    },
    MessageType.SOLUTION_PROPOSAL: {
        "customer_name": "张三",
        "case_no": "TS-20261123-0001",
        "owner_name": "李客服",
        "solution": "补发同款货物一件，并退还本单运费。",
        "reply_by": DUE,
        "accept_url": "http://127.0.0.1:8000/cases/TS-20261123-0001/accept?t=abc",
        "reject_url": "http://127.0.0.1:8000/cases/TS-20261123-0001/reject?t=abc",
    },
    MessageType.RESOLUTION_NOTICE: {
        "customer_name": "张三",
        "case_no": "TS-20261123-0001",
        "owner_name": "李客服",
        "resolution": "补发货物已签收，运费已退还。",
    },
    MessageType.CALLBACK_INVITATION: {
        "customer_name": "张三",
        "case_no": "TS-20261123-0001",
        "owner_name": "李客服",
        "survey_url": "http://127.0.0.1:8000/surveys/abc",
    },
    MessageType.SUPERVISOR_ESCALATION: {
        "recipient_name": "赵主管",
        "case_no": "TS-20261123-0001",
        "owner_name": "李客服",
        "severity": "重要",
        "milestone": "上报主管",
        "due_at": DUE,
        "reason": "客户要求立即处理",
        "customer_phone": "13812348000",
    },
    MessageType.PRE_BREACH_WARNING: {
        "recipient_name": "李客服",
        "case_no": "TS-20261123-0001",
        "milestone": "首次联系",
        "due_at": DUE,
    },
    MessageType.TASK_FORCE_ASSIGNMENT: {
        "recipient_name": "孙经理",
        "case_no": "TS-20261123-0001",
        "lead_name": "王总",
        "due_at": DUE,
    },
    MessageType.KEY_ACCOUNT_WELCOME: {
        "customer_name": "某某贸易有限公司",
        "manager_name": "周经理",
        "manager_phone": "020-88886666",
    },
    MessageType.CONTACT_CADENCE_REMINDER: {
        "recipient_name": "周经理",
        "customer_name": "某某贸易有限公司",
        "cadence": "重点客户每月至少一次电话或面访",
        "due_at": DUE,
    },
    MessageType.HOLIDAY_GREETING: {"customer_name": "张三", "holiday_name": "春节"},
}
