"""How people read times: in the policy's time zone (Shanghai), to the minute, with the offset.

``2026-12-02T02:13:07+00:00`` is what the database holds; ``2026-12-02 10:13 +08:00`` is what the CLI, the run
summaries and the pages show. One helper, so every place a person reads a time shows it the same way.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from kefu.models.policy import current_policy

MISSING = "—"


def local_time(value: dt.datetime | None, tz: ZoneInfo | str | None = None) -> str:
    """``value`` in ``tz`` (default: the policy's time zone) as ``YYYY-MM-DD HH:MM +HH:MM``; ``—`` for none.

    A naive ``value`` is taken as UTC (how Kefu stores times)."""
    if value is None:
        return MISSING
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz or ZoneInfo(current_policy().timezone)
    aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    local = aware.astimezone(zone)
    offset = local.strftime("%z")  # +0800
    return f"{local:%Y-%m-%d %H:%M} {offset[:3]}:{offset[3:]}"


def yes_no(value: bool) -> str:
    """是 / 否 for a flag a person reads."""
    return "是" if value else "否"
