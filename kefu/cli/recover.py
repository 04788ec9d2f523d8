"""``kefu recover [--case CASE ...]``: after the Prefect database is lost, give every open case its run back,
waiting at the step it waited at (Kefu's database is the system of record; see ``kefu.intake.recovery``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Any

from kefu.engine.rest import PrefectRuns, PrefectUnavailable, prefect_api_url
from kefu.models.db import default_engine

if TYPE_CHECKING:
    from kefu.intake.recovery import RecoveryReport


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "recover",
        help="rebuild the Prefect runs of open cases from Kefu's records (after the Prefect database was lost); "
        "safe to repeat",
    )
    parser.add_argument("--case", action="append", dest="cases", metavar="CASE", help="only this case (repeatable)")
    parser.set_defaults(handler=run_recover)


def run_recover(args: argparse.Namespace) -> int:
    # Here, not at the top: it imports the case flow, hence Prefect, which every other command would pay for.
    from kefu.intake.recovery import recover

    registered = restore_deployments()
    if registered:
        print(f"Prefect had no Kefu deployments (a new or lost Prefect database): {registered} registered again")

    async def go() -> RecoveryReport:
        async with PrefectRuns(prefect_api_url()) as runs:
            return await recover(default_engine(), runs, cases=args.cases)

    try:
        report = asyncio.run(go())
    except PrefectUnavailable as exc:
        print(
            f"kefu recover: error: Prefect is not reachable or has no complaint-case deployment yet "
            f"(start `kefu up` first): {exc}",
            file=sys.stderr,
        )
        return 1
    for case in report.cases:
        print(case.line())
    print(report.summary())
    return 0


def restore_deployments() -> int:
    """A new Prefect database has neither Kefu's work pool nor its deployments: register them as ``kefu worker``
    does at start (the running workers take the new deployments' runs; nobody has to restart them). Returns how
    many were registered, 0 when the case deployment was there."""
    from kefu.engine.connection import kefu_prefect

    with kefu_prefect():
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound

        from kefu.cli.worker import served_here
        from kefu.deployments import all_deployments
        from kefu.engine.contract import COMPLAINT_CASE_DEPLOYMENT
        from kefu.engine.worker import register_deployments

        with get_client(sync_client=True) as client:
            try:
                client.read_deployment_by_name(COMPLAINT_CASE_DEPLOYMENT)
                return 0
            except ObjectNotFound:
                pass
        return len(register_deployments(served_here(all_deployments())))
