"""Metric names that pass ``promtool check metrics``, always: checked at declaration, units applied.

A generous application (a real Flask app, jobs, every ``MetricsCollector`` helper, custom families
with units) is scraped from obskit's own endpoint and its exposition goes through the real
promtool with no lint warning; names promtool would complain about raise at declaration.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from prometheus_client.openmetrics.parser import text_string_to_metric_families

import obskit
import obskit.prometheus
from obskit import MetricDeclarationError
from obskit.testing import capture

QUIET: dict[str, Any] = {"traces_exporter": "none", "logs_exporter": "none"}
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}x"


def scrape(address: tuple[str, int], accept: str = "text/plain") -> str:
    host, port = address
    request = urllib.request.Request(f"http://{host}:{port}/metrics", headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=5) as response:
        return str(response.read().decode())


def promtool(text: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool is not installed (the prometheus package provides it)")
    return subprocess.run(
        [binary, "check", "metrics"], input=text, capture_output=True, text=True, check=False, timeout=30
    )


@pytest.fixture
def generous_app() -> Iterator[tuple[str, int]]:
    """A Flask app with obskit's middleware, jobs, every helper and custom families, recorded once each."""
    app = Flask("promtool_app")

    @app.get("/orders/<int:order>")
    def order(order: int) -> str:
        return str(order)

    obskit.configure(app, **QUIET, metrics_exporter="prometheus", prometheus_port=0, runtime_metrics=True)
    client = app.test_client()
    client.get("/orders/1")
    client.get("/missing")
    metrics = obskit.MetricsCollector(namespace="shop")
    metrics.counter("orders", "Orders placed", labels=["region"]).inc(region="eu")
    metrics.counter("payments_total", "Payments taken").inc()
    metrics.counter("sent", "Bytes sent", unit="bytes").inc(512)
    metrics.histogram("checkout", "Checkout time", labels=["region"], unit="seconds").observe(
        0.4, region="eu"
    )
    metrics.histogram("payload_size_bytes", "Payload sizes", buckets=[100, 1000, 10000]).observe(300)
    metrics.gauge("queue_depth", "Items waiting", labels=["queue"]).set(3, queue="emails")
    metrics.gauge("cache_fill", "Cache fill", unit="ratio").set(0.5)
    metrics.gauge("temperature_celsius", "Room temperature").set(21)
    metrics.cache_access("users", hit=True)
    metrics.db_call("select", 0.02)
    metrics.external_call("openai", "chat", 45.0, tokens={"prompt": 10, "completion": 3})
    metrics.http_request("get", "/direct", 200, 0.01)
    metrics.job("nightly", 12.0)

    @obskit.track_job("rebuild_index")
    def rebuild() -> None:
        pass

    rebuild()
    address = obskit.prometheus.server_address()
    assert address is not None
    yield address
    obskit.shutdown()


