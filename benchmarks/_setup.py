"""Shared fixtures: obskit set up through ``configure()``, its hand-written equivalent, baseline metrics.

Every obskit case runs after the public ``obskit.configure()`` a user calls, with one change: the
console span exporter is swapped for one that discards (:func:`configured`). So obskit's whole
span pipeline is measured (its sampler, the drop-counting processor, the batch processor,
cleaning before export, exemplars on histograms) without any I/O. The hand-written side
(:func:`hand_written_provider`) gets the same discarding exporter behind a ``BatchSpanProcessor``
with the same queue and batch sizes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge as PromGauge
from prometheus_client import Histogram as PromHistogram

import obskit
from obskit._core import state as _state
from obskit._core.settings import Settings
from obskit._recording.families import JOB_DURATION_BUCKETS
from obskit._recording.store import Store

SERVICE_FIELDS = {"service": "bench-service", "environment": "bench"}
#: What every benchmark passes to ``configure()``: the defaults, but the Prometheus backend (the
#: one that turns exemplars on) on a free local port, and spans to the console exporter, which
#: :func:`configured` swaps for :class:`DiscardingExporter`.
CONFIGURE: dict[str, Any] = {
    "service_name": SERVICE_FIELDS["service"],
    "environment": SERVICE_FIELDS["environment"],
    "traces_exporter": "console",
    "metrics_exporter": "prometheus",
    "prometheus_host": "127.0.0.1",
    "prometheus_port": 0,
    "logs_exporter": "console",
}
#: Spans one sample may make: below the default ``export_queue_size`` (2,048), and the queues are
#: flushed between samples, so no queue fills. A full queue drops the span instead of exporting
#: it, which would make the faster side cheaper.
MAX_SPANS_PER_SAMPLE = 1_500


class DiscardingExporter(SpanExporter):
    """Accepts every batch and throws it away: the pipeline's cost without any I/O."""

    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


#: Every discarding exporter made so far, newest last (the sanity checks read their counts).
EXPORTERS: list[DiscardingExporter] = []


def discarding_span_exporter(settings: object = None) -> DiscardingExporter:
    """The factory :func:`configured` puts in place of the console span exporter's."""
    exporter = DiscardingExporter()
    EXPORTERS.append(exporter)
    return exporter


@contextlib.contextmanager
def configured(**overrides: Any) -> Iterator[_state.State]:
    """``obskit.configure(**CONFIGURE, **overrides)`` for a block, spans discarded; ``shutdown()`` after.

    The one change to what a user gets: ``obskit._export.backends.SPAN_EXPORTERS`` maps the
    console exporter to :func:`discarding_span_exporter` while ``configure()`` builds the pipeline
    (the web benchmark's app does the same). Everything around the exporter is obskit's own.
    obskit's metric store outlives ``shutdown()``; each block starts with an empty one, as a new
    process does, so that one suite's metrics do not weigh on the next one's scrapes.
    """
    from obskit._export import backends

    if _state.STATE.configured:
        raise RuntimeError("obskit is configured already: shut it down first")
    _state.set_state(dataclasses.replace(_state.STATE, store=Store()))
    saved = backends.SPAN_EXPORTERS["console"]
    backends.SPAN_EXPORTERS["console"] = (__name__, discarding_span_exporter.__name__)
    try:
        obskit.configure(**{**CONFIGURE, **overrides})
    finally:
        backends.SPAN_EXPORTERS["console"] = saved
    try:
        yield _state.STATE
    finally:
        obskit.shutdown()


def hand_written_provider(settings: Settings) -> tuple[TracerProvider, DiscardingExporter]:
    """What a user writes by hand: ``TracerProvider`` (default sampler) + ``BatchSpanProcessor``.

    Same resource attributes, discarding exporter and queue and batch sizes as obskit's pipeline
    under ``settings``, so that both sides export the same way.
    """
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": settings.service_name, "deployment.environment": settings.environment}
        ),
        shutdown_on_exit=False,
    )
    exporter = DiscardingExporter()
    provider.add_span_processor(
        BatchSpanProcessor(
            exporter,
            max_queue_size=settings.export_queue_size,
            max_export_batch_size=min(settings.export_batch_size, settings.export_queue_size),
        )
    )
    return provider, exporter


def check_no_drops(state: _state.State) -> None:
    """obskit dropped no telemetry while measured (a drop is cheaper than an export)."""
    dropped = [
        sample
        for family in state.store.registry.collect()
        if family.name == "obskit_telemetry_dropped"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.value
    ]
    if dropped:
        raise RuntimeError(f"obskit dropped telemetry during the benchmark: {dropped}")


class PromJob:
    """The prometheus_client metrics a hand-written job decorator records, children pre-bound."""

    def __init__(self, job: str) -> None:
        self.registry = CollectorRegistry()
        jobs = PromCounter("bench_jobs", "Jobs.", ["job", "status"], registry=self.registry)
        duration = PromHistogram(
            "bench_job_duration_seconds",
            "Duration.",
            ["job"],
            registry=self.registry,
            buckets=JOB_DURATION_BUCKETS,
        )
        in_progress = PromGauge("bench_jobs_in_progress", "Running.", ["job"], registry=self.registry)
        self.success = jobs.labels(job, "success")
        self.error = jobs.labels(job, "error")
        self.duration = duration.labels(job)
        self.in_progress = in_progress.labels(job)


perf_counter = time.perf_counter


def value_of(registry: Any, sample: str, **labels: str) -> float | None:
    """One sample's value from a prometheus_client registry (for sanity checks)."""
    return registry.get_sample_value(sample, labels)  # type: ignore[no-any-return]
