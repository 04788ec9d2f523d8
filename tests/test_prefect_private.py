"""The private Prefect parts Kefu relies on are where Kefu expects them; a Prefect upgrade that moves one
stops the worker with the installed version named, before it serves anything."""

from __future__ import annotations

import prefect
import prefect.flow_engine
import pytest

from kefu.engine import prefect_private


def test_every_private_prefect_part_kefu_relies_on_is_in_the_installed_prefect() -> None:
    prefect_private.check()  # fails here when an upgrade moves or changes one of them
    # the key convention ``Answers`` reads earlier answers by
    from prefect.states import Suspended

    keys = prefect_private.suspend_keys(Suspended(pause_key="classify-0"))
    assert keys == {
        "schema": "suspended-classify-0-schema",
        "description": "suspended-classify-0-description",
        "response": "suspended-classify-0-response",
    }


def test_a_moved_private_part_is_refused_with_the_installed_prefect_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(prefect.flow_engine, "observe_flow_run_suspension")
    with pytest.raises(prefect_private.PrefectChanged) as error:
        prefect_private.check()
    message = str(error.value)
    assert f"Prefect {prefect.__version__}" in message
    assert "prefect.flow_engine.observe_flow_run_suspension" in message


def test_the_suspension_observer_is_switched_off_only_inside_the_context() -> None:
    original = prefect.flow_engine.observe_flow_run_suspension
    with prefect_private.without_suspension_observer():
        assert prefect.flow_engine.observe_flow_run_suspension is not original
    assert prefect.flow_engine.observe_flow_run_suspension is original


def test_building_a_worker_replaces_nothing_in_prefect() -> None:
    from kefu.engine.worker import KefuWorker

    original = prefect.flow_engine.observe_flow_run_suspension
    KefuWorker("kefu", limit=1)
    assert prefect.flow_engine.observe_flow_run_suspension is original
