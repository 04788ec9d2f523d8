"""Registering complaints in groups (the intake's group commit) keeps every promise of registering them one by
one: one case per idempotency key, one customer per person, a bad complaint fails only itself, and a request
is answered only once its complaint is stored."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time
from concurrent.futures import Future
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.orm import Session

from kefu.intake.app import create_app
from kefu.intake.registrar import Registrar
from kefu.intake.service import IdempotencyKeyReused, Intake, Registration, register_complaints
from kefu.intake.validation import Submission
from kefu.models import Channel, Complaint, Customer, CustomerPhone, CustomerTier
from kefu.models.db import make_engine, unit_of_work
from kefu.models.intake import IntakeIdempotencyKey, IntakeOutbox
from kefu.models.migrate import upgrade
from kefu.models.policy import Policy
from kefu.worktime import WorkCalendar, first_commitment, plan_complaint_milestones
from tests.support.clock import RECEIVED, FixedClock
from tests.support.samples import AUTH, complaint_json, intake_settings

CONTENT = "包裹外箱破损，里面的杯子碎了，希望赔偿。"


def submission(
    phone: str = "13800138000", *, name: str = "张三", content: str = CONTENT, email: str | None = None
) -> Submission:
    return Submission(name=name, phone=phone, content=content, email=email)


def register(engine: Engine, policy: Policy, intakes: list[Intake]) -> list[Registration | IdempotencyKeyReused]:
    with unit_of_work(engine) as session:
        return register_complaints(session, intakes, policy=policy)


def count(engine: Engine, table: type[object]) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(table)) or 0  # type: ignore[arg-type]


def hold_the_write_lock(engine: Engine) -> Connection:
    """Another writer's open transaction that registrations have to wait for, until it is closed."""
    holder = engine.connect()
    holder.begin()  # SQLite: Kefu's BEGIN IMMEDIATE takes the write lock
    if engine.dialect.name == "postgresql":  # registrations wait at the case-number counter
        holder.execute(text("LOCK TABLE intake_case_counters IN EXCLUSIVE MODE"))
    return holder


def _taken(answer: Future[Registration]) -> None:
    deadline = time.monotonic() + 30
    while not answer.running():  # the writer took it (a thread gives no event to await)
        assert time.monotonic() < deadline
        time.sleep(0.001)


def test_a_key_repeated_inside_one_batch_makes_one_case(engine: Engine, policy: Policy) -> None:
    first, retried, reused = register(
        engine,
        policy,
        [
            Intake(submission(), Channel.HOTLINE, RECEIVED, "gw:1"),
            Intake(submission(), Channel.HOTLINE, RECEIVED, "gw:1"),
            Intake(submission(content="另一件事：快递员态度恶劣。"), Channel.HOTLINE, RECEIVED, "gw:1"),
        ],
    )
    assert isinstance(first, Registration) and first.created
    assert isinstance(retried, Registration) and not retried.created and retried.case_no == first.case_no
    assert isinstance(reused, IdempotencyKeyReused) and reused.case_no == first.case_no
    assert count(engine, Complaint) == 1 and count(engine, IntakeIdempotencyKey) == 1


def test_one_person_in_one_batch_is_one_customer_with_every_phone_indexed(engine: Engine, policy: Policy) -> None:
    results = register(
        engine,
        policy,
        [
            Intake(submission(email="zhang.san@example.com"), Channel.WEB, RECEIVED),
            Intake(submission(), Channel.HOTLINE, RECEIVED),  # same phone
            Intake(submission("010-62345678", email="Zhang.San@Example.com"), Channel.EMAIL, RECEIVED),  # same e-mail
            Intake(submission("13900139000", name="李四"), Channel.IM, RECEIVED),
        ],
    )
    assert [r.case_no for r in results if isinstance(r, Registration)] == [f"KF20261123-0000{i}" for i in range(1, 5)]
    with Session(engine) as session:
        customers = session.scalars(select(Customer).order_by(Customer.id)).all()
        assert [(c.name, c.phones) for c in customers] == [
            ("张三", ["13800138000", "010-62345678"]),
            ("李四", ["13900139000"]),
        ]
        index = dict(session.execute(select(CustomerPhone.phone, CustomerPhone.customer_id)).tuples().all())
    assert index == {"13800138000": customers[0].id, "010-62345678": customers[0].id, "13900139000": customers[1].id}
    # The next batch finds them again by the phone added last time.
    [again] = register(engine, policy, [Intake(submission("010-62345678"), Channel.HOTLINE, RECEIVED)])
    assert isinstance(again, Registration)
    assert count(engine, Customer) == 2


