"""Prometheus scrapes of obskit's store, written as prometheus_client writes them.

prometheus_client's ``generate_latest`` builds a sample object and a label dict for every line,
then sorts, validates and escapes each label of each line again at every scrape; and obskit,
which leaves out the ``<name>_created`` samples (``prometheus_created=False``), would then copy
every family to drop them. Here the text of a series' labels is made once, when the series is
first scraped, and each scrape only reads the values (and exemplars) and formats the numbers:
the same bytes, at a fraction of the cost. Both formats a Prometheus server asks for are written
so: the text format (0.0.4) and OpenMetrics 1.0.0.

Only prometheus_client's own Counter, Gauge and Histogram (or subclasses that keep how they
report their samples) are written here, and only with plain metric and label names; any other
collector in the registry is written by prometheus_client itself. Before its first answer in a
format, the writer checks that it gives the installed prometheus_client's bytes for a registry
holding every case it writes; if not (or if the check fails, a private attribute gone say),
prometheus_client writes that format from then on. Checked against prometheus_client 0.20 to 0.26.
"""

from __future__ import annotations

import copy
import math
import re
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge as PromGauge
from prometheus_client import Histogram as PromHistogram
from prometheus_client import values as prometheus_values
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.utils import floatToGoString as _go_float

__all__ = ["without_created", "write", "written_format"]

#: A number as prometheus_client writes it (``+Inf``, ``1e+06``, ...).
_number: Callable[[float], str] = _go_float

#: Names written as they are in either format (a colon becomes ``_`` in OpenMetrics sample names).
_METRIC_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
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


def _exemplar(exemplar: Any) -> str:
    """An OpenMetrics exemplar, `` # {labels} value timestamp``, as prometheus_client writes it."""
    labels = ",".join(f'{name}="{_escape(value)}"' for name, value in sorted(exemplar.labels.items()))
    if exemplar.timestamp is None:
        return f" # {{{labels}}} {_number(exemplar.value)}"
    return f" # {{{labels}}} {_number(exemplar.value)} {exemplar.timestamp}"


class _Family:
    """One metric's cached text: its header lines and each series' line starts."""

    __slots__ = ("heads", "kind", "labelnames", "name", "series")

    def __init__(self, metric: MetricWrapperBase, kind: str) -> None:
        self.kind = kind
        self.name: str = metric._name
        self.labelnames: tuple[str, ...] = tuple(metric._labelnames)
        documentation: str = metric._documentation
        exposed = f"{self.name}_total" if kind == "counter" else self.name
        text = documentation.replace("\\", r"\\").replace("\n", r"\n")
        unit = f"# UNIT {self.name} {metric._unit}\n" if metric._unit else ""
        #: The header in the text format and in OpenMetrics (where a counter is named without _total).
        self.heads = (
            f"# HELP {exposed} {text}\n# TYPE {exposed} {kind}\n",
            f"# HELP {self.name} {_escape(documentation)}\n# TYPE {self.name} {kind}\n{unit}",
        )
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
    except TypeError:  # a collector that takes no weak reference: prometheus_client writes it
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


def _write(family: _Family, metric: Any, openmetrics: bool, out: list[str]) -> bool:
    """Append the family's text to ``out``; False (nothing appended) when a series is not plain."""
    lines = [family.heads[openmetrics]]
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
                exemplar = buckets[i].get_exemplar() if openmetrics else None
                if exemplar is None:
                    lines.append(f"{starts[i]}{_number(total)}\n")
                else:
                    lines.append(f"{starts[i]}{_number(total)}{_exemplar(exemplar)}\n")
            lines.append(f"{starts[len(buckets)]}{_number(total)}\n")
            if len(starts) > len(buckets) + 1:
                lines.append(f"{starts[-1]}{_number(child._sum.get())}\n")
        elif "_child_samples" in child.__dict__:  # Gauge.set_function: its own samples
            return False
        else:
            value = child._value
            exemplar = value.get_exemplar() if openmetrics and kind == "counter" else None
            if exemplar is None:
                lines.append(f"{family.starts(values, child)[0]}{_number(value.get())}\n")
            else:
                lines.append(
                    f"{family.starts(values, child)[0]}{_number(value.get())}{_exemplar(exemplar)}\n"
                )
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


