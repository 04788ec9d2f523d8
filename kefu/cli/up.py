"""``kefu up``: bring the whole system up on its embedded defaults and keep it up until Ctrl-C.

Order: validate the policy, start the embedded PostgreSQL under ``var/pg`` unless both databases are
configured, migrate the database, start the Prefect server and wait until it answers, then start every other
component (``kefu worker``, which registers Kefu's deployments on the work pool ``kefu`` and executes their runs,
and what later parts add). A component that exits is started again, at most ``MAX_RESTARTS`` times a minute; then
``kefu up`` gives up and stops everything. Ctrl-C (or SIGTERM) stops every component, newest first, waits for
each, and then stops the embedded PostgreSQL unless another Kefu command still uses it (that one stops it when it
ends; see ``kefu.models.embedded_pg``).

``kefu up --scaled`` starts the scaled topology instead, on one machine (the README's "Production" section says
which process can run elsewhere): the Prefect database migrated once, ``KEFU_PREFECT_API_PORTS`` API processes
(``prefect server start --no-services``) behind a round-robin balancer on the usual Prefect port, Prefect's
background services in one process of their own, Prefect's messaging on Redis (``prefect-redis``) and
``KEFU_SCALED_WORKERS`` Kefu workers, beside the usual intake, dispatcher and mail sink. PostgreSQL only.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from kefu.engine.connection import prefect_auth_string
from kefu.engine.contract import WORK_POOL
from kefu.models import embedded_pg
from kefu.models.access import TRIAL_TOKEN_NAME, first_token
from kefu.models.db import default_engine, unit_of_work
from kefu.models.directory import first_administrator
from kefu.models.migrate import upgrade
from kefu.models.policy import current_policy
from kefu.notifications.sms_providers import check_sms_settings, sms_dir
from kefu.settings import PREFECT_UI_BASE, Settings, get_settings


@dataclass
class Component:
    name: str
    argv: list[str]
    shows: str = ""  # what a person opens, printed once the component is up
    health_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    # Scheduling priority (added to the nice value). On one machine the front door comes first: a burst of
    # complaints must not queue behind the Prefect server creating their runs, which can trail by seconds.
    # Not for Kefu's own processes: they take the same SQLite write lock as intake, and one preempted while
    # holding it would make the front door wait (priority inversion: measured, up to 86 ms).
    nice: int = 0
    once: bool = False  # a step that must finish (status 0) before the next component starts, e.g. a migration
    # Started without waiting for the components before it to answer (they are waited for together): peers such as
    # several API processes, each of which takes a while to import and start.
    with_previous: bool = False


MAX_RESTARTS = 3  # a component restarted this often within RESTART_WINDOW makes ``kefu up`` give up
RESTART_WINDOW = 60.0
BACKGROUND = 5  # the nice value of the Prefect server and the mail sink


def prefect_env(settings: Settings) -> dict[str, str]:
    """Environment shared by every process that talks to Prefect. Its server keeps its data in PostgreSQL: the
    configured one, else database ``prefect`` on the embedded server (Prefect's own SQLite stalls under load)."""
    home = (settings.var_dir / "prefect").resolve()
    auth_string = prefect_auth_string(settings, create=True) or ""
    return {
        "PREFECT_API_DATABASE_CONNECTION_URL": settings.resolved_prefect_database_url(),
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": settings.prefect_api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(settings.prefect_port),
        # Nothing reaches the server around the operators' entrance (kefu.desk): Kefu's processes send the auth
        # string, people come through the entrance's proxy, which adds it; changes need Prefect's CSRF token, and
        # browsers may call the API from the entrance's origin only. The UI learns the entrance's address from
        # the proxy (it rewrites ui-settings), so its API URL here is the entrance's.
        "PREFECT_SERVER_API_AUTH_STRING": auth_string,
        "PREFECT_API_AUTH_STRING": auth_string,
        "PREFECT_SERVER_CSRF_PROTECTION_ENABLED": "true",
        "PREFECT_SERVER_CORS_ALLOWED_ORIGINS": settings.desk_url,
        "PREFECT_UI_API_URL": f"{settings.desk_url}/api",
        "PREFECT_UI_SERVE_BASE": PREFECT_UI_BASE,
        "PREFECT_UI_URL": settings.prefect_ui_url,  # "View at" links in the runs' logs: through the entrance
        # The classic UI by default: Kefu's step forms are written for its schema form (kefu.engine.forms), and it
        # shows the entrance's refusal of a step (403 with a zh-CN detail); the new UI stays reachable.
        "PREFECT_SERVER_UI_V2_ENABLED": "false",
    }


def components(settings: Settings) -> list[Component]:
    """Everything ``kefu up`` runs, in start order. Later parts of Kefu append theirs here."""
    python = sys.executable
    ui = settings.prefect_api_url.removesuffix("/api")
    return [
        Component(
            "prefect-server",
            [python, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(settings.prefect_port)],
            shows=f"Prefect server on {ui} (loopback, auth string required: open it through the entrance)",
            health_url=f"{settings.prefect_api_url}/health",
            nice=BACKGROUND,
        ),
        Component(
            "worker",
            [python, "-m", "kefu", "worker"],
            shows=f"Kefu worker on work pool {WORK_POOL}: executes Kefu's deployments (Work Pools in the Prefect UI)",
        ),
        # The entrance starts beside the intake (both are web apps that take a while to import) and is waited for
        # with it.
        *intake_components(settings)[:1],
        desk_component(settings),
        *intake_components(settings)[1:],
        *(
            [
                Component(
                    "mail-sink",
                    [python, "-m", "kefu.notifications.sink"],
                    shows=f"SMTP sink on {settings.smtp_host}:{settings.smtp_port}; mails shown at "
                    f"{settings.desk_url}/outbox",
                    nice=BACKGROUND,
                )
            ]
            if settings.mail_sink_enabled
            else []
        ),
    ]


def scaled_prefect_env(settings: Settings) -> dict[str, str]:
    """What several Prefect API processes and their services process must share beyond the database: messaging,
    its cache, event ordering, concurrency leases and background tasks on Redis instead of in one process's memory
    (Prefect refuses ``--workers`` > 1 with any of them in memory). None of them migrates the database at start:
    ``prefect server database upgrade`` runs once before them (two API processes migrating a fresh database at
    once made one exit)."""
    return {
        "PREFECT_MESSAGING_BROKER": "prefect_redis.messaging",
        "PREFECT_MESSAGING_CACHE": "prefect_redis.messaging",
        "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
        "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
        "PREFECT_REDIS_MESSAGING_URL": settings.redis_url,
        "PREFECT_SERVER_DOCKET_URL": settings.redis_url,
        "PREFECT_SERVER_DATABASE_MIGRATE_ON_START": "false",
    }


def scaled_components(settings: Settings) -> list[Component]:
    """Everything ``kefu up --scaled`` runs, in start order."""
    python = sys.executable
    prefect = [python, "-m", "prefect", "server"]
    ui = settings.prefect_api_url.removesuffix("/api")
    api_processes = [
        Component(
            f"prefect-api-{number}",
            [*prefect, "start", "--no-services", "--host", "127.0.0.1", "--port", str(port)],
            health_url=f"http://127.0.0.1:{port}/api/health",
            nice=BACKGROUND,
            with_previous=number > 1,
            # Started together, they would all register Prefect's block types at once (duplicate-key errors): the
            # first does it.
            env={} if number == 1 else {"PREFECT_SERVER_REGISTER_BLOCKS_ON_START": "false"},
        )
        for number, port in enumerate(settings.prefect_api_ports, start=1)
    ]
    backends = [arg for port in settings.prefect_api_ports for arg in ("--backend", f"127.0.0.1:{port}")]
    workers = [
        Component(
            f"worker-{number}",
            [python, "-m", "kefu", "worker", *([] if number == 1 else ["--no-register"])],
            shows=f"Kefu worker {number} on work pool {WORK_POOL}"
            + (" (registers the deployments)" if number == 1 else ""),
        )
        for number in range(1, settings.scaled_workers + 1)
    ]
    return [
        Component("prefect-migrate", [*prefect, "database", "upgrade", "-y"], once=True),
        *api_processes,
        Component(
            "prefect-balancer",
            [python, "-m", "kefu.engine.balancer", "--listen", f"127.0.0.1:{settings.prefect_port}", *backends],
            shows=f"Prefect server on {ui} (loopback, auth string required), balanced over "
            + ", ".join(f"127.0.0.1:{p}" for p in settings.prefect_api_ports),
            health_url=f"{settings.prefect_api_url}/health",
        ),
        Component(
            "prefect-services",
            [*prefect, "services", "start"],
            shows=f"Prefect services (scheduler, triggers, events) in one process; messaging on {settings.redis_url}",
            nice=BACKGROUND,
        ),
        *workers,
        *[c for c in components(settings) if c.name not in {"prefect-server", "worker"}],
    ]


def scaled_refusal(settings: Settings) -> str | None:
    """Why ``--scaled`` cannot start with these settings (one line), or None."""
    for what, url in (
        ("KEFU_DATABASE_URL", settings.database_url),
        ("KEFU_PREFECT_DATABASE_URL", settings.prefect_database_url or ""),
    ):
        if url.startswith("sqlite"):
            return f"--scaled needs PostgreSQL for Kefu and Prefect; {what} is SQLite ({url})"
    if settings.prefect_port in settings.prefect_api_ports:
        return f"KEFU_PREFECT_PORT {settings.prefect_port} is also in KEFU_PREFECT_API_PORTS (the balancer's port)"
    import redis

    try:
        with redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=3) as client:
            client.ping()
    except (redis.RedisError, ValueError) as exc:
        return f"--scaled needs Redis; {settings.redis_url} (KEFU_REDIS_URL) does not answer: {exc}"
    return None