def test_a_generous_apps_exposition_passes_promtool_without_a_warning(generous_app: tuple[str, int]) -> None:
    text = scrape(generous_app)
    assert "shop_checkout_seconds_bucket" in text
    assert "shop_sent_bytes_total" in text
    assert "obskit_external_call_duration_seconds_bucket" in text
    checked = promtool(text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == ""
    assert checked.stderr.strip() == ""


def test_no_created_series_by_default_in_text_and_openmetrics(generous_app: tuple[str, int]) -> None:
    for accept in ("text/plain", OPENMETRICS):
        text = scrape(generous_app, accept)
        assert "shop_orders_total" in text
        assert "_created" not in text


def test_openmetrics_exposition_names_units(generous_app: tuple[str, int]) -> None:
    families = {f.name: f for f in text_string_to_metric_families(scrape(generous_app, OPENMETRICS))}
    assert families["shop_checkout_seconds"].unit == "seconds"
    assert families["shop_sent_bytes"].unit == "bytes"
    assert families["shop_cache_fill_ratio"].unit == "ratio"
    assert families["obskit_external_call_duration_seconds"].unit == "seconds"
    assert families["shop_queue_depth"].unit == ""


def test_created_series_come_back_with_the_setting() -> None:
    obskit.configure(**QUIET, metrics_exporter="prometheus", prometheus_port=0, prometheus_created=True)
    name = unique("comeback")
    obskit.MetricsCollector().counter(name).inc()
    address = obskit.prometheus.server_address()
    assert address is not None
    assert f"{name}_created" in scrape(address)


def test_otlp_start_times_survive_without_created_series() -> None:
    from obskit._export.bridge import translate

    with capture() as cap:
        name = unique("started")
        obskit.MetricsCollector().counter(name).inc()
        (metric,) = [m for m in translate(cap.store.registry.collect(), 1) if m.name == f"{name}_total"]
    assert metric.data.data_points[0].start_time_unix_nano > 1  # from the registry's _created sample


@pytest.mark.parametrize(
    ("kind", "name", "words"),
    [
        ("gauge", "queue_depth_total", "only counters end in _total"),
        ("histogram", "latency_total", "only counters end in _total"),
        ("gauge", "jobs_count", "_count"),
        ("gauge", "latency_sum", "_sum"),
        ("gauge", "latency_bucket", "_bucket"),
        ("gauge", "started_created", "_created"),
        ("gauge", "build_info", "_info"),
        ("counter", "orders_count_total", "_count"),
        ("gauge", "latency_milliseconds", "base unit 'seconds'"),
        ("histogram", "upload_kilobytes", "base unit 'bytes'"),
        ("gauge", "uptime_hours", "base unit 'seconds'"),
        ("gauge", "latency_ms", "abbreviated unit"),
        ("counter", "sent_kb", "abbreviated unit"),
        ("gauge", "queueDepth", "snake_case; write 'queue_depth'"),
        ("counter", "job:errors", "':'"),
        ("gauge", "orders_gauge", "type 'gauge'"),
        ("counter", "hits_counter", "type 'counter'"),
        ("gauge", "queue-depth", "invalid metric name"),
        ("gauge", "9lives", "invalid metric name"),
    ],
)
def test_names_promtool_would_flag_raise_at_declaration(kind: str, name: str, words: str) -> None:
    with pytest.raises(MetricDeclarationError) as caught:
        getattr(obskit.MetricsCollector(), kind)(name)
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("labels", "words"),
    [(["userId"], "snake_case"), (["le"], "'le'"), (["quantile"], "'quantile'"), (["a-b"], "invalid label")],
)
def test_label_names_promtool_would_flag_raise_at_declaration(labels: list[str], words: str) -> None:
    with pytest.raises(MetricDeclarationError) as caught:
        obskit.MetricsCollector().gauge(unique("labelled"), labels=labels)
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("unit", "words"),
    [("milliseconds", "base unit 'seconds'"), ("EUR", "invalid unit"), ("ms", "abbreviated")],
)
def test_non_base_or_invalid_units_raise_at_declaration(unit: str, words: str) -> None:
    with pytest.raises(MetricDeclarationError) as caught:
        obskit.MetricsCollector().histogram(unique("timed"), unit=unit)
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("kind", "name", "unit", "exposed"),
    [
        ("histogram", "checkout", "seconds", "checkout_seconds"),
        ("histogram", "checkout_seconds", "seconds", "checkout_seconds"),  # already there: not doubled
        ("histogram", "checkout", "s", "checkout_seconds"),  # OpenTelemetry's unit names the same word
        ("counter", "sent", "bytes", "sent_bytes_total"),
        ("counter", "sent_bytes_total", "bytes", "sent_bytes_total"),
        ("gauge", "fill", "ratio", "fill_ratio"),
        ("gauge", "stock", "items", "stock_items"),
    ],
)
def test_a_declared_unit_ends_the_name(kind: str, name: str, unit: str, exposed: str) -> None:
    prefix = unique("u")
    handle = getattr(obskit.MetricsCollector(namespace=prefix), kind)(name, unit=unit)
    assert handle.name == f"{prefix}_{exposed}"


def test_unit_from_the_name_reaches_otlp_as_ucum() -> None:
    from obskit._export.bridge import translate

    with capture() as cap:
        name = unique("waited")
        obskit.MetricsCollector().histogram(name, unit="seconds").observe(1)
        (metric,) = [m for m in translate(cap.store.registry.collect(), 1) if m.name == f"{name}_seconds"]
    assert metric.unit == "s"


def test_pushes_carry_no_created_series() -> None:
    from test_prometheus import FakeGateway, http_server  # peers.http_server

    gateway = FakeGateway()
    with http_server(gateway.handler()) as gateway.url:
        obskit.configure(
            **QUIET, metrics_exporter="prometheus", prometheus_port=0, pushgateway_url=gateway.url
        )
        name = unique("pushed")
        obskit.MetricsCollector().counter(name).inc()
        obskit.MetricsCollector().histogram(f"{name}_seconds").observe(1)
        assert obskit.prometheus.push(timeout=5)
    ((_, body),) = gateway.pushes
    assert f"{name}_total" in body
    assert f"{name}_seconds_count" in body
    assert "_created" not in body
