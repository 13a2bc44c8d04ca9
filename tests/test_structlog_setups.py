"""structlog users: their context, their own set-up and their logger names survive obskit."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

import obskit
import obskit.logging
from logcapture import Lines, attach, strict_loads
from obskit import LoggingContext, testing, trace_operation
from obskit.logging import JsonFormatter

# Looked up, not imported: before obskit had it, each test failed on its own assertion.
add_obskit_fields = getattr(obskit.logging, "add_obskit_fields", None)

LOGGER = "tests.structlog_setups"


@pytest.fixture(autouse=True)
def _structlog_reset() -> Iterator[None]:
    """Every test starts and ends with structlog's defaults and no bound context."""
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    yield
    obskit.shutdown(timeout=2)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, Lines]]:
    yield from attach(JsonFormatter(), LOGGER)


def quiet_configure(**settings: Any) -> obskit.Settings:
    settings.setdefault("traces_exporter", "none")
    settings.setdefault("metrics_exporter", "none")
    return obskit.configure(**settings)


def lines_of(text: str) -> list[dict[str, Any]]:
    return [strict_loads(line) for line in text.splitlines() if line.strip()]


def span_ids(span: Any) -> tuple[str, str]:
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def user_processors() -> list[Any]:
    """A common structlog set-up: context, level, ISO timestamp, JSON."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
        structlog.processors.JSONRenderer(),
    ]


# -- bind_contextvars ------------------------------------------------------------------------------


def test_bound_contextvars_reach_structlog_processors_lines():
    sink = io.StringIO()
    structlog.configure(
        processors=obskit.logging.structlog_processors(), logger_factory=structlog.PrintLoggerFactory(sink)
    )
    structlog.contextvars.bind_contextvars(order_id="o-1", attempt=2)
    structlog.get_logger(LOGGER).info("paid", amount=3)
    (line,) = lines_of(sink.getvalue())
    assert line["order_id"] == "o-1"
    assert line["attempt"] == 2
    assert line["amount"] == 3


def test_bound_contextvars_reach_get_logger_lines(json_log):
    _, lines = json_log
    structlog.contextvars.bind_contextvars(order_id="o-2")
    obskit.get_logger(LOGGER).info("paid")
    obskit.get_logger(LOGGER).info("own value wins", order_id="o-3")
    first, second = lines.parsed()
    assert first["order_id"] == "o-2"
    assert second["order_id"] == "o-3"


def test_bound_contextvars_reach_structlog_lines_sent_through_stdlib_to_obskit(capsys):
    """A structlog set-up handing events to stdlib logging, rendered by obskit's handler."""
    structlog.configure(
        processors=[structlog.stdlib.render_to_log_kwargs],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    quiet_configure(service_name="svc")
    structlog.contextvars.bind_contextvars(order_id="o-4")
    structlog.get_logger(LOGGER).info("paid", amount=5)
    (line,) = lines_of(capsys.readouterr().out)
    assert line["message"] == "paid"
    assert line["order_id"] == "o-4"
    assert line["amount"] == 5
    assert line["logger"] == LOGGER


def test_structlog_records_wrapped_for_a_formatter_render_as_obskit_json(capsys):
    """wrap_for_formatter without a ProcessorFormatter on the root: obskit's handler renders the event."""
    structlog.configure(
        processors=[structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    quiet_configure(service_name="svc")
    structlog.contextvars.bind_contextvars(order_id="o-5")
    with LoggingContext(request_id="r-5"):
        structlog.get_logger(LOGGER).info("paid", amount=6)
    (line,) = lines_of(capsys.readouterr().out)
    assert line["message"] == "paid"
    assert line["amount"] == 6
    assert line["order_id"] == "o-5"
    assert line["request_id"] == "r-5"
    assert line["service"] == "svc"
    assert not {"_logger", "_name", "event"} & line.keys()


# -- a set-up the user made before configure() -------------------------------------------------------


def test_existing_structlog_setup_keeps_its_format_and_gains_obskit_fields(capsys):
    sink = io.StringIO()
    structlog.configure(processors=user_processors(), logger_factory=structlog.PrintLoggerFactory(sink))
    quiet_configure(service_name="svc", environment="env")
    log = structlog.get_logger(LOGGER)
    structlog.contextvars.bind_contextvars(order_id="o-6")
    with testing.capture(), LoggingContext(request_id="r-6"), trace_operation("op") as span:
        log.info("inside", k=1)
        expected = span_ids(span)
    log.info("outside")
    inside, outside = lines_of(sink.getvalue())
    # The user's format: structlog's keys, not obskit's.
    assert inside["event"] == "inside"
    assert inside["level"] == "info"
    assert "T" in inside["timestamp"]
    assert "message" not in inside
    assert inside["k"] == 1
    assert inside["order_id"] == "o-6"
    # obskit's fields.
    assert (inside["trace_id"], inside["span_id"]) == expected
    assert inside["request_id"] == "r-6"
    assert inside["service"] == "svc"
    assert inside["environment"] == "env"
    assert "trace_id" not in outside
    assert "request_id" not in outside
    assert outside["service"] == "svc"
    assert capsys.readouterr().out == ""  # nothing went to obskit's handler as well


def test_existing_stdlib_structlog_setup_keeps_its_handler_and_format(capsys):
    """structlog through stdlib logging into the user's ProcessorFormatter on the console."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        processor=structlog.processors.JSONRenderer(),
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        quiet_configure(service_name="svc")
        assert handler in root.handlers
        with testing.capture(), LoggingContext(request_id="r-7"), trace_operation("op") as span:
            structlog.get_logger(LOGGER).info("from structlog", k=1)
            logging.getLogger("tests.plain").warning("from stdlib")
            expected = span_ids(span)
        lines = lines_of(capsys.readouterr().out)
    finally:
        root.removeHandler(handler)
    assert len(lines) == 2  # each once, in the user's format only
    from_structlog, from_stdlib = lines
    assert from_structlog["event"] == "from structlog"
    assert from_structlog["k"] == 1
    assert from_stdlib["event"] == "from stdlib"
    assert from_stdlib["logger"] == "tests.plain"
    for line in lines:
        assert "message" not in line
        assert (line["trace_id"], line["span_id"]) == expected
        assert line["request_id"] == "r-7"
        assert line["service"] == "svc"


def test_configure_twice_adds_obskit_fields_once(capsys):
    sink = io.StringIO()
    structlog.configure(processors=user_processors(), logger_factory=structlog.PrintLoggerFactory(sink))
    quiet_configure(service_name="first")
    quiet_configure(service_name="second")
    chain = structlog.get_config()["processors"]
    assert chain.count(add_obskit_fields) == 1
    assert chain[-2] is add_obskit_fields  # just before the renderer
    structlog.get_logger(LOGGER).info("once")
    text = sink.getvalue()
    assert text.count('"service"') == 1
    assert json.loads(text)["service"] == "second"


def test_shutdown_restores_the_users_processors(capsys):
    sink = io.StringIO()
    mine = user_processors()
    structlog.configure(processors=mine, logger_factory=structlog.PrintLoggerFactory(sink))
    formatter = structlog.stdlib.ProcessorFormatter(processor=structlog.processors.JSONRenderer())
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(formatter)
    logging.getLogger().addHandler(handler)
    before_chain, before_formatter = list(mine), list(formatter.processors)
    try:
        quiet_configure(service_name="svc")
        assert add_obskit_fields in structlog.get_config()["processors"]
        assert add_obskit_fields in formatter.processors
        obskit.shutdown(timeout=2)
    finally:
        logging.getLogger().removeHandler(handler)
    assert structlog.get_config()["processors"] == before_chain
    assert list(formatter.processors) == before_formatter
    structlog.get_logger(LOGGER).info("after")
    assert "service" not in json.loads(sink.getvalue())


def test_a_logger_cached_before_configure_gains_obskit_fields():
    sink = io.StringIO()
    structlog.configure(
        processors=user_processors(),
        logger_factory=structlog.PrintLoggerFactory(sink),
        cache_logger_on_first_use=True,
    )
    log = structlog.get_logger(LOGGER)
    log.info("before")  # cached now, with the chain as it was
    quiet_configure(service_name="svc")
    log.info("after")
    before, after = lines_of(sink.getvalue())
    assert "service" not in before
    assert after["service"] == "svc"


def test_add_obskit_fields_keeps_the_users_own_keys():
    quiet_configure(service_name="svc")
    with LoggingContext(request_id="r-8"):
        event = add_obskit_fields(None, "info", {"event": "e", "service": "mine", "request_id": "own"})
    assert event["service"] == "mine"
    assert event["request_id"] == "own"


# -- logger names ----------------------------------------------------------------------------------


def test_structlog_processors_logger_is_never_empty():
    sink = io.StringIO()
    structlog.configure(
        processors=obskit.logging.structlog_processors(), logger_factory=structlog.PrintLoggerFactory(sink)
    )
    structlog.get_logger().info("unnamed")
    structlog.get_logger().bind(logger="bound.name").info("bound")
    unnamed, bound = lines_of(sink.getvalue())
    assert unnamed["logger"] == __name__  # the calling module, as stdlib's getLogger(__name__)
    assert bound["logger"] == "bound.name"


def test_print_logger_factory_keeps_the_name_given_to_get_logger():
    sink = io.StringIO()
    factory = getattr(obskit.logging, "print_logger_factory", lambda file: structlog.PrintLoggerFactory(file))
    structlog.configure(processors=obskit.logging.structlog_processors(), logger_factory=factory(sink))
    structlog.get_logger(LOGGER).info("named")
    structlog.get_logger().info("unnamed")
    named, unnamed = lines_of(sink.getvalue())
    assert named["logger"] == LOGGER
    assert unnamed["logger"] == __name__


def test_structlog_processors_with_a_stdlib_logger_use_its_name():
    records = Lines(logging.Formatter("%(message)s"))
    stdlib_logger = logging.getLogger(LOGGER)
    stdlib_logger.addHandler(records)
    stdlib_logger.setLevel(logging.INFO)
    try:
        log = structlog.wrap_logger(stdlib_logger, processors=obskit.logging.structlog_processors())
        log.info("named")
    finally:
        stdlib_logger.removeHandler(records)
        stdlib_logger.setLevel(logging.NOTSET)
    (line,) = records.lines
    assert json.loads(line)["logger"] == LOGGER


def test_structlog_exception_wrapped_for_a_formatter_renders_once_as_exception(capsys):
    structlog.configure(
        processors=[structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    quiet_configure(service_name="svc")
    try:
        raise ZeroDivisionError("nope")
    except ZeroDivisionError:
        structlog.get_logger(LOGGER).exception("boom")
    (line,) = lines_of(capsys.readouterr().out)
    assert line["level"] == "ERROR"
    assert line["message"] == "boom"
    assert line["exception"]["type"] == "ZeroDivisionError"
    assert "exc_info" not in line
