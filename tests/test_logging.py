"""Promise 7: one JSON line per record, with trace ids only inside a span, for stdlib and structlog."""

from __future__ import annotations

import datetime
import decimal
import io
import json
import logging
import re
import sys
import threading
import time
import types
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider

import obskit
import obskit.logging
from logcapture import Lines, attach, strict_loads
from obskit import LoggingContext, testing, trace_operation
from obskit._core import errors as _errors
from obskit._recording.loghandler import ObskitHandler
from obskit.logging import ConsoleFormatter, JsonFormatter

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
RFC3339_UTC_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
LOGGER = "tests.logging"
CORE_KEYS = {"timestamp", "level", "logger", "message", "service", "environment"}


def span_ids(span: Any) -> tuple[str, str]:
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, Lines]]:
    """A logger of its own whose records are rendered by a JsonFormatter."""
    yield from attach(JsonFormatter(), LOGGER)


@pytest.fixture
def console_log() -> Iterator[tuple[logging.Logger, Lines]]:
    yield from attach(ConsoleFormatter(), LOGGER)


@pytest.fixture
def quiet_configure(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """configure() without span/metric exporters; shut down before capsys goes away."""

    def run(**settings: Any) -> obskit.Settings:
        settings.setdefault("traces_exporter", "none")
        settings.setdefault("metrics_exporter", "none")
        return obskit.configure(**settings)

    yield run
    obskit.shutdown(timeout=2)


@pytest.fixture
def structlog_reset() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def obskit_handlers() -> list[ObskitHandler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, ObskitHandler)]


def stdout_records(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    out = capsys.readouterr().out
    return [strict_loads(line) for line in out.split("\n") if line.strip()]


# -- the JSON record ---------------------------------------------------------------------------


def test_each_record_is_one_valid_json_line_with_the_core_fields(quiet_configure, json_log):
    quiet_configure(service_name="checkout", environment="staging", logs_exporter="none")
    logger, lines = json_log
    logger.info("order %s placed", 42)
    logger.warning("second")

    assert len(lines.lines) == 2
    first, second = lines.parsed()
    assert first.keys() >= CORE_KEYS
    assert first["level"] == "INFO"
    assert first["logger"] == LOGGER
    assert first["message"] == "order 42 placed"
    assert first["service"] == "checkout"
    assert first["environment"] == "staging"
    assert second["level"] == "WARNING"
    assert second["message"] == "second"


def test_service_version_is_a_field_when_configured(quiet_configure, json_log):
    quiet_configure(service_name="svc", service_version="1.2.3", logs_exporter="none")
    logger, lines = json_log
    logger.info("hello")
    assert lines.last()["service_version"] == "1.2.3"


@pytest.mark.parametrize("level", ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])
def test_level_is_the_stdlib_level_name(json_log, level):
    logger, lines = json_log
    logger.log(logging.getLevelName(level), "at %s", level)
    record = lines.last()
    assert record["level"] == level
    assert record["message"] == f"at {level}"


def test_timestamp_is_utc_rfc3339_with_z_and_matches_record_created(json_log):
    logger, lines = json_log
    for i in range(50):
        logger.info("tick %d", i)
        if i % 10 == 0:
            time.sleep(0.002)
    for record, line in zip(lines.records, lines.parsed(), strict=True):
        stamp = line["timestamp"]
        assert RFC3339_UTC_MS.match(stamp), stamp
        parsed = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        assert parsed.utcoffset() == datetime.timedelta(0)
        assert abs(parsed.timestamp() - record.created) <= 0.001, (stamp, record.created)


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        (1700000000.0, "2023-11-14T22:13:20.000Z"),
        (1700000000.5, "2023-11-14T22:13:20.500Z"),
        (1700000000.9996, "2023-11-14T22:13:20.999Z"),
        (1700000001.0015, "2023-11-14T22:13:21.001Z"),
        (946684799.25, "1999-12-31T23:59:59.250Z"),
    ],
)
def test_timestamp_never_rounds_into_the_next_second(created, expected):
    formatter = JsonFormatter()
    record = logging.LogRecord(LOGGER, logging.INFO, __file__, 1, "m", (), None)
    record.created = created
    assert strict_loads(formatter.format(record))["timestamp"] == expected


