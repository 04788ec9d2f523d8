"""The embedded-default SMTP sink: a local aiosmtpd server that stores every mail under var/mail/.

One file per Message-ID (``<sha256>.eml``), so a mail that arrives twice is stored once.
Run with ``python -m kefu.notifications.sink`` (``kefu up`` does so when ``mail_sink_enabled``).
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import hashlib
import logging
from dataclasses import dataclass
from email.message import Message
from email.policy import default as default_policy
from email.utils import parsedate_to_datetime
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from kefu.settings import Settings, get_settings
from kefu.worktime import local_time

log = logging.getLogger(__name__)


def mail_dir(settings: Settings) -> Path:
    return settings.var_dir / "mail"


@dataclass
class SinkHandler:
    directory: Path

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        message = email.message_from_bytes(content)
        key = str(message.get("Message-ID") or hashlib.sha256(content).hexdigest())
        name = hashlib.sha256(key.encode()).hexdigest()[:32] + ".eml"
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / name
        if not target.exists():
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(content)
            tmp.replace(target)
        return "250 Message accepted for delivery"


@dataclass(frozen=True)
class StoredMail:
    name: str
    message_id: str
    sender: str
    to: str
    subject: str
    date: str
    text: str


def stored_mails(directory: Path, limit: int = 200) -> list[StoredMail]:
    """The newest mails in the sink, newest first."""
    if not directory.exists():
        return []
    files = sorted(directory.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True)[:limit]
    mails = []
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=default_policy)
        mails.append(
            StoredMail(
                name=path.stem,
                message_id=str(message.get("Message-ID", "")),
                sender=str(message.get("From", "")),
                to=str(message.get("To", "")),
                subject=str(message.get("Subject", "")),
                date=_local_date(str(message.get("Date", ""))),
                text=_plain_text(message),
            )
        )
    return mails


def _local_date(header: str) -> str:
    """A mail's ``Date`` as every Kefu page shows a time: Shanghai time with its offset (``2026-12-02 19:02 +08:00``),
    whatever zone the sender wrote it in; a header that is no date is shown as written."""
    try:
        moment = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return header
    return local_time(moment) if moment.tzinfo is not None else header


def _plain_text(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload.decode(part.get_content_charset() or "utf-8", errors="replace")
    return ""


def start(settings: Settings | None = None) -> Controller:
    settings = settings or get_settings()
    controller = Controller(SinkHandler(mail_dir(settings)), hostname=settings.smtp_host, port=settings.smtp_port)
    controller.start()
    return controller


async def _serve_forever() -> None:
    settings = get_settings()
    controller = start(settings)
    log.info("SMTP sink on %s:%s storing into %s", settings.smtp_host, settings.smtp_port, mail_dir(settings))
    try:
        await asyncio.Event().wait()
    finally:
        controller.stop()


if __name__ == "__main__":
    from kefu.notifications.pii import install_log_masking

    install_log_masking()
    logging.basicConfig(level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever())
