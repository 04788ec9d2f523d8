"""``kefu db upgrade``: bring the system of record to the newest schema."""

from __future__ import annotations

import argparse
from typing import Any

from kefu.models.db import default_engine
from kefu.models.migrate import upgrade


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("db", help="database schema")
    actions = parser.add_subparsers(dest="db_action", required=True)
    up = actions.add_parser("upgrade", help="apply every migration not applied yet")
    up.set_defaults(handler=run_upgrade)


def run_upgrade(args: argparse.Namespace) -> int:
    engine = default_engine()
    upgrade(engine)
    print(f"database {engine.url.render_as_string(hide_password=True)} is at the newest schema")
    return 0