def test_timestamp_is_utc_whatever_the_local_timezone(monkeypatch):
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is POSIX only")
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        record = logging.LogRecord(LOGGER, logging.INFO, __file__, 1, "m", (), None)
        record.created = 1700000000.25
        assert strict_loads(JsonFormatter().format(record))["timestamp"] == "2023-11-14T22:13:20.250Z"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_same_second_twice_then_a_new_second_keeps_timestamps_right():
    formatter = JsonFormatter()
    stamps = []
    for created in (1700000000.1005, 1700000000.2005, 1700000005.3005, 1700000000.4005):
        record = logging.LogRecord(LOGGER, logging.INFO, __file__, 1, "m", (), None)
        record.created = created
        stamps.append(strict_loads(formatter.format(record))["timestamp"])
    assert stamps == [
        "2023-11-14T22:13:20.100Z",
        "2023-11-14T22:13:20.200Z",
        "2023-11-14T22:13:25.300Z",
        "2023-11-14T22:13:20.400Z",
    ]


# -- trace ids -----------------------------------------------------------------------------------


def test_trace_and_span_ids_are_present_inside_a_span_and_equal_the_current_span(json_log):
    logger, lines = json_log
    with testing.capture(), trace_operation("work") as span:
        logger.info("inside")
        trace_id, span_id = span_ids(span)
    record = lines.last()
    assert HEX32.match(record["trace_id"])
    assert HEX16.match(record["span_id"])
    assert (record["trace_id"], record["span_id"]) == (trace_id, span_id)


def test_trace_ids_are_absent_outside_a_span_before_and_after_it(json_log):
    logger, lines = json_log
    with testing.capture():
        logger.info("before")
        with trace_operation("work"):
            logger.info("inside")
        logger.info("after")
    before, inside, after = lines.parsed()
    assert "trace_id" not in before
    assert "span_id" not in before
    assert "trace_id" in inside
    assert "span_id" in inside
    assert "trace_id" not in after
    assert "span_id" not in after


def test_trace_ids_are_absent_and_nothing_fails_when_nothing_is_configured(json_log):
    logger, lines = json_log
    with trace_operation("no tracer configured"):
        logger.info("inside a span that is not recorded")
    record = lines.last()
    assert "trace_id" not in record
    assert "span_id" not in record
    assert record["message"] == "inside a span that is not recorded"


def test_nested_spans_log_the_innermost_span_id_and_the_shared_trace_id(json_log):
    logger, lines = json_log
    with testing.capture(), trace_operation("outer") as outer:
        logger.info("in outer")
        with trace_operation("inner") as inner:
            logger.info("in inner")
        logger.info("back in outer")
    in_outer, in_inner, back = lines.parsed()
    assert (in_outer["trace_id"], in_outer["span_id"]) == span_ids(outer)
    assert (in_inner["trace_id"], in_inner["span_id"]) == span_ids(inner)
    assert in_inner["trace_id"] == in_outer["trace_id"]
    assert in_inner["span_id"] != in_outer["span_id"]
    assert (back["trace_id"], back["span_id"]) == span_ids(outer)


def test_trace_ids_inside_decorated_sync_and_async_functions(json_log):
    logger, lines = json_log
    seen: list[tuple[str, str]] = []

    @trace_operation("sync_op")
    def sync_op() -> None:
        seen.append(span_ids(obskit_current_span()))
        logger.info("sync")

    @trace_operation("async_op")
    async def async_op() -> None:
        seen.append(span_ids(obskit_current_span()))
        logger.info("async")

    import asyncio

    with testing.capture():
        sync_op()
        asyncio.run(async_op())
    records = lines.parsed()
    assert [(r["trace_id"], r["span_id"]) for r in records] == seen
    assert records[0]["trace_id"] != records[1]["trace_id"]


def obskit_current_span() -> Any:
    from opentelemetry import trace

    return trace.get_current_span()


def test_trace_ids_come_from_any_opentelemetry_span_not_only_obskit_ones(json_log):
    """Whatever the order of set-up: a span from a user's own SDK tracer is picked up too."""
    logger, lines = json_log
    provider = TracerProvider()
    tracer = provider.get_tracer("user.code")
    try:
        with tracer.start_as_current_span("user span") as span:
            logger.info("inside user span")
        logger.info("outside")
    finally:
        provider.shutdown()
    inside, outside = lines.parsed()
    assert (inside["trace_id"], inside["span_id"]) == span_ids(span)
    assert "trace_id" not in outside


def test_formatter_built_before_configure_gets_service_fields_after_it(quiet_configure, json_log):
    logger, lines = json_log
    logger.info("before")
    quiet_configure(service_name="late-service", environment="prod", logs_exporter="none")
    logger.info("after")
    before, after = lines.parsed()
    assert after["service"] == "late-service"
    assert after["environment"] == "prod"
    assert before.get("service") != "late-service"


