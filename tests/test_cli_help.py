"""``obskit ... --help`` is plain text: no reST markup from the docstrings it is made of."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from obskit._cli import build_parser

#: What reST inline markup looks like in a terminal.
MARKUP = re.compile(r"``|:[a-z]+:`|`[^`\s][^`]*`|\*\*\S")


def _parsers(
    parser: argparse.ArgumentParser, prog: str = "obskit"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from _parsers(subparser, f"{prog} {name}")


def _every_help() -> list[tuple[str, str]]:
    return [(prog, parser.format_help()) for prog, parser in _parsers(build_parser())]


def test_every_command_is_walked():
    progs = {prog for prog, _ in _every_help()}
    assert {
        "obskit",
        "obskit logs",
        "obskit logs summarize",
        "obskit doctor",
        "obskit rules",
        "obskit slo report",
    } <= progs


_HELP = _every_help()


@pytest.mark.parametrize(("prog", "text"), _HELP, ids=[prog for prog, _ in _HELP])
def test_help_has_no_rest_markup(prog, text):
    assert not MARKUP.search(text), f"{prog} --help shows reST markup: {MARKUP.search(text)}"


def test_logs_help_names_the_command_plainly():
    help_text = dict(_every_help())["obskit logs"]
    assert "obskit logs summarize: error lines" in help_text
    assert "(.gz ones decompressed)" in help_text


def test_logs_help_in_a_real_process_is_plain():
    src = Path(__file__).resolve().parent.parent / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "obskit", "logs", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert "obskit logs summarize" in done.stdout
    assert not MARKUP.search(done.stdout), done.stdout


@pytest.mark.parametrize(
    ("rest", "plain"),
    [
        ("``obskit logs summarize``: run it", "obskit logs summarize: run it"),
        ("see :func:`obskit.configure`", "see obskit.configure"),
        ("see :class:`~obskit.LoggingContext`", "see LoggingContext"),
        ("see :ref:`the guide <guide-label>`", "see the guide"),
        ("see :py:meth:`Redactor.scrub`", "see Redactor.scrub"),
        ("*emphasis* and **strong** and `interpreted`", "emphasis and strong and interpreted"),
        ("files (*.log, *.gz) and 2 * 3", "files (*.log, *.gz) and 2 * 3"),
        ("For example::\n\n    obskit doctor", "For example:\n\n    obskit doctor"),
        ("a multi-line ``literal\nvalue``", "a multi-line literal\nvalue"),
        ("plain text stays", "plain text stays"),
    ],
)
def test_plain_text_takes_out_inline_markup(rest, plain):
    from obskit._cli._plain import plain_text

    assert plain_text(rest) == plain
