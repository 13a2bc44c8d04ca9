"""``obskit logs summarize``: error lines of obskit JSON logs grouped by message pattern.

Reads files (``.gz`` ones decompressed) or stdin line by line, keeping only the groups, so log
files of any size work. Exit status: 0, or 1 with ``--fail-on-errors`` when any error group was
found, or 2 when a file cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from obskit._cli._logsummary import Group, Summary

_STDIN = "-"
_GZIP_MAGIC = b"\x1f\x8b"


def register(subparsers: Any) -> None:
    """Add the ``logs`` subcommand and its ``summarize`` subcommand (imports nothing heavy)."""
    logs = subparsers.add_parser("logs", help="summarise obskit JSON log files", description=__doc__)
    commands = logs.add_subparsers(title="commands", metavar="COMMAND", required=True)
    parser = commands.add_parser(
        "summarize",
        help="group error lines by message pattern",
        description="Group the error lines of obskit JSON logs by logger, exception type and "
        "message pattern (numbers, ids, quoted strings, addresses... replaced by placeholders), "
        "most frequent first. Lines that are not JSON are counted and skipped.",
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help="log files (.gz too); '-' or none: stdin")
    parser.add_argument(
        "--level",
        default="ERROR",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        help="lowest level counted as an error (default: ERROR)",
    )
    parser.add_argument(
        "--top", type=_count, default=20, help="show the N largest groups (0: all; default 20)"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    parser.add_argument(
        "--fail-on-errors", action="store_true", help="exit with status 1 when any error group is found"
    )
    parser.set_defaults(run=run)


def _count(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {number}")
    return number


def run(args: argparse.Namespace) -> int:
    """Summarise the files (or stdin) and print the result; returns the exit status."""
    from obskit._cli._logsummary import Summary

    paths: list[str] = args.files or [_STDIN]
    missing = _unreadable(paths)
    if missing:
        print(f"obskit logs summarize: {missing}", file=sys.stderr)
        return 2
    summary = Summary(min_level=args.level)
    status = 0
    for path in paths:
        try:
            summary.feed(_lines(path))
        except (OSError, EOFError) as exc:  # a corrupt or truncated .gz: report it, keep the rest
            print(f"obskit logs summarize: {path}: cannot read to the end: {exc}", file=sys.stderr)
            status = 2
    top = args.top or None
    if args.format == "json":
        print(json.dumps(summary.to_dict(top), ensure_ascii=False, indent=2))
    else:
        print(render_text(summary, top))
    if status == 0 and args.fail_on_errors and summary.groups():
        status = 1
    return status


def _unreadable(paths: list[str]) -> str | None:
    """Why the first file that cannot be opened cannot, or None: checked before any output."""
    for path in paths:
        if path == _STDIN:
            continue
        try:
            with open(path, "rb"):
                pass
        except FileNotFoundError:
            return f"{path}: no such file"
        except OSError as exc:
            return f"{path}: cannot open: {exc.strerror or exc}"
    return None


def _lines(path: str) -> Iterator[bytes | str]:
    if path != _STDIN:
        with open(path, "rb") as stream:
            yield from _maybe_gunzip(stream, path.endswith(".gz"))
        return
    stdin: IO[Any] = getattr(sys.stdin, "buffer", sys.stdin)
    if stdin.isatty():
        print("obskit logs summarize: reading stdin (end with Ctrl-D)", file=sys.stderr)
    yield from _maybe_gunzip(stdin, False)


def _maybe_gunzip(stream: IO[Any], gzipped: bool) -> Iterator[bytes | str]:
    """The lines of ``stream``, decompressed when named ``.gz`` or starting with gzip's magic."""
    peek = getattr(stream, "peek", None)
    if gzipped or (peek is not None and peek(2)[:2] == _GZIP_MAGIC):
        import gzip

        with gzip.GzipFile(fileobj=stream, mode="rb") as compressed:
            yield from compressed
        return
    yield from stream


def render_text(summary: Summary, top: int | None) -> str:
    """The human-readable report: counts, then one block per group, then 5xx per route."""
    groups = summary.groups()
    shown = groups if top is None else groups[:top]
    out = _header(summary, len(groups), len(shown))
    for rank, group in enumerate(shown, 1):
        out += ["", *_block(rank, group)]
    routes = summary.routes_5xx()
    if routes:
        width = max(len(f"{m} {r}") for m, r, _ in routes)
        out += ["", "5xx responses by route"]
        out += [f"  {f'{m} {r}':<{width}}  {n:>8}" for m, r, n in routes]
    return "\n".join(out)


def _header(summary: Summary, total: int, shown: int) -> list[str]:
    rows = [
        ("lines read", summary.lines_read, ""),
        ("JSON lines", summary.json_lines, ""),
        ("skipped", summary.skipped_lines, "blank or not JSON"),
        ("error lines", summary.error_lines, f"level {summary.min_level} and above"),
        ("groups", total, f"showing {shown}" if shown < total else ""),
    ]
    if summary.overflow_lines:
        rows.append(("ungrouped", summary.overflow_lines, "error lines past the group limit"))
    lines = ["obskit log summary"]
    for label, value, note in rows:
        lines.append(f"  {label:<12} {value:>10}" + (f"  ({note})" if note else ""))
    return lines


def _block(rank: int, group: Group) -> list[str]:
    levels = ", ".join(f"{level} {n}" for level, n in sorted(group.levels.items()))
    title = f"#{rank}  {group.count}x  {group.logger or '(no logger)'}"
    if group.exception_type:
        title += f"  {group.exception_type}"
    rows = [
        ("pattern", group.pattern),
        ("levels", levels),
        ("first seen", group.first_seen or "-"),
        ("last seen", group.last_seen or "-"),
        ("sample", _one_line(group.sample_message)),
        ("request_id", group.sample_request_id),
        ("trace_id", group.sample_trace_id),
        ("exception", _one_line(group.exception_last_line)),
    ]
    return [title] + [f"    {label:<11} {value}" for label, value in rows if value]


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
