"""The enquiry tests' database and worker (package-scoped, like the casework tests': see tests/casework/conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from prefect.exceptions import ObjectNotFound

from kefu.flows.enquiry import ENQUIRY_DEPLOYMENT
from kefu.flows.feedback import FEEDBACK_DEPLOYMENT
from kefu.settings import get_settings
from tests.support.databases import migrated_sqlite, use_database
from tests.support.prefect import WorkerProcess


def wait_registered(name: str, timeout: float = 60) -> None:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            try:
                client.read_deployment_by_name(name)
                return
            except ObjectNotFound:
                assert time.monotonic() < deadline, f"the worker never registered {name}"
                time.sleep(0.3)  # another process registers it: polling the API is the only signal


@pytest.fixture(scope="package")
def enquiry_db_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = migrated_sqlite(tmp_path_factory.mktemp("enquirydb") / "kefu.db")
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_database(monkeypatch, url)
        yield url
    get_settings.cache_clear()


@pytest.fixture(scope="package")
def enquiry_worker(
    prefect_server: str, enquiry_db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """A Kefu worker executing enquiry and feedback runs (and case runs: it waits for the case deployment to be
    registered)."""
    worker = WorkerProcess(
        enquiry_db_url,
        tmp_path_factory.mktemp("worker") / "worker.log",
        serve=("complaint-case", "enquiry", "feedback"),
    )
    worker.start()
    wait_registered(ENQUIRY_DEPLOYMENT)  # the worker waits for the case deployment; the enquiry one comes after it
    wait_registered(FEEDBACK_DEPLOYMENT)
    try:
        yield worker
    finally:
        worker.stop()
