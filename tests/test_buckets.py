"""Buckets of obskit's duration histograms: defaults that hold slow calls, a setting, collector arguments."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

import obskit
from obskit import ConfigError, MetricDeclarationError
from obskit._core.settings import resolve_settings
from obskit._recording import store as _store
from obskit._recording.families import CALL_DURATION_BUCKETS
from obskit.testing import Capture, capture

sys.path.insert(0, str(Path(__file__).parent / "integration"))
import otlp_receiver as rx

QUIET: dict[str, Any] = {"traces_exporter": "none", "logs_exporter": "none", "metrics_exporter": "none"}


@pytest.fixture(autouse=True)
def _no_collector_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    """``MetricsCollector(buckets=...)`` is process-wide: each test starts without any."""
    monkeypatch.setattr(_store, "_FAMILY_BUCKETS", {})


def bounds(cap: Capture, name: str) -> list[str]:
    """The ``le`` values of ``name``'s first series, ``+Inf`` included."""
    (family,) = [f for f in cap.metrics_as_dicts() if f["name"] == name]
    return list(family["series"][0]["buckets"])


def record_every_family() -> None:
    metrics = obskit.MetricsCollector()
    metrics.http_request("GET", "/x", 200, 0.1)
    metrics.db_call("select", 0.1)
    metrics.external_call("openai", "chat", 0.1)
    metrics.job("nightly", 0.1)


def test_default_call_buckets_reach_two_minutes_with_as_many_bounds_as_before() -> None:
    assert CALL_DURATION_BUCKETS[-1] == 120.0
    assert {30.0, 60.0} <= set(CALL_DURATION_BUCKETS)
    assert len(CALL_DURATION_BUCKETS) <= 14  # series per label set stay as they were


def test_a_45_second_llm_call_is_not_read_as_10_seconds() -> None:
    with capture() as cap:
        metrics = obskit.MetricsCollector()
        for _ in range(19):
            metrics.external_call("openai", "chat", 1.2)
        metrics.external_call("openai", "chat", 45.0)
        metrics.external_call("openai", "chat", 46.0)
        (series,) = obskit.MetricsCollector()._family("external_duration").snapshot()
    buckets = series["buckets"]
    assert buckets["10.0"] == 19
    assert buckets["30.0"] == 19
    assert buckets["60.0"] == 21  # ... and below 60 s: a "p95 > 30 s" alert can fire
    assert "obskit_external_call_duration_seconds" in {f["name"] for f in cap.metrics_as_dicts()}


def test_the_setting_sets_each_familys_buckets() -> None:
    obskit.configure(
        **QUIET,
        histogram_buckets={"http": [0.1, 1], "db": [0.2, 2], "external_call": [1, 60, 300], "job": [5, 50]},
    )
    with capture() as cap:
        record_every_family()
    assert bounds(cap, "obskit_http_server_request_duration_seconds") == ["0.1", "1.0", "+Inf"]
    assert bounds(cap, "obskit_db_query_duration_seconds") == ["0.2", "2.0", "+Inf"]
    assert bounds(cap, "obskit_external_call_duration_seconds") == ["1.0", "60.0", "300.0", "+Inf"]
    assert bounds(cap, "obskit_job_duration_seconds") == ["5.0", "50.0", "+Inf"]


def test_the_environment_variable_sets_them_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBSKIT_HISTOGRAM_BUCKETS", '{"external_call": [0.5, 30, 90, "+Inf"]}')
    obskit.configure(**QUIET)
    with capture() as cap:
        record_every_family()
    assert bounds(cap, "obskit_external_call_duration_seconds") == ["0.5", "30.0", "90.0", "+Inf"]
    assert bounds(cap, "obskit_db_query_duration_seconds")[-4:] == ["30.0", "60.0", "120.0", "+Inf"]


