"""``kefu`` as users run it (the console script, a clean environment without ``PREFECT_API_URL``) reaches the
running Prefect server through Kefu's settings; answers naming unknown staff are refused, never a failed case;
people read Shanghai time."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.casework.test_case_lifecycle import actions
from tests.support.processes import free_port

pytestmark = pytest.mark.usefixtures("case_worker")

KEFU = str(Path(sys.executable).parent / "kefu")
SHANGHAI_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d \+08:00")


def kefu(home: Path, api_url: str, db_url: str, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The console script as a person runs it: only PATH, HOME and Kefu's own settings in its environment."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "KEFU_PREFECT_API_URL": api_url,
        "KEFU_DATABASE_URL": db_url,
    }
    return subprocess.run([KEFU, *argv], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def run_state(run_id: Any) -> tuple[str, str | None]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run_id).state
        assert state is not None
        return state.name, state.state_details.pause_key


def wait_refused(case_no: str, key: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while ("step_refused", key) not in actions(case_no):
        assert time.monotonic() < deadline, f"the answer under {key} was never refused"
        time.sleep(0.2)


def test_kefu_step_submit_with_the_prefect_server_down_says_so_in_one_line_and_starts_no_server(
    case_db_url: str, tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/api"
    started = time.monotonic()
    data = json.dumps({"actor_staff_id": 1})
    result = kefu(tmp_path, closed, case_db_url, "step", "submit", "KF-CLI-NONE", "classify", "--data", data)
    assert result.returncode == 1
    assert result.stderr == (
        f"kefu step submit: the Prefect server at {closed} does not answer; is 'make up' running?\n"
    )
    assert result.stdout == ""
    # No temporary server: Prefect was not even imported (it would have made its home in HOME), and a temporary
    # server takes longer than this to start.
    assert not (tmp_path / ".prefect").exists()
    assert time.monotonic() - started < 30
