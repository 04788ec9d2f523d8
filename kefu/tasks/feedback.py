"""Customer feedback and suggestions (客户反馈与建议, seed 000 ch.4 §3–4, seed 004 §四(四)4): recorded with the
customer, routed to the responsible department with its deadline from the policy (``feedback.department_deadlines``),
answered (the answer linted and sent to the customer), and the reasonable suggestions reported to management.

Each record has its ``feedback`` run (``kefu.flows.feedback``): the department's answer, then the follow-up that
closes it; the ``case-deadlines`` sweeper starts runs for records without one and escalates a missed department
deadline up ``escalation.ladder`` (``sweep``). Every write of a run is keyed (``FeedbackEvent``) or guarded by the
record's state, so replays write nothing twice.

Refusals raise ``FeedbackRefused`` (zh-CN / English) having written nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kefu.models.enquiries import FEEDBACK_KIND_ZH, Feedback, FeedbackEvent, FeedbackKind
from kefu.models.enums import Channel, Role
from kefu.models.people import Staff
from kefu.models.policy import Policy
from kefu.notifications.messages import MessageType
from kefu.notifications.outbox import MessageRejected, default_renderer, enqueue, enqueue_sms
from kefu.notifications.pii import mask_pii
from kefu.tasks.enquiries import EnquiryRefused, check_new, has_role
from kefu.worktime import WorkCalendar


class FeedbackRefused(ValueError):
    pass


def department_words(policy: Policy) -> dict[Role, str]:
    return {role: policy.roles.names[role] for role in policy.feedback.department_deadlines}


def _department(policy: Policy, given: str) -> Role:
    for role, name in department_words(policy).items():
        if given.strip() in (role.value, name):
            return role
    names = "、".join(f"{name}（{role.value}）" for role, name in department_words(policy).items())
    raise FeedbackRefused(f"反馈与建议只能转给：{names} / not a department feedback goes to: {given!r}")


def department_of(policy: Policy, given: str) -> Role:
    """The department feedback may be routed to, from its role code or the policy's name of it (运营部); refused."""
    return _department(policy, given)


@dataclass(frozen=True)
class NewFeedback:
    kind: FeedbackKind
    name: str
    phone: str
    content: str
    department: str  # a role code or the policy's name of it (运营部)
    channel: Channel
    received_at: dt.datetime
    email: str | None = None
    recorded_by: int | None = None


def record_feedback(
    session: Session, new: NewFeedback, policy: Policy, calendar: WorkCalendar, now: dt.datetime
) -> Feedback:
    """Record it and route it: the department's deadline runs from receipt."""
    department = _department(policy, new.department)
    try:
        name, phone, content, email = check_new(
            name=new.name, phone=new.phone, content=new.content, email=new.email, received_at=new.received_at, now=now
        )
    except EnquiryRefused as refused:
        raise FeedbackRefused(str(refused).replace("咨询内容", "内容")) from None
    day = new.received_at.astimezone(ZoneInfo(policy.timezone)).strftime("%Y%m%d")
    last = session.scalar(select(func.max(Feedback.feedback_no)).where(Feedback.feedback_no.like(f"FK-{day}-%")))
    number = f"FK-{day}-{(int(last.rsplit('-', 1)[1]) + 1 if last else 1):04d}"
    row = Feedback(
        feedback_no=number,
        kind=new.kind,
        channel=new.channel,
        received_at=new.received_at,
        name=name,
        phone=phone,
        email=email,
        content=content,
        recorded_by_id=new.recorded_by,
        department=department.value,
        due_at=calendar.deadline(new.received_at, policy.feedback.department_deadlines[department]).due_at,
    )
    session.add(row)
    session.flush()
    return row


def get_feedback(session: Session, feedback_no: str) -> Feedback:
    row = session.scalar(select(Feedback).where(Feedback.feedback_no == feedback_no))
    if row is None:
        raise FeedbackRefused(f"没有反馈或建议{feedback_no} / no feedback {feedback_no}")
    return row


