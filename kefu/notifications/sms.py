"""SMS bodies: a notice's text version shortened to what a phone shows, signed 【…】, within the part limit.

What the customer reads is ``【signature】您好，<the notice's body>``: the greeting line, the closing and the
letter's sign-off of the mail are left out, spaces between Chinese characters are dropped, and when the text
is longer than ``sms_max_parts`` parts (70 characters for a single SMS, 67 per part when concatenated; the
signature counts, as the providers count it) sentences are dropped from the end, never one that names the case
number or the next step (the time we will be in touch, the reply deadline, the survey link). A body that still
does not fit, or that the phrase lint refuses, is rejected like a mail (nothing queued, the case records why).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kefu.notifications.lint import THANKS, Category, Finding, lint_text, normalise
from kefu.notifications.messages import SPECS, MessageType, Renderer, zh_time
from kefu.notifications.pii import mask_pii

SINGLE_LIMIT = 70  # characters in one SMS (any Chinese text is sent as UCS-2)
PART_LIMIT = 67  # characters per part of a concatenated SMS (the rest is the concatenation header)

# Context keys an SMS never loses when it is shortened: the case number and the next step.
ESSENTIAL_KEYS = (
    "case_no",
    "next_contact_at",
    "reply_by",
    "answer_url",
    "survey_url",
    "callback_by",
    "due_at",
    "holiday_name",
    "manager_phone",
)

GREETING = "您好，"
THANKS_CLOSING = "谢谢！"

_CJK = r"\u3000-\u303f\u3400-\u9fff\uff00-\uffef"
_SPACE_NEAR_CJK = re.compile(rf"(?<=[{_CJK}])[ \t]+|[ \t]+(?=[{_CJK}])")
_SENTENCE = re.compile(r"[^。！？；!?;]+[。！？；!?;]*")
_ENDS_SENTENCE = re.compile(r"[。！？；!?;]$")
_MOBILE = re.compile(r"^1[3-9]\d{9}$")


def sms_parts(text: str) -> int:
    """How many SMS the text is billed and sent as (signature included)."""
    length = len(text)
    return 1 if length <= SINGLE_LIMIT else math.ceil(length / PART_LIMIT)


def signed(signature: str, body: str) -> str:
    return f"【{signature}】{body}"


def split_signed(text: str) -> tuple[str, str]:
    """``【签名】正文`` → (``签名``, ``正文``) for an outbox row's stored text."""
    if text.startswith("【") and "】" in text:
        signature, _, body = text[1:].partition("】")
        return signature, body
    return "", text


def mobile_number(phones: list[str] | tuple[str, ...]) -> str | None:
    """The first mainland mobile number among ``phones`` (``+86``, spaces and dashes ignored); landlines get no SMS."""
    for phone in phones:
        digits = re.sub(r"[\s-]", "", phone).removeprefix("+86")
        if _MOBILE.match(digits):
            return digits
    return None


def compact(text: str) -> str:
    """One line: no spaces next to Chinese characters, lines joined (a line without end punctuation gets 。)."""
    lines = [_SPACE_NEAR_CJK.sub("", line.strip()) for line in text.splitlines()]
    joined = ""
    for line in filter(None, lines):
        if joined and not re.search(r"[。！？；：:!?;，,]$", joined):
            joined += "。"
        joined += line
    return joined


@dataclass(frozen=True)
class SmsRendered:
    message_type: MessageType
    internal: bool
    text: str  # what the phone shows: 【signature】body
    parts: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def render_sms(
    renderer: Renderer,
    message_type: MessageType,
    context: Mapping[str, Any],
    *,
    signature: str,
    max_parts: int,
) -> SmsRendered:
    """The notice's text version shortened to an SMS, linted like the mail (see the module docstring)."""
    message_type = MessageType(message_type)
    spec = SPECS[message_type]
    body = compact(renderer.render_body(message_type, context))
    if spec.internal:
        body = mask_pii(body)
    essentials = [_shown(renderer, context[k]) for k in spec.required if k in ESSENTIAL_KEYS]
    sentences = _SENTENCE.findall(body)
    keep = [True] * len(sentences)

    def text() -> str:
        kept = "".join(s for s, k in zip(sentences, keep, strict=True) if k)
        if not any(t in normalise(kept) for t in THANKS):  # a customer is thanked even in a short SMS
            kept += ("" if not kept or _ENDS_SENTENCE.search(kept) else "。") + THANKS_CLOSING
        return signed(signature, GREETING + kept)

    for index in reversed(range(len(sentences))):
        if sms_parts(text()) <= max_parts:
            break
        if not any(e in sentences[index] for e in essentials):
            keep[index] = False
    final = text()
    findings = lint_text(final, customer_facing=not spec.internal)
    parts = sms_parts(final)
    if parts > max_parts:
        findings.append(
            Finding(Category.MISSING_ELEMENT, f"短信过长：{len(final)}字，需{parts}条，超过上限{max_parts}条")
        )
    findings += [Finding(Category.MISSING_ELEMENT, f"短信缺少{e}") for e in essentials if e not in final]
    return SmsRendered(message_type, spec.internal, final, parts, findings)


def _shown(renderer: Renderer, value: object) -> str:
    return compact(zh_time(value, renderer.tz) if isinstance(value, dt.datetime) else str(value))
