"""What the benchmarks share: free ports, waiting for a process's HTTP endpoint, retrying the SQLite Prefect
server's occasional 503, percentiles."""

from __future__ import annotations

import socket
import subprocess
import time
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def post_with_retries(url: str, body: dict[str, Any]) -> Any:
    """The SQLite Prefect server answers 503 now and then: retry with backoff."""
    delay = 0.2
    for _ in range(10):
        response = httpx.post(url, json=body, timeout=30)
        if response.status_code < 300:
            return response.json()
        if response.status_code < 500:
            response.raise_for_status()
        time.sleep(delay)
        delay = min(delay * 2, 5)
    response.raise_for_status()
    raise RuntimeError(f"{url}: {response.status_code}")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
