"""The customer's answer page: ``/answer/<token>``, the link in a solution proposal (mail or SMS).

Opening the link (GET, HEAD) only shows the proposal and the form: mail scanners and link previews open links, so
nothing is decided there. The form's POST decides, once (``kefu.tasks.customer_answers.decide``); the edge has
refused it already when it came from another site. The decision then resumes the case run's approval step with
the answer the case flow checks like any other (``PrefectRuns.resume_waiting``: only while the run waits on the
approval step). When the run is not waiting yet, or Prefect does not answer, the decision stays recorded and
undelivered, and the deadline sweeper delivers it on its next pass.

A second POST, a double click, a link whose proposal staff already answered by phone (or a newer proposal
replaced): a polite page saying it is already decided. An expired link says until when it was open and how to
answer instead. Nothing on these pages but the case number, the solution and times: no name, phone or address.
"""

from __future__ import annotations

import logging
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from kefu.engine.rest import PrefectRuns, PrefectUnavailable
from kefu.intake.pages import TEMPLATES
from kefu.intake.validation import unreadable_text
from kefu.models.answers import CustomerAnswerLink
from kefu.models.db import unit_of_work
from kefu.models.policy import current_policy
from kefu.tasks import customer_answers
from kefu.tasks.casework import waiting_steps
from kefu.tasks.customer_answers import COMMENT_LIMIT, LinkState
from kefu.worktime import customer_time

log = logging.getLogger(__name__)

ANSWER_PREFIX = customer_answers.ANSWER_PATH
MAX_ANSWER_BODY = 32 * 1024
UNKNOWN_ZH = "没有找到这个确认链接。请核对邮件或短信中的链接是否完整；如有疑问，请致电客服热线。"
EXPIRED_ZH = "这个确认链接已于{expired}过期。如您仍需答复，请致电客服热线，或等待我们的客服人员与您联系。"
DECIDED_ZH = "您对本方案的答复我们已经收到（或已由客服人员通过电话记录），无需再次提交。感谢您的配合！"
CHOOSE_ZH = "请选择「同意该方案」或「不同意该方案」。"
COMMENT_BAD_ZH = "您的意见含有无法识别的控制字符或看不见的格式字符，请删除后重试。"
COMMENT_LONG_ZH = "您的意见最多{limit}个字，现在有{count}个字。"


def answers_router(router: APIRouter, engine: Engine, clock: Any, prefect_api_url: str) -> APIRouter:
    """``GET``/``POST`` ``/answer/{token}`` on ``router``."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined)

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**context), status_code=status)

    def view(token: str) -> dict[str, Any]:
        """What the page shows for ``token`` (reads only)."""
        now = clock()
        with unit_of_work(engine) as session:
            link = customer_answers.find_link(session, token)
            state = customer_answers.link_state(session, link, now)
            if link is None:
                return {"state": state}
            tz = ZoneInfo(current_policy().timezone)
            return {
                "state": state,
                "case_no": link.complaint.case_no,
                "solution": link.solution,
                "promised_at": customer_time(link.promised_at, tz) if link.promised_at else "",
                "reply_by": customer_time(link.expires_at, tz),
                "accepted": link.accepted,
            }

    def shown(info: dict[str, Any], *, choice: str = "", comment: str = "", error: str = "", status: int = 200) -> Any:
        state = info["state"]
        if state is LinkState.UNKNOWN:
            return page("answer_closed.html", 404, title="链接无效", message=UNKNOWN_ZH)
        if state is LinkState.EXPIRED:
            message = EXPIRED_ZH.format(expired=info["reply_by"])
            return page("answer_closed.html", 410, title="链接已过期", message=message, case_no=info["case_no"])
        if state is LinkState.DECIDED:
            return page("answer_closed.html", status, title="方案已有答复", message=DECIDED_ZH, case_no=info["case_no"])
        return page("answer.html", 422 if error else 200, choice=choice, comment=comment, error=error, **info)

    @router.get(ANSWER_PREFIX + "{token}", response_class=HTMLResponse, include_in_schema=False)
    async def open_link(token: str, choice: str = "") -> Any:
        # Opening decides nothing (scanners follow links): the proposal and the form, read only.
        info = await run_in_threadpool(view, token)
        return shown(info, choice=choice if choice in ("accept", "reject") else "")

    @router.post(ANSWER_PREFIX + "{token}", response_class=HTMLResponse, include_in_schema=False)
    async def answer(token: str, request: Request) -> Any:
        form = await request.form()  # the edge has limited the body and refused other sites' posts
        choice = str(form.get("choice") or "")
        comment = str(form.get("comment") or "").strip()
        info = await run_in_threadpool(view, token)
        if info["state"] is not LinkState.OPEN:
            return shown(info, status=409)
        error = ""
        if choice not in ("accept", "reject"):
            error = CHOOSE_ZH
        elif unreadable_text(comment):
            error = COMMENT_BAD_ZH
        elif len(comment) > COMMENT_LIMIT:
            error = COMMENT_LONG_ZH.format(limit=COMMENT_LIMIT, count=len(comment))
        if error:
            return shown(info, choice=choice, comment=comment[:COMMENT_LIMIT], error=error)

        def record() -> tuple[LinkState, int | None]:
            with unit_of_work(engine) as session:
                link = customer_answers.find_link(session, token)
                if link is None:
                    return LinkState.UNKNOWN, None
                state = customer_answers.decide(
                    session, link, accepted=choice == "accept", comment=comment, now=clock()
                )
                return state, link.id

        state, link_id = await run_in_threadpool(record)
        if state is not LinkState.OPEN or link_id is None:
            return shown({**info, "state": state}, status=409)
        await deliver(engine, prefect_api_url, link_id, clock)
        return page("answer_thanks.html", accepted=choice == "accept", case_no=info["case_no"])

    return router


async def deliver(engine: Engine, prefect_api_url: str, link_id: int, clock: Any) -> bool:
    """Resume the case run's approval step with the customer's decision; True once it reached the run. When the run
    is not waiting on the approval step, or Prefect does not answer, the decision stays undelivered (the sweeper
    tries again)."""

    def target() -> tuple[str, str, dict[str, Any]] | None:
        with unit_of_work(engine) as session:
            link = session.get(CustomerAnswerLink, link_id)
            if link is None or link.delivered_at is not None or link.decided_at is None:
                return None
            rows = [r for r in waiting_steps(session, link.complaint.case_no) if r["step"] == "approve"]
            if not rows:
                return None
            return str(rows[-1]["flow_run_id"]), str(rows[-1]["key"]), customer_answers.answer_for_run(link)

    found = await run_in_threadpool(target)
    if found is None:
        return False
    run_id, key, run_input = found
    try:
        async with PrefectRuns(prefect_api_url, attempts=3, timeout=10.0) as runs:
            verdict = await runs.resume_waiting(run_id, key, run_input)
    except PrefectUnavailable as exc:
        log.warning("customer answer %s not delivered yet: %s", link_id, exc)
        return False
    if verdict != "ACCEPT":
        log.warning("customer answer %s not delivered yet: the run answered %s", link_id, verdict)
        return False

    def delivered() -> None:
        with unit_of_work(engine) as session:
            customer_answers.mark_delivered(session, link_id, clock())

    await run_in_threadpool(delivered)
    return True
