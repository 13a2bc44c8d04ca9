"""The access line's ``response_bytes`` and the fields an app adds with ``obskit.add_access_fields``.

ASGI (FastAPI through Starlette's test client, and a plain ASGI app), WSGI (Flask through
werkzeug's client), Django (its test client); the line written straight through obskit's handler
(stdout) as well as the one the LogRecord path makes (``obskit.testing.capture``).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import json
import logging
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, StreamingResponse
from flask import Flask, Response, stream_with_context
from werkzeug.test import Client as WerkzeugClient

import obskit
import obskit.asgi
import obskit.wsgi
from asgicall import asgi_get
from obskit._core import state as _state
from obskit._recording.loghandler import ObskitHandler
from obskit.testing import Capture, capture

with warnings.catch_warnings():  # starlette asks for httpx2, not installed here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

QUIET: dict[str, Any] = {"traces_exporter": "none", "metrics_exporter": "none"}


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/json")
    def sync_json() -> dict[str, str]:  # runs in Starlette's thread pool, a copy of the context
        obskit.add_access_fields(tenant="t-1", plan="pro")
        return {"hello": "world"}

    @app.get("/text")
    async def text() -> PlainTextResponse:
        obskit.add_access_fields(tenant="t-2", status="mine", message="kept apart")
        obskit.add_access_fields(tenant="t-3")  # the last value wins
        return PlainTextResponse("x" * 1234)

    @app.get("/stream")
    def stream() -> StreamingResponse:
        return StreamingResponse(iter([b"one,", b"two,", b"three"]), media_type="text/plain")

    return app


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as s:
        yield s


def access(cap: Any) -> list[dict[str, Any]]:
    return cap.logs(logger="http.access")


# -- ASGI ------------------------------------------------------------------------------------------


def test_asgi_response_bytes_and_added_fields(stack: ExitStack) -> None:
    app = fastapi_app()
    obskit.configure(app, **QUIET)
    cap = stack.enter_context(capture())
    client = stack.enter_context(TestClient(app))
    bodies = [client.get(path).content for path in ("/json", "/text", "/stream")]
    lines = access(cap)
    assert [line["response_bytes"] for line in lines] == [len(body) for body in bodies]
    assert bodies[1] == b"x" * 1234
    assert bodies[2] == b"one,two,three"
    assert (lines[0]["tenant"], lines[0]["plan"]) == ("t-1", "pro")
    assert lines[1]["tenant"] == "t-3"
    assert lines[1]["status"] == 200
    assert lines[1]["field_status"] == "mine"
    assert lines[1]["field_message"] == "kept apart"
    assert "tenant" not in lines[2]


def test_asgi_body_in_several_messages_is_counted_whole(stack: ExitStack) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"ab", b"", b"cdef"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body"})

    obskit.configure(**QUIET)
    cap = stack.enter_context(capture())
    asyncio.run(asgi_get(obskit.asgi.middleware(app), "/parts"))
    assert [line["response_bytes"] for line in access(cap)] == [6]


def test_asgi_file_sent_by_the_server_counts_its_size(stack: ExitStack, tmp_path: Path) -> None:
    # Its Content-Length (as Starlette's FileResponse sends): no stat of the file in the event
    # loop, which Starlette's own suite forbids (blockbuster).
    sent = tmp_path / "report.csv"
    sent.write_bytes(b"a,b\n" * 100)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/csv"), (b"content-length", b"400")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": str(sent)})

    obskit.configure(**QUIET)
    cap = stack.enter_context(capture())
    asyncio.run(asgi_get(obskit.asgi.middleware(app), "/file"))
    assert [line["response_bytes"] for line in access(cap)] == [400]


def test_direct_line_on_stdout_carries_them(capsys: pytest.CaptureFixture[str], stack: ExitStack) -> None:
    app = fastapi_app()
    obskit.configure(app, logs_exporter="console", log_format="json", **QUIET)
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if type(h) is ObskitHandler]  # pytest's off: direct path
    client = stack.enter_context(TestClient(app))
    capsys.readouterr()
    client.get("/stream")
    client.get("/json")
    for handler in root.handlers:
        handler.flush()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "http.access" in line]
    assert [line["response_bytes"] for line in lines] == [13, len(b'{"hello":"world"}')]
    assert "tenant" not in lines[0]
    assert lines[1]["tenant"] == "t-1"
    obskit.shutdown()


def test_outside_a_request_it_does_nothing(stack: ExitStack) -> None:
    obskit.configure(**QUIET)
    cap = stack.enter_context(capture())
    obskit.add_access_fields(tenant="nowhere")
    logging.getLogger("app").info("after")
    assert "tenant" not in cap.logs()[-1]


# -- WSGI ------------------------------------------------------------------------------------------


def flask_app() -> Flask:
    app = Flask(__name__)

    @app.get("/page")
    def page() -> str:
        obskit.add_access_fields(order_id=42)
        return "y" * 321

    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> Iterator[bytes]:
            obskit.add_access_fields(streamed=True)  # the body runs in the request's context too
            yield b"12345"
            yield b"678"

        return Response(stream_with_context(chunks()))

    return app


def test_wsgi_response_bytes_and_added_fields(stack: ExitStack) -> None:
    app = flask_app()
    obskit.configure(app, **QUIET)
    cap = stack.enter_context(capture())
    client = WerkzeugClient(app)
    page = client.get("/page")
    streamed = client.get("/stream")
    assert (page.data, streamed.data) == (b"y" * 321, b"12345678")
    lines = access(cap)
    assert [line["response_bytes"] for line in lines] == [321, 8]
    assert lines[0]["order_id"] == 42
    assert lines[1]["streamed"] is True


def test_plain_wsgi_list_body(stack: ExitStack) -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"abc", b"defg"]

    obskit.configure(**QUIET)
    cap = stack.enter_context(capture())
    assert WerkzeugClient(obskit.wsgi.middleware(app)).get("/list").data == b"abcdefg"
    assert [line["response_bytes"] for line in access(cap)] == [7]


# -- Django ----------------------------------------------------------------------------------------

PROJECT = Path(__file__).parent / "django_project"


@pytest.fixture
def django_client(stack: ExitStack) -> Iterator[Any]:
    django = pytest.importorskip("django")
    loggers = {name: list(logging.getLogger(name).handlers) for name in ("django", "django.server")}
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(PROJECT))
        patch.setenv("DJANGO_SETTINGS_MODULE", "djproj.settings")
        django.setup()
        from django.test import Client

        client = Client(raise_request_exception=False)
        obskit.configure(client.handler, **QUIET)
        yield client
    logging.captureWarnings(False)
    for name, handlers in loggers.items():
        logging.getLogger(name).handlers[:] = handlers


def test_django_response_bytes_and_added_fields(stack: ExitStack, django_client: Any) -> None:
    cap = stack.enter_context(capture())
    plain = django_client.get("/fields/")
    streamed = django_client.get("/stream/")
    streamed_body = b"".join(streamed.streaming_content)
    streamed.close()
    assert plain.content == b"0123456789"
    lines = access(cap)
    assert [line["response_bytes"] for line in lines] == [10, len(streamed_body)]
    assert lines[0]["tenant"] == "t-1"
    assert (lines[0]["status"], lines[0]["field_status"]) == (200, "not the status")


def test_added_fields_are_redacted_like_every_log_field(stack: ExitStack) -> None:
    app = FastAPI()

    @app.get("/login")
    async def login() -> dict[str, str]:
        obskit.add_access_fields(token="sk-live-123", note="password=hunter2", user="u-1")
        return {}

    obskit.configure(app, **QUIET)
    cap = stack.enter_context(capture())
    stack.enter_context(TestClient(app)).get("/login")
    (line,) = access(cap)
    assert line["token"] == "[REDACTED]"
    assert "hunter2" not in line["note"]
    assert line["user"] == "u-1"


# -- with tracing on and off -----------------------------------------------------------------------
# The request is found through the OpenTelemetry context when it has a span or an incoming trace
# context, through a context variable of its own otherwise: both ways, and from worker threads.

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def captured(stack: ExitStack, tracing: bool) -> Capture:
    cap = stack.enter_context(capture())
    if not tracing:  # what traces_exporter="none" gives: no tracer, no server span
        _state.set_state(dataclasses.replace(_state.STATE, tracer=None))
    return cap


def in_a_thread(**fields: Any) -> None:
    """Add ``fields`` from a pool thread running a copy of this context (what executors do)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(contextvars.copy_context().run, obskit.add_access_fields, **fields).result()


