"""A label value no exposition can encode never costs a scrape, a push or a metric export.

A lone surrogate (``/metrics`` and pushes are UTF-8), an int and an object whose ``str()`` raises,
recorded as label values, reach a real Prometheus server, promtool, the push gateway, the OTLP
receiver and the Azure ingestion endpoint in their safe forms, beside the good series.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable

import pytest
from peers import (
    QUIET,
    Prometheus,
    gateway_value,
    http_get,
    needs_prometheus,
    needs_promtool,
    needs_pushgateway,
    sample,
    wait_until,
)
from test_prometheus_server import promtool_check

import obskit
import obskit.prometheus
import obskit.testing
from obskit._core import state as _state
from obskit._recording.store import Store

try:  # a package if tests/integration gets an __init__.py, a rootdir module otherwise
    from . import otlp_receiver as rx
    from .azure_ingestion import Ingestion
except ImportError:
    import otlp_receiver as rx  # type: ignore[no-redef]
    from azure_ingestion import Ingestion  # type: ignore[no-redef]

pytestmark = pytest.mark.integration

ESCAPED = "caf\\udce9"  # "caf\udce9" (a lone surrogate) as it is exposed


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__


@pytest.fixture(autouse=True)
def _own_metric_store() -> None:
    _state.set_state(dataclasses.replace(_state.STATE, store=Store()))


def _record(name: str) -> None:
    """One good series and three with bad values, on a counter called ``name``."""
    counter = obskit.MetricsCollector().counter(name, "Bad label values.", labels=["what"])
    counter.inc(what="fine")
    counter.inc(2, what="caf\udce9")
    counter.inc(3, what=404)
    counter.inc(4, what=_Unprintable())


EXPECTED = {"fine": 1.0, ESCAPED: 2.0, "404": 3.0, "[unrenderable _Unprintable]": 4.0}


def _dropped_metrics() -> float:
    value = _state.STATE.store.registry.get_sample_value(
        "obskit_telemetry_dropped_total", {"signal": "metrics", "reason": "export_failed"}
    )
    return value or 0.0


# -- scrape, promtool, push ---------------------------------------------------------------------


@needs_promtool
def test_the_scrape_answers_and_promtool_accepts_a_lone_surrogate_label() -> None:
    obskit.configure(**QUIET, metrics_exporter="prometheus", prometheus_port=0)
    name = f"bad_labels_{uuid.uuid4().hex[:8]}"
    _record(name)
    host, port = obskit.prometheus.server_address() or ("", 0)
    status, text = http_get(f"http://{host}:{port}/metrics")
    assert status == 200
    for what, value in EXPECTED.items():
        shown = what.replace("\\", "\\\\")  # the exposition escapes a backslash in a label value
        assert sample(text, f"{name}_total", what=shown) == value, what
    promtool_check(text)


@needs_prometheus
def test_real_prometheus_stores_the_safe_label_values(prometheus: Callable[..., Prometheus]) -> None:
    obskit.configure(**QUIET, metrics_exporter="prometheus", prometheus_port=0)
    host, port = obskit.prometheus.server_address() or ("", 0)
    with obskit.testing.capture():  # the endpoint serves the capture's fresh store
        name = f"bad_labels_{uuid.uuid4().hex[:8]}"
        _record(name)
        server = prometheus(f"{host}:{port}")
        wait_until(lambda: server.scalar(f"sum({name}_total)") == 10, "the scrape of every series", 60)
        got = {r["metric"]["what"]: float(r["value"][1]) for r in server.query(f"{name}_total")}
        assert server.scalar('up{job="obskit"}') == 1
    assert got == EXPECTED


@needs_pushgateway
def test_the_push_gateway_takes_a_push_with_a_lone_surrogate_label(pushgateway: str) -> None:
    obskit.configure(
        **QUIET,
        metrics_exporter="prometheus",
        prometheus_port=0,
        pushgateway_url=pushgateway,
        pushgateway_job="bad-labels",
        push_on="shutdown",
    )
    name = f"bad_labels_{uuid.uuid4().hex[:8]}"
    _record(name)
    assert obskit.prometheus.push(timeout=10)
    for what, value in EXPECTED.items():
        shown = what.replace("\\", "\\\\")
        assert gateway_value(pushgateway, f"{name}_total", job="bad-labels", what=shown) == value, what
    obskit.shutdown(timeout=10)  # its push too, while the gateway is up


# -- OTLP and Azure metric exports ----------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_otlp_metric_export_carries_the_safe_label_values(protocol: str) -> None:
    name = f"bad_labels_{uuid.uuid4().hex[:8]}"
    with rx.receiver(protocol) as receiver:
        obskit.configure(
            **QUIET,
            service_name="labels-it",
            metrics_exporter="otlp",
            otlp_protocol=protocol,
            otlp_endpoint=receiver.endpoint,
            metric_export_interval_ms=100,
            shutdown_timeout=5,
        )
        _record(name)
        assert receiver.store.wait_for(
            lambda: f"{name}_total" in receiver.store.metrics() or name in receiver.store.metrics()
        )
        assert _dropped_metrics() == 0
        obskit.shutdown(timeout=5)
        metrics = receiver.store.metrics()
    metric = metrics.get(f"{name}_total") or metrics[name]
    got = {rx.attributes(p.attributes)["what"]: p.as_double or p.as_int for p in metric.sum.data_points}
    assert got == EXPECTED


def test_azure_metric_export_carries_the_safe_label_values(ingestion: Ingestion) -> None:
    name = f"bad_labels_{uuid.uuid4().hex[:8]}"
    obskit.configure(
        **QUIET,
        service_name="labels-azure",
        metrics_exporter="azure",
        azure_connection_string=ingestion.connection_string,
        metric_export_interval_ms=100,
    )
    _record(name)

    def points() -> dict[str, float]:
        found: dict[str, float] = {}
        for envelope in ingestion.named("Metric"):
            for point in envelope["data"]["baseData"]["metrics"]:
                if point["name"] in (name, f"{name}_total"):
                    what = envelope["data"]["baseData"]["properties"]["what"]
                    found[what] = found.get(what, 0.0) + point["value"]
        return found

    assert ingestion.wait_for(lambda: set(points()) == set(EXPECTED))
    assert _dropped_metrics() == 0
    assert json.dumps(ingestion.envelopes).count("udce9") >= 1
    assert points() == EXPECTED or all(points()[k] >= v for k, v in EXPECTED.items())