def test_each_thread_logs_its_own_span_ids(json_log):
    logger, lines = json_log
    expected: dict[str, tuple[str, str]] = {}
    barrier = threading.Barrier(6, timeout=10)

    def work(i: int) -> None:
        with trace_operation(f"thread-{i}") as span:
            expected[f"t{i}"] = span_ids(span)
            barrier.wait()
            for _ in range(100):
                logger.info("t%d", i)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        with testing.capture():
            threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        sys.setswitchinterval(old)
    records = lines.parsed()
    assert len(records) == 600
    for record in records:
        assert (record["trace_id"], record["span_id"]) == expected[record["message"]]


# -- context and extra fields --------------------------------------------------------------------


def test_logging_context_fields_are_on_every_line_inside_it(json_log):
    logger, lines = json_log
    with LoggingContext(request_id="req-1", user_id="user-9", tenant="acme", attempt=2):
        logger.info("one")
        logger.error("two")
    logger.info("outside")
    one, two, outside = lines.parsed()
    for record in (one, two):
        assert record["request_id"] == "req-1"
        assert record["user_id"] == "user-9"
        assert record["tenant"] == "acme"
        assert record["attempt"] == 2
    assert not {"request_id", "user_id", "tenant", "attempt"} & outside.keys()


def test_extra_fields_are_rendered_with_their_json_types(json_log):
    logger, lines = json_log
    logger.info(
        "job submitted",
        extra={
            "job_id": "j-7",
            "count": 3,
            "ratio": 0.5,
            "ok": True,
            "nothing": None,
            "tags": ["a", "b"],
            "detail": {"stage": "extract", "n": 1},
        },
    )
    record = lines.last()
    assert record["job_id"] == "j-7"
    assert record["count"] == 3
    assert record["ratio"] == 0.5
    assert record["ok"] is True
    assert record["nothing"] is None
    assert record["tags"] == ["a", "b"]
    assert record["detail"] == {"stage": "extract", "n": 1}


def test_extra_field_overrides_context_field_for_that_line_only(json_log):
    logger, lines = json_log
    with LoggingContext(request_id="ctx", user_id="ctx-user"):
        logger.info("a", extra={"user_id": "explicit"})
        logger.info("b")
    a, b = lines.parsed()
    assert a["user_id"] == "explicit"
    assert b["user_id"] == "ctx-user"


@pytest.mark.parametrize(
    "name",
    [
        "level",
        "logger",
        "timestamp",
        "service",
        "environment",
        "trace_id",
        "span_id",
        "exception",
        "service_version",
    ],
)
def test_extra_named_like_a_core_field_does_not_overwrite_it(quiet_configure, json_log, name):
    quiet_configure(service_name="svc", environment="env", service_version="1.0", logs_exporter="none")
    logger, lines = json_log
    sentinel = "USER-VALUE-" + name
    with testing.capture(), trace_operation("op") as span:
        logger.info("msg", extra={name: sentinel})
        trace_id, span_id = span_ids(span)
    record = lines.last()
    assert record["level"] == "INFO"
    assert record["logger"] == LOGGER
    assert record["message"] == "msg"
    assert RFC3339_UTC_MS.match(record["timestamp"])
    assert record["service"] == "svc"
    assert record["environment"] == "env"
    assert record["service_version"] == "1.0"
    assert (record["trace_id"], record["span_id"]) == (trace_id, span_id)
    assert "exception" not in record
    assert "stack_info" not in record
    assert sentinel in record.values(), "the user's value is kept under another key"


def test_context_field_named_like_a_core_field_does_not_overwrite_it(quiet_configure, json_log):
    quiet_configure(service_name="svc", environment="env", logs_exporter="none")
    logger, lines = json_log
    with LoggingContext(level="NOPE", service="NOPE", message="NOPE", logger="NOPE"):
        logger.warning("real")
    record = lines.last()
    assert (record["level"], record["service"], record["message"], record["logger"]) == (
        "WARNING",
        "svc",
        "real",
        LOGGER,
    )


# -- exceptions and stacks -----------------------------------------------------------------------


def _fail_deep() -> None:
    raise ValueError("bad thing happened")


def test_log_exception_renders_type_message_and_stack(json_log):
    logger, lines = json_log
    try:
        _fail_deep()
    except ValueError:
        logger.exception("it failed")
    record = lines.last()
    assert record["level"] == "ERROR"
    assert record["message"] == "it failed"
    exc = record["exception"]
    assert exc["type"] == "ValueError"
    assert exc["message"] == "bad thing happened"
    assert exc["stack"].startswith("Traceback (most recent call last):")
    assert "_fail_deep" in exc["stack"]
    assert exc["stack"].rstrip().endswith("ValueError: bad thing happened")


