"""The complaint case's mails and SMS: who hears what when the case flow or the deadline sweeper notifies.

``casework.notify`` records each notice once per key as a case event and calls ``send_case_notice`` in the
same transaction; the mail's dedupe key is the case, the notice and the person, so a replayed step or a
repeated sweep never queues it twice. Internal mails are masked by the renderer (no phone numbers leave
for staff). The outbox refuses a message the phrase lint rejects; the case records why
(``message_rejected`` with the findings) and goes on, the notice's outcome reading ``rejected``.

The customer hears by mail when they gave an address, else by SMS at their first mobile number (the same dedupe
key: one acknowledgement per case, whichever channel). The customer notices return the case event's data naming
the channel: ``{"channel": "mail", "mail": "queued"}``, ``{"channel": "sms", "sms": "queued"}``, or
``{"mail": "no_address"}`` when the customer left neither.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from kefu.models.complaints import CaseEvent
from kefu.models.policy import MilestoneId, current_policy
from kefu.notifications import MessageRejected, MessageType, enqueue, enqueue_sms, mobile_number
from kefu.worktime import next_open_commitment

if TYPE_CHECKING:
    from kefu.models.complaints import Complaint, Milestone
    from kefu.models.people import Staff


def milestone_name(complaint: Complaint, milestone: MilestoneId) -> str:
    """The policy's own term for a milestone of this case (e.g. 与客户取得联系)."""
    return current_policy().complaints.milestone_name(complaint.severity, milestone)


def severity_name(complaint: Complaint) -> str:
    return current_policy().complaints.severities[complaint.severity].name


REASON_ZH = {
    "urgent": "紧急投诉，请立即跟进",
    "escalated": "节点已超时，按升级规定转由您督办",
    "reminder": "节点仍未完成，超时提醒",
    "key_account": "重点客户的投诉，请项目经理关注",
}
NO_OWNER = "客服中心"


def _milestone(complaint: Complaint, milestone: str | None) -> Milestone | None:
    rows = [m for m in complaint.milestones if m.due_at is not None]
    if milestone is not None:
        return next((m for m in rows if m.milestone.value == milestone), None)
    open_rows = [m for m in rows if m.met_at is None]
    return min(open_rows, key=lambda m: m.due_at or m.starts_at) if open_rows else None


def _owner_name(complaint: Complaint) -> str:
    return complaint.owner.name if complaint.owner else NO_OWNER


def _first_phone(complaint: Complaint) -> str:
    phones = complaint.customer.phones if complaint.customer else []
    return phones[0] if phones else "未留"


# The actor of a ``message_rejected`` event: the notifications' phrase lint refused the mail.
REJECTED_BY = "kefu.notifications"


def _queue(
    session: Session,
    complaint: Complaint,
    message_type: MessageType,
    *,
    recipient_email: str | None = None,
    phone: str | None = None,
    context: dict[str, object],
    dedupe_key: str,
    at: dt.datetime,
    urgent: bool = False,
) -> str:
    """Queue one mail (or, given ``phone``, one SMS) of the case: ``queued``, or ``rejected`` with the lint's
    findings recorded on the case.

    The one place a case catches ``MessageRejected``: the rejection is kept in the case's history and the
    case goes on (a message it could not send never stops a step or a sweep).
    """
    try:
        if phone is not None:
            enqueue_sms(
                session,
                message_type,
                phone=phone,
                context=context,
                complaint_id=complaint.id,
                urgent=urgent,
                dedupe_key=dedupe_key,
                now=at,
            )
        else:
            enqueue(
                session,
                message_type,
                recipient_email=recipient_email or "",
                context=context,
                complaint_id=complaint.id,
                urgent=urgent,
                dedupe_key=dedupe_key,
                now=at,
            )
    except MessageRejected as rejected:
        data: dict[str, object] = {"message_type": message_type.value, "reasons": rejected.reasons}
        if phone is not None:
            data["channel"] = "sms"
        session.add(
            CaseEvent(
                complaint_id=complaint.id,
                actor=REJECTED_BY,
                action="message_rejected",
                data=data,
                at=at,
            )
        )
        session.flush()
        return "rejected"
    return "queued"


