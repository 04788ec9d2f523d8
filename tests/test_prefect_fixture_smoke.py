"""The shared Prefect server answers and runs a deployment of Kefu (the calendar check)."""

from __future__ import annotations

import httpx


def test_the_test_prefect_server_is_healthy(prefect_server: str) -> None:
    assert httpx.get(f"{prefect_server}/health", timeout=30).json() is True
