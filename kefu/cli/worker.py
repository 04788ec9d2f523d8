"""``kefu worker``: a Kefu worker on the work pool, with Kefu's settings (``prefect worker start --type kefu``).

It talks to the Prefect API at ``KEFU_PREFECT_API_URL`` (never a temporary server), polls every
``KEFU_WORKER_POLL_SECONDS``, executes up to ``KEFU_WORKER_LIMIT`` runs at once in its threads, and first registers
Kefu's deployments on the pool (idempotent; ``--no-register`` on extra workers leaves them as they are). Ctrl-C or
SIGTERM stops it after its executing runs reach their next wait.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any

from kefu.engine.contract import WORK_POOL
from kefu.settings import get_settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "worker", help="execute Kefu's flow runs from the work pool in threads of this process (Ctrl-C stops it)"
    )
    parser.add_argument("--pool", default=WORK_POOL, help=f"the work pool (default {WORK_POOL}; created if missing)")
    parser.add_argument("--limit", type=int, default=None, help="runs executed at once (default KEFU_WORKER_LIMIT)")
    parser.add_argument("--name", default=None, help="the worker's name in the pool (default kefu:<host>:<pid>)")
    parser.add_argument("--work-queue", action="append", dest="work_queues", help="poll only this queue (repeatable)")
    parser.add_argument(
        "--no-register", action="store_true", help="do not create or update Kefu's deployments on the pool at start"
    )
    parser.set_defaults(handler=run)


def served_here(every: list[Any]) -> list[Any]:
    """The deployments this installation serves: all of them, or those ``KEFU_SERVE_ONLY`` names."""
    only = set(get_settings().serve_only)
    return [d for d in every if not only or d.name in only]


def run(args: argparse.Namespace) -> int:
    from kefu.engine.connection import kefu_prefect

    settings = get_settings()
    # Kefu's API URL, never a temporary server; not checked first: a worker outlives the server's restarts.
    with kefu_prefect(check=False, extra={"PREFECT_WORKER_QUERY_SECONDS": settings.worker_poll_seconds}):
        from kefu.deployments import all_deployments
        from kefu.engine import prefect_private
        from kefu.engine.worker import KefuWorker, register_deployments

        try:
            prefect_private.check()
        except prefect_private.PrefectChanged as exc:
            print(f"kefu worker cannot start: {exc}", file=sys.stderr)
            return 1
        served = served_here(all_deployments())
        if not args.no_register:
            ids = register_deployments(served, args.pool)
            print(f"kefu worker: {len(ids)} deployments on work pool {args.pool}", flush=True)
        duties = [d.name for d in served if d.duty]  # kept on shift: one run each, started when none is
        worker = KefuWorker(args.pool, work_queues=args.work_queues, name=args.name, limit=args.limit, duties=duties)
        asyncio.run(_work(worker))
    return 0


async def _work(worker: Any) -> None:
    """Run the worker until SIGTERM or SIGINT, then let it tear down (executing runs reach their next wait)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    print(f"kefu worker: {worker.name} in process {os.getpid()} on work pool {worker.pool_name}", flush=True)
    try:
        await worker.start()
    except asyncio.CancelledError:
        print("kefu worker: stopped", flush=True)
