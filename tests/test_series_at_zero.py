"""Series created at 0 before their first recording, as prometheus_client makes them.

prometheus_client exposes a labelled series from its ``labels()`` call and an unlabelled metric
from its declaration, both at 0: Prometheus' own advice ("avoid missing metrics") relies on it,
so that rate() sees the first increment and an alert has a series to compare. obskit's bound
handles (``handle.labels(...)``) and unlabelled declarations do the same, compared here sample
for sample with prometheus_client's, and keep doing it in a forked child's store and in the
multi-process store ``configure()`` installs.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge as PromGauge
from prometheus_client import Histogram as PromHistogram

import obskit
from obskit import MetricsCollector, MetricUsageError
from obskit._core import state as _state
from obskit._recording.store import OVERFLOW_LABEL_VALUE
from obskit.testing import Capture

QUIET: dict[str, Any] = {"traces_exporter": "none", "metrics_exporter": "none", "logs_exporter": "none"}
metrics = MetricsCollector()

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def samples(registry: CollectorRegistry, *names: str) -> Samples:
    """Every sample of the families ``names``, ``_created`` left out (obskit does not write it)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        if family.name in names
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_labels_creates_each_kind_at_0_as_prometheus_client_does(obskit_capture: Capture) -> None:
    name = unique("orders")
    counter = metrics.counter(name, "Orders.", labels=["status"])
    histogram = metrics.histogram(name + "_seconds", "Time.", labels=["step"], buckets=[0.1, 1])
    gauge = metrics.gauge(name + "_queued", "Queued.", labels=["queue"])
    counter.labels(status="paid")
    counter.labels(status="refused")
    histogram.labels(step="charge")
    gauge.labels(queue="mail")

    reference = CollectorRegistry()
    reference_counter = PromCounter(name, "Orders.", ["status"], registry=reference)
    reference_counter.labels("paid")
    reference_counter.labels("refused")
    PromHistogram(name + "_seconds", "Time.", ["step"], registry=reference, buckets=[0.1, 1]).labels("charge")
    PromGauge(name + "_queued", "Queued.", ["queue"], registry=reference).labels("mail")

    families = (name, name + "_seconds", name + "_queued")
    expected = samples(reference, *families)
    assert len(expected) == 2 + 5 + 1  # two counters; buckets 0.1, 1, +Inf, count, sum; a gauge
    assert samples(obskit_capture.store.registry, *families) == expected
    assert set(expected.values()) == {0.0}


def test_an_unlabelled_metric_is_at_0_from_its_declaration(obskit_capture: Capture) -> None:
    name = unique("restarts")
    metrics.counter(name, "Restarts.")
    metrics.histogram(name + "_seconds", "Time.", buckets=[1])
    metrics.gauge(name + "_level", "Level.")

    reference = CollectorRegistry()
    PromCounter(name, "Restarts.", registry=reference)
    PromHistogram(name + "_seconds", "Time.", registry=reference, buckets=[1])
    PromGauge(name + "_level", "Level.", registry=reference)

    families = (name, name + "_seconds", name + "_level")
    assert samples(obskit_capture.store.registry, *families) == samples(reference, *families)
    assert len(samples(reference, *families)) == 1 + 4 + 1


def test_the_first_recording_after_labels_counts_from_0(obskit_capture: Capture) -> None:
    counter = metrics.counter(unique("paid"), labels=["status"])
    bound = counter.labels(status="ok")
    assert obskit_capture.counter_value(counter.name, status="ok") == 0
    bound.inc()
    counter.inc(status="ok")
    obskit_capture.assert_counter(counter.name, 2, status="ok")
    assert counter.snapshot() == [{"labels": {"status": "ok"}, "value": 2.0}]


def test_labels_with_a_mistake_create_nothing_and_the_recording_reports_it(obskit_capture: Capture) -> None:
    counter = metrics.counter(unique("typo"), labels=["status"])
    bound = counter.labels(stauts="ok")  # binding says nothing: the recording does, at its call site
    assert counter.snapshot() == []
    with pytest.raises(MetricUsageError, match="label 'stauts' not declared"):
        bound.inc()  # raised in strict mode (capture()); logged once per call site otherwise
    assert counter.snapshot() == []


