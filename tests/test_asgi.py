"""The ASGI middleware in process: FastAPI/Starlette apps through configure(app), plain ASGI apps."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from fastapi import FastAPI, Response
from fastapi.responses import StreamingResponse
from opentelemetry.trace import SpanKind, StatusCode
from starlette.websockets import WebSocket

import obskit
import obskit.asgi
from asgicall import asgi_get
from obskit import health
from obskit.testing import Capture, capture

with warnings.catch_warnings():  # starlette asks for httpx2, not installed here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
log = logging.getLogger("app")


class Boom(Exception):
    """Raised by the failing route; the test checks the very same object comes out."""


RAISED: list[Boom] = []


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:  # sync: runs in Starlette's thread pool
        log.info("looking up item")
        return {"id": item_id}

    @app.get("/async")
    async def handler() -> dict[str, str]:
        log.info("async handler")
        return {"ok": "yes"}

    @app.get("/boom")
    async def boom() -> None:
        error = Boom("boom")
        RAISED.append(error)
        raise error

    @app.get("/stream")
    def stream() -> StreamingResponse:
        return StreamingResponse(iter([b"one,", b"two,", b"three"]), media_type="text/plain")

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello " + await websocket.receive_text())
        await websocket.close()

    return app


@pytest.fixture
def app() -> FastAPI:
    return make_app()


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    """Capture is entered after configure(), which would otherwise replace what it installs."""
    with ExitStack() as s:
        yield s


def server_spans(cap: Capture) -> list[Any]:
    """obskit's server spans (FastAPI's own, when obskit is off, come from the "fastapi" tracer)."""
    return [s for s in cap.spans() if s.kind == SpanKind.SERVER and s.instrumentation_scope.name == "obskit"]


def test_request_gets_a_server_span_metrics_and_an_access_line(app: FastAPI, stack: ExitStack) -> None:
    obskit.configure(app, service_name="api", request_id_echo="always")
    cap = stack.enter_context(capture())
    response = TestClient(app).get("/items/7", headers={"user-agent": "probe/1"})
    assert response.json() == {"id": 7}
    span = cap.assert_span(
        "GET /items/{item_id}",
        **{
            "http.request.method": "GET",
            "http.route": "/items/{item_id}",
            "url.path": "/items/7",
            "url.scheme": "http",
            "http.response.status_code": 200,
            "server.address": "testserver",
            "user_agent.original": "probe/1",
        },
    )
    assert span.kind == SpanKind.SERVER
    assert span.status.status_code == StatusCode.UNSET
    cap.assert_counter(
        "http_server_requests_total", 1, method="GET", route="/items/{item_id}", status_code="200"
    )
    assert (
        cap.histogram_count(
            "obskit_http_server_request_duration_seconds", method="GET", route="/items/{item_id}"
        )
        == 1
    )
    assert cap.gauge_value("http_server_requests_in_progress", method="GET") == 0
    [line] = cap.logs(logger="http.access")
    assert line["route"] == "/items/{item_id}"
    assert line["status"] == 200
    assert line["method"] == "GET"
    assert line["user_agent"] == "probe/1"
    assert line["duration_ms"] > 0
    assert line["trace_id"] == format(span.context.trace_id, "032x")
    assert line["request_id"] == response.headers["x-request-id"]


def test_configure_twice_instruments_once(app: FastAPI, stack: ExitStack) -> None:
    obskit.configure(app)
    obskit.configure(app)
    cap = stack.enter_context(capture())
    client = TestClient(app)
    client.get("/async")
    client.get("/async")
    assert len(server_spans(cap)) == 2
    assert len(cap.logs(logger="http.access")) == 2


def test_incoming_traceparent_is_continued(app: FastAPI, stack: ExitStack) -> None:
    obskit.configure(app)
    cap = stack.enter_context(capture())
    TestClient(app).get("/async", headers={"traceparent": TRACEPARENT})
    [span] = server_spans(cap)
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == "b7ad6b7169203331"
    assert {line["trace_id"] for line in cap.logs(logger="app")} == {TRACE_ID}


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("abc-123.x:y_z", True), ("x" * 128, True), ("x" * 129, False), ("bad id", False), ("<script>", False)],
)
def test_request_id_is_echoed_when_valid_and_replaced_otherwise(
    app: FastAPI, stack: ExitStack, sent: str, kept: bool
) -> None:
    obskit.configure(app)
    cap = stack.enter_context(capture())
    echoed = TestClient(app).get("/async", headers={"X-Request-ID": sent}).headers["x-request-id"]
    assert (echoed == sent) is kept
    if not kept:
        assert len(echoed) == 32
    assert cap.logs(logger="app")[0]["request_id"] == echoed


def test_request_id_is_generated_and_bound_in_a_thread_pool_handler(app: FastAPI, stack: ExitStack) -> None:
    obskit.configure(app, request_id_echo="always")
    cap = stack.enter_context(capture())
    response = TestClient(app).get("/items/1")
    [line] = cap.logs(logger="app")
    assert line["request_id"] == response.headers["x-request-id"]
    assert line["trace_id"] == format(server_spans(cap)[0].context.trace_id, "032x")


def test_request_id_header_setting_is_honoured(app: FastAPI, stack: ExitStack) -> None:
    obskit.configure(app, request_id_header="X-Correlation-ID")
    stack.enter_context(capture())
    response = TestClient(app).get("/async", headers={"X-Correlation-ID": "corr-1"})
    assert response.headers["x-correlation-id"] == "corr-1"


def test_handler_exception_propagates_unchanged_and_is_recorded_once(app: FastAPI, stack: ExitStack) -> None:
    obskit.configure(app)
    cap = stack.enter_context(capture())
    RAISED.clear()
    with pytest.raises(Boom) as caught:
        TestClient(app).get("/boom")
    assert caught.value is RAISED[0]
    [span] = server_spans(cap)
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["http.response.status_code"] == 500
    assert [e.name for e in span.events] == ["exception"]
    cap.assert_counter("http_server_requests_total", 1, route="/boom", status_code="500")
    errors = [line for line in cap.logs(level="ERROR") if "exception" in line]
    assert len(errors) == 1
    assert errors[0]["logger"] == "http.access"
    assert "Boom: boom" in errors[0]["exception"]["stack"]


def test_handler_exception_gives_the_client_a_500(app: FastAPI, stack: ExitStack) -> None:
    obskit.configure(app)
    stack.enter_context(capture())
    assert TestClient(app, raise_server_exceptions=False).get("/boom").status_code == 500


def test_streaming_response_passes_through_chunk_by_chunk(app: FastAPI, stack: ExitStack) -> None:
    obskit.configure(app)
    cap = stack.enter_context(capture())
    with TestClient(app).stream("GET", "/stream") as response:
        chunks = list(response.iter_bytes())
    assert b"".join(chunks) == b"one,two,three"
    cap.assert_span("GET /stream", **{"http.response.status_code": 200})


def test_websocket_messages_pass_through_and_the_connection_gets_a_span(
    app: FastAPI, stack: ExitStack
) -> None:
    obskit.configure(app)
    cap = stack.enter_context(capture())
    with TestClient(app).websocket_connect("/ws") as ws:
        ws.send_text("there")
        assert ws.receive_text() == "hello there"
    assert [span.name for span in server_spans(cap)] == ["WS /ws"]  # more in tests/test_websockets.py


async def _get(app: Any, path: str) -> int:
    """One GET straight through the ASGI interface (TestClient is too slow for 10,000 requests)."""
    return int((await asgi_get(app, path))[0]["status"])


async def test_ten_thousand_unmatched_paths_share_one_route_label(app: FastAPI, stack: ExitStack) -> None:
    obskit.configure(app, access_log=False)
    cap = stack.enter_context(capture())
    statuses = {await _get(app, f"/scan/{i}/x.php") for i in range(10_000)}
    assert statuses == {404}
    spec = cap.store.live_spec(obskit.MetricsCollector._family("http_requests").spec)
    assert cap.store.series_count(spec) == 1
    cap.assert_counter("http_server_requests_total", 10_000, route="__unmatched__", status_code="404")
    assert {s.name for s in server_spans(cap)} == {"GET"}


def test_default_excluded_paths_and_otel_excluded_urls(
    app: FastAPI, stack: ExitStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_EXCLUDED_URLS", "^/async$,items/9")
    obskit.configure(app)
    cap = stack.enter_context(capture())
    client = TestClient(app)
    client.get("/async")
    client.get("/items/9")
    client.get("/items/8")
    assert [s.name for s in server_spans(cap)] == ["GET /items/{item_id}"]
    assert cap.counter_value("http_server_requests_total") == 1
    assert len(cap.logs(logger="http.access")) == 1


def test_access_log_can_be_turned_off(app: FastAPI, stack: ExitStack) -> None:
    obskit.configure(app, access_log=False)
    cap = stack.enter_context(capture())
    TestClient(app).get("/async")
    assert cap.logs(logger="http.access") == []
    assert len(server_spans(cap)) == 1


def test_scrape_endpoint_is_mounted_with_prometheus(app: FastAPI, stack: ExitStack) -> None:
    obskit.configure(app, metrics_exporter="prometheus", prometheus_port=0)
    cap = stack.enter_context(capture())
    client = TestClient(app)
    client.get("/async")
    scrape = client.get("/metrics")
    assert scrape.status_code == 200
    assert 'http_server_requests_total{method="GET",route="/async",status_code="200"} 1.0' in scrape.text
    assert cap.counter_value("http_server_requests_total", route="/metrics") == 0


def test_scrape_path_is_the_apps_own_without_prometheus(app: FastAPI, stack: ExitStack) -> None:
    obskit.configure(app)
    stack.enter_context(capture())
    assert TestClient(app).get("/metrics").status_code == 404


def test_health_endpoints_are_mounted(app: FastAPI, stack: ExitStack) -> None:
    obskit.configure(app)
    cap = stack.enter_context(capture())
    health.clear()
    try:
        health.register("db", lambda: False, critical=True)
        client = TestClient(app)
        live = client.get("/health/live")
        assert live.status_code == 200
        assert live.json() == {"status": "alive"}
        assert live.headers["content-type"] == "application/json"
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert "db" in ready.json()["checks"]
        assert client.get("/health").status_code == 503
    finally:
        health.clear()
    assert server_spans(cap) == []


def test_after_shutdown_requests_pass_through(app: FastAPI) -> None:
    obskit.configure(app)
    client = TestClient(app)
    obskit.shutdown()
    with capture() as cap:
        response = client.get("/async")
    assert response.status_code == 200
    assert "x-request-id" not in response.headers
    assert server_spans(cap) == []
    assert cap.counter_value("http_server_requests_total") == 0
    obskit.configure(app)
    with capture() as cap:
        client.get("/async")
    assert len(server_spans(cap)) == 1


def test_other_objects_are_refused_with_a_hint() -> None:
    with pytest.raises(obskit.ConfigError, match=r"obskit\.asgi\.middleware"):
        obskit.configure(object())
    assert not obskit.is_configured()


async def plain_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return
    await send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"made"})


def test_plain_asgi_app_wrapped_with_the_public_middleware(stack: ExitStack) -> None:
    obskit.configure()
    cap = stack.enter_context(capture())
    client = TestClient(obskit.asgi.middleware(plain_app))
    response = client.post("/anything/42", headers={"X-Request-ID": "r-1"})
    assert response.status_code == 201
    assert response.headers["x-request-id"] == "r-1"
    [span] = server_spans(cap)
    assert span.name == "POST"
    assert span.attributes["http.response.status_code"] == 201
    cap.assert_counter(
        "http_server_requests_total", 1, method="POST", route="__unmatched__", status_code="201"
    )


def test_unknown_methods_are_folded_into_other(stack: ExitStack) -> None:
    obskit.configure()
    cap = stack.enter_context(capture())
    TestClient(obskit.asgi.middleware(plain_app)).request("FROB", "/")
    [span] = server_spans(cap)
    assert span.attributes["http.request.method"] == "_OTHER"
    assert span.attributes["http.request.method_original"] == "FROB"


def test_routes_inside_a_mount_carry_the_mount_prefix(stack: ExitStack) -> None:
    inner = FastAPI()

    @inner.get("/orders/{order_id:int}")
    async def order(order_id: int) -> dict[str, int]:
        return {"id": order_id}

    app = FastAPI()
    app.mount("/v2", inner)
    obskit.configure(app)
    cap = stack.enter_context(capture())
    assert TestClient(app).get("/v2/orders/3").json() == {"id": 3}
    [span] = server_spans(cap)
    assert span.name == "GET /v2/orders/{order_id}"


@pytest.mark.usefixtures("swallow_internal_errors")
def test_broken_telemetry_never_reaches_the_request(
    app: FastAPI, stack: ExitStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    obskit.configure(app)
    stack.enter_context(capture())

    def broken(key: str) -> Any:
        raise RuntimeError("metric store unavailable")

    monkeypatch.setattr(obskit.MetricsCollector, "_family", staticmethod(broken))
    response = TestClient(app).get("/items/2")
    assert response.status_code == 200
    assert response.json() == {"id": 2}


async def test_cancelled_request_is_counted_as_499_and_the_cancellation_propagates(stack: ExitStack) -> None:
    import asyncio

    async def hanging(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(10)

    obskit.configure()
    cap = stack.enter_context(capture())
    task = asyncio.ensure_future(_get(obskit.asgi.middleware(hanging), "/slow"))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    cap.assert_counter("http_server_requests_total", 1, status_code="499")
    assert cap.gauge_value("http_server_requests_in_progress", method="GET") == 0


def test_a_request_id_header_the_handler_sets_is_kept_and_not_doubled(stack: ExitStack) -> None:
    app = FastAPI()

    @app.get("/own")
    async def own(response: Response) -> dict[str, str]:
        response.headers["X-Request-ID"] = "set-by-the-app"
        return {"ok": "yes"}

    obskit.configure(app)
    stack.enter_context(capture())
    response = TestClient(app).get("/own", headers={"X-Request-ID": "from-the-client"})
    assert response.status_code == 200
    assert response.headers.get_list("x-request-id") == ["set-by-the-app"]
    plain = TestClient(app).get("/docs", headers={"X-Request-ID": "r1"})  # no header: it gets one
    assert plain.headers.get_list("x-request-id") == ["r1"]


def test_a_servers_own_log_of_an_error_obskit_logged_is_dropped_until_shutdown(
    app: FastAPI, stack: ExitStack
) -> None:
    from obskit._web.http import AlreadyLoggedFilter

    server_log = logging.getLogger("uvicorn.error")
    obskit.configure(app)
    stack.enter_context(capture())
    [already] = [f for f in server_log.filters if isinstance(f, AlreadyLoggedFilter)]
    RAISED.clear()
    with pytest.raises(Boom):
        TestClient(app).get("/boom")
    logged, unrelated = RAISED[0], ValueError("not through obskit")

    def record(error: BaseException) -> logging.LogRecord:
        return server_log.makeRecord(
            server_log.name,
            logging.ERROR,
            __file__,
            1,
            "Exception in ASGI application",
            (),
            (type(error), error, error.__traceback__),
        )

    assert not already.filter(record(logged))  # obskit's access line has it, with its stack
    assert already.filter(record(unrelated))
    assert already.filter(server_log.makeRecord(server_log.name, logging.INFO, __file__, 1, "up", (), None))
    obskit.shutdown()
    assert not [f for f in server_log.filters if isinstance(f, AlreadyLoggedFilter)]


def test_fastapis_own_span_metrics_and_error_logs_are_off_while_obskit_serves() -> None:
    """One server span per request and one log line per error, even with FastAPI's own providers."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans, logs, reader = InMemorySpanExporter(), InMemoryLogRecordExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logger_provider = LoggerProvider(shutdown_on_exit=False)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    app = FastAPI(
        telemetry={
            "tracer_provider": tracer_provider,
            "meter_provider": meter_provider,
            "logger_provider": logger_provider,
        }
    )

    @app.get("/boom")
    async def boom() -> None:
        raise Boom("boom")

    def served_by_fastapi() -> tuple[int, int, bool]:
        with pytest.raises(Boom):
            TestClient(app).get("/boom")
        metrics = reader.get_metrics_data()
        measured = bool(metrics and metrics.resource_metrics)
        made = (len(spans.get_finished_spans()), len(logs.get_finished_logs()), measured)
        spans.clear()
        logs.clear()
        return made

    assert app._native_telemetry.enabled()  # the premise: FastAPI records by itself
    obskit.configure(app, traces_exporter="none", metrics_exporter="none")
    try:
        assert not app._native_telemetry.enabled()
        # One server span, obskit's, into the provider FastAPI was given (obskit adopts it).
        assert served_by_fastapi() == (1, 0, False)
    finally:
        obskit.shutdown()
    spans_made, logs_made, measured = served_by_fastapi()
    assert spans_made >= 1  # FastAPI's own again after shutdown
    assert logs_made >= 1
    assert measured
    for provider in (tracer_provider, logger_provider, meter_provider):
        provider.shutdown()