def test_a_key_account_set_up_by_staff_is_recognised_by_phone_at_intake(engine: Engine, policy: Policy) -> None:
    with unit_of_work(engine) as session:  # through the ORM, as onboarding does
        session.add(Customer(name="华东仓储有限公司", tier=CustomerTier.KEY, phones=["021-55556666"]))
    [registration] = register(engine, policy, [Intake(submission("021-55556666"), Channel.HOTLINE, RECEIVED)])
    assert isinstance(registration, Registration) and registration.key_account
    assert registration.severity is policy.complaints.propose_severity(CONTENT, None, key_account=True, urgent=False)[0]
    assert count(engine, Customer) == 1


def test_customers_from_before_the_phone_index_are_found_by_phone(tmp_path: Path, policy: Policy) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0004")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO customers (tier, name, phones, created_at) "
                "VALUES ('key', '老客户', '[\"13700137000\", \"0755-88889999\"]', '2026-01-05 00:00:00')"
            )
        )
    upgrade(engine)
    [registration] = register(engine, policy, [Intake(submission("0755-88889999"), Channel.HOTLINE, RECEIVED)])
    assert isinstance(registration, Registration) and registration.key_account
    assert count(engine, Customer) == 1
    engine.dispose()


def test_a_complaint_that_fails_in_a_batch_fails_alone_and_answers_wait_for_the_commit(
    engine: Engine, policy: Policy
) -> None:
    registrar = Registrar(engine, lambda: policy)
    try:
        holder = hold_the_write_lock(engine)
        phones = (f"1390013{i:04d}" for i in itertools.count())
        answers: list[Future[Registration]] = [
            registrar.submit(submission(next(phones)), Channel.HOTLINE, f"gw:{i}", RECEIVED) for i in range(3)
        ]
        naive = RECEIVED.replace(tzinfo=None)  # a programming error: refused, stored nowhere
        answers.append(registrar.submit(submission(next(phones)), Channel.HOTLINE, "gw:bad", naive))
        answers += [registrar.submit(submission(next(phones)), Channel.HOTLINE, f"gw:{i}", RECEIVED) for i in (3, 4)]
        assert not any(a.done() for a in answers)  # nothing is answered before it is stored
        holder.close()  # rolls back: the writer goes on
        with pytest.raises(ValueError, match="timezone-aware"):
            answers[3].result(timeout=60)
        stored = [a.result(timeout=60) for i, a in enumerate(answers) if i != 3]
    finally:
        registrar.close()
    assert all(r.created for r in stored)
    with Session(engine) as session:
        assert sorted(session.scalars(select(Complaint.case_no))) == sorted(r.case_no for r in stored)
        assert session.scalar(select(func.count()).select_from(IntakeOutbox)) == 5
        assert "gw:bad" not in set(session.scalars(select(IntakeIdempotencyKey.key)))


def test_a_complaint_whose_caller_hung_up_is_stored_and_the_writer_goes_on(engine: Engine, policy: Policy) -> None:
    registrar = Registrar(engine, lambda: policy)
    try:
        holder = hold_the_write_lock(engine)
        first = registrar.submit(submission("13600135999"), Channel.IM, "im:first", RECEIVED)
        _taken(first)  # the writer took it and waits for the lock
        gone = registrar.submit(submission("13600136000"), Channel.IM, "im:hung-up", RECEIVED)
        assert gone.cancel()  # what asyncio does to the answer when the client disconnects
        holder.close()  # rolls back: the writer goes on
        after = registrar.submit(submission("13600136001"), Channel.IM, "im:next", RECEIVED).result(timeout=60)
    finally:
        registrar.close()
    assert after.created and first.result().created
    with Session(engine) as session:
        assert set(session.scalars(select(IntakeIdempotencyKey.key))) == {"im:first", "im:hung-up", "im:next"}


