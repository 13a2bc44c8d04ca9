"""What Application Insights' standard views need, against the loopback ingestion endpoint.

Histogram min/max (charts of a metric's min and max), the pre-aggregated standard metrics
behind the Requests and Dependencies charts, and custom events.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from azure_ingestion import Ingestion
from flask import Flask
from werkzeug.serving import make_server

import obskit

pytestmark = pytest.mark.integration


def _configure(ingestion: Ingestion, **extra: Any) -> None:
    settings: dict[str, Any] = {
        "service_name": "azure-views",
        "traces_exporter": "azure",
        "metrics_exporter": "azure",
        "logs_exporter": "azure",
        "azure_connection_string": ingestion.connection_string,
        "metric_export_interval_ms": 200,
    }
    obskit.configure(**{**settings, **extra})


def test_histogram_points_carry_min_and_max_of_each_interval(ingestion: Ingestion) -> None:
    suffix = uuid.uuid4().hex[:8]
    _configure(ingestion)
    score = obskit.MetricsCollector().histogram(
        f"azure_views_score_{suffix}", "Compliance score", labels=["team"], buckets=[10, 50, 90]
    )
    name = f"azure_views_score_{suffix}"
    for value in (42.0, 7.5, 88.0):
        score.observe(value, team="a")
    assert ingestion.wait_for(lambda: any(p.get("count") == 3 for p in ingestion.metric_points(name)))
    for value in (60.0, 55.0):
        score.observe(value, team="a")
    assert ingestion.wait_for(lambda: any(p.get("count") == 2 for p in ingestion.metric_points(name)))
    obskit.shutdown(timeout=5)

    points = [p for p in ingestion.metric_points(name) if p.get("count")]
    assert [(p["count"], p["value"], p["min"], p["max"]) for p in points] == [
        (3, pytest.approx(137.5), 7.5, 88.0),
        (2, pytest.approx(115.0), 55.0, 60.0),  # the second interval's own extremes
    ]


@contextlib.contextmanager
def _serving(app: Any) -> Iterator[str]:
    """``app`` served by werkzeug on a free loopback port, in a thread, stopped afterwards."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _standard(ingestion: Ingestion, metric_id: str) -> list[tuple[dict[str, str], dict[str, Any]]]:
    return [
        (e["data"]["baseData"]["properties"], point)
        for e in ingestion.named("Metric")
        for point in e["data"]["baseData"]["metrics"]
        if e["data"]["baseData"]["properties"].get("_MS.MetricId") == metric_id
    ]


def test_requests_and_dependencies_standard_metrics_arrive_after_known_traffic(ingestion: Ingestion) -> None:
    backend = Flask("azure_views_backend")

    @backend.get("/hello")
    def hello() -> str:
        return "ok"

    app = Flask("azure_views_app")

    @app.get("/ok")
    def ok() -> str:
        return "fine"

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("boom")

    with _serving(backend) as backend_url:

        @app.get("/call")
        def call() -> str:
            return requests.get(f"{backend_url}/hello", timeout=5).text

        _configure(ingestion, app=app, metric_export_interval_ms=60_000)
        with _serving(app) as url:
            for _ in range(3):
                assert requests.get(f"{url}/ok", timeout=5).status_code == 200
            assert requests.get(f"{url}/missing", timeout=5).status_code == 404
            assert requests.get(f"{url}/boom", timeout=5).status_code == 500
            assert requests.get(f"{url}/call", timeout=5).text == "ok"
        obskit.shutdown(timeout=5)

    by_code: dict[str, list[dict[str, Any]]] = {}
    for properties, point in _standard(ingestion, "requests/duration"):
        assert properties["_MS.IsAutocollected"] == "True"
        assert properties["cloud/roleName"] == "azure-views"
        assert properties["Request.Success"] == str(int(properties["request/resultCode"]) < 400)
        by_code.setdefault(properties["request/resultCode"], []).append(point)
    assert {code: sum(p["count"] for p in points) for code, points in by_code.items()} == {
        "200": 4,  # /ok three times and /call
        "404": 1,
        "500": 1,
    }
    for points in by_code.values():
        for point in points:
            assert 0 < point["min"] <= point["value"] / point["count"] <= point["max"] < 5_000  # ms
    # The test's own calls to the app are HTTP dependencies too (the same process): one series
    # per target and result code.
    dependencies = {
        (p["dependency/target"], p["dependency/resultCode"]): (p, point)
        for p, point in _standard(ingestion, "dependencies/duration")
    }
    app_target = url.removeprefix("http://")
    assert {key: point["count"] for key, (_, point) in dependencies.items()} == {
        (backend_url.removeprefix("http://"), "200"): 1,
        (app_target, "200"): 4,
        (app_target, "404"): 1,
        (app_target, "500"): 1,
    }
    for (_, code), (properties, _) in dependencies.items():
        assert properties["Dependency.Type"] == "http"
        assert properties["Dependency.Success"] == str(code == "200")

    # Each item the metrics were extracted from says so, and only those.
    requests_items = ingestion.named("Request")
    assert len(requests_items) == 6
    assert all(
        e["data"]["baseData"]["properties"].get("_MS.ProcessedByMetricExtractors") == "True"
        for e in requests_items
    )
    http_dependencies = [
        e for e in ingestion.named("RemoteDependency") if e["data"]["baseData"]["type"] == "HTTP"
    ]
    assert len(http_dependencies) == 7
    assert all(
        e["data"]["baseData"]["properties"]["_MS.ProcessedByMetricExtractors"] == "True"
        for e in http_dependencies
    )


