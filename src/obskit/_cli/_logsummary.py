"""Group obskit JSON log lines by message pattern: the engine behind ``obskit logs summarize``.

Lines are read one at a time and only the groups are kept (a count, two timestamps and one
sample each), so memory depends on how many distinct patterns there are, not on the size of the
input; both the number of groups and the number of routes are capped. Anything that is not a
JSON object (plain-text server lines, truncated writes, binary garbage, invalid UTF-8) is counted
and skipped. Pure standard library: the command must start fast and run where obskit's
dependencies are not wanted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LEVELS", "MAX_GROUPS", "MAX_ROUTES", "Group", "Summary", "normalize", "summarize"]

#: Level names and their stdlib numbers; ``WARN`` and ``FATAL`` are the aliases other tools write.
LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "WARN": 30, "ERROR": 40, "CRITICAL": 50, "FATAL": 50}
#: Distinct groups kept; error lines of further patterns are counted in ``Summary.overflow_lines``.
MAX_GROUPS = 10_000
#: Distinct ``METHOD route`` pairs whose 5xx responses are counted (templates, so few in practice).
MAX_ROUTES = 1_000
#: The logger of obskit's access-log lines (``obskit._web.http.ACCESS_LOGGER``).
ACCESS_LOGGER = "http.access"
# Longer messages are normalised on their first this-many characters: bounded work per line.
_MAX_MESSAGE = 2_000

_UNITS = r"(?:ns|us|µs|ms|seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?)"
# One pass, alternatives tried in order at each position: the more specific shapes come first so
# that, say, an IP address is not read as four numbers.
_VARIABLE = re.compile(
    rf"""
    (?P<str>(?<!\w)'[^'\n]{{0,500}}'(?!\w)|(?<!\w)"[^"\n]{{0,500}}"(?!\w))
    |(?P<uuid>(?<![0-9A-Za-z])[0-9a-fA-F]{{8}}-(?:[0-9a-fA-F]{{4}}-){{3}}[0-9a-fA-F]{{12}}(?![0-9A-Za-z]))
    |(?P<ts>\b\d{{4}}-\d{{2}}-\d{{2}}
        (?:[T\ ]\d{{2}}:\d{{2}}(?::\d{{2}}(?:[.,]\d+)?)?(?:Z|[+-]\d{{2}}:?\d{{2}})?)?)
    |(?P<url>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'"<>]+)
    |(?P<email>\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+)
    |(?P<ip>\b\d{{1,3}}(?:\.\d{{1,3}}){{3}}(?::\d{{1,5}})?\b
        |(?<![\w:])(?:[0-9a-fA-F]{{1,4}}:){{7}}[0-9a-fA-F]{{1,4}}(?![\w:])
        |(?<![\w:])(?:[0-9a-fA-F]{{1,4}}:){{0,6}}[0-9a-fA-F]{{0,4}}::(?:[0-9a-fA-F]{{1,4}}:){{0,6}}[0-9a-fA-F]{{0,4}}(?![\w:]))
    |(?P<hex>\b0x[0-9a-fA-F]+\b)
    |(?P<id>(?<![0-9A-Za-z])(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{{8,}}(?![0-9A-Za-z])
        |(?<![0-9A-Za-z])(?=[A-Za-z]*\d)(?=\d*[A-Za-z])[A-Za-z0-9]{{16,}}(?![0-9A-Za-z]))
    |(?P<duration>\b\d+(?:\.\d+)?\ ?{_UNITS}\b)
    |(?P<n>\d+(?:\.\d+)*)
    """,
    re.VERBOSE,
)
_PLACEHOLDERS = {name: f"<{name}>" for name in _VARIABLE.groupindex}


def _placeholder(match: re.Match[str]) -> str:
    return _PLACEHOLDERS[match.lastgroup or "n"]


def normalize(message: str) -> str:
    """``message`` with its variable parts replaced by placeholders, so that alike lines group.

    Quoted strings become ``<str>``, UUIDs ``<uuid>``, dates and timestamps ``<ts>``, URLs
    ``<url>``, e-mail addresses ``<email>``, IPv4/IPv6 addresses ``<ip>``, ``0x...`` ``<hex>``,
    long hex or alphanumeric tokens with digits ``<id>`` (also after a prefix such as ``pay_``),
    durations such as ``12ms`` ``<duration>`` and any other run of digits ``<n>``. Only the first
    2000 characters are considered.
    """
    return _VARIABLE.sub(_placeholder, message[:_MAX_MESSAGE])


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _last_line(stack: str) -> str:
    """The last non-blank line of a traceback: ``ValueError: bad input``."""
    for line in reversed(stack.splitlines()):
        if line.strip():
            return line.strip()
    return ""


@dataclass(slots=True)
class Group:
    """Error lines of one logger, exception type and message pattern.

    The sample fields (message, ids, exception) are those of the most recent line, by timestamp.
    """

    logger: str
    exception_type: str
    pattern: str
    count: int = 0
    first_seen: str = ""
    last_seen: str = ""
    levels: dict[str, int] = field(default_factory=dict)
    sample_message: str = ""
    sample_request_id: str = ""
    sample_trace_id: str = ""
    exception_message: str = ""
    exception_last_line: str = ""

    def add(self, entry: dict[str, Any], level: str, message: str, timestamp: str) -> None:
        """Count one more line of this group."""
        self.count += 1
        self.levels[level] = self.levels.get(level, 0) + 1
        if timestamp and (not self.first_seen or timestamp < self.first_seen):
            self.first_seen = timestamp
        if self.count == 1 or (timestamp and timestamp >= self.last_seen):
            self.last_seen = timestamp or self.last_seen
            self._sample(entry, message)

    def _sample(self, entry: dict[str, Any], message: str) -> None:
        self.sample_message = message[:_MAX_MESSAGE]
        self.sample_request_id = _text(entry.get("request_id"))
        self.sample_trace_id = _text(entry.get("trace_id"))
        exception = entry.get("exception")
        if isinstance(exception, dict):
            self.exception_message = _text(exception.get("message"))[:_MAX_MESSAGE]
            self.exception_last_line = _last_line(_text(exception.get("stack")))[:_MAX_MESSAGE]

    def to_dict(self) -> dict[str, Any]:
        """The group as JSON-ready values (the ``--format json`` shape of one group)."""
        return {
            "count": self.count,
            "logger": self.logger,
            "exception_type": self.exception_type,
            "pattern": self.pattern,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "levels": dict(sorted(self.levels.items())),
            "sample": {
                "message": self.sample_message,
                "request_id": self.sample_request_id,
                "trace_id": self.sample_trace_id,
                "exception_message": self.exception_message,
                "exception_last_line": self.exception_last_line,
            },
        }


def _level_number(level: str) -> int:
    return LEVELS.get(level.upper(), 0)


@dataclass(slots=True)
class Summary:
    """Counts over everything fed in, and the error groups.

    ``lines_read == json_lines + skipped_lines``; skipped lines are blank or not a JSON object.
    """

    min_level: str = "ERROR"
    lines_read: int = 0
    json_lines: int = 0
    skipped_lines: int = 0
    error_lines: int = 0
    access_lines: int = 0
    overflow_lines: int = 0
    _groups: dict[tuple[str, str, str], Group] = field(default_factory=dict)
    _routes: dict[tuple[str, str], int] = field(default_factory=dict)
    _threshold: int = 0

    def __post_init__(self) -> None:
        if self.min_level.upper() not in LEVELS:
            raise ValueError(f"unknown level {self.min_level!r}: one of {', '.join(LEVELS)}")
        self.min_level = self.min_level.upper()
        self._threshold = LEVELS[self.min_level]

    def feed(self, lines: Iterable[str | bytes]) -> Summary:
        """Read ``lines`` (text or bytes, newline kept or not) into the summary; returns it."""
        for line in lines:
            self.add(line)
        return self

    def add(self, line: str | bytes) -> None:
        """Read one line."""
        self.lines_read += 1
        entry = _parse(line)
        if entry is None:
            self.skipped_lines += 1
            return
        self.json_lines += 1
        logger = _text(entry.get("logger"))
        if logger == ACCESS_LOGGER:
            self._access(entry)
        level = _text(entry.get("level")).upper()
        if _level_number(level) >= self._threshold:
            self._error(entry, logger, level)

    def _access(self, entry: dict[str, Any]) -> None:
        self.access_lines += 1
        status = entry.get("status")
        if isinstance(status, int) and status >= 500:
            key = (_text(entry.get("method")), _text(entry.get("route")))
            if key in self._routes or len(self._routes) < MAX_ROUTES:
                self._routes[key] = self._routes.get(key, 0) + 1

    def _error(self, entry: dict[str, Any], logger: str, level: str) -> None:
        self.error_lines += 1
        message = _text(entry.get("message"))
        exception = entry.get("exception")
        exception_type = _text(exception.get("type")) if isinstance(exception, dict) else ""
        key = (logger, exception_type, _pattern(entry, logger, message))
        group = self._groups.get(key)
        if group is None:
            if len(self._groups) >= MAX_GROUPS:
                self.overflow_lines += 1
                return
            group = self._groups[key] = Group(*key)
        group.add(entry, level, message, _text(entry.get("timestamp")))

    def groups(self) -> list[Group]:
        """Every group, most lines first (ties: earliest first seen, then by key)."""
        return sorted(
            self._groups.values(),
            key=lambda g: (-g.count, g.first_seen, g.logger, g.exception_type, g.pattern),
        )

    def routes_5xx(self) -> list[tuple[str, str, int]]:
        """``(method, route, count)`` of access lines with a 5xx status, most first."""
        return sorted(((m, r, n) for (m, r), n in self._routes.items()), key=lambda t: (-t[2], t[1], t[0]))

    def to_dict(self, top: int | None = None) -> dict[str, Any]:
        """The summary as JSON-ready values; ``top`` keeps only the largest groups."""
        groups = self.groups()
        return {
            "min_level": self.min_level,
            "lines_read": self.lines_read,
            "json_lines": self.json_lines,
            "skipped_lines": self.skipped_lines,
            "error_lines": self.error_lines,
            "group_count": len(groups),
            "overflow_lines": self.overflow_lines,
            "access_lines": self.access_lines,
            "groups": [g.to_dict() for g in (groups if top is None else groups[:top])],
            "routes_5xx": [{"method": m, "route": r, "count": n} for m, r, n in self.routes_5xx()],
        }


def _pattern(entry: dict[str, Any], logger: str, message: str) -> str:
    """The normalised message; an access line is grouped by its route template and status."""
    route = entry.get("route")
    if logger == ACCESS_LOGGER and isinstance(route, str):
        return f"{_text(entry.get('method'))} {route} {_text(entry.get('status'))}"
    return normalize(message)


def _parse(line: str | bytes) -> dict[str, Any] | None:
    """The JSON object on ``line``, or None when it is not one (invalid UTF-8 is replaced, not fatal)."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    text = text.strip()
    if not text.startswith("{"):
        return None
    try:
        entry = json.loads(text)
    except (ValueError, RecursionError):  # truncated, garbage, or nested deeper than json allows
        return None
    return entry if isinstance(entry, dict) else None


def summarize(lines: Iterable[str | bytes], min_level: str = "ERROR") -> Summary:
    """Summarise obskit JSON log ``lines`` (any iterable, read once): error groups and counts.

    Args:
        lines: text or bytes lines, e.g. an open file; non-JSON lines are counted and skipped.
        min_level: the lowest level counted as an error (``"WARNING"`` includes warnings).

    Raises:
        ValueError: ``min_level`` is not a level name.
    """
    return Summary(min_level=min_level).feed(lines)
