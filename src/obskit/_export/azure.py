"""The azure backend: Application Insights through azure-monitor-opentelemetry-exporter.

Spans, metrics and logs go to the ``IngestionEndpoint`` of ``azure_connection_string`` as
``POST /v2.1/track`` envelopes, on obskit's export threads. What the exporter would otherwise do
on its own is off unless a setting asks for it:

- statsbeat (the exporter's usage reports to Microsoft), customer SDK stats (its success/drop
  counts sent to your resource) and the OneSettings control plane (remote configuration polled
  from Microsoft): ``azure_statsbeat``. The first two through the exporter's
  ``instrumentation_collection`` argument; the control plane has no argument, only an
  environment variable, which obskit sets while it constructs an exporter and restores at once
  (see :func:`_exporter_environment`).
- offline storage (failed batches kept on disk and resent later): ``azure_offline_storage``,
  through the exporter's ``disable_offline_storage`` argument.
- live metrics (Application Insights Live Metrics stream): ``azure_live_metrics``.

What Application Insights' standard views draw from, obskit sends as its distro does:

- histogram points with count, sum, min and max over each export interval (the bridge's delta
  reader takes the min/max that obskit's histograms track while it runs);
- the pre-aggregated standard metrics ``requests/duration`` and ``dependencies/duration`` (the
  Requests and Dependencies charts, Failures, Performance; their counts are ``requests/count``
  and ``dependencies/count``), aggregated from the HTTP request and dependency items the trace
  exporter sends (:class:`StandardMetrics`), when metrics go to Application Insights too. Those
  items are then marked ``_MS.ProcessedByMetricExtractors`` so the service does not count them
  again; otherwise the mark is left off, and the service extracts the metrics itself;
- custom events: ``obskit.event()`` records carry ``microsoft.custom_event.name``, which the log
  exporter turns into ``customEvents`` items.

So ``configure()`` makes no network call and writes no file: the first request is the first
export. Retries are bounded (:data:`RETRIES`, :data:`RETRY_AFTER_MAX_S`, :data:`REQUEST_TIMEOUT_S`)
so that an ingestion endpoint answering 5xx or 429 holds an export thread for seconds, not minutes.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from obskit._core.errors import report_internal_error
from obskit._core.settings import Settings

__all__ = ["log_exporter", "metric_exporter", "span_exporter"]

#: Seconds to connect and to wait for a response, and the total budget of one export's retries.
REQUEST_TIMEOUT_S = 10.0
#: Retries of one export after a 500/502/503/504 (or a 429 with a short ``Retry-After``).
RETRIES = 2
#: Exponential backoff between retries: 0 s, then ``RETRY_BACKOFF_S * 2**n``, at most the maximum.
RETRY_BACKOFF_S = 0.5
RETRY_BACKOFF_MAX_S = 2.0
#: A ``Retry-After`` longer than this is not waited for: the batch fails (and is counted) at once.
RETRY_AFTER_MAX_S = 2.0

#: The exporter reads this when constructed; ``true`` keeps its control-plane poller from starting.
CONTROL_PLANE_SWITCH = "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED"
_ENV_LOCK = threading.Lock()


def span_exporter(settings: Settings) -> Any:
    """An ``AzureMonitorTraceExporter`` for ``settings`` (SERVER/CONSUMER spans become requests).

    Raises:
        ConfigError: the ``azure`` extra is missing or no connection string is set.
    """
    from obskit._core.resource import resource_for

    _check(settings, "traces_exporter")
    cls = _classes()[0]
    # The exporter reads the resource for its _OTELRESOURCE_ metric from this object's
    # ``resource``; obskit's global provider is a proxy without one.
    exporter = _build(cls, settings, tracer_provider=_ResourceHolder(resource_for(settings)))
    exporter._obskit_standard = STANDARD_METRICS if "azure" in settings.metrics_exporter else None
    return exporter


def metric_exporter(settings: Settings) -> Any:
    """An ``AzureMonitorMetricExporter`` for ``settings``; it prefers delta counters and histograms.

    Raises:
        ConfigError: the ``azure`` extra is missing or no connection string is set.
    """
    _check(settings, "metrics_exporter")
    return _build(_classes()[1], settings)


def log_exporter(settings: Settings) -> Any:
    """An ``AzureMonitorLogExporter`` for ``settings`` (records become traces, or exceptions).

    Raises:
        ConfigError: the ``azure`` extra is missing or no connection string is set.
    """
    _check(settings, "logs_exporter")
    exporter = _build(_classes()[2], settings)
    exporter._obskit_spans_here = "azure" in settings.traces_exporter
    return exporter


def _check(settings: Settings, setting: str) -> None:
    from obskit._export.requirements import require_azure

    require_azure(settings, setting)


class _ResourceHolder:
    """Stands in for a tracer provider where the trace exporter only wants its resource."""

    def __init__(self, resource: Any) -> None:
        self.resource = resource


def exporter_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments every Azure exporter is built with."""
    return {
        "connection_string": settings.azure_connection_string,
        "disable_offline_storage": not settings.azure_offline_storage,
        "timeout": REQUEST_TIMEOUT_S,
        "read_timeout": REQUEST_TIMEOUT_S,
        "retry_policy": _retry_policy(),
        # The exporter's own flag for "this exporter carries instrumentation data": it then
        # neither starts statsbeat nor SDK stats, nor counts its items into them (its only effect).
        "instrumentation_collection": not settings.azure_statsbeat,
    }