def answer_feedback(
    session: Session,
    feedback_no: str,
    staff_id: int,
    *,
    solution: str,
    reply: str,
    reasonable: bool | None,
    policy: Policy,
    now: dt.datetime,
    key: str | None = None,
) -> Feedback:
    """The department's answer (by its people, or customer service relaying it), the reply linted and sent to the
    customer; for a suggestion, whether it is reasonable (reported to management). Once."""
    row = get_feedback(session, feedback_no)
    if key is not None and _known(session, row, "replied", key):
        return row  # the run's replay of its own answer: done already
    if row.answered_at is not None:
        raise FeedbackRefused(f"{feedback_no}已答复 / {feedback_no} is answered already")
    person = session.get(Staff, staff_id)
    if person is None or not person.active:
        raise FeedbackRefused(f"没有在职员工{staff_id} / no active staff member {staff_id}")
    allowed = [Role(row.department), Role.AGENT, Role.SUPERVISOR, Role.SENIOR_MANAGER]
    if not has_role(session, staff_id, allowed):
        names = "、".join(policy.roles.names[r] for r in allowed)
        raise FeedbackRefused(f"须由{names}答复 / answered by: {names}")
    if not solution.strip() or not reply.strip():
        raise FeedbackRefused("请填写部门的处理意见和给客户的回复 / the answer and the reply are required")
    if row.kind is FeedbackKind.SUGGESTION and reasonable is None:
        raise FeedbackRefused("请判断该建议是否合理 / say whether the suggestion is reasonable (--reasonable yes|no)")
    context = {
        "feedback_no": row.feedback_no,
        "kind_name": FEEDBACK_KIND_ZH[row.kind],
        "reply": reply.strip(),
        "customer_name": row.name,
    }
    rendered = default_renderer().render(MessageType.FEEDBACK_REPLY, context, now=now)
    if not rendered.ok:
        raise FeedbackRefused("措辞未通过检查 / the phrase lint refuses it: " + "; ".join(map(str, rendered.findings)))
    from kefu.notifications.sms import mobile_number

    dedupe = f"feedback:{row.feedback_no}:reply"
    try:
        if row.email:
            enqueue(session, MessageType.FEEDBACK_REPLY, recipient_email=row.email, context=context, now=now,
                    dedupe_key=dedupe)  # fmt: skip
            row.reply_sent = "mail"
        elif mobile_number([row.phone]) is not None:
            enqueue_sms(session, MessageType.FEEDBACK_REPLY, phone=row.phone, context=context, now=now,
                        dedupe_key=dedupe)  # fmt: skip
            row.reply_sent = "sms"
        else:
            row.reply_sent = "no_address"
    except MessageRejected as rejected:
        raise FeedbackRefused("措辞未通过检查 / the phrase lint refuses it: " + "; ".join(rejected.reasons)) from None
    row.department_answer, row.reply = solution.strip(), reply.strip()
    row.answered_by_id, row.answered_at = staff_id, now
    row.reasonable = reasonable if row.kind is FeedbackKind.SUGGESTION else None
    record_event(session, row, "replied", key or "direct", f"staff:{staff_id}", now, reply_sent=row.reply_sent)
    session.flush()
    return row


def month_bounds(year: int, month: int, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    tz = ZoneInfo(timezone)
    return dt.datetime(year, month, 1, tzinfo=tz), dt.datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=tz)


def _cell(text: str) -> str:
    """A table cell: personal data masked (Prefect shows it), markdown's own characters escaped."""
    out = mask_pii(text).replace("\n", " ")
    for char in "\\|*_`[]<>#":
        out = out.replace(char, "\\" + char)
    return out


def suggestions_markdown(
    session: Session, policy: Policy, start: dt.datetime, end: dt.datetime, now: dt.datetime
) -> str:
    """合理化建议 for management: the reasonable suggestions answered in [start, end), and the feedback still open
    past its department's deadline."""
    tz = ZoneInfo(policy.timezone)
    reasonable = session.scalars(
        select(Feedback)
        .where(Feedback.reasonable.is_(True), Feedback.answered_at >= start, Feedback.answered_at < end)
        .order_by(Feedback.answered_at)
    ).all()
    overdue = session.scalars(
        select(Feedback).where(Feedback.answered_at.is_(None), Feedback.due_at <= now).order_by(Feedback.due_at)
    ).all()
    names = policy.roles.names
    period = f"{start.astimezone(tz):%Y-%m-%d} 至 {(end - dt.timedelta(seconds=1)).astimezone(tz):%Y-%m-%d}"
    lines = [f"# 客户合理化建议（{period}）", "", f"共 {len(reasonable)} 条，已由责任部门答复客户。", ""]
    if reasonable:
        lines += ["| 编号 | 收到日期 | 责任部门 | 建议内容 | 部门处理意见 |", "|---|---|---|---|---|"]
        for row in reasonable:
            department = names.get(Role(row.department), row.department)
            lines.append(
                f"| {row.feedback_no} | {row.received_at.astimezone(tz):%Y-%m-%d} | {department} | "
                f"{_cell(row.content)} | {_cell(row.department_answer or '')} |"
            )
    lines += ["", f"## 超过部门时限仍未答复的反馈与建议：{len(overdue)} 条", ""]
    for row in overdue:
        department = names.get(Role(row.department), row.department)
        lines.append(f"- {row.feedback_no}（{department}，时限 {row.due_at.astimezone(tz):%Y-%m-%d %H:%M}）")
    return "\n".join(lines) + "\n"


