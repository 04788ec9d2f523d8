"""The enquiry tests' database and worker (package-scoped, like the casework tests': see tests/casework/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kefu.settings import get_settings
from tests.support.databases import migrated_sqlite, use_database
from tests.support.prefect import WorkerProcess


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
    """A Kefu worker executing enquiry runs (and case runs: it waits for the case deployment to be registered)."""
    worker = WorkerProcess(
        enquiry_db_url, tmp_path_factory.mktemp("worker") / "worker.log", serve=("complaint-case", "enquiry")
    )
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