def test_without_metrics_to_azure_items_are_not_marked_as_extracted(ingestion: Ingestion) -> None:
    app = Flask("azure_views_traces_only")

    @app.get("/ok")
    def ok() -> str:
        return "fine"

    _configure(ingestion, app=app, metrics_exporter="none")
    with _serving(app) as url:
        assert requests.get(f"{url}/ok", timeout=5).status_code == 200
    obskit.shutdown(timeout=5)
    (request,) = ingestion.named("Request")
    (dependency,) = ingestion.named("RemoteDependency")  # the test's own call, through requests
    # Application Insights then extracts requests/duration and dependencies/duration itself.
    for item in (request, dependency):
        assert "_MS.ProcessedByMetricExtractors" not in item["data"]["baseData"].get("properties", {})


def test_event_becomes_a_custom_event_with_its_attributes(ingestion: Ingestion) -> None:
    _configure(ingestion)
    with obskit.trace_operation("checkout"):
        obskit.event("order_placed", order_id=42, region="eu", password="hunter2")
    logging.getLogger("azure_views.app").info("a plain line")
    obskit.shutdown(timeout=5)

    (item,) = ingestion.named("Event")
    data = item["data"]["baseData"]
    assert data["name"] == "order_placed"
    assert data["properties"]["region"] == "eu"
    assert data["properties"]["order_id"] == "42"
    assert data["properties"]["password"] == "[REDACTED]"
    (dependency,) = [
        e for e in ingestion.named("RemoteDependency") if e["data"]["baseData"]["name"] == "checkout"
    ]
    assert item["tags"]["ai.operation.id"] == dependency["tags"]["ai.operation.id"]
    assert item["tags"]["ai.operation.parentId"] == dependency["data"]["baseData"]["id"]
    # Plain log lines stay traces.
    assert [e["data"]["baseData"]["message"] for e in ingestion.named("Message")] == ["a plain line"]


def test_histograms_track_min_and_max_only_while_an_azure_metric_exporter_runs(
    ingestion: Ingestion,
) -> None:
    from prometheus_client import Histogram as PromHistogram

    from obskit._core import state as _state
    from obskit._recording import store as _store

    def kind(name: str) -> type:
        obskit.MetricsCollector().histogram(name, "h").observe(1.0)
        return type(_state.STATE.store.registry._names_to_collectors[name])

    suffix = uuid.uuid4().hex[:8]
    obskit.configure(service_name="azure-views", metrics_exporter="console", metric_export_interval_ms=60_000)
    assert kind(f"azure_views_plain_{suffix}") is PromHistogram  # nothing added to the hot path
    _configure(ingestion, metric_export_interval_ms=60_000)
    assert issubclass(kind(f"azure_views_tracked_{suffix}"), _store._ExtremesHistogram)
    obskit.shutdown(timeout=5)
    assert _store._Extremes.users == 0
