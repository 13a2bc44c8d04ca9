"""The fast metric store: declared instruments recorded into prometheus_client's native metrics.

A :class:`Store` owns one ``CollectorRegistry``. Handles (:class:`Counter`, :class:`Histogram`,
:class:`Gauge`) are declared once, process-wide, and resolve their prometheus_client metric in
whatever store is current when they record, so a handle made at import time keeps working
after ``configure()`` and inside ``obskit.testing.capture()``.

Why prometheus_client and not OpenTelemetry SDK instruments: see docs/metrics.md and docs/performance.md.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge as PromGauge
from prometheus_client import Histogram as PromHistogram
from prometheus_client.metrics import MetricWrapperBase

from obskit._core import state as _state
from obskit._core.errors import (
    MetricDeclarationError,
    MetricUsageError,
    report_internal_error,
    report_usage_error,
)
from obskit._core.redact import Redactor, safe_text, safe_value
from obskit._core.settings import Settings
from obskit._recording.exemplars import current_exemplar, current_span, exemplar_due, histogram_observer

__all__ = [
    "OVERFLOW_LABEL_VALUE",
    "Counter",
    "Gauge",
    "Histogram",
    "MetricSpec",
    "Store",
    "declare",
    "declare_spec",
    "set_exponential",
    "set_family_buckets",
]

OVERFLOW_LABEL_VALUE: Final = "__overflow__"
OVERFLOW_METRIC: Final = "obskit_telemetry_overflow"
DROPPED_METRIC: Final = "obskit_telemetry_dropped"
#: prometheus_client's default buckets, for a histogram declared without any.
DEFAULT_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
#: Unit words (the name's suffix, OpenMetrics' ``# UNIT``) and the unit OpenTelemetry exports get.
_UNITS = {"seconds": "s", "bytes": "By", "ratio": "1"}
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
_F = TypeVar("_F", bound=Callable[..., Any])


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """What a metric is: kind, name (without ``_total`` for counters), help text, labels, buckets."""

    kind: str
    name: str
    description: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] | None = None
    unit: str = ""
    #: Gauges only: how workers' values combine in Prometheus multi-process mode.
    multiprocess_mode: str = "livesum"
    #: obskit's own histograms: the key of their buckets in the ``histogram_buckets`` setting.
    family: str = ""

    @property
    def sample_name(self) -> str:
        """The name samples carry: ``<name>_total`` for counters, the name otherwise."""
        return f"{self.name}_total" if self.kind == "counter" else self.name


class Store:
    """One registry of prometheus_client metrics with a series cap per metric."""

    #: Whether histograms recorded inside a sampled span carry its ids as an exemplar. Only the
    #: Prometheus backend serves exemplars (OpenMetrics), so only it turns them on, costing about
    #: 1.2 µs per traced observation; never in multi-process mode, whose files cannot hold them.
    exemplars = False

    def __init__(self, series_cap: int = 2000, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.series_cap = series_cap
        self._metrics: dict[str, MetricWrapperBase] = {}
        self._specs: dict[str, MetricSpec] = {}
        self._series: dict[str, dict[tuple[str, ...], Any]] = {}
        self._lock = threading.Lock()
        self._overflow = PromCounter(
            OVERFLOW_METRIC,
            "Recordings folded into the overflow series because a metric reached its series cap.",
            ["metric"],
            registry=self.registry,
        )
        self.dropped = PromCounter(
            DROPPED_METRIC,
            "Telemetry items not delivered, by signal (traces|metrics|logs) and reason.",
            ["signal", "reason"],
            registry=self.registry,
        )

    def metric(self, spec: MetricSpec) -> MetricWrapperBase:
        """The prometheus_client metric for ``spec`` in this store, created on first use."""
        try:
            return self._metrics[spec.name]
        except KeyError:
            with self._lock:
                if spec.name not in self._metrics:
                    spec = _configured(spec)
                    self._metrics[spec.name] = _create(spec, self.registry)
                    self._specs[spec.name] = spec
                    self._series[spec.name] = {}
                return self._metrics[spec.name]

    def live_spec(self, spec: MetricSpec) -> MetricSpec:
        """The spec this store holds under ``spec.name`` (creating the metric from ``spec`` if new)."""
        self.metric(spec)
        return self._specs[spec.name]

    def specs(self) -> list[MetricSpec]:
        """Every metric spec created in this store."""
        return list(self._specs.values())

    def child(self, spec: MetricSpec, values: tuple[str, ...]) -> tuple[Any, bool]:
        """The child for ``values`` and False, or the overflow child and True past the series cap.

        Each recording that lands in the overflow series must come back here, so that
        ``obskit_telemetry_overflow_total`` counts it.
        """
        metric = self.metric(spec)
        if not spec.labels:
            if _EXPONENTIAL is None or spec.kind != "histogram":
                return metric, False
            series = self._series[spec.name]
            child = series.get(())
            if child is None:
                with self._lock:
                    child = series.setdefault((), _also_exponential(spec, (), metric))
            return child, False
        series = self._series[spec.name]
        child = series.get(values)
        if child is not None:
            return child, False
        with self._lock:
            child = series.get(values)
            if child is None and len(series) < self.series_cap:
                child = metric.labels(*map(label_value, values))
                if _EXPONENTIAL is not None and spec.kind == "histogram":
                    child = _also_exponential(spec, values, child)
                series[values] = child
        if child is None:
            self.count_overflow(spec.sample_name)
            overflow = (OVERFLOW_LABEL_VALUE,) * len(spec.labels)
            child = metric.labels(*overflow)
            if _EXPONENTIAL is not None and spec.kind == "histogram":
                child = _also_exponential(spec, overflow, child)
            return child, True
        return child, False

    def count_overflow(self, sample_name: str) -> None:
        """Add one to ``obskit_telemetry_overflow_total{metric=sample_name}``."""
        self._overflow.labels(sample_name).inc()

    def series_count(self, spec: MetricSpec) -> int:
        """How many series ``spec`` has in this store, overflow excluded."""
        return len(self._series.get(spec.name, ())) if spec.labels else 0


#: Where histograms also record each observation when OTLP exports exponential histograms
#: (``exponential_histograms``): given a spec and label values, the function recording one
#: observation of that series. None (the default) costs nothing.
_EXPONENTIAL: Callable[[MetricSpec, tuple[str, ...]], Callable[[float], None]] | None = None


def set_exponential(hook: Callable[[MetricSpec, tuple[str, ...]], Callable[[float], None]] | None) -> None:
    """Make histogram series created from now on also record into ``hook``'s recorders (None: stop)."""
    global _EXPONENTIAL
    _EXPONENTIAL = hook


