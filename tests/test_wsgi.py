"""The WSGI middleware in process: Flask apps through configure(app), plain WSGI apps."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from flask import Flask, Response
from opentelemetry.trace import SpanKind, StatusCode
from werkzeug.test import Client

import obskit
import obskit.wsgi
from obskit import health
from obskit.testing import Capture, capture

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
log = logging.getLogger("app")


class Boom(Exception):
    """Raised by the failing route."""


def make_app() -> Flask:
    app = Flask("wsgi_test_app")

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        log.info("looking up item")
        return {"id": item_id}

    @app.get("/boom")
    def boom() -> None:
        raise Boom("boom")

    @app.get("/stream")
    def stream() -> Response:
        return Response(iter([b"one,", b"two,", b"three"]), mimetype="text/plain")

    return app


@pytest.fixture
def app() -> Flask:
    return make_app()


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as s:
        yield s


def server_spans(cap: Capture) -> list[Any]:
    return [s for s in cap.spans() if s.kind == SpanKind.SERVER]


def test_request_gets_a_server_span_metrics_and_an_access_line(app: Flask, stack: ExitStack) -> None:
    obskit.configure(app)
    obskit.configure(app, request_id_echo="always")  # instrumented once
    cap = stack.enter_context(capture())
    response = app.test_client().get(
        "/items/7", headers={"traceparent": f"00-{TRACE_ID}-b7ad6b7169203331-01"}, buffered=True
    )
    assert response.json == {"id": 7}
    [span] = server_spans(cap)
    assert span.name == "GET /items/{item_id}"
    assert span.attributes["http.route"] == "/items/{item_id}"
    assert span.attributes["http.response.status_code"] == 200
    assert format(span.context.trace_id, "032x") == TRACE_ID
    cap.assert_counter(
        "http_server_requests_total", 1, method="GET", route="/items/{item_id}", status_code=200
    )
    assert cap.gauge_value("http_server_requests_in_progress", method="GET") == 0
    [handler_line] = cap.logs(logger="app")
    [access] = cap.logs(logger="http.access")
    assert handler_line["request_id"] == access["request_id"] == response.headers["X-Request-ID"]
    assert access["trace_id"] == TRACE_ID
    assert access["route"] == "/items/{item_id}"


@pytest.mark.parametrize(("sent", "kept"), [("req-1:a.b_c", True), ("no spaces", False), ("é", False)])
def test_request_id_is_echoed_when_valid_and_replaced_otherwise(
    app: Flask, stack: ExitStack, sent: str, kept: bool
) -> None:
    obskit.configure(app)
    stack.enter_context(capture())
    echoed = (
        app.test_client()
        .get("/items/1", headers={"X-Request-ID": sent}, buffered=True)
        .headers["X-Request-ID"]
    )
    assert (echoed == sent) is kept


def test_error_handled_by_flask_is_recorded_and_logged_once(app: Flask, stack: ExitStack) -> None:
    obskit.configure(app)
    cap = stack.enter_context(capture())
    response = app.test_client().get("/boom", buffered=True)
    assert response.status_code == 500
    [span] = server_spans(cap)
    assert span.status.status_code == StatusCode.ERROR
    assert [e.name for e in span.events] == ["exception"]
    cap.assert_counter("http_server_requests_total", 1, route="/boom", status_code=500)
    stacks = [line for line in cap.logs() if "exception" in line]
    assert len(stacks) == 1  # Flask's own "Exception on /boom" line, with trace and request ids
    assert stacks[0]["trace_id"] == format(span.context.trace_id, "032x")
    assert cap.logs(logger="http.access", level="ERROR")


def test_propagated_exception_is_the_same_object(app: Flask, stack: ExitStack) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = True
    obskit.configure(app)
    cap = stack.enter_context(capture())
    with pytest.raises(Boom) as caught:
        app.test_client().get("/boom", buffered=True)
    [span] = server_spans(cap)
    assert span.events[0].attributes["exception.message"] == str(caught.value)
    errors = [line for line in cap.logs() if "exception" in line]
    assert len(errors) == 1
    assert errors[0]["logger"] == "http.access"


def test_streaming_body_passes_through_and_is_timed_to_its_end(app: Flask, stack: ExitStack) -> None:
    obskit.configure(app)
    cap = stack.enter_context(capture())
    response = app.test_client().get("/stream", buffered=False)
    assert server_spans(cap) == []  # not finished while the body is unread
    assert b"".join(response.response) == b"one,two,three"
    response.close()
    assert [s.name for s in server_spans(cap)] == ["GET /stream"]


def test_unmatched_paths_share_one_route_label(app: Flask, stack: ExitStack) -> None:
    obskit.configure(app, access_log=False)
    cap = stack.enter_context(capture())
    client = app.test_client()
    for i in range(500):
        assert client.get(f"/wp-admin/{i}.php", buffered=True).status_code == 404
    spec = cap.store.live_spec(obskit.MetricsCollector._family("http_requests").spec)
    assert cap.store.series_count(spec) == 1


def test_excluded_urls(app: Flask, stack: ExitStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_PYTHON_EXCLUDED_URLS", "items/9$")
    obskit.configure(app)
    cap = stack.enter_context(capture())
    client = app.test_client()
    assert client.get("/items/9", buffered=True).status_code == 200
    assert "X-Request-ID" not in client.get("/items/9", buffered=True).headers
    client.get("/items/8", buffered=True)
    assert len(server_spans(cap)) == 1
    assert cap.counter_value("http_server_requests_total") == 1


def test_scrape_and_health_endpoints_are_mounted(app: Flask, stack: ExitStack) -> None:
    obskit.configure(app, metrics_exporter="prometheus", prometheus_port=0)
    cap = stack.enter_context(capture())
    health.clear()
    try:
        health.register("db", lambda: False, critical=True)
        client = app.test_client()
        client.get("/items/1", buffered=True)
        assert "http_server_requests_total" in client.get("/metrics", buffered=True).text
        assert client.get("/health/live", buffered=True).json == {"status": "alive"}
        ready = client.get("/health/ready", buffered=True)
        assert ready.status_code == 503
        assert ready.headers["Content-Type"] == "application/json"
    finally:
        health.clear()
    assert len(server_spans(cap)) == 1


def test_after_shutdown_requests_pass_through(app: Flask) -> None:
    obskit.configure(app)
    obskit.shutdown()
    with capture() as cap:
        response = app.test_client().get("/items/1", buffered=True)
    assert "X-Request-ID" not in response.headers
    assert server_spans(cap) == []


def plain_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("202 Accepted", [("Content-Type", "text/plain")])
    return [b"queued"]


def test_plain_wsgi_app_wrapped_with_the_public_middleware(stack: ExitStack) -> None:
    obskit.configure()
    cap = stack.enter_context(capture())
    response = Client(obskit.wsgi.middleware(plain_app)).post("/jobs/1", headers={"X-Request-ID": "j-1"})
    assert response.status_code == 202
    assert response.headers["X-Request-ID"] == "j-1"
    assert response.get_data() == b"queued"
    [span] = server_spans(cap)
    assert span.name == "POST"
    cap.assert_counter("http_server_requests_total", 1, method="POST", route="__unmatched__", status_code=202)


@pytest.mark.usefixtures("swallow_internal_errors")
def test_broken_telemetry_never_reaches_the_request(
    app: Flask, stack: ExitStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    obskit.configure(app)
    stack.enter_context(capture())

    def broken(key: str) -> Any:
        raise RuntimeError("metric store unavailable")

    monkeypatch.setattr(obskit.MetricsCollector, "_family", staticmethod(broken))
    response = app.test_client().get("/items/2", buffered=True)
    assert response.status_code == 200
    assert response.json == {"id": 2}


@pytest.mark.parametrize(
    ("rule", "template"),
    [
        ("/items/<int:item_id>", "/items/{item_id}"),
        ("/files/<path:rest>", "/files/{rest}"),
        ("/u/<name>/posts/<uuid:post>", "/u/{name}/posts/{post}"),
        ("/static", "/static"),
    ],
)
def test_flask_rules_become_templates(rule: str, template: str) -> None:
    from obskit._web.http import flask_route

    assert flask_route(rule) == template


def test_a_request_id_header_the_handler_sets_is_kept_and_not_doubled(stack: ExitStack) -> None:
    app = Flask("own_request_id")

    @app.get("/own")
    def own() -> Response:
        return Response("ok", headers={"x-request-id": "set-by-the-app"})

    obskit.configure(app)
    stack.enter_context(capture())
    client = app.test_client()
    response = client.get("/own", headers={"X-Request-ID": "from-the-client"}, buffered=True)
    assert response.headers.getlist("X-Request-ID") == ["set-by-the-app"]
    plain = client.get("/missing", headers={"X-Request-ID": "r1"}, buffered=True)  # no header: it gets one
    assert plain.headers.getlist("X-Request-ID") == ["r1"]