def test_binding_past_the_series_cap_creates_no_overflow_and_counts_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = _state.STATE.store
    monkeypatch.setattr(store, "series_cap", store.series_cap)
    obskit.configure(series_cap=2, **QUIET)
    with obskit.testing.capture() as cap:
        counter = metrics.counter(unique("capped"), labels=["user"])
        bound = [counter.labels(user=str(n)) for n in range(5)]
        assert [s["labels"]["user"] for s in counter.snapshot()] == ["0", "1"]
        assert cap.counter_value("obskit_telemetry_overflow_total", metric=counter.name) == 0
        bound[4].inc()  # the recording past the cap is folded and counted, as before
        assert cap.counter_value(counter.name, user=OVERFLOW_LABEL_VALUE) == 1
        assert cap.counter_value("obskit_telemetry_overflow_total", metric=counter.name) == 1


FORK_SCRIPT = textwrap.dedent(
    """
    import os, sys, obskit
    from obskit import MetricsCollector
    from obskit._core import state

    metrics = MetricsCollector()
    paid = metrics.counter("fork_orders", labels=["status"])
    bound = paid.labels(status="paid")  # at import, as user modules bind
    metrics.counter("fork_restarts")
    obskit.configure(service_name="forky", traces_exporter="none", logs_exporter="none",
                     metrics_exporter="none")
    bound.inc(5)  # the parent's own count

    def values():
        registry = state.STATE.store.registry
        return (registry.get_sample_value("fork_orders_total", {"status": "paid"}),
                registry.get_sample_value("fork_restarts_total"))

    print("parent", *values(), flush=True)
    pid = os.fork()
    if pid == 0:
        print("child", *values(), flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
    """
)


@pytest.mark.skipif(not hasattr(sys.modules["os"], "fork"), reason="needs os.fork")
def test_a_forked_child_has_the_series_at_0_not_the_parents_values() -> None:
    result = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.splitlines() == ["parent 5.0 0.0", "child 0.0 0.0"], result.stderr


MULTIPROCESS_SCRIPT = textwrap.dedent(
    """
    import sys, urllib.request, obskit, obskit.prometheus
    from obskit import MetricsCollector

    metrics = MetricsCollector()
    metrics.counter("mp_orders", labels=["status"]).labels(status="paid")  # before configure()
    metrics.gauge("mp_queued", labels=["queue"], multiprocess_mode="livesum").labels(queue="mail")
    obskit.configure(traces_exporter="none", logs_exporter="none", metrics_exporter="prometheus",
                     prometheus_port=0, multiprocess_dir=sys.argv[1])
    host, port = obskit.prometheus.server_address()
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as scrape:  # the real scrape
        print(scrape.read().decode())
    obskit.shutdown()
    """
)


def test_the_multiprocess_store_has_the_series_bound_before_configure(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", MULTIPROCESS_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert 'mp_orders_total{status="paid"} 0.0' in result.stdout, result.stdout + result.stderr
    assert 'mp_queued{queue="mail"} 0.0' in result.stdout, result.stdout


def test_families_are_registered_at_declaration_in_its_order_as_prometheus_client_does(
    obskit_capture: Capture,
) -> None:
    name = unique("ordered")
    metrics.counter(name + "_orders", "A.", labels=["k"])  # declared first, recorded last
    metrics.gauge(name + "_level", "B.")
    metrics.histogram(name + "_seconds", "C.", labels=["k"], buckets=[1]).observe(0.5, k="x")
    metrics.counter(name + "_orders", labels=["k"]).inc(k="x")

    reference = CollectorRegistry()
    PromCounter(name + "_orders", "A.", ["k"], registry=reference)
    PromGauge(name + "_level", "B.", registry=reference)
    PromHistogram(name + "_seconds", "C.", ["k"], registry=reference, buckets=[1])

    def order(registry: CollectorRegistry) -> list[str]:
        return [f.name for f in registry.collect() if f.name.startswith(name)]

    declared = [name + suffix for suffix in ("_orders", "_level", "_seconds")]
    assert order(obskit_capture.store.registry) == order(reference) == declared
