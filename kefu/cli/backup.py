"""``kefu backup [--to DIR]``: back up Kefu's database now, then delete the backups past the policy's retention."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from kefu.models.db import default_engine
from kefu.models.policy import current_policy
from kefu.settings import get_settings
from kefu.tasks.backup import BackupError, back_up_and_prune


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "backup", help="back up Kefu's database (pg_dump or SQLite's backup API), then apply the retention policy"
    )
    parser.add_argument("--to", type=Path, help="directory to write to (default: KEFU_BACKUP_DIR, else var/backups)")
    parser.set_defaults(handler=run_backup)


def run_backup(args: argparse.Namespace) -> int:
    policy = current_policy()
    directory = (args.to or get_settings().resolved_backup_dir).resolve()
    url = default_engine().url.render_as_string(hide_password=False)  # starts the embedded server if needed
    try:
        done = back_up_and_prune(url, directory, policy.backups, now=dt.datetime.now(dt.UTC), zone=policy.timezone)
    except (BackupError, OSError) as exc:
        print(f"kefu backup: error: {exc}", file=sys.stderr)
        return 1
    print(f"backup written: {done.file} ({done.file.stat().st_size} bytes)")
    rule = f"older than {policy.backups.keep_days} days, newest {policy.backups.keep_at_least} kept"
    for path in done.deleted:
        print(f"deleted past retention ({rule}): {path}")
    return 0