@pytest.mark.parametrize("tracing", [True, False], ids=["tracing", "no-tracing"])
def test_asgi_fields_from_the_handler_its_thread_pool_and_to_thread(stack: ExitStack, tracing: bool) -> None:
    app = fastapi_app()

    @app.get("/to-thread")
    async def to_thread() -> dict[str, str]:
        await asyncio.to_thread(obskit.add_access_fields, worker="to_thread")
        return {}

    obskit.configure(app, **QUIET)
    cap = captured(stack, tracing)
    client = stack.enter_context(TestClient(app))
    client.get("/json")  # a sync handler: Starlette's thread pool
    client.get("/text")
    client.get("/to-thread")
    client.get("/text", headers={"traceparent": TRACEPARENT})  # an incoming trace context
    client.get("/stream")
    lines = access(cap)
    assert [line.get("tenant") for line in lines] == ["t-1", "t-3", None, "t-3", None]
    assert lines[2]["worker"] == "to_thread"
    assert bool(cap.spans()) is tracing


@pytest.mark.parametrize("tracing", [True, False], ids=["tracing", "no-tracing"])
def test_wsgi_fields_from_the_handler_a_pool_thread_and_the_body(stack: ExitStack, tracing: bool) -> None:
    app = flask_app()

    @app.get("/pooled")
    def pooled() -> str:
        in_a_thread(worker="pool")
        return "z"

    obskit.configure(app, **QUIET)
    cap = captured(stack, tracing)
    client = WerkzeugClient(app)
    for path, headers in (
        ("/page", {}),
        ("/pooled", {}),
        ("/stream", {}),
        ("/page", {"traceparent": TRACEPARENT}),
    ):
        assert client.get(path, headers=headers).data  # the line is written once the body is read
    lines = access(cap)
    assert [line.get("order_id") for line in lines] == [42, None, None, 42]
    assert lines[1]["worker"] == "pool"
    assert lines[2]["streamed"] is True
    assert bool(cap.spans()) is tracing


