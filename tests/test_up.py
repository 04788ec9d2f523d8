"""``kefu up`` (the first README command's last step) brings the system up, shows where everything is,
serves Kefu's deployments to the Prefect server, and Ctrl-C stops it all cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.prefect_fixtures import free_port, read_until

KEFU = str(Path(sys.executable).parent / "kefu")


@pytest.mark.slow
def test_kefu_up_serves_the_deployments_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEFU_")},  # other fixtures' settings
        "KEFU_VAR_DIR": str(tmp_path / "var"),
        "KEFU_PREFECT_PORT": str(port),
        "KEFU_PREFECT_API_URL": api,
        "KEFU_INTAKE_PORT": str(free_port()),
        "KEFU_SMTP_PORT": str(free_port()),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PREFECT_API_URL", None)
    process = subprocess.Popen(
        [KEFU, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output = read_until(process, "Press Ctrl-C", timeout=150)
        assert f"http://127.0.0.1:{port}" in output
        assert "migrated" in output
        assert (tmp_path / "var" / "kefu.db").exists()
        expected = {"calendar-check", "complaint-case", "case-deadlines", "deliver-mail"}
        names: set[str] = set()
        deadline = time.monotonic() + 60
        while not expected <= names and time.monotonic() < deadline:
            response = httpx.post(f"{api}/deployments/filter", json={}, timeout=10)
            names = {d["name"] for d in response.json()}
            if not expected <= names:
                time.sleep(0.5)  # the runner registers its deployments shortly after it starts
        assert expected <= names
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        assert "stopped" in rest
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{api}/health", timeout=2)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
