"""Test support: capture spans, metrics and logs in memory for one test or block.

``with obskit.testing.capture() as cap: ...`` anywhere, or the ``obskit_capture`` pytest fixture
(registered automatically through the ``pytest11`` entry point). Inside, obskit records into a
fresh metric store, an in-memory span exporter and a log list; what was configured before is
restored on exit. Metric values read through the capture are therefore the increase during it.
"""

from __future__ import annotations

import itertools
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import StatusCode

from obskit._core import state as _state
from obskit._core.resource import log_fields, resource_for
from obskit._export.redacting import RedactingSpanExporter
from obskit._recording import handles as _handles
from obskit._recording import store as _store
from obskit._recording.proxy import install_global_tracer_provider
from obskit._recording.store import Store
from obskit.logging import JsonFormatter

__all__ = ["Buckets", "Capture", "SequentialIds", "capture"]

#: How many series (or spans) an assertion's failure message lists at most.
_SHOWN = 10


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


def _listed(items: list[str]) -> str:
    """At most :data:`_SHOWN` items, then how many more there are."""
    shown = ", ".join(items[:_SHOWN])
    more = len(items) - _SHOWN
    return f"[{shown}, ... and {more} more]" if more > 0 else f"[{shown}]"


def _bound(key: object) -> float:
    """A bucket bound as a float, from a number or from its text (``"64"``, ``"64.0"``, ``"+Inf"``)."""
    if isinstance(key, bool) or not isinstance(key, (int, float, str)):
        raise KeyError(key)
    try:
        return float(key)
    except ValueError:
        raise KeyError(key) from None


class Buckets(dict[float, float]):
    """Cumulative bucket counts keyed by upper bound as a float: ``buckets[64]``, ``buckets[float("inf")]``.

    A bound may also be looked up (and compared) by its text as the Prometheus exposition or
    prometheus_client writes it: ``buckets["64"]``, ``buckets["64.0"]``, ``buckets["+Inf"]``.
    Keys are in ascending order, ``inf`` last.
    """

    def __getitem__(self, key: object) -> float:
        return super().__getitem__(_bound(key))

    def __contains__(self, key: object) -> bool:
        try:
            return super().__contains__(_bound(key))
        except KeyError:
            return False

    def get(self, key: object, default: Any = None) -> Any:
        """The count for bound ``key`` (a number or its text), else ``default``."""
        try:
            return self[key]
        except KeyError:
            return default

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        try:
            return dict(self) == {_bound(k): v for k, v in other.items()}
        except KeyError:
            return False

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None


def _counter_base(name: str) -> str:
    return name[: -len("_total")] if name.endswith("_total") else name


class SequentialIds(IdGenerator):
    """Trace ids 1, 2, 3... and span ids 1, 2, 3...: the ids of a deterministic capture."""

    def __init__(self) -> None:
        self._traces = itertools.count(1)
        self._spans = itertools.count(1)

    def generate_trace_id(self) -> int:
        """The next trace id."""
        return next(self._traces)

    def generate_span_id(self) -> int:
        """The next span id."""
        return next(self._spans)


#: Nanoseconds between two consecutive instants of a deterministic capture's clock (one second).
_TICK = 1_000_000_000


