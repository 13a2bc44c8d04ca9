"""obskit's SERVER spans against the official OpenTelemetry instrumentations, request by request.

The same requests go (a) through opentelemetry-instrumentation-fastapi and -flask in stable HTTP
mode (``OTEL_SEMCONV_STABILITY_OPT_IN=http``) into an in-memory exporter, and (b) through obskit
on an identical app into ``obskit.testing.capture()``. Each span is reduced to its name, kind,
status code, attributes and events' attributes; the official span, with the differences listed in
:data:`DELIBERATE` applied, must equal obskit's. Any other difference fails the test.
"""

from __future__ import annotations

import shutil
import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from flask import Flask
from opentelemetry.instrumentation import _semconv
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import HistogramMetricFamily

import obskit
from obskit._core import state as _state
from obskit.testing import Capture, capture

with warnings.catch_warnings():  # starlette asks for httpx2, not installed here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

#: What obskit does differently from the official instrumentations, on purpose, and why. Each
#: entry is applied by :func:`expected_from_official`; nothing else may differ.
DELIBERATE = {
    "client.port": "Opt-In on HTTP server spans; the official Flask instrumentation leaves it out too.",
    "server.address": "From the Host header, without its port: the name the client asked for. The "
    "official ASGI instrumentation reports the socket's address (scope['server']), the official "
    "WSGI one the whole Host header, port included.",
    "server.port": "From the Host header, left out when it is the scheme's default (as the URL leaves "
    "it out). The official instrumentations report the socket's or SERVER_PORT.",
    "url.query": "Values of sensitive parameters hidden with obskit's redaction settings "
    "(semantic conventions: sensitive content SHOULD be scrubbed).",
    "http.route (Flask)": "OpenAPI template style (/items/{item_id}) for every framework, so one "
    "dashboard query fits FastAPI and Flask; the span name follows.",
    "span name (Flask, no route)": "The method alone, as for FastAPI: the path is not a template.",
    "error.type (exception)": "The exception's class, spelt as its exception event's exception.type; "
    "the official middlewares see the framework's 500 answer (error.type '500').",
    "exception event": "obskit records the exception the application raised on the SERVER span "
    "(the official ones leave it off that span).",
    "status description": "obskit's text of the exception ('Type: message').",
    "forwarded headers": "With trust_forwarded_headers, url.scheme, client.address and "
    "server.address come from the proxy's headers and the proxy's own address is "
    "network.peer.address; the official instrumentations never read them.",
}

SECRET = "s3cret-value"


@dataclass
class Case:
    """One request and what the official side does differently."""

    name: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    trusted: bool = False


CASES = [
    Case("normal", "GET", "/plain"),
    Case("path-param", "GET", "/items/7", {"user-agent": "probe/1"}),
    Case("not-found", "GET", "/nope"),
    Case("raised", "GET", "/boom"),
    Case("unknown-method", "PURGE", "/any"),
    Case("another-unknown-method", "FOO", "/any"),
    Case("query-method", "QUERY", "/any"),
    Case("query-with-secret", "GET", f"/items/7?page=2&api_key={SECRET}"),
    Case("host-with-port", "GET", "/items/7", {"host": "shop.example:8443"}),
    Case("host-default-port", "GET", "/items/7", {"host": "shop.example:80"}),
    Case(
        "forwarded-untrusted",
        "GET",
        "/items/7",
        {"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.9, 10.0.0.1"},
    ),
    Case(
        "x-forwarded-trusted",
        "GET",
        "/items/7",
        {"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.9, 10.0.0.1"},
        trusted=True,
    ),
    Case(
        "forwarded-trusted",
        "GET",
        "/items/7",
        {"forwarded": 'for="[2001:db8::7]:4711";proto=https;host=shop.example, for=10.0.0.1'},
        trusted=True,
    ),
]


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/plain")
    def plain() -> dict[str, str]:
        return {}

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/boom")
    def boom() -> None:
        raise ValueError("boom")

    @app.api_route("/any", methods=["GET", "PURGE", "FOO", "QUERY"])
    def any_method() -> dict[str, str]:
        return {}

    return app


