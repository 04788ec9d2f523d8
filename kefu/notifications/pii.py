"""Masking of personal data in internal messages and logs (seed 002 §二 5)."""

from __future__ import annotations

import logging
import re
from typing import Any

_ID = re.compile(r"(?<!\d)(\d{6})\d{8}(\d{3}[\dXx])(?!\d)")
_MOBILE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)(0\d{2,3}-?)\d{3,4}(\d{4})(?!\d)")
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*(@[A-Za-z0-9.-]+)")


def mask_pii(text: str) -> str:
    """``13812348000`` → ``138****8000``; ID ``110101199001011234`` → ``110101********1234``."""
    text = _ID.sub(r"\1********\2", text)
    text = _MOBILE.sub(r"\1****\2", text)
    return _LANDLINE.sub(r"\1****\2", text)


def mask_email(address: str) -> str:
    """``zhang.san@example.com`` → ``z***@example.com`` (for logs and artifacts)."""
    return _EMAIL.sub(r"\1***\2", address)


def mask_recipient(recipient: str) -> str:
    """An outbox recipient for logs and artifacts: an e-mail address or a phone number, masked."""
    return mask_email(mask_pii(recipient))


def mask_text(text: str) -> str:
    """Phone numbers, ID-card numbers and e-mail addresses in free text, masked."""
    return mask_email(mask_pii(text))


class PersonalDataFilter(logging.Filter):
    """Masks phone numbers, ID-card numbers and e-mail addresses in a log record: its message with its arguments
    filled in, and its traceback. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _MASKED, False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its message: left for logging to report
            return True
        record.msg, record.args = mask_text(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        setattr(record, _MASKED, True)
        return True


_MASKED = "kefu_masked"
_FILTER = PersonalDataFilter()


def install_log_masking() -> None:
    """Mask personal data in every log record this process makes, whatever the logger and handler (Kefu's own,
    Prefect's run loggers and their API handler, uvicorn's): the filter runs as each record is made (the record
    factory), so handlers configured later (Prefect's logging set-up) get masked records too. Idempotent; every Kefu
    process calls it at start (``kefu`` commands, the worker, the intake app, the dispatcher, the mail sink)."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, _MASKED, False):
        return

    def masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        _FILTER.filter(record)
        return record

    setattr(masked_record, _MASKED, True)
    logging.setLogRecordFactory(masked_record)
