"""Group commit for the front door: one writer thread registers every complaint waiting at that moment in
one transaction, and answers each request only once its transaction is durable.

SQLite has one writer at a time, and a transaction per request made requests queue for the write lock one
commit at a time, each paying the statements of a whole registration. Here requests queue in memory instead;
the writer takes all of them (at most ``max_batch``), registers them with one set of statements
(``register_complaints``) and commits once. If anything in the batch fails, nothing of it is stored and each
complaint is registered again on its own, so one bad complaint fails only itself. A request is answered
when its transaction has committed — never before — so "received" always means stored.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from kefu.intake.service import IdempotencyKeyReused, Intake, Registration, register_complaints
from kefu.intake.validation import Submission
from kefu.models.db import session_factory, unit_of_work
from kefu.models.enums import Channel
from kefu.models.policy import Policy

log = logging.getLogger("kefu.intake.registrar")


@dataclass
class _Request:
    submission: Submission
    channel: Channel
    idempotency_key: str | None
    received_at: dt.datetime
    answer: Future[Registration] | None = None  # a thread waits for it (``submit``)
    waiter: asyncio.Future[Registration] | None = None  # a request handler awaits it (``register``)


Outcome = Registration | BaseException


def _deliver(answers: list[tuple[asyncio.Future[Registration], Outcome]]) -> None:
    """On the event loop: answer the requests of one batch (one wake-up of the loop per batch)."""
    for waiter, outcome in answers:
        if waiter.done():  # cancelled: the client hung up; the complaint is stored all the same
            continue
        if isinstance(outcome, BaseException):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)


class RegistrarClosed(Exception):
    """The front door is shutting down and takes no more complaints."""


class Registrar:
    """The front door's one writer: ``policy`` gives the policy in force for each batch (severity rules, the
    time zone of the case numbers)."""

    def __init__(self, engine: Engine, policy: Callable[[], Policy], *, max_batch: int = 64) -> None:
        self.engine, self.policy, self.max_batch = engine, policy, max_batch
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._write, name="kefu-intake-writer", daemon=True)
        self._thread.start()

    async def register(
        self, submission: Submission, channel: Channel, idempotency_key: str | None, received_at: dt.datetime
    ) -> Registration:
        """Registered and committed (or found by its key); raises what registering this complaint raised."""
        waiter: asyncio.Future[Registration] = asyncio.get_running_loop().create_future()
        self._enqueue(_Request(submission, channel, idempotency_key, received_at, waiter=waiter))
        return await waiter

    def submit(
        self, submission: Submission, channel: Channel, idempotency_key: str | None, received_at: dt.datetime
    ) -> Future[Registration]:
        """The same for a caller that is a thread: a future to wait on."""
        answer: Future[Registration] = Future()
        self._enqueue(_Request(submission, channel, idempotency_key, received_at, answer=answer))
        return answer

    def _enqueue(self, request: _Request) -> None:
        with self._lock:  # nothing is queued behind the writer's stop mark
            if self._closed:
                raise RegistrarClosed("intake is shutting down")
            self._queue.put(request)

    def rehearse(self) -> None:
        """Register a sample complaint and roll it back: the first real complaints then find every statement
        compiled and the connection open, instead of waiting for that behind the first batch (~40 ms)."""
        sample = Submission(
            name="预热", phone="13800000000", content="启动预热，不会保存。", email="warm-up@kefu.invalid"
        )
        with session_factory(self.engine)() as session:
            register_complaints(
                session,
                [Intake(sample, Channel.WEB, dt.datetime.now(dt.UTC), "kefu:warm-up")],
                policy=self.policy(),
            )
            session.rollback()

    def close(self) -> None:
        """Register what is queued, then stop the writer."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join()

    # ------------------------------------------------------------------ the writer thread
    def _write(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            # From here a thread's answer can no longer be cancelled. A request whose caller has gone (the client
            # hung up) is registered all the same: its gateway's retry with the same key gets this case.
            listening = [r.answer.set_running_or_notify_cancel() if r.answer else True for r in batch]
            try:
                outcomes = self._commit(batch)
            except Exception as exc:  # never leave the front door without its writer, nor a request unanswered
                log.exception("the intake writer failed on a batch of %d complaints", len(batch))
                outcomes = [exc] * len(batch)
            self._answer(batch, outcomes, listening)
            if stop:
                return

    def _answer(self, batch: list[_Request], outcomes: list[Outcome], listening: list[bool]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Registration], Outcome]]] = {}
        for request, outcome, waiting in zip(batch, outcomes, listening, strict=True):
            if request.waiter is not None:
                by_loop.setdefault(request.waiter.get_loop(), []).append((request.waiter, outcome))
            elif request.answer is not None and waiting:
                if isinstance(outcome, BaseException):
                    request.answer.set_exception(outcome)
                else:
                    request.answer.set_result(outcome)
        for loop, answers in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, answers)
            except RuntimeError:  # the loop is closed: nobody is waiting any more (the complaints are stored)
                log.warning("%d registered complaints could not be answered: their event loop is closed", len(answers))

    def _commit(self, batch: list[_Request]) -> list[Outcome]:
        outcomes: list[Outcome]
        try:
            outcomes = list(self._transaction(batch))
        except Exception:
            if len(batch) == 1:
                outcomes = [self._alone(batch[0])]
            else:
                # Something in the batch failed: nothing of it is stored. Register each complaint on its own,
                # so that one bad complaint (or a race with another process) only fails itself.
                log.warning("registering %d complaints together failed; registering them one by one", len(batch))
                outcomes = [self._alone(request) for request in batch]
        return outcomes

    def _transaction(self, batch: list[_Request]) -> list[Registration | IdempotencyKeyReused]:
        with unit_of_work(self.engine) as session:
            return register_complaints(
                session,
                [Intake(r.submission, r.channel, r.received_at, r.idempotency_key) for r in batch],
                policy=self.policy(),
            )

    def _alone(self, request: _Request) -> Outcome:
        for attempt in range(3):
            try:
                [outcome] = self._transaction([request])
                return outcome
            except IntegrityError as exc:
                # Another process registered the same key first (PostgreSQL): the next attempt finds it.
                if attempt == 2:
                    return exc
            except Exception as exc:
                log.exception("registering a complaint failed; nothing of it stored")
                return exc
        raise AssertionError("unreachable")
