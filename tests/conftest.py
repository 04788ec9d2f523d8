"""The test suite's fixtures and helpers live in ``tests.support`` (see its docstring); loaded here as plugins."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("tests.support")

pytest_plugins = [
    "tests.support.clock",
    "tests.support.databases",
    "tests.support.desk",
    "tests.support.factories",
    "tests.support.intake",
    "tests.support.prefect",
    "tests.support.smtp",
]
