"""Beside other OpenTelemetry set-ups: obskit adopts a provider that was there first, one pipeline.

A TracerProvider the application set globally (or gave FastAPI's own telemetry) gets obskit's
processors added; obskit's shutdown() takes them out and leaves that provider working; a provider
that is not the SDK's gets one warning. When OpenTelemetry's own server instrumentation wraps
the app, the request keeps its one server span and obskit works inside it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.util._once import Once

import obskit
from obskit._runtime import lifecycle

with warnings.catch_warnings():  # starlette asks for httpx2, not installed here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

SERVER_SPAN_LINE = "[obskit span] GET /items/{item_id} "


@pytest.fixture
def set_global(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Any], None]]:
    """Set the process's global TracerProvider as an application would (restored afterwards)."""
    saved = (trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE)
    trace._TRACER_PROVIDER = None
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    monkeypatch.setattr(lifecycle, "_warned_providers", [], raising=False)  # warned once per process
    try:
        yield trace.set_tracer_provider
    finally:
        obskit.shutdown()
        trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = saved


def user_provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def make_app(**fastapi: Any) -> FastAPI:
    app = FastAPI(**fastapi)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return app


def serve(app: FastAPI, count: int) -> None:
    with TestClient(app) as client:
        for number in range(count):
            assert client.get(f"/items/{number}").status_code == 200


