"""The handler runs in the whole context the propagators extract: baggage, trace state, custom values.

ASGI (FastAPI: sync, async and streaming handlers) and WSGI (Flask: views and streamed bodies)
alike; the context is gone again after the request. A header sent on two lines is one
comma-joined list, as W3C Trace Context and Baggage read it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from flask import Flask, Response, stream_with_context
from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)

import obskit
import obskit.asgi
from asgicall import asgi_get
from obskit.testing import capture

with warnings.catch_warnings():  # starlette asks for httpx2, not installed here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
BAGGAGE = {"baggage": "user=alice,tenant=t1"}
TENANT_KEY = otel_context.create_key("test.tenant")


class TenantPropagator(TextMapPropagator):
    """A custom propagator: the ``x-tenant`` header into a context value of its own."""

    def extract(
        self,
        carrier: CarrierT,
        context: otel_context.Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> otel_context.Context:
        values = getter.get(carrier, "X-Tenant")  # header names in any case, as HTTP has them
        context = context if context is not None else otel_context.Context()
        return otel_context.set_value(TENANT_KEY, values[0], context) if values else context

    def inject(
        self,
        carrier: CarrierT,
        context: otel_context.Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        value = otel_context.get_value(TENANT_KEY, context)
        if value is not None:
            setter.set(carrier, "x-tenant", str(value))

    @property
    def fields(self) -> set[str]:
        return {"x-tenant"}


def seen_now() -> dict[str, Any]:
    """What a handler sees of the current context."""
    return {
        "baggage": dict(baggage.get_all()),
        "tenant": otel_context.get_value(TENANT_KEY),
        "trace_id": f"{trace.get_current_span().get_span_context().trace_id:032x}",
    }


SEEN: dict[str, dict[str, Any]] = {}


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/async")
    async def in_async() -> dict[str, Any]:
        SEEN["async"] = seen_now()
        return {}

    @app.get("/sync")
    def in_sync() -> dict[str, Any]:  # Starlette's thread pool
        SEEN["sync"] = seen_now()
        return {}

    @app.get("/stream")
    def stream() -> StreamingResponse:
        def chunks() -> Iterator[bytes]:
            yield b"a"
            SEEN["stream"] = seen_now()
            yield b"b"

        return StreamingResponse(chunks(), media_type="text/plain")

    return app


def flask_app() -> Flask:
    app = Flask(__name__)

    @app.get("/view")
    def view() -> dict[str, Any]:
        SEEN["view"] = seen_now()
        return {}

    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> Iterator[bytes]:
            yield b"a"
            SEEN["stream"] = seen_now()
            yield b"b"

        return Response(chunks(), mimetype="text/plain")

    @app.get("/stream-with-context")
    def stream_in_context() -> Response:
        @stream_with_context
        def chunks() -> Iterator[bytes]:
            yield b"a"
            SEEN["stream-with-context"] = seen_now()
            yield b"b"

        return Response(chunks(), mimetype="text/plain")

    return app


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    SEEN.clear()
    textmap = propagate.get_global_textmap()
    yield
    propagate.set_global_textmap(textmap)


@pytest.mark.parametrize("path", ["/async", "/sync", "/stream"])
def test_fastapi_handlers_see_the_incoming_baggage(path: str) -> None:
    app = fastapi_app()
    obskit.configure(app)
    with capture():
        response = TestClient(app).get(path, headers={"traceparent": TRACEPARENT, **BAGGAGE})
    assert response.status_code == 200
    assert SEEN[path.strip("/")] == {
        "baggage": {"user": "alice", "tenant": "t1"},
        "tenant": None,
        "trace_id": TRACE_ID,
    }


@pytest.mark.parametrize("path", ["/view", "/stream", "/stream-with-context"])
def test_flask_views_and_streamed_bodies_see_the_incoming_baggage(path: str) -> None:
    app = flask_app()
    obskit.configure(app)
    with capture():
        response = app.test_client().get(path, headers={"traceparent": TRACEPARENT, **BAGGAGE})
        assert response.status_code == 200
        response.get_data()
    assert SEEN[path.strip("/")] == {
        "baggage": {"user": "alice", "tenant": "t1"},
        "tenant": None,
        "trace_id": TRACE_ID,
    }


def test_baggage_reaches_the_handler_with_traces_off() -> None:
    app = fastapi_app()
    obskit.configure(app, traces_exporter="none")
    TestClient(app).get("/async", headers=BAGGAGE)
    assert SEEN["async"]["baggage"] == {"user": "alice", "tenant": "t1"}


def test_a_custom_propagators_values_reach_asgi_and_wsgi_handlers() -> None:
    propagate.set_global_textmap(TenantPropagator())
    fast, flask = fastapi_app(), flask_app()
    obskit.configure(fast)
    TestClient(fast).get("/async", headers={"x-tenant": "acme"})
    obskit.configure(flask)
    flask.test_client().get("/view", headers={"x-tenant": "acme"})
    assert SEEN["async"]["tenant"] == "acme"
    assert SEEN["view"]["tenant"] == "acme"


def test_the_extracted_context_is_gone_after_the_request() -> None:
    app = fastapi_app()
    obskit.configure(app)

    async def serve() -> dict[str, Any]:
        await asgi_get(app, "/async", BAGGAGE)
        return seen_now()

    after = asyncio.run(serve())
    assert SEEN["async"]["baggage"] == {"user": "alice", "tenant": "t1"}
    assert after["baggage"] == {}


async def test_tracestate_and_baggage_on_two_lines_are_joined_in_order() -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["baggage"] = dict(baggage.get_all())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    obskit.configure()
    middleware = obskit.asgi.middleware(app)
    sent = [
        (b"traceparent", TRACEPARENT.encode()),
        (b"tracestate", b"one=1,two=2"),
        (b"baggage", b"a=1"),
        (b"tracestate", b"three=3"),
        (b"baggage", b"b=2,c=3"),
    ]
    with capture() as cap:
        await _raw_get(middleware, sent)
    [span] = cap.spans()
    assert list(span.context.trace_state.items()) == [("one", "1"), ("two", "2"), ("three", "3")]
    assert span.parent is not None
    assert list(span.parent.trace_state.items()) == [("one", "1"), ("two", "2"), ("three", "3")]
    assert seen["baggage"] == {"a": "1", "b": "2", "c": "3"}


async def test_two_traceparent_lines_are_ignored_as_w3c_asks() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    obskit.configure()
    other = f"00-{'1' * 32}-{'2' * 16}-01"
    with capture() as cap:
        await _raw_get(
            obskit.asgi.middleware(app),
            [(b"traceparent", TRACEPARENT.encode()), (b"traceparent", other.encode())],
        )
    [span] = cap.spans()
    assert span.parent is None
    assert f"{span.context.trace_id:032x}" not in (TRACE_ID, "1" * 32)


def test_wsgi_tracestate_a_server_joined_with_spaces_is_read_whole() -> None:
    app = flask_app()
    obskit.configure(app)
    environ = {"HTTP_TRACEPARENT": TRACEPARENT, "HTTP_TRACESTATE": "one=1, two=2", "HTTP_BAGGAGE": "a=1, b=2"}
    with capture() as cap:
        app.test_client().get("/view", environ_base=environ).close()
    [span] = cap.spans()
    assert list(span.context.trace_state.items()) == [("one", "1"), ("two", "2")]
    assert SEEN["view"]["baggage"] == {"a": "1", "b": "2"}


async def _raw_get(app: Any, headers: list[tuple[bytes, bytes]]) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)


def test_a_propagator_named_in_otel_propagators_reaches_the_handler(tmp_path: Path) -> None:
    """A propagator package registered as an ``opentelemetry_propagator`` entry point, chosen by
    OTEL_PROPAGATORS (read when OpenTelemetry is first imported, so in a process of its own)."""
    (tmp_path / "tenantprop.py").write_text(
        textwrap.dedent(
            """
            from opentelemetry import context
            from opentelemetry.propagators.textmap import TextMapPropagator, default_getter, default_setter

            KEY = context.create_key("tenantprop")

            class TenantPropagator(TextMapPropagator):
                def extract(self, carrier, context_=None, getter=default_getter):
                    values = getter.get(carrier, "x-tenant")
                    base = context_ if context_ is not None else context.Context()
                    return context.set_value(KEY, values[0], base) if values else base

                def inject(self, carrier, context_=None, setter=default_setter):
                    pass

                @property
                def fields(self):
                    return {"x-tenant"}
            """
        )
    )
    dist = tmp_path / "tenantprop-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tenantprop\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[opentelemetry_propagator]\ntenant = tenantprop:TenantPropagator\n"
    )
    script = textwrap.dedent(
        """
        import json, warnings
        warnings.simplefilter("ignore")
        from fastapi import FastAPI
        from opentelemetry import baggage, context
        from starlette.testclient import TestClient
        import obskit, tenantprop

        app = FastAPI()
        seen = {}

        @app.get("/")
        async def handler():
            seen.update(tenant=context.get_value(tenantprop.KEY), baggage=dict(baggage.get_all()))
            return {}

        obskit.configure(app, traces_exporter="none", logs_exporter="none", access_log=False)
        TestClient(app).get("/", headers={"x-tenant": "acme", "baggage": "user=alice"})
        print(json.dumps(seen))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSKIT_", "OTEL_"))}
    src = Path(obskit.__file__).resolve().parents[1]
    env.update(
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(src)]), OTEL_PROPAGATORS="tracecontext,baggage,tenant"
    )
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "tenant": "acme",
        "baggage": {"user": "alice"},
    }
