"""The customer's own answer to a proposed solution (seed 003 §3.3): the link in the proposal, and what it decides.

The case flow offers each accepted proposal (``offer_solution``): a single-use link (``kefu.models.answers``)
and the solution-proposal message carrying it, both once per proposal. The customer opens the link on the intake
(``kefu.intake.answers``): opening it (GET, HEAD — mail scanners follow links) only reads ``link_state``; the
form's POST decides (``decide``: one conditional update, so a second post, a double click or another tab decides
nothing). The decision then reaches the case run as the approval step's answer through the same resume as a
staff answer, and the case flow admits it only when it is the customer's recorded decision on the case's latest
proposal, not yet answered (``check_customer_answer``): staff cannot forge it from the run's form, and a bad
answer is refused and asked again like any other, never a failed run.

Proposals are numbered by the flow (0, 1, ... across rejections and reopens): the n-th proposal is answered by the
n-th completed approval step, whoever gave it — so "already decided" means the link was used, or staff recorded
the customer's answer by phone, or a newer proposal replaced it.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from kefu.models.answers import CustomerAnswerLink, hash_link_token, new_link_token
from kefu.models.complaints import CaseEvent, Complaint
from kefu.models.enums import ComplaintStatus
from kefu.models.policy import Policy
from kefu.settings import get_settings
from kefu.tasks.case_notices import send_solution_proposal
from kefu.tasks.casework import StepRejected, get_case, record_event
from kefu.worktime import WorkCalendar

APPROVE_STEP = "approve"
ANSWER_PATH = "/answer/"
COMMENT_LIMIT = 2000


def proposal_key(number: int) -> str:
    return f"proposal-{number}"


def answer_url(token: str) -> str:
    return get_settings().intake_public_url.rstrip("/") + ANSWER_PATH + token


def offer_solution(
    session: Session,
    case_no: str,
    number: int,
    *,
    solution: str,
    promised_at: dt.datetime | None,
    policy: Policy,
    calendar: WorkCalendar,
    now: dt.datetime,
) -> bool:
    """The ``number``-th proposal of the case: its answer link and the proposal message, once (a replay finds the
    link and writes nothing). Returns whether it was offered now."""
    complaint = get_case(session, case_no)
    key = proposal_key(number)
    found = session.scalars(
        select(CustomerAnswerLink).where(
            CustomerAnswerLink.complaint_id == complaint.id, CustomerAnswerLink.step_key == key
        )
    ).first()
    if found is not None:
        return False
    token = new_link_token()
    expires_at = calendar.deadline(now, policy.customer_answers.link_valid_for).due_at
    link = CustomerAnswerLink(
        complaint_id=complaint.id,
        step_key=key,
        token_hash=hash_link_token(token),
        solution=solution,
        promised_at=promised_at,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(link)
    session.flush()
    notice = send_solution_proposal(
        session, complaint, number=number, solution=solution, answer_url=answer_url(token), reply_by=expires_at, at=now
    )
    record_event(
        session,
        complaint,
        "solution_offered",
        key,
        "system",
        now,
        customer_link=link.id,
        expires_at=expires_at.isoformat(),
        **notice,
    )
    return True


class LinkState(StrEnum):
    OPEN = "open"
    DECIDED = "decided"  # by this link, by staff recording a phone answer, or replaced by a newer proposal
    EXPIRED = "expired"
    UNKNOWN = "unknown"


def find_link(session: Session, token: str) -> CustomerAnswerLink | None:
    if not token or len(token) > 128:
        return None
    return session.scalars(
        select(CustomerAnswerLink).where(CustomerAnswerLink.token_hash == hash_link_token(token))
    ).first()


def _number(link: CustomerAnswerLink) -> int:
    return int(link.step_key.rpartition("-")[2])


def _approvals_completed(session: Session, complaint_id: int) -> int:
    """Completed approval steps of the case (refused answers are recorded as ``step_refused``, not counted)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(CaseEvent)
            .where(CaseEvent.complaint_id == complaint_id, CaseEvent.action == APPROVE_STEP)
        )
        or 0
    )


def _latest_number(session: Session, complaint_id: int) -> int:
    links = session.scalars(
        select(CustomerAnswerLink.step_key).where(CustomerAnswerLink.complaint_id == complaint_id)
    ).all()
    return max(int(key.rpartition("-")[2]) for key in links)


