"""Every Prefect name Kefu relies on outside Prefect's public API, touched here and nowhere else.

Kefu reaches into Prefect for two reasons, both measured (DESIGN.md §4):

- **suspend-until-answered** (``kefu.engine.waiting``) saves the form's schema before it proposes the
  Suspended state, which Prefect's ``suspend_flow_run`` does the other way round (a failed second call
  left runs Suspended with no form). That needs Prefect's schema builder, its key convention for run
  inputs, the state proposal helper and the private description of a ``RunInput``.
- **the Kefu worker** (``kefu.engine.worker``) executes claimed runs with the engine's ``run_flow`` in its own
  threads, hands a claimed run to them without the parts of Prefect's submission a thread does not need
  (``with_lean_submission``: paid at every step of every case), switches off the per-execution suspension
  observer (a thread, an event loop and a websocket per execution, for a feature Kefu does not offer), and
  reads which runs Prefect's worker base class is claiming at the moment (its orphan sweep must not take those
  for orphans). Each of its threads keeps one open API client for all the runs it executes (``RunClients``),
  which relies on Prefect's client context leaving an extra-entered client open.

A Prefect upgrade can move or change any of these without notice. ``check()`` looks for every one of
them and raises ``PrefectChanged`` naming the installed Prefect version; the worker calls it at start-up
and ``tests/test_prefect_private.py`` calls it in the test run, so an upgrade that breaks Kefu fails there
and not in a customer's case.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

BUILT_AGAINST = "3.8.8"

# (module, attribute, parameters Kefu passes by name)
_FUNCTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("prefect.flow_engine", "run_flow", ("flow", "flow_run", "return_type")),
    ("prefect.flow_engine", "observe_flow_run_suspension", ()),
    ("prefect.utilities.engine", "propose_state_sync", ("client", "state", "flow_run_id")),
    ("prefect._internal.pydantic.v2_schema", "create_v2_schema", ("name_", "model_base")),
    ("prefect.input.run_input", "keyset_from_paused_state", ("state",)),
)
_OBSERVER = "observe_flow_run_suspension"
# BaseWorker's set of the runs it is claiming or handing to ``run()`` (added before the Pending proposal).
_WORKER_CLAIMS = "_submitting_flow_run_ids"
# BaseWorker's step from a claimed (Pending) run to ``run()``, and the two helpers the Kefu worker's own uses.
_WORKER_SUBMISSION = "_submit_run_and_capture_errors"
_WORKER_HELPERS = ("_propose_crashed_state", "_release_limit_slot", "_give_worker_labels_to_flow_run")
# Prefect's run-input keys of a Suspended state start with this (``Answers`` reads all of a run's answers by it).
SUSPENDED_INPUT_PREFIX = "suspended-"


class PrefectChanged(RuntimeError):
    """The installed Prefect lacks or changed a part Kefu relies on: review ``kefu.engine`` before running."""


def installed_version() -> str:
    import prefect

    return str(prefect.__version__)


def _problems() -> list[str]:
    problems: list[str] = []
    for module_name, attribute, parameters in _FUNCTIONS:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            problems.append(f"module {module_name} cannot be imported ({exc})")
            continue
        function = getattr(module, attribute, None)
        if not callable(function):
            problems.append(f"{module_name}.{attribute} is gone")
            continue
        accepted = inspect.signature(function).parameters
        missing = [p for p in parameters if p not in accepted]
        if missing:
            problems.append(f"{module_name}.{attribute} no longer takes {', '.join(missing)}")
    import prefect.flow_engine
    from prefect.input import RunInput

    # Replacing the observer helps only while the engine looks it up as a global of its own module at call time.
    if "self.flow.flow_run_name" not in inspect.getsource(prefect.flow_engine.FlowRunEngine):
        problems.append("prefect.flow_engine.FlowRunEngine no longer names runs from flow.flow_run_name")
    if f"{_OBSERVER}(" not in inspect.getsource(prefect.flow_engine).replace(f"def {_OBSERVER}(", ""):
        problems.append(f"prefect.flow_engine no longer calls {_OBSERVER}")
    from prefect.workers.base import BaseWorker

    if f"self.{_WORKER_CLAIMS}" not in inspect.getsource(BaseWorker):
        problems.append(f"prefect.workers.base.BaseWorker no longer keeps {_WORKER_CLAIMS}")
    submission = getattr(BaseWorker, _WORKER_SUBMISSION, None)
    if submission is None or list(inspect.signature(submission).parameters) != ["self", "flow_run", "task_status"]:
        problems.append(f"prefect.workers.base.BaseWorker.{_WORKER_SUBMISSION} is gone or takes other parameters")
    elif f"self.{_WORKER_SUBMISSION}" not in inspect.getsource(BaseWorker._submit_run):
        problems.append(f"prefect.workers.base.BaseWorker._submit_run no longer calls {_WORKER_SUBMISSION}")
    elif "if readiness_result and not isinstance(readiness_result, Exception)" not in inspect.getsource(
        BaseWorker._submit_run
    ):
        problems.append("prefect.workers.base.BaseWorker._submit_run marks a run it was told nothing about")
    gone = [name for name in _WORKER_HELPERS if not hasattr(BaseWorker, name)]
    problems += [f"prefect.workers.base.BaseWorker.{name} is gone" for name in gone]
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.context import SyncClientContext

    if "self._context_stack == 0" not in inspect.getsource(SyncClientContext.__exit__):
        problems.append("prefect.context.SyncClientContext closes its client on every exit now")
    if "if self._started:" not in inspect.getsource(SyncPrefectClient.__enter__):
        problems.append("prefect.client.orchestration.SyncPrefectClient cannot be entered twice any more")
    if "_description" not in RunInput.__private_attributes__:
        problems.append("prefect.input.RunInput has no private _description any more")
    if not problems:
        from prefect.states import Suspended

        response = suspend_keys(Suspended(pause_key="k"))["response"]
        if response != f"{SUSPENDED_INPUT_PREFIX}k-response":
            problems.append(f"a Suspended state's answer is saved under '{response}' now")
    return problems


def check() -> None:
    """Raise ``PrefectChanged`` if any private Prefect name Kefu uses is missing or changed."""
    problems = _problems()
    if problems:
        raise PrefectChanged(
            f"Kefu's Prefect adapter (kefu.engine) was written against Prefect {BUILT_AGAINST}; the installed "
            f"Prefect {installed_version()} differs where Kefu relies on its private parts: "
            + "; ".join(problems)
            + ". Pin Prefect back or update kefu/engine/prefect_private.py."
        )


# --- suspend-until-answered ----------------------------------------------------------------------------


def input_schema(model: type[Any]) -> dict[str, Any]:
    """The JSON schema Prefect stores for a run input form (what ``RunInput.save`` stores)."""
    from prefect._internal.pydantic.v2_schema import create_v2_schema

    return create_v2_schema(model.__name__, model_base=model)


def input_description(model: type[Any]) -> str | None:
    """The markdown shown above the form (set by ``RunInput.with_initial_data(description=...)``)."""
    description = model._description
    return description if isinstance(description, str) and description else None


def suspend_keys(state: Any) -> dict[str, str]:
    """Prefect's run-input keys (``schema``, ``description``, ``response``) of a Suspended state."""
    from prefect.input.run_input import keyset_from_paused_state

    return {str(name): key for name, key in keyset_from_paused_state(state).items()}


