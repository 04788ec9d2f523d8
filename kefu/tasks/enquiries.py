"""Enquiries' work (咨询, seed 002 §三, seed 004 §四(一)): recording one, answering it or referring it to a department,
the reply to the customer, closing, turning it into a complaint, a supervisor's verdict on an answer, the sweep of
its promise, and the answer accuracy of the staff assessment.

Every write is keyed (``EnquiryEvent``'s unique action and key) or guarded by the enquiry's state, so the flow's
replays write nothing twice. Refusals raise ``EnquiryRefused`` with a zh-CN / English reason and write nothing.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kefu.models.enquiries import Enquiry, EnquiryEvent, EnquiryStatus
from kefu.models.enums import Channel, Role
from kefu.models.people import Staff, StaffRole
from kefu.models.policy import Duration, Policy
from kefu.notifications.messages import MessageType
from kefu.notifications.outbox import MessageRejected, default_renderer, enqueue, enqueue_sms
from kefu.worktime import WorkCalendar

NO_OWNER = "客服人员"
_UNIT_ZH = {"minutes": "分钟", "hours": "小时", "working_hours": "个工作小时", "working_days": "个工作日"}


def duration_zh(duration: Duration) -> str:
    """``10 minutes`` as people read it: 10分钟."""
    amount = int(duration.amount) if duration.amount == int(duration.amount) else duration.amount
    return f"{amount}{_UNIT_ZH[duration.unit.value]}"


class EnquiryRefused(ValueError):
    """An action the enquiry cannot take (the reason is shown to the person; nothing was written)."""


def target_words(policy: Policy, target: str) -> str:
    """The promise in the seed's words with the policy's duration (能直接处理的10分钟内答复)."""
    if target == "direct_answer":
        return f"能直接处理的{duration_zh(policy.enquiries.direct_answer)}内答复"
    return f"需其他部门协助的{duration_zh(policy.enquiries.cross_department_solution)}内给出解决方案"


def get_enquiry(session: Session, enquiry_no: str) -> Enquiry:
    enquiry = session.scalar(select(Enquiry).where(Enquiry.enquiry_no == enquiry_no))
    if enquiry is None:
        raise EnquiryRefused(f"没有咨询{enquiry_no} / no enquiry {enquiry_no}")
    return enquiry


def record_event(
    session: Session, enquiry: Enquiry, action: str, key: str, actor: str, at: dt.datetime, **data: Any
) -> bool:
    """One audit event per (action, key); False when it was there already."""
    known = session.scalar(
        select(EnquiryEvent.id).where(
            EnquiryEvent.enquiry_id == enquiry.id, EnquiryEvent.action == action, EnquiryEvent.key == key
        )
    )
    if known is not None:
        return False
    session.add(EnquiryEvent(enquiry_id=enquiry.id, action=action, key=key, actor=actor, data=data, at=at))
    session.flush()
    return True


def _next_number(session: Session, received_at: dt.datetime, timezone: str) -> str:
    day = received_at.astimezone(ZoneInfo(timezone)).strftime("%Y%m%d")
    prefix = f"ZX-{day}-"
    last = session.scalar(select(func.max(Enquiry.enquiry_no)).where(Enquiry.enquiry_no.like(f"{prefix}%")))
    number = int(last.rsplit("-", 1)[1]) + 1 if last else 1
    return f"{prefix}{number:04d}"


@dataclass(frozen=True)
class NewEnquiry:
    """An enquiry as a channel delivers it (checked by ``check_new``)."""

    name: str
    phone: str
    content: str
    channel: Channel
    received_at: dt.datetime
    email: str | None = None
    owner_id: int | None = None  # staff recording a call take it (首问责任制)
    idempotency_key: str | None = None


def _normalise_phone(raw: str) -> str:
    """'138 0013 8000' / '+86 138-0013-8000' → '13800138000' (the intake's rule); landlines keep their dash."""
    text = re.sub(r"[\s()（）]", "", raw).removeprefix("+86").removeprefix("0086").lstrip("-")
    digits = text.replace("-", "")
    return digits if re.fullmatch(r"1[3-9]\d{9}", digits) else text


def check_new(
    *, name: str, phone: str, content: str, email: str | None, received_at: dt.datetime, now: dt.datetime
) -> tuple[str, str, str, str | None]:
    """The boundary rules of an enquiry (the complaint form's own for name, phone, e-mail): the cleaned values."""
    problems = []
    name, content, email = name.strip(), content.strip(), (email or "").strip() or None
    if not name or len(name) > 200:
        problems.append("请填写姓名（200字以内） / name is required (at most 200 characters)")
    phone = _normalise_phone(phone)
    if not re.fullmatch(r"[0-9][0-9-]{6,19}", phone):
        problems.append("请填写正确的联系电话 / phone is not a valid phone number")
    if not content or len(content) > 5000:
        problems.append("请填写咨询内容（5000字以内） / content is required (at most 5000 characters)")
    if email is not None and ("@" not in email or len(email) > 254 or any(c.isspace() for c in email)):
        problems.append("电子邮箱格式不正确 / email is not an e-mail address")
    if received_at.tzinfo is None:
        problems.append("受理时间须带时区 / received_at needs a time zone")
    elif received_at > now + dt.timedelta(minutes=5):
        problems.append("受理时间不能晚于现在 / received_at is in the future")
    if problems:
        raise EnquiryRefused("；".join(problems))
    return name, phone, content, email


def record_enquiry(
    session: Session, new: NewEnquiry, policy: Policy, calendar: WorkCalendar, now: dt.datetime
) -> tuple[Enquiry, bool]:
    """Record an enquiry (or find the one its idempotency key made: the same content gives it back, other content
    is refused). Its promise is ``enquiries.direct_answer`` from receipt. Returns (enquiry, created)."""
    name, phone, content, email = check_new(
        name=new.name, phone=new.phone, content=new.content, email=new.email, received_at=new.received_at, now=now
    )
    if new.idempotency_key:
        known = session.scalar(select(Enquiry).where(Enquiry.idempotency_key == new.idempotency_key))
        if known is not None:
            if (known.name, known.phone, known.content) != (name, phone, content):
                raise EnquiryRefused(
                    f"此幂等键已用于另一咨询 {known.enquiry_no} / the idempotency key was used for other content"
                )
            return known, False
    if new.owner_id is not None:
        owner = session.get(Staff, new.owner_id)
        if owner is None or not owner.active:
            raise EnquiryRefused(f"没有在职员工{new.owner_id} / no active staff member {new.owner_id}")
    enquiry = Enquiry(
        enquiry_no=_next_number(session, new.received_at, policy.timezone),
        channel=new.channel,
        received_at=new.received_at,
        name=name,
        phone=phone,
        email=email,
        content=content,
        owner_id=new.owner_id,
        target="direct_answer",
        due_at=calendar.deadline(new.received_at, policy.enquiries.direct_answer).due_at,
        idempotency_key=new.idempotency_key,
    )
    session.add(enquiry)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise EnquiryRefused(
            "咨询编号冲突，请重试 / the enquiry number was taken at the same moment; try again"
        ) from None
    actor = f"staff:{new.owner_id}" if new.owner_id else f"channel:{new.channel.value}"
    record_event(session, enquiry, "received", "received", actor, now, channel=new.channel.value)
    return enquiry, True


def _open(enquiry: Enquiry) -> None:
    if enquiry.finished:
        raise EnquiryRefused(
            f"咨询{enquiry.enquiry_no}已结束（{enquiry.status.value}） / enquiry {enquiry.enquiry_no} is finished"
        )


def _staff(session: Session, staff_id: int) -> Staff:
    person = session.get(Staff, staff_id)
    if person is None or not person.active:
        raise EnquiryRefused(f"没有在职员工{staff_id} / no active staff member {staff_id}")
    return person


def has_role(session: Session, staff_id: int, roles: list[Role]) -> bool:
    held = session.scalars(select(StaffRole.role).where(StaffRole.staff_id == staff_id)).all()
    return any(Role(r) in roles for r in held)


SERVICE_ROLES = (Role.AGENT, Role.SUPERVISOR, Role.SENIOR_MANAGER)


def check_answerer(session: Session, policy: Policy, step: str, staff_id: int) -> None:
    """Who may answer an enquiry step: active customer service staff (客服人员, 主管, 高层管理人员); the department
    step also the departments of ``enquiries.departments``. ``EnquiryRefused`` names who may."""
    person = session.get(Staff, staff_id)
    if person is None or not person.active:
        raise EnquiryRefused(f"没有在职员工{staff_id} / no active staff member {staff_id}")
    allowed = [*SERVICE_ROLES, *(policy.enquiries.departments if step == "department_answer" else [])]
    if not has_role(session, staff_id, allowed):
        names = "、".join(policy.roles.names[r] for r in allowed)
        raise EnquiryRefused(f"本步骤须由{names}完成 / this step is answered by: {names}")


def check_reply(enquiry: Enquiry, reply: str, owner_name: str, now: dt.datetime) -> str:
    """The reply as the customer will read it passes the phrase lint (forbidden phrases, required elements)."""
    reply = reply.strip()
    if not reply:
        raise EnquiryRefused("请填写给客户的答复 / the reply to the customer is empty")
    rendered = default_renderer().render(
        MessageType.ENQUIRY_REPLY,
        {"enquiry_no": enquiry.enquiry_no, "owner_name": owner_name, "reply": reply, "customer_name": enquiry.name},
        now=now,
    )
    if not rendered.ok:
        raise EnquiryRefused("措辞未通过检查 / the phrase lint refuses it: " + "; ".join(map(str, rendered.findings)))
    return reply


def _send_reply(session: Session, enquiry: Enquiry, owner_name: str, key: str, now: dt.datetime) -> str:
    """The reply to the customer through the outbox (mail when they gave an address, else SMS): how it left."""
    from kefu.notifications.sms import mobile_number

    context = {
        "enquiry_no": enquiry.enquiry_no,
        "owner_name": owner_name,
        "reply": enquiry.reply or "",
        "customer_name": enquiry.name,
    }
    dedupe = f"enquiry:{enquiry.enquiry_no}:{key}"
    try:
        if enquiry.email:
            enqueue(session, MessageType.ENQUIRY_REPLY, recipient_email=enquiry.email, context=context, now=now,
                    dedupe_key=dedupe)  # fmt: skip
            return "mail"
        if mobile_number([enquiry.phone]) is not None:
            enqueue_sms(session, MessageType.ENQUIRY_REPLY, phone=enquiry.phone, context=context, now=now,
                        dedupe_key=dedupe)  # fmt: skip
            return "sms"
    except MessageRejected as rejected:
        reasons = "; ".join(rejected.reasons)
        raise EnquiryRefused(f"措辞未通过检查 / the phrase lint refuses it: {reasons}") from None
    return "no_address"


def answer(session: Session, enquiry_no: str, staff_id: int, reply: str, key: str, now: dt.datetime) -> None:
    """Answer directly: the reply recorded and sent; the promise met when it is the first answer."""
    enquiry = get_enquiry(session, enquiry_no)
    _open(enquiry)
    person = _staff(session, staff_id)
    if enquiry.owner_id is None:
        enquiry.owner_id = staff_id  # 首问责任制: who answers first owns it
    owner_name = enquiry.owner.name if enquiry.owner else person.name
    enquiry.reply = check_reply(enquiry, reply, owner_name, now)
    if record_event(session, enquiry, "replied", key, f"staff:{staff_id}", now, reply=enquiry.reply):
        enquiry.reply_sent = _send_reply(session, enquiry, owner_name, key, now)
        enquiry.answered_by_id = staff_id
        enquiry.answered_at = enquiry.answered_at or now
        enquiry.status = EnquiryStatus.ANSWERED
    session.flush()


def department_words(policy: Policy) -> dict[Role, str]:
    """The departments an enquiry may go to, by the policy's names (运营部, 财务部, ...)."""
    return {role: policy.roles.names[role] for role in policy.enquiries.departments}


def refer(
    session: Session,
    enquiry_no: str,
    staff_id: int,
    department: Role,
    policy: Policy,
    calendar: WorkCalendar,
    key: str,
    now: dt.datetime,
) -> None:
    """Needs another department: the promise becomes ``cross_department_solution`` from receipt."""
    enquiry = get_enquiry(session, enquiry_no)
    _open(enquiry)
    _staff(session, staff_id)
    if department not in policy.enquiries.departments:
        names = "、".join(department_words(policy).values())
        raise EnquiryRefused(f"咨询只能转给：{names} / not a department enquiries go to")
    if enquiry.owner_id is None:
        enquiry.owner_id = staff_id
    if record_event(session, enquiry, "referred", key, f"staff:{staff_id}", now, department=department.value):
        enquiry.department = department.value
        enquiry.status = EnquiryStatus.REFERRED
        if enquiry.answered_at is None:
            enquiry.target = "cross_department_solution"
            enquiry.due_at = calendar.deadline(enquiry.received_at, policy.enquiries.cross_department_solution).due_at
            if enquiry.due_at > now:  # the longer promise is not broken yet: its ladder starts again
                enquiry.breached_at, enquiry.escalation_level = None, 0
    session.flush()


def department_answered(
    session: Session, enquiry_no: str, staff_id: int, solution: str, reply: str, key: str, now: dt.datetime
) -> None:
    """The department's solution, and the reply that takes it to the customer."""
    enquiry = get_enquiry(session, enquiry_no)
    _open(enquiry)
    if not solution.strip():
        raise EnquiryRefused("请填写部门的解决方案 / the department's solution is empty")
    enquiry.department_answer = solution.strip()
    answer(session, enquiry_no, staff_id, reply, key, now)


def close(session: Session, enquiry_no: str, now: dt.datetime) -> None:
    enquiry = get_enquiry(session, enquiry_no)
    if enquiry.finished:
        return
    enquiry.status, enquiry.closed_at = EnquiryStatus.CLOSED, now
    record_event(session, enquiry, "closed", "closed", "system", now)


def request_conversion(session: Session, enquiry_no: str, staff_id: int, now: dt.datetime) -> bool:
    """It is a complaint: the enquiry stops (its run asks nothing more) and waits for the intake to register the
    complaint (``kefu.intake.enquiries.convert``: the intake's registration path, its dispatcher starts the case
    run). False when it was requested or done before."""
    enquiry = get_enquiry(session, enquiry_no)
    if enquiry.status in (EnquiryStatus.CONVERTING, EnquiryStatus.CONVERTED):
        return False
    _open(enquiry)
    _staff(session, staff_id)
    enquiry.status = EnquiryStatus.CONVERTING
    if enquiry.owner_id is None:
        enquiry.owner_id = staff_id
    record_event(session, enquiry, "conversion_requested", "conversion", f"staff:{staff_id}", now)
    session.flush()
    return True


def conversions_requested(session: Session) -> list[str]:
    return list(session.scalars(select(Enquiry.enquiry_no).where(Enquiry.status == EnquiryStatus.CONVERTING)))


def converted(session: Session, enquiry: Enquiry, complaint_id: int, case_no: str, now: dt.datetime) -> None:
    """The complaint is registered: both linked, the enquiry finished."""
    enquiry.complaint_id = complaint_id
    enquiry.status, enquiry.closed_at = EnquiryStatus.CONVERTED, now
    record_event(session, enquiry, "converted", "converted", "system", now, case_no=case_no)
    session.flush()


def mark_wrong(session: Session, enquiry_no: str, supervisor_id: int, reason: str, now: dt.datetime) -> None:
    """A supervisor finds the answer wrong (it counts against its author's answer accuracy)."""
    enquiry = get_enquiry(session, enquiry_no)
    if not has_role(session, supervisor_id, [Role.SUPERVISOR]):
        raise EnquiryRefused("只有主管可以判定答复有误 / only a supervisor may mark an answer wrong")
    if not reason.strip():
        raise EnquiryRefused("请写明答复有误的原因 / give the reason the answer is wrong")
    if enquiry.answered_by_id is None:
        raise EnquiryRefused(f"咨询{enquiry_no}尚未答复 / enquiry {enquiry_no} has no answer yet")
    if enquiry.marked_wrong_at is not None:
        raise EnquiryRefused(f"咨询{enquiry_no}的答复已被判定有误 / already marked wrong")
    enquiry.marked_wrong_at, enquiry.marked_wrong_by_id, enquiry.wrong_reason = now, supervisor_id, reason.strip()
    record_event(session, enquiry, "marked_wrong", "marked_wrong", f"staff:{supervisor_id}", now, reason=reason)


@dataclass(frozen=True)
class Accuracy:
    staff_id: int
    answered: int
    wrong: int

    @property
    def accuracy(self) -> float:
        return (self.answered - self.wrong) / self.answered if self.answered else 1.0


def answer_accuracy(session: Session, year: int, month: int, timezone: str) -> dict[int, Accuracy]:
    """答复准确率 per agent for a month (policy time zone): enquiries they answered that month, and how many of those a
    supervisor marked wrong — for the staff assessment."""
    tz = ZoneInfo(timezone)
    start = dt.datetime(year, month, 1, tzinfo=tz)
    end = dt.datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=tz)
    rows = session.execute(
        select(Enquiry.answered_by_id, func.count(), func.count(Enquiry.marked_wrong_at))
        .where(Enquiry.answered_by_id.is_not(None), Enquiry.answered_at >= start, Enquiry.answered_at < end)
        .group_by(Enquiry.answered_by_id)
    ).all()
    return {int(s): Accuracy(int(s), int(n), int(w)) for s, n, w in rows}


