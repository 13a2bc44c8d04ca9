"""The ``obskit`` command: ``demo``, ``doctor``, ``rules``, ``dashboard``, ``slo`` and ``logs``.

Each subcommand lives in its own module with two functions: ``register(subparsers)`` adds its
parser (and must import nothing heavy), ``run(args) -> int`` does the work and returns the exit
status. Only the chosen subcommand's heavy imports happen.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]

#: Subcommand modules, in the order ``obskit --help`` lists them.
_MODULES = ("demo", "doctor", "rules", "dashboard", "slo", "logs")


def build_parser() -> argparse.ArgumentParser:
    """The ``obskit`` argument parser with every subcommand registered."""
    from obskit import __version__
    from obskit._cli._plain import plain_help

    parser = argparse.ArgumentParser(
        prog="obskit",
        description="obskit's operator kit: a demo service, a settings check, and the Prometheus "
        "rules, Grafana dashboard, SLO report and log summary that match the telemetry obskit emits.",
    )
    parser.add_argument("--version", action="version", version=f"obskit {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for name in _MODULES:
        importlib.import_module(f"obskit._cli.{name}").register(subparsers)
    plain_help(parser)  # docstrings are reST; a terminal shows plain text
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``obskit`` command line; returns the exit status (the console script exits with it)."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``obskit rules | head``): not an error; silence the final flush.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return status
