"""Recovery after the Prefect database is lost: every open case gets its run back, waiting where it waited.

Kefu's database is the system of record. Each completed human step is a case event whose action is the step's
name, whose ``key`` is the suspend key (``<step key>-<round>``) and whose data is the whole answer
(``CaseRecord.completed`` stores ``answer.model_dump()``); a refused answer is a ``step_refused`` event under its
key carrying the answer (older cases recorded it as completed too). That is everything a case run needs to find
its way back: a case run re-runs from the top and replays every step whose answer it already has as a run input
under Prefect's key for that suspend (``suspended-<key>-response``), so a new run given those answers before it
starts walks through the same steps, the same refusals and the same rounds (every side effect keyed, nothing is
written twice) and suspends at the first step without an answer: the one the lost run waited at.

For each open case ``recover`` therefore:

1. finds the case's run by the dispatcher's idempotency key (the case number and the moment the complaint was
   registered; an empty Prefect database has none), else creates it *Paused*, so no worker starts it before it
   has its answers;
2. saves every recorded answer the run lacks as a run input (a key the run has is left alone);
3. if it gave the run anything and the run is Paused (created here, or waiting at an earlier step, e.g. a run
   the reconciler created after the loss without answers), schedules it now: a worker replays it;
4. records the run on the case's outbox row and a ``recovered`` case event naming the run, which ``kefu step``
   then resumes (the step's "waiting" event still names the lost run).

A run that already has every answer is left alone, so running it twice creates nothing new. Closed cases are
skipped. An answer given in Prefect but not yet recorded by Kefu when Prefect was lost is not in Kefu's
database: the run waits for that step again, and the report says which step each case waits at.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from kefu.engine.contract import CaseRef
from kefu.engine.rest import PrefectRuns
from kefu.engine.waiting import answer_key
from kefu.flows.complaint_case import STEPS
from kefu.models.complaints import CaseEvent, Complaint
from kefu.models.db import unit_of_work
from kefu.models.enums import ComplaintStatus
from kefu.models.intake import IntakeOutbox
from kefu.tasks.casework import RECOVERED, record_event, waiting_steps

ANSWER_PREFIX = "suspended-"  # the prefix of every suspend's run-input keys (see kefu.engine.prefect_private)
HELD_MESSAGE = "kefu recover: 正在恢复已记录的答复，稍后自动继续"
RELEASED_MESSAGE = "kefu recover: 已恢复已记录的答复，从头重放至等待的步骤"


@dataclass
class CaseRecovery:
    case_no: str
    run_id: str
    outcome: str  # "created", "fed" (an existing run got answers), "intact" (nothing to do), "left" (final run)
    answers_given: int
    answers_recorded: int
    waits_at: str | None
    state: str = ""

    def line(self) -> str:
        waits = f"waits at {self.waits_at}" if self.waits_at else "waits at no step yet"
        if self.outcome == "created":
            return f"{self.case_no}: run {self.run_id} created with {self.answers_given} recorded answers; {waits}"
        if self.outcome == "fed":
            return (
                f"{self.case_no}: run {self.run_id} existed ({self.state}); given {self.answers_given} missing "
                f"answers of {self.answers_recorded} and replayed; {waits}"
            )
        if self.outcome == "left":
            return f"{self.case_no}: run {self.run_id} is {self.state} although the case is open; left as it is"
        return (
            f"{self.case_no}: run {self.run_id} has all {self.answers_recorded} answers ({self.state}); nothing to do"
        )


@dataclass
class RecoveryReport:
    cases: list[CaseRecovery] = field(default_factory=list)
    closed_skipped: int = 0

    def summary(self) -> str:
        counts = {o: sum(1 for c in self.cases if c.outcome == o) for o in ("created", "fed", "intact", "left")}
        return (
            f"{len(self.cases)} open cases: runs created {counts['created']}, runs given missing answers "
            f"{counts['fed']}, already complete {counts['intact']}, finished runs left alone {counts['left']}; "
            f"closed cases skipped {self.closed_skipped}"
        )


_ROUND = re.compile(r"-(\d+)$")


def key_of_refused(event: CaseEvent, keys_of: dict[str, str]) -> str | None:
    """The suspend key of a refusal that carries its answer (refusals recorded before answers were kept: none)."""
    key, step = str(event.data.get("key", "")), event.data.get("step")
    match = _ROUND.search(key)
    if "answer" not in event.data or step not in keys_of or match is None or key[: match.start()] != keys_of[step]:
        return None
    return key


def recorded_answers(session: Any, complaint_id: int) -> dict[str, dict[str, Any]]:
    """Every answered step's answer by its suspend key, completed or refused, from the case events (oldest first)."""
    keys_of = {step.name: step.key for step in STEPS.values()}
    answers: dict[str, dict[str, Any]] = {}
    events = session.scalars(
        select(CaseEvent)
        .where(CaseEvent.complaint_id == complaint_id, CaseEvent.action.in_([*keys_of, "step_refused"]))
        .order_by(CaseEvent.id)
    )
    for event in events:
        if event.action == "step_refused":
            if key_of_refused(event, keys_of) is not None:
                answers[str(event.data["key"])] = dict(event.data["answer"])
            continue
        key = str(event.data.get("key", ""))
        match = _ROUND.search(key)
        if match is None or key[: match.start()] != keys_of[event.action]:
            continue
        answers[key] = {k: v for k, v in event.data.items() if k != "key"}
    return answers