# --- the run's records, its follow-up, and the department deadline's sweep -----------------------------------


def _known(session: Session, row: Feedback, action: str, key: str) -> bool:
    return (
        session.scalar(
            select(FeedbackEvent.id).where(
                FeedbackEvent.feedback_id == row.id, FeedbackEvent.action == action, FeedbackEvent.key == key
            )
        )
        is not None
    )


def record_event(
    session: Session, row: Feedback, action: str, key: str, actor: str, at: dt.datetime, **data: Any
) -> bool:
    """One audit event per (action, key); False when it was there already."""
    if _known(session, row, action, key):
        return False
    session.add(FeedbackEvent(feedback_id=row.id, action=action, key=key, actor=actor, data=data, at=at))
    session.flush()
    return True


def answered_directly(session: Session, feedback_no: str) -> bool:
    """Answered without its run (``kefu feedback answer`` before the run existed)."""
    return _known(session, get_feedback(session, feedback_no), "replied", "direct")


DEPARTMENT_STEP = "department_answer"
FOLLOW_UP_STEP = "follow_up"


def answerers(row: Feedback, step: str) -> list[Role]:
    """Who may answer a step: the department's answer its routed department's staff and the supervisors; the
    follow-up also customer service (客服人员, 高层管理人员)."""
    allowed = [Role(row.department), Role.SUPERVISOR]
    if step != DEPARTMENT_STEP:
        allowed += [Role.AGENT, Role.SENIOR_MANAGER]
    return allowed


def check_answerer(session: Session, policy: Policy, feedback_no: str, step: str, staff_id: int) -> None:
    """The person answering a step of the run must be active staff of a role ``answerers`` names."""
    row = get_feedback(session, feedback_no)
    person = session.get(Staff, staff_id)
    if person is None or not person.active:
        raise FeedbackRefused(f"没有在职员工{staff_id} / no active staff member {staff_id}")
    allowed = answerers(row, step)
    if not has_role(session, staff_id, allowed):
        names = "、".join(policy.roles.names[r] for r in allowed)
        raise FeedbackRefused(f"本步骤须由{names}完成 / this step is answered by: {names}")


def follow_up(
    session: Session, feedback_no: str, staff_id: int, *, informed: bool, note: str, key: str, now: dt.datetime
) -> Feedback:
    """The follow-up: the customer knows the answer (the reply, or a call when it could not be sent), anything else
    they raised noted; the record closes."""
    row = get_feedback(session, feedback_no)
    if _known(session, row, "closed", key):
        return row
    if row.closed_at is not None:
        raise FeedbackRefused(f"{feedback_no}已结束 / {feedback_no} is closed already")
    if row.answered_at is None:
        raise FeedbackRefused(f"{feedback_no}尚未答复 / {feedback_no} has no answer yet")
    if not informed:
        raise FeedbackRefused("请先告知客户处理结果再结束 / inform the customer of the answer before closing")
    row.closed_at = now
    record_event(session, row, "closed", key, f"staff:{staff_id}", now, note=note.strip())
    session.flush()
    return row