def desk_component(settings: Settings) -> Component:
    """The operators' entrance: staff sign-in, the Prefect UI and API behind it, the outbox pages."""
    python = sys.executable
    return Component(
        "desk",
        [
            python,
            "-m",
            "uvicorn",
            "kefu.desk.app:create_app",
            "--factory",
            "--host",
            settings.desk_host,
            "--port",
            str(settings.desk_port),
            "--ws",
            "websockets-sansio",
            "--no-proxy-headers",
            "--no-server-header",
        ],
        shows=f"Operators' entrance (员工登录; Prefect UI, approvals, outbox): {settings.desk_url}",
        health_url=f"http://127.0.0.1:{settings.desk_port}/healthz",
        with_previous=True,
    )


def intake_components(settings: Settings) -> list[Component]:
    """The complaint form and API (uvicorn) and the dispatcher that starts one case flow per complaint."""
    python = sys.executable
    shown_host = "127.0.0.1" if settings.intake_host in {"0.0.0.0", "::"} else settings.intake_host  # noqa: S104
    base = f"http://{shown_host}:{settings.intake_port}"
    return [
        Component(
            "intake",
            [
                python,
                "-m",
                "uvicorn",
                "kefu.intake.app:create_app",
                "--factory",
                "--host",
                settings.intake_host,
                "--port",
                str(settings.intake_port),
                # The client is the connection's peer: X-Forwarded-For is believed only from the configured proxies
                # (KEFU_INTAKE_TRUSTED_PROXIES, applied inside the app), never from uvicorn's default 127.0.0.1.
                "--no-proxy-headers",
                "--no-server-header",
            ],
            shows=f"Complaint form (投诉表单): {base}  ·  status: {base}/status  ·  gateway API: {base}/docs",
            health_url=f"{base}/healthz",
        ),
        Component(
            "intake-dispatcher",
            [python, "-m", "kefu.intake.dispatcher"],
            shows="Intake dispatcher: starts one complaint-case flow run per complaint",
        ),
    ]