def server_spans(spans: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
    return [span for span in spans if span.kind is SpanKind.SERVER]


def test_a_global_sdk_provider_gets_one_server_span_per_request_and_obskit_exports_them_too(
    set_global: Callable[[Any], None], capsys: pytest.CaptureFixture[str]
) -> None:
    provider, exporter = user_provider()
    set_global(provider)
    app = make_app()
    obskit.configure(app, traces_exporter="console", metrics_exporter="none", logs_exporter="none")
    serve(app, 4)
    obskit.shutdown()  # flushes obskit's console exporter
    spans = server_spans(exporter.get_finished_spans())
    assert sorted(span.attributes["url.path"] for span in spans) == [f"/items/{n}" for n in range(4)]
    assert len({span.context.trace_id for span in spans}) == 4  # one each, no duplicate
    printed = [line for line in capsys.readouterr().err.splitlines() if line.startswith(SERVER_SPAN_LINE)]
    assert sorted(f"{span.context.span_id:016x}" for span in spans) == sorted(
        line.split(" span=")[1].split()[0] for line in printed
    )
    assert trace.get_tracer_provider() is provider  # still the application's


def test_obskit_spans_and_the_users_join_one_trace(set_global: Callable[[Any], None]) -> None:
    provider, exporter = user_provider()
    set_global(provider)
    app = make_app()

    @app.get("/nested")
    async def nested() -> str:
        with (
            trace.get_tracer("user").start_as_current_span("user work"),
            obskit.trace_operation("obskit work"),
        ):
            return "ok"

    obskit.configure(app, traces_exporter="none", metrics_exporter="none", logs_exporter="none")
    with TestClient(app) as client:
        client.get("/nested")
    by_name = {span.name: span for span in exporter.get_finished_spans()}
    server, user, ours = by_name["GET /nested"], by_name["user work"], by_name["obskit work"]
    assert server.kind is SpanKind.SERVER
    assert user.parent is not None
    assert user.parent.span_id == server.context.span_id
    assert ours.parent is not None
    assert ours.parent.span_id == user.context.span_id


def test_a_provider_given_to_fastapis_own_telemetry_is_adopted(set_global: Callable[[Any], None]) -> None:
    """FastAPI >= 0.165 records its own server span into the provider it was given; obskit
    turns that off (one server span each) and records its own into the same provider."""
    provider, exporter = user_provider()
    app = make_app(telemetry={"tracer_provider": provider})
    obskit.configure(app, traces_exporter="none", metrics_exporter="none", logs_exporter="none")
    serve(app, 4)
    spans = server_spans(exporter.get_finished_spans())
    assert sorted(span.attributes["url.path"] for span in spans) == [f"/items/{n}" for n in range(4)]
    assert len({span.context.trace_id for span in spans}) == 4


def test_configure_again_adds_obskits_processors_once(
    set_global: Callable[[Any], None], capsys: pytest.CaptureFixture[str]
) -> None:
    provider, exporter = user_provider()
    set_global(provider)
    app = make_app()
    for _ in range(3):
        obskit.configure(app, traces_exporter="console", metrics_exporter="none", logs_exporter="none")
    assert len(provider._active_span_processor._span_processors) == 2  # the user's and obskit's one
    serve(app, 1)
    obskit.shutdown()
    assert len(server_spans(exporter.get_finished_spans())) == 1
    printed = [line for line in capsys.readouterr().err.splitlines() if line.startswith(SERVER_SPAN_LINE)]
    assert len(printed) == 1


def test_the_database_metrics_processor_goes_into_obskits_holder_once(
    set_global: Callable[[Any], None],
) -> None:
    # Instrumenting a database library adds the span processor feeding the DB metrics: into the
    # adopted provider's holder, not onto the application's provider once per configure().
    pytest.importorskip("opentelemetry.instrumentation.sqlalchemy", reason="obskit[sqlalchemy] not installed")
    sqlalchemy = pytest.importorskip("sqlalchemy")
    from obskit.testing import capture

    provider, _ = user_provider()
    set_global(provider)
    for _ in range(3):
        obskit.configure(
            traces_exporter="none",
            metrics_exporter="none",
            logs_exporter="none",
            instrument_libraries="sqlalchemy",
        )
    assert len(provider._active_span_processor._span_processors) == 2  # the user's and obskit's holder
    engine = sqlalchemy.create_engine("sqlite://")
    with capture(strict=False) as cap, engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT 1"))
        queries = cap.histogram_count("obskit_db_query_duration_seconds", operation="SELECT")
    assert queries == 1


def test_shutdown_leaves_the_users_provider_working(
    set_global: Callable[[Any], None], capsys: pytest.CaptureFixture[str]
) -> None:
    provider, exporter = user_provider()
    set_global(provider)
    obskit.configure(traces_exporter="console", metrics_exporter="none", logs_exporter="none")
    obskit.shutdown()
    capsys.readouterr()
    with trace.get_tracer("user").start_as_current_span("after obskit"):
        pass
    assert [span.name for span in exporter.get_finished_spans()] == ["after obskit"]
    assert "[obskit span]" not in capsys.readouterr().err  # obskit's processors are out
    assert trace.get_tracer_provider() is provider


def test_a_provider_that_is_not_the_sdks_gets_one_warning(
    set_global: Callable[[Any], None], caplog: pytest.LogCaptureFixture
) -> None:
    class VendorTracerProvider(trace.NoOpTracerProvider):
        """A provider of some other implementation: obskit cannot add processors to it."""

    vendor = VendorTracerProvider()
    set_global(vendor)
    with caplog.at_level(logging.WARNING, logger="obskit"):
        logging.getLogger("obskit").addHandler(caplog.handler)
        try:
            for _ in range(2):
                obskit.configure(traces_exporter="console", metrics_exporter="none", logs_exporter="none")
        finally:
            logging.getLogger("obskit").removeHandler(caplog.handler)
    warned = [r.getMessage() for r in caplog.records if "TracerProvider" in r.getMessage()]
    assert len(warned) == 1, warned
    assert "VendorTracerProvider" in warned[0]
    assert "obskit's own spans" in warned[0]
    assert trace.get_tracer_provider() is vendor
    from obskit._core import state

    assert state.STATE.tracer is not None  # obskit's decorators still record, into obskit's pipeline
    assert state.STATE.tracer_provider is not vendor


def test_the_official_fastapi_instrumentation_keeps_its_one_server_span(
    set_global: Callable[[Any], None], capsys: pytest.CaptureFixture[str]
) -> None:
    """Under FastAPIInstrumentor (what opentelemetry-instrument runs) each request has one server
    span, the instrumentation's; obskit's access line carries its ids and its metrics count."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    provider, exporter = user_provider()
    set_global(provider)
    app = make_app()
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    try:
        with obskit.testing.capture() as cap:
            obskit.configure(app, traces_exporter="none", metrics_exporter="none", log_format="json")
            serve(app, 4)
            labels = {"method": "GET", "route": "/items/{item_id}", "status_code": "200"}
            cap.assert_counter("http_server_requests_total", 4, **labels)
    finally:
        FastAPIInstrumentor.uninstrument_app(app)
    spans = server_spans(exporter.get_finished_spans())
    assert len(spans) == 4
    assert all(span.instrumentation_scope.name.startswith("opentelemetry.instrumentation") for span in spans)
    access = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"route"' in line]
    assert sorted(line["trace_id"] for line in access) == sorted(f"{s.context.trace_id:032x}" for s in spans)
    assert all(line.get("request_id") for line in access)


# -- under opentelemetry-instrument, in a real uvicorn process ------------------------------------

LAUNCHED_APP = """
import sys

import uvicorn
from fastapi import FastAPI

import obskit

app = FastAPI()


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    return {"id": item_id}


# The launcher set OTEL_LOGS_EXPORTER=none, which obskit reads too: its access lines are asked for.
obskit.configure(app, metrics_exporter="none", logs_exporter="console")
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""

#: What opentelemetry-distro is, in full: the SDK's configurator under the entry point the
#: launcher loads. This venv has the launcher but not the distro; without a configurator the
#: launcher instruments libraries but sets no provider.
SHIM_CONFIGURATOR = """
from opentelemetry.sdk._configuration import _OTelSDKConfigurator


class Configurator(_OTelSDKConfigurator):
    pass
"""


def launcher_path(tmp_path: Path) -> str:
    """PYTHONPATH for the launched app: obskit's source, and a configurator unless one is installed."""
    from importlib.metadata import entry_points

    paths = [str(Path(obskit.__file__).parents[1])]
    if not list(entry_points(group="opentelemetry_configurator")):
        shim = tmp_path / "shim"
        info = shim / "obskit_test_distro-0.dist-info"
        info.mkdir(parents=True)
        (shim / "obskit_test_distro.py").write_text(SHIM_CONFIGURATOR)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: obskit-test-distro\nVersion: 0\n")
        entry = "[opentelemetry_configurator]\ntest = obskit_test_distro:Configurator\n"
        (info / "entry_points.txt").write_text(entry)
        paths.append(str(shim))
    return os.pathsep.join(paths)


def json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object that starts a line of ``text`` (the console exporter's spans span lines)."""
    decoder = json.JSONDecoder()
    found, at = [], 0
    for line in text.splitlines(keepends=True):
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                found.append(decoder.raw_decode(text, at)[0])
        at += len(line)
    return found


@pytest.mark.integration
def test_under_opentelemetry_instrument_each_request_has_one_server_span(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    launcher = bin_dir / "opentelemetry-instrument"
    if not launcher.exists():
        pytest.skip("opentelemetry-instrument is not installed")
    (tmp_path / "app.py").write_text(LAUNCHED_APP)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSKIT_", "OTEL_", "PYTEST_"))}
    env.update(PYTHONPATH=launcher_path(tmp_path), OTEL_SERVICE_NAME="launched")
    args = [str(launcher), "--traces_exporter", "console"]
    args += ["--metrics_exporter", "none", "--logs_exporter", "none"]
    process = subprocess.Popen(
        [*args, sys.executable, "app.py", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            for _ in range(300):  # the launcher and the app start (no time is asserted)
                if process.poll() is not None:
                    break
                try:
                    client.get("/items/0")
                    break
                except httpx.TransportError:
                    threading.Event().wait(0.1)
            for number in range(1, 5):
                assert client.get(f"/items/{number}").status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    objects = json_objects(out)
    spans = [o for o in objects if "kind" in o and "context" in o]
    access = {o["path"]: o for o in objects if o.get("route") == "/items/{item_id}"}
    assert spans, (out[-3000:], err[-3000:])
    for number in range(1, 5):
        path = f"/items/{number}"
        server = [
            s
            for s in spans
            if s["kind"] == "SpanKind.SERVER"
            and path in (s["attributes"].get("http.target"), s["attributes"].get("url.path"))
        ]
        assert len(server) == 1, (path, server)
        assert server[0]["resource"]["attributes"]["service.name"] == "launched"
        trace_id = server[0]["context"]["trace_id"].removeprefix("0x")
        assert access[path]["trace_id"] == trace_id  # obskit's access line is inside that span
    assert "[obskit span]" not in err  # the launcher's console exporter prints them; obskit does not again


def test_the_official_flask_instrumentation_leaves_one_server_span_obskits(
    set_global: Callable[[Any], None],
) -> None:
    """OpenTelemetry's Flask instrumentation starts its span inside the app (before_request), under
    obskit's middleware: the server span is obskit's and the instrumentation's is its INTERNAL child."""
    from flask import Flask
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    provider, exporter = user_provider()
    set_global(provider)
    app = Flask(__name__)

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    FlaskInstrumentor.instrument_app(app, tracer_provider=provider)
    try:
        obskit.configure(app, traces_exporter="none", metrics_exporter="none", logs_exporter="none")
        client = app.test_client()
        for number in range(4):
            with client.get(f"/items/{number}") as response:  # closed: the request is finished
                assert response.status_code == 200
    finally:
        FlaskInstrumentor.uninstrument_app(app)
    spans = exporter.get_finished_spans()
    servers = server_spans(spans)
    assert len(servers) == 4
    assert all(span.instrumentation_scope.name == "obskit" for span in servers)
    for span in spans:
        if span.kind is not SpanKind.SERVER:
            assert span.parent is not None
            assert span.parent.span_id in {server.context.span_id for server in servers}


def test_an_adopted_provider_naming_another_service_is_told_once(
    set_global: Callable[[Any], None], caplog: pytest.LogCaptureFixture
) -> None:
    provider, _ = user_provider()  # its resource names no service: unknown_service
    set_global(provider)
    obskit_logger = logging.getLogger("obskit")
    obskit_logger.addHandler(caplog.handler)
    try:
        for _ in range(2):
            obskit.configure(service_name="orders", traces_exporter="none", metrics_exporter="none")
    finally:
        obskit_logger.removeHandler(caplog.handler)
    warned = [r.getMessage() for r in caplog.records if "OTEL_SERVICE_NAME" in r.getMessage()]
    assert len(warned) == 1, warned
    assert "'unknown_service" in warned[0]
    assert "'orders'" in warned[0]


def test_a_provider_the_application_shut_down_first_is_no_trouble_for_shutdown(
    set_global: Callable[[Any], None],
) -> None:
    provider, _ = user_provider()
    set_global(provider)
    obskit.configure(traces_exporter="console", metrics_exporter="none", logs_exporter="none")
    with obskit.trace_operation("before"):
        pass
    provider.shutdown()  # the application's own exit code ran first: obskit's processors stop too
    obskit.shutdown()
    assert not obskit.is_configured()


def test_opentelemetrys_asgi_middleware_added_by_hand_keeps_its_one_server_span(
    set_global: Callable[[Any], None],
) -> None:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    provider, exporter = user_provider()
    set_global(provider)
    app = make_app()
    app.add_middleware(OpenTelemetryMiddleware, tracer_provider=provider)
    obskit.configure(app, traces_exporter="console", metrics_exporter="none", logs_exporter="none")
    serve(app, 4)
    spans = server_spans(exporter.get_finished_spans())
    assert len(spans) == 4
    assert all(span.instrumentation_scope.name == "opentelemetry.instrumentation.asgi" for span in spans)
