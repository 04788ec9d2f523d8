"""The customer's survey page: ``/survey/<token>``, the link in a survey invitation mail.

Opening the link (GET, HEAD) only shows the questionnaire: mail scanners and link previews follow links, so opening
answers nothing and uses nothing up; it only notes when the link was first opened (the campaign's "opened"). The
form's POST records the answer once (``kefu.tasks.surveys.record_answer``, one conditional update); the edge has
refused it already when it came from another site. A second POST: a polite page saying the answer is in (409). An
expired link (or a closed campaign): it says so (410). A bad field: the form again with the field named and what
is wrong (422), nothing recorded. A key account's low score alerts its team in the same transaction.

Nothing on these pages but the campaign's title, the questions and times: no name, phone or address.

Also here, being the intake's: ``validate_answer`` (the form's and ``kefu survey enter``'s one check of an answer)
and ``to_complaint`` (an answer's comment registered through the intake's write path, ``kefu survey
to-complaint``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from kefu.intake.pages import TEMPLATES
from kefu.intake.service import register_complaint
from kefu.intake.validation import Submission, unreadable_text
from kefu.models.complaints import Complaint
from kefu.models.db import unit_of_work
from kefu.models.enums import Channel
from kefu.models.policy import Policy, current_policy
from kefu.models.surveys import COLLECTED_ZH, CollectedBy, SurveyAnswer
from kefu.tasks import surveys
from kefu.tasks.casework import record_event
from kefu.tasks.surveys import (
    COMMENT_LIMIT,
    Answer,
    AnswerInvalid,
    LinkState,
    SurveyError,
    campaign_title,
    customer_code,
    find_staff,
)
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
            checked = validate_answer(policy, raw_scores, values.get("nps", ""), values.get("comment", ""))
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


def validate_answer(policy: Policy, scores: dict[str, str], nps: str, comment: str) -> Answer:
    """A complete, in-range answer; else ``AnswerInvalid`` naming the first bad field (keys: the dimension's key,
    ``nps``, ``comment``)."""
    rules = policy.surveys
    unknown = sorted(set(scores) - set(rules.dimensions))
    if unknown:
        known = "、".join(f"{k}（{v}）" for k, v in rules.dimensions.items())
        raise AnswerInvalid(unknown[0], f"没有这个调查维度；维度有：{known}")
    checked: dict[str, int] = {}
    for key, label in rules.dimensions.items():
        raw = (scores.get(key) or "").strip()
        if not raw:
            raise AnswerInvalid(key, f"请为「{label}」打分（{rules.scale.low}–{rules.scale.high}分）")
        if not raw.isdigit() or not rules.scale.low <= int(raw) <= rules.scale.high:
            raise AnswerInvalid(key, f"「{label}」的评分应为{rules.scale.low}到{rules.scale.high}之间的整数")
        checked[key] = int(raw)
    raw_nps = (nps or "").strip()
    if not raw_nps.isdigit() or not rules.nps.low <= int(raw_nps) <= rules.nps.high:
        raise AnswerInvalid("nps", f"推荐意愿请选择{rules.nps.low}到{rules.nps.high}之间的整数")
    comment = (comment or "").strip()
    if unreadable_text(comment):
        raise AnswerInvalid("comment", "意见含有无法识别的控制字符或看不见的格式字符，请删除后重试")
    if len(comment) > COMMENT_LIMIT:
        raise AnswerInvalid("comment", f"意见最多{COMMENT_LIMIT}个字，现在有{len(comment)}个字")
    return Answer(checked, int(raw_nps), comment)


def to_complaint(session: Session, policy: Policy, answer_id: int, login: str, now: dt.datetime) -> tuple[str, bool]:
    """The answer's comment registered as a complaint through the intake's write path (the outbox row that starts
    its case run), the comment copied as its content, linked both ways; once (a repeat finds the case). Returns the
    case number and whether it was created now."""
    answer = session.get(SurveyAnswer, answer_id)
    if answer is None:
        raise SurveyError(f"no survey answer {answer_id}")
    staff = find_staff(session, login)
    if answer.complaint_id is not None:
        complaint = session.get(Complaint, answer.complaint_id)
        assert complaint is not None
        return complaint.case_no, False
    if not answer.comment.strip():
        raise SurveyError(f"answer {answer_id} has no comment to register as a complaint")
    customer = answer.customer
    phone = customer.phones[0] if customer.phones else None
    if not phone:
        raise SurveyError(
            f"customer {customer_code(customer)} has no phone number on record: a complaint needs one "
            "(kefu customer edit adds it)"
        )
    channel = {CollectedBy.LINK: Channel.WEB, CollectedBy.PHONE: Channel.PHONE, CollectedBy.VISIT: Channel.VISIT}
    title = campaign_title(answer.campaign)
    submission = Submission(
        name=customer.name,
        phone=phone,
        email=customer.email,
        content=f"{answer.comment}\n\n（来自满意度调查「{title}」答卷{answer.id}，{COLLECTED_ZH[answer.collected_by]}）",
        received_by=staff.id,
    )
    registration = register_complaint(
        session,
        submission,
        received_at=now,
        channel=channel[answer.collected_by],
        idempotency_key=f"survey-answer:{answer.id}",
        policy=policy,
    )
    answer.complaint_id = registration.complaint_id
    complaint = session.get(Complaint, registration.complaint_id)
    assert complaint is not None
    record_event(
        session,
        complaint,
        "from_survey",
        f"answer-{answer.id}",
        f"staff:{staff.id}",
        now,
        survey_answer=answer.id,
        campaign=answer.campaign_id,
    )
    session.flush()
    return registration.case_no, registration.created
