"""What Application Insights' standard views need, against the loopback ingestion endpoint.

Histogram min/max (charts of a metric's min and max), the pre-aggregated standard metrics
behind the Requests and Dependencies charts, and custom events.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from azure_ingestion import Ingestion

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