def test_exception_instance_as_exc_info_and_chained_causes_are_rendered(json_log):
    logger, lines = json_log
    try:
        try:
            _fail_deep()
        except ValueError as inner:
            raise KeyError("outer") from inner
    except KeyError as error:
        logger.warning("chained", exc_info=error)
    exc = lines.last()["exception"]
    assert exc["type"] == "KeyError"
    assert "ValueError: bad thing happened" in exc["stack"]
    assert "direct cause" in exc["stack"]


def test_exception_with_multiline_message_stays_one_line(json_log):
    logger, lines = json_log
    try:
        raise RuntimeError('line one\nline "two"\r\n\tline three ✓')
    except RuntimeError:
        logger.exception("multi")
    assert len(lines.lines) == 1
    exc = lines.last()["exception"]
    assert exc["message"] == 'line one\nline "two"\r\n\tline three ✓'


def test_exception_whose_str_fails_is_still_rendered(json_log):
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

    logger, lines = json_log
    try:
        raise Unprintable()
    except Unprintable:
        logger.exception("cannot print the error")
    record = lines.last()
    assert record["message"] == "cannot print the error"
    assert record["exception"]["type"] == "Unprintable"


def test_no_exception_field_without_exc_info(json_log):
    logger, lines = json_log
    logger.error("plain error")
    assert "exception" not in lines.last()


def test_stack_info_is_rendered(json_log):
    logger, lines = json_log
    logger.info("where am I", stack_info=True)
    record = lines.last()
    assert record["stack_info"].startswith("Stack (most recent call last):")
    assert "test_stack_info_is_rendered" in record["stack_info"]


# -- awkward content -----------------------------------------------------------------------------

AWKWARD = [
    "line one\nline two",
    "windows\r\nline",
    "carriage\rreturn",
    "double \"quotes\" and 'single'",
    "back\\slash \\n not a newline",
    "tab\tand\x00nul and \x1b[31mescape",
    "naïve café – Ünïcødé, 日本語, Ελληνικά",  # noqa: RUF001 - the en dash is the point
    "emoji 🚀🔥👩‍👩‍👧 and flags 🇩🇪",
    '{"level":"FAKE","message":"injected"}',
    "trailing newline\n",
    "\u2028line separator\u2029paragraph separator",
    "",
]


@pytest.mark.parametrize("message", AWKWARD)
def test_awkward_messages_stay_one_json_line_that_round_trips(json_log, message):
    logger, lines = json_log
    logger.info(message)
    assert len(lines.lines) == 1
    record = lines.last()
    assert record["message"] == message
    assert record["level"] == "INFO"


@pytest.mark.parametrize("message", AWKWARD)
def test_awkward_values_in_extra_and_context_round_trip(json_log, message):
    logger, lines = json_log
    with LoggingContext(user_id=message):
        logger.info("m", extra={"note": message, "nested": {"deep": [message]}})
    record = lines.last()
    assert record["note"] == message
    assert record["user_id"] == message
    assert record["nested"] == {"deep": [message]}


class _BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")


def _circular_list() -> list[Any]:
    value: list[Any] = [1]
    value.append(value)
    return value


def _circular_dict() -> dict[str, Any]:
    value: dict[str, Any] = {"a": 1}
    value["self"] = value
    return value


@pytest.mark.parametrize(
    "value",
    [
        object(),
        {1, 2},
        b"\xff\x00bytes",
        datetime.datetime(2024, 1, 2, 3, 4, 5),
        decimal.Decimal("1.10"),
        complex(1, 2),
        _BrokenRepr(),
        {(1, 2): "tuple key"},
        [{(1, 2): "tuple key inside a list"}],
        float("nan"),
        float("inf"),
        [float("-inf")],
        {"deep": {"deeper": float("nan")}},
        _circular_list(),
        _circular_dict(),
        ValueError("an exception as a value"),
    ],
    ids=lambda v: type(v).__name__,
)
def test_values_json_cannot_encode_do_not_break_the_line(json_log, value):
    logger, lines = json_log
    logger.info("still logged", extra={"weird": value, "fine": 1})
    assert len(lines.lines) == 1
    record = lines.last()  # strict JSON: no NaN/Infinity either
    assert record["message"] == "still logged"
    assert record["fine"] == 1
    assert "weird" in record


def test_structlog_values_json_cannot_encode_do_not_break_the_line(json_log):
    _logger, lines = json_log
    obskit.get_logger(LOGGER).info("still logged", weird=object(), nan=float("nan"), broken=_BrokenRepr())
    record = lines.last()
    assert record["message"] == "still logged"
    assert {"weird", "nan", "broken"} <= record.keys()


