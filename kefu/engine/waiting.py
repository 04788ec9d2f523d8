"""Waiting for a person inside a flow run: Prefect's suspend-for-input, made safe to repeat and to fail.

Two differences from calling ``prefect.flow_runs.suspend_flow_run`` directly, both found under load:

- **The form exists before the run says it is waiting.** Prefect proposes the Suspended state first and
  saves the input schema after; if that second call fails (the embedded SQLite Prefect server answers
  "database is locked" under concurrent writes) the run sits Suspended with no form and can never be
  resumed. Here the schema and description are saved first (a repeat finds them there), then the state.
  A failure before the state lands raises, and the flow's retries run it again from the top.
- **Earlier answers are read once.** A resumed run re-runs from the top; ``Answers`` reads every answer the
  run already has in one call, so replaying the earlier steps costs no further API calls.

Flows use it through the step kit (``kefu.engine.steps``); the helpers for the current run (its id, the
engine's client, its tags) live here too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TypeVar
from uuid import UUID

from prefect.context import get_run_context
from prefect.exceptions import Pause, PrefectHTTPStatusError
from prefect.input import RunInput
from prefect.states import Suspended

from kefu.engine import prefect_private

T = TypeVar("T", bound=RunInput)
# A flow that waits for people re-runs from the top after a transient failure (API, database): technical
# retry settings, not policy.
RETRIES = 3
RETRY_DELAY_SECONDS = 10


def current_flow_run_id() -> UUID:
    flow_run = get_run_context().flow_run  # type: ignore[union-attr]
    if flow_run is None:
        raise RuntimeError("waiting for a person is possible only inside a flow run")
    return flow_run.id


def run_client() -> Any:
    """The engine's own API client for this run (a new client costs a TLS context: ~25 ms of CPU)."""
    return get_run_context().client


def add_run_tags(tags: Iterable[str]) -> None:
    """Add tags to the current run (operators filter runs by them in the UI); no call when it has them."""
    run = get_run_context().flow_run  # type: ignore[union-attr]
    if run is not None and set(tags) - set(run.tags):
        run_client().update_flow_run(run.id, tags=sorted(set(run.tags) | set(tags)))


class Answers:
    """The answers this run already has, read in one call when the run (re)starts."""

    def __init__(self) -> None:
        self.flow_run_id = current_flow_run_id()
        rows = run_client().filter_flow_run_input(
            self.flow_run_id, key_prefix=prefect_private.SUSPENDED_INPUT_PREFIX, limit=10_000, exclude_keys=set()
        )
        self._given = {row.key: row.value for row in rows if row.key.endswith("-response")}

    def given(self, key: str) -> dict[str, Any] | None:
        value = self._given.get(_keys(key)["response"])
        return None if value is None else dict(json.loads(value))


def _suspended(key: str) -> Any:
    return Suspended(timeout_seconds=None, pause_key=key)


def _keys(key: str) -> dict[str, str]:
    """Prefect's run-input keys of the suspend ``key``: where its schema, description and answer are saved."""
    return prefect_private.suspend_keys(_suspended(key))


def answer_key(key: str) -> str:
    """The run-input key under which the answer to the suspend ``key`` is saved (what ``Answers`` reads)."""
    return _keys(key)["response"]


def _save_once(client: Any, flow_run_id: UUID, key: str, value: Any) -> None:
    try:
        client.create_flow_run_input(flow_run_id=flow_run_id, key=key, value=json.dumps(value))
    except PrefectHTTPStatusError as exc:
        if exc.response.status_code != 409:  # 409: saved by an earlier attempt of this run
            raise


def suspend_until_answered(model: type[T], key: str) -> T:
    """Suspend the current run until its ``key`` step is answered with a valid ``model``; no timeout.

    Returns the answer when the run is re-executed after the resume (or at once if the answer is there).
    """
    flow_run_id = current_flow_run_id()
    proposed = _suspended(key)
    keyset = prefect_private.suspend_keys(proposed)
    proposed.state_details.run_input_keyset = keyset
    client = run_client()
    _save_once(client, flow_run_id, keyset["schema"], prefect_private.input_schema(model))
    description = prefect_private.input_description(model)
    if description is not None:
        _save_once(client, flow_run_id, keyset["description"], description)
    state = prefect_private.propose_state(client, proposed, flow_run_id)
    if state.is_running():  # this key was suspended and answered before: the answer is waiting
        return model.model_validate_json(client.read_flow_run_input(flow_run_id, keyset["response"]))
    if not state.is_paused():
        raise RuntimeError(f"the run could not be suspended for '{key}': the API answered {state!r}")
    raise Pause(state=state)
