"""A day of background duties leaving the Runs list readable: the sweeper and delivery act on the minute all day
from one run a day each, and the case runs carry a tag the README names."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from kefu.engine.contract import CASE_TAG, CaseRef
from kefu.engine.shift import day_end
from kefu.flows.case_deadlines import sweeper_shift
from kefu.flows.deliver_mail import delivery_shift
from kefu.models.complaints import CaseEvent
from kefu.models.people import Staff
from kefu.models.policy import Policy
from kefu.settings import get_settings
from kefu.tasks.casework import classify_case, register_case
from kefu.worktime import WorkCalendar
from tests.support.clock import SHANGHAI
from tests.support.factories import MakeComplaint
from tests.support.smtp import SMTPServer

DAY = dt.datetime(2026, 11, 24, 0, 0, tzinfo=SHANGHAI)  # Tuesday, a working day
# The shifts run through the part of the day where things come due (every pass is a real sweep or delivery,
# tens of milliseconds on a busy machine: a whole day would make the test long); ``day_end`` is where a real shift
# stops (tested below).
START, UNTIL = DAY.replace(hour=8), DAY.replace(hour=10, minute=1)


class ShiftDayClock:
    """The shifts' clock for a day that passes in seconds: ``sleep_until`` jumps to the moment asked for. It notes,
    at every wake-up, how many mails the SMTP server had received by then (what each pass delivered)."""

    def __init__(self, start: dt.datetime, smtp: SMTPServer | None = None) -> None:
        self.moment = start
        self.smtp = smtp
        self.received_by: list[tuple[dt.datetime, int]] = []

    def now(self) -> dt.datetime:
        return self.moment

    def sleep_until(self, moment: dt.datetime) -> None:
        assert moment > self.moment
        if self.smtp is not None:
            self.received_by.append((self.moment, len(self.smtp.handler.received)))
        self.moment = moment

    def delivered_at(self, count: int) -> dt.datetime:
        """The pass by the end of which ``count`` mails had arrived."""
        return next(at for at, received in self.received_by if received >= count)


@pytest.fixture
def engine(sqlite_engine: Engine) -> Engine:
    """One backend for the day-long tests (the sweeper's and delivery's SQL is tested on both elsewhere)."""
    return sqlite_engine


@pytest.fixture
def smtp_configured(smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[SMTPServer]:
    """Kefu's settings send to the test SMTP server (the delivery pass reads them, as in production)."""
    monkeypatch.setenv("KEFU_SMTP_HOST", smtp_server.settings.smtp_host)
    monkeypatch.setenv("KEFU_SMTP_PORT", str(smtp_server.settings.smtp_port))
    monkeypatch.setenv("KEFU_MAIL_SINK_ENABLED", "false")
    get_settings.cache_clear()
    yield smtp_server
    get_settings.cache_clear()


def test_a_day_of_sweeps_and_deliveries_acts_on_every_minute_from_one_run_each(
    kefu_database_url: str,
    smtp_configured: SMTPServer,
    db: Session,
    policy: Policy,
    calendar: WorkCalendar,
    ladder: dict[str, Staff],
    make_complaint: MakeComplaint,
) -> None:
    # A major case received Tuesday 08:00: the task force is due at 09:00, its warning at 80 % (08:48), the
    # supervisor told at the breach. Its acknowledgement, and that of a case received Monday 23:00, wait for the
    # customers' business window (09:00).
    major = make_complaint("搬运时受伤", received_at=DAY.replace(hour=8))
    night = make_complaint(received_at=dt.datetime(2026, 11, 23, 23, 0, tzinfo=SHANGHAI))
    for number, (case, at) in enumerate(((night, night.received_at), (major, major.received_at))):
        assert case.customer is not None
        case.customer.email = f"customer{number}@example.com"
        register_case(db, case.case_no, policy, calendar, owner_id=ladder["owner"].id, now=at)
    for role, person in ladder.items():
        person.email = f"{role}@example.com"
    classify_case(db, major.case_no, policy, calendar, severity=None, actor="staff:1", reason=None, now=START)
    db.commit()

    sweeps = sweeper_shift(ShiftDayClock(START), UNTIL)
    assert sweeps == 2 * 60 + 1  # one run of the sweeper: a sweep on every minute

    fired = {
        (e.action, e.data.get("reason") or e.data.get("level")): e.at.replace(tzinfo=dt.UTC)
        for e in db.scalars(select(CaseEvent).where(CaseEvent.complaint_id == major.id)).all()
        if e.action in {"notified", "breached", "escalated"} and e.data.get("milestone") == "task_force"
    }
    assert fired == {
        ("notified", "warning"): DAY.replace(hour=8, minute=48),
        ("breached", None): DAY.replace(hour=9),
        ("escalated", "supervisor"): DAY.replace(hour=9),
        ("notified", "escalated"): DAY.replace(hour=9),
    }  # each in the sweep of the minute it came due
    db.rollback()  # end the read: on SQLite it holds the write lock the delivery passes need

    clock = ShiftDayClock(START, smtp_configured)
    passes = delivery_shift(clock, UNTIL)
    assert passes == 2 * 60 + 1
    sent = {
        (m["X-Kefu-Type"], m["To"]): clock.delivered_at(n)
        for n, m in enumerate(smtp_configured.handler.received, start=1)
    }
    acknowledgements = {at for (kind, _), at in sent.items() if kind == "complaint_acknowledgement"}
    assert len([k for k in sent if k[0] == "complaint_acknowledgement"]) == 2
    assert acknowledgements == {DAY.replace(hour=9)}  # the window opens: both leave in the 09:00 pass
    staff = sorted(at for (kind, _), at in sent.items() if kind != "complaint_acknowledgement")
    assert staff[:2] == [DAY.replace(hour=8, minute=48), DAY.replace(hour=9)]  # queued by the sweeps, sent at once