# -- console format ------------------------------------------------------------------------------


def test_console_formatter_renders_a_human_line_with_message_and_fields(quiet_configure, console_log):
    quiet_configure(service_name="svc", logs_exporter="none")
    logger, lines = console_log
    with LoggingContext(request_id="r-1"):
        logger.warning("disk %s", "full", extra={"mount": "/data"})
    line = lines.lines[-1]
    assert not line.startswith("{")
    assert "WARNING" in line
    assert LOGGER in line
    assert "disk full" in line
    assert "mount=/data" in line
    assert "request_id=r-1" in line
    assert "service=svc" in line
    assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z ", line)


def test_console_formatter_appends_the_exception_stack(console_log):
    logger, lines = console_log
    try:
        _fail_deep()
    except ValueError:
        logger.exception("broke")
    line = lines.lines[-1]
    head, _, rest = line.partition("\n")
    assert "broke" in head
    assert "Traceback (most recent call last):" in rest
    assert "ValueError: bad thing happened" in rest


def test_console_formatter_redacts_like_json(console_log):
    logger, lines = console_log
    logger.info("login", extra={"password": "hunter2"})
    assert "hunter2" not in lines.lines[-1]
    assert "password=[REDACTED]" in lines.lines[-1]


def test_configure_console_format_writes_human_lines_to_stdout(quiet_configure, capsys):
    quiet_configure(service_name="svc", log_format="console")
    logging.getLogger("tests.console").info("hello console", extra={"k": 1})
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "hello console" in line]
    assert len(lines) == 1
    assert not lines[0].startswith("{")
    assert "INFO" in lines[0]
    assert "tests.console" in lines[0]
    assert "k=1" in lines[0]


# -- configure() and the root handler ------------------------------------------------------------


def test_configure_installs_exactly_one_handler_however_often_it_runs(quiet_configure, capsys):
    for _ in range(3):
        quiet_configure(service_name="svc")
    assert len(obskit_handlers()) == 1
    logging.getLogger("tests.once").warning("only once")
    records = [r for r in stdout_records(capsys) if r["message"] == "only once"]
    assert len(records) == 1


def test_reconfiguring_with_other_settings_keeps_one_handler_with_the_latest_format(quiet_configure, capsys):
    quiet_configure(log_format="console")
    quiet_configure(log_format="json", service_name="second")
    assert len(obskit_handlers()) == 1
    logging.getLogger("tests.latest").warning("which format")
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert strict_loads(out[0])["service"] == "second"


def test_configure_writes_json_lines_to_stdout(quiet_configure, capsys):
    quiet_configure(service_name="stdout-svc", environment="ci")
    logging.getLogger("tests.stdout").info("to stdout", extra={"job_id": 7})
    captured = capsys.readouterr()
    records = [strict_loads(line) for line in captured.out.splitlines() if line.strip()]
    (record,) = [r for r in records if r["message"] == "to stdout"]
    assert record["service"] == "stdout-svc"
    assert record["environment"] == "ci"
    assert record["job_id"] == 7
    assert "to stdout" not in captured.err


def test_configure_respects_log_level(quiet_configure, capsys):
    quiet_configure(log_level="INFO")
    log = logging.getLogger("tests.level")
    log.debug("hidden debug")
    log.info("shown info")
    messages = [r["message"] for r in stdout_records(capsys)]
    assert "shown info" in messages
    assert "hidden debug" not in messages


def test_configure_debug_level_shows_debug(quiet_configure, capsys):
    quiet_configure(log_level="debug")
    logging.getLogger("tests.level.debug").debug("visible debug")
    assert "visible debug" in [r["message"] for r in stdout_records(capsys)]


def test_configure_warning_level_hides_info(quiet_configure, capsys):
    quiet_configure(log_level="WARNING")
    log = logging.getLogger("tests.level.warning")
    log.info("hidden info")
    log.warning("shown warning")
    messages = [r["message"] for r in stdout_records(capsys)]
    assert messages == ["shown warning"]


def test_logs_exporter_none_installs_no_handler(quiet_configure, capsys):
    quiet_configure(logs_exporter="none")
    assert obskit_handlers() == []
    logging.getLogger("tests.none").warning("nowhere")
    assert "nowhere" not in capsys.readouterr().out


def test_logs_exporter_none_from_environment_installs_no_handler(quiet_configure, monkeypatch):
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "none")
    quiet_configure()
    assert obskit_handlers() == []


