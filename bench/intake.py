"""Intake under a burst: 2,000 complaints over HTTP with concurrency, on the embedded defaults.

Starts everything for real in a scratch directory: the system of record and a Prefect server on the embedded
PostgreSQL ``make up`` uses (``--prefect-db`` / ``--kefu-db``: the external PostgreSQL or SQLite instead), the
``complaint-case`` deployment registered (runs are counted, not executed; the server's late-runs service is off
since no worker takes them), the intake app under uvicorn and the intake dispatcher. Then it sends the burst
through the gateway API (each request with its own Idempotency-Key) and measures:

- accepted per second and p50/p90/p99/max latency of the burst;
- the time from the burst's start until every complaint has its case flow run recorded;
- lost (complaints without a run) and duplicated (cases with more than one run), read from Prefect.

    .venv/bin/python bench/intake.py [--n 2000] [--concurrency 32]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from harness import Stack, encode_post, http_burst, percentile
from sqlalchemy import func, select

from kefu.cli.up import Component
from kefu.models.intake import IntakeOutbox
from kefu.settings import Settings
from tests.support.prefect import prefect_post
from tests.support.processes import free_port, stop, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"


def complaint(i: int) -> dict[str, Any]:
    channels = ["hotline", "email", "web", "im", "face_to_face", "social"]
    return {
        "channel": channels[i % len(channels)],
        "name": f"客户{i}",
        "phone": f"13{(i % 9) + 1}{i:08d}",
        "email": f"customer{i}@example.com",
        "order_no": f"BENCH{i:08d}",
        "product": "快递",
        "place": "上海市",
        "content": f"第{i}件：包裹延误两天，客服电话一直占线。",
        "urgent": i % 10 == 0,
    }


def burst(port: int, n: int, concurrency: int) -> tuple[list[float], float, Counter[int]]:
    """The gateways' burst: each complaint with its own Idempotency-Key, encoded before the clock starts."""
    requests = [
        encode_post(
            "/api/v1/complaints",
            f"127.0.0.1:{port}",
            json.dumps(complaint(i), ensure_ascii=False).encode(),
            {"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": f"bench-{i}"},
        )
        for i in range(n)
    ]
    return asyncio.run(http_burst("127.0.0.1", port, requests, concurrency))


def as_kefu_up_runs_them(port: int) -> dict[str, Component]:
    """The Prefect server, the intake app and the dispatcher exactly as ``kefu up`` starts them: commands
    (uvicorn, one process, access log on) and priorities."""
    from kefu.cli.up import components

    return {c.name: c for c in components(Settings(intake_host="127.0.0.1", intake_port=port))}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--dispatch-timeout", type=float, default=900)
    parser.add_argument(
        "--prefect-db",
        choices=["sqlite", "postgresql", "embedded"],
        default="embedded",
        help="the Prefect server's database: the embedded PostgreSQL of `make up` (default), a fresh database on "
        "the external PostgreSQL, or the Prefect server's own SQLite",
    )
    parser.add_argument(
        "--kefu-db",
        choices=["sqlite", "postgresql", "embedded"],
        help="Kefu's database (default: the same kind as --prefect-db)",
    )
    args = parser.parse_args()

    stack = Stack(
        "kefu-bench-intake-",
        kefu_db=args.kefu_db or args.prefect_db,
        # No worker executes these runs: keep the server from spending the burst re-marking them "Late".
        PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED="false",
        KEFU_INTAKE_API_TOKENS=json.dumps([TOKEN]),
    )
    engine, api = stack.engine, stack.api
    intake_port = free_port()
    up = as_kefu_up_runs_them(intake_port)
    with stack:
        if args.prefect_db == "postgresql":
            stack.prefect_on_postgresql("kefu_bench_intake")
        elif args.prefect_db == "embedded":
            stack.prefect_on_embedded()
        stack.start_prefect_server(nice=up["prefect-server"].nice)
        flow = prefect_post(f"{api}/flows/", {"name": "complaint-case"}).json()
        deployment = prefect_post(f"{api}/deployments/", {"name": "complaint-case", "flow_id": flow["id"]}).json()
        app = stack.start("intake", up["intake"].argv, cwd=ROOT, nice=up["intake"].nice)
        wait_healthy(f"http://127.0.0.1:{intake_port}/healthz", app)
        dispatcher = up["intake-dispatcher"]
        stack.start("dispatcher", dispatcher.argv, cwd=ROOT, nice=dispatcher.nice)

        floor_port = free_port()
        floor_argv = as_kefu_up_runs_them(floor_port)["intake"].argv
        floor_argv[floor_argv.index("kefu.intake.app:create_app")] = "floor_app:create_app"
        floor = stack.start("floor", [*floor_argv, "--app-dir", str(ROOT / "bench")])
        wait_healthy(f"http://127.0.0.1:{floor_port}/healthz", floor)
        _floor_latencies, floor_elapsed, floor_statuses = burst(floor_port, args.n, args.concurrency)
        stop(floor)

        print(f"sending {args.n} complaints with concurrency {args.concurrency}...", file=sys.stderr)
        cpu_before = cpu_seconds(app.pid)
        t0 = time.perf_counter()
        latencies, elapsed, statuses = burst(intake_port, args.n, args.concurrency)
        intake_cpu = cpu_seconds(app.pid) - cpu_before
        dispatched = 0
        while time.perf_counter() - t0 < args.dispatch_timeout:
            with engine.connect() as connection:
                dispatched = connection.scalar(select(func.count()).where(IntakeOutbox.flow_run_id.is_not(None))) or 0
            if dispatched >= statuses[201]:
                break
            time.sleep(0.2)
        all_runs_after = time.perf_counter() - t0

        runs: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = httpx.post(
                f"{api}/flow_runs/filter",
                json={"deployments": {"id": {"any_": [deployment["id"]]}}, "limit": 200, "offset": offset},
                timeout=60,
            ).json()
            runs.extend(page)
            if len(page) < 200:
                break
            offset += 200
        per_case = Counter(run["parameters"]["case_no"] for run in runs)
        with engine.connect() as connection:
            complaints = connection.scalar(select(func.count()).select_from(IntakeOutbox)) or 0
        result = {
            "complaints_sent": args.n,
            "concurrency": args.concurrency,
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "complaints_stored": complaints,
            "burst_seconds": round(elapsed, 3),
            "accepted_per_second": round(statuses[201] / elapsed, 1),
            "http_floor_per_second": round(floor_statuses[201] / floor_elapsed, 1),
            "ratio_to_http_floor": round((statuses[201] / elapsed) / (floor_statuses[201] / floor_elapsed), 3),
            "intake_cpu_ms_per_request": round(intake_cpu / args.n * 1000, 2),
            "latency_ms": {
                "p50": round(percentile(latencies, 50) * 1000, 1),
                "p90": round(percentile(latencies, 90) * 1000, 1),
                "p99": round(percentile(latencies, 99) * 1000, 1),
                "max": round(max(latencies) * 1000, 1),
                "mean": round(statistics.fmean(latencies) * 1000, 1),
            },
            "seconds_until_every_complaint_has_its_case_flow_run": round(all_runs_after, 1),
            "case_flow_runs": len(runs),
            "lost": complaints - len(per_case),
            "duplicated": sum(1 for count in per_case.values() if count > 1),
            "database": args.kefu_db or args.prefect_db,
            "prefect_server": args.prefect_db,
        }
        print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