class _AlsoExponential:
    """A prometheus_client histogram child that also records each observation elsewhere.

    The Prometheus buckets stay as declared; the exponential histogram is what OTLP receives.
    Anything else (the exemplar bookkeeping reads ``_upper_bounds``) is the child's.
    """

    def __init__(self, child: Any, record: Callable[[float], None]) -> None:
        self._child = child
        self._record = record

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        """Observe ``amount`` in both."""
        self._child.observe(amount, exemplar)
        self._record(amount)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._child, name)


def _also_exponential(spec: MetricSpec, values: tuple[str, ...], child: Any) -> Any:
    hook = _EXPONENTIAL
    return child if hook is None else _AlsoExponential(child, hook(spec, values))


#: Buckets of obskit's histogram families given to ``MetricsCollector(buckets=...)``, by family.
_FAMILY_BUCKETS: dict[str, tuple[float, ...]] = {}


def set_family_buckets(buckets: Mapping[str, tuple[float, ...]]) -> None:
    """Set the buckets of obskit's histogram families (``MetricsCollector(buckets=...)``), process-wide.

    They apply to the families' metrics created from then on (each store creates a metric at its
    first recording); the ``histogram_buckets`` setting wins over them.

    Raises:
        MetricDeclarationError: a family already given other buckets.
    """
    with _DECLARE_LOCK:
        for family, bounds in buckets.items():
            known = _FAMILY_BUCKETS.get(family)
            if known is not None and known != bounds:
                raise MetricDeclarationError(
                    f"the buckets of the {family!r} family are already {list(known)}; cannot set them to"
                    f" {list(bounds)}"
                )
        _FAMILY_BUCKETS.update(buckets)


def _configured(spec: MetricSpec) -> MetricSpec:
    """``spec`` with the buckets the settings (or ``MetricsCollector(buckets=...)``) give its family."""
    if not spec.family:
        return spec
    buckets = _state.STATE.settings.histogram_buckets.get(spec.family) or _FAMILY_BUCKETS.get(spec.family)
    return dataclasses.replace(spec, buckets=buckets) if buckets else spec


def unit_word(spec: MetricSpec) -> str:
    """The unit word ``spec``'s name ends with (OpenMetrics' ``# UNIT``), or ``""``."""
    words = [w for w, ucum in _UNITS.items() if ucum == spec.unit] or [spec.unit]
    return next((w for w in words if w and spec.name.endswith(f"_{w}")), "")


