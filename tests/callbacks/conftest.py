"""The callback tests' database and worker (package-scoped, as in ``tests/casework/conftest.py``: a package-scoped
fixture of a plugin would live for the whole session)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kefu.settings import get_settings
from tests.support.databases import migrated_sqlite, use_database
from tests.support.prefect import WorkerProcess


@pytest.fixture(scope="package")
def callback_db_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One migrated SQLite database shared by the worker and the callback flow tests, as Kefu's configured one."""
    url = migrated_sqlite(tmp_path_factory.mktemp("callbackdb") / "kefu.db")
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_database(monkeypatch, url)
        yield url
    get_settings.cache_clear()


@pytest.fixture(scope="package")
def callback_worker(
    prefect_server: str, callback_db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """A Kefu worker executing the callback runs against the callback tests' database."""
    worker = WorkerProcess(callback_db_url, tmp_path_factory.mktemp("worker") / "worker.log")
    # The case flow (the worker waits for its deployment), the routine callback and quality review runs; not the
    # scheduled flows' schedules (the tests run those flows themselves, at a chosen time).
    worker.env["KEFU_SERVE_ONLY"] = '["complaint-case", "routine-callback", "quality-review"]'
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