def _exporter_environment(settings: Settings) -> dict[str, str]:
    """Variables set while an exporter is constructed: the control plane off unless ``azure_statsbeat``.

    The exporter starts the OneSettings poller (a thread that calls Microsoft's endpoint every
    hour, first after 5-15 s) from its constructor, unless this variable says ``true`` at that
    moment; it is read again only when live metrics start, which obskit does in the same window.
    obskit's setting decides, whatever the variable says outside; with ``azure_statsbeat`` it is
    not touched, so the exporter behaves as it does without obskit.
    """
    return {} if settings.azure_statsbeat else {CONTROL_PLANE_SWITCH: "true"}


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` for the duration, then restore them exactly."""
    if not values:
        yield
        return
    with _ENV_LOCK:
        saved = {name: os.environ.get(name) for name in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for name, previous in saved.items():
                if previous is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = previous


def _build(cls: type, settings: Settings, **extra: Any) -> Any:
    with _environment(_exporter_environment(settings)):
        exporter = cls(**exporter_options(settings), **extra)
        _FEATURES.acquire(settings, exporter)
    return exporter


def _retry_policy() -> Any:
    from azure.core.pipeline.policies import RetryPolicy

    class BoundedRetryPolicy(RetryPolicy[Any, Any]):
        """azure-core's retry, except that a long ``Retry-After`` fails the batch instead of waiting."""

        def is_retry(self, settings: dict[str, Any], response: Any) -> bool:
            after = self.get_retry_after(response)
            if after is not None and after > RETRY_AFTER_MAX_S:
                return False
            return bool(super().is_retry(settings, response))

    return BoundedRetryPolicy(
        retry_total=RETRIES,
        retry_backoff_factor=RETRY_BACKOFF_S,
        retry_backoff_max=RETRY_BACKOFF_MAX_S,
        timeout=REQUEST_TIMEOUT_S,
    )


class _Features:
    """What obskit turned on in the exporter's process-wide singletons, and for how many exporters.

    Live metrics, statsbeat, SDK stats and the control-plane poller are singletons of the exporter
    package that outlive any exporter. obskit starts them when a setting asks and stops them when
    the last Azure exporter it built shuts down, so that ``obskit.shutdown()`` leaves nothing
    running.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._live = False
        self._statsbeat = False

    @property
    def live(self) -> bool:
        """Whether obskit started live metrics (spans and logs are then fed to it on export)."""
        return self._live

    def acquire(self, settings: Settings, exporter: Any) -> None:
        """Count ``exporter`` as a user; start live metrics if asked and not running yet."""
        with self._lock:
            if settings.azure_live_metrics and not self._live:
                from azure.monitor.opentelemetry.exporter._quickpulse import enable_live_metrics

                from obskit._core.resource import resource_for

                enable_live_metrics(
                    connection_string=settings.azure_connection_string, resource=resource_for(settings)
                )
                self._live = True
            self._statsbeat = self._statsbeat or settings.azure_statsbeat
            self._users += 1
        exporter._obskit_features = self

    def release(self) -> None:
        """One exporter shut down; the last one stops what obskit started."""
        with self._lock:
            self._users = max(0, self._users - 1)
            if self._users:
                return
            live, statsbeat = self._live, self._statsbeat
            self._live = self._statsbeat = False
        if live:
            from azure.monitor.opentelemetry.exporter._quickpulse._live_metrics import shutdown_live_metrics

            shutdown_live_metrics()
        if statsbeat:
            _stop_statsbeat()


def _stop_statsbeat() -> None:
    """Stop statsbeat, SDK stats and the control-plane poller, which ``azure_statsbeat`` let start."""
    from azure.monitor.opentelemetry.exporter._configuration import _state as control_plane
    from azure.monitor.opentelemetry.exporter.statsbeat._statsbeat import shutdown_statsbeat_metrics
    from azure.monitor.opentelemetry.exporter.statsbeat.customer import shutdown_customer_sdkstats_metrics

    shutdown_statsbeat_metrics()
    shutdown_customer_sdkstats_metrics()
    manager = control_plane._configuration_manager
    if manager is not None:
        manager.shutdown()


_FEATURES = _Features()


def _release(exporter: object) -> None:
    """After an exporter's own shutdown: close its connections, stop what obskit started for it."""
    client = getattr(exporter, "client", None)
    if client is not None:
        client.close()  # the exporter's shutdown leaves its keep-alive connections open
    features = getattr(exporter, "_obskit_features", None)
    if features is not None:
        exporter._obskit_features = None  # type: ignore[attr-defined]
        features.release()


def _live_record(items: Sequence[Any], kind: str) -> None:
    """Feed exported spans or log records to live metrics, as the exporter's own processors do."""
    if not _FEATURES.live:
        return
    try:
        from azure.monitor.opentelemetry.exporter._quickpulse._state import get_quickpulse_manager

        manager = get_quickpulse_manager()
        record = manager._record_span if kind == "span" else manager._record_log_record
        for item in items:
            record(item)
    except Exception as exc:
        report_internal_error("azure live metrics", exc)


#: Names under which the exporter turns a histogram point into a standard metric (milliseconds).
REQUESTS_METRIC = "http.server.duration"
DEPENDENCIES_METRIC = "http.client.duration"
_PROCESSED = "_MS.ProcessedByMetricExtractors"
_HTTP_METHOD_KEYS = ("http.request.method", "http.method")


class StandardMetrics:
    """Request and dependency durations, aggregated per dimension set until the metric export takes them.

    Fed by the trace exporter with each HTTP request and HTTP dependency item it builds; taken by
    the metric exporter, which sends them as the histogram points that the Azure exporter turns
    into ``requests/duration`` and ``dependencies/duration`` (result code, success, target, role).
    Counts are those of the items sent: with trace sampling, the sampled requests.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start empty, with a new lock: also in a forked child, which counts its own items only."""
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str, str], list[float]] = {}
        self._start = time.time_ns()

    def add(self, metric: str, result_code: str, target: str, milliseconds: float) -> None:
        """Count one item of ``metric`` that took ``milliseconds``."""
        key = (metric, result_code, target)
        with self._lock:
            entry = self._series.get(key)
            if entry is None:
                self._series[key] = [1, milliseconds, milliseconds, milliseconds]
                return
            entry[0] += 1
            entry[1] += milliseconds
            entry[2] = min(entry[2], milliseconds)
            entry[3] = max(entry[3], milliseconds)

    def take(self) -> Any:
        """The aggregates since the last call as OpenTelemetry ``Metric`` objects; then start over."""
        from opentelemetry.sdk.metrics.export import (
            AggregationTemporality,
            Histogram,
            HistogramDataPoint,
            Metric,
        )

        now = time.time_ns()
        with self._lock:
            series, self._series = self._series, {}
            start, self._start = self._start, now
        points: dict[str, list[Any]] = {}
        for (metric, code, target), (count, total, low, high) in series.items():
            attributes: dict[str, Any] = {"http.status_code": code}
            if metric == DEPENDENCIES_METRIC:
                # The exporter reads the target from peer.service as it is (port included).
                attributes["peer.service"] = target
            point = HistogramDataPoint(
                attributes=attributes,
                start_time_unix_nano=start,
                time_unix_nano=now,
                count=int(count),
                sum=total,
                bucket_counts=[int(count)],
                explicit_bounds=[],
                min=low,
                max=high,
            )
            points.setdefault(metric, []).append(point)
        return [
            Metric(name, "", "ms", Histogram(found, AggregationTemporality.DELTA))
            for name, found in points.items()
        ]


#: The process's standard metrics, fed by the trace exporter and taken by the metric exporter.
STANDARD_METRICS = StandardMetrics()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=STANDARD_METRICS.reset)


def standard_metric_of(envelope: Any, span: Any, standard: StandardMetrics | None) -> None:
    """Count ``envelope`` (built from ``span``) into ``standard`` if it is an HTTP request or dependency.

    The item is marked as processed by metric extractors exactly when it was counted, so that
    Application Insights neither counts it twice nor misses it.
    """
    data = envelope.data
    base = data.base_data
    properties = base.properties
    if properties:
        properties.pop(_PROCESSED, None)
    if standard is None or span.end_time is None or span.start_time is None:
        return
    attributes = span.attributes or {}
    if data.base_type == "RequestData" and any(k in attributes for k in _HTTP_METHOD_KEYS):
        metric, code, target = REQUESTS_METRIC, str(base.response_code or "0"), ""
    elif data.base_type == "RemoteDependencyData" and base.type == "HTTP":
        metric, code, target = DEPENDENCIES_METRIC, str(base.result_code or "0"), str(base.target or "")
    else:
        return
    standard.add(metric, code, target, (span.end_time - span.start_time) / 1e6)
    if properties is None:
        base.properties = properties = {}
    properties[_PROCESSED] = "True"


def with_standard_metrics(data: Any, standard: StandardMetrics) -> Any:
    """``data`` with the standard metrics taken from ``standard`` added (under the first resource)."""
    from opentelemetry.sdk.metrics.export import MetricsData, ResourceMetrics, ScopeMetrics
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    metrics = standard.take()
    if not metrics or not data.resource_metrics:
        return data
    first = data.resource_metrics[0]
    scope = ScopeMetrics(InstrumentationScope("obskit.standard_metrics"), metrics, "")
    changed = ResourceMetrics(first.resource, [*first.scope_metrics, scope], first.schema_url)
    return MetricsData([changed, *data.resource_metrics[1:]])


def finite_points(data: Any) -> tuple[Any, int]:
    """``data`` made serialisable as Application Insights JSON, and how many points were dropped.

    JSON has no NaN or infinity, and the exporter writes them as bare ``NaN``, which the
    ingestion endpoint rejects with the whole batch. A histogram point's min or max that is not
    finite (or unknown) is sent absent, which Application Insights accepts. A point whose value
    or sum is not finite cannot be sent at all and is dropped (counted as
    ``reason="invalid_value"``). ``data`` itself is returned when nothing needed changing.
    """
    from opentelemetry.sdk.metrics.export import Metric, MetricsData, ResourceMetrics, ScopeMetrics

    dropped, changed, resource_metrics = 0, False, []
    for rm in data.resource_metrics:
        scopes = []
        for sm in rm.scope_metrics:
            metrics = []
            for metric in sm.metrics:
                points = [_sendable(p) for p in metric.data.data_points]
                kept = [p for p in points if p is not None]
                dropped += len(points) - len(kept)
                if any(new is not old for new, old in zip(points, metric.data.data_points, strict=True)):
                    changed = True
                    data_ = dataclasses.replace(metric.data, data_points=kept)
                    metric = Metric(metric.name, metric.description, metric.unit, data_)
                metrics.append(metric)
            scopes.append(ScopeMetrics(sm.scope, metrics, sm.schema_url))
        resource_metrics.append(ResourceMetrics(rm.resource, scopes, rm.schema_url))
    return (MetricsData(resource_metrics) if changed else data), dropped


def _sendable(point: Any) -> Any:
    """``point`` as JSON can carry it (min/max left out when unknown), or None if it cannot be."""
    from opentelemetry.sdk.metrics.export import HistogramDataPoint, NumberDataPoint

    if isinstance(point, HistogramDataPoint):
        if not math.isfinite(point.sum):
            return None
        if all(v is None or math.isfinite(v) for v in (point.min, point.max)):
            return point
        # Typed float, but the Azure exporter reads None as absent, which is what it is.
        return dataclasses.replace(point, min=None, max=None)  # type: ignore[arg-type]
    if isinstance(point, NumberDataPoint) and not math.isfinite(point.value):
        return None
    return point


#: The logger of the web middleware's access lines (obskit._web.http.ACCESS_LOGGER).
ACCESS_LOGGER_NAME = "http.access"
_EXCEPTION_KEYS = ("exception.type", "exception.message", "exception.stacktrace")


def _with_attributes(
    batch: Sequence[Any], new_attributes: Callable[[Any], dict[str, Any] | None], where: str
) -> Sequence[Any]:
    """``batch`` with new attributes on the records ``new_attributes`` gives a dict for.

    Those records are copied, not changed in place; the batch itself is returned when no record
    changes. An SDK whose records cannot be copied gets the batch as it was, the failure
    reported under ``where``.
    """
    changed: list[Any] | None = None
    for index, readable in enumerate(batch):
        record = readable.log_record
        attributes = new_attributes(record)
        if attributes is None:
            continue
        try:
            copied = copy.copy(record)
            copied.attributes = attributes
            replacement = dataclasses.replace(readable, log_record=copied)
        except Exception as exc:
            report_internal_error(where, exc)
            return batch
        if changed is None:
            changed = list(batch)
        changed[index] = replacement
    return batch if changed is None else changed


def _request_exception_left_out(record: Any) -> dict[str, Any] | None:
    attributes = record.attributes
    if (
        not attributes
        or "exception.type" not in attributes
        or attributes.get("logger.name") != ACCESS_LOGGER_NAME
        or not (record.trace_flags is not None and record.trace_flags & 0x01)
    ):
        return None
    return {k: v for k, v in attributes.items() if k not in _EXCEPTION_KEYS}


def without_request_exceptions(batch: Sequence[Any]) -> Sequence[Any]:
    """``batch`` with the exception left out of each error access line of a sampled request.

    The middleware logs a request's escaped exception once, on its access line, and records the
    same exception as the exception event of the request's SERVER span. Application Insights
    makes an exception item of each: the span's (linked to the request item) is kept, and the
    access line becomes a trace item at error level. The line of a request whose span was not
    sampled keeps its exception: the span will not be exported. Other records are left as they are.
    """
    return _with_attributes(batch, _request_exception_left_out, "azure access line")


#: The attribute the Azure log exporter turns into a ``customEvents`` item of that name.
CUSTOM_EVENT_NAME = "microsoft.custom_event.name"


def as_custom_events(batch: Sequence[Any]) -> Sequence[Any]:
    """``batch`` with each ``obskit.event()`` record marked to become a custom event on Azure.

    The record keeps its ``event.name`` attribute (and its other attributes, which become the
    event's properties); the exporter reads the name from ``microsoft.custom_event.name``.
    """
    from obskit._export.logexport import EVENT_NAME
    from obskit._recording.events import EVENT_LOGGER

    def marked(record: Any) -> dict[str, Any] | None:
        attributes = record.attributes
        if not attributes or EVENT_NAME not in attributes or attributes.get("logger.name") != EVENT_LOGGER:
            return None
        return {**attributes, CUSTOM_EVENT_NAME: attributes[EVENT_NAME]}

    return _with_attributes(batch, marked, "azure custom event")


@functools.cache
def _classes() -> tuple[type, type, type]:
    """The Azure exporters with obskit's additions (imported here: the package is heavy)."""
    from azure.monitor.opentelemetry.exporter import (
        AzureMonitorLogExporter,
        AzureMonitorMetricExporter,
        AzureMonitorTraceExporter,
    )

    from obskit._recording.store import count_dropped

    class ObskitAzureTraceExporter(AzureMonitorTraceExporter):
        """Also feeds live metrics (when on) and stops what obskit started at shutdown."""

        _obskit_standard: StandardMetrics | None = None

        def export(self, spans: Sequence[Any], **kwargs: Any) -> Any:
            _live_record(spans, "span")
            return super().export(spans, **kwargs)

        def _span_to_envelope(self, span: Any) -> Any:
            envelope = super()._span_to_envelope(span)
            try:
                standard_metric_of(envelope, span, self._obskit_standard)
            except Exception as exc:
                report_internal_error("azure standard metrics", exc)
            return envelope

        def shutdown(self) -> None:
            try:
                super().shutdown()
            finally:
                _release(self)

    class ObskitAzureMetricExporter(AzureMonitorMetricExporter):
        """Sends only what JSON can carry (see :func:`finite_points`)."""

        def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
            if metrics_data is not None:
                try:
                    metrics_data = with_standard_metrics(metrics_data, STANDARD_METRICS)
                except Exception as exc:
                    report_internal_error("azure standard metrics", exc)
                metrics_data, dropped = finite_points(metrics_data)
                count_dropped("metrics", "invalid_value", dropped)
            return super().export(metrics_data, timeout_millis, **kwargs)

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            try:
                super().shutdown(timeout_millis, **kwargs)
            finally:
                _release(self)

    class ObskitAzureLogExporter(AzureMonitorLogExporter):
        """Also feeds live metrics (when on) and stops what obskit started at shutdown.

        With spans exported to Application Insights too, an error access line is sent without its
        exception (see :func:`without_request_exceptions`): one failed request, one exception item.
        """

        _obskit_spans_here = False

        def export(self, batch: Sequence[Any], **kwargs: Any) -> Any:
            _live_record(batch, "log")
            batch = as_custom_events(batch)
            if self._obskit_spans_here:
                batch = without_request_exceptions(batch)
            return super().export(batch, **kwargs)

        def shutdown(self) -> None:
            try:
                super().shutdown()
            finally:
                _release(self)

    return ObskitAzureTraceExporter, ObskitAzureMetricExporter, ObskitAzureLogExporter
