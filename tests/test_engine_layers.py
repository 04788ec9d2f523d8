"""The engine's flow-facing modules (run contract, waiting, step kit, Prefect's private parts) import nothing
from the layers that import them — flows, deployments, tasks — so flows can use them without a cycle."""

from __future__ import annotations

import subprocess
import sys

FLOW_FACING = ["kefu.engine.contract", "kefu.engine.waiting", "kefu.engine.steps", "kefu.engine.prefect_private"]
ABOVE_OR_BESIDE = ("kefu.flows", "kefu.deployments", "kefu.tasks", "kefu.intake", "kefu.cli")


def test_the_flow_facing_engine_modules_import_no_flow_deployment_or_task_module() -> None:
    script = (
        "import importlib, sys\n"
        f"for name in {FLOW_FACING!r}: importlib.import_module(name)\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('kefu.'))))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True, timeout=120
    ).stdout.split()
    assert [m for m in loaded if m.startswith(ABOVE_OR_BESIDE) or m in ("kefu.engine.runner", "kefu.engine.rest")] == []