def send_case_notice(
    session: Session,
    complaint: Complaint,
    person: Staff | None,
    *,
    reason: str,
    key: str,
    at: dt.datetime,
    milestone: str | None = None,
    contact_due: tuple[dt.datetime, dt.datetime] | None = None,
) -> str:
    """Queue the mail for one notice to one person. Returns what happened, for the case event.

    ``contact_due``: a progress contact with the customer is due (its due time, the last contact)."""
    if person is None:
        return "no_recipient"
    if not person.email:
        return "no_address"
    if contact_due is not None:
        return _queue(
            session,
            complaint,
            MessageType.PROGRESS_CONTACT_DUE,
            recipient_email=person.email,
            context={
                "recipient_name": person.name,
                "case_no": complaint.case_no,
                "severity": severity_name(complaint),
                "due_at": contact_due[0],
                "last_contact_at": contact_due[1],
            },
            dedupe_key=f"case:{complaint.case_no}:{key}:staff:{person.id}",
            at=at,
        )
    row = _milestone(complaint, milestone)
    if row is None or row.due_at is None:
        return "no_open_milestone"
    label = milestone_name(complaint, row.milestone)
    if reason == "warning":
        message_type = MessageType.PRE_BREACH_WARNING
        context: dict[str, object] = {"case_no": complaint.case_no, "milestone": label, "due_at": row.due_at}
    else:
        message_type = MessageType.SUPERVISOR_ESCALATION
        context = {
            "case_no": complaint.case_no,
            "owner_name": _owner_name(complaint),
            "severity": severity_name(complaint),
            "milestone": label,
            "due_at": row.due_at,
            "reason": REASON_ZH.get(reason, reason),
            "customer_phone": _first_phone(complaint),
        }
    context["recipient_name"] = person.name
    return _queue(
        session,
        complaint,
        message_type,
        recipient_email=person.email,
        context=context,
        dedupe_key=f"case:{complaint.case_no}:{key}:staff:{person.id}",
        at=at,
    )


def _to_customer(
    session: Session,
    complaint: Complaint,
    message_type: MessageType,
    *,
    dedupe: str,
    at: dt.datetime,
    urgent: bool = False,
    **context: object,
) -> dict[str, str]:
    """Mail when the customer gave an address, else SMS to their mobile; the case event's data (module docstring)."""
    customer = complaint.customer
    phone = mobile_number(customer.phones or []) if customer is not None else None
    if customer is None or not (customer.email or phone):
        return {"mail": "no_address"}
    channel = "mail" if customer.email else "sms"
    outcome = _queue(
        session,
        complaint,
        message_type,
        recipient_email=customer.email,
        phone=None if customer.email else phone,
        context={
            "case_no": complaint.case_no,
            "owner_name": _owner_name(complaint),
            "customer_name": addressee(complaint),
            **context,
        },
        dedupe_key=f"case:{complaint.case_no}:{dedupe}",
        at=at,
        urgent=urgent,
    )
    return {"channel": channel, channel: outcome}


def addressee(complaint: Complaint) -> str:
    """Whom a letter about the case greets: the person who complained, by the name they gave, else the customer on
    record (a company's contact typing her own name is 刘女士, not 华星电子有限公司)."""
    if complaint.contact_name:
        return complaint.contact_name
    return complaint.customer.name if complaint.customer is not None and complaint.customer.name else "客户"


def send_acknowledgement(session: Session, complaint: Complaint, at: dt.datetime) -> dict[str, str]:
    """The customer hears the case number, who follows it and what we promise next, by when (seed 003 §3.1):
    the earliest open customer-facing milestone in the policy's customer wording — never an internal step's
    time (a report to a supervisor, the task force)."""
    open_rows = ((m.milestone, m.due_at) for m in complaint.milestones if m.met_at is None and m.due_at is not None)
    commitment = next_open_commitment(current_policy(), complaint.severity, open_rows)
    if commitment is None:
        return {"mail": "no_open_milestone"}
    return _to_customer(
        session,
        complaint,
        MessageType.COMPLAINT_ACKNOWLEDGEMENT,
        dedupe="ack",
        at=at,
        urgent=complaint.urgent,
        next_contact_at=commitment.due_at,
        promise_wording=commitment.wording,
    )


PROGRESS_TEXT = "我们正在调查处理您的投诉，已安排专人负责，处理结果确定后将第一时间通知您。"


