"""Complaint cases through the engine: complete cases per minute with scripted step inputs.

Starts for real in a scratch directory: the system of record and a Prefect server on the embedded
PostgreSQL ``make up`` uses (``--prefect-db`` / ``--kefu-db``: the external PostgreSQL or SQLite instead), and a Kefu
worker (``kefu worker``: runs executed in its threads) on the work pool of ``complaint-case`` and
two bare baseline flows. Then, in one run:

1. **bare baseline**: ``--bare`` runs of a flow that suspends once for a typed input and is resumed, through
   the same worker and server: Prefect's own floor for one suspend/resume cycle (executions per second).
2. **spawn baseline**: ``--spawn`` runs of a flow that does nothing, through Prefect's ``serve`` (one
   process per run), which is what every case step used to cost.
3. **cases**: ``--cases`` general complaints, ``--concurrency`` of them in flight, each walked through seven
   human steps (classify, first contact, investigate, propose, approve, resolve, callback) by resuming the
   run with the step's input exactly as ``kefu step submit`` does. The full process: every customer has an
   e-mail address, so each case queues its customer messages at their stages (acknowledgement, proposal with
   its approval link, resolution, callback invitation, closure), and every ``--pause-every``-th case waits on
   the customer before its proposal (``kefu case pause`` and ``end-pause``, as the owner). After the cases, the
   queued mails are delivered to an SMTP sink in this process and counted: each exactly once.

Prints one JSON object: complete cases per second and per minute, engine time per step (from the resume
call until the case waits on its next step, p50/p90/p99), where that time goes (from the runs' Prefect
state history: resume → claimed by the worker → running → suspended again), and the ratios against the
baselines. Goal: at least 1 complete case per second sustained on this 2-core machine. The step names and
their forms are the real flow's (``kefu.flows.complaint_case``); the scripted answers are checked by the
same validation as ``kefu step submit``.

    .venv/bin/python bench/case_engine.py [--cases 60] [--concurrency 12] [--workers 4]
    .venv/bin/python bench/case_engine.py --compare   # the default against the external PostgreSQL, with ratios
    .venv/bin/python bench/case_engine.py --api-processes 2   # two Prefect API processes (kefu up --scaled)
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any
from uuid import UUID

from harness import Stack, percentile
from prefect import flow
from prefect.input import RunInput

from kefu.cli.step import validate
from kefu.engine.contract import COMPLAINT_CASE_DEPLOYMENT, COMPLAINT_CASE_DEPLOYMENT_NAME, case_run_parameters
from kefu.flows.complaint_case import APPROVE, CALLBACK, CLASSIFY, CONTACT, INVESTIGATE, PROPOSE, RESOLVE
from tests.support.clock import SHANGHAI

ROOT = Path(__file__).resolve().parents[1]
# The human steps of a general complaint with an accepted first proposal and a satisfied customer, in order.
STEPS = [step.name for step in (CLASSIFY, CONTACT, INVESTIGATE, PROPOSE, APPROVE, RESOLVE, CALLBACK)]


class Ack(RunInput):
    ok: bool


@flow(name="bench-bare-suspend", persist_result=True)
def bare_suspend() -> bool:
    """One suspend for a typed input, like a case step with none of the case's work. It waits the way the case
    flow does (``kefu.engine.waiting``): Prefect's own ``suspend_flow_run`` fails the run when a retried request
    finds its input already saved (409), which happens under this load on the SQLite server."""
    from kefu.engine.waiting import suspend_until_answered

    return bool(suspend_until_answered(Ack, "ack-0").ok)


@flow(name="bench-bare")
def bare() -> None:
    """Nothing at all: the cost of starting a run."""


def step_input(step: str, staff_id: int) -> dict[str, Any]:
    """The scripted answer to ``step``, validated by the step's own form as ``kefu step submit`` does."""
    promised = (dt.datetime.now(SHANGHAI) + dt.timedelta(days=2)).isoformat()
    data: dict[str, dict[str, Any]] = {
        CLASSIFY.name: {},
        CONTACT.name: {"summary": "已致歉并承诺两天内答复"},
        INVESTIGATE.name: {"departments": ["运营部"], "findings": "中转站延误", "done": True},
        PROPOSE.name: {"solution": "退还运费", "promised_completion_at": promised},
        APPROVE.name: {"accepted": True},
        RESOLVE.name: {"summary": "运费已退还"},
        CALLBACK.name: {"satisfaction": 5, "comment": "满意"},
    }
    return validate(step, {"actor_staff_id": staff_id, **data[step]})


