"""Starting and stopping the processes tests and benchmarks run, the way ``kefu up`` does (``kefu.cli.up``).

Each process gets its own session (process group), so that stopping or crashing it takes whatever it started
too; its output is appended to a log file; readiness is its health endpoint answering (``kefu up``'s own
``wait_healthy``) or a line it prints (``read_until``). Stopping is SIGTERM to the group, then SIGKILL, as
``kefu up`` stops its components.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kefu.cli import up


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def spawn(
    argv: list[str], env: dict[str, str], log_path: Path, *, cwd: Path | None = None, nice: int = 0
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own process group, output appended to ``log_path``; ``nice`` lowers its priority
    as ``kefu up`` does for a background component."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            argv,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=cwd,
            preexec_fn=(lambda: os.nice(nice)) if nice else None,
        )


def wait_healthy(
    url: str, process: subprocess.Popen[bytes], log_path: Path | None = None, timeout: float = 120
) -> None:
    """Return once ``url`` answers 200 (``kefu up``'s check); fail early if the process exits."""
    try:
        up.wait_healthy(url, process, timeout)
    except RuntimeError as exc:
        raise RuntimeError(f"{process.args!r}: {exc}" + (f"; see {log_path}" if log_path else "")) from exc


def read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> str:
    """Read a child's stdout until a line contains ``marker`` (the progress signal ``kefu up`` gives)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"'{marker}' not printed within {timeout:.0f} s; output so far:\n{''.join(seen)}")


def start_kefu_up(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """``kefu up [args]`` as a person starts it, in its own process group; read its progress with ``read_until``."""
    kefu = str(Path(sys.executable).parent / "kefu")
    return subprocess.Popen(
        [kefu, "up", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def kill_9(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """Like a crash of the machine running it: the process and whatever it started, no shutdown of any kind."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def stop(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM to the process group, SIGKILL if it is not gone within ``timeout``."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_9(process)


@contextmanager
def running(
    argv: list[str], env: dict[str, str], log_path: Path, *, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A process for the length of a ``with`` block, killed (-9) at its end if still alive."""
    process = spawn(argv, env, log_path, cwd=cwd)
    try:
        yield process
    finally:
        if process.poll() is None:
            kill_9(process)


class Restartable:
    """A process the tests start, crash (kill -9) and start again; ``start`` returns once it is ready."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = spawn(self.argv, self.env, self.log_path)
        self.wait_ready(self.process)

    def wait_ready(self, process: subprocess.Popen[bytes]) -> None:
        """Return once ``process`` is ready for the tests; subclasses know what that means."""

    def kill_9(self) -> None:
        assert self.process is not None
        kill_9(self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
