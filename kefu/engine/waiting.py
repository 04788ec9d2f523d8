"""Waiting for a person inside a flow run: Prefect's suspend-for-input, made safe to repeat and to fail.

Two differences from calling ``prefect.flow_runs.suspend_flow_run`` directly, both found under load:

- **The form exists before the run says it is waiting.** Prefect proposes the Suspended state first and
  saves the input schema after; if that second call fails (the embedded SQLite Prefect server answers
  "database is locked" under concurrent writes) the run sits Suspended with no form and can never be
  resumed. Here the schema and description are saved first (a repeat finds them there), then the state.
  A failure before the state lands raises, and the flow's retries run it again from the top.
- **Earlier answers are read once.** A resumed run re-runs from the top; ``Answers`` reads every answer the
  run already has in one call, so replaying the earlier steps costs no further API calls.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar
from uuid import UUID

from prefect.context import get_run_context
from prefect.exceptions import Pause, PrefectHTTPStatusError
from prefect.input import RunInput
from prefect.input.run_input import keyset_from_paused_state
from prefect.states import Suspended

T = TypeVar("T", bound=RunInput)
# A flow that waits for people re-runs from the top after a transient failure (API, database): technical
# retry settings, not policy.
RETRIES = 3
RETRY_DELAY_SECONDS = 10


def current_flow_run_id() -> UUID:
    flow_run = get_run_context().flow_run  # type: ignore[union-attr]
    assert flow_run is not None, "only inside a flow run"
    return flow_run.id


def run_client() -> Any:
    """The engine's own API client for this run (a new client costs a TLS context: ~25 ms of CPU)."""
    return get_run_context().client


class Answers:
    """The answers this run already has, read in one call when the run (re)starts."""

    def __init__(self) -> None:
        self.flow_run_id = current_flow_run_id()
        rows = run_client().filter_flow_run_input(
            self.flow_run_id, key_prefix="suspended-", limit=10_000, exclude_keys=set()
        )
        self._given = {row.key: row.value for row in rows if row.key.endswith("-response")}

    def given(self, key: str) -> dict[str, Any] | None:
        value = self._given.get(f"suspended-{key}-response")  # Prefect's key for a Suspended state's input
        return None if value is None else dict(json.loads(value))


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
    from prefect._internal.pydantic.v2_schema import create_v2_schema  # what RunInput.save uses
    from prefect.utilities.engine import propose_state_sync

    flow_run_id = current_flow_run_id()
    proposed: Any = Suspended(timeout_seconds=None, pause_key=key)
    keyset = keyset_from_paused_state(proposed)
    proposed.state_details.run_input_keyset = dict(keyset)
    client = run_client()
    _save_once(client, flow_run_id, keyset["schema"], create_v2_schema(model.__name__, model_base=model))
    description = model._description
    if isinstance(description, str) and description:
        _save_once(client, flow_run_id, keyset["description"], description)
    state = propose_state_sync(client=client, state=proposed, flow_run_id=flow_run_id)
    if state.is_running():  # this key was suspended and answered before: the answer is waiting
        return model.model_validate_json(client.read_flow_run_input(flow_run_id, keyset["response"]))
    if not state.is_paused():
        raise RuntimeError(f"the run could not be suspended for '{key}': the API answered {state!r}")
    raise Pause(state=state)