def test_two_intake_processes_registering_one_person_at_once_make_one_customer(engine: Engine, policy: Policy) -> None:
    # Two registrars = two intake processes (uvicorn workers), each with its own writer and transaction.
    first, second = (Registrar(engine, lambda: policy) for _ in range(2))
    try:
        holder = hold_the_write_lock(engine)
        answers = []
        for registrar, key in ((first, "a"), (second, "b")):
            answers.append(registrar.submit(submission("13500135000"), Channel.HOTLINE, key, RECEIVED))
            _taken(answers[-1])
        holder.close()  # rolls back: the writer goes on
        results = [a.result(timeout=60) for a in answers]
    finally:
        first.close()
        second.close()
    assert len({r.case_no for r in results}) == 2
    assert count(engine, Customer) == 1


async def test_a_request_handler_cancelled_while_waiting_leaves_its_complaint_stored(
    engine: Engine, policy: Policy
) -> None:
    registrar = Registrar(engine, lambda: policy)
    try:
        holder = hold_the_write_lock(engine)
        waiting = asyncio.create_task(registrar.register(submission("13600136002"), Channel.WEB, "web:gone", RECEIVED))
        await asyncio.sleep(0)  # let the handler queue its complaint
        waiting.cancel()  # the client hung up: uvicorn cancels the handler
        holder.close()  # rolls back: the writer goes on
        after = await registrar.register(submission("13600136003"), Channel.WEB, "web:next", RECEIVED)
    finally:
        await asyncio.to_thread(registrar.close)
    assert waiting.cancelled() and after.created
    with Session(engine) as session:
        assert set(session.scalars(select(IntakeIdempotencyKey.key))) == {"web:gone", "web:next"}


def test_queued_complaints_are_stored_and_answered_when_intake_shuts_down(engine: Engine, policy: Policy) -> None:
    registrar = Registrar(engine, lambda: policy)
    answers = [registrar.submit(submission(f"1380013{i:04d}"), Channel.WEB, None, RECEIVED) for i in range(20)]
    registrar.close()
    assert all(a.done() and a.result().created for a in answers)
    assert count(engine, Complaint) == 20


@pytest.mark.parametrize("key_account", [False, True])
def test_the_first_commitment_is_the_plans_earliest_customer_facing_deadline(
    policy: Policy, calendar: WorkCalendar, key_account: bool
) -> None:
    # Every severity, received at every hour of the weeks around the National Day holiday and its make-up days.
    start = dt.datetime(2026, 9, 24, tzinfo=dt.UTC)
    for hour in range(0, 24 * 21, 5):
        received = start + dt.timedelta(hours=hour)
        for severity in policy.complaints.severities:
            plan = plan_complaint_milestones(policy, calendar, severity, received, key_account=key_account)
            facing = [
                m for m in plan.milestones if policy.complaints.customer_rule(severity, m.id) and m.due_at is not None
            ]
            fast = first_commitment(policy, calendar, severity, received, key_account=key_account)
            if not facing:
                assert fast is None
                continue
            earliest = min(facing, key=lambda m: m.due_at or received)
            assert fast is not None
            assert (fast.milestone, fast.due_at) == (earliest.id, earliest.due_at), received


async def test_the_start_up_rehearsal_leaves_no_trace(engine: Engine, clock: FixedClock) -> None:
    app = create_app(intake_settings(), engine, clock=clock)
    async with (
        app.router.lifespan_context(app),  # what uvicorn runs at start and at shutdown
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake.test") as client,
    ):
        response = await client.post("/api/v1/complaints", json=complaint_json(phone="13800000000"), headers=AUTH)
    assert response.status_code == 201
    assert response.json()["case_no"] == "KF20261123-00001"  # the rehearsal took no number
    with Session(engine) as session:
        assert [c.name for c in session.scalars(select(Customer))] == ["张三"]  # and made no customer
        assert session.scalar(select(func.count()).select_from(IntakeIdempotencyKey)) == 0
