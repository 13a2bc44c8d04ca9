"""The prometheus_client -> OpenTelemetry MetricsData bridge and the console metric format."""

from __future__ import annotations

import io
import math
import time
import uuid
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    Metric,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.resources import Resource

from obskit import MetricsCollector
from obskit._export import console as _console
from obskit._export.bridge import make_reader, metrics_data
from obskit._recording.sysmetrics import ProcessCollector
from obskit.testing import Capture, capture

metrics = MetricsCollector()
RESOURCE = Resource.create({"service.name": "bridge-test"})


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def cap() -> Iterator[Capture]:
    with capture() as c:
        yield c


def export(cap: Capture, start_ns: int = 0) -> MetricsData:
    return metrics_data(cap.store.registry, RESOURCE, start_ns or time.time_ns())


def by_name(data: MetricsData) -> dict[str, Metric]:
    (resource_metrics,) = data.resource_metrics
    (scope,) = resource_metrics.scope_metrics
    return {m.name: m for m in scope.metrics}


def points_by_attributes(metric: Metric) -> dict[tuple[tuple[str, str], ...], object]:
    return {tuple(sorted(dict(p.attributes).items())): p for p in metric.data.data_points}


def test_metrics_data_carries_resource_and_obskit_scope(cap: Capture) -> None:
    metrics.counter(unique("scoped")).inc()
    (resource_metrics,) = export(cap).resource_metrics
    assert resource_metrics.resource.attributes["service.name"] == "bridge-test"
    (scope,) = resource_metrics.scope_metrics
    assert scope.scope.name == "obskit"


def test_counter_becomes_monotonic_cumulative_sum_named_total(cap: Capture) -> None:
    name = unique("requests")
    handle = metrics.counter(name, "Requests served.", labels=["route", "code"])
    handle.inc(3, route="/a", code="200")
    handle.inc(route="/a", code="500")
    handle.inc(2.5, route="/b", code="200")
    metric = by_name(export(cap))[f"{name}_total"]
    assert name not in by_name(export(cap))
    assert isinstance(metric.data, Sum)
    assert metric.data.is_monotonic
    assert metric.data.aggregation_temporality == AggregationTemporality.CUMULATIVE
    assert metric.description == "Requests served."
    values = {k: p.value for k, p in points_by_attributes(metric).items()}
    assert values == {
        (("code", "200"), ("route", "/a")): 3.0,
        (("code", "500"), ("route", "/a")): 1.0,
        (("code", "200"), ("route", "/b")): 2.5,
    }


def test_counter_values_are_cumulative_across_collections(cap: Capture) -> None:
    name = unique("cumulative")
    handle = metrics.counter(name)
    handle.inc(2)
    first = by_name(export(cap))[f"{name}_total"].data.data_points[0]
    handle.inc(3)
    second = by_name(export(cap))[f"{name}_total"].data.data_points[0]
    assert (first.value, second.value) == (2.0, 5.0)
    assert first.start_time_unix_nano == second.start_time_unix_nano
    assert second.start_time_unix_nano <= second.time_unix_nano


def test_sum_start_time_is_when_the_series_was_created(cap: Capture) -> None:
    before = time.time_ns()
    name = unique("started")
    metrics.counter(name).inc()
    point = by_name(export(cap, start_ns=1))[f"{name}_total"].data.data_points[0]
    assert before - 1_000_000_000 <= point.start_time_unix_nano <= point.time_unix_nano


def test_histogram_becomes_histogram_with_non_cumulative_buckets(cap: Capture) -> None:
    name = unique("latency") + "_seconds"
    handle = metrics.histogram(name, "Latency.", labels=["op"], buckets=[1, 5, 10])
    for value in (0.5, 2, 2, 7, 50):
        handle.observe(value, op="read")
    handle.observe(0.1, op="write")
    metric = by_name(export(cap))[name]
    assert isinstance(metric.data, Histogram)
    assert metric.data.aggregation_temporality == AggregationTemporality.CUMULATIVE
    assert metric.unit == "s"
    points = points_by_attributes(metric)
    read = points[(("op", "read"),)]
    assert list(read.explicit_bounds) == [1.0, 5.0, 10.0]
    assert list(read.bucket_counts) == [1, 2, 1, 1]
    assert read.count == 5
    assert read.sum == pytest.approx(61.5)
    assert sum(read.bucket_counts) == read.count
    write = points[(("op", "write"),)]
    assert list(write.bucket_counts) == [1, 0, 0, 0]
    assert (write.count, write.sum) == (1, pytest.approx(0.1))
    assert len(write.bucket_counts) == len(write.explicit_bounds) + 1


def test_histogram_without_labels(cap: Capture) -> None:
    name = unique("plain_hist")
    handle = metrics.histogram(name, buckets=[0.25, 0.5])
    handle.observe(0.3)
    (point,) = by_name(export(cap))[name].data.data_points
    assert dict(point.attributes) == {}
    assert list(point.explicit_bounds) == [0.25, 0.5]
    assert list(point.bucket_counts) == [0, 1, 0]


