"""The Prometheus backend: exposition and content negotiation, exemplars, the standalone server,
the push gateway client, multi-process mode and the gunicorn hook. Loopback sockets only."""

from __future__ import annotations

import asyncio
import gzip
import http.server
import inspect
import math
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from prometheus_client import CollectorRegistry, values
from prometheus_client import make_wsgi_app as prometheus_wsgi_app
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

import obskit
import obskit.prometheus
import obskit.testing
from logcapture import messages_of
from obskit import MetricDeclarationError
from obskit._core import state as _state
from obskit._export import exposition
from obskit._export import prometheus as _prometheus
from obskit.testing import Capture

sys.path.insert(0, str(Path(__file__).parent / "integration"))
from peers import free_port, http_server

QUIET: dict[str, Any] = {"traces_exporter": "none", "logs_exporter": "none"}
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def call_wsgi(app: Any, path: str = "/metrics", **headers: str) -> tuple[str, dict[str, str], bytes]:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", **headers}
    seen: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen["status"], seen["headers"] = status, dict(response_headers)

    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body


def http_get(url: str, accept: str | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.headers["Content-Type"], response.read().decode()


def exemplars(text: str, sample_name: str) -> list[dict[str, str]]:
    return [
        dict(sample.exemplar.labels)
        for family in openmetrics_families(text)
        for sample in family.samples
        if sample.name == sample_name and sample.exemplar is not None
    ]


def exemplar_buckets(text: str, sample_name: str) -> list[tuple[str, str]]:
    """(le, exemplar trace_id) of each bucket line of ``sample_name`` that has an exemplar."""
    return [
        (sample.labels["le"], sample.exemplar.labels["trace_id"])
        for family in openmetrics_families(text)
        for sample in family.samples
        if sample.name == sample_name and sample.exemplar is not None
    ]


def configure_prometheus(**settings: Any) -> tuple[str, int]:
    obskit.configure(**{**QUIET, "metrics_exporter": "prometheus", "prometheus_port": 0, **settings})
    address = obskit.prometheus.server_address()
    assert address is not None
    return address


@pytest.fixture
def fast_bind_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_prometheus, "BIND_RETRY_SECONDS", 0.05)


# -- the public module ----------------------------------------------------------------------------


def test_public_module_all_is_sorted_exported_and_documented() -> None:
    names = obskit.prometheus.__all__
    assert list(names) == sorted(names)
    for name in names:
        assert inspect.getdoc(getattr(obskit.prometheus, name)), name


def test_importing_the_module_starts_nothing_and_loads_no_sdk(tmp_path: Path) -> None:
    probe = (
        "import sys, threading, obskit.prometheus; "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')), threading.active_count())"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=tmp_path, check=True
    )
    assert result.stdout.strip() == "[] 1"


# -- exposition and content negotiation -----------------------------------------------------------


def test_text_format_by_default(obskit_capture: Capture) -> None:
    obskit.MetricsCollector().counter(unique("text_default")).inc()
    status, headers, body = call_wsgi(obskit.prometheus.make_wsgi_app())
    assert status == "200 OK"
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"# TYPE obskit_telemetry_dropped_total counter" in body


def test_openmetrics_when_the_scraper_asks_for_it(obskit_capture: Capture) -> None:
    name = unique("negotiated")
    obskit.MetricsCollector().counter(name).inc(2)
    accept = f"{OPENMETRICS},text/plain;version=0.0.4;q=0.5,*/*;q=0.1"  # what Prometheus sends
    _, headers, body = call_wsgi(obskit.prometheus.make_wsgi_app(), HTTP_ACCEPT=accept)
    assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    text = body.decode()
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics_families(text)}
    assert families[name].samples[0].value == 2


def test_gzip_when_accepted(obskit_capture: Capture) -> None:
    obskit.MetricsCollector().counter(unique("zipped")).inc()
    _, headers, body = call_wsgi(obskit.prometheus.make_wsgi_app(), HTTP_ACCEPT_ENCODING="gzip")
    assert headers["Content-Encoding"] == "gzip"
    assert b"obskit_telemetry_dropped_total" in gzip.decompress(body)
    _, headers, _ = call_wsgi(
        obskit.prometheus.make_wsgi_app(disable_compression=True), HTTP_ACCEPT_ENCODING="gzip"
    )
    assert "Content-Encoding" not in headers


def test_exposition_follows_the_current_store() -> None:
    name = unique("follows")
    app = obskit.prometheus.make_wsgi_app()
    with obskit.testing.capture():
        obskit.MetricsCollector().counter(name).inc()
        assert f"{name}_total 1.0".encode() in call_wsgi(app)[2]
    with obskit.testing.capture():
        assert f"{name}_total 1.0".encode() not in call_wsgi(app)[2]


