"""Translate the prometheus_client store into OpenTelemetry ``MetricsData`` for push exporters.

Recording happens once, into prometheus_client (fast); exporters that push (console, and later
OTLP and Azure) read the same values through :func:`metrics_data`, on their own export thread.
The SDK reader is fed through its collect callback, so the stock exporters, export thread,
timeouts, fork handling and shutdown are reused; no ``MeterProvider`` is needed.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricsData,
    NumberDataPoint,
    PeriodicExportingMetricReader,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric as PromMetric

from obskit._core.errors import report_internal_error
from obskit._recording.store import MetricSpec, label_value, set_exponential, take_extremes, want_extremes

__all__ = ["ExponentialHistograms", "make_reader", "metrics_data"]

#: (family name, sorted labels) -> (min, max) of a histogram series, from ``take_extremes``.
Extremes = Mapping[tuple[str, tuple[tuple[str, str], ...]], tuple[float, float]]

_SCOPE = InstrumentationScope("obskit")
_UNITS = {"seconds": "s", "bytes": "By", "ratio": "1", "milliseconds": "ms"}


def _unit(family: PromMetric) -> str:
    if family.unit:
        return _UNITS.get(family.unit, family.unit)
    return next((u for suffix, u in _UNITS.items() if family.name.endswith(f"_{suffix}")), "")


def _attributes(labels: dict[str, str], drop: str = "") -> dict[str, str]:
    return {k: v for k, v in labels.items() if k != drop}


def _key(labels: dict[str, str], drop: str = "") -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if k != drop))


def _start_times(family: PromMetric, default_ns: int) -> dict[tuple[tuple[str, str], ...], int]:
    return {_key(s.labels): int(s.value * 1e9) for s in family.samples if s.name.endswith("_created")} or {
        (): default_ns
    }


def _sum(family: PromMetric, now: int, start: int) -> Metric:
    starts = _start_times(family, start)
    points = [
        NumberDataPoint(_attributes(s.labels), starts.get(_key(s.labels), start), now, s.value)
        for s in family.samples
        if s.name.endswith("_total")
    ]
    data = Sum(points, AggregationTemporality.CUMULATIVE, is_monotonic=True)
    return Metric(f"{family.name}_total", family.documentation, _unit(family), data)


def _gauge(family: PromMetric, now: int) -> Metric:
    points = [NumberDataPoint(_attributes(s.labels), 0, now, s.value) for s in family.samples]
    return Metric(family.name, family.documentation, _unit(family), Gauge(points))


def _histogram(family: PromMetric, now: int, start: int, extremes: Extremes | None = None) -> Metric:
    starts = _start_times(family, start)
    series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for sample in family.samples:
        entry = series.setdefault(
            _key(sample.labels, "le"), {"labels": _attributes(sample.labels, "le"), "le": []}
        )
        suffix = sample.name[len(family.name) :]
        if suffix == "_bucket":
            entry["le"].append((float(sample.labels["le"]), sample.value))
        elif suffix in ("_count", "_sum"):
            entry[suffix] = sample.value
    points = []
    for key, entry in series.items():
        low, high = (extremes or {}).get((family.name, key), (None, None))
        cumulative = sorted(entry["le"])
        bounds = [le for le, _ in cumulative if not math.isinf(le)]
        counts, previous = [], 0.0
        for _, value in cumulative:
            counts.append(int(value - previous))
            previous = value
        points.append(
            HistogramDataPoint(
                attributes=entry["labels"],
                start_time_unix_nano=starts.get(key, start),
                time_unix_nano=now,
                count=int(entry.get("_count", previous)),
                sum=entry.get("_sum", 0.0),
                bucket_counts=counts,
                explicit_bounds=bounds,
                # prometheus_client keeps no min/max; obskit's histograms track them for delta
                # exporters (take_extremes). Otherwise None leaves OTLP's optional fields unset
                # (NaN would be sent as a value) and Azure's omitted.
                min=low,  # type: ignore[arg-type]
                max=high,  # type: ignore[arg-type]
            )
        )
    data = Histogram(points, AggregationTemporality.CUMULATIVE)
    return Metric(family.name, family.documentation, _unit(family), data)


def translate(
    families: Iterable[PromMetric], start_ns: int, extremes: Extremes | None = None
) -> list[Metric]:
    """OpenTelemetry metrics for prometheus_client families (summaries and info are skipped).

    ``extremes`` gives histogram series their min and max (those not in it have none).
    """
    now = time.time_ns()
    metrics: list[Metric] = []
    for family in families:
        if not family.samples:
            continue
        if family.type == "counter":
            metrics.append(_sum(family, now, start_ns))
        elif family.type == "histogram":
            metrics.append(_histogram(family, now, start_ns, extremes))
        elif family.type in ("gauge", "unknown"):
            metrics.append(_gauge(family, now))
    return metrics


class ExponentialHistograms:
    """obskit's histograms aggregated a second time, as OpenTelemetry exponential (base-2) histograms.

    For ``exponential_histograms=True`` with ``metrics_exporter=otlp``: each observation of a
    histogram series created after ``configure()`` also goes to an OpenTelemetry SDK histogram
    whose view is ``ExponentialBucketHistogramAggregation`` (160 buckets, scale adapted to the
    values), read by an in-memory reader; :func:`metrics_data` sends those in place of the
    explicit buckets. The Prometheus exposition keeps the declared buckets. A forked child starts
    afresh instead of sending its parent's observations again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        from opentelemetry.sdk.metrics import Histogram as OtelHistogram
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

        self._pid = os.getpid()
        self._reader = InMemoryMetricReader()
        view = View(instrument_type=OtelHistogram, aggregation=ExponentialBucketHistogramAggregation())
        provider = MeterProvider(
            metric_readers=[self._reader],
            resource=Resource.get_empty(),
            views=[view],
            shutdown_on_exit=False,
        )
        self._meter = provider.get_meter("obskit")
        self._instruments: dict[str, Any] = {}

    def _instrument(self, spec: MetricSpec) -> Any:
        with self._lock:
            if self._pid != os.getpid():
                self._reset()
            instrument = self._instruments.get(spec.name)
            if instrument is None:
                instrument = self._instruments[spec.name] = self._meter.create_histogram(
                    spec.name, unit=spec.unit, description=spec.description
                )
            return instrument

    def recorder(self, spec: MetricSpec, values: tuple[str, ...]) -> Callable[[float], None]:
        """The function recording one observation of ``spec``'s series ``values``."""
        attributes = dict(zip(spec.labels, map(label_value, values), strict=True))

        def record(value: float) -> None:
            try:
                instrument = self._instruments.get(spec.name)
                if instrument is None or self._pid != os.getpid():
                    instrument = self._instrument(spec)
                instrument.record(value, attributes)
            except Exception as exc:
                report_internal_error("exponential histogram", exc)

        return record

    def metrics(self) -> dict[str, Metric]:
        """The exponential histograms recorded in this process, by name."""
        if self._pid != os.getpid():
            return {}
        data = self._reader.get_metrics_data()
        if data is None:
            return {}
        return {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def metrics_data(
    registry: CollectorRegistry,
    resource: Resource,
    start_ns: int,
    extremes: Extremes | None = None,
    exponential: ExponentialHistograms | None = None,
) -> MetricsData:
    """Everything in ``registry`` as one ``MetricsData`` batch.

    Histogram min/max come from ``extremes``; with ``exponential``, the histograms it recorded
    replace their explicit-bucket form.
    """
    metrics = translate(registry.collect(), start_ns, extremes)
    if exponential is not None:
        recorded = exponential.metrics()
        metrics = [recorded.get(m.name, m) if isinstance(m.data, Histogram) else m for m in metrics]
    scope = ScopeMetrics(scope=_SCOPE, metrics=metrics, schema_url="")
    return MetricsData(
        resource_metrics=[ResourceMetrics(resource=resource, scope_metrics=[scope], schema_url="")]
    )


class DeltaConverter:
    """Turns successive cumulative collections into deltas, for exporters that prefer them (Azure).

    Each point becomes the difference from the previous collection of the same series, its start
    time the previous collection's time. Gauges pass through. A series seen for the first time
    reports everything since the process started; a counter that went backwards (a restart of the
    source) reports its new value, as OpenTelemetry's own cumulative-to-delta conversion does.
    """

    def __init__(self) -> None:
        self._previous: dict[tuple[str, tuple[tuple[str, Any], ...]], tuple[int, Any]] = {}

    def convert(self, data: MetricsData) -> MetricsData:
        """The delta form of ``data`` (new objects; ``data`` is left untouched)."""
        resource_metrics = []
        for rm in data.resource_metrics:
            scopes = [
                ScopeMetrics(sm.scope, [self._metric(m) for m in sm.metrics], sm.schema_url)
                for sm in rm.scope_metrics
            ]
            resource_metrics.append(ResourceMetrics(rm.resource, scopes, rm.schema_url))
        return MetricsData(resource_metrics)

    def _metric(self, metric: Metric) -> Metric:
        data = metric.data
        if isinstance(data, Sum):
            points = [self._number(metric.name, p) for p in data.data_points]
            data = Sum(points, AggregationTemporality.DELTA, data.is_monotonic)
        elif isinstance(data, Histogram):
            buckets = [self._histogram(metric.name, p) for p in data.data_points]
            data = Histogram(buckets, AggregationTemporality.DELTA)
        return Metric(metric.name, metric.description, metric.unit, data)

    def _swap(self, name: str, point: Any, state: Any) -> tuple[int, Any] | None:
        key = (name, tuple(sorted((point.attributes or {}).items())))
        previous = self._previous.get(key)
        self._previous[key] = (point.time_unix_nano, state)
        return previous

    def _number(self, name: str, point: NumberDataPoint) -> NumberDataPoint:
        previous = self._swap(name, point, point.value)
        if previous is None or previous[1] > point.value:
            return point
        return NumberDataPoint(
            point.attributes, previous[0], point.time_unix_nano, point.value - previous[1], point.exemplars
        )

    def _histogram(self, name: str, point: HistogramDataPoint) -> HistogramDataPoint:
        state = (point.count, point.sum, tuple(point.bucket_counts))
        previous = self._swap(name, point, state)
        if previous is None or previous[1][0] > point.count:
            return point
        _, (count, total, buckets) = previous
        return HistogramDataPoint(
            attributes=point.attributes,
            start_time_unix_nano=previous[0],
            time_unix_nano=point.time_unix_nano,
            count=point.count - count,
            sum=point.sum - total,
            bucket_counts=[now - before for now, before in zip(point.bucket_counts, buckets, strict=False)],
            explicit_bounds=point.explicit_bounds,
            min=point.min,
            max=point.max,
            exemplars=point.exemplars,
        )


def make_reader(
    exporter: MetricExporter,
    registry: CollectorRegistry | Callable[[], CollectorRegistry],
    resource: Resource,
    interval_ms: float,
    exponential: bool = False,
) -> PeriodicExportingMetricReader:
    """A periodic reader that exports ``registry`` through ``exporter`` on the SDK's export thread.

    ``registry`` may be a callable returning the registry to read at each collection (the current
    store's, which a forked child replaces with its own). The resource's ``process.pid`` follows
    the process, so a forked child's points are told apart from its parent's. The exporter's
    preferred temporality for counters decides cumulative (as recorded) or delta. A delta
    reader also sends each histogram point's min and max over the interval: histograms created
    while it exists track them (obskit._recording.store.want_extremes), and each collection takes
    them. Cumulative readers send none (prometheus_client keeps none since the start). With
    ``exponential``, histograms created while the reader is open are sent as exponential
    histograms (:class:`ExponentialHistograms`).
    """
    import weakref

    from opentelemetry.sdk.metrics import Counter as OtelCounter

    # The SDK's reader restarts its thread in a forked child but keeps its export lock, which the
    # parent's export may hold at the fork: the child's metrics would never go out and its
    # shutdown would wait out the deadline. Registered before the reader's own fork hook, so the
    # new lock is in place before the new thread starts.
    created: list[weakref.ref[PeriodicExportingMetricReader]] = []

    def new_export_lock_in_child() -> None:
        made = created[0]() if created else None
        if made is not None:
            made._export_lock = threading.Lock()

    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=new_export_lock_in_child)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=interval_ms)
    created.append(weakref.ref(reader))
    read_registry = registry if callable(registry) else (lambda: registry)
    preferred = getattr(exporter, "_preferred_temporality", {}) or {}
    delta_wanted = preferred.get(OtelCounter) is AggregationTemporality.DELTA
    if delta_wanted:
        _track_extremes_while_open(reader)
    per_process: dict[str, Any] = {}
    histograms = ExponentialHistograms() if exponential else None
    if histograms is not None:
        _record_exponential_while_open(reader, histograms)

    def start_process() -> None:
        pid = os.getpid()
        per_process.update(
            pid=pid,
            start_ns=time.time_ns(),
            resource=resource.merge(Resource({"process.pid": pid})),
            delta=DeltaConverter() if delta_wanted else None,
        )

    start_process()

    def collect(_reader: Any, timeout_millis: float = 10_000) -> MetricsData:
        if per_process["pid"] != os.getpid():  # the first collection in a forked child
            start_process()
        registry = read_registry()
        extremes = take_extremes(registry) if delta_wanted else None
        data = metrics_data(registry, per_process["resource"], per_process["start_ns"], extremes, histograms)
        delta = per_process["delta"]
        return delta.convert(data) if delta is not None else data

    reader._set_collect_callback(collect)
    return reader


def _track_extremes_while_open(reader: PeriodicExportingMetricReader) -> None:
    """Histograms track min/max from now until ``reader`` shuts down (once, however often called)."""
    want_extremes(True)
    shutdown = reader.shutdown
    released = threading.Lock()

    def shutdown_then_release(*args: Any, **kwargs: Any) -> Any:
        try:
            return shutdown(*args, **kwargs)
        finally:
            if released.acquire(blocking=False):
                want_extremes(False)

    reader.shutdown = shutdown_then_release  # type: ignore[method-assign]


def _record_exponential_while_open(
    reader: PeriodicExportingMetricReader, histograms: ExponentialHistograms
) -> None:
    """Histogram series created from now until ``reader`` shuts down also record into ``histograms``."""
    set_exponential(histograms.recorder)
    shutdown = reader.shutdown

    def shutdown_then_stop(*args: Any, **kwargs: Any) -> Any:
        try:
            return shutdown(*args, **kwargs)
        finally:
            set_exponential(None)

    reader.shutdown = shutdown_then_stop  # type: ignore[method-assign]
