"""``kefu policy check [FILE]``: validate a policy file before it is put in service."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kefu.models.policy import load_policy
from kefu.settings import get_settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("policy", help="the policy file")
    actions = parser.add_subparsers(dest="policy_action", required=True)
    check = actions.add_parser("check", help="validate a policy file (default: the configured one)")
    check.add_argument("file", nargs="?", type=Path)
    check.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace) -> int:
    path: Path = args.file or get_settings().policy_file
    policy = load_policy(path)  # PolicyError → one message, exit 2 (kefu.cli.main)
    severities = ", ".join(
        f"{s.value} ({len(r.milestones)} milestones)" for s, r in policy.complaints.severities.items()
    )
    print(f"policy file {path} is valid: {severities}")
    return 0
