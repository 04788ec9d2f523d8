"""Escalation: the deadline sweeper's side effects — warnings, breaches, the escalation ladder, progress updates.

The database is the timer. ``sweep`` reads the open milestones and fires whatever is due at ``now``: a
warning to the owner at the policy's percentage, at breach one rung up the ladder (owner → supervisor →
senior manager) per reminder interval, reminders past the top, and an open major case's progress update
to the customer. Each fires once: keyed case events and the milestone's warned/breached/level columns, so a
sweep that runs late, twice or after a restart repeats nothing. Notices to staff leave through
``casework.notify``, which a case step (an urgent complaint at registration) uses too.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from kefu.models.complaints import Complaint, Milestone
from kefu.models.enums import ComplaintStatus, Severity
from kefu.models.policy import Policy
from kefu.tasks.case_notices import send_progress_update
from kefu.tasks.casework import _event_keys, end_pause, notify, open_pause, record_event, record_fact
from kefu.worktime import WorkCalendar


def _ladder_level_due(calendar: WorkCalendar, policy: Policy, due_at: dt.datetime, level: int) -> dt.datetime:
    """Level 1 at the breach, each further level (and reminder) one reminder interval later."""
    moment = due_at
    for _ in range(level - 1):
        moment = calendar.deadline(moment, policy.escalation.reminder_interval).due_at
    return moment


def sweep(session: Session, policy: Policy, calendar: WorkCalendar, now: dt.datetime) -> list[str]:
    """Warnings, breaches, escalations and reminders due at ``now``; each fires once (keyed events).

    Met milestones never fire. Returns what fired, for the run log (case numbers and ids only).
    """
    fired: list[str] = []
    ladder = policy.escalation.ladder
    pct = policy.escalation.warn_at_percent / 100
    rows = session.scalars(
        select(Milestone).where(Milestone.met_at.is_(None), Milestone.due_at.is_not(None), Milestone.starts_at <= now)
    ).all()
    for row in rows:
        complaint = row.complaint
        if complaint.status is ComplaintStatus.CLOSED or row.due_at is None:
            continue
        pause = open_pause(complaint)
        if pause is not None and any(i.get("until") is None for i in row.paused_intervals or []):
            if now < dt.datetime.fromisoformat(str(pause["counts_until"])):
                continue  # waiting on the customer: this clock is stopped
            hours = end_pause(
                session, complaint.case_no, policy, calendar, actor="system", note="已达最长暂停时间", now=now
            )
            fired.append(f"{complaint.case_no}:pause-ended:{hours:g}h")
            continue
        name = row.milestone.value
        warn_at = row.starts_at + (row.due_at - row.starts_at) * pct
        if row.warned_at is None and now >= warn_at and now < row.due_at:
            row.warned_at = now
            if notify(session, complaint, level="owner", reason="warning", key=f"warn:{name}", at=now, milestone=name):
                record_fact(session, complaint, "milestone.warning", f"notified/warn:{name}", now, milestone=row)
            fired.append(f"{complaint.case_no}:{name}:warning")
        if now < row.due_at:
            continue
        if row.breached_at is None:
            row.breached_at = now
            if record_event(session, complaint, "breached", f"breach:{name}", "system", now, milestone=name):
                record_fact(session, complaint, "milestone.breached", f"breached/breach:{name}", now, milestone=row)
        level = row.escalation_level
        while _ladder_level_due(calendar, policy, row.due_at, level + 1) <= now:
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
    fired.extend(_progress_updates(session, policy, calendar, now))
    session.flush()
    return fired


def _progress_updates(session: Session, policy: Policy, calendar: WorkCalendar, now: dt.datetime) -> list[str]:
    """Open major cases tell the customer how things stand at the policy's interval, each update once."""
    interval = policy.complaints.severities[Severity.MAJOR].progress_update_interval
    if interval is None:
        return []
    fired = []
    open_major = session.scalars(
        select(Complaint).where(
            Complaint.severity == Severity.MAJOR,
            Complaint.status.not_in([ComplaintStatus.RESOLVED, ComplaintStatus.CLOSED]),
            Complaint.resolved_at.is_(None),
        )
    ).all()
    for complaint in open_major:
        sent = _event_keys(session, complaint.id, "progress_update")
        number, due = 1, calendar.deadline(complaint.received_at, interval).due_at
        while due <= now:
            following = calendar.deadline(due, interval).due_at
            if f"progress-{number}" not in sent:
                notice = send_progress_update(session, complaint, number=number, next_contact_at=following, at=now)
                record_event(session, complaint, "progress_update", f"progress-{number}", "system", now, **notice)
                fired.append(f"{complaint.case_no}:progress_update:{number}")
            number, due = number + 1, following
    return fired
