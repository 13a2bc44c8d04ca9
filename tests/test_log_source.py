"""``log_source``: where each log call was made (module, function, line), off by default.

Every way a line is made carries the same three fields when it is on: stdlib records on the
direct and the general path, the console format, obskit's structlog logger, structlog printing
through ``structlog_processors()``, and a user's structlog chain with ``add_obskit_fields``.
"""

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
from obskit.logging import ConsoleFormatter, JsonFormatter

LOGGER = "tests.log_source"
MODULE = "test_log_source"


def here() -> int:
    """The line number of the caller's next line: where its log call is."""
    return sys._getframe(1).f_lineno + 1


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, Lines]]:
    yield from attach(JsonFormatter(), LOGGER)


@pytest.fixture
def configured(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    def run(**settings: Any) -> obskit.Settings:
        return obskit.configure(
            traces_exporter="none", metrics_exporter="none", logs_exporter="none", **settings
        )

    yield run
    obskit.shutdown(timeout=2)
    structlog.reset_defaults()


def source(line: dict[str, Any]) -> tuple[Any, Any, Any]:
    return line.get("module"), line.get("function"), line.get("line")


def test_off_by_default(configured: Any, json_log: tuple[logging.Logger, Lines]) -> None:
    configured()
    logger, lines = json_log
    logger.info("plain")
    logger.info("extra", extra={"k": 1})
    assert [source(line) for line in lines.parsed()] == [(None, None, None)] * 2


def test_stdlib_lines_direct_and_general_path(
    configured: Any, json_log: tuple[logging.Logger, Lines]
) -> None:
    configured(log_source=True)
    logger, lines = json_log
    expected = []
    expected.append(here())
    logger.info("plain")
    expected.append(here())
    logger.info("extra", extra={"k": 1})
    try:
        raise ValueError("boom")
    except ValueError:
        expected.append(here())
        logger.exception("general path")
    name = "test_stdlib_lines_direct_and_general_path"
    assert [source(line) for line in lines.parsed()] == [(MODULE, name, n) for n in expected]
    assert lines.parsed()[1]["k"] == 1


def test_both_paths_render_the_same_line(configured: Any, json_log: tuple[logging.Logger, Lines]) -> None:
    configured(log_source=True)
    logger, lines = json_log
    logger.info("same", extra={"k": "v"})
    record = lines.records[-1]
    general = json.dumps(JsonFormatter().to_dict(record), separators=(",", ":"), ensure_ascii=False)
    assert lines.lines[-1] == general


def test_user_fields_named_like_them_are_kept_apart(
    configured: Any, json_log: tuple[logging.Logger, Lines]
) -> None:
    configured(log_source=True)
    logger, lines = json_log
    with obskit.LoggingContext(function="billing", module="mine"):
        expected = here()
        logger.info("collide", extra={"line": "L7"})
    line = lines.last()
    assert source(line) == (MODULE, "test_user_fields_named_like_them_are_kept_apart", expected)
    assert (line["field_line"], line["field_module"], line["field_function"]) == ("L7", "mine", "billing")


def test_console_format(configured: Any) -> None:
    configured(log_source=True)
    attached = attach(ConsoleFormatter(), LOGGER)
    logger, lines = next(attached)
    expected = here()
    logger.warning("for humans")
    attached.close()
    assert f"module={MODULE} function=test_console_format line={expected}" in lines.lines[-1]


def test_env_var_turns_it_on(
    configured: Any, json_log: tuple[logging.Logger, Lines], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OBSKIT_LOG_SOURCE", "true")
    assert configured().log_source is True
    logger, lines = json_log
    logger.info("env")
    assert lines.last()["function"] == "test_env_var_turns_it_on"


def test_obskit_get_logger(configured: Any, json_log: tuple[logging.Logger, Lines]) -> None:
    configured(log_source=True)
    _, lines = json_log
    expected = here()
    obskit.get_logger(LOGGER).info("structlog through stdlib", k=2)
    assert source(lines.last()) == (MODULE, "test_obskit_get_logger", expected)


def test_structlog_processors(configured: Any) -> None:
    configured(log_source=True)
    sink = io.StringIO()
    structlog.configure(
        processors=obskit.logging.structlog_processors(),
        logger_factory=obskit.logging.print_logger_factory(sink),
    )
    expected = here()
    structlog.get_logger(LOGGER).info("printed", k=1)
    line = strict_loads(sink.getvalue())
    assert source(line) == (MODULE, "test_structlog_processors", expected)


def test_add_obskit_fields_in_a_user_chain(configured: Any) -> None:
    configured(log_source=True)
    sink = io.StringIO()
    structlog.configure(
        processors=[obskit.logging.add_obskit_fields, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(sink),
    )
    expected = here()
    structlog.get_logger().info("user renderer")
    line = strict_loads(sink.getvalue())
    assert source(line) == (MODULE, "test_add_obskit_fields_in_a_user_chain", expected)


def test_access_lines_do_not_carry_them(configured: Any) -> None:
    from flask import Flask

    from obskit.testing import capture

    app = Flask(__name__)

    @app.get("/hello")
    def hello() -> str:
        logging.getLogger("app").info("in the view")
        return "hi"

    configured(app=app, log_source=True)
    with capture() as cap:
        app.test_client().get("/hello")
    (view,) = cap.logs(logger="app")
    (access,) = cap.logs(logger="http.access")
    assert view["function"] == "hello"
    assert source(access) == (None, None, None)


def test_get_logger_records_name_the_caller_for_any_handler(json_log: tuple[logging.Logger, Lines]) -> None:
    # Independent of log_source: a user's "%(module)s:%(funcName)s:%(lineno)d" formatter reads them.
    _, lines = json_log
    expected = here()
    obskit.get_logger(LOGGER).info("where")
    record = lines.records[-1]
    assert (record.module, record.funcName, record.lineno) == (
        MODULE,
        "test_get_logger_records_name_the_caller_for_any_handler",
        expected,
    )


def test_a_logger_class_that_finds_its_caller_itself_is_left_to_it(
    json_log: tuple[logging.Logger, Lines],
) -> None:
    # structlog's LoggerFactory makes every later logger a _FixedFindCallerLogger, which skips
    # structlog's frames itself: obskit's counting must not skip the caller's frame too.
    import structlog

    _, lines = json_log
    previous = logging.getLoggerClass()
    logging.setLoggerClass(structlog.stdlib._FixedFindCallerLogger)
    try:
        logger = obskit.get_logger(f"{LOGGER}.fixed_find_caller")
        made = logging.getLogger(f"{LOGGER}.fixed_find_caller")
        assert type(made) is structlog.stdlib._FixedFindCallerLogger
        expected = here()
        logger.info("where")
    finally:
        logging.setLoggerClass(previous)
    record = lines.records[-1]
    assert (record.funcName, record.lineno) == (
        "test_a_logger_class_that_finds_its_caller_itself_is_left_to_it",
        expected,
    )