class _ExtremesHistogram(PromHistogram):
    """A histogram whose children also keep the least and greatest value observed since last taken.

    prometheus_client keeps no min or max; Application Insights charts them. Used only while an
    exporter wants them (:func:`want_extremes`), so other set-ups pay nothing. The common case
    (a value inside the extremes already seen) costs two comparisons; a new extreme takes a lock,
    so that concurrent observations never lose one.
    """

    def _metric_init(self) -> None:
        super()._metric_init()
        self._extremes_lock = threading.Lock()
        self._low = math.inf
        self._high = -math.inf

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        super().observe(amount, exemplar)
        if amount < self._low or amount > self._high:
            with self._extremes_lock:
                if amount < self._low:
                    self._low = amount
                if amount > self._high:
                    self._high = amount

    def take_extremes(self) -> tuple[float, float] | None:
        """The (min, max) observed since the last call, or None if nothing was; then start over."""
        with self._extremes_lock:
            low, high = self._low, self._high
            self._low, self._high = math.inf, -math.inf
        return (low, high) if low <= high else None


class _Extremes:
    """How many exporters want histogram min/max; histograms created meanwhile track them."""

    users = 0
    lock = threading.Lock()


def want_extremes(wanted: bool = True) -> None:
    """Count (or, with False, uncount) an exporter that sends histogram min and max.

    Histograms created while at least one is counted keep their extremes (:func:`take_extremes`);
    those created before do not, and their points carry no min/max.
    """
    with _Extremes.lock:
        _Extremes.users = max(0, _Extremes.users + (1 if wanted else -1))


def take_extremes(
    registry: CollectorRegistry,
) -> dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, float]]:
    """Min and max of each histogram series in ``registry`` since the last call, keyed like samples.

    The key is the family name and the series' labels, sorted. Series with no observation since
    the last call are left out. Taking resets them: one exporter (the delta one) takes them.
    """
    found: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, float]] = {}
    collectors = list(getattr(registry, "_collector_to_names", {}))
    # A collector showing several metrics as one family (the jobs families) lists them in parts().
    collectors += [part for c in collectors for part in getattr(c, "parts", tuple)()]
    for metric in collectors:
        if not isinstance(metric, _ExtremesHistogram):
            continue
        names = metric._labelnames
        if not names:
            taken = metric.take_extremes()
            if taken is not None:
                found[(metric._name, ())] = taken
            continue
        with metric._lock:
            children: list[tuple[Sequence[str], Any]] = list(metric._metrics.items())
        for values, child in children:
            taken = child.take_extremes()
            if taken is not None:
                found[(metric._name, tuple(sorted(zip(names, values, strict=True))))] = taken
    return found


def unregistered_metric(spec: MetricSpec) -> tuple[MetricSpec, MetricWrapperBase]:
    """``spec`` with its family's configured buckets, and its metric as a store makes it, unregistered.

    For a collector that shows several metrics as one family (the jobs families).
    """
    spec = _configured(spec)
    return spec, _create(spec, None)


def series_child(spec: MetricSpec, values: tuple[str, ...], child: Any) -> Any:
    """``child`` as :meth:`Store.child` hands it out: a histogram's also records exponentially when asked."""
    return _also_exponential(spec, values, child) if spec.kind == "histogram" else child


def _create(spec: MetricSpec, registry: CollectorRegistry | None) -> MetricWrapperBase:
    unit = unit_word(spec)
    if spec.kind == "counter":
        return PromCounter(spec.name, spec.description, spec.labels, registry=registry, unit=unit)
    if spec.kind == "histogram":
        return (_ExtremesHistogram if _Extremes.users else PromHistogram)(
            spec.name,
            spec.description,
            spec.labels,
            registry=registry,
            buckets=spec.buckets or DEFAULT_BUCKETS,
            unit=unit,
        )
    return PromGauge(
        spec.name,
        spec.description,
        spec.labels,
        registry=registry,
        unit=unit,
        multiprocess_mode=spec.multiprocess_mode,  # type: ignore[arg-type]
    )


_DECLARED: dict[str, MetricSpec] = {}
_HANDLES: dict[str, _Handle] = {}
_DECLARE_LOCK = threading.Lock()


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
    return declare_spec(
        MetricSpec(kind, name, description, label_names, bucket_values, unit, multiprocess_mode),
        buckets is not None,
    )


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

    __slots__ = ("_calls", "_store", "spec")

    def __init__(self, spec: MetricSpec) -> None:
        self.spec = spec
        self._store: Store | None = None
        self._calls: dict[tuple[tuple[str, Any], ...], Any] = {}

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
            self._store, self._calls = store, {}
        key = tuple(labels.items())
        child = self._calls.get(key)
        if child is None:
            child = self._resolve(store, labels, key)
        return child

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
        it merges every process's files, as a scrape does. Empty before the first recording.
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


