"""``kefu policy check [FILE]``: validate a policy file before it is put in service."""

from __future__ import annotations

import argparse
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from kefu.models.policy import Duration, load_policy
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
    company = policy.company_settings()
    if company:
        print("company settings (the seeds state no value; sources: company):")
        for key, value in company.items():
            print(f"  {key}: {_shown(value)}")
    return 0


def _shown(value: object) -> str:
    """A policy value on one line, as the policy file writes it."""
    if isinstance(value, Duration):
        return str(value)
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    if isinstance(value, BaseModel):
        return _shown(dict(value))
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_shown(k)}: {_shown(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return str(value.value if isinstance(value, Enum) else value)