def test_reconfigure_with_logs_exporter_none_removes_the_handler(quiet_configure):
    quiet_configure()
    assert len(obskit_handlers()) == 1
    quiet_configure(logs_exporter="none")
    assert obskit_handlers() == []


def test_shutdown_removes_the_handler_and_restores_the_root_level(quiet_configure, capsys):
    root = logging.getLogger()
    root.setLevel(logging.ERROR)
    quiet_configure(log_level="DEBUG")
    quiet_configure(log_level="INFO")
    assert root.level == logging.INFO
    obskit.shutdown()
    assert obskit_handlers() == []
    assert root.level == logging.ERROR
    capsys.readouterr()
    logging.getLogger("tests.after").error("after shutdown")
    assert "after shutdown" not in capsys.readouterr().out


def test_configure_keeps_other_handlers_on_the_root_logger(quiet_configure):
    root = logging.getLogger()
    mine = logging.NullHandler()
    root.addHandler(mine)
    quiet_configure()
    quiet_configure()
    assert mine in root.handlers
    obskit.shutdown()
    assert mine in root.handlers


def test_stdlib_structlog_and_third_party_loggers_render_the_same_json_once(quiet_configure, capsys):
    quiet_configure(service_name="svc", environment="env")
    with LoggingContext(request_id="r-1", user_id="u-1"):
        logging.getLogger("tests.mine").info("same", extra={"k": 1})
        obskit.get_logger("tests.mine").info("same", k=1)
        logging.getLogger("some.thirdparty.lib").info("same", extra={"k": 1})
    records = stdout_records(capsys)
    assert len(records) == 3
    assert len({frozenset(r) for r in records}) == 1
    for record in records:
        assert record["request_id"] == "r-1"
        assert record["user_id"] == "u-1"
        assert record["service"] == "svc"
        assert record["k"] == 1


def test_trace_ids_reach_stdout_with_a_console_span_pipeline(capsys):
    obskit.configure(service_name="svc", metrics_exporter="none")
    try:
        with trace_operation("configured op") as span:
            logging.getLogger("tests.traced").info("inside configured span")
        logging.getLogger("tests.traced").info("outside configured span")
        expected = span_ids(span)
    finally:
        obskit.shutdown(timeout=2)
    by_message = {r["message"]: r for r in stdout_records(capsys)}
    inside = by_message["inside configured span"]
    assert (inside["trace_id"], inside["span_id"]) == expected
    assert "trace_id" not in by_message["outside configured span"]


# -- structlog -----------------------------------------------------------------------------------


def test_get_logger_goes_through_stdlib_logging(json_log):
    _, lines = json_log
    obskit.get_logger(LOGGER).info("event", k=1)
    assert len(lines.records) == 1
    record = lines.records[0]
    assert record.name == LOGGER
    assert record.levelno == logging.INFO
    parsed = lines.last()
    assert parsed["message"] == "event"
    assert parsed["k"] == 1


def test_get_logger_renders_the_same_shape_as_stdlib(quiet_configure, json_log):
    quiet_configure(service_name="svc", environment="env", logs_exporter="none")
    logger, lines = json_log
    with testing.capture(), LoggingContext(request_id="r-9", user_id="u-9"), trace_operation("op") as span:
        logger.info("event", extra={"k": 1})
        obskit.get_logger(LOGGER).info("event", k=1)
        expected = span_ids(span)
    via_stdlib, via_structlog = lines.parsed()
    assert via_stdlib.keys() == via_structlog.keys()
    via_stdlib.pop("timestamp")
    via_structlog.pop("timestamp")
    assert via_stdlib == via_structlog
    assert (via_structlog["trace_id"], via_structlog["span_id"]) == expected
    assert via_structlog["request_id"] == "r-9"
    assert via_structlog["user_id"] == "u-9"


def test_get_logger_without_fields_has_only_core_keys(json_log):
    logger, lines = json_log
    logger.info("bare")
    obskit.get_logger(LOGGER).info("bare")
    a, b = lines.parsed()
    assert a.keys() == b.keys()


@pytest.mark.parametrize("method", ["debug", "info", "warning", "error", "critical"])
def test_get_logger_levels_match_stdlib(json_log, method):
    _, lines = json_log
    getattr(obskit.get_logger(LOGGER), method)("lvl")
    assert lines.last()["level"] == method.upper()


def test_get_logger_is_safe_before_configure_and_follows_it(quiet_configure, json_log):
    log = obskit.get_logger(LOGGER)  # as at module level, before configure()
    quiet_configure(service_name="later", logs_exporter="none")
    _, lines = json_log
    log.info("after configure")
    assert lines.last()["service"] == "later"


