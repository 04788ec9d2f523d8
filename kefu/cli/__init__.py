"""The ``kefu`` command. Each sub-command lives in its own module with a ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from kefu.engine.connection import PrefectDown
from kefu.models.policy import PolicyError

# Sub-command modules, in the order ``kefu --help`` lists them.
COMMAND_MODULES = [
    "kefu.cli.deadlines",
    "kefu.cli.db",
    "kefu.cli.intake",
    "kefu.cli.policy",
    "kefu.cli.up",
    "kefu.cli.worker",
    "kefu.cli.step",
    "kefu.cli.case",
    "kefu.cli.enquiry",
    "kefu.cli.feedback",
    "kefu.cli.message",
    "kefu.cli.mail",
    "kefu.cli.backup",
    "kefu.cli.report",
    "kefu.cli.survey",
    "kefu.cli.assessment",
    "kefu.cli.restore",
    "kefu.cli.recover",
    "kefu.cli.staff",
    "kefu.cli.token",
    "kefu.cli.demo",
    "kefu.cli.access",
    "kefu.cli.customer",
    "kefu.cli.account",
    "kefu.cli.imports",
    "kefu.cli.contact",
]


class UsageError(Exception):
    """Bad arguments: reported on one line, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2 — never a traceback."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def command_of(module: str) -> str:
    """The sub-command a module registers: its own name (``import`` lives in ``imports``, a Python keyword)."""
    name = module.rpartition(".")[2]
    return "import" if name == "imports" else name


def build_parser(argv: Sequence[str] | None = None) -> ArgumentParser:
    """The parser of ``kefu``; for ``kefu <command> ...`` only that command's module is imported (each brings its
    own dependencies, about 0.7 s of imports for all of them on every call), for anything else every command."""
    parser = ArgumentParser(prog="kefu", description="Kefu — customer-service policies run as Prefect workflows.")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    first = list(sys.argv[1:] if argv is None else argv)[:1]
    chosen = [m for m in COMMAND_MODULES if [command_of(m)] == first]
    for name in chosen or COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def command_name(args: argparse.Namespace) -> str:
    """``kefu step submit``: the command as the person typed it, for one-line messages."""
    action = getattr(args, f"{args.command}_action", None)
    return " ".join(["kefu", args.command, *([action] if action else [])])


def main(argv: Sequence[str] | None = None) -> int:
    from kefu.notifications.pii import install_log_masking

    install_log_masking()  # every Kefu process started as a command: the worker and its flow runs' loggers too
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
        sys.stdout.flush()  # here, where a reader that went away (below) is handled, not at exit
    except BrokenPipeError:
        # The reader closed the pipe (`kefu case show … | head`): nothing more to say, and no traceback. Whatever is
        # still buffered goes nowhere (Python's advice: point stdout at devnull so the exit's flush is quiet).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except UsageError as exc:
        print(f"kefu {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 2
    except PrefectDown as exc:
        print(f"{command_name(args)}: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        # The embedded PostgreSQL that would not start (a too long path, a missing system tool, its own log's
        # reason): said in its message, not a traceback. Its module is loaded whenever it raised; importing it
        # here would load psycopg for every command.
        embedded = sys.modules.get("kefu.models.embedded_pg")
        if embedded is None or not isinstance(exc, embedded.EmbeddedPostgresError):
            raise
        print(f"{command_name(args)}: {exc}".rstrip(), file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
