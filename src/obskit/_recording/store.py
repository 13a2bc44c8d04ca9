"""The fast metric store: declared instruments recorded into prometheus_client's native metrics.

A :class:`Store` owns one ``CollectorRegistry``. Handles (:class:`Counter`, :class:`Histogram`,
:class:`Gauge`) are declared once, process-wide, and resolve their prometheus_client metric in
whatever store is current when they record, so a handle made at import time keeps working
after ``configure()`` and inside ``obskit.testing.capture()``.

Why prometheus_client and not OpenTelemetry SDK instruments: see docs/metrics.md and docs/performance.md.
"""

from __future__ import annotations

import dataclasses
import numbers
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
from obskit._recording.exemplars import current_exemplar, exemplar_due

__all__ = [
    "OVERFLOW_LABEL_VALUE",
    "Counter",
    "Gauge",
    "Histogram",
    "MetricSpec",
    "Store",
    "declare",
    "declare_spec",
]

OVERFLOW_LABEL_VALUE: Final = "__overflow__"
OVERFLOW_METRIC: Final = "obskit_telemetry_overflow"
DROPPED_METRIC: Final = "obskit_telemetry_dropped"
DEFAULT_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_UNITS = {"seconds": "s", "bytes": "By", "ratio": "1", "milliseconds": "ms"}
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
            return metric, False
        series = self._series[spec.name]
        child = series.get(values)
        if child is not None:
            return child, False
        with self._lock:
            child = series.get(values)
            if child is None and len(series) < self.series_cap:
                child = series[values] = metric.labels(*map(label_value, values))
        if child is None:
            self.count_overflow(spec.sample_name)
            return metric.labels(*([OVERFLOW_LABEL_VALUE] * len(spec.labels))), True
        return child, False

    def count_overflow(self, sample_name: str) -> None:
        """Add one to ``obskit_telemetry_overflow_total{metric=sample_name}``."""
        self._overflow.labels(sample_name).inc()

    def series_count(self, spec: MetricSpec) -> int:
        """How many series ``spec`` has in this store, overflow excluded."""
        return len(self._series.get(spec.name, ()))


def _create(spec: MetricSpec, registry: CollectorRegistry) -> MetricWrapperBase:
    if spec.kind == "counter":
        return PromCounter(spec.name, spec.description, spec.labels, registry=registry)
    if spec.kind == "histogram":
        return PromHistogram(
            spec.name,
            spec.description,
            spec.labels,
            registry=registry,
            buckets=spec.buckets or DEFAULT_BUCKETS,
        )
    return PromGauge(
        spec.name,
        spec.description,
        spec.labels,
        registry=registry,
        multiprocess_mode=spec.multiprocess_mode,  # type: ignore[arg-type]
    )


_DECLARED: dict[str, MetricSpec] = {}
_HANDLES: dict[str, _Handle] = {}
_DECLARE_LOCK = threading.Lock()


def _check_spec(spec: MetricSpec) -> None:
    if not _NAME.match(spec.name) or spec.name.startswith("__"):
        raise MetricDeclarationError(f"invalid metric name {spec.name!r}: allowed [a-zA-Z_:][a-zA-Z0-9_:]*")
    for label in spec.labels:
        if not _LABEL.match(label) or label.startswith("__"):
            raise MetricDeclarationError(
                f"invalid label name {label!r} on {spec.name}: allowed [a-zA-Z_][a-zA-Z0-9_]*, no leading __"
            )
    if len(set(spec.labels)) != len(spec.labels):
        raise MetricDeclarationError(f"duplicate label names on {spec.name}: {spec.labels}")
    if spec.kind == "histogram" and "le" in spec.labels:
        raise MetricDeclarationError(f"histogram {spec.name} cannot have a label named 'le'")
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
    if not unit:
        unit = next((u for suffix, u in _UNITS.items() if name.endswith(f"_{suffix}")), "")
    return declare_spec(
        MetricSpec(kind, name, description, label_names, bucket_values, unit, multiprocess_mode),
        buckets is not None,
    )


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

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} labels={list(self.spec.labels)}>"


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

    __slots__ = ()

    def observe(self, value: float) -> None:
        """Record one observation (with the current sampled span's ids as exemplar)."""
        try:
            state = _state.STATE
            if self._store is not state.store:
                self._current()
            child = self._child
            if state.tracer is not None and state.store.exemplars:
                child.observe(value, exemplar_due(child, value, current_exemplar))
            else:
                child.observe(value)
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
            if state.tracer is not None and state.store.exemplars:
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