def test_a_shift_lasts_until_the_end_of_its_day_on_the_policys_clock() -> None:
    assert day_end(DAY.replace(hour=10, minute=37), "Asia/Shanghai") == dt.datetime(2026, 11, 24, 16, 0, tzinfo=dt.UTC)
    assert day_end(DAY, "Asia/Shanghai") == dt.datetime(2026, 11, 24, 16, 0, tzinfo=dt.UTC)


def test_case_runs_carry_the_case_tag_and_background_duties_do_not() -> None:
    from kefu.deployments import all_deployments
    from kefu.engine.rest import case_run_body

    assert CASE_TAG == "kefu:case"
    assert CASE_TAG in case_run_body(CaseRef("TS-20261124-0001", dt.datetime.now(dt.UTC)))["tags"]
    served = {d.name: d for d in all_deployments()}
    assert CASE_TAG in served["complaint-case"].deployment.tags
    for name in ("case-deadlines", "deliver-mail"):
        assert CASE_TAG not in served[name].deployment.tags
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    assert f"`{CASE_TAG}`" in readme


def test_a_worker_puts_one_run_of_each_duty_on_shift_and_prefect_schedules_one_a_day(prefect_server: str) -> None:
    """A fresh install mid-day: the duties' schedule starts the next midnight, so the worker's check starts one run
    each now; checking again (another worker, the next minute) starts none. Their schedule: one run a day."""
    from kefu.deployments import SHIFT_START, all_deployments
    from kefu.engine.worker import register_deployments

    pool = f"kefu-shift-{uuid.uuid4().hex[:8]}"  # no worker polls it: the runs stay where the check put them
    duties = [d for d in all_deployments() if d.duty]
    assert sorted(d.name for d in duties) == ["case-deadlines", "deliver-mail"]
    for served in duties:
        [schedule] = served.deployment.schedules
        assert schedule.schedule.cron == SHIFT_START == "0 0 * * *"
    ids = register_deployments(duties, pool)
    asyncio.run(_check_shifts(pool, [d.name for d in duties], ids))


async def _check_shifts(pool: str, names: list[str], ids: dict[str, uuid.UUID]) -> None:
    from prefect.client.orchestration import get_client

    from kefu.engine.worker import keep_on_shift

    async with get_client() as client:
        assert sorted(await keep_on_shift(client, pool, names)) == ["case-deadlines", "deliver-mail"]
        assert await keep_on_shift(client, pool, names) == []
        tomorrow = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        for name, deployment_id in ids.items():
            runs = await client.read_flow_runs(  # the deployment is shared with other tests' pools: count this pool's
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])),
                flow_run_filter=FlowRunFilter(expected_start_time=FlowRunFilterExpectedStartTime(before_=tomorrow)),
            )
            assert len(runs) <= 2, name  # today's shift, and at most the next midnight's
