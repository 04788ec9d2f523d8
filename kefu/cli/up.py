"""``kefu up``: bring the whole system up on its embedded defaults and keep it up until Ctrl-C.

Order: validate the policy, start the embedded PostgreSQL under ``var/pg`` unless both databases are
configured, migrate the database, start the Prefect server and wait until it answers, then start every other
component (``kefu worker``, which registers Kefu's deployments on the work pool ``kefu`` and executes their runs,
and what later parts add). Ctrl-C (or SIGTERM) stops every component, newest first, waits for each, and then
stops the embedded PostgreSQL unless another Kefu command still uses it (that one stops it when it ends; see
``kefu.models.embedded_pg``).
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

from kefu.engine.contract import WORK_POOL
from kefu.models import embedded_pg
from kefu.models.access import TRIAL_TOKEN_NAME, first_token
from kefu.models.db import default_engine, unit_of_work
from kefu.models.directory import first_administrator
from kefu.models.migrate import upgrade
from kefu.models.policy import current_policy
from kefu.notifications.sms_providers import check_sms_settings, sms_dir
from kefu.settings import Settings, get_settings


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


BACKGROUND = 5  # the nice value of the Prefect server and the mail sink


def prefect_env(settings: Settings) -> dict[str, str]:
    """Environment shared by every process that talks to Prefect. Its server keeps its data in PostgreSQL: the
    configured one, else database ``prefect`` on the embedded server (Prefect's own SQLite stalls under load)."""
    home = (settings.var_dir / "prefect").resolve()
    return {
        "PREFECT_API_DATABASE_CONNECTION_URL": settings.resolved_prefect_database_url(),
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": settings.prefect_api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(settings.prefect_port),
        "PREFECT_UI_API_URL": settings.prefect_api_url,
    }


def components(settings: Settings) -> list[Component]:
    """Everything ``kefu up`` runs, in start order. Later parts of Kefu append theirs here."""
    python = sys.executable
    ui = settings.prefect_api_url.removesuffix("/api")
    return [
        Component(
            "prefect-server",
            [python, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(settings.prefect_port)],
            shows=f"Prefect UI (runs, approvals, artifacts): {ui}",
            health_url=f"{settings.prefect_api_url}/health",
            nice=BACKGROUND,
        ),
        Component(
            "worker",
            [python, "-m", "kefu", "worker"],
            shows=f"Kefu worker on work pool {WORK_POOL}: executes Kefu's deployments (Work Pools in the Prefect UI)",
        ),
        *intake_components(settings),
        *(
            [
                Component(
                    "mail-sink",
                    [python, "-m", "kefu.notifications.sink"],
                    shows=f"SMTP sink on {settings.smtp_host}:{settings.smtp_port}; mails shown at /outbox",
                    nice=BACKGROUND,
                )
            ]
            if settings.mail_sink_enabled
            else []
        ),
    ]


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


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
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


def stop_all(started: list[tuple[Component, subprocess.Popen[bytes]]]) -> None:
    for component, process in reversed(started):
        if process.poll() is None:
            print(f"kefu up: stopping {component.name}", flush=True)
            os.killpg(process.pid, signal.SIGTERM)
    for component, process in reversed(started):
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
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
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
        return _run(settings, prepare_only=args.prepare_only)
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


def _run(settings: Settings, *, prepare_only: bool = False) -> int:
    engine = default_engine()
    upgrade(engine)
    print(f"kefu up: database {engine.url.render_as_string(hide_password=True)} migrated")
    first_run(engine)
    if prepare_only:
        return 0

    env = {**os.environ, **prefect_env(settings)}
    log_dir = settings.var_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    started: list[tuple[Component, subprocess.Popen[bytes]]] = []

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # also when started with SIGINT ignored (a background job)
    try:
        for component in components(settings):
            log_path = Path(log_dir / f"{component.name}.log")
            log = log_path.open("ab")
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
                component.argv,
                env={**env, **component.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_lower_priority(component.nice) if component.nice else None,
            )
            started.append((component, process))
            if component.health_url:
                try:
                    wait_healthy(component.health_url, process)
                except RuntimeError as exc:
                    print(f"kefu up: {component.name} {exc}; see {log_path}", file=sys.stderr)
                    stop_all(started)
                    return 1
            print(f"kefu up: {component.name} started (log: {log_path})", flush=True)
        if settings.sms_provider == "sink":
            print(f"kefu up: SMS go to the local sink {sms_dir(settings)}; shown at /outbox/sms", flush=True)
        print("\nKefu is up:")
        for component, _ in started:
            if component.shows:
                print(f"  {component.shows}")
        print("Press Ctrl-C to stop everything.\n", flush=True)
        while True:
            for component, process in started:
                if process.poll() is not None:
                    print(
                        f"kefu up: {component.name} exited with status {process.returncode}; stopping", file=sys.stderr
                    )
                    stop_all(started)
                    return 1
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("\nkefu up: stopping everything", flush=True)
        stop_all(started)
        print("kefu up: stopped", flush=True)
        return 0
