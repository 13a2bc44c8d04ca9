"""Mounted sub-applications: one request is one SERVER span named with the full route template.

A FastAPI app mounted in another (FastAPI >= 0.165 has its own telemetry, on whenever a global
tracer provider exists, obskit's included), Starlette ``Mount`` and ``Host`` routers, Flask
blueprints with a ``url_prefix``: the span name, ``http.route`` and the ``route`` label carry
the prefix, and no second SERVER span (in a trace of its own) appears.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from flask import Blueprint, Flask
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Host, Mount, Route, Router

import obskit
import obskit.asgi
from obskit.testing import Capture, capture

with warnings.catch_warnings():  # starlette asks for httpx2, not installed here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ROUTE = "/api/items/{item_id}"


def inner_app() -> FastAPI:
    inner = FastAPI()

    @inner.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return inner


def mounted(inner: Any) -> FastAPI:
    outer = FastAPI()

    @outer.get("/ping")
    async def ping() -> str:
        return "pong"

    outer.mount("/api", inner)
    return outer


@pytest.fixture
def cap() -> Iterator[Capture]:
    """Entered by the test after configure(), which would otherwise replace what it installs."""
    with capture() as captured:
        yield captured


def server_spans(cap: Capture) -> list[Any]:
    """Every SERVER span, whoever made it (FastAPI's own come from the "fastapi" tracer)."""
    return [span for span in cap.spans() if span.kind == SpanKind.SERVER]


def assert_one_request(cap: Capture, name: str = f"GET {ROUTE}", route: str = ROUTE) -> None:
    [span] = server_spans(cap)
    assert span.instrumentation_scope.name == "obskit"
    assert span.name == name
    assert span.attributes["http.route"] == route
    cap.assert_counter("http_server_requests_total", 1, route=route, status_code="200")
    assert cap.counter_value("http_server_requests_total") == 1


def test_fastapi_mounted_in_fastapi_is_one_span_with_the_mount_prefix() -> None:
    inner = inner_app()
    assert inner._native_telemetry is not None  # the premise: FastAPI with telemetry of its own
    outer = mounted(inner)
    obskit.configure(outer)
    with capture() as cap:
        assert TestClient(outer).get("/api/items/3").json() == {"id": 3}
    assert_one_request(cap)


def test_an_excluded_path_gets_no_span_from_a_mounted_fastapi_app_either() -> None:
    outer = mounted(inner_app())
    obskit.configure(outer, excluded_urls="^/api/items/")
    with capture() as cap:
        assert TestClient(outer).get("/api/items/3").json() == {"id": 3}
    assert server_spans(cap) == []
    assert cap.counter_value("http_server_requests_total") == 0


def test_an_inner_app_configured_first_then_the_outer_is_one_span() -> None:
    """configure(inner) then configure(outer): the inner's middleware passes through and its own
    (restored) FastAPI telemetry stays quiet under obskit's request."""
    inner = inner_app()
    outer = mounted(inner)
    obskit.configure(inner)
    obskit.configure(outer)
    with capture() as cap:
        assert TestClient(outer).get("/api/items/3").json() == {"id": 3}
    assert_one_request(cap)


def test_an_inner_app_wrapped_by_hand_under_a_configured_outer_is_one_span() -> None:
    inner = inner_app()
    outer = mounted(obskit.asgi.middleware(inner))
    obskit.configure(outer)
    with capture() as cap:
        assert TestClient(outer).get("/api/items/3").json() == {"id": 3}
    assert_one_request(cap)


def test_a_fastapi_app_wrapped_by_hand_is_one_span() -> None:
    app = obskit.asgi.middleware(inner_app())
    obskit.configure()
    with capture() as cap:
        assert TestClient(app).get("/items/3").json() == {"id": 3}
    assert_one_request(cap, "GET /items/{item_id}", "/items/{item_id}")


def test_only_the_inner_app_configured_still_names_the_route_with_the_prefix() -> None:
    async def item(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(request.path_params["item_id"]))

    inner = Starlette(routes=[Route("/items/{item_id:int}", item)])
    outer = Starlette(routes=[Mount("/api", app=inner)])
    obskit.configure(inner)
    with capture() as cap:
        assert TestClient(outer).get("/api/items/3").text == "3"
    assert_one_request(cap)


def test_starlette_nested_mounts_and_host_routers_carry_their_prefixes() -> None:
    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    admin = Router(routes=[Route("/stats/{day}", ok)])
    app = Starlette(
        routes=[
            Host("admin.example.com", app=admin),
            Mount("/v1", routes=[Mount("/users", routes=[Route("/{user_id}/orders/{order_id:int}", ok)])]),
        ]
    )
    obskit.configure(app)
    with capture() as cap:
        client = TestClient(app)
        assert client.get("/v1/users/u1/orders/7").text == "ok"
        assert client.get("/v1/users/u2/orders/8").text == "ok"
        assert client.get("/stats/monday", headers={"host": "admin.example.com"}).text == "ok"
    names = sorted(span.name for span in server_spans(cap))
    assert names == ["GET /stats/{day}", *["GET /v1/users/{user_id}/orders/{order_id}"] * 2]
    cap.assert_counter("http_server_requests_total", 1, route="/stats/{day}")


def test_an_app_without_routes_mounted_in_a_mounted_app_is_labelled_with_both_prefixes() -> None:
    async def files(scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("file")(scope, receive, send)

    inner = inner_app()
    inner.mount("/files", files)
    outer = mounted(inner)
    obskit.configure(outer)
    with capture() as cap:
        assert TestClient(outer).get("/api/files/a.txt").text == "file"
    assert [span.name for span in server_spans(cap)] == ["GET /api/files"]


def test_flask_blueprint_routes_carry_the_url_prefix() -> None:
    app = Flask(__name__)
    items = Blueprint("items", __name__)

    @items.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    app.register_blueprint(items, url_prefix="/api")
    obskit.configure(app)
    with capture() as cap:
        assert app.test_client().get("/api/items/3").json == {"id": 3}
    assert_one_request(cap)
