"""Export plumbing: drop counting, rate-limited library warnings, deadlines, exported-log handler."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import obskit
from obskit import LoggingContext, trace_operation
from obskit._core import state as _state
from obskit._core.errors import ConfigError
from obskit._core.redact import Redactor
from obskit._core.settings import resolve_settings
from obskit._export.backends import check
from obskit._export.logexport import ObskitLoggingHandler, severity
from obskit._export.pipeline import (
    CountingSpanExporter,
    CountingSpanProcessor,
    ExcludeInternalFilter,
    RateLimitFilter,
    run_with_deadline,
)
from obskit._recording.loghandler import ObskitHandler
from obskit.testing import capture


def _dropped(signal: str, reason: str) -> float:
    value = _state.STATE.store.registry.get_sample_value(
        "obskit_telemetry_dropped_total", {"signal": signal, "reason": reason}
    )
    return value or 0.0


class _Failing(SpanExporter):
    def __init__(self, raises: bool = False) -> None:
        self.raises = raises

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.raises:
            raise RuntimeError("peer exploded")
        return SpanExportResult.FAILURE


class _Blocking(SpanExporter):
    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(30)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.wait(30)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.release.wait(30)
        return True


def _spans(n: int) -> list[ReadableSpan]:
    provider = TracerProvider(shutdown_on_exit=False)
    tracer = provider.get_tracer("t")
    spans = []
    for i in range(n):
        span = tracer.start_span(f"s{i}")
        span.end()
        spans.append(span)
    return spans  # type: ignore[return-value]


def test_failed_export_counts_every_span_of_the_batch() -> None:
    with capture():
        result = CountingSpanExporter(_Failing()).export(_spans(3))
        assert result is SpanExportResult.FAILURE
        assert _dropped("traces", "export_failed") == 3


@pytest.mark.usefixtures("swallow_internal_errors")
def test_exporter_that_raises_is_counted_and_reported_not_raised() -> None:
    with capture():
        assert CountingSpanExporter(_Failing(raises=True)).export(_spans(2)) is SpanExportResult.FAILURE
        assert _dropped("traces", "export_failed") == 2


def test_full_queue_drops_are_counted() -> None:
    blocking = _Blocking()
    batch = BatchSpanProcessor(
        blocking, max_queue_size=2, max_export_batch_size=1, schedule_delay_millis=60_000
    )
    processor = CountingSpanProcessor(batch, 2)
    with capture():
        for span in _spans(10):
            processor.on_end(span)
        # The worker may have taken one span off the queue; at least 7 of 10 could not be queued.
        assert _dropped("traces", "queue_full") >= 7
    blocking.release.set()
    batch.shutdown()


def test_rate_limit_filter_lets_a_library_warning_through_once_a_minute() -> None:
    limit = RateLimitFilter(interval=60)
    record = logging.LogRecord(
        "opentelemetry.exporter.otlp", logging.WARNING, "f", 1, "export failed %s", (1,), None
    )
    app = logging.LogRecord("myapp", logging.WARNING, "f", 1, "export failed %s", (1,), None)
    assert limit.filter(record)
    assert not limit.filter(record)
    assert limit.filter(app)
    assert limit.filter(app)


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("obskit", False),
        ("obskit.x", False),
        ("opentelemetry.sdk", False),
        ("azure.core", False),
        ("urllib3.connectionpool", False),
        ("grpc._channel", False),
        ("obskitty", True),
        ("app", True),
    ],
)
def test_internal_loggers_are_never_exported(name: str, kept: bool) -> None:
    record = logging.LogRecord(name, logging.WARNING, "f", 1, "m", (), None)
    assert ExcludeInternalFilter().filter(record) is kept


def test_run_with_deadline_abandons_a_hung_call_in_time() -> None:
    hang = threading.Event()
    started = time.monotonic()
    assert run_with_deadline("hung exporter", lambda: hang.wait(30), 0.2) is False
    assert time.monotonic() - started < 2
    hang.set()
    assert run_with_deadline("quick", lambda: None, 1) is True


def test_shutdown_respects_its_deadline_when_the_exporter_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    from obskit._export import console as _console

    blocking = _Blocking()
    monkeypatch.setattr(_console, "span_exporter", lambda settings=None, out=None: blocking)
    obskit.configure(metrics_exporter="none", logs_exporter="none", shutdown_timeout=0.5)
    with trace_operation("stuck"):
        pass
    started = time.monotonic()
    obskit.shutdown()
    assert time.monotonic() - started < 3
    assert not obskit.is_configured()
    blocking.release.set()


def test_azure_without_connection_string_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="azure_connection_string"):
        check(resolve_settings({"traces_exporter": "azure"}, {}))


def test_missing_extra_names_the_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name.startswith("opentelemetry.exporter.otlp") else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ConfigError, match=r'pip install "obskit\[otlp\]"'):
        obskit.configure(traces_exporter="otlp")
    assert not obskit.is_configured()


@pytest.mark.parametrize(
    ("level", "text"),
    [(5, "TRACE"), (10, "DEBUG"), (20, "INFO"), (25, "INFO"), (30, "WARN"), (40, "ERROR"), (50, "FATAL")],
)
def test_stdlib_levels_map_to_otel_severity(level: int, text: str) -> None:
    assert severity(level)[1] == text


def test_exported_log_records_carry_context_trace_and_redaction() -> None:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler = ObskitLoggingHandler(logging.INFO, provider, Redactor())
    log = logging.getLogger("app.exported")
    log.addHandler(handler)
    log.propagate = False
    try:
        with capture(), LoggingContext(request_id="r-1", user_id="u-1"), trace_operation("op") as span:
            log.warning("hello %s", "world", extra={"api_key": "k", "n": 3})
            logging.getLogger("opentelemetry.exporter.x").addHandler(handler)
            logging.getLogger("opentelemetry.exporter.x").warning("must not be exported")
    finally:
        log.removeHandler(handler)
        log.propagate = True
        logging.getLogger("opentelemetry.exporter.x").removeHandler(handler)
    (record,) = [r.log_record for r in exporter.get_finished_logs()]
    assert record.body == "hello world"
    assert record.severity_text == "WARN"
    attributes = dict(record.attributes or {})
    assert attributes["request_id"] == "r-1"
    assert attributes["user_id"] == "u-1"
    assert attributes["api_key"] == "[REDACTED]"
    assert attributes["n"] == 3
    assert record.trace_id == span.get_span_context().trace_id
    assert record.span_id == span.get_span_context().span_id


def test_failed_metric_export_counts_its_points() -> None:
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

    from obskit._core.resource import resource_for
    from obskit._export.bridge import metrics_data
    from obskit._export.pipeline import counting_metric_exporter

    class Down(MetricExporter):
        def export(
            self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any
        ) -> MetricExportResult:
            return MetricExportResult.FAILURE

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            return None

    with capture() as cap:
        counter = obskit.MetricsCollector().counter("pipeline_points", "p", labels=["k"])
        counter.inc(k="a")
        counter.inc(k="b")
        data = metrics_data(cap.store.registry, resource_for(_state.STATE.settings), 0)
        exporter = counting_metric_exporter(Down())
        assert exporter.export(data) is MetricExportResult.FAILURE
        assert _dropped("metrics", "export_failed") >= 2


def test_exporting_library_warnings_are_rate_limited_while_configured(
    capsys: pytest.CaptureFixture[str],
) -> None:
    library = logging.getLogger("opentelemetry.exporter.fake_for_test")
    obskit.configure(traces_exporter="none", metrics_exporter="none")
    assert any(isinstance(f, RateLimitFilter) for f in library.filters)
    for _ in range(5):
        library.warning("Failed to export batch, retrying")
    lines = [line for line in capsys.readouterr().out.splitlines() if "Failed to export batch" in line]
    assert len(lines) == 1
    obskit.shutdown()
    assert not library.filters


def test_an_app_logger_named_like_a_library_prefix_is_not_rate_limited() -> None:
    limit = RateLimitFilter(interval=60)
    record = logging.LogRecord("azure_app.jobs", logging.WARNING, "f", 1, "job %d failed", (1,), None)
    assert limit.filter(record)
    assert limit.filter(record)
    assert ExcludeInternalFilter().filter(record)


class _ClosedPipe:
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_stdout_pipe_stops_the_log_lines_quietly_and_counts_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    obskit.configure(traces_exporter="none", metrics_exporter="none", logs_exporter="console")
    handler = next(h for h in logging.getLogger().handlers if isinstance(h, ObskitHandler))
    monkeypatch.setattr("sys.stdout", _ClosedPipe())
    for number in range(3):
        logging.getLogger("app").info("line %d", number)
    monkeypatch.undo()
    assert handler.broken
    assert "Logging error" not in capsys.readouterr().err
    # At least these three (a thread left by another test in this worker may log too).
    assert _dropped("logs", "export_failed") >= 3


def test_piping_a_configured_app_into_head_prints_no_logging_error() -> None:
    code = (
        "import logging, obskit\n"
        "obskit.configure(traces_exporter='none', metrics_exporter='none')\n"
        "for n in range(20000):\n"
        "    logging.getLogger('app').info('line %d', n)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()  # what `| head -1` does
        err = process.stderr.read().decode()
        assert process.wait(timeout=60) == 0, err
    assert b'"message":"line 0"' in first
    assert "Logging error" not in err, err[-2000:]
    assert "Traceback" not in err, err[-2000:]


def test_full_queue_drops_of_server_spans_are_counted() -> None:
    """Server spans go straight into the batch processor's queue (its only processor's
    end_sampled): full-queue drops are counted there too."""
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    from obskit._web.serverspan import start_server_span

    blocking = _Blocking()
    batch = BatchSpanProcessor(
        blocking, max_queue_size=2, max_export_batch_size=1, schedule_delay_millis=60_000
    )
    # obskit's sampler at the default ratio: every root span takes the light path
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(1.0)), shutdown_on_exit=False)
    provider.add_span_processor(CountingSpanProcessor(batch, 2))
    tracer = provider.get_tracer("t")
    with capture():
        for number in range(10):
            span = start_server_span(tracer, f"GET /{number}", Context(), {})
            assert span._ender is not None  # type: ignore[attr-defined]  # the direct way in
            span.end()
        assert _dropped("traces", "queue_full") >= 7
    blocking.release.set()
    provider.shutdown()


def test_full_queue_drops_bind_the_counter_child_once_per_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stuck exporter makes every span a drop: each is counted without a labels() lookup."""
    from obskit._export.pipeline import counting_log_processor

    blocking = _Blocking()
    batch = BatchSpanProcessor(
        blocking, max_queue_size=2, max_export_batch_size=1, schedule_delay_millis=60_000
    )
    processor = CountingSpanProcessor(batch, 2)

    class FullQueue:
        _batch_processor = type("Inner", (), {"_queue": [1, 2]})()

        def on_emit(self, record: Any) -> None:
            pass

    logs = counting_log_processor(FullQueue(), 2)
    for _ in range(2):  # a new store each time (a new configuration): counted in the new one
        with capture():
            store = _state.STATE.store
            lookups: list[tuple[Any, ...]] = []
            labels = store.dropped.labels
            monkeypatch.setattr(
                store.dropped, "labels", lambda *v, seen=lookups, bind=labels: (seen.append(v), bind(*v))[1]
            )
            for span in _spans(10):
                processor.on_end(span)
            for _ in range(5):
                logs.on_emit(None)
            assert _dropped("traces", "queue_full") >= 7
            assert _dropped("logs", "queue_full") == 5
            assert sorted(lookups) == [("logs", "queue_full"), ("traces", "queue_full")]
    blocking.release.set()
    batch.shutdown()


@pytest.mark.parametrize(
    ("settings", "batch"),
    [
        ({}, 128),  # obskit's default (docs/performance.md: fewer spans waiting for the collector)
        ({"export_batch_size": 512}, 512),  # OpenTelemetry's
        ({"export_batch_size": 512, "export_queue_size": 100}, 100),  # never more than the queue
    ],
)
def test_span_batches_follow_export_batch_size(settings: dict[str, Any], batch: int) -> None:
    from obskit._runtime.lifecycle import span_processors

    resolved = resolve_settings({"traces_exporter": "console", **settings}, {})
    (processor,) = span_processors(resolved, Redactor())
    try:
        assert processor.inner._batch_processor._max_export_batch_size == batch
    finally:
        processor.shutdown()