def propose_state(client: Any, state: Any, flow_run_id: Any) -> Any:
    """Propose a state for the run as the engine does (orchestration rules decide; returns the state set)."""
    from prefect.utilities.engine import propose_state_sync

    return propose_state_sync(client=client, state=state, flow_run_id=flow_run_id)


# --- the Kefu worker ----------------------------------------------------------------------------------


def run_flow(flow: Any, flow_run: Any) -> Any:
    """Execute an existing flow run in this thread; for an async flow, the coroutine to run."""
    from prefect.flow_engine import run_flow as engine_run_flow

    return engine_run_flow(named_already(flow, flow_run), flow_run=flow_run, return_type="state")


def named_already(flow: Any, flow_run: Any) -> Any:
    """``flow``, or a copy without its run-name template when the run already has the name it gives.

    The engine names the run from the flow's ``flow_run_name`` at every execution (a PATCH of the run); a case is
    executed again after every human step and was named at its first. Only a string template whose name the run
    already bears exactly is left out, so the run's name is the same either way.
    """
    template = getattr(flow, "flow_run_name", None)
    if not isinstance(template, str):
        return flow
    try:
        name = template.format(**(flow_run.parameters or {}))
    except (KeyError, IndexError, ValueError):
        return flow
    if flow_run.name != name:
        return flow
    unnamed = copy.copy(flow)
    unnamed.flow_run_name = None
    return unnamed


@contextmanager
def _no_observer(*_args: Any, **_kwargs: Any) -> Iterator[None]:
    yield


@contextmanager
def without_suspension_observer() -> Iterator[None]:
    """While inside, executions of deployment runs start no suspension observer; restored on exit.

    Prefect 3.8's engine starts, for every execution of a deployment run, a thread with its own event loop and
    a websocket subscription, so that a run may be suspended from outside while it executes. Kefu's flows
    suspend only themselves, at their human steps, and an execution lasts a fraction of a second; the observer
    cost ~0.2 s of wall time and a server websocket per execution. Suspending from outside is not offered.
    Process-wide: enter it once, around the worker's life.
    """
    import prefect.flow_engine

    check()
    original: Callable[..., Any] = getattr(prefect.flow_engine, _OBSERVER)
    setattr(prefect.flow_engine, _OBSERVER, _no_observer)
    try:
        yield
    finally:
        setattr(prefect.flow_engine, _OBSERVER, original)


