"""JsonFormatter's direct path (plain records) must render exactly what the general path renders."""

from __future__ import annotations

import dataclasses
import itertools
import logging
from typing import Any

import pytest

from obskit import LoggingContext, testing, trace_operation
from obskit._core import state as _state
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
