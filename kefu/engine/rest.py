"""The REST client for case runs: create and find ``complaint-case`` runs through Prefect's HTTP API.

Plain httpx rather than Prefect's own client: the dispatcher creates runs in bulk (one request per chunk,
one transaction on the server), needs its own retry policy (the SQLite Prefect server answers 503 and
"database is locked" under concurrent writers) and must not start a temporary server when no API URL is
set. Every request names its filters explicitly (fastapi 0.151–0.154 refused nulls). The names, parameters
and idempotency key come from the run contract.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from kefu.engine.connection import prefect_api_url, prefect_http_auth
from kefu.engine.contract import (
    CASE_RUN_TAGS,
    COMPLAINT_CASE_DEPLOYMENT,
    CaseRef,
    case_run_name,
    case_run_parameters,
    complaint_case_idempotency_key,
    legacy_case_idempotency_key,
)

__all__ = ["CaseRefused", "PrefectRuns", "PrefectUnavailable", "prefect_api_url"]


class PrefectUnavailable(Exception):
    """Prefect did not answer successfully after every retry (down, overloaded, or no deployment yet)."""


class CaseRefused(PrefectUnavailable):
    """Prefect answered a bulk request but did not create this case's run (on the SQLite server: "database is
    locked" when its own services write at the same moment)."""


def case_run_body(case: CaseRef) -> dict[str, Any]:
    """What every creator of a case run sends: the run's name, parameters, idempotency key and tags."""
    return {
        "name": case_run_name(case.case_no),
        "parameters": case_run_parameters(case.case_no),
        "idempotency_key": complaint_case_idempotency_key(case),
        "tags": list(CASE_RUN_TAGS),
    }


