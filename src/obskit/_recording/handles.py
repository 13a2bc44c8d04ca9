"""Declared metrics and their handles: :class:`Counter`, :class:`Histogram`, :class:`Gauge`.

A handle is declared once, process-wide (:func:`declare`), its name and labels checked as
``promtool`` would; it records into whatever :class:`~obskit._recording.store.Store` is current
when it records. Imported on first use (``obskit.Counter`` and the others, ``MetricsCollector``
and the health checks, which declare obskit's own families), not by ``import obskit``: a
process that declares no metric never loads it.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

from obskit._core import state as _state
from obskit._core.errors import (
    MetricDeclarationError,
    MetricUsageError,
    report_internal_error,
    report_usage_error,
)
from obskit._recording.exemplars import current_exemplar, current_span, exemplar_due, histogram_observer
from obskit._recording.store import (
    _DECLARE_LOCK,
    _UNITS,
    MetricSpec,
    Store,
    create_at_zero,
    family_series,
    label_value,
    value_adder,
)

__all__ = [
    "GAUGE_MULTIPROCESS_MODES",
    "BoundCounter",
    "BoundGauge",
    "BoundHistogram",
    "Counter",
    "Gauge",
    "Histogram",
    "declare",
    "declare_spec",
]

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


#: The same words given as OpenTelemetry (UCUM) units.
_UCUM_WORDS = {ucum: word for word, ucum in _UNITS.items() if ucum != "1"}


# promtool's lint rules (client_golang's promlint, as ``promtool check metrics`` 2.42 applies them):
# base units only, no abbreviated units, no type in the name, no suffix a histogram's samples use.
_BASE_UNITS = {
    "amperes": "amperes",
    "bytes": "bytes",
    "bits": "bytes",
    "celsius": "celsius",
    "grams": "grams",
    "joules": "joules",
    "kelvin": "kelvin",
    "meters": "meters",
    "metres": "metres",
    "seconds": "seconds",
    "volts": "volts",
    "minutes": "seconds",
    "hours": "seconds",
    "days": "seconds",
    "weeks": "seconds",
}
_UNIT_PREFIXES = (
    "pico", "nano", "micro", "milli", "centi", "deci", "deca", "hecto", "kilo", "kibi",
    "mega", "mibi", "giga", "gibi", "tera", "tebi", "peta", "pebi",
)  # fmt: skip
_ABBREVIATED_UNITS = frozenset(
    ("s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h", "d")
)
_TYPE_WORDS = ("counter", "gauge", "histogram", "summary", "untyped", "gauge_histogram")
_RESERVED_SUFFIXES = ("_bucket", "_count", "_sum", "_created", "_info", "_total")
#: How a gauge's per-process values combine in Prometheus multi-process mode (prometheus_client's
#: names; ``live*`` drop the values of dead processes). See docs/backends/prometheus.md.
GAUGE_MULTIPROCESS_MODES: Final = frozenset(
    ("all", "liveall", "min", "livemin", "max", "livemax", "sum", "livesum", "mostrecent", "livemostrecent")
)
_CALL_CACHE_FACTOR = 4


_DECLARED: dict[str, MetricSpec] = {}
_HANDLES: dict[str, _Handle] = {}


def _check_spec(spec: MetricSpec) -> None:
    if not _NAME.match(spec.name) or spec.name.startswith("__"):
        raise MetricDeclarationError(f"invalid metric name {spec.name!r}: allowed [a-zA-Z_:][a-zA-Z0-9_:]*")
    _check_name(spec)
    for label in spec.labels:
        if not _LABEL.match(label) or label.startswith("__"):
            raise MetricDeclarationError(
                f"invalid label name {label!r} on {spec.name}: allowed [a-zA-Z_][a-zA-Z0-9_]*, no leading __"
            )
        if label.lower() != label:
            raise MetricDeclarationError(
                f"label name {label!r} on {spec.name} is not snake_case; promtool rejects it: write"
                f" {_snake(label)!r}"
            )
    if len(set(spec.labels)) != len(spec.labels):
        raise MetricDeclarationError(f"duplicate label names on {spec.name}: {spec.labels}")
    for reserved in ("le", "quantile"):
        if reserved in spec.labels:
            raise MetricDeclarationError(
                f"{spec.kind} {spec.name} cannot have a label named {reserved!r}: histograms and"
                " summaries use it"
            )
    if spec.multiprocess_mode not in GAUGE_MULTIPROCESS_MODES:
        raise MetricDeclarationError(
            f"invalid multiprocess_mode {spec.multiprocess_mode!r} on {spec.name}:"
            f" allowed {sorted(GAUGE_MULTIPROCESS_MODES)}"
        )
    if spec.buckets is not None and (not spec.buckets or list(spec.buckets) != sorted(set(spec.buckets))):
        raise MetricDeclarationError(
            f"buckets of {spec.name} must be distinct and increasing: {spec.buckets}"
        )


def declare(
    kind: str,
    name: str,
    description: str,
    labels: Iterable[str] = (),
    buckets: Sequence[float] | None = None,
    unit: str = "",
    multiprocess_mode: str = "livesum",
) -> Any:
    """Declare a metric process-wide and return its handle (the same one on every call).

    Raises:
        MetricDeclarationError: a bad name, or the name already declared differently.
    """
    if kind == "counter" and name.endswith("_total"):
        name = name[: -len("_total")]
    label_names = (labels,) if isinstance(labels, str) else tuple(labels)
    bucket_values = None if buckets is None else tuple(float(b) for b in buckets)
    if bucket_values and bucket_values[-1] == float("inf"):
        bucket_values = bucket_values[:-1]
    if unit:
        word = _unit_word(name, unit)
        if not name.endswith(f"_{word}"):
            name = f"{name}_{word}"  # OpenMetrics: the name ends with its unit
        unit = _UNITS.get(word, word)
    else:
        unit = next((u for suffix, u in _UNITS.items() if name.endswith(f"_{suffix}")), "")
    handle = declare_spec(
        MetricSpec(kind, name, description, label_names, bucket_values, unit, multiprocess_mode),
        buckets is not None,
    )
    # Registered now, as prometheus_client registers at declaration (the exposition lists the
    # families in that order); without labels, its one series exists at 0 from now on.
    create_at_zero(handle.spec, None if label_names else ())
    return handle


def _unit_word(name: str, unit: str) -> str:
    """The unit word of a declared ``unit`` (``seconds``; ``s`` and ``By`` are taken too)."""
    word = _UCUM_WORDS.get(unit, unit)
    if not re.match(r"^[a-z][a-z0-9_]*$", word) or word.endswith("_"):
        raise MetricDeclarationError(
            f"invalid unit {unit!r} on {name}: a lowercase word ending the name (seconds, bytes, ratio...)"
        )
    return word


def _snake(text: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", text).lower()


def _check_name(spec: MetricSpec) -> None:
    """Raise unless ``spec``'s exposed names pass ``promtool check metrics`` without a lint warning."""
    name, exposed = spec.name, spec.sample_name

    def refuse(why: str) -> None:
        raise MetricDeclarationError(f"metric name {exposed!r} ({spec.kind}): {why}")

    if ":" in name:
        refuse("':' is kept for recording rules; use '_'")
    if name.lower() != name:
        refuse(f"not snake_case; write {_snake(name)!r}")
    for suffix in _RESERVED_SUFFIXES:
        if name.endswith(suffix):
            if suffix == "_total":
                refuse(f"only counters end in _total; name the {spec.kind} without it")
            refuse(
                f"{suffix} is a suffix of the samples of histograms, counters or info metrics; choose another"
            )
    for index, part in enumerate(name.split("_")):
        base = _BASE_UNITS.get(part)
        prefix = next((p for p in _UNIT_PREFIXES if part.startswith(p) and part[len(p) :] in _BASE_UNITS), "")
        if prefix:
            base = _BASE_UNITS[part[len(prefix) :]]
        if base is not None and base != part:
            refuse(f"use the base unit {base!r} instead of {part!r} (record 0.25 seconds, not 250 ms)")
        if index and part in _ABBREVIATED_UNITS:
            refuse(f"{part!r} is an abbreviated unit; write it out (seconds, bytes...) or drop it")
    for word in _TYPE_WORDS:
        if f"_{word}_" in exposed or exposed.endswith(f"_{word}"):
            refuse(f"the name should not include its type {word!r}")