def _notify(session: Session, row: Feedback, policy: Policy, level: str, key: str, now: dt.datetime) -> None:
    """The rung's person (``owner``: the one who recorded it; ``supervisor``: theirs, else a supervisor; above: a
    senior manager) is mailed once per key."""
    from kefu.tasks.casework import _staff_with_role

    recorder = session.get(Staff, row.recorded_by_id) if row.recorded_by_id else None
    if level == "owner":
        person = recorder
    elif level == "supervisor":
        person = recorder.supervisor if recorder is not None and recorder.supervisor is not None else None
        person = person or _staff_with_role(session, Role.SUPERVISOR)
    else:
        person = _staff_with_role(session, Role.SENIOR_MANAGER)
    mail = "no_recipient"
    if person is not None and person.email:
        context = {
            "recipient_name": person.name,
            "feedback_no": row.feedback_no,
            "kind_name": FEEDBACK_KIND_ZH[row.kind],
            "department": policy.roles.names.get(Role(row.department), row.department),
            "due_at": row.due_at,
        }
        enqueue(session, MessageType.FEEDBACK_ESCALATION, recipient_email=person.email, context=context, urgent=True,
                dedupe_key=f"feedback:{row.feedback_no}:{key}", now=now)  # fmt: skip
        mail = "queued"
    elif person is not None:
        mail = "no_address"
    record_event(session, row, "escalated", key, "system", now, level=level,
                 recipient_staff_id=person.id if person else None, mail=mail)  # fmt: skip


def sweep(session: Session, policy: Policy, calendar: WorkCalendar, now: dt.datetime) -> list[str]:
    """Feedback unanswered past its department's deadline: breached, then one rung up ``escalation.ladder`` (the
    recorder's supervisor first) at the breach and every reminder interval after; each notice once (keyed)."""
    fired: list[str] = []
    ladder = policy.escalation.ladder
    rows = session.scalars(
        select(Feedback).where(Feedback.answered_at.is_(None), Feedback.closed_at.is_(None), Feedback.due_at <= now)
    ).all()
    for row in rows:
        if row.breached_at is None:
            row.breached_at = now
            record_event(session, row, "breached", "breach", "system", now)
            fired.append(f"{row.feedback_no}:breached")
        level = row.escalation_level
        moment = row.due_at
        for _ in range(level):
            moment = calendar.deadline(moment, policy.escalation.reminder_interval).due_at
        while moment <= now and level < 50:
            level += 1
            rung = ladder[min(level, len(ladder) - 1)]
            _notify(session, row, policy, rung, f"escalated:{level}", now)
            fired.append(f"{row.feedback_no}:escalated:{rung}")
            moment = calendar.deadline(moment, policy.escalation.reminder_interval).due_at
        row.escalation_level = level
    session.flush()
    return fired


def runs_to_start(session: Session) -> list[str]:
    """Open feedback whose run is not known yet (the table is the outbox: the sweeper starts their runs)."""
    return list(
        session.scalars(
            select(Feedback.feedback_no).where(Feedback.flow_run_id.is_(None), Feedback.closed_at.is_(None))
        )
    )


def step_outcomes(session: Session, feedback_no: str) -> dict[str, str]:
    row = get_feedback(session, feedback_no)
    outcomes: dict[str, str] = {}
    for action, key in session.execute(
        select(FeedbackEvent.action, FeedbackEvent.key).where(
            FeedbackEvent.feedback_id == row.id, FeedbackEvent.action.in_(["step_completed", "step_refused"])
        )
    ).all():
        outcomes[key] = "completed" if action == "step_completed" else "refused"
    return outcomes


def waiting_steps(session: Session, feedback_no: str | None = None) -> list[dict[str, Any]]:
    """Steps feedback runs are suspended on (waiting, neither completed nor refused)."""
    query = select(FeedbackEvent, Feedback).join(Feedback, Feedback.id == FeedbackEvent.feedback_id)
    query = query.where(FeedbackEvent.action == "waiting", Feedback.closed_at.is_(None))
    if feedback_no is not None:
        query = query.where(Feedback.feedback_no == feedback_no)
    done = {
        (f, k)
        for f, k in session.execute(
            select(FeedbackEvent.feedback_id, FeedbackEvent.key).where(
                FeedbackEvent.action.in_(["step_completed", "step_refused"])
            )
        ).all()
    }
    return [
        {
            "feedback_no": row.feedback_no,
            "step": str(event.data["step"]),
            "key": event.key,
            "flow_run_id": str(event.data["flow_run_id"]),
            "since": event.at.isoformat(),
            "due_at": row.due_at.isoformat() if row.answered_at is None else None,
        }
        for event, row in session.execute(query.order_by(FeedbackEvent.id)).all()
        if (row.id, event.key) not in done
    ]
