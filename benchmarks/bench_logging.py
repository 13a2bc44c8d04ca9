"""Benchmark 5: rendering log records as JSON.

Every record is logged with ``logger.info("message %s", arg)`` on a dedicated logger
(``propagate=False``) whose one handler writes to an ``io.StringIO``, a new one for each sample,
inside an active span and a ``LoggingContext(request_id=..., user_id=...)``. The handler is the
same object for every side; only its formatter (and, for python-json-logger, a filter) changes.

* obskit ``JsonFormatter`` against the stdlib ``logging.Formatter()`` (plain text, no fields):
  what JSON with trace ids and context costs over the cheapest possible line.
* obskit ``JsonFormatter`` against python-json-logger's ``JsonFormatter`` set up to print the
  same fields: ``timestamp``, ``level``, ``logger``, ``message``, ``service``, ``environment``
  (``static_fields``) and ``trace_id``, ``span_id``, ``request_id``, ``user_id`` (a
  ``logging.Filter`` that reads the current span and the logging context, as a user of
  python-json-logger would write it).

Each pair is measured through the handler (``logger.info``) and as ``format(record)`` alone on
a prepared record (for python-json-logger, filter plus format).

* obskit ``JsonFormatter`` with credentials in free text scrubbed (``redact_text=True``, the
  default) against the same without (``redact_text=False``): what the value patterns cost on a
  typical message and on one that holds a credential (``login password=...``), reported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import json
import logging
from typing import Any

from _harness import Config, Row, Side, compare, loop
from _setup import SERVICE_FIELDS, configured
from opentelemetry.trace import get_current_span

from obskit import LoggingContext
from obskit._core import state as _state
from obskit._core.context import current_fields
from obskit._core.redact import Redactor
from obskit.logging import JsonFormatter, _encode

try:
    from pythonjsonlogger.json import JsonFormatter as PjlFormatter
except ImportError:  # python-json-logger < 3.1
    from pythonjsonlogger.jsonlogger import JsonFormatter as PjlFormatter  # type: ignore[no-redef]

FIELDS = (
    "timestamp",
    "level",
    "logger",
    "message",
    "service",
    "environment",
    "trace_id",
    "span_id",
    "request_id",
    "user_id",
)


class TraceContextFilter(logging.Filter):
    """What a python-json-logger user adds to get trace ids and request fields on each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = get_current_span().get_span_context()
        if ctx.is_valid:
            record.trace_id = format(ctx.trace_id, "032x")
            record.span_id = format(ctx.span_id, "016x")
        for key, value in current_fields().items():
            setattr(record, key, value)
        return True


def python_json_logger() -> logging.Formatter:
    return PjlFormatter(  # type: ignore[no-any-return]
        ["levelname", "name", "message"],
        rename_fields={"levelname": "level", "name": "logger"},
        static_fields=dict(SERVICE_FIELDS),
        timestamp=True,
        json_ensure_ascii=False,
    )


