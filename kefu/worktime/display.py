"""How people read times: in the policy's time zone (Shanghai), to the minute, with the offset.

``2026-12-02T02:13:07+00:00`` is what the database holds; ``2026-12-02 10:13 +08:00`` is what the CLI, the run
summaries and the pages staff read show. One helper, so every place a person reads a time shows it the same way.

Customers read the same moment the way a letter writes it: ``2026年12月2日 10:00（北京时间）`` (``customer_time``),
on the status page, the confirmation page and in every mail.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

from kefu.models.policy import current_policy

MISSING = "—"


def local_moment(value: dt.datetime, tz: ZoneInfo | str | None = None) -> dt.datetime:
    """A stored moment in ``tz`` (default: the policy's time zone), as an aware datetime: what an API answers (its
    ISO form carries ``+08:00``). A naive ``value`` is taken as UTC (how SQLite gives stored times back)."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz or ZoneInfo(current_policy().timezone)
    aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    return aware.astimezone(zone)


def local_time(value: dt.datetime | None, tz: ZoneInfo | str | None = None) -> str:
    """``value`` in ``tz`` (default: the policy's time zone) as ``YYYY-MM-DD HH:MM +HH:MM``; ``—`` for none.

    A naive ``value`` is taken as UTC (how Kefu stores times)."""
    if value is None:
        return MISSING
    local = local_moment(value, tz)
    offset = local.strftime("%z")  # +0800
    return f"{local:%Y-%m-%d %H:%M} {offset[:3]}:{offset[3:]}"


_BEIJING = dt.timedelta(hours=8)


def _zone(tz: ZoneInfo | str | None) -> ZoneInfo:
    return ZoneInfo(tz) if isinstance(tz, str) else tz or ZoneInfo(current_policy().timezone)


def customer_date(value: dt.datetime, tz: ZoneInfo | str | None = None) -> str:
    """The date of ``value`` in ``tz`` (default: the policy's time zone) as a letter writes it: ``2026年12月1日``.

    A naive ``value`` is taken as UTC (how Kefu stores times)."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    local = aware.astimezone(_zone(tz))
    return f"{local.year}年{local.month}月{local.day}日"


def customer_time(value: dt.datetime, tz: ZoneInfo | str | None = None) -> str:
    """``value`` as a customer reads it, to the minute, with its zone in words:
    ``2026年12月2日 10:00（北京时间）`` — UTC+8, Shanghai's offset, is 北京时间 to a Chinese reader; another
    zone is named by its offset (``（UTC+09:00）``). A naive ``value`` is taken as UTC."""
    zone = _zone(tz)
    aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    local = aware.astimezone(zone)
    offset = local.utcoffset()
    if offset == _BEIJING:
        label = "北京时间"
    else:
        sign = local.strftime("%z")
        label = f"UTC{sign[:3]}:{sign[3:]}"
    return f"{customer_date(local, zone)} {local:%H:%M}（{label}）"


def yes_no(value: bool) -> str:
    """是 / 否 for a flag a person reads."""
    return "是" if value else "否"


# A stored moment inside JSON data: an ISO date with a time and its offset (``2026-12-02T02:13:07.5+00:00``). A bare
# date is a day, not a moment, and a time without an offset does not say which zone it is in: both are left as they are.
_STORED_MOMENT = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)")


def local_times_in(value: Any, tz: ZoneInfo | str | None = None) -> Any:
    """``value`` (a case event's data, or any JSON value) with every string that is a stored moment shown as
    :func:`local_time` shows it; everything else unchanged. Event data keep times as stored (UTC ISO text); people
    read them in the policy's zone."""
    if isinstance(value, str):
        if _STORED_MOMENT.fullmatch(value.strip()):
            try:
                return local_time(dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00")), tz)
            except ValueError:
                return value
        return value
    if isinstance(value, dict):
        return {k: local_times_in(v, tz) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [local_times_in(v, tz) for v in value]
    return value
