"""Issue 11, quiet: obskit's own lines hide credentials; the libraries' lines are limited by class.

The integration tests (tests/integration/test_quiet_backends.py, test_azure_ingestion.py) run
the same against real peers that are down; these pin the rules one record at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

import obskit
from obskit._core import errors as _errors
from obskit._export.pipeline import (
    HEALTH,
    RateLimitFilter,
    backend_of,
    message_class,
    record_export,
    run_with_deadline,
)
from obskit._runtime import lifecycle as _runtime

SECRET = "hunter2-Secret"
URL = f"https://deploy:{SECRET}@collector.example:4318/v1/traces"


def _record(name: str, level: int, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, level, "f", 1, msg, args, None)


@pytest.fixture
def fresh_health() -> Iterator[None]:
    HEALTH.reset()
    yield
    HEALTH.reset()


@pytest.fixture
def azure_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("azure.core.pipeline.policies.http_logging_policy")
    level = logger.level
    yield logger
    logger.setLevel(level)
    logging.getLogger("azure").setLevel(logging.NOTSET)


# -- obskit's own lines -------------------------------------------------------------------------


def test_an_internal_error_quoting_a_url_password_shows_it_nowhere_on_stderr(
    swallow_internal_errors: None, capfd: pytest.CaptureFixture[str]
) -> None:
    obskit.configure(traces_exporter="none", metrics_exporter="none", logs_exporter="none")
    try:
        raise ConnectionError(f"cannot reach {URL}")
    except ConnectionError as exc:
        _errors.report_internal_error("span export (FakeExporter)", exc)
    err = capfd.readouterr().err
    assert "obskit internal error in span export (FakeExporter)" in err
    assert "Traceback (most recent call last)" in err
    assert "https://[REDACTED]@collector.example" in err
    assert SECRET not in err


def test_an_internal_error_before_configure_reaches_the_app_handlers_scrubbed(
    swallow_internal_errors: None, caplog: pytest.LogCaptureFixture
) -> None:
    try:
        raise ConnectionError(f"cannot reach {URL}")
    except ConnectionError as exc:
        _errors.report_internal_error("before configure", exc)
    assert "obskit internal error in before configure" in caplog.text
    assert "ConnectionError: cannot reach https://[REDACTED]@collector.example" in caplog.text
    assert SECRET not in caplog.text


def test_every_obskit_warning_is_scrubbed_arguments_and_all(capfd: pytest.CaptureFixture[str]) -> None:
    obskit.configure(traces_exporter="none", metrics_exporter="none", logs_exporter="none", redact_text=False)
    logging.getLogger("obskit").warning(
        "obskit: pushing to %s failed: %r", URL, ValueError(f"Bearer {SECRET}")
    )
    assert not run_with_deadline(f"flush to {URL}", lambda: __import__("time").sleep(0.5), 0.01)
    err = capfd.readouterr().err
    assert err.count("[REDACTED]") >= 3
    assert SECRET not in err


# -- the libraries' lines: by class ---------------------------------------------------------------


def test_message_classes_name_the_backend_not_the_module() -> None:
    assert message_class("opentelemetry.exporter.otlp.proto.grpc.exporter") == "otlp"
    assert message_class("opentelemetry.exporter.otlp.proto.http.trace_exporter") == "otlp"
    assert message_class("grpc._channel") == "otlp"
    assert message_class("azure.core.pipeline.policies.http_logging_policy") == "azure"
    assert message_class("azure.monitor.opentelemetry.exporter.export._base") == "azure"
    assert message_class("opentelemetry.sdk._shared_internal") == "opentelemetry"
    assert message_class("urllib3.connectionpool") == "urllib3"
    assert message_class("azure_app") == message_class("myapp") == ""


def test_backends_are_named_as_their_messages_are() -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from obskit._core.settings import Settings
    from obskit._export.console import span_exporter

    assert backend_of(OTLPSpanExporter()) == "otlp"
    assert backend_of(span_exporter(Settings())) == "console"


def test_one_line_a_minute_per_class_whatever_the_text_and_the_next_says_how_many_were_suppressed(
    fresh_health: None,
) -> None:
    limit = RateLimitFilter(interval=60)
    first = _record("opentelemetry.exporter.otlp.proto.http.trace_exporter", logging.ERROR, "spans %d", 1)
    assert limit.filter(first)
    assert first.getMessage() == "spans 1"
    for number in range(5):
        assert not limit.filter(
            _record("opentelemetry.exporter.otlp.proto.http.metric_exporter", 30, "m %d", number)
        )
        assert not limit.filter(_record("grpc._channel", logging.WARNING, f"channel {number}"))
    # Another class has its own minute.
    assert limit.filter(
        _record("opentelemetry.sdk._shared_internal", logging.WARNING, "Queue full, dropping Span.")
    )
    assert limit.filter(_record("azure.monitor.opentelemetry.exporter", logging.WARNING, "500"))
    # Application loggers are never limited.
    assert all(limit.filter(_record("myapp", logging.WARNING, "same")) for _ in range(3))

    short = RateLimitFilter(interval=0.0)
    later = _record("opentelemetry.exporter.otlp.proto.grpc.exporter", logging.WARNING, "Failed %s", "again")
    assert short.filter(later)
    assert later.getMessage() == "Failed again (and 10 similar messages suppressed)"


def test_library_chatter_below_warning_only_when_the_app_set_that_logger_level(
    azure_logger: logging.Logger,
) -> None:
    limit = RateLimitFilter(interval=60)
    request = _record(azure_logger.name, logging.INFO, "Request URL: 'http://127.0.0.1/v2.1/track'")
    assert not limit.filter(request)
    assert not limit.filter(_record("urllib3.connectionpool", logging.DEBUG, "Starting new HTTP connection"))
    logging.getLogger("azure").setLevel(logging.DEBUG)  # asked for: all of it, unlimited
    assert all(limit.filter(request) for _ in range(3))
    logging.getLogger("azure").setLevel(logging.NOTSET)
    azure_logger.setLevel(logging.INFO)
    assert limit.filter(request)


def test_a_handler_filter_lets_through_what_the_logger_filter_judged(fresh_health: None) -> None:
    on_logger, on_handler = RateLimitFilter(interval=60), RateLimitFilter(interval=60)
    logger = logging.getLogger("opentelemetry.exporter.otlp.proto.fake_for_test")
    logger.addFilter(on_logger)
    try:
        record = _record(logger.name, logging.WARNING, "export failed")
        assert on_logger.filter(record)
        assert on_handler.filter(record)
        assert on_handler.filter(_record(logger.name, logging.WARNING, "export failed"))
    finally:
        logger.removeFilter(on_logger)
    # Without a filter on its logger (created after configure()), the handler's judges.
    assert on_handler.filter(_record(logger.name, logging.WARNING, "export failed"))
    assert not on_handler.filter(_record(logger.name, logging.WARNING, "export failed"))


# -- recovery -------------------------------------------------------------------------------------


def test_a_backend_recovers_once_every_failed_signal_works_again_then_a_new_outage_warns_at_once(
    fresh_health: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="obskit")
    limit = RateLimitFilter(interval=60)
    warning = _record("opentelemetry.exporter.otlp.proto.grpc.exporter", logging.WARNING, "Failed to export")
    assert limit.filter(warning)
    for signal in ("traces", "metrics", "traces", "logs"):
        record_export("otlp", signal, False)
    assert not limit.filter(_record(warning.name, logging.WARNING, "Failed to export"))
    record_export("otlp", "traces", True)
    record_export("otlp", "metrics", True)
    assert [r for r in caplog.records if "work again" in r.getMessage()] == []  # logs still failing
    record_export("otlp", "logs", True)
    record_export("otlp", "logs", True)
    record_export("azure", "traces", True)  # never failed: nothing to say
    (line,) = [r.getMessage() for r in caplog.records if "work again" in r.getMessage()]
    assert line.startswith("obskit: exports to otlp work again (logs, metrics, traces): 4 failed exports")
    assert line.endswith("(and 1 similar message suppressed)")
    # A new outage: its first message goes through at once, not a minute after the last one.
    assert limit.filter(_record(warning.name, logging.WARNING, "Failed to export"))


def test_configure_sets_the_interval_from_a_private_knob(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_runtime, "_QUIET_INTERVAL", 0.5)
    library = logging.getLogger("opentelemetry.exporter.fake_for_knob")
    obskit.configure(traces_exporter="none", metrics_exporter="none")
    (limit,) = [f for f in library.filters if isinstance(f, RateLimitFilter)]
    assert limit._interval == 0.5