def declare_spec(spec: MetricSpec, check_buckets: bool = True) -> Any:
    """Declare ``spec`` process-wide; see :func:`declare`."""
    name, kind, label_names = spec.name, spec.kind, spec.labels
    with _DECLARE_LOCK:
        known = _DECLARED.get(name)
        if known is not None:
            if (known.kind, known.labels, known.multiprocess_mode) != (
                spec.kind,
                spec.labels,
                spec.multiprocess_mode,
            ) or (check_buckets and known.buckets != spec.buckets):
                raise MetricDeclarationError(
                    f"metric {name!r} is already declared as {known.kind} with labels {list(known.labels)}"
                    f" and buckets {known.buckets}; cannot redeclare it as {kind} with labels"
                    f" {list(label_names)} and buckets {spec.buckets}"
                    + (
                        f" (multiprocess_mode {known.multiprocess_mode!r}, not {spec.multiprocess_mode!r})"
                        if known.multiprocess_mode != spec.multiprocess_mode
                        else ""
                    )
                )
            return _HANDLES[name]
        _check_spec(spec)
        handle = _KINDS[kind](spec)
        _DECLARED[name] = spec
        _HANDLES[name] = handle
        return handle


class _Handle:
    """Shared machinery of the three handle kinds: label resolution, series cap, store rebinding."""

    __slots__ = ("_calls", "_store", "_zeroed", "spec")

    def __init__(self, spec: MetricSpec) -> None:
        self.spec = spec
        self._store: Store | None = None
        self._calls: dict[tuple[tuple[str, Any], ...], Any] = {}
        #: The label sets bound (so created at 0) in ``_store``: binding one again costs a lookup.
        self._zeroed: set[tuple[tuple[str, Any], ...]] = set()

    @property
    def name(self) -> str:
        """The name samples carry (``_total`` included for counters)."""
        return self.spec.sample_name

    @property
    def label_names(self) -> tuple[str, ...]:
        """The declared label names, in order."""
        return self.spec.labels

    def _child(self, labels: dict[str, Any]) -> Any:
        store = _state.STATE.store
        if store is not self._store:
            self._store, self._calls, self._zeroed = store, {}, set()
        key = tuple(labels.items())
        child = self._calls.get(key)
        if child is None:
            child = self._resolve(store, labels, key)
        return child

    def _bind(self, labels: dict[str, Any]) -> tuple[Any, Store]:
        """Create the series of ``labels`` at 0, as prometheus_client's ``labels()`` does.

        Returns its child in the current store when cached (for a bound handle to use at once,
        else None), and that store. Nothing is created for labels other than those declared, or
        unhashable: the first recording reports the mistake at its call site.
        """
        store = _state.STATE.store
        if store is not self._store:
            self._store, self._calls, self._zeroed = store, {}, set()
        calls, zeroed = self._calls, self._zeroed
        try:
            key = tuple(labels.items())
            if key in zeroed:
                return calls.get(key), store
        except TypeError:
            return None, store
        names = self.spec.labels
        if labels.keys() != set(names):
            return None, store
        create_at_zero(self.spec, tuple(label_value(labels[n]) for n in names))
        if len(zeroed) < store.series_cap * _CALL_CACHE_FACTOR:
            zeroed.add(key)
        return calls.get(key), store

    def _resolve(self, store: Store, labels: Mapping[str, Any], key: tuple[tuple[str, Any], ...]) -> Any:
        names = self.spec.labels
        extra = sorted(labels.keys() - set(names))
        missing = [n for n in names if n not in labels]
        if extra or missing:
            # Reported at every call site (once each), so not cached: the mistake's slow path.
            self._mistaken_labels(extra, missing)
        values = tuple(label_value(labels.get(n, "")) for n in names)
        child, overflowed = store.child(self.spec, values)
        if (
            not (extra or missing)
            and not overflowed
            and len(self._calls) < store.series_cap * _CALL_CACHE_FACTOR
        ):
            self._calls[key] = child
        return child

    def _mistaken_labels(self, extra: list[str], missing: list[str]) -> None:
        said, recorded = [], []
        if extra:
            said.append(f"{_names(extra)} not declared")
            recorded.append("without " + ("them" if len(extra) > 1 else "it"))
        if missing:
            said.append(f"{_names(missing)} not given")
            recorded.append("with " + ", ".join(f'{n}=""' for n in missing))
        declared = ", ".join(self.spec.labels) or "none"
        report_usage_error(
            f"{self.name}: {'; '.join(said)} (declared: {declared}); recorded {' and '.join(recorded)}"
        )

    def _failed(self, method: str, value: object, exc: Exception) -> None:
        """A recording raised: the caller's mistake (strict: raised again) or obskit's own."""
        if isinstance(exc, MetricUsageError):
            raise exc
        if not _is_number(value):
            report_usage_error(
                f"{self.name}.{method}({value!r}): the value must be a number, not"
                f" {type(value).__name__}; nothing recorded"
            )
        elif self.spec.kind == "counter" and value < 0:  # type: ignore[operator]
            report_usage_error(f"{self.name}.inc({value!r}): a counter only goes up; nothing recorded")
        else:
            report_internal_error(f"metric {self.name}", exc)

    def snapshot(self) -> list[dict[str, Any]]:
        """The current value of every series, sorted by labels: read in-process, for a status page.

        A counter's or gauge's series is ``{"labels": {...}, "value": v}``; a histogram's
        ``{"labels", "count", "sum", "buckets"}``, ``buckets`` the cumulative count per upper
        bound as the exposition writes it (``"+Inf"`` last). In Prometheus multi-process mode
        it merges every process's files, as a scrape does. A series exists from its first recording,
        or at 0 from its binding (``labels()``) or, without labels, from its declaration.
        Never raises: a failure is logged and gives ``[]``.
        """
        try:
            return _read_series(self.spec)
        except Exception as exc:
            report_internal_error(f"metric {self.name} snapshot", exc)
            return []

    def value(self, **labels: Any) -> float:
        """The sum over the series whose labels match ``labels`` (all series when none given).

        A histogram's value is its number of observations. A label name not declared is
        reported as your mistake (as when recording) and matches nothing.
        """
        unknown = sorted(labels.keys() - set(self.spec.labels))
        if unknown:
            declared = ", ".join(self.spec.labels) or "none"
            report_usage_error(f"{self.name}.value(): {_names(unknown)} not declared (declared: {declared})")
            return 0.0
        wanted = {k: label_value(v) for k, v in labels.items()}
        key = "count" if self.spec.kind == "histogram" else "value"
        return float(
            sum(
                series[key]
                for series in self.snapshot()
                if all(series["labels"].get(k) == v for k, v in wanted.items())
            )
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} labels={list(self.spec.labels)}>"