def test_asgi_app_negotiates_like_the_wsgi_app(obskit_capture: Capture) -> None:
    name = unique("asgi")
    obskit.MetricsCollector().counter(name).inc()
    app = obskit.prometheus.make_asgi_app()

    async def get(accept: str) -> tuple[int, dict[bytes, bytes], bytes]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/metrics", "query_string": b""}
        await app({**scope, "headers": [(b"accept", accept.encode())]}, receive, send)
        return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]

    status, headers, body = asyncio.run(get("text/plain"))
    assert status == 200
    assert headers[b"Content-Type"].startswith(b"text/plain; version=0.0.4")
    assert f"{name}_total 1.0".encode() in body
    _, headers, body = asyncio.run(get(OPENMETRICS))
    assert headers[b"Content-Type"].startswith(b"application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


def test_a_failing_collection_answers_500_and_never_raises(
    obskit_capture: Capture, swallow_internal_errors: None
) -> None:
    class Broken:
        def describe(self) -> list[Any]:
            return []

        def collect(self) -> list[Any]:
            raise RuntimeError("collector broke")

    obskit_capture.store.registry.register(Broken())
    status, _, body = call_wsgi(obskit.prometheus.make_wsgi_app())
    assert status.startswith("500")
    assert b"could not collect" in body

    sent: list[dict[str, Any]] = []

    async def scrape() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"", "headers": []}
        await obskit.prometheus.make_asgi_app()(scope, receive, send)

    asyncio.run(scrape())
    assert sent[0]["status"] == 500


# -- the text format written by obskit (_export/exposition.py) -----------------------------------


def _prometheus_client_text(registry: Any, openmetrics: bool = False) -> bytes:
    """What prometheus_client writes for ``registry``, without the ``_created`` samples."""
    from prometheus_client.exposition import generate_latest
    from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

    from obskit._export.exposition import without_created

    class Collected:
        def collect(self) -> Any:
            return without_created(registry.collect())

    return (openmetrics_latest if openmetrics else generate_latest)(Collected())  # type: ignore[arg-type]


def _takes_utf8_names() -> bool:
    from prometheus_client import CollectorRegistry, Counter

    try:
        Counter("utf8.check", "A UTF-8 name.", ["a.b"], registry=CollectorRegistry())
    except ValueError:  # prometheus_client before 0.22
        return False
    return True


#: Whether the installed prometheus_client takes UTF-8 metric and label names (0.22 on).
_UTF8_NAMES = _takes_utf8_names()


def _awkward_registry() -> Any:
    """Every kind of metric and collector, with values and labels that need care when written."""
    from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, Info, Summary
    from prometheus_client.core import GaugeMetricFamily

    registry = CollectorRegistry(auto_describe=True)
    counter = Counter("awk_requests", "Back\\slash and\nnew line.", ["z", "method", "a"], registry=registry)
    counter.labels(z="1", method='say "hi"\\ \n ok', a="é ü 中").inc(3, exemplar={"trace_id": 'a"\\b'})
    counter.labels(z="", method="GET", a="x").inc(1e20)
    counter.labels(z="gone", method="DELETE", a="x").inc()
    counter.remove("gone", "DELETE", "x")
    Counter("awk_empty", "Labelled, no series yet.", ["route"], registry=registry)
    Counter("awk_bytes", "With a unit.", unit="bytes", registry=registry).inc(1234567.0)
    gauge = Gauge("awk_level", "Odd values.", ["kind"], registry=registry)
    for kind, value in (
        ("inf", math.inf),
        ("ninf", -math.inf),
        ("nan", math.nan),
        ("neg", -0.5),
        ("big", 1e7),
    ):
        gauge.labels(kind=kind).set(value)
    Gauge("awk_function", "Set by a function.", registry=registry).set_function(lambda: 42.0)
    labelled_function = Gauge("awk_child_function", "A child set by a function.", ["k"], registry=registry)
    labelled_function.labels(k="v").set_function(lambda: 7.0)
    latency = Histogram("awk_latency_seconds", "Latency.", ["route", "lz", "la"], registry=registry)
    latency.labels(route="/a", lz="1", la="2").observe(0.3, exemplar={"span_id": "s", "trace_id": "t"})
    latency.labels(route="/b", lz="3", la="4").observe(99)
    Histogram("awk_plain", "No labels.", buckets=(1, 2.5, 1e6), registry=registry).observe(2)
    Histogram(
        "awk_negative", "A negative first bucket: no _sum.", buckets=(-1, 0, 1), registry=registry
    ).observe(0.5)
    Summary("awk_summary", "A summary.", ["s"], registry=registry).labels(s="x").observe(4)
    Info("awk_build", "An info.", registry=registry).info({"version": "1.2"})
    Enum("awk_state", "An enum.", states=["up", "down"], registry=registry).state("down")
    if _UTF8_NAMES:
        Counter("awk.dotted", "A UTF-8 name.", ["a.b"], registry=registry).labels("v").inc()

    class Custom:
        def collect(self) -> Any:
            family = GaugeMetricFamily("awk_custom", "From a collector.", labels=["x"])
            family.add_metric(["y"], 5)
            yield family

    registry.register(Custom())

    class OwnSamples(Counter):
        def _child_samples(self) -> Any:
            return super()._child_samples()[:1]

    OwnSamples("awk_own", "A subclass with its own samples.", registry=registry).inc()
    return registry


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_obskits_writer_writes_the_bytes_prometheus_client_writes(openmetrics: bool) -> None:
    from obskit._export.exposition import write

    registry = _awkward_registry()
    expected = _prometheus_client_text(registry, openmetrics)
    assert b"_created" not in expected
    assert (b" # {" in expected) is openmetrics  # exemplars, in OpenMetrics only
    assert write(registry, openmetrics) == expected
    assert write(registry, openmetrics) == expected  # the second time from the cached label text
    for collector in list(registry._collector_to_names):
        if getattr(collector, "_name", "") == "awk_requests":
            collector.labels(z="gone", method="DELETE", a="x").inc(2)  # a removed series comes back
            collector.labels(z="1", method='say "hi"\\ \n ok', a="é ü 中").inc()
    assert write(registry, openmetrics) == _prometheus_client_text(registry, openmetrics)


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_obskits_writer_with_target_info_is_prometheus_clients_own(openmetrics: bool) -> None:
    from prometheus_client import CollectorRegistry, Counter

    from obskit._export.exposition import write

    registry = CollectorRegistry(target_info={"service": "s"})
    Counter("ti_requests", "Requests.", registry=registry).inc()
    assert write(registry, openmetrics) == _prometheus_client_text(registry, openmetrics)
    assert b"target_info" in (write(registry, openmetrics) or b"")