# --- the promise: breaches escalate up the policy's ladder (``case-deadlines`` sweeps them every minute) -------


def _recipient(session: Session, enquiry: Enquiry, level: str) -> Staff | None:
    from kefu.tasks.casework import _staff_with_role

    owner = enquiry.owner
    if level == "owner":
        return owner
    if level == "supervisor":
        if owner is not None and owner.supervisor is not None:
            return owner.supervisor
        return _staff_with_role(session, Role.SUPERVISOR)
    return _staff_with_role(session, Role.SENIOR_MANAGER)


def _notify(session: Session, enquiry: Enquiry, policy: Policy, level: str, key: str, now: dt.datetime) -> None:
    person = _recipient(session, enquiry, level)
    mail = "no_recipient"
    if person is not None and person.email:
        context = {
            "recipient_name": person.name,
            "enquiry_no": enquiry.enquiry_no,
            "owner_name": enquiry.owner.name if enquiry.owner else NO_OWNER,
            "target": target_words(policy, enquiry.target),
            "due_at": enquiry.due_at,
        }
        enqueue(session, MessageType.ENQUIRY_ESCALATION, recipient_email=person.email, context=context, urgent=True,
                dedupe_key=f"enquiry:{enquiry.enquiry_no}:{key}", now=now)  # fmt: skip
        mail = "queued"
    elif person is not None:
        mail = "no_address"
    record_event(session, enquiry, "escalated", key, "system", now, level=level,
                 recipient_staff_id=person.id if person else None, mail=mail, target=enquiry.target)  # fmt: skip


