"""The intake dispatcher: turns outbox rows into case flow runs, exactly one per complaint.

Each outbox row becomes a run of the ``complaint-case`` deployment created with the idempotency key
``complaint-case:<case_no>:<registered>`` (the moment the complaint was registered: case numbers restart with a
new database while Prefect keeps its runs): Prefect returns the same run for a repeated key, so a dispatcher that
dies between "Prefect created the run" and "the row records it" creates nothing new when it tries again.
The REST client (``kefu.engine.rest.PrefectRuns``) retries requests with exponential backoff on 5xx answers
(the SQLite Prefect server answers 503 under concurrent writers) and connection errors (a Prefect server
that is down or restarting).

The reconciler (``reconcile``; run at start, periodically, and by ``kefu intake reconcile``) repairs what
any crash can leave: complaints without an outbox row, rows without a confirmed run (it adopts the run
Prefect already has for the key, or creates it), and rows whose recorded run Prefect no longer knows.

Run it as ``python -m kefu.intake.dispatcher``; only case numbers travel to Prefect, never personal data.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import Engine, Table, bindparam, select, update

from kefu.engine.contract import CaseRef
from kefu.engine.rest import CaseRefused, PrefectRuns, PrefectUnavailable, prefect_api_url
from kefu.models.complaints import Complaint
from kefu.models.db import default_engine, reading, unit_of_work
from kefu.models.intake import IntakeOutbox

log = logging.getLogger("kefu.intake.dispatcher")

Clock = Callable[[], dt.datetime]
# A case whose run could not be created is tried again after 2, 4, 8, 16, then every 30 seconds while Prefect is
# unreachable — soon enough that no case waits minutes once it is back — and within 5 seconds when Prefect
# answered but refused it (the SQLite server's "database is locked" under load: transient, the server is up).
RETRY_CAP_SECONDS = 30
REFUSED_RETRY_CAP_SECONDS = 5


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def dispatch_once(
    engine: Engine,
    runs: PrefectRuns,
    *,
    batch: int = 200,
    chunk: int = 50,
    concurrency: int = 1,
    clock: Clock = _utcnow,
) -> int:
    """Start the case flow runs of waiting outbox rows; returns how many got their run now.

    Rows go to Prefect in chunks (one bulk request each); each chunk's outcome is recorded in one short
    transaction as soon as Prefect answers. One chunk at a time by default: on the SQLite Prefect server two
    bulk requests at once mostly refuse each other ("database is locked").
    """
    now = clock()
    with unit_of_work(reading(engine)) as session:
        pending = session.execute(
            select(IntakeOutbox.id, IntakeOutbox.case_no, Complaint.created_at)
            .join(Complaint, Complaint.id == IntakeOutbox.complaint_id)
            .where(
                IntakeOutbox.dispatched_at.is_(None),
                (IntakeOutbox.next_attempt_at.is_(None)) | (IntakeOutbox.next_attempt_at <= now),
            )
            .order_by(IntakeOutbox.id)
            .limit(batch)
        ).all()
    if not pending:
        return 0
    gate = asyncio.Semaphore(concurrency)

    async def one_chunk(rows: Sequence[tuple[int, CaseRef]]) -> int:
        started: list[tuple[int, str]] = []
        failed: list[tuple[int, BaseException]] = []
        try:
            async with gate:
                try:
                    outcome = await runs.create_case_runs([case for _, case in rows])
                except PrefectUnavailable as exc:
                    outcome = dict.fromkeys((case.case_no for _, case in rows), exc)
            for outbox_id, (case_no, _) in rows:
                result = outcome[case_no]
                if isinstance(result, BaseException):
                    failed.append((outbox_id, result))
                else:
                    started.append((outbox_id, result))
                    log.info("case %s: flow run %s", case_no, result)
            if failed:
                first = str(failed[0][1]).splitlines()[0][:300]
                log.warning("%d of %d cases have no flow run yet (%s); will retry", len(failed), len(rows), first)
        finally:
            # Recorded even when the dispatcher is being stopped (cancelled) after Prefect answered.
            await asyncio.to_thread(_record_batch, engine, started, failed, clock())
        return len(started)

    chunks = [
        [(int(i), CaseRef(str(c), made)) for i, c, made in pending[start : start + chunk]]
        for start in range(0, len(pending), chunk)
    ]
    return sum(await asyncio.gather(*(one_chunk(rows) for rows in chunks)))


_OUTBOX = cast(Table, IntakeOutbox.__table__)
_RECORD_RUN = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("row_id"))
    .values(dispatched_at=bindparam("now"), flow_run_id=bindparam("run_id"), last_error=None, next_attempt_at=None)
)


def _record_batch(
    engine: Engine, started: list[tuple[int, str]], failed: list[tuple[int, BaseException]], now: dt.datetime
) -> None:
    if not started and not failed:
        return
    with unit_of_work(engine) as session:
        if started:  # one statement for the chunk: the write lock is held for a millisecond, not fifty
            session.connection().execute(
                _RECORD_RUN, [{"row_id": outbox_id, "run_id": run_id, "now": now} for outbox_id, run_id in started]
            )
        for outbox_id, error in failed:
            row = session.get_one(IntakeOutbox, outbox_id)
            row.attempts += 1
            row.last_error = str(error)[:2000]
            cap = REFUSED_RETRY_CAP_SECONDS if isinstance(error, CaseRefused) else RETRY_CAP_SECONDS
            row.next_attempt_at = now + dt.timedelta(seconds=min(2**row.attempts, cap))


@dataclass
class ReconcileReport:
    outbox_rows_added: list[str] = field(default_factory=list)
    runs_adopted: list[str] = field(default_factory=list)
    runs_created: list[str] = field(default_factory=list)
    runs_missing: list[str] = field(default_factory=list)
    duplicates: dict[str, list[str]] = field(default_factory=dict)
    confirmed: int = 0

    def summary(self) -> str:
        return (
            f"{self.confirmed} complaints have exactly one case flow run; "
            f"outbox rows added {len(self.outbox_rows_added)}, runs adopted {len(self.runs_adopted)}, "
            f"runs created {len(self.runs_created)}, recorded runs missing in Prefect {len(self.runs_missing)}, "
            f"cases with more than one run {len(self.duplicates)}"
        )


async def reconcile(engine: Engine, runs: PrefectRuns, *, chunk: int = 50, clock: Clock = _utcnow) -> ReconcileReport:
    """Make every complaint have exactly one case flow run, whatever crashed and when."""
    report = ReconcileReport()
    with unit_of_work(engine) as session:
        orphans = session.execute(
            select(Complaint.id, Complaint.case_no, Complaint.received_at)
            .outerjoin(IntakeOutbox, IntakeOutbox.complaint_id == Complaint.id)
            .where(IntakeOutbox.id.is_(None))
        ).all()
        for complaint_id, case_no, received_at in orphans:
            session.add(IntakeOutbox(complaint_id=complaint_id, case_no=case_no, created_at=received_at))
            report.outbox_rows_added.append(case_no)
    with unit_of_work(reading(engine)) as session:
        rows = session.execute(
            select(IntakeOutbox.id, IntakeOutbox.case_no, IntakeOutbox.flow_run_id, Complaint.created_at).join(
                Complaint, Complaint.id == IntakeOutbox.complaint_id
            )
        ).all()
    found = await runs.runs_for_cases(
        [CaseRef(case_no, made) for _, case_no, _, made in rows], {case_no: run for _, case_no, run, _ in rows}
    )
    adopted: list[tuple[int, str]] = []
    to_create: list[tuple[int, CaseRef]] = []
    for outbox_id, case_no, recorded, made in rows:
        run_ids = found.get(case_no, [])
        if len(run_ids) > 1:
            report.duplicates[case_no] = run_ids
        if recorded is not None and recorded in run_ids:
            report.confirmed += 1
            continue
        if recorded is not None:
            report.runs_missing.append(case_no)
        if run_ids:
            adopted.append((outbox_id, run_ids[0]))
            report.runs_adopted.append(case_no)
            report.confirmed += 1
        else:
            to_create.append((outbox_id, CaseRef(case_no, made)))
    await asyncio.to_thread(_record_batch, engine, adopted, [], clock())
    # Missing runs are created like the dispatcher creates them: many per request (after a crash in the middle
    # of a burst there can be thousands); a case Prefect refuses in bulk is created on its own, with retries.
    for start in range(0, len(to_create), chunk):
        rows_now = to_create[start : start + chunk]
        outcome = await runs.create_case_runs([case for _, case in rows_now])
        started: list[tuple[int, str]] = []
        try:
            for outbox_id, case in rows_now:
                case_no = case.case_no
                result = outcome[case_no]
                run_id = await runs.create_case_run(case) if isinstance(result, BaseException) else result
                started.append((outbox_id, run_id))
                report.runs_created.append(case_no)
                report.confirmed += 1
        finally:
            await asyncio.to_thread(_record_batch, engine, started, [], clock())
    return report


async def serve(
    engine: Engine,
    api_url: str,
    *,
    poll_interval: float = 0.25,
    reconcile_every: float = 300.0,
    stop: asyncio.Event | None = None,
) -> None:
    """Dispatch until ``stop`` is set: reconcile first (after any crash), then poll the outbox."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    async with PrefectRuns(api_url) as runs:
        last_reconcile = -float("inf")
        while not stop.is_set():
            if loop.time() - last_reconcile >= reconcile_every:
                try:
                    report = await reconcile(engine, runs)
                    log.info("reconciled: %s", report.summary())
                    last_reconcile = loop.time()
                except PrefectUnavailable as exc:
                    log.warning("reconcile postponed: %s", exc)
            try:  # enquiries that turned out to be complaints: registered here, dispatched below
                await asyncio.to_thread(convert_enquiries, engine)
            except Exception:
                log.exception("converting enquiries to complaints failed; tried again on the next pass")
            try:  # problems routine callbacks found: registered here, dispatched below
                await asyncio.to_thread(register_callback_complaints, engine)
            except Exception:
                log.exception("registering routine callbacks' complaints failed; tried again on the next pass")
            try:
                started = await dispatch_once(engine, runs)
            except PrefectUnavailable as exc:
                log.warning("dispatch postponed: %s", exc)
                started = 0
            if started == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=poll_interval)


