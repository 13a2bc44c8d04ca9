"""reST inline markup taken out of help text: ``obskit ... --help`` shows plain text.

Descriptions are often a module's docstring, written in reST for the API docs: ``literal``,
:func:`role`, *emphasis*. A terminal shows that markup as is, so every parser's text goes
through :func:`plain_text` once, when the ``obskit`` parser is built (:func:`plain_help`).
"""

from __future__ import annotations

import argparse
import re

__all__ = ["plain_help", "plain_text"]

# :role:`target`, :role:`~a.b.C` (the last part), :role:`title <target>` (the title).
_ROLE = re.compile(r":[A-Za-z][\w.+-]*(?::[A-Za-z][\w.+-]*)?:`([^`]+)`")
_LITERAL = re.compile(r"``(.+?)``", re.DOTALL)
# `text` and `text`_ (interpreted text, a link); not a `` left over from a literal.
_INTERPRETED = re.compile(r"(?<![`\w])`([^`]+)`_{0,2}(?![`\w])")
_STRONG = re.compile(r"(?<![\w*])\*\*(\S(?:.*?\S)?)\*\*(?![\w*])", re.DOTALL)
_EMPHASIS = re.compile(r"(?<![\w*])\*(\S(?:[^*]*?\S)?)\*(?![\w*])")
_DOUBLE_COLON = re.compile(r"(\S)::(?=\s*$)", re.MULTILINE)
_LONE_DOUBLE_COLON = re.compile(r"^\s*::\s*$\n?", re.MULTILINE)
_DIRECTIVE = re.compile(r"^\s*\.\. [\w-]+::.*$\n?", re.MULTILINE)


def _role_target(match: re.Match[str]) -> str:
    target = match.group(1)
    titled = re.fullmatch(r"(.+?)\s*<[^<>]+>", target, re.DOTALL)
    if titled:
        return titled.group(1)
    if target.startswith("~"):
        return target[1:].rsplit(".", 1)[-1]
    return target.lstrip("!")


def plain_text(text: str) -> str:
    """``text`` with reST inline markup replaced by the text it marks up."""
    text = _DIRECTIVE.sub("", text)
    text = _LONE_DOUBLE_COLON.sub("", text)
    text = _DOUBLE_COLON.sub(r"\1:", text)
    text = _ROLE.sub(_role_target, text)
    text = _LITERAL.sub(r"\1", text)
    text = _INTERPRETED.sub(r"\1", text)
    text = _STRONG.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\1", text)
    return text.replace("\\ ", "")


def plain_help(parser: argparse.ArgumentParser) -> None:
    """Make the description, epilog and argument help of ``parser`` and its subparsers plain text."""
    if parser.description:
        parser.description = plain_text(parser.description)
    if parser.epilog:
        parser.epilog = plain_text(parser.epilog)
    for action in parser._actions:
        if isinstance(action.help, str):
            action.help = plain_text(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for listed in action._choices_actions:
                if isinstance(listed.help, str):
                    listed.help = plain_text(listed.help)
            for subparser in dict.fromkeys(action.choices.values()):
                plain_help(subparser)