@pytest.mark.parametrize("tracing", [True, False], ids=["tracing", "no-tracing"])
def test_plain_asgi_and_wsgi_middleware_fields(stack: ExitStack, tracing: bool) -> None:
    async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
        obskit.add_access_fields(kind="asgi")
        await asyncio.to_thread(in_a_thread, pooled=True)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
        obskit.add_access_fields(kind="wsgi")
        in_a_thread(pooled=True)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    obskit.configure(**QUIET)
    cap = captured(stack, tracing)
    asyncio.run(asgi_get(obskit.asgi.middleware(asgi_app), "/a"))
    assert WerkzeugClient(obskit.wsgi.middleware(wsgi_app)).get("/w").data == b"ok"
    assert [(line["kind"], line["pooled"]) for line in access(cap)] == [("asgi", True), ("wsgi", True)]
    assert bool(cap.spans()) is tracing


@pytest.mark.parametrize("tracing", [True, False], ids=["tracing", "no-tracing"])
def test_django_fields_with_and_without_tracing(stack: ExitStack, django_client: Any, tracing: bool) -> None:
    cap = captured(stack, tracing)
    django_client.get("/fields/")
    django_client.get("/fields/", HTTP_TRACEPARENT=TRACEPARENT)
    assert [line["tenant"] for line in access(cap)] == ["t-1", "t-1"]
    assert bool(cap.spans()) is tracing
