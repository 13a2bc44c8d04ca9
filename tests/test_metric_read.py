"""Reading a metric's current value in-process: ``handle.snapshot()`` and ``handle.value(**labels)``."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

import obskit
import obskit.prometheus
from obskit import MetricUsageError
from obskit.testing import capture

QUIET: dict[str, Any] = {"traces_exporter": "none", "logs_exporter": "none", "metrics_exporter": "none"}


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}x"


def test_counter_snapshot_and_value_sum_the_matching_series() -> None:
    with capture():
        requests = obskit.MetricsCollector().counter(unique("requests"), labels=["route", "status"])
        assert requests.snapshot() == []
        assert requests.value() == 0.0
        requests.inc(route="/a", status="200")
        requests.inc(3, route="/a", status="500")
        requests.labels(route="/b", status=500).inc()
        assert requests.snapshot() == [
            {"labels": {"route": "/a", "status": "200"}, "value": 1.0},
            {"labels": {"route": "/a", "status": "500"}, "value": 3.0},
            {"labels": {"route": "/b", "status": "500"}, "value": 1.0},
        ]
        assert requests.value() == 5.0
        assert requests.value(status=500) == 4.0  # label values compared as recorded (str)
        assert requests.value(route="/a", status="500") == 3.0
        assert requests.value(route="/nowhere") == 0.0


def test_gauge_value_and_a_ratio_computed_from_counters() -> None:
    with capture():
        metrics = obskit.MetricsCollector()
        depth = metrics.gauge(unique("depth"), labels=["queue"])
        depth.set(7, queue="emails")
        depth.dec(2, queue="emails")
        assert depth.value(queue="emails") == 5.0
        for hit in (True, True, True, False):
            metrics.cache_access("users", hit)
        cache = metrics._family("cache")
        assert cache.value(cache="users", result="hit") / cache.value(cache="users") == 0.75


def test_histogram_snapshot_has_count_sum_and_cumulative_buckets() -> None:
    with capture():
        latency = obskit.MetricsCollector().histogram(unique("latency"), labels=["op"], buckets=[0.1, 1])
        latency.observe(0.05, op="read")
        latency.observe(0.5, op="read")
        latency.observe(3, op="write")
        assert latency.snapshot() == [
            {
                "labels": {"op": "read"},
                "buckets": {"0.1": 1.0, "1.0": 2.0, "+Inf": 2.0},
                "count": 2.0,
                "sum": 0.55,
            },
            {
                "labels": {"op": "write"},
                "buckets": {"0.1": 0.0, "1.0": 0.0, "+Inf": 1.0},
                "count": 1.0,
                "sum": 3.0,
            },
        ]
        assert latency.value() == 3.0  # a histogram's value is its number of observations
        assert latency.value(op="read") == 2.0


def test_reads_follow_the_current_store() -> None:
    counter = obskit.MetricsCollector().counter(unique("followed"))
    with capture():
        counter.inc(2)
        assert counter.value() == 2.0
    with capture():
        assert counter.value() == 0.0  # a fresh capture, a fresh store


def test_an_undeclared_label_is_your_mistake_and_matches_nothing(caplog: pytest.LogCaptureFixture) -> None:
    counter = obskit.MetricsCollector().counter(unique("mistaken"), labels=["route"])
    with capture(), pytest.raises(MetricUsageError, match="label 'path' not declared"):
        counter.value(path="/a")
    counter.inc(route="/a")
    assert counter.value(path="/a") == 0.0  # outside a capture: warned, not raised
    assert "label 'path' not declared" in caplog.text


def test_a_failing_read_gives_nothing_and_never_raises(
    monkeypatch: pytest.MonkeyPatch, swallow_internal_errors: None
) -> None:
    from obskit._recording import handles as _handles

    counter = obskit.MetricsCollector().counter(unique("broken"))
    counter.inc()

    def broken(spec: Any) -> list[Any]:
        raise RuntimeError("boom")

    monkeypatch.setattr(_handles, "_read_series", broken)
    assert counter.snapshot() == []
    assert counter.value() == 0.0


WORKER = """
import sys
import obskit
quiet = {"traces_exporter": "none", "logs_exporter": "none", "metrics_exporter": "none"}
obskit.configure(**quiet, multiprocess_dir=sys.argv[1])
obskit.MetricsCollector().counter(sys.argv[2], labels=["worker"]).inc(5, worker="other")
obskit.MetricsCollector().gauge(sys.argv[2] + "_busy").set(1)
"""


def test_multiprocess_mode_reads_every_processs_files(tmp_path: Path) -> None:
    name = unique("merged")
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), name], env=environ)
    assert worker.wait(timeout=60) == 0
    obskit.configure(**QUIET, multiprocess_dir=str(tmp_path))
    counter = obskit.MetricsCollector().counter(name, labels=["worker"])
    busy = obskit.MetricsCollector().gauge(f"{name}_busy")
    counter.inc(2, worker="this")
    busy.set(1)
    assert counter.value() == 7.0
    assert counter.value(worker="other") == 5.0
    assert busy.value() == 2.0  # livesum over the files, as a scrape reads them ...
    obskit.prometheus.mark_process_dead(worker.pid)
    assert busy.value() == 1.0  # ... until the exited worker's live gauges are removed
    assert counter.value() == 7.0  # counters keep an exited worker's counts