def flask_app() -> Flask:
    app = Flask("semconv_reference")

    @app.get("/plain")
    def plain() -> dict[str, str]:
        return {}

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/boom")
    def boom() -> None:
        raise ValueError("boom")

    @app.route("/any", methods=["GET", "PURGE", "FOO", "QUERY"])
    def any_method() -> dict[str, str]:
        return {}

    return app


def send(framework: str, app: Any, case: Case) -> int:
    if framework == "fastapi":
        client = TestClient(app, raise_server_exceptions=False)
        return int(client.request(case.method, case.path, headers=case.headers).status_code)
    response = app.test_client().open(case.path, method=case.method, headers=case.headers, buffered=True)
    response.close()
    return int(response.status_code)


def shape(span: ReadableSpan) -> dict[str, Any]:
    """What is compared: name, kind, status, attributes, events (stack traces left out)."""
    return {
        "name": span.name,
        "kind": span.kind,
        "status": span.status.status_code.name,
        "description": span.status.description,
        "attributes": dict(span.attributes or {}),
        "events": [
            (e.name, {k: v for k, v in (e.attributes or {}).items() if k != "exception.stacktrace"})
            for e in span.events
        ],
    }


@pytest.fixture
def stable_http(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The official instrumentations in stable HTTP mode, read afresh (they read it once)."""
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    stability = _semconv._OpenTelemetrySemanticConventionStability
    table = stability._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING
    saved = dict(table)
    monkeypatch.setattr(stability, "_initialized", False)
    stability._initialize()
    yield
    stability._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING = table
    table.clear()
    table.update(saved)  # the mode this process had before, for the tests that follow
    stability._initialized = False


@dataclass
class Official:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    apps: dict[str, Any]


@pytest.fixture
def official(stable_http: None) -> Iterator[Official]:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    api, web = fastapi_app(), flask_app()
    FastAPIInstrumentor.instrument_app(api, tracer_provider=provider, meter_provider=meters)
    FlaskInstrumentor().instrument_app(web, tracer_provider=provider, meter_provider=meters)
    yield Official(exporter, reader, {"fastapi": api, "flask": web})
    FastAPIInstrumentor.uninstrument_app(api)
    FlaskInstrumentor().uninstrument_app(web)
    meters.shutdown()


def official_span(official: Official, framework: str, case: Case) -> dict[str, Any]:
    official.spans.clear()
    send(framework, official.apps[framework], case)
    [span] = [s for s in official.spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    return shape(span)


def obskit_span(framework: str, case: Case) -> tuple[dict[str, Any], Capture]:
    app = fastapi_app() if framework == "fastapi" else flask_app()
    obskit.configure(app, service_name="reference", trust_forwarded_headers=case.trusted)
    with capture() as cap:
        send(framework, app, case)
        [span] = [
            s for s in cap.spans() if s.kind is SpanKind.SERVER and s.instrumentation_scope.name == "obskit"
        ]
    obskit.shutdown(timeout=1)
    return shape(span), cap


def expected_from_official(official: dict[str, Any], framework: str, case: Case) -> dict[str, Any]:
    """The official span with each :data:`DELIBERATE` difference applied."""
    expected = {**official, "attributes": dict(official["attributes"]), "events": list(official["events"])}
    attributes = expected["attributes"]
    attributes.pop("client.port", None)  # DELIBERATE["client.port"]
    host = case.headers.get("host") or ("testserver" if framework == "fastapi" else "localhost")
    name, _, port = host.partition(":")
    attributes["server.address"] = name  # DELIBERATE["server.address"]
    attributes.pop("server.port", None)  # DELIBERATE["server.port"]
    if port and int(port) != 80:
        attributes["server.port"] = int(port)
    if "url.query" in attributes:  # DELIBERATE["url.query"]
        attributes["url.query"] = attributes["url.query"].replace(SECRET, "[REDACTED]")
    route = attributes.get("http.route")
    if framework == "flask":
        if route is not None:  # DELIBERATE["http.route (Flask)"]
            attributes["http.route"] = route.replace("<int:item_id>", "{item_id}")
            expected["name"] = expected["name"].replace("<int:item_id>", "{item_id}")
        else:  # DELIBERATE["span name (Flask, no route)"]
            expected["name"] = expected["name"].split(" ")[0]
    if case.name == "raised":
        attributes["error.type"] = "ValueError"  # DELIBERATE["error.type (exception)"]
        expected["events"] = [  # DELIBERATE["exception event"]
            (
                "exception",
                {
                    "exception.type": "ValueError",
                    "exception.message": "boom",
                    "exception.escaped": "True",
                },
            )
        ]
        expected["description"] = "ValueError: boom"  # DELIBERATE["status description"]
    if case.trusted:  # DELIBERATE["forwarded headers"]
        attributes["network.peer.address"] = attributes["client.address"]
        attributes["url.scheme"] = "https"
        if "forwarded" in case.headers:
            attributes["client.address"] = "2001:db8::7"
            attributes["server.address"] = "shop.example"
        else:
            attributes["client.address"] = "203.0.113.9"
    return expected


@pytest.mark.parametrize("framework", ["fastapi", "flask"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_server_span_matches_the_official_instrumentation(
    official: Official, framework: str, case: Case
) -> None:
    reference = official_span(official, framework, case)
    mine, cap = obskit_span(framework, case)
    assert mine == expected_from_official(reference, framework, case)
    # error.type: one value on the span, its exception event and the duration histogram.
    error_type = mine["attributes"].get("error.type", "")
    for _, event in mine["events"]:
        assert event["exception.type"] == error_type
    method = mine["attributes"]["http.request.method"]
    durations = {
        labels["error_type"]
        for labels, _ in cap._series("obskit_http_server_request_duration_seconds_count")
        if labels["method"] == method
    }
    assert durations == {error_type}


def test_unknown_method_span_is_named_http_and_route(official: Official) -> None:
    case = CASES[4]
    mine, _ = obskit_span("fastapi", case)
    assert mine["name"] == "HTTP /any"
    assert mine["attributes"]["http.request.method"] == "_OTHER"
    assert mine["attributes"]["http.request.method_original"] == "PURGE"
    assert official_span(official, "fastapi", case)["name"] == "HTTP /any"


def test_every_deliberate_difference_is_applied_somewhere() -> None:
    """A reason in the list without its rule in expected_from_official is a stale reason."""
    source = Path(__file__).read_text()
    for key in DELIBERATE:
        assert f'DELIBERATE["{key}"]' in source, key


# -- the duration metric next to OpenTelemetry's -------------------------------------------------


def _prometheus_name(name: str, unit: str) -> str:
    """An OpenTelemetry instrument's name as OpenTelemetry's Prometheus exporters write it."""
    suffix = {"s": "seconds", "By": "bytes"}.get(unit, "")
    base = name.replace(".", "_")
    return f"{base}_{suffix}" if suffix and not base.endswith(suffix) else base


class _OpenTelemetryFamilies:
    """The official instrumentation's histograms, as an OpenTelemetry Prometheus exporter exposes them."""

    def __init__(self, reader: InMemoryMetricReader) -> None:
        self.data = reader.get_metrics_data()

    def collect(self) -> Iterator[HistogramMetricFamily]:
        for resource in self.data.resource_metrics if self.data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != "http.server.request.duration":
                        continue
                    points = list(metric.data.data_points)
                    names = sorted({k.replace(".", "_") for p in points for k in p.attributes})
                    family = HistogramMetricFamily(
                        _prometheus_name(metric.name, metric.unit), metric.description, labels=names
                    )
                    for point in points:
                        labels = {k.replace(".", "_"): str(v) for k, v in point.attributes.items()}
                        cumulative, buckets = 0, []
                        for bound, count in zip(
                            [*point.explicit_bounds, float("inf")], point.bucket_counts, strict=True
                        ):
                            cumulative += count
                            buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
                        family.add_metric([labels.get(n, "") for n in names], buckets, point.sum)
                    yield family


def test_obskit_duration_histogram_and_opentelemetry_s_never_share_a_name(official: Official) -> None:
    """One exposition holding both (as a Collector's Prometheus exporter would) is valid."""
    app = fastapi_app()
    obskit.configure(app, service_name="reference")
    for case in CASES[:4]:
        send("fastapi", official.apps["fastapi"], case)
        send("fastapi", app, case)
    registry = CollectorRegistry()
    registry.register(_state.STATE.store.registry)  # type: ignore[arg-type]
    registry.register(_OpenTelemetryFamilies(official.metrics))  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    helps = [line.split()[2] for line in text.splitlines() if line.startswith("# HELP")]
    assert len(helps) == len(set(helps)), "two families share a name"
    assert "http_server_request_duration_seconds" in helps  # OpenTelemetry's, semconv labels
    assert "obskit_http_server_request_duration_seconds" in helps  # obskit's, its own labels
    assert 'http_request_method="GET"' in text
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed")
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    # promtool fails an exposition with two families of one name ("second HELP line").
    assert checked.returncode == 0, checked.stdout + checked.stderr


# -- the attribute helpers, at their edges --------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("example.com", ("example.com", None)),
        ("example.com:8443", ("example.com", 8443)),
        ("[::1]:8080", ("::1", 8080)),
        ("[2001:db8::1]", ("2001:db8::1", None)),
        ("example.com:", ("example.com", None)),
        ("example.com:http", ("example.com", None)),
    ],
)
def test_host_header_gives_address_and_port(host: str, expected: tuple[str, int | None]) -> None:
    from obskit._web.http import host_and_port

    assert host_and_port(host) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({b"forwarded": "for=192.0.2.60;proto=HTTPS;by=203.0.113.43"}, ("https", "192.0.2.60", None)),
        ({b"forwarded": 'for="[2001:db8:cafe::17]:4711", for=10.0.0.1'}, (None, "2001:db8:cafe::17", None)),
        ({b"forwarded": "for=192.0.2.43:47011;host=api.example"}, (None, "192.0.2.43", "api.example")),
        (
            {b"x-forwarded-proto": "https, http", b"x-forwarded-for": " 203.0.113.9 , 10.0.0.1"},
            ("https", "203.0.113.9", None),
        ),
        ({b"x-forwarded-host": "api.example:8443"}, (None, None, "api.example:8443")),
        (  # Forwarded first; the X- headers fill in what it does not say
            {b"forwarded": "proto=https", b"x-forwarded-for": "198.51.100.2"},
            ("https", "198.51.100.2", None),
        ),
        ({b"forwarded": "for=;proto="}, (None, None, None)),
    ],
)
def test_proxy_headers_are_read_rfc_7239_first(
    headers: dict[bytes, str], expected: tuple[str | None, str | None, str | None]
) -> None:
    from obskit._web.http import proxy_view

    assert proxy_view(headers) == expected


