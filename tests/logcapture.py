"""A handler that keeps each record and its rendered line, shared by the logging-related tests."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

from obskit.logging import JsonFormatter


def strict_loads(line: str) -> dict[str, Any]:
    """json.loads that also rejects NaN/Infinity, which are not JSON (RFC 8259)."""

    def reject(constant: str) -> Any:
        raise ValueError(f"not valid JSON: {constant}")

    value = json.loads(line, parse_constant=reject)
    assert isinstance(value, dict)
    return value


class Lines(logging.Handler):
    """Formats each record as it is emitted; a formatter error propagates to the test."""

    def __init__(self, formatter: logging.Formatter | None = None) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter or JsonFormatter())
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        with self._lock:
            self.records.append(record)
            self.lines.append(line)

    def parsed(self) -> list[dict[str, Any]]:
        for line in self.lines:
            assert "\n" not in line, line
            assert "\r" not in line, line
        return [strict_loads(line) for line in self.lines]

    def last(self) -> dict[str, Any]:
        return self.parsed()[-1]


class Messages(logging.Handler):
    """Keeps each record's message (no formatting), e.g. what obskit's own logger says."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def messages_of(name: str) -> Iterator[list[str]]:
    """The messages logger ``name`` handles (whether or not it propagates) until closed."""
    handler = Messages()
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def attach(formatter: logging.Formatter | None, name: str) -> Iterator[tuple[logging.Logger, Lines]]:
    """Give logger ``name`` a :class:`Lines` handler of its own (no propagation) until closed."""
    logger = logging.getLogger(name)
    handler = Lines(formatter)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
