"""How a ``kefu`` command reaches the running Prefect server: through Kefu's settings, never Prefect's own.

Without ``PREFECT_API_URL`` in its environment a Prefect client silently starts a temporary local server of its
own and talks to that: a step submitted there reaches no case. Every command that talks to Prefect therefore
enters ``kefu_prefect()`` first. It checks that the server at ``KEFU_PREFECT_API_URL`` answers (else
``PrefectDown``, one line for the person: nothing was started, nothing was sent), sets ``PREFECT_API_URL`` in the
environment (for Prefect imported later and for child processes) and in Prefect's settings context (for Prefect
imported earlier), and leaves them so while the command runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx

from kefu.settings import get_settings

HEALTH_TIMEOUT_SECONDS = 5.0


class PrefectDown(Exception):
    """The Prefect server at Kefu's API URL does not answer (the message says where, and what to check)."""


def prefect_api_url() -> str:
    """The Prefect API every Kefu process talks to: ``KEFU_PREFECT_API_URL`` (default: the server ``make up``
    starts). ``kefu up`` hands the same URL to its children as ``PREFECT_API_URL``."""
    return get_settings().prefect_api_url


def ensure_answers(api_url: str) -> None:
    """Raise ``PrefectDown`` unless the server at ``api_url`` answers its health check."""
    problem = f"the Prefect server at {api_url} does not answer; is 'make up' running?"
    try:
        response = httpx.get(f"{api_url.rstrip('/')}/health", timeout=HEALTH_TIMEOUT_SECONDS)
    except httpx.HTTPError:
        raise PrefectDown(problem) from None
    if response.status_code != 200:
        raise PrefectDown(problem)


@contextmanager
def kefu_prefect(*, check: bool = True, extra: Mapping[str, Any] | None = None) -> Iterator[str]:
    """Point Prefect's client at Kefu's Prefect server for the enclosed code; yields the API URL.

    ``check``: first make sure the server answers (``PrefectDown`` otherwise). ``extra``: more Prefect settings,
    by environment variable name (e.g. ``{"PREFECT_WORKER_QUERY_SECONDS": 1.0}``), set the same way.
    """
    api_url = prefect_api_url()
    if check:
        ensure_answers(api_url)
    values: dict[str, Any] = {"PREFECT_API_URL": api_url, **(extra or {})}
    # Before Prefect is imported: its settings come from the environment.
    os.environ.update({name: str(value) for name, value in values.items()})
    import prefect.settings
    from prefect.settings import temporary_settings

    updates = {getattr(prefect.settings, name): value for name, value in values.items()}
    with temporary_settings(updates=updates):  # also when Prefect was imported before this command ran
        yield api_url