def _lower_priority(amount: int) -> Callable[[], None]:
    def lower() -> None:  # in the child, before exec: the process and everything it starts
        os.nice(amount)

    return lower


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.2
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with status {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - local address
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(delay)  # polling a process we do not control; there is nothing to await
        delay = min(delay * 1.5, 2.0)
    raise RuntimeError(f"did not answer {url} within {timeout:.0f} s")


def start_component(component: Component, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and modules
            component.argv,
            env={**env, **component.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_lower_priority(component.nice) if component.nice else None,
        )


def stop_all(started: list[tuple[Component, subprocess.Popen[bytes]]]) -> None:
    """Newest first, each gone before the next is told: a worker still reaches the API while it stops (it reports
    its runs and its own end), and the API processes outlive every client of theirs."""
    for component, process in reversed(started):
        if process.poll() is not None:
            continue
        print(f"kefu up: stopping {component.name}", flush=True)
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            print(f"kefu up: {component.name} did not stop in 20 s; killing it", flush=True)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("up", help="start the whole system on its embedded defaults (Ctrl-C stops it)")
    parser.add_argument(
        "--prepare-only",
        action="store_true",
        help="check the policy, migrate, create the first administrator and trial token on a new database, and "
        "exit without starting anything (an installation's init step)",
    )
    parser.add_argument(
        "--scaled",
        action="store_true",
        help="the scaled topology on this machine: several Prefect API processes, their services apart, Redis "
        "messaging, several Kefu workers (PostgreSQL and Redis needed)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    scaled = bool(getattr(args, "scaled", False))
    if scaled and (refusal := scaled_refusal(settings)):
        print(f"kefu up: {refusal}", file=sys.stderr)
        return 1
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    policy = current_policy()
    print(f"kefu up: policy {settings.policy_file} is valid ({len(policy.complaints.severities)} severities)")
    problems = check_sms_settings(settings)
    if problems:
        print(f"kefu up: KEFU_SMS_PROVIDER={settings.sms_provider}: " + "; ".join(problems), file=sys.stderr)
        return 1
    if settings.uses_embedded_postgres:
        embedded_pg.attach(settings.embedded_pg_dir)
        print(f"kefu up: embedded PostgreSQL running on {settings.embedded_pg_dir} (databases kefu, prefect)")
    try:
        return _run(settings, prepare_only=args.prepare_only, scaled=scaled)
    finally:
        if settings.uses_embedded_postgres and embedded_pg.release(settings.embedded_pg_dir):
            print("kefu up: embedded PostgreSQL stopped", flush=True)


def first_run(engine: Engine) -> None:
    """On an empty directory: the first administrator with a one-time password; on a database without tokens: a
    token for trying the gateway API. Each is printed once, here, and kept only as a hash."""
    with unit_of_work(engine) as session:
        admin = first_administrator(session)
        token = first_token(session)
        login = admin[0].login if admin else None
    if admin:
        print(
            f"kefu up: first administrator created: sign-in name '{login}', one-time password {admin[1]}\n"
            "         (shown only now and stored only as a hash; it must be changed at the first sign-in)",
            flush=True,
        )
    if token:
        print(
            f"kefu up: API token '{TRIAL_TOKEN_NAME}' for trying the gateway API (shown only now; "
            f"kefu token revoke {TRIAL_TOKEN_NAME} ends it):\n         {token}",
            flush=True,
        )


def _run(settings: Settings, *, prepare_only: bool = False, scaled: bool = False) -> int:
    engine = default_engine()
    upgrade(engine)
    print(f"kefu up: database {engine.url.render_as_string(hide_password=True)} migrated")
    first_run(engine)
    if prepare_only:
        return 0

    env = {**os.environ, **prefect_env(settings), **(scaled_prefect_env(settings) if scaled else {})}
    log_dir = settings.var_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    started: list[tuple[Component, subprocess.Popen[bytes]]] = []

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # also when started with SIGINT ignored (a background job)
    try:
        waiting: list[tuple[Component, subprocess.Popen[bytes]]] = []  # started, not yet answering
        for component in scaled_components(settings) if scaled else components(settings):
            if not component.with_previous and not _all_answer(waiting, log_dir, started):
                return 1
            log_path = Path(log_dir / f"{component.name}.log")
            process = start_component(component, env, log_path)
            started.append((component, process))
            if component.once:
                process.wait()  # stopped with the others on Ctrl-C meanwhile
                started.pop()
                if process.returncode != 0:
                    print(
                        f"kefu up: {component.name} failed (status {process.returncode}); see {log_path}",
                        file=sys.stderr,
                    )
                    stop_all(started)
                    return 1
                print(f"kefu up: {component.name} done (log: {log_path})", flush=True)
                continue
            waiting.append((component, process))
        if not _all_answer(waiting, log_dir, started):
            return 1
        if settings.sms_provider == "sink":
            print(
                f"kefu up: SMS go to the local sink {sms_dir(settings)}; shown at {settings.desk_url}/outbox/sms",
                flush=True,
            )
        print("\nKefu is up:")
        for component, _ in started:
            if component.shows:
                print(f"  {component.shows}")
        print(
            f"Sign in at {settings.desk_url}/signin (the first administrator: the sign-in name and one-time "
            "password printed when the database was created; `kefu staff add` adds people).",
        )
        print("Press Ctrl-C to stop everything.\n", flush=True)
        return _keep_up(started, env, log_dir)
    except KeyboardInterrupt:
        print("\nkefu up: stopping everything", flush=True)
        stop_all(started)
        print("kefu up: stopped", flush=True)
        return 0


def _all_answer(
    waiting: list[tuple[Component, subprocess.Popen[bytes]]],
    log_dir: Path,
    started: list[tuple[Component, subprocess.Popen[bytes]]],
) -> bool:
    """Wait until each component in ``waiting`` answers its health check, then empty ``waiting``; on a failure,
    say which and stop everything started."""
    for component, process in waiting:
        log_path = log_dir / f"{component.name}.log"
        if component.health_url:
            try:
                wait_healthy(component.health_url, process)
            except RuntimeError as exc:
                print(f"kefu up: {component.name} {exc}; see {log_path}", file=sys.stderr)
                stop_all(started)
                return False
        print(f"kefu up: {component.name} started (log: {log_path})", flush=True)
    waiting.clear()
    return True


def _keep_up(started: list[tuple[Component, subprocess.Popen[bytes]]], env: dict[str, str], log_dir: Path) -> int:
    """Start again a component that exited, in its place (stopping stays newest first); give up, stopping
    everything, when one needed more than ``MAX_RESTARTS`` restarts within ``RESTART_WINDOW`` seconds."""
    restarts: dict[str, list[float]] = {}
    while True:
        for index, (component, process) in enumerate(started):
            if process.poll() is None:
                continue
            now = time.monotonic()
            recent = [t for t in restarts.get(component.name, []) if now - t < RESTART_WINDOW]
            if len(recent) >= MAX_RESTARTS:
                print(
                    f"kefu up: {component.name} exited with status {process.returncode} again, after {len(recent)} "
                    f"restarts within {RESTART_WINDOW:.0f} s; giving up (see {log_dir / component.name}.log)",
                    file=sys.stderr,
                    flush=True,
                )
                stop_all(started)
                return 1
            restarts[component.name] = [*recent, now]
            print(
                f"kefu up: {component.name} exited with status {process.returncode}; starting it again",
                file=sys.stderr,
                flush=True,
            )
            started[index] = (component, start_component(component, env, log_dir / f"{component.name}.log"))
        time.sleep(1.0)  # child processes we do not control; polling them is the only signal