def test_a_writer_that_disagrees_with_prometheus_client_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client import CollectorRegistry, Counter

    from obskit._export import exposition

    monkeypatch.setattr(exposition, "_AGREES", [None, None])
    monkeypatch.setattr(exposition, "_escape", lambda value: value)  # escapes nothing: wrong bytes
    registry = CollectorRegistry()
    Counter("plain_requests", "Requests.", registry=registry).inc()
    assert exposition.write(registry, False) is None
    assert exposition._AGREES[False] is False


def test_a_writer_that_cannot_read_prometheus_client_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client import CollectorRegistry, Counter

    from obskit._export import exposition

    def gone(metric: Any) -> Any:  # a prometheus_client that keeps its series elsewhere
        raise AttributeError("'Counter' object has no attribute '_metrics'")

    monkeypatch.setattr(exposition, "_AGREES", [None, None])
    monkeypatch.setattr(exposition, "_children", gone)
    registry = CollectorRegistry()
    Counter("plain_requests", "Requests.", registry=registry).inc()
    assert exposition.write(registry, False) is None
    assert exposition._AGREES == [False, None]


def test_a_scrape_reads_obskits_metrics_without_collecting_them(
    obskit_capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prometheus_client.metrics import MetricWrapperBase

    name = unique("not_collected")
    obskit.MetricsCollector().counter(name, labels=["route"]).labels(route="/").inc()
    # The first scrape in a process checks the writer against prometheus_client on a sample
    # registry (which collects): have it done before counting.
    call_wsgi(obskit.prometheus.make_wsgi_app())
    collected: list[str] = []
    original = MetricWrapperBase.collect

    def collect(self: Any) -> Any:
        collected.append(self._name)
        return original(self)

    monkeypatch.setattr(MetricWrapperBase, "collect", collect)
    status, _, body = call_wsgi(obskit.prometheus.make_wsgi_app())
    assert status == "200 OK"
    assert f'{name}_total{{route="/"}} 1.0\n'.encode() in body
    assert collected == []  # no sample objects built, then formatted, then thrown away


def test_obskits_text_answer_is_what_prometheus_client_answers(obskit_capture: Capture) -> None:
    metrics = obskit.MetricsCollector()
    counter = metrics.counter(unique("same_bytes"), labels=["method", "route"])
    counter.labels(method="GET", route='/a"b').inc(2)
    metrics.histogram(unique("same_seconds"), labels=["route"]).labels(route="/").observe(0.2)
    metrics.gauge(unique("same_level")).set(-3)
    expected = _prometheus_client_text(obskit_capture.store.registry)
    wsgi = obskit.prometheus.make_wsgi_app()
    for headers in ({}, {"HTTP_ACCEPT": "text/plain;version=0.0.4"}, {"HTTP_ACCEPT": "*/*"}):
        status, answer_headers, body = call_wsgi(wsgi, **headers)
        assert (status, answer_headers, body) == (
            "200 OK",
            {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
            expected,
        )
    _, answer_headers, body = call_wsgi(wsgi, HTTP_ACCEPT_ENCODING="gzip")
    assert answer_headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == expected

    async def asgi_body(headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/metrics", "query_string": b"", "headers": headers}
        await obskit.prometheus.make_asgi_app()(scope, receive, send)
        return sent

    sent = asyncio.run(asgi_body([]))
    assert sent[0]["headers"] == [(b"Content-Type", b"text/plain; version=0.0.4; charset=utf-8")]
    assert sent[1]["body"] == expected
    sent = asyncio.run(asgi_body([(b"Accept-Encoding", b"gzip")]))
    assert (b"Content-Encoding", b"gzip") in sent[0]["headers"]
    assert gzip.decompress(sent[1]["body"]) == expected


def test_obskits_openmetrics_answer_is_what_prometheus_client_answers(obskit_capture: Capture) -> None:
    obskit_capture.store.exemplars = True  # as the prometheus backend sets it
    name = unique("om_same")
    with obskit.trace_operation("exemplar-span"):
        obskit.MetricsCollector().histogram(name, labels=["route"]).labels(route="/").observe(0.2)
        obskit.MetricsCollector().counter(f"{name}_calls").inc()
    expected = _prometheus_client_text(obskit_capture.store.registry, openmetrics=True)
    assert b"trace_id" in expected
    accept = f"{OPENMETRICS},text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    status, headers, body = call_wsgi(obskit.prometheus.make_wsgi_app(), HTTP_ACCEPT=accept)
    assert (status, body) == ("200 OK", expected)
    assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")


def test_what_obskit_does_not_write_prometheus_client_answers(obskit_capture: Capture) -> None:
    name = unique("left_to_client")
    obskit.MetricsCollector().counter(name).inc()
    wsgi = obskit.prometheus.make_wsgi_app()
    selected = call_wsgi(wsgi, QUERY_STRING=f"name[]={name}_total")[2].decode()
    assert f"{name}_total 1.0" in selected
    assert "obskit_telemetry_dropped_total" not in selected
    utf8 = "text/plain;version=1.0.0;escaping=allow-utf-8"
    versioned = call_wsgi(wsgi, HTTP_ACCEPT=utf8)[1]
    # prometheus_client's answer: before 0.23 it has no such version and answers 0.0.4.
    assert versioned["Content-Type"] == choose_encoder(utf8)[1]
    assert call_wsgi(wsgi, HTTP_ACCEPT=OPENMETRICS)[2].endswith(b"# EOF\n")
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/metrics", "QUERY_STRING": ""}
    statuses: list[str] = []
    for app in (wsgi, prometheus_wsgi_app(CollectorRegistry())):
        app(dict(environ), lambda status, headers, exc_info=None: statuses.append(status))
    assert statuses[0] == statuses[1]  # 405 from prometheus_client 0.21 on, the metrics before


@pytest.mark.parametrize("nameless", [True, False], ids=["prometheus-client-0.25-on", "before-0.25"])
def test_a_name_selection_reads_obskits_metrics(
    obskit_capture: Capture, monkeypatch: pytest.MonkeyPatch, nameless: bool
) -> None:
    # obskit's collector names nothing; before 0.25 prometheus_client's name[] selection skips such
    # collectors (and CollectorRegistry has no support_collectors_without_names), so obskit selects.
    if nameless and "support_collectors_without_names" not in inspect.signature(CollectorRegistry).parameters:
        pytest.skip("prometheus_client before 0.25")
    monkeypatch.setattr(_prometheus, "_NAMELESS", nameless)
    name = unique("selected")
    obskit.MetricsCollector().counter(name).inc()
    obskit.MetricsCollector().histogram(f"{name}_seconds").observe(0.2)
    for accept in ("text/plain", OPENMETRICS):
        query = f"name[]={name}_total&name[]={name}_seconds_count"
        body = call_wsgi(obskit.prometheus.make_wsgi_app(), QUERY_STRING=query, HTTP_ACCEPT=accept)[2]
        samples = [line.split()[0] for line in body.decode().splitlines() if not line.startswith("#")]
        assert samples == [f"{name}_total", f"{name}_seconds_count"]


@pytest.mark.usefixtures("swallow_internal_errors")
def test_a_failing_text_writer_leaves_the_answer_to_prometheus_client(
    obskit_capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(registry: Any, openmetrics: bool) -> bytes:
        raise RuntimeError("writer broke")

    name = unique("fallback")
    obskit.MetricsCollector().counter(name).inc()
    monkeypatch.setattr(exposition, "write", broken)  # read at each scrape
    status, _, body = call_wsgi(obskit.prometheus.make_wsgi_app())
    assert status == "200 OK"
    assert f"{name}_total 1.0".encode() in body
    assert b"_created" not in body


# -- exemplars ------------------------------------------------------------------------------------


def openmetrics_text() -> str:
    return call_wsgi(obskit.prometheus.make_wsgi_app(), HTTP_ACCEPT=OPENMETRICS)[2].decode()


def test_histogram_inside_a_span_carries_its_trace_and_span_id(obskit_capture: Capture) -> None:
    obskit_capture.store.exemplars = True  # as the prometheus backend sets it
    name = unique("latency_seconds")
    histogram = obskit.MetricsCollector().histogram(name, labels=["route"], buckets=[0.1, 1])
    bound = histogram.labels(route="/b")
    with obskit.trace_operation("handler"):
        histogram.observe(0.05, route="/a")
        bound.observe(0.5)
        span_context = trace.get_current_span().get_span_context()
    trace_id, span_id = format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")
    found = exemplars(openmetrics_text(), f"{name}_bucket")
    assert found == [{"trace_id": trace_id, "span_id": span_id}] * 2


def test_job_duration_exemplar_is_the_job_span(obskit_capture: Capture) -> None:
    obskit_capture.store.exemplars = True  # as the prometheus backend sets it
    job = unique("exemplar_job")

    @obskit.track_job(job)
    def work() -> int:
        return 1

    work()
    span = obskit_capture.assert_span(job)
    expected = {
        "trace_id": format(span.context.trace_id, "032x"),
        "span_id": format(span.context.span_id, "016x"),
    }
    assert expected in exemplars(openmetrics_text(), "obskit_job_duration_seconds_bucket")


def test_http_helper_records_an_exemplar(obskit_capture: Capture) -> None:
    obskit_capture.store.exemplars = True  # as the prometheus backend sets it
    with obskit.trace_operation("request"):
        obskit.MetricsCollector().http_request("GET", "/items/{id}", 200, 0.03)
    assert len(exemplars(openmetrics_text(), "obskit_http_server_request_duration_seconds_bucket")) == 1


def test_a_bucket_takes_at_most_one_exemplar_per_interval(
    obskit_capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    obskit_capture.store.exemplars = True  # as the prometheus backend sets it
    clock = [1000.0]
    monkeypatch.setattr("obskit._recording.exemplars.monotonic", lambda: clock[0])
    name = unique("sampled_seconds")
    histogram = obskit.MetricsCollector().histogram(name, buckets=[0.1, 1])

    def traced(value: float) -> str:
        with obskit.trace_operation("request"):
            histogram.observe(value)
            return format(trace.get_current_span().get_span_context().trace_id, "032x")

    first_fast, second_fast, slow = traced(0.05), traced(0.06), traced(0.5)
    by_bucket = dict(exemplar_buckets(openmetrics_text(), f"{name}_bucket"))
    # The second fast one came within the interval: the bucket keeps the first; the slow bucket
    # is its own and takes its first exemplar at once.
    assert by_bucket == {"0.1": first_fast, "1.0": slow}
    assert second_fast not in by_bucket.values()
    clock[0] += 1.0  # EXEMPLAR_INTERVAL later
    third_fast = traced(0.07)
    assert dict(exemplar_buckets(openmetrics_text(), f"{name}_bucket"))["0.1"] == third_fast
    assert obskit_capture.histogram_count(name) == 4


def test_no_exemplar_outside_a_span_or_for_an_unsampled_one(obskit_capture: Capture) -> None:
    name = unique("plain_seconds")
    histogram = obskit.MetricsCollector().histogram(name, buckets=[1])
    histogram.observe(0.5)
    unsampled = NonRecordingSpan(SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(0)))
    with trace.use_span(unsampled):
        histogram.observe(0.5)
        histogram.labels().observe(0.5)
    assert exemplars(openmetrics_text(), f"{name}_bucket") == []
    assert obskit_capture.histogram_count(name) == 3


def test_no_exemplar_lookup_without_obskit_tracing() -> None:
    name = unique("untraced_seconds")
    obskit.configure(**QUIET, metrics_exporter="none")
    histogram = obskit.MetricsCollector().histogram(name, buckets=[1])
    sampled = NonRecordingSpan(SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(1)))
    with trace.use_span(sampled):
        histogram.observe(0.5)
    assert exemplars(openmetrics_text(), f"{name}_bucket") == []


# -- the standalone server ------------------------------------------------------------------------


def test_standalone_server_on_a_free_port_serves_the_path_only() -> None:
    name = unique("served")
    host, port = configure_prometheus(prometheus_path="/prom")
    assert host == "127.0.0.1"
    assert port > 0
    obskit.MetricsCollector().counter(name).inc(3)
    status, content_type, body = http_get(f"http://{host}:{port}/prom")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    assert f"{name}_total 3.0" in body
    assert http_get(f"http://{host}:{port}/prom/", OPENMETRICS)[1].startswith("application/openmetrics-text")
    with pytest.raises(urllib.error.HTTPError) as missing:
        http_get(f"http://{host}:{port}/metrics")
    missing.value.close()
    assert missing.value.code == 404


def test_shutdown_closes_the_socket_and_frees_the_port() -> None:
    host, port = configure_prometheus()
    with socket.create_connection((host, port), timeout=5):
        pass
    obskit.shutdown(timeout=5)
    assert obskit.prometheus.server_address() is None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=5).close()
    with socket.socket() as again:  # free to bind again (as a restarted server would)
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind((host, port))
    assert not [t for t in threading.enumerate() if t.name == "obskit-prometheus-server"]


def test_reconfigure_replaces_the_server() -> None:
    _, first = configure_prometheus()
    _, second = configure_prometheus()
    assert obskit.prometheus.server_address() == ("127.0.0.1", second)
    if first != second:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", first), timeout=5).close()


def test_configured_port_in_use_warns_and_takes_it_when_freed(
    fast_bind_retry: None, capfd: pytest.CaptureFixture[str]
) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    try:
        obskit.configure(**QUIET, metrics_exporter="prometheus", prometheus_port=port)
        assert obskit.prometheus.server_address() is None
        assert "cannot serve Prometheus metrics" in capfd.readouterr().err
    finally:
        blocker.close()
    wait_for(lambda: obskit.prometheus.server_address() == ("127.0.0.1", port), what="the port taken over")
    assert http_get(f"http://127.0.0.1:{port}/metrics")[0] == 200


def test_shutdown_stops_retrying_a_taken_port(fast_bind_retry: None) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        obskit.configure(**QUIET, metrics_exporter="prometheus", prometheus_port=blocker.getsockname()[1])
        obskit.shutdown(timeout=2)
    wait_for(
        lambda: not [t for t in threading.enumerate() if t.name == "obskit-prometheus-bind"],
        what="the retry thread to stop",
    )
    assert obskit.prometheus.server_address() is None


# -- the push gateway -----------------------------------------------------------------------------


class FakeGateway:
    """A loopback HTTP server recording what is PUT to it, answering ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.pushes: list[tuple[str, str]] = []
        self.url = ""

    def handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        gateway = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                gateway.pushes.append((self.path, body))
                self.send_response(gateway.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    fake = FakeGateway()
    with http_server(fake.handler()) as fake.url:
        yield fake


def pushed(body: str, name: str, **labels: str) -> float | None:
    """The value of a sample in a pushed text exposition (empty label values count as absent:
    a job label registered by another test in this process shows as ``tenant=""``)."""
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and {k: v for k, v in sample.labels.items() if v} == labels:
                return float(sample.value)
    return None


def dropped() -> float:
    value = _state.STATE.store.registry.get_sample_value(
        "obskit_telemetry_dropped_total", {"signal": "metrics", "reason": "export_failed"}
    )
    return value or 0.0


FORK_SCRIPT = textwrap.dedent(
    """
    import os, socket, sys, obskit, obskit.prometheus
    obskit.configure(metrics_exporter="prometheus", prometheus_port=0, traces_exporter="none",
                     logs_exporter="none", pushgateway_url=sys.argv[1], pushgateway_job="forky",
                     push_on="job")

    @obskit.track_job("forked_push")
    def work():
        return 1

    work()  # the parent's pusher thread runs before the fork
    assert obskit.prometheus.push(5)
    host, port = obskit.prometheus.server_address()
    pid = os.fork()
    if pid == 0:
        serving = obskit.prometheus.server_address()
        work()  # the child's own pusher thread starts
        pushed = obskit.prometheus.push(5)
        obskit.shutdown(timeout=2)
        os._exit(0 if serving is None and pushed else 3)
    _, status = os.waitpid(pid, 0)
    socket.create_connection((host, port), timeout=5).close()  # the parent still serves
    print("child", os.waitstatus_to_exitcode(status))
    """
)


def test_forked_child_closes_the_listening_socket_and_pushes_from_its_own_thread(
    gateway: FakeGateway, tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, gateway.url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "child 0" in result.stdout
    assert len(gateway.pushes) >= 3


ALREADY_MULTIPROCESS = textwrap.dedent(
    """
    import os, sys
    from prometheus_client import values
    import obskit, obskit.prometheus
    imported_class = values.ValueClass  # chosen at import from PROMETHEUS_MULTIPROC_DIR
    obskit.configure(metrics_exporter="prometheus", prometheus_port=0, traces_exporter="none",
                     logs_exporter="none", multiprocess_dir=sys.argv[1])
    assert values.ValueClass is imported_class
    assert obskit.prometheus.multiprocess_directory() == os.environ["PROMETHEUS_MULTIPROC_DIR"]
    obskit.MetricsCollector().counter("early_bird").inc()
    obskit.shutdown()
    assert values.ValueClass is imported_class
    print(sorted(os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"])))
    """
)


@pytest.mark.parametrize("same", [True, False], ids=["same-directory", "other-directory"])
def test_prometheus_client_already_in_multiprocess_mode_keeps_its_directory(
    tmp_path: Path, same: bool
) -> None:
    env_dir, other = tmp_path / "env", tmp_path / "other"
    env_dir.mkdir()
    other.mkdir()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OBSKIT_", "OTEL_"))}
    environ["PROMETHEUS_MULTIPROC_DIR"] = str(env_dir)
    result = subprocess.run(
        [sys.executable, "-c", ALREADY_MULTIPROCESS, str(env_dir if same else other)],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "counter_" in result.stdout
    assert list(other.iterdir()) == []
    assert ("already writes to PROMETHEUS_MULTIPROC_DIR" in result.stderr) is not same


def test_push_on_job_uses_the_grouping_key_and_keeps_job_name(gateway: FakeGateway) -> None:
    job = unique("nightly")
    configure_prometheus(
        service_name="batch-svc",
        pushgateway_url=gateway.url,
        pushgateway_grouping="instance=worker-1",
        push_on="job",
    )

    @obskit.track_job(job)
    def work() -> int:
        return 1

    work()
    wait_for(lambda: gateway.pushes, what="a push after the job")
    path, body = gateway.pushes[-1]
    assert path == "/metrics/job/batch-svc/instance/worker-1"
    assert pushed(body, "obskit_jobs_total", job_name=job, status="success") == 1
    assert pushed(body, "obskit_jobs_total", job="batch-svc", status="success") is None  # no clash with job


def test_burst_of_jobs_is_coalesced_into_few_pushes(gateway: FakeGateway) -> None:
    configure_prometheus(pushgateway_url=gateway.url, pushgateway_job="coalesced", push_on="job")

    @obskit.track_job(unique("burst"))
    def work() -> None:
        return None

    for _ in range(200):
        work()
    wait_for(lambda: gateway.pushes, what="a push")
    time.sleep(_prometheus.MIN_PUSH_INTERVAL_SECONDS + 0.3)
    assert 1 <= len(gateway.pushes) <= 2
    assert "obskit_jobs_total" in gateway.pushes[-1][1]
    assert " 200.0" in gateway.pushes[-1][1]


def test_push_on_shutdown_only_pushes_once_at_shutdown(gateway: FakeGateway) -> None:
    name = unique("final")
    configure_prometheus(pushgateway_url=gateway.url, pushgateway_job="final-only")
    obskit.MetricsCollector().counter(name).inc(7)

    @obskit.track_job(unique("no_push"))
    def work() -> None:
        return None

    work()
    time.sleep(0.2)
    assert gateway.pushes == []
    obskit.shutdown(timeout=5)
    assert len(gateway.pushes) == 1
    assert gateway.pushes[0][0] == "/metrics/job/final-only"
    assert f"{name}_total 7.0" in gateway.pushes[0][1]
    assert obskit.prometheus.push() is False  # nothing configured any more


def test_explicit_push_waits_for_the_gateway(gateway: FakeGateway) -> None:
    name = unique("explicit")
    configure_prometheus(pushgateway_url=gateway.url, push_on="job")
    obskit.MetricsCollector().counter(name).inc()
    assert obskit.prometheus.push(timeout=5) is True
    assert f"{name}_total 1.0" in gateway.pushes[-1][1]


def test_push_failure_is_counted_warned_once_and_never_raised(capfd: pytest.CaptureFixture[str]) -> None:
    configure_prometheus(pushgateway_url=f"http://127.0.0.1:{free_port()}", push_on="job,shutdown")
    before = dropped()
    assert obskit.prometheus.push(timeout=5) is False
    assert obskit.prometheus.push(timeout=5) is False
    assert dropped() - before >= 2
    assert capfd.readouterr().err.count("pushing metrics to the Prometheus push gateway") == 1


def test_gateway_answering_an_error_is_counted(gateway: FakeGateway) -> None:
    gateway.status = 400
    configure_prometheus(pushgateway_url=gateway.url, push_on="job")
    before = dropped()

    @obskit.track_job(unique("rejected"))
    def work() -> None:
        return None

    work()
    wait_for(lambda: dropped() > before, what="the failed push to be counted")


def test_shutdown_push_to_a_silent_gateway_respects_the_deadline() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        configure_prometheus(pushgateway_url=f"http://127.0.0.1:{silent.getsockname()[1]}")
        started = time.monotonic()
        obskit.shutdown(timeout=1)
        assert time.monotonic() - started < 2.5


def test_job_listener_is_removed_at_shutdown(gateway: FakeGateway) -> None:
    configure_prometheus(pushgateway_url=gateway.url, push_on="job")
    assert len(_state.JOB_LISTENERS) == 1
    obskit.shutdown(timeout=5)
    assert _state.JOB_LISTENERS == []


def test_pending_job_push_is_made_at_shutdown(gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_prometheus, "MIN_PUSH_INTERVAL_SECONDS", 30.0)
    configure_prometheus(pushgateway_url=gateway.url, push_on="job")

    @obskit.track_job(unique("pending"))
    def work() -> None:
        return None

    work()
    wait_for(lambda: gateway.pushes, what="the first push")
    work()  # waits for the interval: only the shutdown can push it
    time.sleep(0.1)
    assert len(gateway.pushes) == 1
    obskit.shutdown(timeout=5)
    assert len(gateway.pushes) == 2


# -- multi-process mode ---------------------------------------------------------------------------


MULTIPROCESS_CHILD = textwrap.dedent(
    """
    import sys, obskit
    obskit.configure(metrics_exporter="prometheus", prometheus_port=0, traces_exporter="none",
                     logs_exporter="none", multiprocess_dir=sys.argv[1])
    metrics = obskit.MetricsCollector()
    metrics.counter(sys.argv[2], labels=["k"]).inc(5, k="v")
    metrics.histogram(sys.argv[2] + "_seconds", buckets=[0.1, 1]).observe(0.5)
    obskit.MetricsCollector().gauge(sys.argv[2] + "_busy").set(2)
    @obskit.track_job("mp_job")
    def work():
        return 1
    work()
    obskit.shutdown()
    """
)


def test_multiprocess_setting_alone_switches_prometheus_client_to_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    name = unique("mp")
    plain_store, plain_class = _state.STATE.store, values.ValueClass
    host, port = configure_prometheus(multiprocess_dir=str(tmp_path))
    assert getattr(values.ValueClass, "_multiprocess", False)
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path)
    metrics = obskit.MetricsCollector()
    metrics.counter(name, labels=["k"]).inc(1, k="v")
    metrics.histogram(f"{name}_seconds", buckets=[0.1, 1]).observe(0.05)
    metrics.gauge(f"{name}_busy").set(1)
    assert any(p.name.startswith("counter_") for p in tmp_path.iterdir())

    child = subprocess.Popen([sys.executable, "-c", MULTIPROCESS_CHILD, str(tmp_path), name])
    assert child.wait(timeout=60) == 0

    text = http_get(f"http://{host}:{port}/metrics")[2]
    assert f'{name}_total{{k="v"}} 6.0' in text  # both processes, summed
    assert f'{name}_seconds_bucket{{le="0.1"}} 1.0' in text  # buckets kept
    assert f'{name}_seconds_bucket{{le="1.0"}} 2.0' in text
    assert f"{name}_seconds_count 2.0" in text
    assert f"{name}_busy 3.0" in text  # livesum, until the dead child is marked
    assert 'obskit_jobs_total{job_name="mp_job",status="success"} 1.0' in text
    obskit.prometheus.child_exit(None, SimpleNamespace(pid=child.pid))
    text = http_get(f"http://{host}:{port}/metrics")[2]
    assert f"{name}_busy 1.0" in text
    assert f'{name}_total{{k="v"}} 6.0' in text  # counters never go down

    obskit.shutdown(timeout=5)
    assert values.ValueClass is plain_class
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    assert _state.STATE.store is plain_store


def test_multiprocess_store_records_no_exemplars(tmp_path: Path) -> None:
    obskit.configure(**QUIET, metrics_exporter="none", multiprocess_dir=str(tmp_path))
    assert _state.STATE.store.exemplars is False


def test_reconfiguring_the_same_directory_continues_the_values(tmp_path: Path) -> None:
    name = unique("continued")
    configure_prometheus(multiprocess_dir=str(tmp_path))
    obskit.MetricsCollector().counter(name).inc(2)
    host, port = configure_prometheus(multiprocess_dir=str(tmp_path))
    obskit.MetricsCollector().counter(name).inc(3)
    assert f"{name}_total 5.0" in http_get(f"http://{host}:{port}/metrics")[2]


def test_gauge_multiprocess_mode_is_declared_and_checked() -> None:
    metrics = obskit.MetricsCollector()
    name = unique("mode")
    gauge = metrics.gauge(name, multiprocess_mode="livemax")
    assert gauge.spec.multiprocess_mode == "livemax"
    assert metrics.gauge(name, multiprocess_mode="livemax") is gauge
    with pytest.raises(MetricDeclarationError, match="multiprocess_mode"):
        metrics.gauge(name)
    with pytest.raises(MetricDeclarationError, match="invalid multiprocess_mode"):
        metrics.gauge(unique("bad_mode"), multiprocess_mode="average")
    assert metrics.gauge(unique("default")).spec.multiprocess_mode == "livesum"


def test_child_exit_removes_only_the_dead_workers_live_gauges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    name = unique("worker")
    obskit.configure(**QUIET, metrics_exporter="none", multiprocess_dir=str(tmp_path))
    metrics = obskit.MetricsCollector()
    metrics.gauge(f"{name}_in_progress").inc()
    metrics.gauge(f"{name}_last", multiprocess_mode="mostrecent").set(1)
    metrics.counter(name).inc()
    pid = os.getpid()
    assert (tmp_path / f"gauge_livesum_{pid}.db").exists()
    obskit.prometheus.child_exit(None, SimpleNamespace(pid=pid))
    assert not (tmp_path / f"gauge_livesum_{pid}.db").exists()
    assert (tmp_path / f"gauge_mostrecent_{pid}.db").exists()
    assert (tmp_path / f"counter_{pid}.db").exists()
    obskit.prometheus.child_exit(None, object())  # no pid: nothing to do, nothing raised


def test_child_exit_in_an_unconfigured_master_reads_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = tmp_path / "gauge_livesum_4242.db"
    dead.write_bytes(b"")
    kept = tmp_path / "counter_4242.db"
    kept.write_bytes(b"")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    obskit.prometheus.child_exit(None, SimpleNamespace(pid=4242))
    assert not dead.exists()
    assert kept.exists()
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    monkeypatch.setenv("OBSKIT_PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert obskit.prometheus.multiprocess_directory() == str(tmp_path)


def test_a_failing_job_listener_never_reaches_the_job(
    gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch, swallow_internal_errors: None
) -> None:
    configure_prometheus(pushgateway_url=gateway.url, push_on="job")

    def broken(self: Any) -> None:
        raise RuntimeError("cannot start a thread")

    monkeypatch.setattr(_prometheus._Pusher, "_start", broken)

    @obskit.track_job(unique("listened"))
    def work() -> int:
        return 7

    assert work() == 7


def test_mark_process_dead_never_raises(
    monkeypatch: pytest.MonkeyPatch, swallow_internal_errors: None
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/nonexistent")

    def broken(pid: int, path: str) -> None:
        raise OSError("read-only file system")

    import prometheus_client.multiprocess

    monkeypatch.setattr(prometheus_client.multiprocess, "mark_process_dead", broken)
    obskit.prometheus.mark_process_dead(1234)


def test_ipv6_loopback_is_served() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this host")
    host, port = configure_prometheus(prometheus_host="::1")
    assert host == "::1"
    assert http_get(f"http://[::1]:{port}/metrics")[0] == 200


def test_exemplars_are_recorded_only_with_the_prometheus_backend() -> None:
    obskit.configure(traces_exporter="none", metrics_exporter="none", logs_exporter="none")
    assert obskit._core.state.STATE.store.exemplars is False
    obskit.configure(
        traces_exporter="none", metrics_exporter="prometheus", logs_exporter="none", prometheus_port=0
    )
    assert obskit._core.state.STATE.store.exemplars is True
    obskit.shutdown()
    assert obskit._core.state.STATE.store.exemplars is False


# -- push() when there is nothing to push to ------------------------------------------------------


@pytest.fixture
def obskit_warnings(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """What obskit's own logger says (whether or not it propagates), with push()'s rate limit reset."""
    monkeypatch.setattr(_prometheus, "_not_pushing_warned_at", -math.inf)
    yield from messages_of("obskit")


def _push_warnings(messages: list[str]) -> list[str]:
    return [m for m in messages if "obskit.prometheus.push() pushed nothing" in m]


def test_push_unconfigured_says_why_once(obskit_warnings: list[str]) -> None:
    assert obskit.prometheus.push(timeout=1) is False
    assert obskit.prometheus.push(timeout=1) is False
    (warning,) = _push_warnings(obskit_warnings)
    assert "obskit is not configured" in warning


def test_push_with_pushgateway_but_not_prometheus_says_what_to_set(obskit_warnings: list[str]) -> None:
    obskit.configure(**QUIET, metrics_exporter="console", pushgateway_url="http://127.0.0.1:1")
    obskit_warnings.clear()  # configure()'s own warning
    assert obskit.prometheus.push(timeout=1) is False
    (warning,) = _push_warnings(obskit_warnings)
    assert "pushgateway_url is set but metrics_exporter is 'console'" in warning
    assert "metrics_exporter='prometheus'" in warning


def test_push_with_prometheus_but_no_pushgateway_says_so(obskit_warnings: list[str]) -> None:
    configure_prometheus()
    assert obskit.prometheus.push(timeout=1) is False
    (warning,) = _push_warnings(obskit_warnings)
    assert "pushgateway_url is not set" in warning


def test_push_without_a_pusher_otherwise_says_none_is_configured(obskit_warnings: list[str]) -> None:
    configure_prometheus(pushgateway_url="http://127.0.0.1:1", push_on="job")
    _prometheus._pusher = None  # as between shutdown() tearing it down and the state being reset
    assert obskit.prometheus.push(timeout=1) is False
    (warning,) = _push_warnings(obskit_warnings)
    assert "no push gateway is configured" in warning
