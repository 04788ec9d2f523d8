"""Kefu's runner decides whether a Pending/Running run has lost the process that claimed it."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess

from kefu.engine.runner import claim_mark, claimant_gone

YOUNG, OLD = dt.timedelta(seconds=5), dt.timedelta(minutes=10)
AFTER = dt.timedelta(minutes=5)


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_run_claimed_by_a_dead_process_on_this_host_is_an_orphan_at_once() -> None:
    assert claimant_gone(claim_mark(dead_pid()), in_flight=False, state_age=YOUNG, orphan_after=AFTER)


def test_a_run_claimed_by_a_live_runner_is_left_alone() -> None:
    with subprocess.Popen(["sleep", "30"]) as other:
        try:
            assert not claimant_gone(claim_mark(other.pid), in_flight=False, state_age=OLD, orphan_after=AFTER)
        finally:
            other.kill()


def test_this_runner_knows_which_runs_it_is_executing() -> None:
    mine = claim_mark(os.getpid())
    assert not claimant_gone(mine, in_flight=True, state_age=OLD, orphan_after=AFTER)
    assert claimant_gone(mine, in_flight=False, state_age=YOUNG, orphan_after=AFTER)  # its thread died


def test_claims_from_another_host_or_unknown_claimants_are_trusted_until_the_orphan_timeout() -> None:
    elsewhere = f"kefu:not-{socket.gethostname()}:123"
    assert not claimant_gone(elsewhere, in_flight=False, state_age=YOUNG, orphan_after=AFTER)
    assert claimant_gone(elsewhere, in_flight=False, state_age=OLD, orphan_after=AFTER)
    assert not claimant_gone(None, in_flight=False, state_age=YOUNG, orphan_after=AFTER)
    assert claimant_gone("4711", in_flight=False, state_age=OLD, orphan_after=AFTER)
