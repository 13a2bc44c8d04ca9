from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import httpx
import pytest
import requests
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.trace import SpanKind

import obskit
from obskit._web import clients as _clients
from obskit._web import libraries as _libraries
from obskit.testing import capture


class _Recorder(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, str]]

    def do_GET(self) -> None:
        self.received.append({k.lower(): v for k, v in self.headers.items()})
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    received: list[dict[str, str]] = []
    handler = type("Handler", (_Recorder,), {"received": received})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/hello", received
    finally:
        httpd.shutdown()
        httpd.server_close()


def _call_both(url: str) -> None:
    with httpx.Client() as client:
        assert client.get(url).text == "ok"
    assert requests.get(url, timeout=5).text == "ok"


def _trace_id(headers: dict[str, str]) -> str:
    return headers["traceparent"].split("-")[1]


def test_outgoing_calls_carry_the_trace_and_record_client_spans(server: tuple[str, list]) -> None:
    url, received = server
    obskit.configure(traces_exporter="console", metrics_exporter="none", logs_exporter="none")
    with capture() as cap:
        with obskit.trace_operation("outer"):
            _call_both(url)
        (outer,) = cap.spans("outer")
        clients = [s for s in cap.spans() if s.kind is SpanKind.CLIENT]
    trace_id = format(outer.context.trace_id, "032x")
    assert [_trace_id(h) for h in received] == [trace_id, trace_id]
    assert len(clients) == 2
    assert {s.parent.span_id for s in clients if s.parent} == {outer.context.span_id}
    # The server saw the client span as its parent, not the outer span.
    sent_parents = {h["traceparent"].split("-")[2] for h in received}
    assert sent_parents == {format(s.context.span_id, "016x") for s in clients}


def test_shutdown_uninstruments_the_clients(server: tuple[str, list]) -> None:
    url, received = server
    obskit.configure(traces_exporter="console", metrics_exporter="none", logs_exporter="none")
    assert HTTPXClientInstrumentor().is_instrumented_by_opentelemetry
    assert RequestsInstrumentor().is_instrumented_by_opentelemetry
    obskit.shutdown()
    assert not HTTPXClientInstrumentor().is_instrumented_by_opentelemetry
    assert not RequestsInstrumentor().is_instrumented_by_opentelemetry
    with capture() as cap, obskit.trace_operation("outer"):
        _call_both(url)
    assert all("traceparent" not in h for h in received)
    assert not [s for s in cap.spans() if s.kind is SpanKind.CLIENT]


def test_configure_twice_instruments_once(server: tuple[str, list]) -> None:
    url, received = server
    for _ in range(2):
        obskit.configure(traces_exporter="console", metrics_exporter="none", logs_exporter="none")
    with capture() as cap, obskit.trace_operation("outer"):
        _call_both(url)
    assert len([s for s in cap.spans() if s.kind is SpanKind.CLIENT]) == 2
    assert all(len(h["traceparent"].split("-")) == 4 for h in received)


def test_the_setting_turns_it_off(server: tuple[str, list]) -> None:
    url, _ = server
    obskit.configure(
        traces_exporter="console",
        metrics_exporter="none",
        logs_exporter="none",
        instrument_http_clients=False,
    )
    assert not HTTPXClientInstrumentor().is_instrumented_by_opentelemetry
    with capture() as cap, obskit.trace_operation("outer"):
        _call_both(url)
    assert not [s for s in cap.spans() if s.kind is SpanKind.CLIENT]


def test_a_client_the_application_instrumented_is_left_alone() -> None:
    RequestsInstrumentor().instrument()
    try:
        obskit.configure(traces_exporter="console", metrics_exporter="none", logs_exporter="none")
        obskit.shutdown()
        assert RequestsInstrumentor().is_instrumented_by_opentelemetry
        assert not HTTPXClientInstrumentor().is_instrumented_by_opentelemetry
    finally:
        RequestsInstrumentor().uninstrument()


def test_missing_instrumentations_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = _libraries.Library("no_such_instrumentation_module", "X", "http-clients", "http")
    monkeypatch.setitem(_libraries.LIBRARIES, "httpx", missing)
    assert _clients.missing() == ["httpx"]
    obskit.configure(traces_exporter="console", metrics_exporter="none", logs_exporter="none")
    assert not HTTPXClientInstrumentor().is_instrumented_by_opentelemetry
    assert RequestsInstrumentor().is_instrumented_by_opentelemetry


def test_nothing_is_instrumented_without_tracing() -> None:
    obskit.configure(traces_exporter="none", metrics_exporter="none", logs_exporter="none")
    assert not RequestsInstrumentor().is_instrumented_by_opentelemetry
