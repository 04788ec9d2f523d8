"""``kefu deadlines``: the contract automated acceptance checks call."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kefu.cli import main

KEFU = str(Path(sys.executable).parent / "kefu")


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main(["deadlines", *args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, dict)
    return data


def milestones(data: dict[str, object]) -> dict[str, dict[str, object]]:
    items = data["milestones"]
    assert isinstance(items, list)
    return {m["id"]: m for m in items}


def test_the_installed_command_prints_the_contract_json() -> None:
    result = subprocess.run(
        [KEFU, "deadlines", "--severity", "important", "--received-at", "2026-09-30T16:00:00+08:00", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(result.stdout)
    assert data["severity"] == "important"
    assert data["received_at"] == "2026-09-30T16:00:00+08:00"
    assert data["warnings"] == []
    ids = ["supervisor_report", "first_contact", "progress_update", "resolution"]
    assert [m["id"] for m in data["milestones"]] == ids
    resolution = data["milestones"][3]
    assert resolution["due_at"] == "2026-10-15T18:00:00+08:00"
    assert resolution["unit"] == "working_days"
    assert resolution["target"] == 7
    assert resolution["provisional"] is False
    assert "国庆节" in resolution["explanation"] and "2026-10-10" in resolution["explanation"]
    for milestone in data["milestones"]:
        assert set(milestone) >= {"id", "due_at", "unit", "target", "provisional", "explanation"}
        assert dt.datetime.fromisoformat(milestone["due_at"]).utcoffset() == dt.timedelta(hours=8)


def test_callback_appears_only_with_resolved_at(capsys: pytest.CaptureFixture[str]) -> None:
    without = run_json(capsys, "--severity", "general", "--received-at", "2026-02-10T09:00:00+08:00")
    assert "callback" not in milestones(without)
    data = run_json(
        capsys,
        "--severity", "general", "--received-at", "2026-02-10T09:00:00+08:00",
        "--resolved-at", "2026-02-12T16:00:00+08:00",
    )  # fmt: skip
    callback = milestones(data)["callback"]
    assert callback["due_at"] == "2026-02-24T18:00:00+08:00"
    assert callback["unit"] == "working_days" and callback["target"] == 3


def test_a_time_without_offset_is_shanghai_time_and_other_offsets_are_converted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    local = run_json(capsys, "--severity", "major", "--received-at", "2026-03-10T10:00")
    utc = run_json(capsys, "--severity", "major", "--received-at", "2026-03-10T02:00:00Z")
    assert local["received_at"] == utc["received_at"] == "2026-03-10T10:00:00+08:00"
    assert milestones(local)["task_force"]["due_at"] == "2026-03-10T11:00:00+08:00"
    assert local["milestones"] == utc["milestones"]


def test_key_accounts_get_the_tighter_targets(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "--severity", "general", "--received-at", "2026-03-10T10:00", "--key-account")
    assert milestones(data)["first_contact"]["due_at"] == "2026-03-10T22:00:00+08:00"


def test_the_year_boundary_is_provisional_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(
        capsys,
        "--severity", "important", "--received-at", "2026-12-28T10:00:00+08:00",
        "--resolved-at", "2026-12-30T10:00:00+08:00",
    )  # fmt: skip
    items = milestones(data)
    assert items["callback"]["due_at"] == "2027-01-05T18:00:00+08:00"
    assert items["callback"]["provisional"] is True
    assert items["resolution"]["provisional"] is True  # 7 working days reach into January 2027
    warnings = data["warnings"]
    assert isinstance(warnings, list) and any("2027" in w for w in warnings)


def test_the_table_names_holidays_skipped_and_make_up_days_counted(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deadlines", "--severity", "major", "--received-at", "2026-02-13T10:00:00+08:00"]) == 0
    out = capsys.readouterr().out
    assert "resolution" in out and "2026-03-12T18:00:00+08:00" in out
    assert "春节" in out
    assert "计入调休上班日：2026-02-14 调休上班（星期六）" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--severity", "critical", "--received-at", "2026-03-10T10:00"], "invalid choice: 'critical'"),
        (["--severity", "general", "--received-at", "yesterday"], "is not an ISO 8601 time"),
        (["--severity", "general", "--received-at", "2026-02-30T10:00"], "is not an ISO 8601 time"),
        (
            ["--severity", "general", "--received-at", "2026-03-10T10:00", "--resolved-at", "2026-03-09T10:00"],
            "--resolved-at is before --received-at",
        ),
        (["--severity", "general"], "the following arguments are required: --received-at"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_and_no_traceback(args: list[str], message: str) -> None:
    result = subprocess.run([KEFU, "deadlines", *args, "--json"], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stdout == ""
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_a_reader_that_closes_the_pipe_early_gets_no_traceback() -> None:
    """`kefu deadlines … | head -1`: the reader goes away before Kefu has written; no traceback on the terminal."""
    kefu = str(Path(sys.executable).parent / "kefu")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    argv = [
        kefu,
        "deadlines",
        "--severity",
        "major",
        "--received-at",
        "2026-09-30T16:00",
        "--resolved-at",
        "2026-10-20T10:00",
    ]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # closed before Kefu's first write (its imports alone take longer)
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 1
    assert stderr == ""