class Capture:
    """What :func:`capture` yields: the spans, metrics and logs recorded inside it, with assertions."""

    def __init__(
        self, store: Store, spans: InMemorySpanExporter, logs: _ListHandler, deterministic: bool = False
    ) -> None:
        self.store = store
        self._spans = spans
        self._logs = logs
        self.deterministic = deterministic

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
        seen = [repr((s.name, s.status.status_code.name, dict(s.attributes or {}))) for s in self.spans()]
        raise AssertionError(
            f"no span {name!r} with status={status} and {attributes}; spans: {_listed(seen)}"
        )

    def spans_as_dicts(self) -> list[dict[str, Any]]:
        """The finished spans as plain dicts, oldest first: for snapshot tests and plain ``==``.

        Each has ``name``, ``kind``, ``context`` and ``parent`` (``{"trace_id", "span_id"}`` as
        ints; ``parent`` None for a root), ``start_time`` and ``end_time`` (ns), ``status``
        (``{"code"}`` plus ``"description"`` when set), ``attributes`` and ``events`` (each
        ``{"name", "timestamp", "attributes"}``). In a deterministic capture the ids count up
        from 1 and the times are instants of a clock that ticks one second per distinct
        timestamp seen, in order: the same code gives the same dicts on every run.
        """
        spans = self.spans()
        clock = _clock(spans) if self.deterministic else None

        def at(ns: int | None) -> int | None:
            return ns if clock is None or ns is None else clock[ns]

        result = []
        for span in spans:
            status: dict[str, Any] = {"code": span.status.status_code.name}
            if span.status.description:
                status["description"] = span.status.description
            parent = span.parent
            result.append(
                {
                    "name": span.name,
                    "kind": span.kind.name,
                    "context": {"trace_id": span.context.trace_id, "span_id": span.context.span_id},
                    "parent": None
                    if parent is None
                    else {"trace_id": parent.trace_id, "span_id": parent.span_id},
                    "start_time": at(span.start_time),
                    "end_time": at(span.end_time),
                    "status": status,
                    "attributes": dict(span.attributes or {}),
                    "events": [
                        {"name": e.name, "timestamp": at(e.timestamp), "attributes": dict(e.attributes or {})}
                        for e in span.events
                    ],
                }
            )
        return result

    # -- metrics ---------------------------------------------------------------------------------

    def _series(self, sample_name: str) -> list[tuple[dict[str, str], float]]:
        return [
            (dict(sample.labels), float(sample.value))
            for family in self.store.registry.collect()
            for sample in family.samples
            if sample.name == sample_name
        ]

    def _samples(self, sample_name: str, labels: Mapping[str, Any]) -> list[float]:
        return [value for found, value in self._series(sample_name) if _matches(found, labels)]

    def _sum(self, sample_name: str, labels: Mapping[str, Any]) -> float:
        return sum(self._samples(sample_name, labels), 0.0)

    def _seen(self, sample_name: str) -> str:
        """What a failure message says exists: the series of ``sample_name``, else the counters'."""
        series = self._series(sample_name)
        if series:
            return f"series of {sample_name}: " + _listed([f"{labels} = {value}" for labels, value in series])
        names = sorted(
            f"{f.name}_total" for f in self.store.registry.collect() if f.samples and f.type == "counter"
        )
        return f"no series of {sample_name} in this capture; counters: {_listed(names)}"

    def metric_names(self) -> set[str]:
        """Names of the metric families that have at least one sample (counters with ``_total``)."""
        names = set()
        for family in self.store.registry.collect():
            if family.samples:
                names.add(f"{family.name}_total" if family.type == "counter" else family.name)
        return names

    def _known(self, name: str, kind: str) -> None:
        """AssertionError unless a ``kind`` called ``name`` was declared (or is in the store's registry).

        A misspelled name is said to be one, not read as "nothing recorded" (0.0).
        """
        spec = _handles._DECLARED.get(name)
        if spec is not None and spec.kind == kind:
            return
        if any(f.name == name and f.type == kind for f in self.store.registry.collect()):
            return
        declared = sorted(
            {s.sample_name for s in _handles._DECLARED.values() if s.kind == kind}
            | {
                f"{f.name}_total" if kind == "counter" else f.name
                for f in self.store.registry.collect()
                if f.type == kind
            }
        )
        shown = f"{name}_total" if kind == "counter" else name
        other = f" (declared as a {spec.kind})" if spec is not None else ""
        raise AssertionError(f"no {kind} {shown!r} was ever declared{other}; {kind}s: {_listed(declared)}")

    def counter_value(self, name: str, **labels: Any) -> float:
        """Sum of the counter's series whose labels include ``labels`` (``name`` may omit ``_total``).

        Raises:
            AssertionError: no counter of that name was ever declared.
        """
        self._known(_counter_base(name), "counter")
        return self._sum(f"{_counter_base(name)}_total", labels)

    def assert_counter(self, name: str, value: float, **labels: Any) -> None:
        """Assert the counter rose by ``value`` during the capture, summed over matching series.

        The failure message lists the counter's series (labels and values, the first ten), or,
        when it has none, the counters that do have some.
        """
        actual = self.counter_value(name, **labels)
        if actual != value:
            seen = self._seen(f"{_counter_base(name)}_total")
            raise AssertionError(f"counter {name}{labels} rose by {actual}, expected {float(value)}; {seen}")

    def histogram_count(self, name: str, **labels: Any) -> float:
        """How many observations the histogram got (matching series summed).

        Raises:
            AssertionError: no histogram of that name was ever declared.
        """
        self._known(name, "histogram")
        return self._sum(f"{name}_count", labels)

    def histogram_sum(self, name: str, **labels: Any) -> float:
        """Sum of the histogram's observations (matching series summed); AssertionError if never declared."""
        self._known(name, "histogram")
        return self._sum(f"{name}_sum", labels)

    def histogram_buckets(self, name: str, **labels: Any) -> Buckets:
        """Cumulative bucket counts by upper bound (matching series summed); empty when none.

        Keyed by float, as the buckets were declared: ``buckets[0.5]``, ``buckets[64]``,
        ``buckets[float("inf")]``; the bound's text (``"64"``, ``"64.0"``, ``"+Inf"``) works too.
        """
        self._known(name, "histogram")
        counts: dict[float, float] = {}
        for labels_found, value in self._series(f"{name}_bucket"):
            if _matches(labels_found, labels):
                bound = float(labels_found["le"])
                counts[bound] = counts.get(bound, 0.0) + value
        return Buckets(sorted(counts.items()))

    def gauge_value(self, name: str, **labels: Any) -> float:
        """The gauge's value (matching series summed; 0 when none); AssertionError if never declared."""
        self._known(name, "gauge")
        return self._sum(name, labels)

    def metrics_as_dicts(self) -> list[dict[str, Any]]:
        """The metrics recorded in the capture as plain dicts, sorted by name: for snapshot tests.

        One dict per family with samples: ``name`` (counters with ``_total``, as exposed),
        ``type``, ``unit``, ``description`` and ``series``, sorted by labels. A counter's or
        gauge's series is ``{"labels", "value"}``; a histogram's ``{"labels", "count", "sum",
        "buckets"}``, ``buckets`` the cumulative count per upper bound (``"+Inf"`` last), as
        in the exposition. ``_created`` samples are left out: they are times.
        """
        families = []
        for family in self.store.registry.collect():
            if not family.samples:
                continue
            name = f"{family.name}_total" if family.type == "counter" else family.name
            spec = _handles._DECLARED.get(family.name)
            families.append(
                {
                    "name": name,
                    "type": family.type,
                    "unit": spec.unit if spec is not None else family.unit,
                    "description": family.documentation,
                    "series": _store.family_series(family),
                }
            )
        return sorted(families, key=lambda family: str(family["name"]))

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