def _read_series(spec: MetricSpec) -> list[dict[str, Any]]:
    """``spec``'s series in the current store (every process's, merged, in multi-process mode)."""
    from prometheus_client import values

    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if getattr(values.ValueClass, "_multiprocess", False) and directory:
        from prometheus_client.multiprocess import MultiProcessCollector

        collected = MultiProcessCollector(None, directory).collect()  # type: ignore[no-untyped-call]
        family = next((f for f in collected if f.name == spec.name), None)
    else:
        metric = _state.STATE.store._metrics.get(spec.name)
        family = None if metric is None else next(iter(metric.collect()), None)
    return [] if family is None else family_series(family)


class _Bound:
    """A handle with its label values fixed: the cheapest way to record on a hot path."""

    __slots__ = ("_child", "_handle", "_labels", "_store")

    def __init__(self, handle: _Handle, labels: dict[str, Any]) -> None:
        self._handle = handle
        self._labels = labels
        self._store: Store | None = None
        # Its series exists at 0 from now on, as prometheus_client's labels() makes it: rate()
        # sees the first recording, and an alert on the series has one to compare.
        child, store = handle._bind(labels)
        self._child: Any = child
        if child is not None:  # bound to the current store's series at once
            self._store = store

    def _current(self) -> Any:
        if self._store is not _state.STATE.store:
            self._child = self._handle._child(self._labels)
            # An overflow child is not cached by the handle: stay unbound so that every recording
            # goes back through Store.child and is counted in obskit_telemetry_overflow_total.
            if tuple(self._labels.items()) in self._handle._calls:
                self._store = _state.STATE.store
        return self._child


