"""Fixtures of the casework tests: a staff ladder and complaints created straight in the database."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from kefu.models.complaints import Complaint
from kefu.models.enums import Channel, ComplaintStatus, CustomerTier, Role, Severity
from kefu.models.people import Customer, Staff
from tests.prefect_fixtures import Restartable

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture
def ladder(db: Session) -> dict[str, Staff]:
    senior = Staff(name="高经理")
    senior.grant(Role.SENIOR_MANAGER)
    supervisor = Staff(name="主管")
    supervisor.grant(Role.SUPERVISOR)
    db.add_all([senior, supervisor])
    db.flush()
    agent = Staff(name="客服", supervisor_id=supervisor.id)
    agent.grant(Role.AGENT)
    db.add(agent)
    db.commit()
    return {"owner": agent, "supervisor": supervisor, "senior_manager": senior}


MakeComplaint = Callable[..., Complaint]


@pytest.fixture
def make_complaint(db: Session) -> MakeComplaint:
    counter = iter(range(1, 10_000))

    def make(
        content: str = "快递晚到两天",
        *,
        received_at: dt.datetime = dt.datetime(2026, 11, 2, 10, 0, tzinfo=SHANGHAI),
        amount: str = "100",
        key: bool = False,
        urgent: bool = False,
    ) -> Complaint:
        customer = Customer(name="客户", tier=CustomerTier.KEY if key else CustomerTier.GENERAL)
        complaint = Complaint(
            case_no=f"KF-T-{next(counter):04d}",
            channel=Channel.HOTLINE,
            received_at=received_at,
            severity=Severity.GENERAL,
            status=ComplaintStatus.REGISTERED,
            urgent=urgent,
            customer=customer,
            order_amount=Decimal(amount),
            content=content,
        )
        db.add(complaint)
        db.commit()
        return complaint

    return make


@pytest.fixture(scope="package")
def case_db_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One migrated SQLite database shared by the workers and the lifecycle tests."""
    from kefu.models.db import make_engine
    from kefu.models.migrate import upgrade
    from kefu.settings import get_settings

    path = tmp_path_factory.mktemp("casedb") / "kefu.db"
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    saved = os.environ.get("KEFU_DATABASE_URL")
    os.environ["KEFU_DATABASE_URL"] = url
    get_settings.cache_clear()
    try:
        yield url
    finally:
        if saved is None:
            os.environ.pop("KEFU_DATABASE_URL", None)
        else:
            os.environ["KEFU_DATABASE_URL"] = saved
        get_settings.cache_clear()


class WorkerProcess(Restartable):
    """A Kefu worker (``kefu worker``) on the test DB and server; can be killed and restarted."""

    def __init__(self, db_url: str, log_path: Path, *, register: bool = True) -> None:
        self.log_path = log_path
        self.register = register
        self.env = {
            **os.environ,
            "KEFU_PREFECT_API_URL": os.environ["PREFECT_API_URL"],
            "KEFU_WORKER_POLL_SECONDS": "0.2",
            "KEFU_DATABASE_URL": db_url,
            "KEFU_SERVE_ONLY": '["complaint-case"]',  # no per-minute schedules loading the shared test server
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [sys.executable, "-m", "kefu", "worker", *([] if self.register else ["--no-register"])]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        _wait_deployment(self.process, self.log_path)

    @property
    def name(self) -> str:
        """Its name in the work pool and the mark on the runs it claims."""
        from kefu.engine.worker import claim_mark

        assert self.process is not None
        return claim_mark(self.process.pid)


@pytest.fixture(scope="package")
def case_worker(
    prefect_server: str, case_db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """A Kefu worker executing the case flow, for the casework tests (tests that crash it start it again).

    Package-scoped: it stops before other tests create case runs of their own on the shared server, which it
    would otherwise take up against the casework database (and retry, failing to find the case)."""
    worker = WorkerProcess(case_db_url, tmp_path_factory.mktemp("worker") / "worker.log")
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def _wait_deployment(process: subprocess.Popen[bytes], log_path: object, timeout: float = 60.0) -> None:
    """The worker registers the deployments at start-up: poll the API (bounded) until the case one exists."""
    from prefect.client.orchestration import get_client

    from kefu.engine.contract import COMPLAINT_CASE_DEPLOYMENT

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the worker exited; see {log_path}")
            try:
                client.read_deployment_by_name(COMPLAINT_CASE_DEPLOYMENT)
                return
            except Exception:
                time.sleep(0.5)
    raise RuntimeError(f"the worker never registered its deployments; see {log_path}")
