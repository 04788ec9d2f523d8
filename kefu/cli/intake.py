"""``kefu intake``: the intake dispatcher and reconciler from the command line."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from kefu.engine.rest import PrefectRuns, PrefectUnavailable, prefect_api_url
from kefu.intake.dispatcher import main, reconcile
from kefu.models.db import default_engine


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("intake", help="complaint intake: dispatcher and reconciler")
    actions = parser.add_subparsers(dest="intake_action", required=True)
    rec = actions.add_parser(
        "reconcile", help="make every complaint have exactly one case flow run (after any crash); prints a summary"
    )
    rec.set_defaults(handler=run_reconcile)
    dispatch = actions.add_parser("dispatch", help="run the dispatcher in the foreground (Ctrl-C stops it)")
    dispatch.set_defaults(handler=run_dispatch)


def run_reconcile(args: argparse.Namespace) -> int:
    async def go() -> str:
        async with PrefectRuns(prefect_api_url()) as runs:
            return (await reconcile(default_engine(), runs)).summary()

    try:
        print(asyncio.run(go()))
    except PrefectUnavailable as exc:
        print(f"kefu intake reconcile: Prefect is not reachable: {exc}")
        return 1
    return 0


def run_dispatch(args: argparse.Namespace) -> int:
    main()
    return 0