class BoundCounter(_Bound):
    """A counter child with fixed labels (from :meth:`Counter.labels`)."""

    __slots__ = ("_adder",)

    def __init__(self, handle: _Handle, labels: dict[str, Any]) -> None:
        super().__init__(handle, labels)
        #: (child, value_adder(child)) for the child last used; read and replaced as one tuple.
        self._adder: tuple[Any, Callable[[float], None] | None] = (None, None)

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (>= 0)."""
        try:
            if self._store is not _state.STATE.store:
                self._current()
            if amount < 0:
                raise ValueError("a counter only goes up")
            child, add = self._adder
            if child is not self._child or add is None:
                child = self._child
                add = value_adder(child)
                self._adder = (child, add)
            add(amount)
        except Exception as exc:
            self._handle._failed("inc", amount, exc)


class BoundHistogram(_Bound):
    """A histogram child with fixed labels (from :meth:`Histogram.labels`)."""

    __slots__ = ("_observer",)

    def __init__(self, handle: _Handle, labels: dict[str, Any]) -> None:
        super().__init__(handle, labels)
        #: (child, histogram_observer(child)) for the child last used; read and replaced as one tuple.
        self._observer: tuple[Any, Callable[[float], None] | None] = (None, None)

    def observe(self, value: float) -> None:
        """Record one observation (with the current sampled span's ids as exemplar)."""
        try:
            state = _state.STATE
            if self._store is not state.store:
                self._current()
            child, record = self._observer
            if child is not self._child or record is None:
                child = self._child
                record = histogram_observer(child)
                self._observer = (child, record)
            # Outside any span (one lookup, nothing made) there is no exemplar to consider.
            if state.tracer is not None and state.store.exemplars and current_span() is not None:
                exemplar = exemplar_due(child, value, current_exemplar)
                if exemplar is not None:
                    child.observe(value, exemplar)
                    return
            record(value)
        except Exception as exc:
            self._handle._failed("observe", value, exc)


class BoundGauge(_Bound):
    """A gauge child with fixed labels (from :meth:`Gauge.labels`)."""

    __slots__ = ()

    def set(self, value: float) -> None:
        """Set the value."""
        try:
            if self._store is not _state.STATE.store:
                self._current()
            self._child.set(value)
        except Exception as exc:
            self._handle._failed("set", value, exc)

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount``."""
        try:
            if self._store is not _state.STATE.store:
                self._current()
            self._child.inc(amount)
        except Exception as exc:
            self._handle._failed("inc", amount, exc)

    def dec(self, amount: float = 1.0) -> None:
        """Subtract ``amount``."""
        try:
            if self._store is not _state.STATE.store:
                self._current()
            self._child.dec(amount)
        except Exception as exc:
            self._handle._failed("dec", amount, exc)


class Counter(_Handle):
    """A monotonic counter. Record with ``inc(amount, **labels)`` or a bound child."""

    __slots__ = ()

    def inc(self, amount: float = 1.0, **labels: Any) -> None:
        """Add ``amount`` (>= 0) to the series named by ``labels``."""
        try:
            self._child(labels).inc(amount)
        except Exception as exc:
            self._failed("inc", amount, exc)

    def labels(self, **labels: Any) -> BoundCounter:
        """A child with these label values fixed, for hot paths."""
        return BoundCounter(self, labels)


class Histogram(_Handle):
    """A histogram with explicit buckets. Record with ``observe(value, **labels)``."""

    __slots__ = ()

    def observe(self, value: float, **labels: Any) -> None:
        """Record one observation in the series named by ``labels``.

        Inside a sampled span (with obskit's tracing on) the span's ``trace_id`` and ``span_id``
        go with it as an exemplar, shown in the OpenMetrics exposition.
        """
        try:
            state = _state.STATE
            child = self._child(labels)
            if state.tracer is not None and state.store.exemplars and current_span() is not None:
                child.observe(value, exemplar_due(child, value, current_exemplar))
            else:
                child.observe(value)
        except Exception as exc:
            self._failed("observe", value, exc)

    def labels(self, **labels: Any) -> BoundHistogram:
        """A child with these label values fixed, for hot paths."""
        return BoundHistogram(self, labels)

    @contextmanager
    def time(self, **labels: Any) -> Iterator[None]:
        """Observe the seconds a block takes (exceptions included)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe(time.perf_counter() - start, **labels)


class Gauge(_Handle):
    """A value that goes up and down. Record with ``set``/``inc``/``dec``."""

    __slots__ = ()

    def set(self, value: float, **labels: Any) -> None:
        """Set the series named by ``labels`` to ``value``."""
        try:
            self._child(labels).set(value)
        except Exception as exc:
            self._failed("set", value, exc)

    def inc(self, amount: float = 1.0, **labels: Any) -> None:
        """Add ``amount`` to the series named by ``labels``."""
        try:
            self._child(labels).inc(amount)
        except Exception as exc:
            self._failed("inc", amount, exc)

    def dec(self, amount: float = 1.0, **labels: Any) -> None:
        """Subtract ``amount`` from the series named by ``labels``."""
        try:
            self._child(labels).dec(amount)
        except Exception as exc:
            self._failed("dec", amount, exc)

    def labels(self, **labels: Any) -> BoundGauge:
        """A child with these label values fixed, for hot paths."""
        return BoundGauge(self, labels)

    @contextmanager
    def track_inprogress(self, **labels: Any) -> Iterator[None]:
        """Add 1 while a block runs."""
        self.inc(1, **labels)
        try:
            yield
        finally:
            self.dec(1, **labels)


_KINDS: dict[str, Callable[[MetricSpec], _Handle]] = {
    "counter": Counter,
    "histogram": Histogram,
    "gauge": Gauge,
}


def _names(labels: list[str]) -> str:
    return ("labels " if len(labels) > 1 else "label ") + ", ".join(map(repr, labels))


def _is_number(value: object) -> bool:
    import numbers  # only a failed recording asks: 0.2 ms of start-up otherwise

    return isinstance(value, numbers.Real)