class _Bench:
    """One logger, one handler, one stream; each side installs its formatter before a sample."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.logger = logging.getLogger("obskit.bench.logging")
        self.logger.handlers[:] = [self.handler]
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self.obskit = JsonFormatter()
        self.stdlib = logging.Formatter()
        self.pjl = python_json_logger()
        self.pjl_filter = TraceContextFilter()

    def use(self, formatter: logging.Formatter, with_filter: bool = False) -> Any:
        def prepare() -> None:
            # A fresh buffer per sample: appends to a new StringIO are the cheapest sink there is.
            self.stream = io.StringIO()
            self.handler.setStream(self.stream)
            self.handler.setFormatter(formatter)
            self.handler.filters[:] = [self.pjl_filter] if with_filter else []

        return prepare

    def close(self) -> None:
        self.logger.handlers[:] = []
        self.handler.close()

    def last_line(self, formatter: logging.Formatter, with_filter: bool = False) -> str:
        self.use(formatter, with_filter)()
        self.logger.info("message %s", "argument")
        return self.stream.getvalue().strip()


def _check_same_fields(bench: _Bench) -> None:
    ours = json.loads(bench.last_line(bench.obskit))
    theirs = json.loads(bench.last_line(bench.pjl, with_filter=True))
    for name, line in (("obskit", ours), ("python-json-logger", theirs)):
        missing = [f for f in FIELDS if f not in line]
        if missing:
            raise RuntimeError(f"{name} line lacks {missing}: {line}")
    if (ours["trace_id"], ours["request_id"]) != (theirs["trace_id"], theirs["request_id"]):
        raise RuntimeError(f"the two formatters disagree: {ours} vs {theirs}")


def _check_direct_path(provider: Any) -> None:
    """JsonFormatter.format's direct path gives exactly the general path's line, in many situations.

    The benchmark measures the direct path, so it must be the same output as
    ``_encode(to_dict(record))``: messages that need escaping, spans on and off, LoggingContext
    fields of every kind (int, nested, sensitive, named like a core field), odd service fields.
    """
    formatter, logger = JsonFormatter(), logging.getLogger("obskit.bench.equivalence")
    messages = [
        ("message %s", ("argument",)),
        ('quote " \\ \n tab\t ünï 😀 \u2028', ()),
        ("%d%%", (5,)),
        ("login password=%s", ("hunter2",)),
    ]
    contexts: list[dict[str, Any]] = [
        {"request_id": "r1", "user_id": "u1"},
        {"request_id": "r2", "user_id": 42},
        {"request_id": "r3", "service": "x", "api_token": "secret"},
        {"request_id": "r4", "nested": {"password": "p"}, "región": 'é"x'},
    ]
    service_fields: list[dict[str, Any]] = [
        {},
        dict(SERVICE_FIELDS),
        {"service": "s", "message": "m"},
        {"service": "s", "n": 1},
        {"request_id": "dup"},
    ]
    checked = 0
    configured_state = _state.STATE
    for spanned, (msg, args), context, fields, level in itertools.product(
        (False, True), messages, contexts, service_fields, (logging.INFO, logging.ERROR, 25)
    ):
        with contextlib.ExitStack() as stack:
            stack.callback(_state.set_state, configured_state)
            _state.set_state(dataclasses.replace(configured_state, log_fields=fields))
            if spanned:
                stack.enter_context(provider.get_tracer("bench").start_as_current_span("check"))
            stack.enter_context(LoggingContext(**context))
            record = logger.makeRecord(logger.name, level, __file__, 1, msg, args, None)
            twin = logger.makeRecord(logger.name, level, __file__, 1, msg, args, None)
            twin.created = record.created
            direct, general = formatter.format(record), _encode(formatter.to_dict(twin))
            if direct != general:
                raise RuntimeError(f"JsonFormatter paths differ:\n{direct}\n{general}")
            checked += 1
    if not checked:
        raise RuntimeError("no record checked")


def run(config: Config) -> list[Row]:
    rows: list[Row] = []
    bench = _Bench()
    log_stmt = 'info("message %s", arg)'
    ns: dict[str, Any] = {"info": bench.logger.info, "arg": "argument"}

    def record() -> logging.LogRecord:
        return bench.logger.makeRecord(
            bench.logger.name, logging.INFO, __file__, 1, "message %s", ("argument",), None
        )

    # One record per side: formatters and filters add attributes to the records they see.
    fmt_ns: dict[str, Any] = {
        "obskit_record": record(),
        "stdlib_record": record(),
        "pjl_record": record(),
        "obskit_format": bench.obskit.format,
        "stdlib_format": bench.stdlib.format,
        "pjl_format": bench.pjl.format,
        "pjl_filter": bench.pjl_filter.filter,
    }
    with configured() as state:
        provider = state.tracer_provider
        _run_in_request(config, bench, provider, rows, log_stmt, ns, fmt_ns)
    bench.close()
    return rows


def _run_in_request(
    config: Config,
    bench: _Bench,
    provider: Any,
    rows: list[Row],
    log_stmt: str,
    ns: dict[str, Any],
    fmt_ns: dict[str, Any],
) -> None:
    with (
        provider.get_tracer("bench").start_as_current_span("request"),
        LoggingContext(request_id="9f2c1a7be4d34c0b8e51f0a6d2c7b3e1", user_id="user-42"),
    ):
        _check_same_fields(bench)
        _check_direct_path(provider)
        rows.append(
            compare(
                "5",
                "JsonFormatter via handler",
                Side("stdlib logging.Formatter()", loop(log_stmt, ns), bench.use(bench.stdlib)),
                Side("obskit", loop(log_stmt, ns), bench.use(bench.obskit)),
                config,
                max_ratio=1.3,
                max_iterations=50_000,
            )
        )
        rows.append(
            compare(
                "5",
                "JsonFormatter format() only",
                Side("stdlib logging.Formatter()", loop("stdlib_format(stdlib_record)", fmt_ns)),
                Side("obskit", loop("obskit_format(obskit_record)", fmt_ns)),
                config,
            )
        )
        rows.append(
            compare(
                "5",
                "JsonFormatter via handler",
                Side(
                    "python-json-logger + filter", loop(log_stmt, ns), bench.use(bench.pjl, with_filter=True)
                ),
                Side("obskit", loop(log_stmt, ns), bench.use(bench.obskit)),
                config,
                min_speedup=1.4,
                max_iterations=50_000,
            )
        )
        rows.append(
            compare(
                "5",
                "JsonFormatter format() only",
                Side(
                    "python-json-logger + filter",
                    loop("pjl_filter(pjl_record)\npjl_format(pjl_record)", fmt_ns),
                ),
                Side("obskit", loop("obskit_format(obskit_record)", fmt_ns)),
                config,
                min_speedup=1.4,
            )
        )
        rows.extend(_text_redaction(bench, config))
        rows.extend(_log_source(bench, config, log_stmt, ns))


def _log_source(bench: _Bench, config: Config, log_stmt: str, ns: dict[str, Any]) -> list[Row]:
    """What ``log_source=True`` (module, function and line on each line) adds to a line."""
    state = _state.STATE
    with_source = dataclasses.replace(state, settings=dataclasses.replace(state.settings, log_source=True))
    use = bench.use(bench.obskit)

    def using(chosen: _state.State) -> Any:
        def prepare() -> None:
            use()
            _state.set_state(chosen)

        return prepare

    try:
        return [
            compare(
                "5",
                "JsonFormatter via handler, log_source",
                Side("obskit log_source off", loop(log_stmt, ns), using(state)),
                Side("obskit log_source on", loop(log_stmt, ns), using(with_source)),
                config,
                max_iterations=50_000,
                note="informational: the cost of the three fields",
            )
        ]
    finally:
        _state.set_state(state)


#: (what the row says, the logging call, its arguments): a typical message and one with a credential.
TEXT_CASES = (
    ("typical message", "message %s", "argument"),
    ("message with a credential", "login password=%s", "hunter2"),
)


def _text_redaction(bench: _Bench, config: Config) -> list[Row]:
    """obskit's line with value patterns (``redact_text=True``) against the same without."""
    rows: list[Row] = []
    with_text, without_text = Redactor(), Redactor(text=False)

    def using(redactor: Redactor) -> Any:
        prepare = bench.use(bench.obskit)

        def run() -> None:
            prepare()
            _state.set_state(dataclasses.replace(_state.STATE, redactor=redactor))

        return run

    state = _state.STATE
    try:
        for label, message, argument in TEXT_CASES:
            using(with_text)()
            bench.logger.info(message, argument)
            line = json.loads(bench.stream.getvalue())
            if argument == "hunter2" and "hunter2" in line["message"]:
                raise RuntimeError(f"the credential was not scrubbed: {line}")
            ns: dict[str, Any] = {"info": bench.logger.info, "msg": message, "arg": argument}
            rows.append(
                compare(
                    "5",
                    f"redact_text, {label}, via handler",
                    Side("obskit redact_text=False", loop("info(msg, arg)", ns), using(without_text)),
                    Side("obskit redact_text=True", loop("info(msg, arg)", ns), using(with_text)),
                    config,
                    max_iterations=50_000,
                    note="report",
                )
            )
            record = bench.logger.makeRecord(
                bench.logger.name, logging.INFO, __file__, 1, message, (argument,), None
            )
            fmt_ns: dict[str, Any] = {"fmt": bench.obskit.format, "record": record}
            rows.append(
                compare(
                    "5",
                    f"redact_text, {label}, format() only",
                    Side("obskit redact_text=False", loop("fmt(record)", fmt_ns), using(without_text)),
                    Side("obskit redact_text=True", loop("fmt(record)", fmt_ns), using(with_text)),
                    config,
                    note="report",
                )
            )
    finally:
        _state.set_state(state)
    return rows


if __name__ == "__main__":
    import sys

    from _harness import table

    print(table(run(Config.make("--quick" in sys.argv))))