def test_get_logger_bound_and_initial_values_become_fields(json_log):
    _, lines = json_log
    log = obskit.get_logger(LOGGER, component="billing").bind(job_id=7)
    log.info("bound")
    record = lines.last()
    assert record["component"] == "billing"
    assert record["job_id"] == 7


def test_get_logger_positional_arguments_are_interpolated(json_log):
    _, lines = json_log
    obskit.get_logger(LOGGER).info("hello %s, %d%% done", "world", 50)
    assert lines.last()["message"] == "hello world, 50% done"


def test_get_logger_percent_signs_without_args_are_kept(json_log):
    _, lines = json_log
    obskit.get_logger(LOGGER).info("100% done %s %d")
    assert lines.last()["message"] == "100% done %s %d"


def test_get_logger_fields_named_like_logrecord_attributes_do_not_break(json_log):
    _, lines = json_log
    obskit.get_logger(LOGGER).info("clash", name="n", module="m", lineno="l", args="a", msg="x", level="FAKE")
    record = lines.last()
    assert record["message"] == "clash"
    assert record["level"] == "INFO"
    assert record["logger"] == LOGGER
    assert record["name"] == "n"
    assert record["module"] == "m"
    assert record["msg"] == "x"


def test_get_logger_exception_renders_the_exception(json_log):
    _, lines = json_log
    try:
        _fail_deep()
    except ValueError:
        obskit.get_logger(LOGGER).exception("structlog failure", job_id=3)
    record = lines.last()
    assert record["level"] == "ERROR"
    assert record["message"] == "structlog failure"
    assert record["job_id"] == 3
    assert record["exception"]["type"] == "ValueError"
    assert record["exception"]["message"] == "bad thing happened"
    assert "_fail_deep" in record["exception"]["stack"]


def test_get_logger_is_independent_of_global_structlog_configuration(json_log, structlog_reset):
    sink = io.StringIO()
    structlog.configure(
        processors=[structlog.processors.JSONRenderer()], logger_factory=structlog.PrintLoggerFactory(sink)
    )
    _, lines = json_log
    obskit.get_logger(LOGGER).info("still obskit", k=2)
    assert lines.last()["k"] == 2
    assert sink.getvalue() == ""


def _structlog_lines(sink: io.StringIO) -> list[dict[str, Any]]:
    text = sink.getvalue()
    assert text.endswith("\n")
    assert "\r" not in text
    return [strict_loads(line) for line in text[:-1].split("\n")]


def test_structlog_processors_print_the_same_keys_as_json_formatter(
    quiet_configure, json_log, structlog_reset
):
    quiet_configure(service_name="svc", environment="env", logs_exporter="none")
    sink = io.StringIO()
    structlog.configure(
        processors=obskit.logging.structlog_processors(), logger_factory=structlog.PrintLoggerFactory(sink)
    )
    logger, lines = json_log
    with testing.capture(), LoggingContext(request_id="r-5", user_id="u-5"), trace_operation("op") as span:
        structlog.get_logger(LOGGER).info("event", k=1)
        logger.info("event", extra={"k": 1})
        expected = span_ids(span)
    (direct,) = _structlog_lines(sink)
    via_formatter = lines.last()
    assert direct.keys() == via_formatter.keys()
    for key in (
        "level",
        "message",
        "service",
        "environment",
        "trace_id",
        "span_id",
        "request_id",
        "user_id",
        "k",
    ):
        assert direct[key] == via_formatter[key], key
    assert (direct["trace_id"], direct["span_id"]) == expected
    assert RFC3339_UTC_MS.match(direct["timestamp"])
    stamp = datetime.datetime.fromisoformat(direct["timestamp"].replace("Z", "+00:00")).timestamp()
    assert abs(stamp - time.time()) < 5


def test_structlog_processors_outside_span_have_no_trace_ids(structlog_reset):
    sink = io.StringIO()
    structlog.configure(
        processors=obskit.logging.structlog_processors(), logger_factory=structlog.PrintLoggerFactory(sink)
    )
    structlog.get_logger().warning("plain", path="/x")
    (record,) = _structlog_lines(sink)
    assert record["level"] == "WARNING"
    assert record["path"] == "/x"
    assert "trace_id" not in record
    assert "span_id" not in record