def test_the_setting_reaches_the_middlewares_histogram_of_a_real_flask_app() -> None:
    app = Flask("buckets_app")

    @app.get("/slow")
    def slow() -> str:
        return "ok"

    obskit.configure(app, **QUIET, histogram_buckets={"http": [0.5, 5, 50]})
    with capture() as cap:
        assert app.test_client().get("/slow", buffered=True).status_code == 200
    assert bounds(cap, "obskit_http_server_request_duration_seconds") == ["0.5", "5.0", "50.0", "+Inf"]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ('{"grpc": [1]}', "unknown family 'grpc'"),
        ('{"http": [2, 1]}', "increasing"),
        ('{"http": []}', "from 1 to 40"),
        ('{"http": [1, "NaN"]}', "finite"),
        ('{"http": ["soon"]}', "could not convert"),
        ("[1, 2]", "not a mapping"),
        ("http=1", "Expecting value"),
        ({"http": list(range(1, 50))}, "from 1 to 40"),
    ],
)
def test_invalid_bucket_settings_are_config_errors(value: object, words: str) -> None:
    with pytest.raises(ConfigError, match="histogram_buckets") as caught:
        resolve_settings({"histogram_buckets": value})
    assert words in str(caught.value)


def test_collector_arguments_set_buckets_and_the_setting_wins_over_them() -> None:
    metrics = obskit.MetricsCollector(buckets={"db": [0.001, 0.01], "external_call": [10, 100]})
    obskit.configure(**QUIET, histogram_buckets={"external_call": [1, 2]})
    with capture() as cap:
        metrics.db_call("select", 0.005)
        metrics.external_call("llm", "chat", 45.0)
    assert bounds(cap, "obskit_db_query_duration_seconds") == ["0.001", "0.01", "+Inf"]
    assert bounds(cap, "obskit_external_call_duration_seconds") == ["1.0", "2.0", "+Inf"]


def test_collector_arguments_given_again_alike_are_fine_and_otherwise_raise() -> None:
    obskit.MetricsCollector(buckets={"job": [1, 10]})
    obskit.MetricsCollector(buckets={"job": (1.0, 10.0)})
    with pytest.raises(MetricDeclarationError, match="already"):
        obskit.MetricsCollector(buckets={"job": [1, 20]})
    with pytest.raises(MetricDeclarationError, match="unknown family 'jobs'"):
        obskit.MetricsCollector(buckets={"jobs": [1]})


def test_track_job_uses_the_job_buckets() -> None:
    obskit.configure(**QUIET, histogram_buckets={"job": [60, 600]})

    @obskit.track_job("export")
    def export() -> None:
        pass

    with capture() as cap:
        export()
    assert bounds(cap, "obskit_job_duration_seconds") == ["60.0", "600.0", "+Inf"]


# -- exponential histograms over OTLP -------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[rx.HttpReceiver]:
    with rx.HttpReceiver() as otlp_receiver:
        yield otlp_receiver


def otlp(receiver: rx.HttpReceiver, **settings: Any) -> None:
    obskit.configure(
        traces_exporter="none",
        logs_exporter="none",
        metrics_exporter="otlp",
        otlp_endpoint=receiver.endpoint,
        metric_export_interval_ms=3_600_000,
        **settings,
    )


