"""``obskit logs``: placeholder until its module lands."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``logs`` subcommand."""
    parser = subparsers.add_parser("logs", help="(not yet available)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Not yet available."""
    print("obskit logs: not yet available", file=__import__("sys").stderr)
    return 2