def send_progress_update(
    session: Session,
    complaint: Complaint,
    *,
    number: int,
    next_contact_at: dt.datetime,
    at: dt.datetime,
    progress: str = PROGRESS_TEXT,
) -> dict[str, str]:
    """A progress update to the customer (the owner's ``kefu case contact --mail``): how things stand, and by when we
    are in touch again (the policy's ``progress_update_interval``)."""
    return _to_customer(
        session,
        complaint,
        MessageType.PROGRESS_UPDATE,
        dedupe=f"progress:{number}",
        at=at,
        progress=progress,
        next_contact_at=next_contact_at,
    )


def send_solution_proposal(
    session: Session,
    complaint: Complaint,
    *,
    number: int,
    solution: str,
    answer_url: str,
    reply_by: dt.datetime,
    at: dt.datetime,
) -> dict[str, str]:
    """The proposed solution with the customer's answer link (seed 003 §3.3: 解决方案应得到客户的认可); mail, or SMS
    without an e-mail address (the SMS keeps the link and the reply time)."""
    return _to_customer(
        session,
        complaint,
        MessageType.SOLUTION_PROPOSAL,
        dedupe=f"proposal:{number}",
        at=at,
        urgent=complaint.urgent,
        solution=solution,
        answer_url=answer_url,
        reply_by=reply_by,
    )


# The commitment of a major case's apology (seed 003 §3.3: 表达歉意并承诺尽快处理), in the policy's words.
MAJOR_COMMITMENT = "尽快查明原因并妥善处理，处理期间及时向您反馈处理进度。"


def send_major_apology(
    session: Session, complaint: Complaint, *, lead_name: str, plan_by: dt.datetime, at: dt.datetime
) -> dict[str, str]:
    """A major case: the apology and commitment, naming the task force's leader (seed 003 §3.3 重大投诉). Sent at
    once, outside the business windows too: the first contact of a major case is due within hours."""
    return _to_customer(
        session,
        complaint,
        MessageType.MAJOR_APOLOGY,
        dedupe="apology",
        at=at,
        urgent=True,
        task_force_lead=lead_name,
        commitment=MAJOR_COMMITMENT,
        next_contact_at=plan_by,
    )


def send_task_force_assignment(
    session: Session, complaint: Complaint, leader: Staff | None, *, plan_by: dt.datetime, at: dt.datetime
) -> str:
    """The task force's leader is told the case is theirs and when the preliminary plan is due (internal, masked)."""
    if leader is None:
        return "no_recipient"
    if not leader.email:
        return "no_address"
    return _queue(
        session,
        complaint,
        MessageType.TASK_FORCE_ASSIGNMENT,
        recipient_email=leader.email,
        context={
            "case_no": complaint.case_no,
            "lead_name": leader.name,
            "due_at": plan_by,
            "recipient_name": leader.name,
        },
        dedupe_key=f"case:{complaint.case_no}:task_force:staff:{leader.id}",
        at=at,
    )


def send_resolution_notice(
    session: Session,
    complaint: Complaint,
    *,
    number: int,
    resolution: str,
    callback_by: dt.datetime | None,
    at: dt.datetime,
) -> dict[str, str]:
    """The case is resolved: what was done, and by when we call back (seed 003 §3.4)."""
    if callback_by is None:
        return _to_customer(
            session,
            complaint,
            MessageType.RESOLUTION_NOTICE,
            dedupe=f"resolution:{number}",
            at=at,
            resolution=resolution,
        )
    return _to_customer(
        session,
        complaint,
        MessageType.RESOLUTION_NOTICE,
        dedupe=f"resolution:{number}",
        at=at,
        resolution=resolution,
        callback_by=callback_by,
    )


def send_callback_invitation(
    session: Session, complaint: Complaint, *, number: int, callback_by: dt.datetime, at: dt.datetime
) -> dict[str, str]:
    """The satisfaction callback, by mail too (seed 004 §4(四)1: 回访方式包括电话回访、邮件回访)."""
    return _to_customer(
        session, complaint, MessageType.CALLBACK_INVITATION, dedupe=f"callback:{number}", at=at, callback_by=callback_by
    )


def send_closure_notice(session: Session, complaint: Complaint, *, at: dt.datetime) -> dict[str, str]:
    """The case is closed (办结) after a satisfied callback."""
    return _to_customer(session, complaint, MessageType.CASE_CLOSURE, dedupe="closure", at=at, closed_at=at)
