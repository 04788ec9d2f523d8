"""Validation at the boundary: every date and field check of the web form, the status page and the gateway API.

Every rule answers in words a person understands (zh-CN) and names the field; nothing is stored when any
rule fails. Phones are normalised (spaces, dashes, +86 removed for mobiles) before they are compared. A time
without an offset is local time in the policy's time zone, which the caller passes in.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from kefu.intake.labels import FIELD_LABELS
from kefu.models.enums import Channel

INTAKE_CHANNELS = (
    Channel.HOTLINE,
    Channel.EMAIL,
    Channel.WEB,
    Channel.IM,
    Channel.FACE_TO_FACE,
    Channel.SOCIAL,
)

MAX_LENGTHS = {
    "name": 50,
    "phone": 32,
    "email": 254,
    "order_no": 64,
    "product": 200,
    "place": 200,
    "content": 2000,
    "preferred_contact_time": 100,
}
MIN_CONTENT = 5

_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE = re.compile(r"^0\d{2,3}-?[2-9]\d{6,7}(?:-\d{1,6})?$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]{{1,64}}@{_LABEL}(?:\.{_LABEL})+$")
_ORDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_MULTILINE_ALLOWED = {"\n", "\r", "\t"}
_CASE_NO = re.compile(r"^[A-Z]{2}\d{8}-\d{5}$")
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")
_FORM_KEY = re.compile(r"[0-9a-f]{32}")
_LAST4 = re.compile(r"\d{4}")
RECEIVED_AT_WINDOW = (dt.timedelta(days=7), dt.timedelta(minutes=5))  # how far back, how far ahead of now


@dataclass(frozen=True)
class FieldError:
    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


@dataclass(frozen=True)
class Submission:
    """A complaint that passed every boundary rule."""

    name: str
    phone: str
    content: str
    email: str | None = None
    order_no: str | None = None
    order_amount: Decimal | None = None
    product: str | None = None
    place: str | None = None
    problem_at: dt.datetime | None = None
    urgent: bool = False
    preferred_contact_time: str | None = None
    received_by: int | None = None  # 首问责任制: the staff id of the receiver a gateway names (owns the case)

    def fingerprint_fields(self) -> dict[str, str]:
        return {
            "name": self.name,
            "phone": self.phone,
            "content": self.content,
            "email": self.email or "",
            "order_no": self.order_no or "",
            "order_amount": str(self.order_amount or ""),
            "product": self.product or "",
            "place": self.place or "",
            "problem_at": self.problem_at.isoformat() if self.problem_at else "",
            "urgent": str(self.urgent),
            "preferred_contact_time": self.preferred_contact_time or "",
        }


class SubmissionInvalid(Exception):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def normalise_phone(raw: str) -> str:
    """'138 0013 8000' / '+86 138-0013-8000' → '13800138000'; landlines keep one dash after the area code."""
    text = re.sub(r"[\s()（）]", "", raw)
    if text.startswith("+86"):
        text = text[3:]
    elif text.startswith("0086"):
        text = text[4:]
    text = text.lstrip("-")
    digits = text.replace("-", "")
    if _MOBILE.match(digits):
        return digits
    return text


def phone_last4(phone: str) -> str:
    number = phone.rsplit("-", 1)[0] if phone.count("-") > 1 else phone  # without an extension
    digits = re.sub(r"\D", "", number)
    return digits[-4:]


def mask_phone(phone: str) -> str:
    """For logs: '13800138000' → '138****8000'."""
    if len(phone) <= 7:
        return "****"
    return f"{phone[:3]}****{phone[-4:]}"


def _bad_chars(value: str, multiline: bool) -> bool:
    for char in value:
        if multiline and char in _MULTILINE_ALLOWED:
            continue
        category = unicodedata.category(char)
        if category in {"Cc", "Cs", "Co", "Cn"} or char in "\u2028\u2029":
            return True
    return False


_ZWJ = "\u200d"


def unreadable_text(value: str) -> bool:
    """Control characters (line breaks and tabs allowed) or invisible format characters: refused in any text a
    customer writes."""
    return _bad_chars(value, True) or _format_chars(value)


def _format_chars(value: str) -> bool:
    """Unicode format characters (category Cf): bidirectional overrides and isolates, zero-width spaces and joiners,
    the BOM, soft hyphens — invisible, and able to make what staff read differ from what was sent
    ('用户\u202egnp.exe' shows as '用户exe.png'). One exception: the zero-width joiner between two pictographs, which
    joins emoji sequences (👨‍👩‍👧) and shows nothing else."""
    for i, char in enumerate(value):
        if unicodedata.category(char) != "Cf":
            continue
        if char == _ZWJ and 0 < i < len(value) - 1 and _pictograph(value[i - 1]) and _pictograph(value[i + 1]):
            continue
        return True
    return False


def _pictograph(char: str) -> bool:
    return unicodedata.category(char) == "So" or char == "\ufe0f" or 0x1F3FB <= ord(char) <= 0x1F3FF


def _text(
    data: Mapping[str, Any], field: str, errors: list[FieldError], *, required: bool, multiline: bool = False
) -> str | None:
    label = FIELD_LABELS[field]
    raw = data.get(field)
    if raw is None:
        raw = ""
    if not isinstance(raw, str):
        errors.append(FieldError(field, "type", f"{label}应为文字"))
        return None
    value = raw.strip()
    if not value:
        if required:
            errors.append(FieldError(field, "required", f"请填写{label}"))
        return None
    if _bad_chars(value, multiline):
        errors.append(FieldError(field, "control_characters", f"{label}含有无法识别的控制字符，请删除后重试"))
        return None
    if _format_chars(value):
        errors.append(
            FieldError(
                field,
                "format_characters",
                f"{label}含有看不见的格式字符（如改变文字方向的控制符或零宽字符），请删除后重试",
            )
        )
        return None
    limit = MAX_LENGTHS[field]
    if len(value) > limit:
        errors.append(FieldError(field, "too_long", f"{label}最多{limit}个字，现在有{len(value)}个字"))
        return None
    return value


def _parse_problem_at(raw: Any, tz: ZoneInfo, now: dt.datetime, errors: list[FieldError]) -> dt.datetime | None:
    label = FIELD_LABELS["problem_at"]
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if not isinstance(raw, str):
        errors.append(FieldError("problem_at", "type", f"{label}应为日期时间，例如 2026-11-20 14:30"))
        return None
    text = raw.strip().replace("/", "-")
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        errors.append(FieldError("problem_at", "invalid_datetime", f"{label}格式不对，请写成 2026-11-20 14:30"))
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    if moment > now + dt.timedelta(minutes=5):
        errors.append(FieldError("problem_at", "in_future", f"{label}不能晚于现在"))
        return None
    if moment.year < 2000:
        errors.append(FieldError("problem_at", "too_early", f"{label}太早了，请检查年份"))
        return None
    return moment


def _parse_amount(raw: Any, errors: list[FieldError]) -> Decimal | None:
    label = FIELD_LABELS["order_amount"]
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        errors.append(FieldError("order_amount", "type", f"{label}应为数字，例如 1280.50"))
        return None
    try:
        amount = Decimal(str(raw).strip())
    except InvalidOperation:
        errors.append(FieldError("order_amount", "invalid_amount", f"{label}应为数字，例如 1280.50"))
        return None
    if not amount.is_finite() or amount < 0 or amount >= Decimal("1e12"):
        errors.append(FieldError("order_amount", "out_of_range", f"{label}应在 0 到 999999999999.99 元之间"))
        return None
    return amount.quantize(Decimal("0.01"))


def _parse_bool(raw: Any, errors: list[FieldError]) -> bool:
    if raw is None or raw is False or raw == "":
        return False
    if raw is True or (isinstance(raw, str) and raw.lower() in {"on", "true", "1", "yes"}):
        return True
    if isinstance(raw, str) and raw.lower() in {"off", "false", "0", "no"}:
        return False
    errors.append(FieldError("urgent", "type", "“紧急”只能是是或否"))
    return False


def parse_channel(raw: Any) -> Channel | FieldError:
    allowed = ", ".join(c.value for c in INTAKE_CHANNELS)
    if isinstance(raw, str) and raw in {c.value for c in INTAKE_CHANNELS}:
        return Channel(raw)
    return FieldError("channel", "invalid_channel", f"渠道应为以下之一：{allowed}")


def validate_submission(data: Mapping[str, Any], *, now: dt.datetime, timezone: str) -> Submission:
    """The checked complaint, or ``SubmissionInvalid`` listing every problem at once.

    ``timezone``: the policy's; a ``problem_at`` without an offset is local time there.
    """
    tz = ZoneInfo(timezone)
    errors: list[FieldError] = []
    name = _text(data, "name", errors, required=True)
    phone_raw = _text(data, "phone", errors, required=True)
    phone: str | None = None
    if phone_raw is not None:
        candidate = normalise_phone(phone_raw)
        if _MOBILE.match(candidate) or _LANDLINE.match(candidate):
            phone = candidate
        else:
            errors.append(
                FieldError(
                    "phone",
                    "invalid_phone",
                    "联系电话格式不对：请填写11位手机号（如 13800138000）或带区号的座机号（如 010-62345678）",
                )
            )
    email = _text(data, "email", errors, required=False)
    if email is not None:
        if not _EMAIL.match(email):
            errors.append(FieldError("email", "invalid_email", "电子邮箱格式不对，例如 zhang.san@example.com"))
            email = None
        else:
            email = email.lower()
    order_no = _text(data, "order_no", errors, required=False)
    if order_no is not None and not _ORDER.match(order_no):
        errors.append(FieldError("order_no", "invalid_order_no", "订单号只能包含字母、数字、短横线和下划线"))
    order_amount = _parse_amount(data.get("order_amount"), errors)
    product = _text(data, "product", errors, required=False)
    place = _text(data, "place", errors, required=False)
    problem_at = _parse_problem_at(data.get("problem_at"), tz, now, errors)
    content = _text(data, "content", errors, required=True, multiline=True)
    if content is not None and len(content) < MIN_CONTENT:
        errors.append(FieldError("content", "too_short", f"请把问题描述得具体一些（至少{MIN_CONTENT}个字）"))
    urgent = _parse_bool(data.get("urgent"), errors)
    preferred = _text(data, "preferred_contact_time", errors, required=False)
    received_by = data.get("staff_id")
    if received_by is not None and (
        isinstance(received_by, bool) or not isinstance(received_by, int) or received_by < 1
    ):
        errors.append(FieldError("staff_id", "invalid_staff_id", "受理员工编号应为正整数"))
        received_by = None
    if errors:
        raise SubmissionInvalid(errors)
    assert name is not None and phone is not None and content is not None
    return Submission(
        name=name,
        phone=phone,
        content=content,
        email=email,
        order_no=order_no,
        order_amount=order_amount,
        product=product,
        place=place,
        problem_at=problem_at,
        urgent=urgent,
        preferred_contact_time=preferred,
        received_by=received_by,
    )


def parse_received_at(raw: Any, now: dt.datetime) -> dt.datetime | FieldError:
    """A gateway's own receipt time: ISO 8601 with an offset, at most 7 days ago and not after now (5 minutes
    of clock skew allowed). The SLA clock starts there, so a gateway cannot move it far either way."""
    message = "received_at 应为带时区的 ISO 8601 时间，不晚于现在、不早于7天前"
    if not isinstance(raw, str):
        return FieldError("received_at", "invalid_datetime", message)
    try:
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        return FieldError("received_at", "invalid_datetime", message)
    back, ahead = RECEIVED_AT_WINDOW
    if moment.tzinfo is None or moment > now + ahead or moment < now - back:
        return FieldError("received_at", "invalid_datetime", message)
    return moment.astimezone(dt.UTC)


def is_case_no(text: str) -> bool:
    """'KF20261123-00042': two letters, the day of receipt, a running number."""
    return _CASE_NO.fullmatch(text) is not None


def is_idempotency_key(text: str) -> bool:
    """1–128 visible ASCII characters."""
    return _IDEMPOTENCY_KEY.fullmatch(text) is not None


def is_form_key(text: str) -> bool:
    """The one-time key a form page carries (32 hex digits), so a form sent twice makes one case."""
    return _FORM_KEY.fullmatch(text) is not None


def is_phone_last4(text: str) -> bool:
    return _LAST4.fullmatch(text) is not None