def sweep(session: Session, policy: Policy, calendar: WorkCalendar, now: dt.datetime) -> list[str]:
    """Unanswered enquiries past their promise: breached, then one rung up the ladder (the owner's supervisor first)
    at the breach and every reminder interval after; each notice once (keyed events)."""
    fired: list[str] = []
    ladder = policy.escalation.ladder
    rows = session.scalars(
        select(Enquiry).where(
            Enquiry.answered_at.is_(None),
            Enquiry.status.in_([EnquiryStatus.OPEN, EnquiryStatus.REFERRED]),
            Enquiry.due_at <= now,
        )
    ).all()
    for enquiry in rows:
        if enquiry.breached_at is None:
            enquiry.breached_at = now
            record_event(session, enquiry, "breached", f"breach:{enquiry.target}", "system", now)
            fired.append(f"{enquiry.enquiry_no}:{enquiry.target}:breached")
        level = enquiry.escalation_level
        moment = enquiry.due_at
        for _ in range(level):
            moment = calendar.deadline(moment, policy.escalation.reminder_interval).due_at
        while moment <= now and level < 50:
            level += 1
            rung = ladder[min(level, len(ladder) - 1)]
            _notify(session, enquiry, policy, rung, f"{enquiry.target}:{level}", now)
            fired.append(f"{enquiry.enquiry_no}:{enquiry.target}:escalated:{rung}")
            moment = calendar.deadline(moment, policy.escalation.reminder_interval).due_at
        enquiry.escalation_level = level
    session.flush()
    return fired


