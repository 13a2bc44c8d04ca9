"""The fast metric store: declared instruments recorded into prometheus_client's native metrics.

A :class:`Store` owns one ``CollectorRegistry``. Handles (:class:`~obskit._recording.handles.Counter`,
``Histogram``, ``Gauge``, in :mod:`obskit._recording.handles`, imported on first use) are declared
once, process-wide, and resolve their prometheus_client metric in whatever store is current when
they record, so a handle made at import time keeps working after ``configure()`` and inside
``obskit.testing.capture()``.

Why prometheus_client and not OpenTelemetry SDK instruments: see docs/metrics.md and docs/performance.md.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge as PromGauge
from prometheus_client import Histogram as PromHistogram
from prometheus_client.metrics import MetricWrapperBase

from obskit._core import state as _state
from obskit._core.errors import MetricDeclarationError, report_internal_error
from obskit._core.frozen import frozen_dataclass
from obskit._core.redact import Redactor, safe_text, safe_value
from obskit._core.settings import Settings

__all__ = [
    "OVERFLOW_LABEL_VALUE",
    "MetricSpec",
    "Store",
    "count_dropped",
    "create_at_zero",
    "recreate_at_zero",
    "set_exponential",
    "set_family_buckets",
]

OVERFLOW_LABEL_VALUE: Final = "__overflow__"
OVERFLOW_METRIC: Final = "obskit_telemetry_overflow"
DROPPED_METRIC: Final = "obskit_telemetry_dropped"
#: prometheus_client's default buckets, for a histogram declared without any.
DEFAULT_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Unit words (the name's suffix, OpenMetrics' ``# UNIT``) and the unit OpenTelemetry exports get.
_UNITS = {"seconds": "s", "bytes": "By", "ratio": "1"}
_F = TypeVar("_F", bound=Callable[..., Any])


@frozen_dataclass()  # a frozen dataclass, its methods not compiled at import
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
        if self.create(spec, values):
            return series[values], False
        self.count_overflow(spec.sample_name)
        overflow = (OVERFLOW_LABEL_VALUE,) * len(spec.labels)
        return series_child(spec, overflow, metric.labels(*overflow)), True

    def create(self, spec: MetricSpec, values: tuple[str, ...]) -> bool:
        """Create the series of ``values`` at 0 unless it exists; whether it exists now.

        As prometheus_client's ``labels()`` does, but never past the series cap: no overflow
        series is made and nothing is counted (the first recording past the cap is).
        """
        metric = self.metric(spec)
        if not spec.labels:
            return True
        series = self._series[spec.name]
        if values not in series:
            with self._lock:
                if values not in series and len(series) < self.series_cap:
                    series[values] = series_child(spec, values, metric.labels(*map(label_value, values)))
        return values in series

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


_DECLARE_LOCK = threading.Lock()


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


#: The series created at 0 ahead of their first recording (a bound handle's, an unlabelled metric
#: declared), by metric name: each store that replaces the process's own creates them again (a
#: forked child's; the multi-process one of ``configure()``), as prometheus_client's registry
#: keeps its children. At most a series cap's worth per metric.
_AT_ZERO: dict[str, tuple[MetricSpec, dict[tuple[str, ...], None]]] = {}


def create_at_zero(spec: MetricSpec, values: tuple[str, ...] | None) -> None:
    """Create the series ``values`` of ``spec`` at 0 in the current store and in those replacing it.

    With ``values`` None, only the metric (its family, no series). Never raises: a failure is
    logged (the first recording creates the series anyway).
    """
    try:
        store = _state.STATE.store
        if values is None:
            store.metric(spec)
        elif store.create(spec, values):
            # No lock (each step is one under the GIL; a race may pass the cap by a few), so none
            # that a forked child could inherit held.
            known = _AT_ZERO.get(spec.name) or _AT_ZERO.setdefault(spec.name, (spec, {}))
            if values not in known[1] and len(known[1]) < store.series_cap:
                known[1][values] = None
    except Exception as exc:
        report_internal_error(f"metric {spec.sample_name} at 0", exc)


def recreate_at_zero(store: Store) -> None:
    """Create in ``store`` (replacing the process's own) every series created at 0 so far.

    ``list()`` of a dict is one step under the GIL, so no lock is needed. Never raises: a failure
    is logged.
    """
    try:
        for spec, series in list(_AT_ZERO.values()):
            for values in list(series):
                store.create(spec, values)
    except Exception as exc:
        report_internal_error("metric series at 0 in a new store", exc)


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