def answered_otherwise(session: Session, link: CustomerAnswerLink) -> bool:
    """The proposal was answered without this link (staff recorded it), or a newer one replaced it, or the case
    is closed."""
    number = _number(link)
    return (
        _approvals_completed(session, link.complaint_id) > number
        or _latest_number(session, link.complaint_id) > number
        or link.complaint.status is ComplaintStatus.CLOSED
    )


def link_state(session: Session, link: CustomerAnswerLink | None, now: dt.datetime) -> LinkState:
    """What opening the link shows (reads only: a scanner's GET decides nothing)."""
    if link is None:
        return LinkState.UNKNOWN
    if link.decided_at is not None or answered_otherwise(session, link):
        return LinkState.DECIDED
    if now >= link.expires_at:
        return LinkState.EXPIRED
    return LinkState.OPEN


def decide(session: Session, link: CustomerAnswerLink, *, accepted: bool, comment: str, now: dt.datetime) -> LinkState:
    """The customer's decision, written once: ``OPEN`` when it was recorded now; else why not (already decided,
    expired). One conditional update: of two posts at once, one decides."""
    state = link_state(session, link, now)
    if state is not LinkState.OPEN:
        return state
    result = session.execute(
        update(CustomerAnswerLink)
        .where(
            CustomerAnswerLink.id == link.id,
            CustomerAnswerLink.decided_at.is_(None),
            CustomerAnswerLink.expires_at > now,
        )
        .values(decided_at=now, accepted=accepted, comment=comment)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return LinkState.DECIDED
    session.refresh(link)
    complaint = link.complaint
    record_event(
        session,
        complaint,
        "customer_decided",
        link.step_key,
        "customer:link",
        now,
        customer_link=link.id,
        accepted=accepted,
        comment=comment,
    )
    return LinkState.OPEN


def answer_for_run(link: CustomerAnswerLink) -> dict[str, Any]:
    """The approval step's answer that carries the customer's decision into the case run."""
    return {"accepted": bool(link.accepted), "comment": link.comment or "", "customer_link": link.id}


def mark_delivered(session: Session, link_id: int, now: dt.datetime) -> None:
    session.execute(
        update(CustomerAnswerLink)
        .where(CustomerAnswerLink.id == link_id, CustomerAnswerLink.delivered_at.is_(None))
        .values(delivered_at=now)
        .execution_options(synchronize_session=False)
    )


def undelivered(session: Session) -> list[CustomerAnswerLink]:
    """Decisions that have not reached their case run yet (the run was not waiting, or Prefect did not answer)."""
    return list(
        session.scalars(
            select(CustomerAnswerLink).where(
                CustomerAnswerLink.decided_at.is_not(None), CustomerAnswerLink.delivered_at.is_(None)
            )
        ).all()
    )


def check_customer_answer(session: Session, complaint: Complaint, answer: dict[str, Any]) -> None:
    """An approval answer names either the staff member who recorded the customer's answer (by phone), or the
    customer's link: then it must be the customer's recorded decision on the case's latest proposal, not yet
    answered. Raises ``StepRejected`` (the kit records it and asks again)."""
    link_id = answer.get("customer_link")
    staff_id = answer.get("actor_staff_id")
    if link_id is None:
        if staff_id is None:
            raise StepRejected(
                "请填写记录客户答复的员工编号 / actor_staff_id: the staff member recording the customer's answer is "
                "required (the customer's own answer comes through the link)"
            )
        return
    link = session.get(CustomerAnswerLink, link_id) if isinstance(link_id, int) else None
    if staff_id is not None:
        raise StepRejected(
            "客户本人的答复不应填写员工编号 / an answer is either the customer's (customer_link) or recorded by staff "
            "(actor_staff_id), not both"
        )
    if (
        link is None
        or link.complaint_id != complaint.id
        or link.decided_at is None
        or bool(link.accepted) != bool(answer.get("accepted"))
        or (link.comment or "") != (answer.get("comment") or "")
        or _approvals_completed(session, complaint.id) != _number(link)
        or _latest_number(session, complaint.id) != _number(link)
    ):
        raise StepRejected(
            f"确认链接 {link_id} 没有客户对本方案的答复 / customer_link {link_id}: no customer decision on this "
            "case's current proposal matches this answer"
        )