def worker_claims(worker: Any) -> frozenset[Any]:
    """The flow run ids a Prefect worker is claiming or starting right now (a copy).

    Prefect's ``BaseWorker`` adds a run to this set before it proposes Pending and removes it once ``run()`` has
    reported the run started: with the runs ``run()`` executes, it covers every run this worker holds.
    """
    return frozenset(getattr(worker, _WORKER_CLAIMS))


class RunClients:
    """One open Prefect API client per thread of the worker, for every run the thread executes.

    The engine makes a new client for each execution unless a client context is current (``SyncClientContext.
    get_or_create``), and a new client builds a TLS context (certifi's CA bundle) even for ``http://``: measured
    27 % of the worker's CPU in bench/case_engine.py, ~35 ms per execution, 8 executions per case. Here each thread
    creates one client context on its first run (inside the run's settings context: the worker's API URL and auth
    string) and enters its client once more, so that leaving the context after a run (stack back to 0) leaves the
    client open for the next run; the connection stays alive too. ``close()`` ends them once the threads are done.
    If a client cannot be made (the API is away), the run goes on without one: the engine makes its own.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._open: list[Any] = []
        self._lock = threading.Lock()

    @contextmanager
    def current(self) -> Iterator[None]:
        from prefect.context import SyncClientContext

        context = getattr(self._local, "context", None)
        if context is None:
            try:
                context = SyncClientContext()
                context.client.__enter__()  # held open across runs; closed by ``close()``
            except Exception as exc:
                logging.getLogger("kefu.worker").warning("no shared Prefect client for this thread (%s)", exc)
                context = None
            else:
                self._local.context = context
                with self._lock:
                    self._open.append(context)
        with context if context is not None else nullcontext():
            yield

    def close(self) -> None:
        """Close every thread's client (after the threads have stopped)."""
        with self._lock:
            contexts, self._open = self._open, []
        for context in contexts:
            try:
                context.client.__exit__(None, None, None)
            except Exception as exc:
                logging.getLogger("kefu.worker").debug("closing a run client failed (%s)", exc)


class _Started:
    """The task status a worker's ``run()`` reports "started" to, remembering whether it did.

    Prefect's ``_submit_run`` is told nothing (``None``): given the worker's identifier it would write it on the run
    as its ``infrastructure_pid`` and log "submitted to infrastructure" on the run, a second PATCH and a log line per
    execution, where the Kefu worker has marked the run already, before executing it (``KefuWorker.run``). Without
    it, ``_submit_run`` releases the claim-limit slot, which a Kefu worker does not have (its limit is its threads).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.done = False

    def started(self, value: Any = None) -> None:
        self.done = True
        if self.inner is not None:
            self.inner.started(None)


async def _lean_submission(worker: Any, flow_run: Any, task_status: Any = None) -> Any:
    """From a claimed (Pending) run to the worker's ``run()``, as Prefect's ``BaseWorker`` does it, less what a
    run in a thread of this process does not need: the job configuration built from the deployment and the flow
    (two reads; a Kefu run's only variable, ``resumable``, is read once per deployment by the worker), the
    "Submitting" state (a second state proposal) and the submitted/executed worker events; the worker labels are
    written only when the run does not carry this worker's already (a case's later steps). Kept: the claim
    (Pending, proposed before this), the infrastructure mark, "Crashed" for a run that could not be started, the
    concurrency slot released. A case is resumed after every human step, so this is paid per step.
    """
    log = logging.getLogger("kefu.worker")
    status = _Started(task_status)
    try:
        if (flow_run.labels or {}).get("prefect.worker.name") != worker.name:
            await getattr(worker, _WORKER_HELPERS[2])(flow_run.id)
        return await worker.run(flow_run=flow_run, task_status=status, configuration=worker.job_configuration())
    except Exception as exc:
        if not status.done:
            status.started(exc)  # Prefect's worker carries on; the run is marked below
            log.exception("flow run %s could not be started", flow_run.id)
            message = f"Failed to submit flow run to infrastructure: {type(exc).__name__}: {exc}"
            await getattr(worker, _WORKER_HELPERS[0])(flow_run, message)
        else:
            log.exception("flow run %s: the worker lost it", flow_run.id)
        return exc
    finally:
        getattr(worker, _WORKER_HELPERS[1])(flow_run.id)


def with_lean_submission(worker_class: type[Any]) -> type[Any]:
    """Class decorator: the worker class submits its claimed runs with ``_lean_submission``."""
    setattr(worker_class, _WORKER_SUBMISSION, _lean_submission)
    return worker_class
