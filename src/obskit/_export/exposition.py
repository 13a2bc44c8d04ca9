"""The Prometheus text format (0.0.4) of obskit's store, written as prometheus_client writes it.

prometheus_client's ``generate_latest`` builds a sample object and a label dict for every line,
then sorts, validates and escapes each label of each line again at every scrape; and obskit,
which leaves out the ``<name>_created`` samples (``prometheus_created=False``), would then copy
every family to drop them. Here the text of a series' labels is made once, when the series is
first scraped, and each scrape only reads the values and formats the numbers: the same bytes, at
a fraction of the cost.

Only prometheus_client's own Counter, Gauge and Histogram (or subclasses that keep how they
report their samples) are written here, and only with legacy metric and label names; any other
collector in the registry is written by ``generate_latest`` itself, so the answer is always what
prometheus_client would have written.
"""

from __future__ import annotations

import copy
import re
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge as PromGauge
from prometheus_client import Histogram as PromHistogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString as _go_float

__all__ = ["text_format", "without_created"]

#: A number as prometheus_client writes it (``+Inf``, ``1e+06``, ...).
_number: Callable[[float], str] = _go_float

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
#: What a series' labels are made of: (name, value) pairs, as prometheus_client gives them.
_Pairs = list[tuple[str, str]]
#: The methods through which a prometheus_client metric reports its samples; a class that
#: replaces any of them is written by ``generate_latest``.
_SAMPLE_METHODS = ("collect", "_samples", "_multi_samples", "_child_samples", "_get_metric", "_is_parent")


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(pairs: _Pairs) -> str:
    """``{a="x",b="y"}`` with the names sorted (as ``generate_latest`` does), or nothing."""
    if not pairs:
        return ""
    return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in sorted(pairs)) + "}"


def _head(name: str, documentation: str, kind: str) -> str:
    text = documentation.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {text}\n# TYPE {name} {kind}\n"


class _Family:
    """One metric's cached text: its HELP/TYPE lines and each series' line starts."""

    __slots__ = ("head", "kind", "labelnames", "name", "series")

    def __init__(self, metric: MetricWrapperBase, kind: str) -> None:
        self.kind = kind
        self.name: str = metric._name
        self.labelnames: tuple[str, ...] = tuple(metric._labelnames)
        exposed = f"{self.name}_total" if kind == "counter" else self.name
        self.head = _head(exposed, metric._documentation, kind)
        #: label values -> the starts of that series' lines (one per bucket, count, sum for a histogram).
        self.series: dict[tuple[str, ...], tuple[str, ...]] = {}

    def starts(self, values: tuple[str, ...], child: Any) -> tuple[str, ...]:
        """The text before each value of the series ``values``, made on its first scrape."""
        found = self.series.get(values)
        if found is None:
            found = self.series[values] = self._make(list(zip(self.labelnames, values, strict=True)), child)
        return found

    def _make(self, pairs: _Pairs, child: Any) -> tuple[str, ...]:
        name = self.name
        if self.kind == "counter":
            return (f"{name}_total{_labels(pairs)} ",)
        if self.kind == "gauge":
            return (f"{name}{_labels(pairs)} ",)
        bounds = child._upper_bounds
        starts = [f"{name}_bucket{_labels([*pairs, ('le', _number(b))])} " for b in bounds]
        starts.append(f"{name}_count{_labels(pairs)} ")
        if bounds[0] >= 0:
            starts.append(f"{name}_sum{_labels(pairs)} ")
        return tuple(starts)


def _kind(metric: object) -> str | None:
    """counter, gauge or histogram for a metric written here, else None."""
    cls = type(metric)
    for base, kind in ((PromCounter, "counter"), (PromGauge, "gauge"), (PromHistogram, "histogram")):
        if isinstance(metric, base):
            if all(getattr(cls, m) is getattr(base, m) for m in _SAMPLE_METHODS):
                return kind
            return None
    return None


#: Each metric's cached text, for as long as the metric lives (a new store, new metrics).
_FAMILIES: weakref.WeakKeyDictionary[Any, _Family | None] = weakref.WeakKeyDictionary()


def _family(metric: Any) -> _Family | None:
    try:
        return _FAMILIES[metric]
    except KeyError:
        pass
    except TypeError:  # a collector that takes no weak reference: generate_latest writes it
        return None
    family: _Family | None = None
    kind = _kind(metric)
    if (
        kind is not None
        and not metric._labelvalues  # a child registered by itself: prometheus_client never does
        and _METRIC_NAME.match(metric._name)
        and all(_LABEL_NAME.match(n) for n in metric._labelnames)
    ):
        family = _Family(metric, kind)
    _FAMILIES[metric] = family
    return family


def _children(metric: Any) -> list[tuple[tuple[str, ...], Any]]:
    if not metric._labelnames:
        return [((), metric)]
    with metric._lock:
        return list(metric._metrics.items())


def _write(family: _Family, metric: Any, out: list[str]) -> bool:
    """Append the family's text to ``out``; False (nothing appended) when a series is not plain."""
    lines = [family.head]
    kind = family.kind
    children = _children(metric)
    if len(family.series) > 2 * len(children) + 1024:  # many series removed since: start over
        family.series.clear()
    for values, child in children:
        if kind == "histogram":
            starts = family.starts(values, child)
            total = 0.0
            buckets = child._buckets
            for i in range(len(buckets)):
                total += buckets[i].get()
                lines.append(f"{starts[i]}{_number(total)}\n")
            lines.append(f"{starts[len(buckets)]}{_number(total)}\n")
            if len(starts) > len(buckets) + 1:
                lines.append(f"{starts[-1]}{_number(child._sum.get())}\n")
        else:
            if "_child_samples" in child.__dict__:  # Gauge.set_function: its own samples
                return False
            lines.append(f"{family.starts(values, child)[0]}{_number(child._value.get())}\n")
    out.extend(lines)
    return True


class _Collected:
    """A registry-like holder of families already collected, for ``generate_latest``."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def without_created(families: Iterable[Metric]) -> Iterable[Metric]:
    """``families`` without their ``<name>_created`` samples (the ``prometheus_created`` setting).

    prometheus_client writes one per counter and histogram series, and only switches them off
    for every registry of the process at once (``disable_created_metrics()``), which would also
    take the start times that the OTLP and Azure exports read from the same registry. So they
    are left out where the scrape and the push read, and nowhere else.
    """
    for family in families:
        if family.type in ("counter", "histogram", "gaugehistogram", "summary"):
            created = f"{family.name}_created"
            if any(sample.name == created for sample in family.samples):
                family = copy.copy(family)
                family.samples = [sample for sample in family.samples if sample.name != created]
        yield family


def text_format(registry: CollectorRegistry) -> bytes:
    """``generate_latest(registry)``'s bytes without the ``<name>_created`` samples."""
    if getattr(registry, "_target_info", None):
        return generate_latest(_Collected(without_created(registry.collect())))
    with registry._lock:
        collectors = list(registry._collector_to_names)
    out: list[str] = []
    for collector in collectors:
        family = _family(collector)
        if family is None or not _write(family, collector, out):
            out.append(generate_latest(_Collected(without_created(collector.collect()))).decode("utf-8"))
    return "".join(out).encode("utf-8")
