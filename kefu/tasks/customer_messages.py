"""The customer's messages at each stage of a complaint, sent once each and recorded on the case.

| stage | message | sent by |
|---|---|---|
| registered | acknowledgement (case number, owner, the first promise) | ``casework.register_case`` |
| major: task force formed | apology and commitment naming the leader (the leader: the case) | ``apologise_for_major`` |
| solution proposed | the proposal with the customer's answer link | ``customer_answers.offer_solution`` |
| while it takes time | a progress update (the owner, reminded by the sweeper) | ``record_progress_contact`` |
| resolved | what was done, when we call back | ``notify_resolution`` |
| callback open at the warning | invitation to tell us their satisfaction (mail callback) | the deadline sweeper |
| closed | closure (办结) | ``notify_closure`` |
| any time, by staff | a standard phrase of seed 002 §三 (催货, 运费, 破损, ...) | ``send_standard_phrase`` |

Every one is linted, waits for the business windows unless urgent (an urgent complaint, a major case's apology),
and leaves a keyed case event with its outcome (``{"channel": "mail", "mail": "queued"}``, ``rejected``, ...), so a
replayed step or a repeated sweep sends nothing twice.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from kefu.models.enums import ComplaintStatus, MilestoneId
from kefu.models.people import Staff
from kefu.models.policy import Policy
from kefu.notifications import SPECS, MessageType
from kefu.notifications.messages import STANDARD_PHRASES
from kefu.notifications.outbox import default_renderer
from kefu.tasks.case_notices import (
    NO_OWNER,
    _to_customer,
    addressee,
    send_callback_invitation,
    send_closure_notice,
    send_major_apology,
    send_progress_update,
    send_resolution_notice,
    send_task_force_assignment,
)
from kefu.tasks.case_policy import stamped_policy
from kefu.tasks.casework import _event_keys, get_case, record_event
from kefu.worktime import WorkCalendar, calendar_for


def _due(complaint: object, milestone: MilestoneId) -> dt.datetime | None:
    rows = getattr(complaint, "milestones", [])
    return next((m.due_at for m in rows if m.milestone is milestone), None)


def apologise_for_major(session: Session, case_no: str, leader_id: int, now: dt.datetime) -> None:
    """Seed 003 §3.3: the task force is formed, led by a senior manager; the customer gets the apology and the
    commitment, the leader the case."""
    complaint = get_case(session, case_no)
    if "apology" in _event_keys(session, complaint.id, "customer_notified"):
        return
    leader = session.get(Staff, leader_id)
    plan_by = _due(complaint, MilestoneId.PRELIMINARY_PLAN) or _due(complaint, MilestoneId.RESOLUTION) or now
    lead_name = leader.name if leader is not None else "公司高层管理人员"
    notice = send_major_apology(session, complaint, lead_name=lead_name, plan_by=plan_by, at=now)
    record_event(session, complaint, "customer_notified", "apology", "system", now, message="major_apology", **notice)
    assignment = send_task_force_assignment(session, complaint, leader, plan_by=plan_by, at=now)
    record_event(
        session,
        complaint,
        "notified",
        "task_force",
        "system",
        now,
        level="task_force_lead",
        recipient_staff_id=leader_id,
        reason="task_force",
        mail=assignment,
    )


def notify_resolution(session: Session, case_no: str, number: int, resolution: str, now: dt.datetime) -> None:
    complaint = get_case(session, case_no)
    key = f"resolution-{number}"
    if key in _event_keys(session, complaint.id, "customer_notified"):
        return
    callback_by = _due(complaint, MilestoneId.CALLBACK)
    notice = send_resolution_notice(
        session, complaint, number=number, resolution=resolution, callback_by=callback_by, at=now
    )
    record_event(session, complaint, "customer_notified", key, "system", now, message="resolution_notice", **notice)


def invite_callback(session: Session, case_no: str, number: int, callback_by: dt.datetime, now: dt.datetime) -> bool:
    complaint = get_case(session, case_no)
    key = f"callback-{number}"
    if key in _event_keys(session, complaint.id, "customer_notified"):
        return False
    notice = send_callback_invitation(session, complaint, number=number, callback_by=callback_by, at=now)
    return record_event(
        session, complaint, "customer_notified", key, "system", now, message="callback_invitation", **notice
    )


def notify_closure(session: Session, case_no: str, now: dt.datetime) -> None:
    complaint = get_case(session, case_no)
    if "closure" in _event_keys(session, complaint.id, "customer_notified"):
        return
    notice = send_closure_notice(session, complaint, at=now)
    record_event(session, complaint, "customer_notified", "closure", "system", now, message="case_closure", **notice)


class ContactRefused(ValueError):
    """A progress contact that cannot be recorded (the case is closed, the summary empty)."""


def record_progress_contact(
    session: Session,
    case_no: str,
    staff_id: int,
    summary: str,
    now: dt.datetime,
    *,
    mail: bool,
    policy: Policy,
    calendar: WorkCalendar,
) -> dict[str, str]:
    """The owner was in touch with the customer about the case's progress (seed 004 §4(二)4): recorded on the case,
    and with ``mail`` sent to the customer as a progress update promising the next contact within the policy's
    interval. Either meets the progress contact that was due (the sweeper counts from it)."""
    complaint = get_case(session, case_no)
    if complaint.status is ComplaintStatus.CLOSED:
        raise ContactRefused(f"投诉{case_no}已办结 / case {case_no} is closed")
    text = summary.strip()
    if not text:
        raise ContactRefused("请填写沟通内容 / the contact's summary is empty")
    number = len(_event_keys(session, complaint.id, "progress_contact")) + 1
    key = f"contact-{number}"
    notice: dict[str, str] = {}
    if mail:
        followed = stamped_policy(session, complaint, policy)  # the interval the case was promised, not today's file
        if followed is not policy:
            calendar = calendar_for(followed)
        interval = followed.complaints.severities[complaint.severity].progress_update_interval
        resolution = _due(complaint, MilestoneId.RESOLUTION)
        next_at = calendar.deadline(now, interval).due_at if interval is not None else resolution
        if next_at is None:
            raise ContactRefused(
                f"{complaint.severity.value} 投诉没有进度沟通间隔 / no progress_update_interval for this severity"
            )
        notice = send_progress_update(session, complaint, number=number, next_contact_at=next_at, at=now, progress=text)
    record_event(
        session, complaint, "progress_contact", key, f"staff:{staff_id}", now, summary=text, mailed=mail, **notice
    )
    return notice


def send_standard_phrase(
    session: Session,
    case_no: str,
    staff_id: int,
    message_type: MessageType,
    fields: dict[str, str],
    now: dt.datetime,
) -> dict[str, str]:
    """A standard-phrase message of seed 002 §三 (``STANDARD_PHRASES``) sent by staff to the customer of a case:
    the case gives its number, owner and customer; ``fields`` the rest of what the type requires, nothing else.
    Rendered and linted before anything is queued (``ContactRefused`` names what is wrong); then queued like every
    customer message of the case (mail or SMS, business windows) and recorded as a ``customer_notified`` event."""
    if message_type not in STANDARD_PHRASES:
        raise ContactRefused(f"{message_type.value} is not a standard phrase; one of {', '.join(STANDARD_PHRASES)}")
    complaint = get_case(session, case_no)
    if complaint.status is ComplaintStatus.CLOSED:
        raise ContactRefused(f"投诉{case_no}已办结 / case {case_no} is closed")
    from_case = {"case_no", "owner_name", "customer_name"}
    wanted = [k for k in SPECS[message_type].required if k not in from_case]
    unknown = sorted(set(fields) - set(wanted))
    if unknown:
        takes = ", ".join(wanted) or "none"
        raise ContactRefused(f"{message_type.value} takes no field {', '.join(unknown)} (its fields: {takes})")
    values: dict[str, Any] = {k: v.strip() for k, v in fields.items()}
    missing = [k for k in wanted if not values.get(k)]
    if missing:
        raise ContactRefused(f"{message_type.value} needs --field {'=… --field '.join(missing)}=…")
    context: dict[str, object] = {
        "case_no": complaint.case_no,
        "owner_name": complaint.owner.name if complaint.owner else NO_OWNER,
        "customer_name": addressee(complaint),
        **values,
    }
    rendered = default_renderer().render(message_type, context, now=now)
    if not rendered.ok:
        raise ContactRefused("措辞未通过检查 / the phrase lint refuses it: " + "; ".join(map(str, rendered.findings)))
    number = len(_event_keys(session, complaint.id, "customer_notified")) + 1
    key = f"phrase-{number}"
    notice = _to_customer(session, complaint, message_type, dedupe=key, at=now, **values)
    if notice.get("mail") == "no_address":
        raise ContactRefused(f"客户未留邮箱或手机号 / the customer of {case_no} left no address or mobile number")
    record_event(
        session, complaint, "customer_notified", key, f"staff:{staff_id}", now, message=message_type.value, **notice
    )
    return notice
