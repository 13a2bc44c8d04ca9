"""Export plumbing shared by every backend: drop counting, rate-limited warnings, deadlines.

Nothing here runs on the caller's thread except the cheap queue check in
:class:`CountingSpanProcessor`; exports happen on the SDK's worker threads.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from obskit._core import state as _state
from obskit._core.errors import report_internal_error
from obskit._recording.store import count_dropped

__all__ = [
    "HEALTH",
    "BackendHealth",
    "CountingSpanExporter",
    "CountingSpanProcessor",
    "DropCounter",
    "RateLimitFilter",
    "backend_of",
    "counting_log_processor",
    "message_class",
    "record_export",
    "run_with_deadline",
]

_log = logging.getLogger("obskit")
#: Loggers of obskit itself and of the libraries that export: never fed back into an exporter.
INTERNAL_LOGGERS = ("obskit", "opentelemetry", "azure", "urllib3", "grpc", "requests", "prometheus_client")


class DropCounter:
    """``count_dropped(signal, reason)`` for a hot path: the counter's child is bound once per store.

    A full export queue drops one item per span or log record made while the exporter is stuck;
    ``labels()`` on each (a lock, label checks and a lookup) would cost more than the item. The
    child is bound again when the store changes (``configure()``, ``testing.capture()``).
    """

    __slots__ = ("_bound", "_reason", "_signal")

    def __init__(self, signal: str, reason: str) -> None:
        self._signal = signal
        self._reason = reason
        #: (the store, its child for these labels): one attribute, replaced whole.
        self._bound: tuple[Any, Any] = (None, None)

    def __call__(self, count: int = 1) -> None:
        """Add ``count`` to ``obskit_telemetry_dropped_total{signal, reason}`` in the current store."""
        try:
            store = _state.STATE.store
            bound = self._bound
            if bound[0] is not store:
                bound = self._bound = (store, store.dropped.labels(self._signal, self._reason))
            bound[1].inc(count)
        except Exception as exc:  # pragma: no cover - prometheus_client failing on a plain inc
            report_internal_error("count_dropped", exc)


class CountingSpanExporter(SpanExporter):
    """Counts spans an exporter failed to deliver (``reason="export_failed"``); never raises."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self._backend = backend_of(inner)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export through the wrapped exporter, counting a failed batch."""
        try:
            result = self.inner.export(spans)
        except Exception as exc:
            report_internal_error(f"span export ({type(self.inner).__name__})", exc)
            result = SpanExportResult.FAILURE
        ok = result is SpanExportResult.SUCCESS
        if not ok:
            count_dropped("traces", "export_failed", len(spans))
        record_export(self._backend, "traces", ok)
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

    backend = backend_of(inner)

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
            ok = result is MetricExportResult.SUCCESS
            record_export(backend, "metrics", ok)
            if not ok:
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
        self._count_drop = DropCounter("traces", "queue_full")

    def end_sampled(self, span: ReadableSpan) -> None:
        """:meth:`on_end` for a span known to be sampled: counted, then into the export queue."""
        queue = self._queue
        if queue is not None and len(queue) >= self._max:
            self._count_drop()
        self.emit(span)  # type: ignore[misc]  # set: the plan hands this method on only then

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Hand on to the batch processor."""
        self.inner.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        """Count the span that a full queue is about to push out, then hand on."""
        queue = self._queue
        if queue is not None and len(queue) >= self._max:
            self._count_drop()
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
    count_drop = DropCounter("logs", "queue_full")

    class CountingLogRecordProcessor(LogRecordProcessor):
        def __init__(self) -> None:
            self.inner = inner

        def on_emit(self, log_record: Any) -> None:
            if queue is not None and len(queue) >= max_queue_size:
                count_drop()
            inner.on_emit(log_record)

        def shutdown(self) -> None:
            inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return bool(inner.force_flush(timeout_millis))

    return CountingLogRecordProcessor()


#: Logger name prefix -> the class of messages it belongs to, most specific first: the limit of
#: one line a minute applies per class, whatever the text (every failed export's message differs).
MESSAGE_CLASSES: tuple[tuple[str, str], ...] = (
    ("opentelemetry.exporter.otlp", "otlp"),
    ("grpc", "otlp"),  # only the OTLP gRPC exporters use it here
    ("azure", "azure"),
    ("opentelemetry", "opentelemetry"),
    ("urllib3", "urllib3"),
    ("requests", "requests"),
    ("prometheus_client", "prometheus_client"),
)


def message_class(name: str) -> str:
    """The class of logger ``name``'s messages (see :data:`MESSAGE_CLASSES`); ``""`` for none."""
    for prefix, kind in MESSAGE_CLASSES:
        if name == prefix or name.startswith(f"{prefix}."):
            return kind
    return ""


