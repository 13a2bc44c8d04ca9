"""Exemplars and the histogram recording path: outside a span nothing is looked up beyond the
span; inside one, a bucket takes an exemplar at most once per interval; the shortcut observer
records exactly what prometheus_client's ``observe`` records."""

from __future__ import annotations

import math
import uuid
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext
from prometheus_client import CollectorRegistry
from prometheus_client import Histogram as PromHistogram

import obskit
from obskit._recording import exemplars as _exemplars
from obskit._recording.exemplars import histogram_observer, span_observer
from obskit._recording.store import set_exponential
from obskit.testing import Capture

#: Values on, between, below and above the bounds (0.1, 1, +Inf), infinities and NaN.
VALUES = [-1.0, 0.0, 0.05, 0.1, 0.1000001, 0.5, 1, 1.0, 3, math.inf, -math.inf, math.nan, 2**70]


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def exemplar_buckets(capture: Capture, name: str) -> dict[str, str]:
    """le -> exemplar trace_id of each bucket of histogram ``name`` that has an exemplar."""
    return {
        sample.labels["le"]: sample.exemplar.labels["trace_id"]
        for family in capture.store.registry.collect()
        for sample in family.samples
        if sample.name == f"{name}_bucket" and sample.exemplar is not None
    }


def samples(histogram: PromHistogram) -> list[tuple[str, dict[str, str], str]]:
    """The histogram's samples, values as repr (NaN equal to NaN), ``_created`` left out."""
    return [
        (sample.name, sample.labels, repr(sample.value))
        for family in histogram.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    ]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The exemplar clock, fixed until a test moves it; every read is counted in ``clock[1:]``."""
    now = [1000.0]

    def monotonic() -> float:
        now.append(now[0])
        return now[0]

    monkeypatch.setattr(_exemplars, "monotonic", monotonic)
    return now


def test_outside_a_span_no_exemplar_bookkeeping(obskit_capture: Capture, clock: list[float]) -> None:
    obskit_capture.store.exemplars = True  # as the prometheus backend sets it
    name = unique("untraced_seconds")
    histogram = obskit.MetricsCollector().histogram(name, labels=["route"], buckets=[0.1, 1])
    bound = histogram.labels(route="/b")
    for value in (0.05, 0.5, 5):
        histogram.observe(value, route="/a")
        bound.observe(value)
    assert clock[1:] == []  # the bucket clock never read: the span was looked up first
    assert obskit_capture.histogram_count(name, route="/a") == 3
    assert obskit_capture.histogram_count(name, route="/b") == 3
    assert obskit_capture.histogram_sum(name, route="/b") == pytest.approx(5.55)
    assert exemplar_buckets(obskit_capture, name) == {}


def test_bound_histogram_in_a_span_between_exemplars_counts_every_value(
    obskit_capture: Capture, clock: list[float]
) -> None:
    obskit_capture.store.exemplars = True
    name = unique("traced_seconds")
    bound = obskit.MetricsCollector().histogram(name, buckets=[0.1, 1]).labels()
    trace_ids = []
    for value in (0.05, 0.06, 0.5):
        with obskit.trace_operation("request"):
            bound.observe(value)
            trace_ids.append(format(trace.get_current_span().get_span_context().trace_id, "032x"))
    assert exemplar_buckets(obskit_capture, name) == {"0.1": trace_ids[0], "1.0": trace_ids[2]}
    assert obskit_capture.histogram_count(name) == 3
    assert obskit_capture.histogram_sum(name) == pytest.approx(0.61)
    clock[0] += _exemplars.EXEMPLAR_INTERVAL
    with obskit.trace_operation("request"):
        bound.observe(0.07)
        later = format(trace.get_current_span().get_span_context().trace_id, "032x")
    assert exemplar_buckets(obskit_capture, name)["0.1"] == later


@pytest.mark.parametrize("bound", [True, False], ids=["bound", "labels"])
def test_a_nan_observation_leaves_the_first_bucket_its_exemplar(
    obskit_capture: Capture, clock: list[float], bound: bool
) -> None:
    obskit_capture.store.exemplars = True
    name = unique("nan_seconds")
    histogram = obskit.MetricsCollector().histogram(name, buckets=[0.1, 1])
    observe = histogram.labels().observe if bound else histogram.observe
    with obskit.trace_operation("request"):
        observe(math.nan)  # counted, in no bucket: prometheus_client's behaviour
        observe(0.05)
        trace_id = format(trace.get_current_span().get_span_context().trace_id, "032x")
    assert exemplar_buckets(obskit_capture, name) == {"0.1": trace_id}
    assert obskit_capture.histogram_count(name) == 1  # _count is the +Inf bucket: NaN is in none


@pytest.mark.parametrize("labelled", [False, True])
def test_histogram_observer_records_what_prometheus_client_records(labelled: bool) -> None:
    def child(registry: CollectorRegistry) -> Any:
        labels = ["route"] if labelled else []
        metric = PromHistogram("latency_seconds", "Latency.", labels, registry=registry, buckets=[0.1, 1])
        return metric.labels(route="/a") if labelled else metric

    theirs, ours = child(CollectorRegistry()), child(CollectorRegistry())
    observe = histogram_observer(ours)
    assert observe != ours.observe  # the shortcut, not the public method
    for value in VALUES:
        theirs.observe(value)
        observe(value)
    assert samples(ours) == samples(theirs)


def test_histogram_observer_falls_back_to_the_public_observe() -> None:
    calls: list[float] = []

    class Counted(PromHistogram):
        def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
            calls.append(amount)
            super().observe(amount, exemplar)

    counted = Counted("counted_seconds", "Counted.", registry=CollectorRegistry())
    histogram_observer(counted)(0.5)
    assert calls == [0.5]
    parent = PromHistogram("parent_seconds", "Parent.", ["route"], registry=CollectorRegistry())
    with pytest.raises(ValueError, match="missing label values"):
        histogram_observer(parent)(0.5)  # prometheus_client's own error, as before


def test_bound_histogram_records_through_a_wrapped_child(obskit_capture: Capture) -> None:
    # A series that also records elsewhere (OTLP's exponential histogram) is not a plain
    # prometheus_client child: the bound histogram goes through its observe, not the shortcut.
    seen: list[float] = []
    set_exponential(lambda spec, values: seen.append)
    try:
        name = unique("wrapped_seconds")
        bound = obskit.MetricsCollector().histogram(name, buckets=[0.1, 1]).labels()
        bound.observe(0.5)
        bound.observe(0.05)
    finally:
        set_exponential(None)
    assert seen == [0.5, 0.05]
    assert obskit_capture.histogram_count(name) == 2


def _sampled_span(trace_id: int) -> Any:
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    return NonRecordingSpan(SpanContext(trace_id, 0xBEEF, is_remote=False, trace_flags=TraceFlags(1)))


def test_span_observer_records_what_prometheus_client_records(clock: list[float]) -> None:
    theirs = PromHistogram("latency_seconds", "Latency.", registry=CollectorRegistry(), buckets=[0.1, 1])
    ours = PromHistogram("latency_seconds", "Latency.", registry=CollectorRegistry(), buckets=[0.1, 1])
    observe = span_observer(ours)
    for value in VALUES:
        theirs.observe(value)
        observe(value, _sampled_span(0xABC))
    assert samples(ours) == samples(theirs)  # exemplars aside, the same counts and sum


def test_span_observer_sets_one_exemplar_per_bucket_per_interval(clock: list[float]) -> None:
    histogram = PromHistogram("job_seconds", "Job.", registry=CollectorRegistry(), buckets=[0.1, 1])
    observe = span_observer(histogram)

    def exemplar_ids() -> dict[str, str]:
        return {
            sample.labels["le"]: sample.exemplar.labels["trace_id"]
            for sample in next(iter(histogram.collect())).samples
            if sample.name.endswith("_bucket") and sample.exemplar is not None
        }

    observe(0.05, _sampled_span(1))
    observe(0.06, _sampled_span(2))  # within the interval: the bucket keeps the first
    observe(0.5, _sampled_span(3))  # its own bucket: at once
    observe(math.nan, _sampled_span(4))  # in no bucket: no exemplar, no clock read
    assert exemplar_ids() == {"0.1": f"{1:032x}", "1.0": f"{3:032x}"}
    unsampled = NonRecordingSpan(SpanContext(5, 6, is_remote=False))
    clock[0] += _exemplars.EXEMPLAR_INTERVAL
    observe(0.07, unsampled)  # due, but no sampled span: the bucket stays due
    observe(0.08, _sampled_span(7))
    assert exemplar_ids() == {"0.1": f"{7:032x}", "1.0": f"{3:032x}"}
    assert len(clock[1:]) == 5  # one read per observation in a bucket, none for NaN


def test_span_observer_goes_through_a_wrapped_child(obskit_capture: Capture, clock: list[float]) -> None:
    # A job series that also records elsewhere (OTLP's exponential histogram) is not a plain
    # prometheus_client child: its observe is called, with the exemplar when one is due.
    seen: list[float] = []
    set_exponential(lambda spec, values: seen.append)
    obskit_capture.store.exemplars = True
    try:
        job = unique("wrapped_job")

        @obskit.track_job(job)
        def work() -> int:
            return 1

        assert work() == 1
        assert work() == 1
    finally:
        set_exponential(None)
    assert len(seen) == 2
    span = obskit_capture.assert_span(job)
    assert (
        format(span.context.trace_id, "032x")
        in exemplar_buckets(obskit_capture, "obskit_job_duration_seconds").values()
    )