def convert_enquiries(engine: Engine) -> list[str]:
    """Enquiries whose step chose 转为投诉 become complaints (``kefu.intake.enquiries.convert_requested``)."""
    from kefu.intake.enquiries import convert_requested
    from kefu.models.policy import current_policy

    made = convert_requested(engine, current_policy(), _utcnow())
    for case_no in made:
        log.info("enquiry registered as complaint %s", case_no)
    return made


def register_callback_complaints(engine: Engine) -> list[str]:
    """Problems routine callbacks found become complaints (``kefu.intake.callbacks.register_wanted``)."""
    from kefu.intake.callbacks import register_wanted
    from kefu.models.policy import current_policy

    made = register_wanted(engine, current_policy())
    for case_no in made:
        log.info("routine callback's problem registered as complaint %s", case_no)
    return made


def main() -> None:
    from kefu.notifications.pii import install_log_masking

    install_log_masking()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    engine = default_engine()

    async def run() -> None:
        api = prefect_api_url()
        log.info("dispatching complaint case runs to %s", api)
        task = asyncio.ensure_future(serve(engine, api))
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            # Stop at once, even inside a retry: a half-done dispatch is repeated safely (idempotency key).
            loop.add_signal_handler(signum, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task
        log.info("dispatcher stopped")

    asyncio.run(run())


if __name__ == "__main__":
    main()