def _encode(registry: Any, openmetrics: bool) -> bytes:
    """prometheus_client's own answer for ``registry`` (``_created`` samples left out)."""
    collected = _Collected(without_created(registry.collect()))
    return (openmetrics_latest if openmetrics else generate_latest)(collected)


def _write_registry(registry: CollectorRegistry, openmetrics: bool) -> bytes:
    if getattr(registry, "_target_info", None):
        return _encode(registry, openmetrics)
    with registry._lock:
        collectors = list(registry._collector_to_names)
    out: list[str] = []
    for collector in collectors:
        family = _family(collector)
        if family is None or not _write(family, collector, openmetrics, out):
            text = _encode(collector, openmetrics).decode("utf-8")
            out.append(text.removesuffix("# EOF\n") if openmetrics else text)
    if openmetrics:
        out.append("# EOF\n")
    return "".join(out).encode("utf-8")


def _sample_registry() -> CollectorRegistry:
    """Every case the writer handles: escapes, label order around ``le``, odd values, exemplars, units."""
    registry = CollectorRegistry(auto_describe=True)
    counter = PromCounter(
        "check_requests", 'Doc with \\ and "quotes"\nand a line.', ["z", "a"], registry=registry
    )
    counter.labels(z='"q"\\ \n', a="é 中").inc(3, exemplar={"trace_id": 'ab"c', "span_id": "1"})
    counter.labels(z="", a="x").inc(1e20)
    PromCounter("check_bytes", "A unit.", unit="bytes", registry=registry).inc(1234567.0)
    PromCounter("check_empty", "No series.", ["route"], registry=registry)
    gauge = PromGauge("check_level", "Odd values.", ["kind"], registry=registry)
    for kind, value in (("inf", math.inf), ("ninf", -math.inf), ("nan", math.nan), ("small", -0.25)):
        gauge.labels(kind=kind).set(value)
    histogram = PromHistogram("check_seconds", "Latency.", ["route", "la", "lz"], registry=registry)
    histogram.labels(route="/", la="1", lz="2").observe(0.3, exemplar={"trace_id": "t"})
    histogram.labels(route="/b", la="3", lz="4").observe(99)
    PromHistogram("check_negative", "No sum.", buckets=(-1.0, 0.0, 1e7), registry=registry).observe(0.5)
    return registry


#: Per format (text, OpenMetrics): whether the writer gives prometheus_client's bytes; None: not checked yet.
_AGREES: list[bool | None] = [None, None]


def written_format(encoder: Any) -> bool | None:
    """Which format of the writer's an encoder of ``choose_encoder`` asks for.

    False for the text format (0.0.4), True for OpenMetrics 1.0.0, None for anything else
    (prometheus_client writes it).
    """
    if encoder is generate_latest:
        return False
    keywords = getattr(encoder, "keywords", {})
    if (
        getattr(encoder, "func", encoder) is openmetrics_latest
        and not getattr(encoder, "args", ())
        and set(keywords) <= {"escaping", "version"}
        and keywords.get("escaping", "underscores") == "underscores"
        and keywords.get("version", "1.0.0") == "1.0.0"
    ):
        return True
    return None


def write(registry: CollectorRegistry, openmetrics: bool) -> bytes | None:
    """The text format (or OpenMetrics 1.0.0) of ``registry`` without ``_created`` samples.

    None when the writer does not give the installed prometheus_client's bytes, or when
    prometheus_client keeps its values in multi-process files: the caller then has
    prometheus_client answer.
    """
    if getattr(prometheus_values.ValueClass, "_multiprocess", False):  # the check's metrics would write files
        return None
    agrees = _AGREES[openmetrics]
    if agrees is None:
        sample = _sample_registry()
        try:
            agrees = _write_registry(sample, openmetrics) == _encode(sample, openmetrics)
        except Exception:  # a prometheus_client whose private parts differ (an attribute gone, say)
            agrees = False
        _AGREES[openmetrics] = agrees
    return _write_registry(registry, openmetrics) if agrees else None
