"""The casework tests' database and worker. Their fixtures stay here, not in ``tests.support``: they are
package-scoped, and a package-scoped fixture of a plugin would live for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kefu.settings import get_settings
from tests.support.databases import migrated_sqlite, use_database
from tests.support.prefect import WorkerProcess


@pytest.fixture(scope="package")
def case_db_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One migrated SQLite database shared by the workers and the lifecycle tests, as Kefu's configured database
    (``KEFU_DATABASE_URL``) for the casework tests only: a session-wide setting leaked into later tests."""
    url = migrated_sqlite(tmp_path_factory.mktemp("casedb") / "kefu.db")
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_database(monkeypatch, url)
        yield url
    get_settings.cache_clear()


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
