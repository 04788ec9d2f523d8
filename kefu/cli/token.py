"""``kefu token``: the channel gateways' API tokens — named, shown once, stored as hashes, revocable."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy import select

from kefu.cli import UsageError
from kefu.models.access import ApiToken, TokenNameTaken, add_token
from kefu.models.base import utcnow
from kefu.models.db import unit_of_work
from kefu.worktime import local_time


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("token", help="API tokens of the channel gateways (POST /api/v1/complaints)")
    actions = parser.add_subparsers(dest="token_action", required=True)
    add = actions.add_parser("add", help="make a token (shown once: only its hash is kept)")
    add.add_argument("name", help="what the token is for, e.g. hotline-gateway")
    add.set_defaults(handler=run_add)
    listing = actions.add_parser("list", help="the tokens by name (never the tokens themselves)")
    listing.set_defaults(handler=run_list)
    revoke = actions.add_parser("revoke", help="refuse a token from the next request on")
    revoke.add_argument("name")
    revoke.set_defaults(handler=run_revoke)


def run_add(args: argparse.Namespace) -> int:
    try:
        with unit_of_work() as session:
            row, token = add_token(session, args.name)
            name = row.name
    except (TokenNameTaken, ValueError) as exc:
        raise UsageError(str(exc)) from None
    print(f"kefu token add: token '{name}' (shown only now; keep it in the gateway's secret store):")
    print(token)
    return 0


def run_list(args: argparse.Namespace) -> int:
    with unit_of_work() as session:
        rows = list(session.scalars(select(ApiToken).order_by(ApiToken.id)))
        for row in rows:
            state = "active" if row.revoked_at is None else f"revoked {local_time(row.revoked_at)}"
            print(f"{row.name:<24} {row.shown_prefix}…  created {local_time(row.created_at)}  {state}")
    if not rows:
        print("no tokens")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    with unit_of_work() as session:
        row = session.scalars(select(ApiToken).where(ApiToken.name == args.name)).first()
        if row is None:
            raise UsageError(f"no token named '{args.name}' (see kefu token list)")
        if row.revoked_at is not None:
            raise UsageError(f"token '{args.name}' was revoked already")
        row.revoked_at = utcnow()
    print(f"kefu token revoke: token '{args.name}' revoked; the next request with it is refused")
    return 0