def test_gauge_becomes_gauge(cap: Capture) -> None:
    name = unique("queue_depth")
    handle = metrics.gauge(name, labels=["queue"])
    handle.set(42, queue="a")
    handle.set(-3, queue="b")
    metric = by_name(export(cap))[name]
    assert isinstance(metric.data, Gauge)
    values = {k: p.value for k, p in points_by_attributes(metric).items()}
    assert values == {(("queue", "a"),): 42.0, (("queue", "b"),): -3.0}


def test_declared_but_unrecorded_labelled_metrics_are_skipped(cap: Capture) -> None:
    name = unique("never_recorded")
    metrics.counter(name, labels=["a"])
    recorded = unique("recorded")
    metrics.gauge(recorded).set(1)
    metrics.counter(name, labels=["a"])  # declared, never incremented
    names = set(by_name(export(cap)))
    assert recorded in names
    assert f"{name}_total" not in names
    assert "obskit_telemetry_overflow_total" not in names


@pytest.mark.parametrize(
    ("suffix", "unit"),
    [("_seconds", "s"), ("_bytes", "By"), ("_ratio", "1"), ("_items", "")],
)
def test_unit_is_translated_from_the_name_suffix(cap: Capture, suffix: str, unit: str) -> None:
    name = unique("unit") + suffix
    metrics.gauge(name).set(1)
    assert by_name(export(cap))[name].unit == unit


def test_collectors_registered_on_the_store_are_bridged(cap: Capture) -> None:
    collector = ProcessCollector()
    cap.store.registry.register(collector)
    try:
        exported = by_name(export(cap))
    finally:
        cap.store.registry.unregister(collector)
    cpu = exported["process_cpu_seconds_total"]
    assert isinstance(cpu.data, Sum)
    assert cpu.data.is_monotonic
    assert isinstance(exported["process_resident_memory_bytes"].data, Gauge)
    assert exported["process_resident_memory_bytes"].unit == "By"
    generations = {
        dict(p.attributes)["generation"] for p in exported["python_gc_collections_total"].data.data_points
    }
    assert generations >= {"0", "1", "2"}


def test_console_format_has_one_line_per_point(cap: Capture) -> None:
    counter = unique("console_c")
    histogram = unique("console_hist")
    gauge = unique("console_g")
    metrics.counter(counter, labels=["k"]).inc(3, k="a")
    metrics.counter(counter, labels=["k"]).inc(k="b")
    metrics.histogram(histogram, buckets=[1, 10]).observe(2)
    metrics.histogram(histogram, buckets=[1, 10]).observe(4)
    metrics.gauge(gauge).set(1.5)
    data = export(cap)
    text = _console.format_metrics(data)
    lines = text.splitlines()
    points = sum(len(m.data.data_points) for m in by_name(data).values())
    assert len(lines) == points == 4
    assert all(line.startswith("[obskit metric] ") for line in lines)
    assert text.endswith("\n")
    assert f'[obskit metric] {counter}_total{{k="a"}} 3' in lines
    assert f'[obskit metric] {counter}_total{{k="b"}} 1' in lines
    assert f"[obskit metric] {histogram} count=2 sum=6 mean=3" in lines
    assert f"[obskit metric] {gauge} 1.5" in lines


def test_console_format_of_nothing_is_empty(cap: Capture) -> None:
    assert _console.format_metrics(export(cap)) == ""


def test_console_format_of_empty_histogram_point_has_nan_mean() -> None:
    from opentelemetry.sdk.metrics.export import HistogramDataPoint, ResourceMetrics, ScopeMetrics
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    point = HistogramDataPoint({}, 0, 1, 0, 0.0, [0, 0], [1.0], math.nan, math.nan)
    metric = Metric("empty_h", "", "", Histogram([point], AggregationTemporality.CUMULATIVE))
    scope = ScopeMetrics(InstrumentationScope("t"), [metric], "")
    data = MetricsData([ResourceMetrics(RESOURCE, [scope], "")])
    assert _console.format_metrics(data) == "[obskit metric] empty_h count=0 sum=0 mean=nan\n"


def test_reader_exports_the_registry_through_the_console_exporter(cap: Capture) -> None:
    name = unique("reader")
    metrics.counter(name).inc(7)
    out = io.StringIO()
    reader = make_reader(_console.metric_exporter(out=out), cap.store.registry, RESOURCE, 3_600_000)
    try:
        reader.force_flush()
        assert f"[obskit metric] {name}_total 7" in out.getvalue().splitlines()
        metrics.counter(name).inc(1)
    finally:
        reader.shutdown()
    # shutdown makes one last collection
    assert f"[obskit metric] {name}_total 8" in out.getvalue().splitlines()