def runs_to_start(session: Session) -> list[str]:
    """Enquiries whose run is not known yet (the table is the outbox: the sweeper starts their runs)."""
    return list(
        session.scalars(
            select(Enquiry.enquiry_no).where(
                Enquiry.flow_run_id.is_(None), Enquiry.status.in_([EnquiryStatus.OPEN, EnquiryStatus.REFERRED])
            )
        )
    )


# --- the step kit's records of the enquiry run -----------------------------------------------------------------


def step_outcomes(session: Session, enquiry_no: str) -> dict[str, str]:
    enquiry = get_enquiry(session, enquiry_no)
    outcomes: dict[str, str] = {}
    for action, key in session.execute(
        select(EnquiryEvent.action, EnquiryEvent.key).where(
            EnquiryEvent.enquiry_id == enquiry.id, EnquiryEvent.action.in_(["step_completed", "step_refused"])
        )
    ).all():
        outcomes[key] = "completed" if action == "step_completed" else "refused"
    return outcomes


def waiting_steps(session: Session, enquiry_no: str | None = None) -> list[dict[str, Any]]:
    """Steps enquiry runs are suspended on (waiting, neither completed nor refused)."""
    query = select(EnquiryEvent, Enquiry).join(Enquiry, Enquiry.id == EnquiryEvent.enquiry_id)
    query = query.where(EnquiryEvent.action == "waiting", Enquiry.status.in_(["open", "referred", "answered"]))
    if enquiry_no is not None:
        query = query.where(Enquiry.enquiry_no == enquiry_no)
    done = {
        (e, k)
        for e, k in session.execute(
            select(EnquiryEvent.enquiry_id, EnquiryEvent.key).where(
                EnquiryEvent.action.in_(["step_completed", "step_refused"])
            )
        ).all()
    }
    return [
        {
            "enquiry_no": enquiry.enquiry_no,
            "step": str(event.data["step"]),
            "key": event.key,
            "flow_run_id": str(event.data["flow_run_id"]),
            "since": event.at.isoformat(),
            "due_at": enquiry.due_at.isoformat() if enquiry.answered_at is None else None,
        }
        for event, enquiry in session.execute(query.order_by(EnquiryEvent.id)).all()
        if (enquiry.id, event.key) not in done
    ]
