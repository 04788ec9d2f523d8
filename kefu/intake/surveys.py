"""The customer's survey page: ``/survey/<token>``, the link in a survey invitation mail.

Opening the link (GET, HEAD) only shows the questionnaire: mail scanners and link previews follow links, so opening
answers nothing and uses nothing up; it only notes when the link was first opened (the campaign's "opened"). The
form's POST records the answer once (``kefu.tasks.surveys.record_answer``, one conditional update); the edge has
refused it already when it came from another site. A second POST: a polite page saying the answer is in (409). An
expired link (or a closed campaign): it says so (410). A bad field: the form again with the field named and what
is wrong (422), nothing recorded. A key account's low score alerts its team in the same transaction.

Nothing on these pages but the campaign's title, the questions and times: no name, phone or address.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from kefu.intake.pages import TEMPLATES
from kefu.models.db import unit_of_work
from kefu.models.policy import current_policy
from kefu.tasks import surveys
from kefu.tasks.surveys import AnswerInvalid, LinkState
from kefu.worktime import calendar_for, customer_time

SURVEY_PREFIX = surveys.SURVEY_PATH
MAX_SURVEY_BODY = 32 * 1024
UNKNOWN_ZH = "没有找到这份问卷。请核对邮件中的链接是否完整；如有疑问，请致电客服热线。"
EXPIRED_ZH = "这份问卷已于{expired}截止，感谢您的关注。如您有意见或建议，欢迎随时致电客服热线告诉我们。"
ANSWERED_ZH = "您已提交过这份问卷（或已通过电话、面谈告诉了我们您的评价），无需再次提交。感谢您的支持！"


def surveys_router(router: APIRouter, engine: Engine, clock: Any) -> APIRouter:
    """``GET``/``POST`` ``/survey/{token}`` on ``router``."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined)

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**context), status_code=status)

    def view(token: str, *, mark_opened: bool) -> dict[str, Any]:
        now = clock()
        policy = current_policy()
        with unit_of_work(engine) as session:
            invitation = surveys.find_invitation(session, token)
            state = surveys.link_state(session, invitation, now)
            if invitation is None or invitation.expires_at is None:
                return {"state": state}
            if mark_opened and state is LinkState.OPEN:
                surveys.mark_opened(session, invitation, now)
            rules = policy.surveys
            return {
                "state": state,
                "title": surveys.campaign_title(invitation.campaign),
                "reply_by": customer_time(invitation.expires_at, policy.timezone),
                "dimensions": list(rules.dimensions.items()),
                "scores_range": list(range(rules.scale.low, rules.scale.high + 1)),
                "nps_range": list(range(rules.nps.low, rules.nps.high + 1)),
                "low": rules.scale.low,
                "high": rules.scale.high,
                "nps_low": rules.nps.low,
                "nps_high": rules.nps.high,
            }

    def shown(info: dict[str, Any], *, status: int = 200, values: dict[str, str] | None = None, error: str = "",
              error_field: str = "") -> HTMLResponse:  # fmt: skip
        state = info["state"]
        if state is LinkState.UNKNOWN:
            return page("survey_closed.html", 404, title="问卷链接无效", message=UNKNOWN_ZH)
        if state is LinkState.EXPIRED:
            return page(
                "survey_closed.html", 410, title="问卷已截止", message=EXPIRED_ZH.format(expired=info["reply_by"])
            )
        if state is LinkState.ANSWERED:
            return page("survey_closed.html", status, title="问卷已提交", message=ANSWERED_ZH)
        return page("survey.html", status, values=values or {}, error=error, error_field=error_field, **info)

    @router.get(SURVEY_PREFIX + "{token}", response_class=HTMLResponse, include_in_schema=False)
    async def open_link(token: str) -> Any:
        # Opening answers nothing (scanners follow links): the questionnaire, and when it was first opened.
        return shown(await run_in_threadpool(view, token, mark_opened=True))

    @router.post(SURVEY_PREFIX + "{token}", response_class=HTMLResponse, include_in_schema=False)
    async def answer(token: str, request: Request) -> Any:
        form = await request.form()  # the edge has limited the body and refused other sites' posts
        values = {str(k): str(v) for k, v in form.items() if isinstance(v, str)}
        info = await run_in_threadpool(view, token, mark_opened=False)
        if info["state"] is not LinkState.OPEN:
            return shown(info, status=409)
        policy = current_policy()
        raw_scores = {k: v for k, v in values.items() if k not in ("nps", "comment")}
        try:
            checked = surveys.validate_answer(policy, raw_scores, values.get("nps", ""), values.get("comment", ""))
        except AnswerInvalid as exc:
            return shown(info, status=422, values=values, error=exc.message, error_field=exc.field)

        def record() -> LinkState:
            now = clock()
            with unit_of_work(engine) as session:
                invitation = surveys.find_invitation(session, token)
                if invitation is None:
                    return LinkState.UNKNOWN
                state, row = surveys.record_answer(session, invitation, checked, now)
                if row is not None:
                    surveys.alert_low_score(session, policy, row, now, calendar_for(policy))
                return state

        state = await run_in_threadpool(record)
        if state is not LinkState.OPEN:
            return shown({**info, "state": state}, status=409)
        return page("survey_thanks.html")

    return router
