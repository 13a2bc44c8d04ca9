"""Export plumbing shared by every backend: drop counting, rate-limited warnings, deadlines.

Nothing here runs on the caller's thread except the cheap queue check in
:class:`CountingSpanProcessor`; exports happen on the SDK's worker threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from obskit import _state
from obskit._errors import report_internal_error

__all__ = [
    "CountingSpanExporter",
    "CountingSpanProcessor",
    "RateLimitFilter",
    "count_dropped",
    "counting_log_processor",
    "run_with_deadline",
]

_log = logging.getLogger("obskit")
#: Loggers of obskit itself and of the libraries that export: never fed back into an exporter.
INTERNAL_LOGGERS = ("obskit", "opentelemetry", "azure", "urllib3", "grpc", "requests", "prometheus_client")


def count_dropped(signal: str, reason: str, count: int = 1) -> None:
    """Add to ``obskit_telemetry_dropped_total{signal, reason}`` in the current store."""
    if count > 0:
        try:
            _state.STATE.store.dropped.labels(signal, reason).inc(count)
        except Exception as exc:  # pragma: no cover - prometheus_client failing on a plain inc
            report_internal_error("count_dropped", exc)


class CountingSpanExporter(SpanExporter):
    """Counts spans an exporter failed to deliver (``reason="export_failed"``); never raises."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export through the wrapped exporter, counting a failed batch."""
        try:
            result = self.inner.export(spans)
        except Exception as exc:
            report_internal_error(f"span export ({type(self.inner).__name__})", exc)
            result = SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            count_dropped("traces", "export_failed", len(spans))
        return result

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        return self.inner.force_flush(timeout_millis)


def counting_metric_exporter(inner: Any) -> Any:
    """Wrap a push metric exporter so failed exports count their data points as dropped."""
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

    class CountingMetricExporter(MetricExporter):
        def __init__(self) -> None:
            super().__init__(
                preferred_temporality=getattr(inner, "_preferred_temporality", None),
                preferred_aggregation=getattr(inner, "_preferred_aggregation", None),
            )
            self.inner = inner

        def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
            try:
                result = inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
            except Exception as exc:
                report_internal_error(f"metric export ({type(inner).__name__})", exc)
                result = MetricExportResult.FAILURE
            if result is not MetricExportResult.SUCCESS:
                points = sum(
                    len(metric.data.data_points)
                    for rm in metrics_data.resource_metrics
                    for sm in rm.scope_metrics
                    for metric in sm.metrics
                )
                count_dropped("metrics", "export_failed", points)
            return result

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return bool(inner.force_flush(timeout_millis=timeout_millis))

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            inner.shutdown(timeout_millis=timeout_millis, **kwargs)

    return CountingMetricExporter()


class CountingSpanProcessor(SpanProcessor):
    """A batch span processor whose full-queue drops are counted (``reason="queue_full"``)."""

    def __init__(self, inner: Any, max_queue_size: int) -> None:
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.inner = inner
        self._max = max_queue_size
        # The SDK's bounded deque; read only to count what the processor is about to drop.
        self._queue = getattr(getattr(inner, "_batch_processor", None), "_queue", None)
        #: The SDK batch processor's own way into its queue (what its on_end calls for a sampled
        #: span), or None when the inner processor is another one.
        emit = getattr(getattr(inner, "_batch_processor", None), "emit", None)
        self.emit = emit if type(inner) is BatchSpanProcessor and callable(emit) else None

    def end_sampled(self, span: ReadableSpan) -> None:
        """:meth:`on_end` for a span known to be sampled: counted, then into the export queue."""
        queue = self._queue
        if queue is not None and len(queue) >= self._max:
            count_dropped("traces", "queue_full")
        self.emit(span)  # type: ignore[misc]  # set: the plan hands this method on only then

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Hand on to the batch processor."""
        self.inner.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        """Count the span that a full queue is about to push out, then hand on."""
        queue = self._queue
        if queue is not None and len(queue) >= self._max:
            count_dropped("traces", "queue_full")
        self.inner.on_end(span)

    def shutdown(self) -> None:
        """Shut the batch processor down."""
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the batch processor."""
        return bool(self.inner.force_flush(timeout_millis))


def counting_log_processor(inner: Any, max_queue_size: int) -> Any:
    """Wrap a batch log record processor so that its full-queue drops are counted.

    The SDK's processor pushes the oldest record out of a full queue with no more than a
    (rate-limited) warning; this counts each as ``obskit_telemetry_dropped_total{signal="logs",
    reason="queue_full"}``, as :class:`CountingSpanProcessor` does for spans.
    """
    from opentelemetry.sdk._logs import LogRecordProcessor

    # The SDK's bounded deque; read only to count what the processor is about to drop.
    queue = getattr(getattr(inner, "_batch_processor", None), "_queue", None)

    class CountingLogRecordProcessor(LogRecordProcessor):
        def __init__(self) -> None:
            self.inner = inner

        def on_emit(self, log_record: Any) -> None:
            if queue is not None and len(queue) >= max_queue_size:
                count_dropped("logs", "queue_full")
            inner.on_emit(log_record)

        def shutdown(self) -> None:
            inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return bool(inner.force_flush(timeout_millis))

    return CountingLogRecordProcessor()


class RateLimitFilter(logging.Filter):
    """Lets a warning from an exporting library through at most once a minute per logger and message.

    Export failures against a peer that is down would otherwise log on every batch.
    """

    def __init__(self, interval: float = 60.0, prefixes: tuple[str, ...] = INTERNAL_LOGGERS[1:]) -> None:
        super().__init__()
        self._interval = interval
        self._prefixes = prefixes
        self._last: dict[tuple[str, object], float] = {}
        self._lock = threading.Lock()
        #: Logger name -> whether it is a library's: asked of every record, decided once per name.
        self._library: dict[str, bool] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """True unless the same library warning was let through less than a minute ago."""
        name = record.name
        library = self._library.get(name)
        if library is None:
            library = is_library_logger(name, self._prefixes)
            if len(self._library) < 1000:
                self._library[name] = library
        if not library:
            return True
        key = (record.name, record.msg)
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                return False
            if len(self._last) > 1000:
                self._last.clear()
            self._last[key] = now
        return True


def is_library_logger(name: str, prefixes: tuple[str, ...] = INTERNAL_LOGGERS) -> bool:
    """Whether ``name`` is one of ``prefixes`` or below one (``azure.core``, not ``azure_app``)."""
    return any(name == p or name.startswith(f"{p}.") for p in prefixes)


class ExcludeInternalFilter(logging.Filter):
    """Drops records of obskit's and the exporting libraries' own loggers (no feedback loops)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for obskit, opentelemetry, azure, urllib3, grpc, requests, prometheus_client."""
        return not is_library_logger(record.name)


def run_with_deadline(what: str, func: Callable[[], object], timeout: float) -> bool:
    """Run ``func`` in a daemon thread and wait at most ``timeout`` seconds; True when it finished.

    A peer that black-holes connections can block an exporter's flush or shutdown far beyond
    any timeout it was given; this bounds what the caller (``shutdown()``, process exit) waits.
    """
    errors: list[BaseException] = []

    def target() -> None:
        try:
            func()
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name=f"obskit-shutdown-{what}", daemon=True)
    thread.start()
    thread.join(max(0.0, timeout))
    if thread.is_alive():
        _log.warning(
            "obskit: %s did not finish within the shutdown deadline (%.1fs); abandoned", what, timeout
        )
        return False
    if errors:
        report_internal_error(what, errors[0])
    return True
