"""``kefu restore FILE [--force]``: replace Kefu's database with a backup; a database holding data needs --force."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kefu.models.db import default_engine
from kefu.tasks.backup import BackupError, restore_backup


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("restore", help="restore Kefu's database from a backup file (stop `kefu up` first)")
    parser.add_argument("file", type=Path, help="a file written by `kefu backup`")
    parser.add_argument("--force", action="store_true", help="replace a database that holds data")
    parser.set_defaults(handler=run_restore)


def run_restore(args: argparse.Namespace) -> int:
    engine = default_engine()  # starts the embedded server if needed
    url = engine.url.render_as_string(hide_password=False)
    try:
        kind = restore_backup(url, args.file.resolve(), force=args.force)
    except (BackupError, OSError) as exc:
        print(f"kefu restore: error: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    shown = engine.url.render_as_string(hide_password=True)
    print(f"restored {args.file} into {shown} ({kind}); run `kefu recover` if the Prefect database was lost too")
    return 0