def _clock(spans: list[ReadableSpan]) -> dict[int, int]:
    """Each timestamp of ``spans`` -> its instant on a clock ticking once per distinct timestamp."""
    seen = {t for span in spans for t in (span.start_time, span.end_time) if t is not None}
    seen.update(event.timestamp for span in spans for event in span.events)
    return {ns: (index + 1) * _TICK for index, ns in enumerate(sorted(seen))}


@contextmanager
def capture(*, strict: bool = True, deterministic: bool = False) -> Iterator[Capture]:
    """Record spans, metrics and logs in memory until the block ends, then restore the previous set-up.

    Args:
        strict: mistakes in the code under test (an undeclared or missing label, an amount
            that is no number, a counter going down) raise :class:`obskit.MetricUsageError` at
            the faulty call instead of being logged, so that a test catches them the day they
            are written. ``strict=False`` records as production does.
        deterministic: trace and span ids count up from 1 (:class:`SequentialIds`; log lines
            carry them too) and :meth:`Capture.spans_as_dicts` gives times on a clock that
            ticks one second per distinct instant, so snapshots are the same on every run.
    """
    previous = _state.STATE
    settings = previous.settings
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=resource_for(settings), id_generator=SequentialIds() if deterministic else None
    )
    provider.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(exporter, previous.redactor)))
    libraries = sys.modules.get("obskit._web.libraries")
    if libraries is not None:  # database spans feed the captured metrics, as configure()'s do
        libraries.attach_metrics(provider)
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
            strict=strict,
        )
    )
    install_global_tracer_provider()
    try:
        yield Capture(store, exporter, handler, deterministic)
    finally:
        _state.set_state(previous)
        root.removeHandler(handler)
        root.setLevel(root_level)
        provider.shutdown()
