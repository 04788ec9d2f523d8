"""GET /outbox: the mails the local SMTP sink received (embedded default only; zh-CN, autoescaped)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

from kefu.notifications.sink import mail_dir, stored_mails
from kefu.settings import Settings, get_settings

_env = Environment(loader=PackageLoader("kefu.notifications", "templates"), undefined=StrictUndefined, autoescape=True)


def outbox_router(settings: Settings | None = None) -> APIRouter:
    router = APIRouter()

    @router.get("/outbox", response_class=HTMLResponse)
    def outbox() -> HTMLResponse:
        mails = stored_mails(mail_dir(settings or get_settings()))
        return HTMLResponse(_env.get_template("outbox_page.html").render(mails=mails))

    return router


router = outbox_router()