def test_the_last_body_goes_out_from_the_context_before_the_request() -> None:
    """What the server schedules while it sends the last body (uvicorn's keep-alive timer copies
    the context, and a cancelled timer lingers for seconds) does not hold the request's span and
    fields; the app's own code after the response (background work) still has them."""
    import asyncio

    from opentelemetry import trace

    from obskit._core.context import current_fields

    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})
        seen["after"] = (current_fields().get("request_id"), trace.get_current_span().get_span_context())

    async def send(message: dict[str, Any]) -> None:
        kind = "start" if message["type"] == "http.response.start" else message.get("more_body", False)
        seen[kind] = (
            current_fields().get("request_id"),
            trace.get_current_span().get_span_context(),
        )

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": "/x",
        "root_path": "",
        "headers": [(b"x-request-id", b"req-7")],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    with capture() as cap:
        asyncio.run(obskit.asgi.middleware(app)(scope, receive, send))
    (span,) = cap.spans()
    request = ("req-7", span.context)
    assert seen["start"] == request
    assert seen[True] == request  # a body with more to come: inside the request's context
    assert seen[False][0] is None  # the last body: the context from before the request
    assert not seen[False][1].is_valid
    assert seen["after"] == request  # back for the app's code after the response
    (access,) = [line for line in cap.logs() if line["logger"] == "http.access"]
    assert access["request_id"] == "req-7"
    assert access["span_id"] == f"{span.context.span_id:016x}"


@pytest.mark.parametrize(
    ("version", "warned"), [("1.6.2", True), ("0.37.2", True), ("1.7.0", False), ("2.0", False)]
)
def test_a_starlette_older_than_1_7_is_named_as_why_requests_get_no_route(
    version: str, warned: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import starlette

    monkeypatch.setattr(starlette, "__version__", version)
    obskit.configure(make_app(), traces_exporter="none", metrics_exporter="none", logs_exporter="none")
    said = [line for line in capsys.readouterr().err.splitlines() if "puts no matched route" in line]
    expected = (
        f"obskit WARNING: Starlette {version} puts no matched route in the request scope (1.7 does):"
        " requests get no route in their span names, metrics and access lines; pip install"
        ' "obskit[fastapi]" (starlette>=1.7)'
    )
    assert said == ([expected] if warned else [])
