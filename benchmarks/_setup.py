"""Shared fixtures: one span pipeline that discards, obskit state built around it, baseline metrics."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge as PromGauge
from prometheus_client import Histogram as PromHistogram

from obskit._core import state as _state
from obskit._core.redact import Redactor
from obskit._core.settings import Settings
from obskit._recording.families import JOB_DURATION_BUCKETS
from obskit._recording.store import Store

SERVICE_FIELDS = {"service": "bench-service", "environment": "bench"}
#: Large enough that no sample fills it: a full queue drops (and logs) instead of exporting,
#: which would make the faster side cheaper. The queue is drained between samples.
QUEUE_SIZE = 1 << 17
MAX_SPANS_PER_SAMPLE = 50_000


class DiscardingExporter(SpanExporter):
    """Accepts every batch and throws it away: the pipeline's cost without any I/O."""

    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


#: The exporter behind each provider made by :func:`tracer_provider`, by provider id.
EXPORTERS: dict[int, DiscardingExporter] = {}


def tracer_provider() -> TracerProvider:
    """A TracerProvider (default sampler) with a BatchSpanProcessor over a discarding exporter."""
    provider = TracerProvider()
    exporter = EXPORTERS[id(provider)] = DiscardingExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=QUEUE_SIZE))
    return provider


def obskit_state(provider: TracerProvider | None) -> _state.State:
    """What ``configure()`` would install, minus exporters: this provider's tracer, a fresh store."""
    settings = Settings(service_name=SERVICE_FIELDS["service"], environment=SERVICE_FIELDS["environment"])
    return _state.State(
        settings=settings,
        store=Store(series_cap=settings.series_cap),
        redactor=Redactor(),
        tracer=provider.get_tracer("obskit") if provider is not None else None,
        tracer_provider=provider,
        configured=True,
        log_fields=dict(SERVICE_FIELDS),
    )


@contextlib.contextmanager
def obskit_using(provider: TracerProvider | None) -> Iterator[_state.State]:
    """Install :func:`obskit_state` for a block and restore what was there before."""
    state = obskit_state(provider)
    previous = _state.set_state(state)
    try:
        yield state
    finally:
        _state.set_state(previous)


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
