"""A real SMTP server (aiosmtpd, in-process thread) with injected faults."""

from __future__ import annotations

import asyncio
import email
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from kefu.settings import Settings
from tests.support.processes import free_port


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
