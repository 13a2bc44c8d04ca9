"""Websocket connections: a SERVER span each, RED metrics, a request id and an access line.

The method is ``WS``, the span ``WS <route>``; the status is what the connection came to (101
accepted, 403 closed before accepting, 500 when the app failed). Through Starlette's TestClient
and through a real uvicorn process driven by the ``websockets`` client.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from opentelemetry import baggage
from opentelemetry.trace import SpanKind, StatusCode

import obskit
import obskit.asgi
import procs
from obskit.testing import Capture, capture

with warnings.catch_warnings():  # starlette asks for httpx2, not installed here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient, WebSocketDenialResponse

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


class Boom(Exception):
    """Raised by the failing websocket handler."""


SEEN: dict[str, Any] = {}


def make_app() -> FastAPI:
    app = FastAPI()

    @app.websocket("/rooms/{room}")
    async def room(websocket: WebSocket, room: str) -> None:
        await websocket.accept()
        SEEN["baggage"] = dict(baggage.get_all())
        try:
            while True:
                await websocket.send_text(f"{room}: {await websocket.receive_text()}")
        except WebSocketDisconnect:
            pass

    @app.websocket("/closing")
    async def closing(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close(code=1000)

    @app.websocket("/private")
    async def private(websocket: WebSocket) -> None:
        await websocket.close(code=1008)  # before accepting: the server answers 403

    @app.websocket("/boom")
    async def boom(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()
        raise Boom("boom")

    @app.websocket("/unhandled")
    async def unhandled(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:  # the client's close comes out as WebSocketDisconnect
            await websocket.receive_text()

    return app


@pytest.fixture(autouse=True)
def _fresh() -> None:
    SEEN.clear()


def ws_spans(cap: Capture) -> list[Any]:
    return [span for span in cap.spans() if span.kind == SpanKind.SERVER]


def test_a_connection_is_one_server_span_with_route_status_and_metrics() -> None:
    app = make_app()
    obskit.configure(app)
    with (
        capture() as cap,
        TestClient(app).websocket_connect(
            "/rooms/blue", headers={"x-request-id": "ws-1", "traceparent": TRACEPARENT}
        ) as ws,
    ):
        ws.send_text("hi")
        assert ws.receive_text() == "blue: hi"
        assert dict(ws.extra_headers or [])[b"x-request-id"] == b"ws-1"
    [span] = ws_spans(cap)
    assert span.name == "WS /rooms/{room}"
    assert span.status.status_code == StatusCode.UNSET
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert dict(span.attributes) == {
        "url.path": "/rooms/blue",
        "url.scheme": "ws",
        "server.address": "testserver",
        # no server.port: the Host header names none and 80 is the ws scheme's default
        "client.address": "testclient",
        "user_agent.original": "testclient",
        "network.protocol.name": "websocket",
        "http.route": "/rooms/{room}",
        "http.response.status_code": 101,
    }
    cap.assert_counter("http_server_requests_total", 1, method="WS", route="/rooms/{room}", status_code="101")
    assert (
        cap.histogram_count("obskit_http_server_request_duration_seconds", method="WS", route="/rooms/{room}")
        == 1
    )
    assert cap.gauge_value("http_server_requests_in_progress", method="WS") == 0
    [line] = cap.logs(logger="http.access")
    assert (line["message"], line["request_id"], line["route"]) == (
        "WS /rooms/blue 101",
        "ws-1",
        "/rooms/{room}",
    )


def test_response_bytes_is_what_the_app_sent() -> None:
    from starlette.responses import PlainTextResponse

    app = FastAPI()

    @app.websocket("/talk")
    async def talk(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("héllo")  # 6 bytes in UTF-8
        await websocket.send_bytes(b"\x00" * 10)
        await websocket.receive_text()  # what the client sends is not counted
        await websocket.send_text("")
        await websocket.close()

    @app.websocket("/denied")
    async def denied(websocket: WebSocket) -> None:
        await websocket.send_denial_response(PlainTextResponse("nope", status_code=401))

    obskit.configure(app)
    client = TestClient(app)
    with capture() as cap:
        with client.websocket_connect("/talk") as ws:
            assert ws.receive_text() == "héllo"
            assert ws.receive_bytes() == b"\x00" * 10
            ws.send_text("a longer message from the client")
            assert ws.receive_text() == ""
        with pytest.raises(WebSocketDenialResponse) as refused, client.websocket_connect("/denied"):
            pass
        assert (refused.value.status_code, refused.value.content) == (401, b"nope")
    lines = {line["route"]: line for line in cap.logs(logger="http.access")}
    assert lines["/talk"]["response_bytes"] == 16
    assert (lines["/denied"]["status"], lines["/denied"]["response_bytes"]) == (401, 4)


def test_the_handler_sees_the_incoming_baggage() -> None:
    app = make_app()
    obskit.configure(app)
    with TestClient(app).websocket_connect("/rooms/x", headers={"baggage": "user=alice"}) as ws:
        ws.send_text("hi")
        ws.receive_text()
    assert SEEN["baggage"] == {"user": "alice"}


def test_a_connection_the_app_closes_is_101() -> None:
    app = make_app()
    obskit.configure(app)
    with (
        capture() as cap,
        TestClient(app).websocket_connect("/closing") as ws,
        pytest.raises(WebSocketDisconnect),
    ):
        ws.receive_text()
    cap.assert_counter("http_server_requests_total", 1, method="WS", route="/closing", status_code="101")


def test_closing_before_accepting_is_403_and_not_an_error() -> None:
    app = make_app()
    obskit.configure(app)
    with capture() as cap, pytest.raises(WebSocketDisconnect), TestClient(app).websocket_connect("/private"):
        pass
    [span] = ws_spans(cap)
    assert span.name == "WS /private"
    assert span.attributes["http.response.status_code"] == 403
    assert span.status.status_code == StatusCode.UNSET
    cap.assert_counter("http_server_requests_total", 1, method="WS", route="/private", status_code="403")


def test_an_app_error_is_500_recorded_once_and_propagates_unchanged() -> None:
    app = make_app()
    obskit.configure(app)

    def talk() -> None:
        with TestClient(app).websocket_connect("/boom") as ws:
            ws.send_text("x")
            ws.receive_text()

    with capture() as cap, pytest.raises(Boom):
        talk()
    [span] = ws_spans(cap)
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == f"{__name__}.Boom"  # as its exception event says
    assert [event.name for event in span.events] == ["exception"]
    cap.assert_counter("http_server_requests_total", 1, method="WS", route="/boom", status_code="500")
    [line] = cap.logs(logger="http.access")
    assert line["level"] == "ERROR"
    assert line["exception"]["type"] == "Boom"


def test_the_client_going_away_is_not_an_error() -> None:
    app = make_app()
    obskit.configure(app)
    with (
        capture() as cap,
        pytest.raises(WebSocketDisconnect),
        TestClient(app).websocket_connect("/unhandled") as ws,
    ):
        ws.send_text("x")
    [span] = ws_spans(cap)
    assert span.status.status_code == StatusCode.UNSET
    cap.assert_counter("http_server_requests_total", 1, method="WS", route="/unhandled", status_code="101")


async def test_a_client_gone_before_the_handshake_is_answered_is_499() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()  # websocket.connect
        raise WebSocketDisconnect(1001)  # what Starlette raises for the disconnect that follows

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError(message)

    scope = {"type": "websocket", "path": "/ws", "root_path": "", "scheme": "ws", "headers": []}
    obskit.configure()
    with capture() as cap, pytest.raises(WebSocketDisconnect):
        await obskit.asgi.middleware(app)(scope, receive, send)
    [span] = ws_spans(cap)
    assert span.status.status_code == StatusCode.UNSET
    cap.assert_counter("http_server_requests_total", 1, method="WS", status_code="499")


def test_a_mounted_apps_websocket_route_carries_the_prefix() -> None:
    outer = FastAPI()
    outer.mount("/api", make_app())
    obskit.configure(outer)
    with capture() as cap, TestClient(outer).websocket_connect("/api/rooms/red") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "red: hi"
    [span] = ws_spans(cap)
    assert span.name == "WS /api/rooms/{room}"


def test_excluded_paths_and_a_switched_off_middleware_pass_websockets_through() -> None:
    app = make_app()
    obskit.configure(app, excluded_urls="/rooms/")
    with capture() as cap, TestClient(app).websocket_connect("/rooms/a") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "a: hi"
    assert ws_spans(cap) == []
    obskit.shutdown()
    with TestClient(app).websocket_connect("/rooms/b") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "b: hi"


# -- a real uvicorn process, the websockets client --------------------------------------------------

APP = textwrap.dedent(
    """
    import obskit
    from fastapi import FastAPI, WebSocket, WebSocketDisconnect

    app = FastAPI()

    @app.websocket("/rooms/{room}")
    async def room(websocket: WebSocket, room: str) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text(room + ": " + await websocket.receive_text())
        except WebSocketDisconnect:
            pass

    @app.websocket("/private")
    async def private(websocket: WebSocket) -> None:
        await websocket.close()

    @app.websocket("/boom")
    async def boom(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()
        raise RuntimeError("boom")

    @app.get("/health/live")
    async def live() -> dict:
        return {}

    obskit.configure(app, service_name="ws-app")
    """
)


@pytest.fixture
def uvicorn_server(tmp_path: Path) -> Iterator[tuple[str, Path, Path, Any]]:
    (tmp_path / "wsapp.py").write_text(APP)
    port = procs.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSKIT_", "OTEL_"))}
    src = Path(obskit.__file__).resolve().parents[1]
    env.update(
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(src)]),
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="none",
        PYTHONUNBUFFERED="1",
    )
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    args = [sys.executable, "-m", "uvicorn", "wsapp:app", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--ws", "websockets", "--no-access-log"]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(args, stdout=stdout, stderr=stderr, env=env, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"uvicorn did not come up: {err.read_text()[-2000:]}")
                    time.sleep(0.05)
            yield f"ws://127.0.0.1:{port}", out, err, lambda: procs.stop(process)
        finally:
            procs.stop(process)


@pytest.mark.integration
def test_uvicorn_websockets_get_spans_statuses_and_request_ids(
    uvicorn_server: tuple[str, Path, Path, Any],
) -> None:
    from websockets.exceptions import ConnectionClosedError, InvalidStatus
    from websockets.sync.client import connect

    base, out, err, stop = uvicorn_server
    with connect(f"{base}/rooms/blue", additional_headers={"X-Request-ID": "ws-7"}) as ws:
        ws.send("hi")
        assert ws.recv(timeout=10) == "blue: hi"
        assert ws.response is not None
        assert ws.response.headers["x-request-id"] == "ws-7"
    with pytest.raises(InvalidStatus) as rejected:
        connect(f"{base}/private", open_timeout=10)
    assert rejected.value.response.status_code == 403

    def boom() -> None:
        with connect(f"{base}/boom") as ws:
            ws.send("x")
            ws.recv(timeout=10)

    with pytest.raises(ConnectionClosedError):  # uvicorn drops the connection
        boom()

    stop()  # the access lines are written at once; the spans are flushed at exit
    lines = [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("logger") == "http.access"]
    spans = [line for line in err.read_text().splitlines() if line.startswith("[obskit span] WS")]
    by_route = {line["route"]: line for line in access}
    assert (by_route["/rooms/{room}"]["status"], by_route["/rooms/{room}"]["request_id"]) == (101, "ws-7")
    assert by_route["/rooms/{room}"]["response_bytes"] == len(b"blue: hi")
    assert by_route["/private"]["status"] == 403
    assert by_route["/boom"]["status"] == 500
    assert by_route["/boom"]["level"] == "ERROR"
    assert sorted(span.split()[3] for span in spans) == ["/boom", "/private", "/rooms/{room}"]
    [failed] = [span for span in spans if " /boom " in span]
    assert " ERROR(RuntimeError: boom) " in failed
    assert "http.response.status_code=500" in failed