# --- the worker process (``--serve``): a Kefu worker with the baseline flow beside the case flow -------


def serve_in_process() -> None:
    from kefu.cli import main as kefu
    from kefu.deployments import Served, all_deployments
    from kefu.engine.contract import WORK_POOL
    from kefu.engine.worker import register_deployments

    served = [d for d in all_deployments() if d.name == COMPLAINT_CASE_DEPLOYMENT_NAME]
    # A file-path entrypoint (this script is ``__main__``): the worker loads it from the same working directory.
    served.append(Served(bare_suspend, bare_suspend.to_deployment(name="bench-bare-suspend", work_pool_name=WORK_POOL)))
    register_deployments(served)
    sys.exit(kefu(["worker", "--no-register"]))  # exactly as ``kefu worker`` executes them


def serve_spawning() -> None:
    from prefect import serve

    serve(bare.to_deployment(name="bench-bare-spawn"))


# --- the driver -----------------------------------------------------------------------------------------


def cpu_seconds(group: int) -> float:
    """User + system CPU of every live process in a process group, threads included (Linux /proc)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == group:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    user, nice, system, _idle, _iowait, irq, softirq, *_ = (int(v) for v in Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def wait_deployment(client: Any, name: str, process: subprocess.Popen[bytes], timeout: float = 120) -> UUID:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            return UUID(str(client.read_deployment_by_name(name).id))
        except Exception:
            time.sleep(0.3)
    raise RuntimeError(f"deployment {name} never appeared")


def count_states(client: Any, deployment_id: UUID) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    offset = 0
    while True:
        body = {
            "deployments": {"id": {"any_": [str(deployment_id)]}},
            "sort": "ID_DESC",
            "limit": 200,
            "offset": offset,
        }
        response = client.request("POST", "/flow_runs/filter", json=body)
        response.raise_for_status()
        page = response.json()
        for run in page:
            counts[run["state_type"] or "NONE"] += 1
        if len(page) < 200:
            return counts
        offset += 200


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not happen within {timeout} s")


def bare_baseline(client: Any, deployment_id: UUID, n: int) -> dict[str, Any]:
    """n runs suspend, then all are resumed: executions per second for each phase."""
    from prefect.flow_runs import resume_flow_run

    t0 = time.perf_counter()
    runs = [client.create_flow_run_from_deployment(deployment_id) for _ in range(n)]
    wait_until(lambda: count_states(client, deployment_id)["PAUSED"] >= n, 300, "bare runs suspending")
    t1 = time.perf_counter()
    for run in runs:
        resume_flow_run(run.id, run_input={"ok": True})
    wait_until(lambda: count_states(client, deployment_id)["COMPLETED"] >= n, 300, "bare runs completing")
    t2 = time.perf_counter()
    return {
        "runs": n,
        "first_executions_per_s": round(n / (t1 - t0), 2),
        "resumed_executions_per_s": round(n / (t2 - t1), 2),
        "executions_per_s": round(2 * n / (t2 - t0), 2),
    }


def spawn_baseline(client: Any, deployment_id: UUID, n: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    for _ in range(n):
        client.create_flow_run_from_deployment(deployment_id)
    wait_until(lambda: count_states(client, deployment_id)["COMPLETED"] >= n, 600, "spawned runs completing")
    elapsed = time.perf_counter() - t0
    return {"runs": n, "executions_per_s": round(n / elapsed, 2), "seconds_per_execution": round(elapsed / n, 3)}


def make_cases(engine: Any, n: int) -> tuple[int, list[str]]:
    from kefu.models.complaints import Complaint
    from kefu.models.db import unit_of_work
    from kefu.models.enums import Channel, ComplaintStatus, CustomerTier, Role, Severity
    from kefu.models.people import Customer, Staff

    case_nos = [f"KF-BENCH-{i:05d}" for i in range(n)]
    with unit_of_work(engine) as session:
        agent = Staff(name="客服甲", email="agent@bench.example")
        agent.grant(Role.AGENT)
        session.add(agent)
        for n_case, case_no in enumerate(case_nos):
            customer = Customer(name="王先生", tier=CustomerTier.GENERAL, email=f"c{n_case}@bench.example")
            session.add(
                Complaint(
                    case_no=case_no,
                    channel=Channel.HOTLINE,
                    received_at=dt.datetime.now(SHANGHAI),
                    severity=Severity.GENERAL,
                    status=ComplaintStatus.REGISTERED,
                    customer=customer,
                    content="快递晚到两天",
                )
            )
        session.flush()
        return agent.id, case_nos


def wait_on_the_customer(engine: Any, case_no: str, staff_id: int) -> None:
    """等待客户 before the proposal, as the owner does it: ``kefu case pause`` then ``kefu case end-pause``."""
    from kefu.models.db import unit_of_work
    from kefu.models.people import Staff
    from kefu.models.policy import current_policy
    from kefu.tasks.casework import end_pause, pause_case
    from kefu.worktime import calendar_for

    policy = current_policy()
    calendar = calendar_for(policy)
    with unit_of_work(engine) as session:
        person = session.get(Staff, staff_id)
        assert person is not None
        now = dt.datetime.now(dt.UTC)
        pause_case(session, case_no, policy, calendar, by=person, reason="等待客户提供照片", now=now)
    with unit_of_work(engine) as session:
        now = dt.datetime.now(dt.UTC)
        end_pause(session, case_no, policy, calendar, actor=f"staff:{staff_id}", note="照片已收到", now=now)


def deliver_to_a_sink(engine: Any, case_nos: list[str]) -> dict[str, Any]:
    """Deliver every mail the cases queued to an SMTP sink in this process (send windows and all: as of a month
    ahead) and count them: queued, delivered, received by the sink; each exactly once."""
    import asyncio

    from aiosmtpd.controller import Controller
    from sqlalchemy import func, select

    from kefu.models.complaints import Complaint
    from kefu.models.notifications import OutboxMessage
    from kefu.notifications.sender import deliver_due
    from kefu.settings import get_settings
    from tests.support.processes import free_port

    received: list[bytes] = []

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(envelope.content)
            return "250 OK"

    port = free_port()
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = get_settings().model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port})
        with engine.connect() as connection:
            ours = select(Complaint.id).where(Complaint.case_no.in_(case_nos))
            queued = connection.execute(
                select(OutboxMessage.message_type, func.count())
                .where(OutboxMessage.complaint_id.in_(ours), OutboxMessage.channel == "mail")
                .group_by(OutboxMessage.message_type)
            ).all()
        t0 = time.perf_counter()
        ahead = dt.datetime.now(dt.UTC) + dt.timedelta(days=31)
        delivered = 0
        while True:
            report = asyncio.run(deliver_due(engine, ahead, settings=settings))
            sent = len(report.sent)
            delivered += sent
            if not sent:
                break
        seconds = time.perf_counter() - t0
    finally:
        controller.stop()
    total = sum(n for _, n in queued)
    return {
        "queued_per_case": round(total / len(case_nos), 2),
        "queued_by_type": {str(t): n for t, n in queued},
        "received_by_sink": len(received),
        "delivery_seconds": round(seconds, 2),
        "each_exactly_once": len(received) == total,
    }


def drive_cases(
    client: Any,
    engine: Any,
    deployment_id: UUID,
    staff_id: int,
    case_nos: list[str],
    concurrency: int,
    pause_every: int = 3,
) -> dict[str, Any]:
    """Keep ``concurrency`` cases in flight; answer each step as soon as its case waits on it (every
    ``pause_every``-th case waits on the customer first when its proposal is due)."""
    from prefect.exceptions import NotPausedError
    from prefect.flow_runs import resume_flow_run
    from sqlalchemy import select

    from kefu.models.complaints import CaseEvent, Complaint

    queue = list(reversed(case_nos))
    run_of: dict[str, UUID] = {}
    started_at: dict[str, float] = {}
    closed_at: dict[str, float] = {}
    submitted_at: dict[str, float] = {}  # case → wall time of its last resume
    step_seconds: list[float] = []
    retry: list[tuple[str, str, str]] = []
    last_event = 0
    t0 = time.perf_counter()

    def start_next() -> None:
        case_no = queue.pop()
        parameters = case_run_parameters(case_no)
        run_of[case_no] = client.create_flow_run_from_deployment(deployment_id, parameters=parameters).id
        started_at[case_no] = time.perf_counter()

    to_pause = set(case_nos[::pause_every]) if pause_every else set()
    pause_seconds: list[float] = []

    def answer(case_no: str, step: str) -> bool:
        if step == PROPOSE.name and case_no in to_pause:
            t = time.perf_counter()
            wait_on_the_customer(engine, case_no, staff_id)
            pause_seconds.append(time.perf_counter() - t)
            to_pause.discard(case_no)
        try:
            resume_flow_run(run_of[case_no], run_input=step_input(step, staff_id))
        except (NotPausedError, RuntimeError):
            return False  # the step is announced just before the suspend lands: try again next round
        submitted_at[case_no] = time.time()
        return True

    for _ in range(min(concurrency, len(queue))):
        start_next()
    while len(closed_at) < len(case_nos):
        with engine.connect() as connection:
            rows = connection.execute(
                select(CaseEvent.id, CaseEvent.action, CaseEvent.data, CaseEvent.at, Complaint.case_no)
                .join(Complaint, Complaint.id == CaseEvent.complaint_id)
                .where(CaseEvent.id > last_event, CaseEvent.action.in_(["waiting", "closed"]))
                .order_by(CaseEvent.id)
            ).all()
        todo = retry
        retry = []
        for event_id, action, data, at, case_no in rows:
            last_event = event_id
            if case_no in submitted_at:
                step_seconds.append(at.timestamp() - submitted_at.pop(case_no))
            if action == "closed":
                closed_at[case_no] = time.perf_counter()
                if queue:
                    start_next()
            else:
                todo.append((case_no, data["step"], data["key"]))
        for case_no, step, key in todo:
            if not answer(case_no, step):
                retry.append((case_no, step, key))
        if not rows and not todo:
            time.sleep(0.05)
        if time.perf_counter() - t0 > 1800:
            raise RuntimeError(f"only {len(closed_at)} of {len(case_nos)} cases closed in 30 min")
    elapsed = time.perf_counter() - t0
    ends = sorted(closed_at.values())
    # Sustained rate: between the 10th and the 90th percentile of completions (no ramp-up, no tail).
    lo, hi = ends[len(ends) // 10], ends[(len(ends) * 9) // 10]
    middle = (len(ends) * 9) // 10 - len(ends) // 10
    sustained = middle / (hi - lo) if hi > lo else float("nan")
    per_case = [closed_at[c] - started_at[c] for c in case_nos]
    return {
        "cases": len(case_nos),
        "concurrency": concurrency,
        "steps_per_case": len(STEPS),
        "elapsed_s": round(elapsed, 2),
        "cases_per_s_overall": round(len(case_nos) / elapsed, 3),
        "cases_per_s_sustained": round(sustained, 3),
        "cases_per_min_sustained": round(sustained * 60, 1),
        "case_wall_s_p50": round(statistics.median(per_case), 2),
        "paused_cases": len(pause_seconds),
        "pause_and_end_s_p50": round(percentile(pause_seconds, 50), 3) if pause_seconds else None,
        "engine_s_per_step": {
            "p50": round(percentile(step_seconds, 50), 3),
            "p90": round(percentile(step_seconds, 90), 3),
            "p99": round(percentile(step_seconds, 99), 3),
            "n": len(step_seconds),
        },
        "_runs": [str(run_of[c]) for c in case_nos],
    }


def where_time_goes(client: Any, run_ids: list[str]) -> dict[str, Any]:
    """Split each resumed execution by the run's state history: resume → Pending → Running → Paused."""
    gaps: dict[str, list[float]] = defaultdict(list)
    for run_id in run_ids:
        states = sorted(client.read_flow_run_states(UUID(run_id)), key=lambda s: s.timestamp)
        for before, after in itertools.pairwise(states):
            label = f"{before.type.value.lower()}->{after.type.value.lower()}"
            if label in {"scheduled->pending", "pending->running", "running->paused", "running->completed"}:
                gaps[label].append((after.timestamp - before.timestamp).total_seconds())
    names = {
        "scheduled->pending": "resumed_to_claimed_by_worker",
        "pending->running": "claimed_to_engine_running",
        "running->paused": "flow_code_until_next_suspend",
        "running->completed": "flow_code_last_execution",
    }
    return {
        names[k]: {"mean_s": round(statistics.fmean(v), 4), "p90_s": round(percentile(v, 90), 4), "n": len(v)}
        for k, v in gaps.items()
    }


