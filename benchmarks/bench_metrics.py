"""Benchmarks 4 and 7: recording a metric value.

4. obskit's ``MetricsCollector`` handles against prometheus_client, the library they record into:
   ``Counter.inc(**labels)`` against ``c.labels(**labels).inc()``; a bound child's ``.inc()``
   against a prometheus_client child's ``.inc()``; ``Histogram.observe(v, **labels)`` against
   ``h.labels(**labels).observe(v)`` (and the bound forms). Both sides use the same label values
   and the same buckets, each in its own fresh registry; obskit runs after ``configure()``.
7. The design decision behind 4: a prometheus_client child against the OpenTelemetry SDK
   instruments (``Counter.add(1, attributes)``, ``Histogram.record(v, attributes)``) with a
   MeterProvider and an in-memory reader, the set-up a push backend would need if obskit
   recorded through OTel meters instead of translating prometheus_client's registry off the
   hot path. Here the *candidate* is the OTel SDK and a ratio above 1 means OTel is slower.
"""

from __future__ import annotations

from _harness import Config, Row, Side, compare, loop
from _setup import configured
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client import Histogram as PromHistogram

import obskit

LABELS = {"method": "GET", "route": "/items/{id}"}
KWARGS = 'method="GET", route="/items/{id}"'
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
VALUE = 0.2


def _prometheus() -> dict[str, object]:
    registry = CollectorRegistry()
    counter = PromCounter("bench_requests", "Requests.", ["method", "route"], registry=registry)
    histogram = PromHistogram(
        "bench_request_duration_seconds", "Duration.", ["method", "route"], registry=registry, buckets=BUCKETS
    )
    return {
        "pc": counter,
        "ph": histogram,
        "pc_child": counter.labels(**LABELS),
        "ph_child": histogram.labels(**LABELS),
        "registry": registry,
    }


def _obskit() -> dict[str, object]:
    metrics = obskit.MetricsCollector()
    counter = metrics.counter("bench_requests", "Requests.", labels=["method", "route"])
    histogram = metrics.histogram(
        "bench_request_duration_seconds", "Duration.", labels=["method", "route"], buckets=BUCKETS
    )
    return {
        "oc": counter,
        "oh": histogram,
        "oc_bound": counter.labels(**LABELS),
        "oh_bound": histogram.labels(**LABELS),
    }


def _otel() -> tuple[MeterProvider, dict[str, object]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("bench")
    counter = meter.create_counter("bench_requests", unit="1", description="Requests.")
    histogram = meter.create_histogram(
        "bench_request_duration",
        unit="s",
        description="Duration.",
        explicit_bucket_boundaries_advisory=BUCKETS,
    )
    return provider, {"otel_counter": counter, "otel_histogram": histogram, "attributes": dict(LABELS)}


def run(config: Config) -> list[Row]:
    rows: list[Row] = []
    prom = _prometheus()
    with configured() as state:
        ob = _obskit()
        ns = {**prom, **ob}

        def case(name: str, base_label: str, base: str, cand: str) -> None:
            rows.append(
                compare(
                    "4",
                    name,
                    Side(base_label, loop(base, ns)),
                    Side("obskit", loop(cand, ns)),
                    config,
                    max_ratio=1.2,
                )
            )

        case(
            "Counter.inc(**labels)",
            "prom c.labels(**labels).inc()",
            f"pc.labels({KWARGS}).inc()",
            f"oc.inc({KWARGS})",
        )
        case("bound counter .inc()", "prom child .inc()", "pc_child.inc()", "oc_bound.inc()")
        case(
            "Histogram.observe(v, **labels)",
            "prom h.labels(**labels).observe(v)",
            f"ph.labels({KWARGS}).observe({VALUE})",
            f"oh.observe({VALUE}, {KWARGS})",
        )
        case(
            "bound histogram .observe(v)",
            "prom child .observe(v)",
            f"ph_child.observe({VALUE})",
            f"oh_bound.observe({VALUE})",
        )
        sample = state.store.registry.get_sample_value("bench_requests_total", LABELS)
        if not sample:
            raise RuntimeError("the obskit counter recorded nothing")

    provider, otel = _otel()
    ns = {**prom, **otel}

    def versus(name: str, base_label: str, base: str, cand: str) -> None:
        rows.append(
            compare(
                "7",
                name,
                Side(base_label, loop(base, ns)),
                Side("OTel SDK", loop(cand, ns)),
                config,
            )
        )

    versus(
        "counter: bound child vs Counter.add(1, attrs)",
        "prom child .inc()",
        "pc_child.inc()",
        "otel_counter.add(1, attributes)",
    )
    versus(
        "counter: labels().inc() vs Counter.add(1, attrs)",
        "prom c.labels(**labels).inc()",
        f"pc.labels({KWARGS}).inc()",
        "otel_counter.add(1, attributes)",
    )
    versus(
        "histogram: bound child vs Histogram.record(v, attrs)",
        "prom child .observe(v)",
        f"ph_child.observe({VALUE})",
        f"otel_histogram.record({VALUE}, attributes)",
    )
    provider.shutdown()
    return rows


if __name__ == "__main__":
    import sys

    from _harness import table

    print(table(run(Config.make("--quick" in sys.argv))))