def _open_cases(engine: Engine, only: list[str] | None) -> tuple[list[tuple[int, CaseRef, str | None]], int]:
    """The open cases (id, case, the run the outbox recorded) and how many closed ones were left out."""
    with unit_of_work(engine) as session:
        query = (
            select(Complaint.id, Complaint.case_no, Complaint.created_at, Complaint.status, IntakeOutbox.flow_run_id)
            .outerjoin(IntakeOutbox, IntakeOutbox.complaint_id == Complaint.id)
            .order_by(Complaint.id)
        )
        if only:
            query = query.where(Complaint.case_no.in_(only))
        rows = session.execute(query).all()
    open_cases = [
        (int(i), CaseRef(str(c), made), run) for i, c, made, status, run in rows if status is not ComplaintStatus.CLOSED
    ]
    return open_cases, len(rows) - len(open_cases)


async def recover(engine: Engine, runs: PrefectRuns, *, cases: list[str] | None = None) -> RecoveryReport:
    """Give every open case (or the ones named) its run back, waiting at the step it waited at."""
    report = RecoveryReport()
    open_cases, report.closed_skipped = await asyncio.to_thread(_open_cases, engine, cases)
    found = await runs.runs_for_cases([case for _, case, _ in open_cases], {c.case_no: r for _, c, r in open_cases})
    for complaint_id, case, _ in open_cases:
        report.cases.append(await _recover_case(engine, runs, complaint_id, case, found.get(case.case_no, [])))
    return report


async def _recover_case(
    engine: Engine, runs: PrefectRuns, complaint_id: int, case: CaseRef, run_ids: list[str]
) -> CaseRecovery:
    case_no = case.case_no

    def read() -> tuple[dict[str, dict[str, Any]], str | None]:
        with unit_of_work(engine) as session:
            waiting = waiting_steps(session, case_no)
            return recorded_answers(session, complaint_id), (
                f"{waiting[-1]['step']} ({waiting[-1]['key']})" if waiting else None
            )

    answers, waits_at = await asyncio.to_thread(read)
    if run_ids:
        run_id = run_ids[0]
        state = (await runs.read_run(run_id)).get("state") or {}
        state_type, state_name = str(state.get("type", "")), str(state.get("name", ""))
        held = state_type == "PAUSED" and state.get("message") == HELD_MESSAGE  # an earlier recover stopped half-way
        pause_key = str((state.get("state_details") or {}).get("pause_key") or "")
        outcome = "fed"
    else:
        run_id = await runs.create_held_case_run(case, HELD_MESSAGE)
        state_type, state_name, held, pause_key, outcome = "PAUSED", "Paused", True, "", "created"
    if state_type in ("COMPLETED", "FAILED", "CANCELLED", "CRASHED"):
        return CaseRecovery(case_no, run_id, "left", 0, len(answers), waits_at, state_name)
    has = await runs.run_input_keys(run_id, ANSWER_PREFIX)
    missing = {key: answer for key, answer in answers.items() if answer_key(key) not in has}
    # Suspended at a step whose answer it has (given while it was running, by an earlier recover): let it replay.
    stuck = state_type == "PAUSED" and bool(pause_key) and pause_key in answers
    if not missing and not held and not stuck:
        return CaseRecovery(case_no, run_id, "intact", 0, len(answers), waits_at, state_name)
    for key, answer in missing.items():
        await runs.add_run_input(run_id, answer_key(key), json.dumps(answer))
    if state_type == "PAUSED":  # held here, or waiting at an earlier step than the recorded answers reach
        await runs.schedule_now(run_id, RELEASED_MESSAGE)
    await asyncio.to_thread(_record, engine, complaint_id, case_no, run_id, sorted(missing), waits_at)
    return CaseRecovery(case_no, run_id, outcome, len(missing), len(answers), waits_at, state_name)


def _record(
    engine: Engine, complaint_id: int, case_no: str, run_id: str, given: list[str], waits_at: str | None
) -> None:
    now = dt.datetime.now(dt.UTC)
    with unit_of_work(engine) as session:
        row = session.scalars(select(IntakeOutbox).where(IntakeOutbox.complaint_id == complaint_id)).one_or_none()
        if row is None:
            row = IntakeOutbox(complaint_id=complaint_id, case_no=case_no, created_at=now)
            session.add(row)
        row.flow_run_id, row.dispatched_at, row.next_attempt_at, row.last_error = run_id, now, None, None
        complaint = session.get_one(Complaint, complaint_id)
        record_event(
            session,
            complaint,
            RECOVERED,
            f"recover:{run_id}:{len(given)}:{given[-1] if given else ''}",
            "system",
            now,
            flow_run_id=run_id,
            answers_given=given,
            waits_at=waits_at,
        )
