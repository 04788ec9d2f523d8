"""How a ``kefu`` command reaches the running Prefect server: through Kefu's settings, never Prefect's own.

Without ``PREFECT_API_URL`` in its environment a Prefect client silently starts a temporary local server of its
own and talks to that: a step submitted there reaches no case. Every command that talks to Prefect therefore
enters ``kefu_prefect()`` first. It checks that the server at ``KEFU_PREFECT_API_URL`` answers (else
``PrefectDown``, one line for the person: nothing was started, nothing was sent), sets ``PREFECT_API_URL`` in the
environment (for Prefect imported later and for child processes) and in Prefect's settings context (for Prefect
imported earlier), and leaves them so while the command runs.

The Prefect server requires its API auth string (``PREFECT_SERVER_API_AUTH_STRING``) and CSRF tokens on every
change: nothing reaches it around the operators' entrance (``kefu.desk``). Kefu's processes know the string
(``KEFU_PREFECT_AUTH_STRING``, else the file ``kefu up`` generates once under ``var/``, mode 0600) and send it:
Prefect's own client as ``PREFECT_API_AUTH_STRING`` (set by ``kefu_prefect``), Kefu's plain httpx clients through
``PrefectAuth``.
"""

from __future__ import annotations

import base64
import os
import secrets
import uuid
from collections.abc import Generator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx

from kefu.settings import Settings, get_settings

HEALTH_TIMEOUT_SECONDS = 5.0


class PrefectDown(Exception):
    """The Prefect server at Kefu's API URL does not answer (the message says where, and what to check)."""


def prefect_api_url() -> str:
    """The Prefect API every Kefu process talks to: ``KEFU_PREFECT_API_URL`` (default: the server ``make up``
    starts). ``kefu up`` hands the same URL to its children as ``PREFECT_API_URL``."""
    return get_settings().prefect_api_url


def prefect_auth_string(settings: Settings | None = None, *, create: bool = False) -> str | None:
    """The Prefect server's API auth string: ``KEFU_PREFECT_AUTH_STRING``, else the one kept in
    ``var_dir/prefect-auth``; with ``create`` (``kefu up``) that file is made on first use (random, mode 0600)."""
    settings = settings or get_settings()
    if settings.prefect_auth_string is not None:
        return settings.prefect_auth_string.get_secret_value()
    path = settings.prefect_auth_file
    if path.exists():
        return path.read_text(encoding="utf-8").strip() or None
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    value = f"kefu:{secrets.token_urlsafe(32)}"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(value + "\n")
    return value


def basic_header(auth_string: str) -> str:
    """The ``Authorization`` value Prefect's server checks against its auth string."""
    return "Basic " + base64.b64encode(auth_string.encode()).decode()


class PrefectAuth(httpx.Auth):
    """For Kefu's plain httpx clients of the Prefect API: the auth string on every request, and a CSRF token
    (fetched once per client, again when the server refuses it) on every change."""

    requires_response_body = True
    CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

    def __init__(self, auth_string: str | None) -> None:
        self.auth_string = auth_string
        self.client_id = str(uuid.uuid4())
        self.token: str | None = None
        self.csrf = True  # until the server says its CSRF protection is off

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.auth_string is not None:
            request.headers["Authorization"] = basic_header(self.auth_string)
        if request.method not in self.CHANGES or not self.csrf:
            yield request
            return
        if self.token is None:
            yield from self._fetch_token(request)
        if self.token is not None:
            request.headers["Prefect-Csrf-Token"] = self.token
            request.headers["Prefect-Csrf-Client"] = self.client_id
        response = yield request
        if response.status_code == 403 and "csrf" in response.text.lower() and self.csrf:
            self.token = None
            yield from self._fetch_token(request)
            if self.token is not None:
                request.headers["Prefect-Csrf-Token"] = self.token
                yield request

    def _fetch_token(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        base = str(request.url).split("/api/", 1)[0] + "/api"
        fetch = httpx.Request("GET", f"{base}/csrf-token", params={"client": self.client_id})
        if self.auth_string is not None:
            fetch.headers["Authorization"] = basic_header(self.auth_string)
        answer = yield fetch
        if answer.status_code == 422:  # "CSRF protection is disabled."
            self.csrf = False
        elif answer.status_code == 200:
            self.token = str(answer.json()["token"])


def prefect_http_auth() -> PrefectAuth:
    return PrefectAuth(prefect_auth_string())


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
    # Prefect's "View at" links to runs (in the command's output and the run's log): through the entrance
    ui_url = get_settings().prefect_ui_url
    values: dict[str, Any] = {"PREFECT_API_URL": api_url, "PREFECT_UI_URL": ui_url, **(extra or {})}
    auth_string = prefect_auth_string()
    if auth_string is not None:
        values["PREFECT_API_AUTH_STRING"] = auth_string
    # Before Prefect is imported: its settings come from the environment.
    os.environ.update({name: str(value) for name, value in values.items()})
    import prefect.settings
    from prefect.settings import temporary_settings

    updates = {getattr(prefect.settings, name): value for name, value in values.items()}
    with temporary_settings(updates=updates):  # also when Prefect was imported before this command ran
        yield api_url
