"""The deadline sweeper: warnings, breaches, escalations and reminders from the database, every minute.

The database is the timer: a sweep that runs late, twice, or after a restart fires each notice exactly once
(keyed audit events, the milestone's warned/breached/level columns), and met milestones never fire. What fired is
announced as case events (``kefu.case.milestone.warning``, ``...breached``, ``kefu.case.escalated``) once the
sweep's unit of work has committed. One run a day keeps the shift (``kefu.engine.shift``): a sweep on every minute.
"""

from __future__ import annotations

import datetime as dt
import logging
from uuid import UUID

from prefect import flow

from kefu.engine.events import case_work
from kefu.engine.shift import ShiftClock, SystemClock, keep_shift, run_on_shift, shift_logger, shift_until
from kefu.models.db import unit_of_work
from kefu.models.policy import current_policy
from kefu.tasks import customer_answers, enquiries, escalation, feedback
from kefu.tasks.casework import waiting_steps
from kefu.worktime import calendar_for

DUTY = "case-deadlines"


def sweep_deadlines(now: dt.datetime) -> list[str]:
    """One sweep at ``now``: what fired (case numbers and milestone ids), committed, then announced."""
    policy = current_policy()
    with case_work() as session:
        fired = escalation.sweep(session, policy, calendar_for(policy), now)
        fired += enquiries.sweep(session, policy, calendar_for(policy), now)  # enquiries' promises (咨询)
        fired += feedback.sweep(session, policy, calendar_for(policy), now)  # feedback's department deadlines
        unstarted = enquiries.runs_to_start(session)
        feedback_unstarted = feedback.runs_to_start(session)
    return (
        fired
        + deliver_customer_answers(now)
        + start_enquiry_runs(unstarted)
        + start_feedback_runs(feedback_unstarted)
        + onboarding_deadlines(now)
        + service_plan_deadlines(now)
        + assessment_deadlines(now)
    )


def assessment_deadlines(now: dt.datetime) -> list[str]:
    """The staff assessment's timers (``kefu.flows.staff_assessment``): missed steps marked missing and escalated,
    sheet runs Prefect missed opened, complete months published."""
    from kefu.flows.staff_assessment import assessment_deadlines as mend

    try:
        return mend(now)
    except Exception as exc:  # never stop the complaint deadlines for it: the next minute tries again
        logging.getLogger("kefu.assessment").warning("assessment deadlines not swept: %r", exc, exc_info=True)
        return []


def start_enquiry_runs(enquiry_nos: list[str]) -> list[str]:
    """Enquiries recorded without their run yet (the intake's form and API record them; the table is the outbox)."""
    from kefu.flows.enquiry import start_runs

    try:
        return [f"{no}:run-started" for no in start_runs(enquiry_nos)]
    except Exception as exc:  # Prefect unreachable, the deployment not registered: the next minute tries again
        logging.getLogger("kefu.enquiries").warning(
            "enquiry runs not started (%s): %r", len(enquiry_nos), exc, exc_info=True
        )
        return []


def start_feedback_runs(feedback_nos: list[str]) -> list[str]:
    """Feedback recorded without its run yet (the table is the outbox)."""
    from kefu.flows.feedback import start_runs

    try:
        return [f"{no}:run-started" for no in start_runs(feedback_nos)]
    except Exception as exc:  # Prefect unreachable, the deployment not registered: the next minute tries again
        logging.getLogger("kefu.feedback").warning(
            "feedback runs not started (%s): %r", len(feedback_nos), exc, exc_info=True
        )
        return []


def onboarding_deadlines(now: dt.datetime) -> list[str]:
    """Key-account onboarding's timers (``kefu.flows.key_account_onboarding``): missed reviews escalated, an
    onboarding run still waiting on reviews that are all in resumed, a nomination whose run was never opened opened."""
    from kefu.flows.key_account_onboarding import mend_onboardings
    from kefu.tasks import onboarding

    policy = current_policy()
    with unit_of_work() as session:
        fired = onboarding.sweep(session, policy, calendar_for(policy), now)
    try:
        return fired + mend_onboardings(now)
    except Exception as exc:  # Prefect unreachable: the escalations are in; the next minute mends again
        logging.getLogger("kefu.onboarding").warning("onboarding runs not mended: %r", exc, exc_info=True)
        return fired


def service_plan_deadlines(now: dt.datetime) -> list[str]:
    """Key-account service plans' timers (``kefu.flows.service_plan``): missed parts escalated, agreements' renewals
    reminded once, a plan run still waiting on parts that are all in resumed, an unopened plan's run opened."""
    from kefu.flows.service_plan import plan_duties

    try:
        return plan_duties(now)
    except Exception as exc:  # Prefect unreachable: the next minute tries again (the database writes are keyed)
        logging.getLogger("kefu.service_plans").warning("service plan duties: %r", exc, exc_info=True)
        return []


# A decision the intake could not deliver at once is tried again after this long (technical, not policy: the intake
# resumes the run itself within a second; this only mends a run that was not waiting yet or a Prefect hiccup).
ANSWER_RETRY_AFTER = dt.timedelta(seconds=30)


def deliver_customer_answers(now: dt.datetime) -> list[str]:
    """Customers' decisions (answer links) that have not reached their case run: resume its approval step now, when
    it waits on it (the same resume the intake makes). Returns the case numbers delivered."""
    from prefect.client.orchestration import get_client

    with case_work() as session:
        pending = []
        for link in customer_answers.undelivered(session):
            if link.decided_at is None or link.decided_at > now - ANSWER_RETRY_AFTER:
                continue
            rows = [r for r in waiting_steps(session, link.complaint.case_no) if r["step"] == "approve"]
            if rows:
                run_input = customer_answers.answer_for_run(link)
                pending.append((link.id, link.complaint.case_no, rows[-1]["flow_run_id"], rows[-1]["key"], run_input))
    delivered: list[str] = []
    if not pending:
        return delivered
    with get_client(sync_client=True) as client:
        for link_id, case_no, run_id, key, run_input in pending:
            state = client.read_flow_run(UUID(str(run_id))).state
            if state is None or not state.is_paused() or state.state_details.pause_key != key:
                continue
            result = client.resume_flow_run(UUID(str(run_id)), run_input=run_input)
            if str(result.status.value).upper() == "ACCEPT":
                with case_work() as session:
                    customer_answers.mark_delivered(session, link_id, now)
                delivered.append(f"{case_no}:customer_answer")
    return delivered


def sweeper_shift(clock: ShiftClock, until: dt.datetime) -> int:
    """A sweep now and on every minute until ``until``; the number of sweeps."""
    return keep_shift(DUTY, sweep_deadlines, clock=clock, until=until, log=shift_logger(), on_shift=run_on_shift)


@flow(name=DUTY, log_prints=False)
def case_deadlines() -> int:
    """Today's shift of the sweeper (the policy's day): a sweep on every minute until midnight."""
    clock = SystemClock()
    return sweeper_shift(clock, shift_until(current_policy().timezone, clock))
