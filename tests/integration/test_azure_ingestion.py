"""The azure backend against a loopback Application Insights ingestion endpoint.

The endpoint (azure_ingestion.py, the ``ingestion`` fixture) receives the exporter's real
``POST /v2.1/track`` requests and parses them strictly.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Any

import pytest
from azure_ingestion import IKEY, Ingestion
from opentelemetry import trace
from opentelemetry.trace import SpanKind

import obskit
from obskit._core import state as _state
from obskit._export import azure as _azure

pytestmark = pytest.mark.integration


def _configure(ingestion: Ingestion, **extra: Any) -> None:
    settings: dict[str, Any] = {
        "service_name": "azure-it",
        "traces_exporter": "azure",
        "metrics_exporter": "azure",
        "logs_exporter": "azure",
        "azure_connection_string": ingestion.connection_string,
    }
    obskit.configure(**{**settings, **extra})


def _dropped(signal: str, reason: str = "export_failed") -> float:
    value = _state.STATE.store.registry.get_sample_value(
        "obskit_telemetry_dropped_total", {"signal": signal, "reason": reason}
    )
    return value or 0.0


def test_configure_makes_no_request_and_starts_no_exporter_thread(ingestion: Ingestion) -> None:
    before = {t.ident for t in threading.enumerate()}
    _configure(ingestion, metric_export_interval_ms=60_000)
    time.sleep(1.0)
    assert ingestion.requests == []
    started = [t.name for t in threading.enumerate() if t.ident not in before]
    # The SDK's own batch and metric-reader threads only; no statsbeat, control plane, storage.
    assert not [n for n in started if "Configuration" in n or "Storage" in n or "statsbeat" in n.lower()]
    logging.getLogger("azure_it.quiet").warning("first record")
    obskit.shutdown(timeout=5)
    assert len(ingestion.named("Message")) == 1


def test_spans_logs_and_metrics_arrive_as_application_insights_envelopes(ingestion: Ingestion) -> None:
    suffix = uuid.uuid4().hex[:8]
    for _ in range(3):
        _configure(ingestion, metric_export_interval_ms=200)
    app = logging.getLogger(f"azure_it.app.{suffix}")
    metrics = obskit.MetricsCollector()
    orders = metrics.counter(f"azure_it_orders_{suffix}", "Orders", labels=["kind"])
    latency = metrics.histogram(f"azure_it_latency_{suffix}_seconds", "Latency", buckets=[0.1, 0.5, 1])

    @obskit.trace_operation("azure_it_work")
    def work() -> None:
        app.info("info inside the work span %s", suffix)

    with trace.get_tracer("azure-it").start_as_current_span("GET /check", kind=SpanKind.SERVER) as server:
        work()
        app.warning("warning inside the request span %s", suffix)
        app.error("error inside the request span %s", suffix)
        try:
            raise ZeroDivisionError("division in the request")
        except ZeroDivisionError:
            app.exception("exception inside the request span %s", suffix)
        for name in (
            "azure.monitor.opentelemetry.exporter.it",
            "azure.core.it",
            "opentelemetry.sdk.it",
            "obskit.it",
        ):
            logging.getLogger(name).warning("internal-record-%s %s", name, suffix)
    app.info("exactly once %s", suffix)
    orders.inc(3, kind="web")
    for value in (0.05, 0.2, 0.7):
        latency.observe(value)
    counter_name = f"azure_it_orders_{suffix}_total"
    assert ingestion.wait_for(lambda: any(p["value"] == 3 for p in ingestion.metric_points(counter_name)))
    orders.inc(2, kind="web")
    assert ingestion.wait_for(lambda: any(p["value"] == 2 for p in ingestion.metric_points(counter_name)))
    obskit.shutdown(timeout=5)

    trace_id = format(server.get_span_context().trace_id, "032x")
    server_span_id = format(server.get_span_context().span_id, "016x")
    requests = [e for e in ingestion.named("Request") if e["data"]["baseData"]["name"] == "GET /check"]
    assert len(requests) == 1
    request = requests[0]
    assert request["iKey"] == IKEY
    assert request["tags"]["ai.operation.id"] == trace_id
    assert request["tags"]["ai.cloud.role"] == "azure-it"
    assert request["data"]["baseData"]["id"] == server_span_id
    dependencies = [
        e for e in ingestion.named("RemoteDependency") if e["data"]["baseData"]["name"] == "azure_it_work"
    ]
    assert len(dependencies) == 1
    assert dependencies[0]["tags"]["ai.operation.id"] == trace_id
    assert dependencies[0]["tags"]["ai.operation.parentId"] == server_span_id
    assert dependencies[0]["data"]["baseData"]["type"] == "InProc"

    messages = {
        e["data"]["baseData"]["message"]: e
        for e in ingestion.named("Message")
        if suffix in e["data"]["baseData"]["message"]
    }
    levels = {
        text.split(" inside")[0]: e["data"]["baseData"]["severityLevel"] for text, e in messages.items()
    }
    assert levels == {"info": 1, "warning": 2, "error": 3, f"exactly once {suffix}": 1}
    for text, envelope in messages.items():
        if "inside" in text:
            assert envelope["tags"]["ai.operation.id"] == trace_id
    dependency_id = dependencies[0]["data"]["baseData"]["id"]
    assert messages[f"info inside the work span {suffix}"]["tags"]["ai.operation.parentId"] == dependency_id
    exceptions = [e for e in ingestion.named("Exception") if suffix in json.dumps(e)]
    assert len(exceptions) == 1
    details = exceptions[0]["data"]["baseData"]["exceptions"][0]
    assert details["typeName"] == "ZeroDivisionError"
    assert "division in the request" in details["stack"]
    assert exceptions[0]["data"]["baseData"]["severityLevel"] == 3
    assert exceptions[0]["tags"]["ai.operation.id"] == trace_id
    once = [
        e for e in ingestion.named("Message") if e["data"]["baseData"]["message"] == f"exactly once {suffix}"
    ]
    assert len(once) == 1
    everything = json.dumps(ingestion.envelopes)
    assert "internal-record-" not in everything

    values = [p["value"] for p in ingestion.metric_points(counter_name)]
    assert [v for v in values if v] == [3, 2], values  # deltas, not the cumulative 3 then 5
    counter_envelope = next(
        e for e in ingestion.named("Metric") if e["data"]["baseData"]["metrics"][0]["name"] == counter_name
    )
    assert counter_envelope["data"]["baseData"]["properties"] == {"kind": "web"}
    histogram = ingestion.metric_points(f"azure_it_latency_{suffix}_seconds")
    assert sum(p.get("count", 1) for p in histogram if p["value"]) == 3
    assert sum(p["value"] for p in histogram) == pytest.approx(0.95)
    assert [(p["min"], p["max"]) for p in histogram if p.get("count")] == [(0.05, 0.7)]


@pytest.mark.parametrize(
    ("status", "headers"),
    [(500, {}), (503, {}), (429, {}), (429, {"Retry-After": "30"})],
    ids=["500", "503", "429", "429-retry-after-30s"],
)
def test_failing_ingestion_costs_the_app_nothing_and_counts_drops(
    ingestion: Ingestion, status: int, headers: dict[str, str]
) -> None:
    ingestion.status, ingestion.headers = status, headers
    shutdown_timeout = 5.0
    _configure(ingestion, metric_export_interval_ms=60_000, shutdown_timeout=shutdown_timeout)
    before = {signal: _dropped(signal) for signal in ("traces", "logs", "metrics")}
    app = logging.getLogger("azure_it.failing")
    tracer = trace.get_tracer("azure-it.failing")
    for i in range(5):
        with tracer.start_as_current_span(f"warm-up-{i}"):
            app.warning("warm-up %d", i)
    provider = _state.STATE.tracer_provider
    assert provider is not None
    flushing = threading.Thread(target=provider.force_flush, daemon=True)
    flushing.start()
    assert ingestion.wait_for(lambda: len(ingestion.requests) > 0, timeout=5)

    durations = []
    for i in range(50):
        start = time.perf_counter()
        with tracer.start_as_current_span(f"while-failing-{i}"):
            app.warning("while failing %d", i)
        durations.append(time.perf_counter() - start)
    # Not a speed target: a call that waited for the failing peer would take the exporter's retry
    # back-off (1 s and more), and every call would. The median says that; a single slow call on
    # a machine shared with parallel tests says nothing (one took 0.84 s under load).
    assert sorted(durations)[len(durations) // 2] < 0.05
    obskit.MetricsCollector().counter("azure_it_failing_events").inc()

    start = time.monotonic()
    obskit.shutdown()
    assert time.monotonic() - start < shutdown_timeout + 1.0
    flushing.join(timeout=5)
    # Without offline storage the exporter reports a failed batch as FAILURE (after its bounded
    # retries for 500/503; at once for 429), and obskit counts every item of it.
    assert _dropped("traces") - before["traces"] == 55
    assert _dropped("logs") - before["logs"] == 55
    assert _dropped("metrics") - before["metrics"] >= 1
    assert ingestion.envelopes == []
    if status >= 500:  # azure-core retried each batch RETRIES times; a 429 is never waited for here
        assert len(ingestion.requests) % (_azure.RETRIES + 1) == 0


def test_failing_then_recovering_ingestion_writes_one_warning_and_one_recovery_line(
    ingestion: Ingestion, capfd: pytest.CaptureFixture[str]
) -> None:
    """500s for a while, then 200s: no request chatter, one warning, one line saying it works again."""
    ingestion.status = 500
    _configure(ingestion, metric_export_interval_ms=300, logs_exporter="azure,console")
    app = logging.getLogger("azure_it.recovering")
    tracer = trace.get_tracer("azure-it.recovering")

    def busy(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with tracer.start_as_current_span("recovering"):
                app.warning("recovering")
            time.sleep(0.05)

    busy(10.0)
    failing_requests = len(ingestion.requests)
    assert failing_requests > 10
    ingestion.status = 200
    deadline = time.monotonic() + 30
    while not (
        ingestion.named("RemoteDependency") and ingestion.named("Message") and ingestion.named("Metric")
    ):
        assert time.monotonic() < deadline, "nothing arrived once the ingestion endpoint answered 200"
        busy(0.2)
    busy(2.0)
    out, err = capfd.readouterr()
    obskit.shutdown(timeout=5)

    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    azure = [line for line in lines if line["logger"].startswith("azure.")]
    # The Azure SDK logs each request and response at INFO (URL, headers): none of it by default.
    assert [line for line in azure if line["level"] in ("DEBUG", "INFO")] == []
    assert len(azure) <= 1, azure
    recovered = [line for line in err.splitlines() if "work again" in line]
    assert len(recovered) == 1, err
    assert "exports to azure work again (logs, metrics, traces)" in recovered[0]
    assert [line for line in err.splitlines() if line.strip() and not line.startswith("obskit ")] == []


def test_azure_request_lines_come_back_when_the_app_asks_for_them(
    ingestion: Ingestion, capfd: pytest.CaptureFixture[str]
) -> None:
    azure_logger = logging.getLogger("azure")
    azure_logger.setLevel(logging.INFO)
    try:
        _configure(ingestion, metric_export_interval_ms=60_000, logs_exporter="azure,console")
        with trace.get_tracer("azure-it.asked").start_as_current_span("asked"):
            pass
        obskit.shutdown(timeout=5)
    finally:
        azure_logger.setLevel(logging.NOTSET)
    out = capfd.readouterr().out
    policy = [
        json.loads(line)
        for line in out.splitlines()
        if line.startswith("{") and "http_logging_policy" in line
    ]
    assert any(line["level"] == "INFO" and "Request URL" in line["message"] for line in policy), policy


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_one_bad_log_record_costs_no_other_record(ingestion: Ingestion) -> None:
    from obskit._export.logexport import ObskitLoggingHandler

    _configure(ingestion)
    # obskit's exporting handler alone: pytest's capture handlers would keep the bad values raw
    # for its report, which pytest-xdist cannot send.
    logger = logging.getLogger("azure_it.bad_values")
    logger.handlers[:] = [h for h in logging.getLogger().handlers if isinstance(h, ObskitLoggingHandler)]
    logger.propagate = False
    try:
        before = _dropped("logs")
        for i in range(50):
            logger.warning("good %d", i)
        logger.warning(
            "bad \ud800 password=hunter2",
            extra={
                "wide": 2**70,
                "huge": 10**5000,
                "broken": _Unprintable(),
                "key\udc80": "value \udcff",
                "nested": {"client_secret": "s3cr3t-nested", "headers": {"Authorization": "Basic dXNlcjpw"}},
            },
        )
        for i in range(50, 100):
            logger.warning("good %d", i)
        obskit.shutdown(timeout=5)
    finally:
        logger.handlers.clear()
        logger.propagate = True
    messages = {e["data"]["baseData"]["message"]: e for e in ingestion.named("Message")}
    assert set(messages) == {f"good {i}" for i in range(100)} | {"bad \\ud800 password=[REDACTED]"}
    assert _dropped("logs") == before
    properties = messages["bad \\ud800 password=[REDACTED]"]["data"]["baseData"]["properties"]
    assert properties["wide"] == str(2**70)
    assert properties["huge"] == "[unrenderable int]"
    assert properties["broken"] == "[unrenderable _Unprintable]"
    assert properties["key\\udc80"] == "value \\udcff"
    assert json.loads(properties["nested"]) == {
        "client_secret": "[REDACTED]",
        "headers": {"Authorization": "[REDACTED]"},
    }
    assert "s3cr3t-nested" not in json.dumps(ingestion.envelopes)


def test_an_http_client_s_request_line_is_exported_redacted(ingestion: Ingestion) -> None:
    httpx = pytest.importorskip("httpx")
    _configure(ingestion)
    port = ingestion.server.server_address[1]
    with httpx.Client() as client:
        client.get(f"http://user:pw-in-url@127.0.0.1:{port}/x?api_key=K9-query-key")
    obskit.shutdown(timeout=5)
    (message,) = [
        e["data"]["baseData"]["message"]
        for e in ingestion.named("Message")
        if e["data"]["baseData"]["message"].startswith("HTTP Request:")
    ]
    assert "api_key=[REDACTED]" in message
    assert "pw-in-url" not in message
    assert "K9-query-key" not in json.dumps(ingestion.named("Message"))
