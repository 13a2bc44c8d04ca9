"""Test support: capture spans, metrics and logs in memory for one test or block.

``with obskit.testing.capture() as cap: ...`` anywhere, or the ``obskit_capture`` pytest fixture
(registered automatically through the ``pytest11`` entry point). Inside, obskit records into a
fresh metric store, an in-memory span exporter and a log list; what was configured before is
restored on exit. Metric values read through the capture are therefore the increase during it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from obskit import _state
from obskit._proxy import install_global_tracer_provider
from obskit._redacting import RedactingSpanExporter
from obskit._runtime import log_fields, resource_for
from obskit._store import Store
from obskit.logging import JsonFormatter

__all__ = ["Capture", "capture"]


class _ListHandler(logging.Handler):
    """Keeps each record as the dict obskit's JSON formatter would render, taken at emit time."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[dict[str, Any]] = []
        self._formatter = JsonFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(self._formatter.to_dict(record))


def _matches(labels: Mapping[str, str], wanted: Mapping[str, Any]) -> bool:
    return all(labels.get(k) == str(v) for k, v in wanted.items())


class Capture:
    """What :func:`capture` yields: the spans, metrics and logs recorded inside it, with assertions."""

    def __init__(self, store: Store, spans: InMemorySpanExporter, logs: _ListHandler) -> None:
        self.store = store
        self._spans = spans
        self._logs = logs

    # -- spans -----------------------------------------------------------------------------------

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """Finished spans, oldest first, optionally only those called ``name``."""
        spans = list(self._spans.get_finished_spans())
        return [s for s in spans if s.name == name] if name is not None else spans

    def assert_span(
        self, name: str, status: str | StatusCode | None = None, **attributes: Any
    ) -> ReadableSpan:
        """The one finished span called ``name`` with this status and these attributes, or AssertionError."""
        candidates = self.spans(name)
        wanted = StatusCode[status.upper()] if isinstance(status, str) else status
        for span in candidates:
            attrs = dict(span.attributes or {})
            if wanted is not None and span.status.status_code != wanted:
                continue
            if all(attrs.get(k) == v for k, v in attributes.items()):
                return span
        seen = [(s.name, s.status.status_code.name, dict(s.attributes or {})) for s in self.spans()]
        raise AssertionError(f"no span {name!r} with status={status} and {attributes}; spans: {seen}")

    # -- metrics ---------------------------------------------------------------------------------

    def _samples(self, sample_name: str, labels: Mapping[str, Any]) -> list[float]:
        return [
            sample.value
            for family in self.store.registry.collect()
            for sample in family.samples
            if sample.name == sample_name and _matches(sample.labels, labels)
        ]

    def metric_names(self) -> set[str]:
        """Names of the metric families that have at least one sample (counters with ``_total``)."""
        names = set()
        for family in self.store.registry.collect():
            if family.samples:
                names.add(f"{family.name}_total" if family.type == "counter" else family.name)
        return names

    def counter_value(self, name: str, **labels: Any) -> float:
        """Sum of the counter's series whose labels include ``labels`` (``name`` may omit ``_total``)."""
        base = name[: -len("_total")] if name.endswith("_total") else name
        return sum(self._samples(f"{base}_total", labels))

    def assert_counter(self, name: str, value: float, **labels: Any) -> None:
        """Assert the counter rose by ``value`` during the capture, summed over matching series."""
        actual = self.counter_value(name, **labels)
        if actual != value:
            raise AssertionError(f"counter {name}{labels} rose by {actual}, expected {value}")

    def histogram_count(self, name: str, **labels: Any) -> float:
        """How many observations the histogram got (matching series summed)."""
        return sum(self._samples(f"{name}_count", labels))

    def histogram_sum(self, name: str, **labels: Any) -> float:
        """Sum of the histogram's observations (matching series summed)."""
        return sum(self._samples(f"{name}_sum", labels))

    def histogram_buckets(self, name: str, **labels: Any) -> dict[str, float]:
        """Cumulative bucket counts by ``le`` bound (matching series summed)."""
        result: dict[str, float] = {}
        for family in self.store.registry.collect():
            for sample in family.samples:
                if sample.name == f"{name}_bucket" and _matches(sample.labels, labels):
                    result[sample.labels["le"]] = result.get(sample.labels["le"], 0.0) + sample.value
        return result

    def gauge_value(self, name: str, **labels: Any) -> float:
        """The gauge's value (matching series summed; 0 when none)."""
        return sum(self._samples(name, labels))

    # -- logs ------------------------------------------------------------------------------------

    def logs(self, level: str | None = None, **fields: Any) -> list[dict[str, Any]]:
        """Log records as rendered dicts, optionally filtered by level and field values."""
        wanted_level = level.upper() if level else None
        return [
            record
            for record in self._logs.records
            if (wanted_level is None or record["level"] == wanted_level)
            and all(record.get(k) == v for k, v in fields.items())
        ]


@contextmanager
def capture() -> Iterator[Capture]:
    """Record spans, metrics and logs in memory until the block ends, then restore the previous set-up."""
    previous = _state.STATE
    settings = previous.settings
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=resource_for(settings))
    provider.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(exporter, previous.redactor)))
    store = Store(series_cap=settings.series_cap)
    store.exemplars = previous.store.exemplars
    handler = _ListHandler()
    root = logging.getLogger()
    root_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    _state.set_state(
        _state.State(
            settings=settings,
            store=store,
            redactor=previous.redactor,
            tracer=provider.get_tracer("obskit"),
            tracer_provider=provider,
            configured=previous.configured,
            log_fields=previous.log_fields or log_fields(settings),
        )
    )
    install_global_tracer_provider()
    try:
        yield Capture(store, exporter, handler)
    finally:
        _state.set_state(previous)
        root.removeHandler(handler)
        root.setLevel(root_level)
        provider.shutdown()