def family_series(family: Any) -> list[dict[str, Any]]:
    """A prometheus_client family's series as plain dicts, sorted by labels; ``_created`` left out.

    A counter's or gauge's series is ``{"labels", "value"}``; a histogram's ``{"labels",
    "count", "sum", "buckets"}``, ``buckets`` the cumulative count per upper bound (``"+Inf"``
    last), as the exposition writes them.
    """
    histogram = family.type == "histogram"
    series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for sample in family.samples:
        suffix = sample.name[len(family.name) :]
        labels = {k: v for k, v in sample.labels.items() if k != "le"}
        entry = series.setdefault(tuple(sorted(labels.items())), {"labels": labels})
        if histogram:
            if suffix == "_bucket":
                entry.setdefault("buckets", {})[sample.labels["le"]] = sample.value
            elif suffix in ("_count", "_sum"):
                entry[suffix[1:]] = sample.value
        elif suffix in ("", "_total"):
            entry["value"] = sample.value
    return [series[key] for key in sorted(series)]


def label_value(value: Any) -> str:
    r"""``value`` as a label value that every exposition and exporter can take.

    Applied where a series is created (so it costs nothing on a series seen before): a lone
    surrogate becomes its ``\udXXX`` escape (``/metrics`` and pushes are encoded as UTF-8), a
    non-str its ``str()``, or ``[unrenderable Type]`` when that raises. Label values are not
    scrubbed for credentials as free text is: they identify series (``/oauth/token:revoke`` is a
    route), and a label's values are declared data, not messages.
    """
    if value.__class__ is str:
        return safe_text(value)
    text = safe_value(value)
    return text if text.__class__ is str else str(text)


class _Bound:
    """A handle with its label values fixed: the cheapest way to record on a hot path."""

    __slots__ = ("_child", "_handle", "_labels", "_store")

    def __init__(self, handle: _Handle, labels: dict[str, Any]) -> None:
        self._handle = handle
        self._labels = labels
        self._store: Store | None = None
        self._child: Any = None

    def _current(self) -> Any:
        if self._store is not _state.STATE.store:
            self._child = self._handle._child(self._labels)
            # An overflow child is not cached by the handle: stay unbound so that every recording
            # goes back through Store.child and is counted in obskit_telemetry_overflow_total.
            if tuple(self._labels.items()) in self._handle._calls:
                self._store = _state.STATE.store
        return self._child


#: prometheus_client's own methods, as imported: :func:`value_adder` shortcuts only these.
_PROM_COUNTER_INC, _PROM_GAUGE_INC, _PROM_GAUGE_DEC = PromCounter.inc, PromGauge.inc, PromGauge.dec


def value_adder(child: Any) -> Callable[[float], None]:
    """A function adding its argument to a counter or gauge child, as cheaply as possible.

    prometheus_client's ``inc``/``dec`` check on every call that the metric is a labelled child,
    a counter's sign and a gauge's mode, then add to the child's value object. For a resolved
    child those checks cannot fail (callers check a counter's sign themselves), and calling the
    value's ``inc`` directly saves three Python calls per update, a third of what a job costs
    when tracing is off (docs/performance.md). The shortcut is taken only when the child's class
    has prometheus_client's own methods (not a subclass's, a wrapper's or a test double's) and
    the value object looks as expected; otherwise it is the public ``inc``.
    """
    cls = type(child)
    own = cls.inc is _PROM_COUNTER_INC or (cls.inc is _PROM_GAUGE_INC and cls.dec is _PROM_GAUGE_DEC)
    value_inc = getattr(getattr(child, "_value", None), "inc", None)
    if own and callable(value_inc) and not getattr(child, "_is_most_recent", False):
        return value_inc  # type: ignore[no-any-return]
    return child.inc  # type: ignore[no-any-return]


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
    return isinstance(value, numbers.Real)


def count_dropped(signal: str, reason: str, count: int = 1) -> None:
    """Add to ``obskit_telemetry_dropped_total{signal, reason}`` in the current store."""
    if count > 0:
        try:
            _state.STATE.store.dropped.labels(signal, reason).inc(count)
        except Exception as exc:  # pragma: no cover - prometheus_client failing on a plain inc
            report_internal_error("count_dropped", exc)


def _initial_state() -> None:
    """Install the first :data:`obskit._core.state.STATE`: default settings, this empty store."""
    settings = Settings()
    # Assigned, not set_state(): there is no state before this one to hand back.
    _state.STATE = _state.State(
        settings=settings, store=Store(series_cap=settings.series_cap), redactor=Redactor()
    )


_initial_state()