def backend_of(exporter: object) -> str:
    """The backend an exporter delivers to, as :data:`MESSAGE_CLASSES` names it (``otlp``, ``azure``)."""
    module = type(exporter).__module__
    if module.startswith(("obskit._export.console", "opentelemetry.sdk.")):  # the SDK's own: console, memory
        return "console"
    if module.startswith("obskit."):
        return module.rpartition(".")[2].lstrip("_")  # obskit._export.otlp: otlp
    return message_class(module) or module.partition(".")[0]


def _asked_for(name: str) -> bool:
    """Whether the application set a level on logger ``name`` or an ancestor below the root."""
    logger: logging.Logger | None = logging.getLogger(name)
    while logger is not None and logger is not logging.root:
        if logger.level != logging.NOTSET:
            return True
        logger = logger.parent
    return False


class BackendHealth:
    """Which backends' exports are failing, fed by every counting exporter; one line on recovery.

    A backend is failing from its first failed export until every signal that failed has been
    exported successfully again; then one line on the ``obskit`` logger says so. It also counts
    the library messages :class:`RateLimitFilter` suppressed per class, so that the next line
    of that class (or the recovery line) can say how many.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: backend -> the signals whose last export to it failed.
        self._failing: dict[str, set[str]] = {}
        #: backend -> (when its outage began, the signals that failed in it, failed exports).
        self._outage: dict[str, tuple[float, set[str], int]] = {}
        self._suppressed: dict[str, int] = {}
        #: class -> recoveries so far: a new outage's first message is let through at once.
        self._recoveries: dict[str, int] = {}

    def reset(self) -> None:
        """Forget every failure and count (a new ``configure()``)."""
        with self._lock:
            self._failing.clear()
            self._outage.clear()
            self._suppressed.clear()

    def failed(self, backend: str, signal: str) -> None:
        """An export of ``signal`` to ``backend`` failed."""
        with self._lock:
            self._failing.setdefault(backend, set()).add(signal)
            since, signals, failures = self._outage.get(backend) or (time.monotonic(), set(), 0)
            signals.add(signal)
            self._outage[backend] = (since, signals, failures + 1)

    def succeeded(self, backend: str, signal: str) -> None:
        """An export of ``signal`` to ``backend`` succeeded; the recovery line once none is failing."""
        failing = self._failing.get(backend)
        if not failing or signal not in failing:  # the common case: nothing to do, no lock
            return
        with self._lock:
            failing = self._failing.get(backend)
            if not failing or signal not in failing:
                return
            failing.discard(signal)
            if failing:
                return
            since, signals, failures = self._outage.pop(backend)
            suppressed = self._suppressed.pop(backend, 0)
            self._recoveries[backend] = self._recoveries.get(backend, 0) + 1
        _log.warning(
            "obskit: exports to %s work again (%s): %d failed exports in the last %.0fs were counted in"
            " obskit_telemetry_dropped_total%s",
            backend,
            ", ".join(sorted(signals)),
            failures,
            time.monotonic() - since,
            _suppressed_note(suppressed),
        )

    def recoveries(self, kind: str) -> int:
        """How often backend ``kind`` has recovered (read without the lock: a plain dict get)."""
        return self._recoveries.get(kind, 0)

    def suppress(self, kind: str) -> None:
        """A message of class ``kind`` was suppressed."""
        with self._lock:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1

    def take_suppressed(self, kind: str) -> int:
        """How many messages of class ``kind`` were suppressed since the last one let through."""
        with self._lock:
            return self._suppressed.pop(kind, 0)


#: The one registry every counting exporter reports to.
HEALTH = BackendHealth()


def record_export(backend: str, signal: str, ok: bool) -> None:
    """Tell :data:`HEALTH` how an export of ``signal`` to ``backend`` went. Never raises."""
    try:
        if ok:
            HEALTH.succeeded(backend, signal)
        else:
            HEALTH.failed(backend, signal)
    except Exception as exc:  # pragma: no cover - dict and lock operations
        report_internal_error("backend health", exc)


def _suppressed_note(count: int) -> str:
    if not count:
        return ""
    return f" (and {count} similar message{'s' if count != 1 else ''} suppressed)"


class RateLimitFilter(logging.Filter):
    """Keeps the exporting libraries quiet: one line a minute per class of message, no chatter.

    A class is a backend or library (:data:`MESSAGE_CLASSES`): ``otlp``, ``azure``,
    ``opentelemetry``, ``urllib3``..., whatever the text of the message (each failed export's
    differs: addresses, counts, status codes). Of a class's warnings and errors one goes through
    a minute, with a note of how many were suppressed before it; after the backend recovers
    (:class:`BackendHealth`) the next one goes through at once. The libraries' messages below
    WARNING (the Azure SDK writes a line per HTTP request) go through only when the application
    set a level on that logger or an ancestor itself (``logging.getLogger("azure").setLevel(logging.INFO)``),
    and are then not limited. Records of other loggers pass untouched.

    On a handler, a record whose logger carries a filter of this kind passes: it was judged there.
    """

    def __init__(self, interval: float = 60.0, prefixes: tuple[str, ...] = INTERNAL_LOGGERS[1:]) -> None:
        super().__init__()
        self._interval = interval
        self._prefixes = prefixes
        #: class -> (when a message last went through, the recoveries count then).
        self._last: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()
        #: Logger name -> its class, or "" when not a library's: decided once per name.
        self._library: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """False for library chatter and for a class's second message within the interval."""
        name = record.name
        kind = self._library.get(name)
        if kind is None:
            kind = (
                (message_class(name) or name.partition(".")[0])
                if is_library_logger(name, self._prefixes)
                else ""
            )
            if len(self._library) < 1000:
                self._library[name] = kind
        if not kind:
            return True
        if record.levelno < logging.WARNING:
            return _asked_for(name)
        if not self._judges(name):
            return True
        now = time.monotonic()
        recoveries = HEALTH.recoveries(kind)
        with self._lock:
            last = self._last.get(kind)
            if last is not None and last[1] == recoveries and now - last[0] < self._interval:
                suppressed = True
            else:
                suppressed = False
                self._last[kind] = (now, recoveries)
        if suppressed:
            HEALTH.suppress(kind)
            return False
        note = _suppressed_note(HEALTH.take_suppressed(kind))
        if note:
            # An unrenderable message stays as it is, for logging to report.
            with contextlib.suppress(Exception):
                record.msg, record.args = f"{record.getMessage()}{note}", None
        return True

    def _judges(self, name: str) -> bool:
        """False when a filter of this kind on logger ``name`` judged the record already."""
        logger = logging.root.manager.loggerDict.get(name)
        if not isinstance(logger, logging.Logger):
            return True
        return not any(isinstance(f, RateLimitFilter) and f is not self for f in logger.filters)


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