def test_structlog_processors_exception(structlog_reset):
    sink = io.StringIO()
    structlog.configure(
        processors=obskit.logging.structlog_processors(), logger_factory=structlog.PrintLoggerFactory(sink)
    )
    try:
        _fail_deep()
    except ValueError as error:
        structlog.get_logger().exception("boom")
        structlog.get_logger().error("explicit", exc_info=error)
    boom, explicit = _structlog_lines(sink)
    for record in (boom, explicit):
        assert record["level"] == "ERROR"
        assert record["exception"]["type"] == "ValueError"
        assert record["exception"]["message"] == "bad thing happened"
        assert "_fail_deep" in record["exception"]["stack"]


@pytest.mark.parametrize("message", AWKWARD)
def test_structlog_processors_keep_awkward_messages_on_one_line(structlog_reset, message):
    sink = io.StringIO()
    structlog.configure(
        processors=obskit.logging.structlog_processors(), logger_factory=structlog.PrintLoggerFactory(sink)
    )
    structlog.get_logger().info(message, note=message)
    (record,) = _structlog_lines(sink)
    assert record["message"] == message
    assert record["note"] == message


# -- obskit's own warnings -----------------------------------------------------------------------


def test_obskit_internal_error_warnings_are_rate_limited(swallow_internal_errors, monkeypatch, caplog):
    clock = [1000.0]
    monkeypatch.setattr(_errors, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))

    def broken_id() -> str:
        raise RuntimeError("request id source is down")

    monkeypatch.setattr("obskit._core.context.new_request_id", broken_id)

    @LoggingContext(user_id="u")
    def handler(x: int) -> int:
        return x * 2

    caplog.set_level(logging.WARNING, logger="obskit")

    def obskit_warnings() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "obskit" and r.levelno == logging.WARNING]

    assert handler(1) == 2
    assert handler(2) == 4  # the same error again, within a minute
    assert len(obskit_warnings()) == 1
    assert "request id source is down" in obskit_warnings()[0].getMessage()

    clock[0] += 30
    assert handler(3) == 6
    assert len(obskit_warnings()) == 1

    clock[0] += 31  # more than a minute after the first report
    assert handler(4) == 8
    assert len(obskit_warnings()) == 2


def test_obskit_internal_error_warning_renders_as_one_json_line(
    swallow_internal_errors, monkeypatch, json_log
):
    monkeypatch.setattr("obskit._core.context.new_request_id", lambda: 1 / 0)
    obskit_logger = logging.getLogger("obskit")
    _, lines = json_log
    obskit_logger.addHandler(lines)
    try:

        @LoggingContext()
        def work() -> str:
            return "done"

        assert work() == "done"
    finally:
        obskit_logger.removeHandler(lines)
    (record,) = lines.parsed()
    assert record["logger"] == "obskit"
    assert record["level"] == "WARNING"
    assert record["exception"]["type"] == "ZeroDivisionError"


def test_obskit_internal_warnings_are_not_written_to_the_exported_log_stream(
    swallow_internal_errors, monkeypatch, quiet_configure, capsys
):
    quiet_configure(service_name="svc")
    monkeypatch.setattr("obskit._core.context.new_request_id", lambda: 1 / 0)

    @LoggingContext()
    def work() -> str:
        logging.getLogger("tests.app").info("user line")
        return "done"

    assert work() == "done"
    captured = capsys.readouterr()
    records = [strict_loads(line) for line in captured.out.split("\n") if line.strip()]
    assert [r["message"] for r in records] == ["user line"]
    assert all(r["logger"] != "obskit" for r in records)
    assert "ZeroDivisionError" in captured.err


def test_line_with_lone_surrogate_is_written_escaped_not_lost() -> None:
    import subprocess
    import sys

    code = (
        "import logging, obskit\n"
        "obskit.configure(traces_exporter='none', metrics_exporter='none')\n"
        "logging.getLogger('fs').warning('file %s', 'caf\\udce9.txt')\n"
    )
    env = {"PYTHONIOENCODING": "utf-8:strict", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert "Logging error" not in out.stderr
    record = json.loads(out.stdout.strip().splitlines()[-1])
    # Written as the escape's text, the same text the exported record carries (docs/logging.md).
    assert record["message"] == "file caf\\udce9.txt"


def test_structlog_stack_info_renders_a_stack_not_a_field() -> None:
    with testing.capture() as cap:
        obskit.get_logger("stacky").info("where am I", stack_info=True)
    (record,) = cap.logs(message="where am I")
    assert "field_stack_info" not in record
    assert "Stack (most recent call last)" in record["stack_info"]


def test_millisecond_suffixes_are_every_fraction_in_order() -> None:
    # Built from digits at import (cheaper than formatting 1001 numbers): the same table.
    from obskit.logging import _MILLIS

    formatted = tuple(f".{min(ms, 999):03d}Z" for ms in range(1001))
    assert formatted == _MILLIS
