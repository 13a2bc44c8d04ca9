"""JsonFormatter's direct path (plain records) must render exactly what the general path renders."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import sys
from typing import Any

import pytest

import obskit.logging as obskit_logging
from obskit import LoggingContext, testing, trace_operation
from obskit._core import state as _state
from obskit._core.redact import Redactor
from obskit.logging import JsonFormatter, _encode

MESSAGES = [
    ("message %s", ("argument",)),
    ('quote " \\ \n tab\t ünï 😀 \u2028', ()),
    ("%d%%", (5,)),
    # credentials in the text: both paths scrub them alike (with and without arguments)
    ("login password=%s for %s", ("hunter2", "bob")),
    ("GET http://u:p@host/?api_key=K1 Authorization: Bearer abcdefgh", ()),
]
CONTEXTS: list[dict[str, Any]] = [
    {},
    {"request_id": "r1", "user_id": "u1"},
    {"request_id": "r2", "user_id": 42},
    {"request_id": "r3", "service": "x", "api_token": "secret"},
    {"request_id": "r4", "nested": {"password": "p"}, "región": 'é"x'},
    {"request_id": "r5", "note": "token=abc", "url": "https://bob:pw@db/"},
]
SERVICE_FIELDS: list[dict[str, Any]] = [
    {},
    {"service": "svc", "environment": "prod", "service_version": "1.2"},
    {"service": "s", "message": "m"},
    {"service": "s", "n": 1},
    {"request_id": "dup"},
]


@pytest.mark.parametrize(
    ("spanned", "message", "fields"), list(itertools.product((False, True), MESSAGES, SERVICE_FIELDS))
)
def test_direct_path_matches_general_path(
    spanned: bool, message: tuple[str, tuple[Any, ...]], fields: dict[str, Any]
) -> None:
    formatter, logger = JsonFormatter(), logging.getLogger("obskit.test.direct")
    msg, args = message
    with testing.capture():
        _state.set_state(dataclasses.replace(_state.STATE, log_fields=fields))
        for context, level in itertools.product(CONTEXTS, (logging.INFO, logging.ERROR, 25)):
            with LoggingContext(**context), trace_operation("check") if spanned else _nothing():
                record = logger.makeRecord(logger.name, level, __file__, 1, msg, args, None)
                twin = logger.makeRecord(logger.name, level, __file__, 1, msg, args, None)
                twin.created = record.created
                assert formatter.format(record) == _encode(formatter.to_dict(twin))


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_timestamp_never_shows_a_thousandth_millisecond() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    record.created = 1_700_000_000.9999
    assert formatter.to_dict(record)["timestamp"].endswith(".999Z")


EXTRAS: list[dict[str, Any]] = [
    {
        "method": "GET",
        "route": "/items/{id}",
        "status": 200,
        "duration_ms": 1.25,
        "client": "",
        "user_agent": "wrk",
    },
    {"flag": True, "off": False, "nothing": None, "big": 10**30, "tiny": 1e-300, "neg": -0.0},
    {"nan": float("nan"), "inf": float("inf")},
    {"api_token": "secret", "n": 1},
    {"request_id": "clash", "n": 2},
    {"service": "clash"},
    {"n": 1, "items": [1, 2], "mapping": {"password": "p"}, "tup": (1,)},
    {"subclass": True.__class__(1), "intenum": logging.INFO, "obj": object.__new__(type("O", (), {}))},
    {"query": "?token=abc&page=2", "agent": "Bearer abcdefghijk", "plain": "fine"},
    {"huge": 10**5000, "n": 1},
]


@pytest.mark.parametrize(("spanned", "extra"), list(itertools.product((False, True), EXTRAS)))
def test_direct_path_with_extra_fields_matches_general_path(spanned: bool, extra: dict[str, Any]) -> None:
    formatter, logger = JsonFormatter(), logging.getLogger("obskit.test.direct")
    with testing.capture():
        for fields, context in itertools.product(SERVICE_FIELDS, CONTEXTS):
            _state.set_state(dataclasses.replace(_state.STATE, log_fields=fields))
            with LoggingContext(**context), trace_operation("check") if spanned else _nothing():
                record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "m", (), None, extra=extra)
                twin = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "m", (), None, extra=extra)
                twin.created = record.created
                assert formatter.format(record) == _encode(formatter.to_dict(twin))


def test_direct_path_timestamps_match_the_general_path_at_second_edges() -> None:
    # Seconds alternate, so the formatter's cached second changes on almost every line.
    formatter, logger = JsonFormatter(), logging.getLogger("obskit.test.direct")
    created = [1_700_000_000.0, 1_700_000_000.0005, 1_699_999_999.9995, 1_700_000_000.9999]
    created += [1_700_000_001, 0.001, 1_700_000_000.999, 1_700_000_000.5]
    lines = []
    with testing.capture():
        for value in created:
            record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "m", (), None)
            twin = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "m", (), None)
            record.created = twin.created = value
            lines.append(formatter.format(record))
            assert lines[-1] == _encode(formatter.to_dict(twin))
    stamps = [json.loads(line)["timestamp"] for line in lines]
    assert stamps[:3] == ["2023-11-14T22:13:20.000Z", "2023-11-14T22:13:20.000Z", "2023-11-14T22:13:19.999Z"]
    assert stamps[3:] == [
        "2023-11-14T22:13:20.999Z",
        "2023-11-14T22:13:21.000Z",
        "1970-01-01T00:00:00.001Z",
        "2023-11-14T22:13:20.999Z",
        "2023-11-14T22:13:20.500Z",
    ]


def test_direct_path_renders_the_same_logging_context_again_for_another_redactor() -> None:
    # The context's fragment is kept for the mapping, redactor and service fields it was made
    # with: the same LoggingContext under another redactor is rendered again.
    formatter, logger = JsonFormatter(), logging.getLogger("obskit.test.direct")

    def line() -> str:
        record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "m", (), None)
        return formatter.format(record)

    with testing.capture(), LoggingContext(request_id="r1", note="token=abc"):
        assert json.loads(line())["note"] == "token=[REDACTED]"
        _state.set_state(dataclasses.replace(_state.STATE, redactor=Redactor(text=False)))
        assert json.loads(line())["note"] == "token=abc"
        _state.set_state(dataclasses.replace(_state.STATE, log_fields={"note": "service's"}))
        assert line().count('"note"') == 1  # a service field of the same name: the general path


def test_structlog_contextvars_bound_after_the_first_line_reach_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As in a process that imports structlog only after logging its first line.
    import structlog.contextvars

    formatter, logger = JsonFormatter(), logging.getLogger("obskit.test.direct")

    def line() -> dict[str, Any]:
        record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "m", (), None)
        return dict(json.loads(formatter.format(record)))

    monkeypatch.setattr(obskit_logging, "_registry", None)
    monkeypatch.delitem(sys.modules, "structlog.contextvars")
    with testing.capture():
        assert "order_id" not in line()
        monkeypatch.setitem(sys.modules, "structlog.contextvars", structlog.contextvars)
        structlog.contextvars.bind_contextvars(order_id="o-1")
        try:
            assert line()["order_id"] == "o-1"
        finally:
            structlog.contextvars.clear_contextvars()
        assert "order_id" not in line()


def test_the_context_read_per_line_is_opentelemetrys_current_one() -> None:
    # JsonFormatter reads OpenTelemetry's context variable itself (one C call per line).
    from opentelemetry import context as otel_context

    assert obskit_logging._current_context is not otel_context.get_current
    assert obskit_logging._current_context() is otel_context.get_current()
    with trace_operation("check"):
        assert obskit_logging._current_context() is otel_context.get_current()