def test_wsgi_request_without_host_header_names_the_server_and_its_port() -> None:
    from werkzeug.test import create_environ

    app = flask_app()
    obskit.configure(app, service_name="reference")
    environ = create_environ("/plain", "http://10.1.2.3:8080/")
    environ.update(SERVER_PROTOCOL="HTTP/1.0", SERVER_NAME="10.1.2.3", SERVER_PORT="8080")
    del environ["HTTP_HOST"]  # HTTP/1.0 clients may send none
    with capture() as cap:
        body = app.wsgi_app(environ, lambda status, headers, exc_info=None: None)
        b"".join(body)
        body.close()  # type: ignore[attr-defined]
        [span] = [s for s in cap.spans() if s.kind is SpanKind.SERVER]
    attributes = dict(span.attributes or {})
    assert attributes["server.address"] == "10.1.2.3"
    assert attributes["server.port"] == 8080
    assert attributes["network.protocol.version"] == "1.0"


def test_trusted_proxy_headers_reach_the_access_line_and_the_port() -> None:
    app = fastapi_app()
    obskit.configure(app, service_name="reference", trust_forwarded_headers=True)
    with capture() as cap:
        headers = {
            "x-forwarded-proto": "https",
            "x-forwarded-host": "api.example:8443",
            "x-forwarded-for": "203.0.113.9",
        }
        TestClient(app).get("/plain", headers=headers)
        [span] = [
            s for s in cap.spans() if s.kind is SpanKind.SERVER and s.instrumentation_scope.name == "obskit"
        ]
        [line] = cap.logs(logger="http.access")
    attributes = dict(span.attributes or {})
    assert attributes["url.scheme"] == "https"
    assert attributes["server.address"] == "api.example"
    assert attributes["server.port"] == 8443
    assert attributes["client.address"] == "203.0.113.9"
    assert attributes["network.peer.address"] == "testclient"
    assert line["client"] == "203.0.113.9"
