"""A real Prometheus sees the first increment of a series bound ahead (``labels()``), not of one born
at its first recording: why prometheus_client's users bind their known series at start-up, and why
obskit's bound handles expose theirs at 0 as it does."""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid
from collections.abc import Callable

import pytest
from peers import QUIET, Prometheus, http_get, needs_prometheus, wait_until

import obskit
import obskit.prometheus

pytestmark = pytest.mark.integration


def value_at(server: Prometheus, promql: str, at: float) -> float | None:
    """The value of a query answering at most one series, evaluated at ``at`` (seconds)."""
    query = urllib.parse.urlencode({"query": promql, "time": f"{at:.3f}"})
    status, body = http_get(f"{server.url}/api/v1/query?{query}")
    assert status == 200, body
    result = json.loads(body)["data"]["result"]
    assert len(result) <= 1, result
    return float(result[0]["value"][1]) if result else None


@needs_prometheus
def test_increase_sees_the_first_increment_of_a_series_bound_ahead(
    prometheus: Callable[..., Prometheus],
) -> None:
    obskit.configure(**QUIET, metrics_exporter="prometheus", prometheus_port=0)
    host, port = obskit.prometheus.server_address() or ("", 0)
    name = f"payments_{uuid.uuid4().hex[:8]}"
    metrics = obskit.MetricsCollector()
    bound = metrics.counter(name, labels=["status"]).labels(status="paid")  # at 0 from here
    late = metrics.counter(f"{name}_late", labels=["status"])  # its series is born at its first inc

    server = prometheus(f"{host}:{port}")  # after a first scrape: the bound series' 0 is stored
    bound.inc()
    late.inc(status="paid")
    done = time.time()
    # Two scrapes after the increments (the late series needs two samples for an increase at all),
    # then every query evaluated at the last one, so nothing is extrapolated past it.
    at = wait_until(
        lambda: (t := value_at(server, 'timestamp(up{job="obskit"})', time.time())) and t > done + 1.1 and t,
        "two scrapes after the increments",
        30,
    )
    assert value_at(server, f'{name}_total{{status="paid"}}', at) == 1
    assert value_at(server, f'increase({name}_total{{status="paid"}}[5m])', at) == 1
    # The series born between two scrapes: Prometheus has no sample before its first increment.
    assert value_at(server, f'{name}_late_total{{status="paid"}}', at) == 1
    assert value_at(server, f'increase({name}_late_total{{status="paid"}}[5m])', at) == 0
