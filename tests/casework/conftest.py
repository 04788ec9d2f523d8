"""The casework tests' runner. Its fixture stays here, not in ``tests.support``: it is package-scoped, and a
package-scoped fixture of a plugin would live for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.prefect import RunnerProcess


@pytest.fixture(scope="package")
def case_runner(
    prefect_server: str, case_db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunnerProcess]:
    """The runner serving the case flow, for the casework tests (tests that crash it start it again).

    Package-scoped: it stops before other tests create case runs of their own on the shared server, which it
    would otherwise take up against the casework database (and retry, failing to find the case)."""
    runner = RunnerProcess(case_db_url, tmp_path_factory.mktemp("runner") / "runner.log")
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()