def compare(args: argparse.Namespace) -> None:
    """The default against the external PostgreSQL, one after the other in this invocation (these machines
    vary about 2x from day to day: the ratio is the figure, not the rates)."""
    me = [sys.executable, str(Path(__file__).resolve())]
    common = [
        *("--cases", str(args.cases), "--concurrency", str(args.concurrency), "--workers", str(args.workers)),
        *("--poll-seconds", str(args.poll_seconds), "--bare", str(args.bare), "--spawn", str(args.spawn)),
    ]
    runs: dict[str, Any] = {}
    for kind in ("embedded", "postgresql"):
        print(f"== {kind} ==", file=sys.stderr)
        done = subprocess.run([*me, *common, "--prefect-db", kind], stdout=subprocess.PIPE, check=True)
        runs[kind] = json.loads(done.stdout)
    default, external = runs["embedded"]["cases"], runs["postgresql"]["cases"]
    steps = default["engine_s_per_step"]
    rate_ratio = default["cases_per_s_sustained"] / external["cases_per_s_sustained"]
    result = {
        "default_embedded_postgresql": runs["embedded"],
        "external_postgresql": runs["postgresql"],
        "ratios": {
            "default_vs_external_case_rate": round(rate_ratio, 3),
            "default_step_p99_vs_p50": round(steps["p99"] / steps["p50"], 2),
            "default_vs_bare": runs["embedded"]["ratios"]["case_execution_rate_vs_bare"],
            "external_vs_bare": runs["postgresql"]["ratios"]["case_execution_rate_vs_bare"],
        },
        "goal_rate_at_least_0_9_of_external": rate_ratio >= 0.9,
        "goal_p99_at_most_3x_p50": steps["p99"] <= 3 * steps["p50"],
    }
    print(json.dumps(result, ensure_ascii=False, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--poll-seconds", type=float, default=1.0)
    parser.add_argument("--bare", type=int, default=60)
    parser.add_argument("--spawn", type=int, default=6)
    parser.add_argument("--pause-every", type=int, default=3, help="every N-th case waits on the customer (0: none)")
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
    parser.add_argument(
        "--compare",
        action="store_true",
        help="run the bench on the default (embedded PostgreSQL for both) and then on the external PostgreSQL, "
        "one after the other, and print both with their ratios",
    )
    parser.add_argument(
        "--api-processes",
        type=int,
        default=1,
        help="Prefect API processes: 1 (default) is one `prefect server start`; N > 1 is the Prefect side of "
        "`kefu up --scaled` (N `--no-services` API processes behind Kefu's balancer, the services in a process of "
        "their own, messaging on a scratch database of the test Redis); PostgreSQL only",
    )
    parser.add_argument("--serve", choices=["in-process", "spawning"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "in-process":
        return serve_in_process()
    if args.serve == "spawning":
        return serve_spawning()
    if args.compare:
        return compare(args)
    kefu_db = args.kefu_db or args.prefect_db
    if args.api_processes > 1 and args.prefect_db == "sqlite":
        parser.error("--api-processes > 1 needs the Prefect server on PostgreSQL (--prefect-db embedded|postgresql)")

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    stack = Stack(
        "kefu-bench-case-",
        kefu_db=kefu_db,
        KEFU_WORKER_LIMIT=str(args.workers),
        KEFU_WORKER_POLL_SECONDS=str(args.poll_seconds),
    )
    engine, api = stack.engine, stack.api
    os.environ.update({"KEFU_DATABASE_URL": stack.db_url, "PREFECT_API_URL": api})
    me = [sys.executable, str(Path(__file__).resolve())]
    with stack:
        if args.prefect_db == "postgresql":
            stack.prefect_on_postgresql("kefu_bench_prefect")
        elif args.prefect_db == "embedded":
            stack.prefect_on_embedded()
        if args.api_processes > 1:
            from tests.support.redis import scratch_redis_database

            redis_url = stack.cleanup.enter_context(scratch_redis_database())
            prefect_processes = stack.start_scaled_prefect(args.api_processes, redis_url)
        else:
            prefect_processes = [stack.start_prefect_server()]
        with temporary_settings(updates={PREFECT_API_URL: api}), get_client(sync_client=True) as client:
            runner = stack.start("worker", [*me, "--serve", "in-process"])
            case_deployment = wait_deployment(client, COMPLAINT_CASE_DEPLOYMENT, runner)
            bare_deployment = wait_deployment(client, "bench-bare-suspend/bench-bare-suspend", runner)
            print(f"bare baseline: {args.bare} suspend/resume runs...", file=sys.stderr)
            bare_result = bare_baseline(client, bare_deployment, args.bare)
            spawn_result: dict[str, Any] | None = None
            if args.spawn:
                print(f"spawn baseline: {args.spawn} runs through flow.serve...", file=sys.stderr)
                spawner = stack.start("spawner", [*me, "--serve", "spawning"])
                spawn_deployment = wait_deployment(client, "bench-bare/bench-bare-spawn", spawner)
                spawn_result = spawn_baseline(client, spawn_deployment, args.spawn)
                spawner.send_signal(signal.SIGINT)
                spawner.wait(timeout=60)
            print(f"cases: {args.cases} with {args.concurrency} in flight...", file=sys.stderr)
            staff_id, case_nos = make_cases(engine, args.cases)
            own = {"prefect_server": [p.pid for p in prefect_processes], "kefu_worker": [runner.pid]}
            own["driver"] = [os.getpgid(0)]
            cpu_before = {name: sum(map(cpu_seconds, groups)) for name, groups in own.items()}
            busy_before = machine_busy_seconds()
            cases = drive_cases(client, engine, case_deployment, staff_id, case_nos, args.concurrency, args.pause_every)
            cpu = {name: round(sum(map(cpu_seconds, groups)) - cpu_before[name], 1) for name, groups in own.items()}
            cpu["everything_else"] = round(machine_busy_seconds() - busy_before - sum(cpu.values()), 1)
            cpu["per_case_total"] = round((machine_busy_seconds() - busy_before) / len(case_nos), 3)
            cpu["available"] = round(cases["elapsed_s"] * (os.cpu_count() or 1), 1)
            runs = cases.pop("_runs")
            breakdown = where_time_goes(client, runs[: min(20, len(runs))])
            mails = deliver_to_a_sink(engine, case_nos)
        executions_per_case = len(STEPS) + 1
        case_executions_per_s = cases["cases_per_s_sustained"] * executions_per_case
        result = {
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
            "settings": {
                "workers": args.workers,
                "poll_seconds": args.poll_seconds,
                "prefect_db": args.prefect_db,
                "kefu_db": kefu_db,
                "api_processes": args.api_processes,
            },
            "cases": cases,
            "case_mails": mails,
            "where_the_time_goes": breakdown,
            "cpu_seconds_during_cases": cpu,
            "bare_suspend_resume_baseline": bare_result,
            "spawn_per_run_baseline": spawn_result,
            "ratios": {
                "case_execution_rate_vs_bare": round(case_executions_per_s / bare_result["executions_per_s"], 3),
                "in_process_vs_spawn_executions": (
                    round(bare_result["executions_per_s"] / spawn_result["executions_per_s"], 1)
                    if spawn_result
                    else None
                ),
            },
            "goal_1_case_per_s_met": cases["cases_per_s_sustained"] >= 1.0,
        }
        print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