class PrefectRuns:
    """Creates and finds case flow runs through Prefect's REST API, with retries and backoff."""

    def __init__(
        self,
        api_url: str,
        *,
        deployment: str = COMPLAINT_CASE_DEPLOYMENT,
        attempts: int = 8,
        base_delay: float = 0.1,
        max_delay: float = 5.0,
        timeout: float = 30.0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.deployment = deployment
        self.attempts, self.base_delay, self.max_delay = attempts, base_delay, max_delay
        self.http = httpx.AsyncClient(base_url=self.api_url, timeout=timeout, auth=prefect_http_auth())
        self._deployment_id: str | None = None

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> PrefectRuns:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def _request(
        self, method: str, path: str, json: Any = None, *, missing_ok: bool = False, conflict_ok: bool = False
    ) -> Any:
        delay = self.base_delay
        last = ""
        for attempt in range(1, self.attempts + 1):
            try:
                response = await self.http.request(method, path, json=json)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 300:
                    return response.json()
                if response.status_code == 404 and missing_ok:
                    return None
                if response.status_code == 409 and conflict_ok:
                    return None
                if response.status_code < 500 and response.status_code not in (404, 408, 409, 429):
                    raise PrefectUnavailable(f"{method} {path}: {response.status_code} {response.text[:300]}")
                last = f"{response.status_code} {response.text[:200]}"
            if attempt < self.attempts:
                await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not security
                delay = min(delay * 2, self.max_delay)
        raise PrefectUnavailable(f"{method} {path} failed {self.attempts} times; last: {last}")

    async def deployment_id(self) -> str:
        if self._deployment_id is None:
            flow_name, _, name = self.deployment.partition("/")
            body = await self._request("GET", f"/deployments/name/{flow_name}/{name}")
            self._deployment_id = str(body["id"])
        return self._deployment_id

    async def create_case_run(self, case: CaseRef) -> str:
        """The id of the one case flow run of this case (created now, or the one the key already has)."""
        deployment_id = await self.deployment_id()
        body = await self._request(
            "POST",
            f"/deployments/{deployment_id}/create_flow_run",
            case_run_body(case),
        )
        return str(body["id"])

    async def create_case_runs(self, cases: Sequence[CaseRef]) -> dict[str, str | BaseException]:
        """Many case runs in one request (Prefect's bulk endpoint, one transaction, at most 100).

        Each run still carries its idempotency key, so a repeated case gets the run it already has.
        Returns the run id per case number, or the error for the cases Prefect refused.
        """
        deployment_id = await self.deployment_id()
        body = await self._request(
            "POST",
            f"/deployments/{deployment_id}/create_flow_run/bulk",
            [case_run_body(case) for case in cases],
        )
        results: dict[str, str | BaseException] = {}
        for (case_no, _), result in zip(cases, body["results"], strict=True):
            if result.get("status") == "CREATED" and result.get("flow_run_id"):
                results[case_no] = str(result["flow_run_id"])
            else:
                results[case_no] = CaseRefused(f"bulk create refused: {result.get('error')}")
        return results

    async def runs_for_cases(
        self, cases: Sequence[CaseRef], recorded: Mapping[str, str | None] | None = None
    ) -> dict[str, list[str]]:
        """Every run of the deployment per case number (found by the idempotency key), in chunks. ``recorded``: the run
        Kefu recorded per case number; a run under the key of before the moment was part of it
        (``legacy_case_idempotency_key``) is found only when it is that run."""
        deployment_id = await self.deployment_id()
        recorded = recorded or {}
        found: dict[str, list[str]] = {c.case_no: [] for c in cases}
        by_key = {complaint_case_idempotency_key(c): c.case_no for c in cases}
        legacy = {legacy_case_idempotency_key(c.case_no): c.case_no for c in cases if recorded.get(c.case_no)}
        keys = [*by_key, *legacy]
        for start in range(0, len(keys), 200):
            chunk = keys[start : start + 200]
            runs = await self._request(
                "POST",
                "/flow_runs/filter",
                {
                    "flow_runs": {"idempotency_key": {"any_": chunk}},
                    "deployments": {"id": {"any_": [deployment_id]}},
                    "limit": 200,
                },
            )
            for run in runs:
                key, run_id = run["idempotency_key"], str(run["id"])
                if key in by_key:
                    found[by_key[key]].append(run_id)
                elif key in legacy and recorded.get(legacy[key]) == run_id:
                    found[legacy[key]].append(run_id)
        return found

    async def create_held_case_run(self, case: CaseRef, message: str) -> str:
        """The case's one run (idempotency key), created Paused so that no worker starts it before it has what it
        needs (``kefu recover`` gives it the answers first, then ``schedule_now``). A run the key already has
        is returned as it is."""
        deployment_id = await self.deployment_id()
        body = await self._request(
            "POST",
            f"/deployments/{deployment_id}/create_flow_run",
            {**case_run_body(case), "state": {"type": "PAUSED", "name": "Paused", "message": message}},
        )
        return str(body["id"])

    async def read_run(self, run_id: str) -> dict[str, Any]:
        body: dict[str, Any] = await self._request("GET", f"/flow_runs/{run_id}")
        return body

    async def run_input_keys(self, run_id: str, prefix: str) -> set[str]:
        rows = await self._request(
            "POST", f"/flow_runs/{run_id}/input/filter", {"prefix": prefix, "limit": 10_000, "exclude_keys": []}
        )
        return {str(row["key"]) for row in rows}

    async def add_run_input(self, run_id: str, key: str, value: str) -> None:
        """Save a run input once (a key the run already has is left as it is)."""
        await self._request("POST", f"/flow_runs/{run_id}/input", {"key": key, "value": value}, conflict_ok=True)

    async def schedule_now(self, run_id: str, message: str) -> None:
        """Put a run to Scheduled for now (forced: from Paused or Suspended); a worker then runs it from the top."""
        state = {
            "type": "SCHEDULED",
            "name": "Scheduled",
            "message": message,
            "state_details": {"scheduled_time": dt.datetime.now(dt.UTC).isoformat()},
        }
        await self._request("POST", f"/flow_runs/{run_id}/set_state", {"state": state, "force": True})

    async def resume_waiting(self, run_id: str, key: str, run_input: dict[str, Any]) -> str:
        """Resume the run with ``run_input`` as the answer to its suspend ``key``, only while it waits on exactly that
        key (an answer never lands on another step). Prefect checks the input against the step's form: returns its
        verdict (``ACCEPT``, ``REJECT``, ``ABORT``), or ``NOT_WAITING``."""
        run = await self.read_run(run_id)
        state = run.get("state") or {}
        details = state.get("state_details") or {}
        if state.get("type") != "PAUSED" or details.get("pause_key") != key:
            return "NOT_WAITING"
        body = await self._request("POST", f"/flow_runs/{run_id}/resume", {"run_input": run_input})
        return str(body.get("status", "")).upper()

    async def existing_run_ids(self, run_ids: Sequence[str]) -> set[str]:
        existing: set[str] = set()
        ids = list(run_ids)
        for start in range(0, len(ids), 200):
            chunk = ids[start : start + 200]
            runs = await self._request(
                "POST", "/flow_runs/filter", {"flow_runs": {"id": {"any_": chunk}}, "limit": 200}
            )
            existing.update(str(run["id"]) for run in runs)
        return existing
