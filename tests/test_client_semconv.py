"""Client spans of outgoing httpx/requests calls use the stable HTTP semantic conventions.

A Flask app configured by obskit (a real server span) calls a real HTTP server on 127.0.0.1
with httpx (sync and async) and requests; the official contrib instrumentations make the client
spans. The user's own ``OTEL_SEMCONV_STABILITY_OPT_IN`` is respected.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from flask import Flask
from opentelemetry.instrumentation._semconv import (
    _OpenTelemetrySemanticConventionStability,
    _OpenTelemetryStabilitySignalType,
    _StabilityMode,
)
from opentelemetry.trace import SpanKind

import obskit
from obskit.testing import capture

sys.path.insert(0, str(Path(__file__).parent / "integration"))
from peers import Ok, http_server

STABLE = {"http.request.method", "url.full", "http.response.status_code", "server.address"}
OLD = {"http.method", "http.url", "http.status_code"}
QUIET = {"traces_exporter": "console", "metrics_exporter": "none", "logs_exporter": "none"}


@pytest.fixture
def peer() -> Iterator[str]:
    """A real HTTP server on a free loopback port; its URL."""
    with http_server(Ok) as url:
        yield f"{url}/peer"


@pytest.fixture
def semconv_table() -> Iterator[dict[Any, Any]]:
    """The instrumentations' shared mode table, put back as it was after the test."""
    stability = _OpenTelemetrySemanticConventionStability
    table = stability._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING
    saved, initialized = dict(table), stability._initialized
    yield table
    # _initialize() without the variable binds a new dict: put the original object back too.
    stability._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING = table
    table.clear()
    table.update(saved)
    stability._initialized = initialized


def _app(url: str) -> Flask:
    app = Flask("client_semconv_app")

    @app.get("/call")
    def call() -> str:
        with httpx.Client() as client:
            client.get(url)

        async def call_async() -> None:
            async with httpx.AsyncClient() as client:
                await client.get(url)

        asyncio.run(call_async())
        requests.get(url, timeout=5)
        return "called"

    return app


def _client_spans(url: str) -> tuple[Any, list[Any]]:
    """Configure obskit on the app, make the three calls inside one request; (server, client spans)."""
    app = _app(url)
    obskit.configure(app, **QUIET)
    with capture() as cap:
        assert app.test_client().get("/call", buffered=True).text == "called"
        (server,) = [s for s in cap.spans() if s.kind is SpanKind.SERVER]
        clients = [s for s in cap.spans() if s.kind is SpanKind.CLIENT]
    assert len(clients) == 3  # httpx sync, httpx async, requests
    assert {s.parent.span_id for s in clients if s.parent} == {server.context.span_id}
    return server, clients


def test_client_spans_use_the_stable_names_like_the_server_span(peer: str, semconv_table: Any) -> None:
    server, clients = _client_spans(peer)
    assert "http.request.method" in (server.attributes or {})
    for span in clients:
        attributes = dict(span.attributes or {})
        assert attributes.keys() >= STABLE, attributes
        assert not OLD & attributes.keys(), attributes
        assert attributes["url.full"] == peer
        assert attributes["http.response.status_code"] == 200
        assert attributes["server.address"] == "127.0.0.1"


def test_stable_names_even_when_the_mode_was_read_before_configure(peer: str, semconv_table: Any) -> None:
    # Something (an instrumentation the application turned on) read the environment first.
    _OpenTelemetrySemanticConventionStability._initialized = False
    _OpenTelemetrySemanticConventionStability._initialize()

    def mode() -> Any:  # the table as the instrumentations read it now (initialising may rebind it)
        return _OpenTelemetrySemanticConventionStability._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING[
            _OpenTelemetryStabilitySignalType.HTTP
        ]

    assert mode() is _StabilityMode.DEFAULT
    _, clients = _client_spans(peer)
    for span in clients:
        assert dict(span.attributes or {}).keys() >= STABLE
    # ... and what it read is left as it was, for everything else.
    assert mode() is _StabilityMode.DEFAULT


def test_the_users_http_dup_gives_both_names(
    peer: str, semconv_table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http/dup")
    _, clients = _client_spans(peer)
    for span in clients:
        attributes = dict(span.attributes or {})
        assert attributes.keys() >= STABLE | OLD, attributes


def test_the_users_value_without_http_keeps_the_old_names(
    peer: str, semconv_table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "database")
    _, clients = _client_spans(peer)
    for span in clients:
        attributes = dict(span.attributes or {})
        assert attributes.keys() >= OLD, attributes
        assert "url.full" not in attributes


def test_the_users_value_is_read_even_when_set_after_the_table_was(
    peer: str, semconv_table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _OpenTelemetrySemanticConventionStability._initialized = False
    _OpenTelemetrySemanticConventionStability._initialize()  # before the variable is set
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http/dup")
    _, clients = _client_spans(peer)
    for span in clients:
        assert dict(span.attributes or {}).keys() >= STABLE | OLD


def test_the_environment_is_left_alone(peer: str, semconv_table: Any) -> None:
    _client_spans(peer)
    assert "OTEL_SEMCONV_STABILITY_OPT_IN" not in os.environ
