"""GET /outbox and /outbox/sms: what waits in the outbox and what the local sinks received (embedded default only).

zh-CN, autoescaped. Queued messages show their planned send time (Shanghai time to the minute, with the offset)
and why they wait then; phone numbers, ID numbers and e-mail addresses are masked everywhere on these pages (what
a customer's mail says otherwise, e.g. their name in the greeting, is shown as sent).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined
from sqlalchemy import Engine, select

from kefu.models.base import utcnow
from kefu.models.db import default_engine, unit_of_work
from kefu.models.notifications import (
    QUEUED,
    SMS,
    WAIT_AGREED,
    WAIT_INTERNAL,
    WAIT_RETRY,
    WAIT_URGENT,
    WAIT_WINDOW,
    OutboxMessage,
)
from kefu.notifications.pii import mask_pii, mask_text
from kefu.notifications.sink import mail_dir, stored_mails
from kefu.notifications.sms import sms_parts
from kefu.notifications.sms_providers import sms_dir, stored_sms
from kefu.settings import Settings, get_settings
from kefu.worktime.display import local_time

_env = Environment(loader=PackageLoader("kefu.notifications", "templates"), undefined=StrictUndefined, autoescape=True)
_env.filters["masked"] = mask_text  # phones, ID numbers, e-mail addresses: whoever opens the page is not entitled

CHANNEL_ZH = {"mail": "邮件", SMS: "短信"}
WAIT_ZH = {
    WAIT_WINDOW: "等待工作日的发送时段（客户消息不在非工作时间发送）",
    WAIT_URGENT: "紧急投诉，立即发送",
    WAIT_AGREED: "按与客户约定的时间发送",
    WAIT_INTERNAL: "内部通知，立即发送",
    WAIT_RETRY: "上次投递失败，等待重试",
}
WAIT_LATER_ZH = {  # sent at once from their time, but queued for a later one (a reminder for the day it is due)
    WAIT_URGENT: "紧急投诉，按计划时间发送",
    WAIT_INTERNAL: "内部通知，按计划时间发送",
}


@dataclass(frozen=True)
class QueuedView:
    channel: str
    recipient: str
    what: str
    planned: str
    why: str
    attempts: int
    last_error: str


def queued(engine: Engine, *, channel: str | None = None, now: dt.datetime | None = None) -> list[QueuedView]:
    """The messages not yet sent, the next to leave first, as the page shows them (phones masked)."""
    now = now or utcnow()
    query = select(OutboxMessage).where(OutboxMessage.status == QUEUED)
    if channel is not None:
        query = query.where(OutboxMessage.channel == channel)
    views = []
    with unit_of_work(engine) as session:
        for row in session.scalars(query.order_by(OutboxMessage.not_before, OutboxMessage.id).limit(500)):
            not_before = row.not_before if row.not_before.tzinfo else row.not_before.replace(tzinfo=dt.UTC)
            why = WAIT_ZH.get(row.wait_reason or "", "—")
            if not_before <= now:
                why += "；已到发送时间，等待下一轮投递"
            elif row.wait_reason in WAIT_LATER_ZH:  # "at once" from the time it was queued for, a later day here
                why = WAIT_LATER_ZH[row.wait_reason]
            views.append(
                QueuedView(
                    channel=CHANNEL_ZH.get(row.channel, row.channel),
                    recipient=mask_text(row.recipient),
                    what=mask_pii(row.body_text if row.channel == SMS else row.subject),
                    planned=local_time(not_before),
                    why=why,
                    attempts=row.attempts,
                    last_error=mask_pii(row.last_error or ""),
                )
            )
    return views


@dataclass(frozen=True)
class SmsView:
    phone: str
    text: str
    parts: int
    message_type: str
    received: str


def outbox_router(settings: Settings | None = None, engine: Engine | None = None) -> APIRouter:
    router = APIRouter()

    def the_engine() -> Engine:
        return engine or default_engine()

    @router.get("/outbox", response_class=HTMLResponse)
    def outbox() -> HTMLResponse:
        mails = stored_mails(mail_dir(settings or get_settings()))
        page = _env.get_template("outbox_page.html").render(mails=mails, queued=queued(the_engine()))
        return HTMLResponse(page)

    @router.get("/outbox/sms", response_class=HTMLResponse)
    def outbox_sms() -> HTMLResponse:
        received = [
            SmsView(
                phone=mask_pii(s.phone),
                text=mask_pii(s.text),
                parts=sms_parts(s.text),
                message_type=s.message_type,
                received=local_time(dt.datetime.fromisoformat(s.received_at)),
            )
            for s in stored_sms(sms_dir(settings or get_settings()))
        ]
        page = _env.get_template("sms_page.html").render(messages=received, queued=queued(the_engine(), channel=SMS))
        return HTMLResponse(page)

    return router


router = outbox_router()
