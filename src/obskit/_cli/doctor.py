"""``obskit doctor``: placeholder until its module lands."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``doctor`` subcommand."""
    parser = subparsers.add_parser("doctor", help="(not yet available)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Not yet available."""
    print("obskit doctor: not yet available", file=__import__("sys").stderr)
    return 2
