"""Escalation: the deadline sweeper's side effects — warnings, breaches, the escalation ladder, progress updates.

The database is the timer. ``sweep`` reads the open milestones and fires whatever is due at ``now``: a
warning to the owner at the policy's percentage, at breach one rung up the ladder (owner → supervisor →
senior manager) per reminder interval, reminders past the top, and the owner's reminder when an open case's
progress contact with the customer is due. Each fires once: keyed case events and the milestone's
warned/breached/level columns, so a sweep that runs late, twice or after a restart repeats nothing. Notices to
staff leave through ``casework.notify``, which a case step (an urgent complaint at registration) uses too.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kefu.models.complaints import CaseEvent, Complaint, Milestone
from kefu.models.enums import ComplaintStatus, MilestoneId
from kefu.models.policy import Policy
from kefu.tasks.case_policy import stamped_policy
from kefu.tasks.casework import _event_keys, end_pause, notify, open_pause, record_event, record_fact
from kefu.tasks.customer_messages import invite_callback
from kefu.worktime import WorkCalendar, calendar_for


def _ladder_level_due(calendar: WorkCalendar, policy: Policy, due_at: dt.datetime, level: int) -> dt.datetime:
    """Level 1 at the breach, each further level (and reminder) one reminder interval later."""
    moment = due_at
    for _ in range(level - 1):
        moment = calendar.deadline(moment, policy.escalation.reminder_interval).due_at
    return moment


def _followed(
    session: Session, complaint: Complaint, current: Policy, calendar: WorkCalendar
) -> tuple[Policy, WorkCalendar]:
    """The policy stamped on the case and its working calendar (``calendar`` is the current policy's)."""
    followed = stamped_policy(session, complaint, current)
    return followed, (calendar if followed is current else calendar_for(followed))


def sweep(session: Session, policy: Policy, calendar: WorkCalendar, now: dt.datetime) -> list[str]:
    """Warnings, breaches, escalations and reminders due at ``now``; each fires once (keyed events).

    Met milestones never fire. Each case is swept by the policy stamped on it (its warning percentage, ladder and
    reminder interval; ``policy`` — the current one — only for a case without a stamp): editing the policy file
    does not change how an open case escalates. Returns what fired, for the run log (case numbers and ids only).
    """
    fired: list[str] = []
    rows = session.scalars(
        select(Milestone).where(Milestone.met_at.is_(None), Milestone.due_at.is_not(None), Milestone.starts_at <= now)
    ).all()
    for row in rows:
        complaint = row.complaint
        if complaint.status is ComplaintStatus.CLOSED or row.due_at is None:
            continue
        followed, case_calendar = _followed(session, complaint, policy, calendar)
        ladder = followed.escalation.ladder
        pct = followed.escalation.warn_at_percent / 100
        pause = open_pause(complaint)
        if pause is not None and any(i.get("until") is None for i in row.paused_intervals or []):
            if now < dt.datetime.fromisoformat(str(pause["counts_until"])):
                continue  # waiting on the customer: this clock is stopped
            hours = end_pause(
                session, complaint.case_no, followed, case_calendar, actor="system", note="已达最长暂停时间", now=now
            )
            fired.append(f"{complaint.case_no}:pause-ended:{hours:g}h")
            continue
        name = row.milestone.value
        warn_at = row.starts_at + (row.due_at - row.starts_at) * pct
        if row.warned_at is None and now >= warn_at and now < row.due_at:
            row.warned_at = now
            if notify(session, complaint, level="owner", reason="warning", key=f"warn:{name}", at=now, milestone=name):
                record_fact(session, complaint, "milestone.warning", f"notified/warn:{name}", now, milestone=row)
            if row.milestone is MilestoneId.CALLBACK:  # the customer is invited by mail too (邮件回访)
                invite_callback(session, complaint.case_no, complaint.reopen_count, row.due_at, now)
            fired.append(f"{complaint.case_no}:{name}:warning")
        if now < row.due_at:
            continue
        if row.breached_at is None:
            row.breached_at = now
            if record_event(session, complaint, "breached", f"breach:{name}", "system", now, milestone=name):
                record_fact(session, complaint, "milestone.breached", f"breached/breach:{name}", now, milestone=row)
        level = row.escalation_level
        while _ladder_level_due(case_calendar, followed, row.due_at, level + 1) <= now:
            level += 1
            rung = ladder[min(level, len(ladder) - 1)]
            kind = "escalated" if level < len(ladder) else "reminder"
            notify(session, complaint, level=rung, reason=kind, key=f"{kind}:{name}:{level}", at=now, milestone=name)
            if record_event(session, complaint, kind, f"{name}:{level}", "system", now, milestone=name, level=rung):
                labels = {"kefu.escalation.level": str(level), "kefu.escalation.to": rung, "kefu.escalation.kind": kind}
                fact_key = f"{kind}/{name}:{level}"
                record_fact(session, complaint, "escalated", fact_key, now, milestone=row, labels=labels)
            fired.append(f"{complaint.case_no}:{name}:{kind}:{rung}")
            if level > 50:
                break
        row.escalation_level = level
    fired.extend(_progress_contacts(session, policy, calendar, now))
    session.flush()
    return fired


# What counts as having been in touch with the customer about their case: a recorded contact (the first contact
# step, ``kefu case contact``), a progress update, a proposal, a message at a stage, their answer to a proposal.
CONTACT_ACTIONS = (
    "first_contact",
    "progress_contact",
    "progress_update",
    "solution_offered",
    "customer_notified",
    "approve",
)


def _progress_contacts(session: Session, policy: Policy, calendar: WorkCalendar, now: dt.datetime) -> list[str]:
    """Seed 004 §4(二)4 (对于需要一定时间处理的投诉，应定期与客户沟通) and seed 003 §3.3 for major cases: an open case
    whose last contact with the customer is one policy interval (its severity's ``progress_update_interval`` in the
    policy stamped on the case) old
    reminds its owner, once per interval that passes without a contact (after a long gap, once for the latest); a
    recorded contact or a progress update starts the interval again."""
    fired: list[str] = []
    still_open = (
        Complaint.status.not_in([ComplaintStatus.RESOLVED, ComplaintStatus.CLOSED]),
        Complaint.resolved_at.is_(None),
    )
    open_cases = session.scalars(select(Complaint).where(*still_open)).all()
    if not open_cases:
        return fired
    # The last contact of every open case in one query (the sweep runs every minute).
    last_contact: dict[int, dt.datetime] = {
        complaint_id: at
        for complaint_id, at in session.execute(
            select(CaseEvent.complaint_id, func.max(CaseEvent.at))
            .join(Complaint, Complaint.id == CaseEvent.complaint_id)
            .where(*still_open, CaseEvent.action.in_(CONTACT_ACTIONS))
            .group_by(CaseEvent.complaint_id)
        ).all()
    }
    for complaint in open_cases:
        followed, case_calendar = _followed(session, complaint, policy, calendar)
        interval = followed.complaints.severities[complaint.severity].progress_update_interval
        if interval is None:
            continue
        last = last_contact.get(complaint.id)
        anchor = max(complaint.received_at, last) if last is not None else complaint.received_at
        due = case_calendar.deadline(anchor, interval).due_at
        if due > now:
            continue
        # The latest due time that has passed: one reminder for it (a case long without contact is reminded once,
        # not once per interval it missed).
        following = case_calendar.deadline(due, interval).due_at
        while following <= now:
            due, following = following, case_calendar.deadline(following, interval).due_at
        key = f"progress-due:{due.astimezone(dt.UTC).isoformat(timespec='minutes')}"
        if key in _event_keys(session, complaint.id, "progress_contact_due"):
            continue
        notify(session, complaint, level="owner", reason="progress_due", key=key, at=now, contact_due=(due, anchor))
        record_event(session, complaint, "progress_contact_due", key, "system", now, due_at=due.isoformat())
        fired.append(f"{complaint.case_no}:progress_contact_due")
    return fired
