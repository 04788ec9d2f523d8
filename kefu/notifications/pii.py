"""Masking of personal data in internal messages and logs (seed 002 §二 5)."""

from __future__ import annotations

import re

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