def test_otlp_gets_exponential_histograms_when_asked_and_prometheus_keeps_its_buckets(
    receiver: rx.HttpReceiver,
) -> None:
    otlp(receiver, exponential_histograms=True)
    name = f"llm_latency_{uuid.uuid4().hex[:8]}x"
    latency = obskit.MetricsCollector().histogram(name, labels=["model"], unit="seconds", buckets=[1, 10])
    for value in (0.8, 1.3, 2.1, 45.0):
        latency.observe(value, model="large")
    latency.labels(model="small").observe(0.2)
    obskit.MetricsCollector().external_call("openai", "chat", 45.0)
    assert latency.snapshot()[0]["buckets"] == {"1.0": 1.0, "10.0": 3.0, "+Inf": 4.0}  # Prometheus' own
    obskit.shutdown()
    received = receiver.store.metrics()
    metric = received[f"{name}_seconds"]
    assert metric.WhichOneof("data") == "exponential_histogram"
    assert metric.unit == "s"
    points = {p.attributes[0].value.string_value: p for p in metric.exponential_histogram.data_points}
    large = points["large"]
    assert (large.count, large.sum) == (4, pytest.approx(49.2))
    assert large.min == pytest.approx(0.8)
    assert large.max == pytest.approx(45.0)
    assert sum(large.positive.bucket_counts) == 4
    # base 2 ** 2 ** -scale: the largest value lies in the last bucket, not in a +Inf catch-all
    base = 2 ** (2**-large.scale)
    counts = list(large.positive.bucket_counts)
    last = max(i for i, count in enumerate(counts) if count)
    top = base ** (large.positive.offset + last + 1)  # the upper bound of the bucket holding 45 s
    assert 45.0 <= top < 45.0 * base
    assert points["small"].count == 1


BUILT_IN_FAMILY = """
import sys
import obskit

obskit.configure(
    traces_exporter="none", logs_exporter="none", metrics_exporter="otlp", otlp_endpoint=sys.argv[1],
    metric_export_interval_ms=3_600_000, exponential_histograms=True,
)
obskit.MetricsCollector().external_call("openai", "chat", 45.0)
obskit.shutdown()
"""


def test_a_built_in_family_is_exponential_too(receiver: rx.HttpReceiver) -> None:
    # In a fresh process: a family first recorded before configure() keeps what it was made with,
    # and this suite's process has recorded the built-in families already.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSKIT_", "OTEL_"))}
    env["PYTHONPATH"] = str(Path(obskit.__file__).parents[1])
    subprocess.run(
        [sys.executable, "-c", BUILT_IN_FAMILY, receiver.endpoint], env=env, check=True, timeout=60
    )
    family = receiver.store.metrics()["obskit_external_call_duration_seconds"]
    assert family.WhichOneof("data") == "exponential_histogram"


def test_otlp_keeps_explicit_buckets_by_default(receiver: rx.HttpReceiver) -> None:
    otlp(receiver)
    name = f"plain_latency_{uuid.uuid4().hex[:8]}x"
    obskit.MetricsCollector().histogram(name, unit="seconds", buckets=[1, 10]).observe(2)
    obskit.shutdown()
    metric = receiver.store.metrics()[f"{name}_seconds"]
    assert metric.WhichOneof("data") == "histogram"
    assert list(metric.histogram.data_points[0].explicit_bounds) == [1.0, 10.0]


def test_after_shutdown_new_series_record_only_their_prometheus_buckets(
    receiver: rx.HttpReceiver,
) -> None:
    otlp(receiver, exponential_histograms=True)
    obskit.shutdown()
    assert _store._EXPONENTIAL is None


FORK_SCRIPT = """
import os, sys
import obskit
obskit.configure(traces_exporter="none", logs_exporter="none", metrics_exporter="otlp",
                 otlp_endpoint=sys.argv[1], metric_export_interval_ms=3_600_000, exponential_histograms=True)
latency = obskit.MetricsCollector().histogram("forked_latency", unit="seconds")
for value in (1, 2, 3):
    latency.observe(value)
pid = os.fork()
if pid == 0:
    latency.observe(40)
    obskit.shutdown()
    os._exit(0)
os.waitpid(pid, 0)
obskit.shutdown()
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_sends_only_its_own_exponential_observations(receiver: rx.HttpReceiver) -> None:
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, receiver.endpoint], check=True, env=environ, timeout=60
    )
    counts = sorted(
        (p.count, p.sum)
        for item in receiver.store.items("metrics")
        for rm in item.request.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "forked_latency_seconds"
        for p in m.exponential_histogram.data_points
    )
    assert counts == [(1, 40.0), (3, 6.0)]
