"""What the app answers is the app's: no header added unasked, and an instrumented app is freed as before."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import flask
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import obskit
from asgicall import asgi_get

QUIET: dict[str, Any] = {"traces_exporter": "none", "metrics_exporter": "none", "logs_exporter": "none"}


def starlette_app() -> Starlette:
    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hi")

    return Starlette(routes=[Route("/", hello)])


def response_headers(app: Any, headers: dict[str, str] | None = None) -> list[tuple[bytes, bytes]]:
    sent = asyncio.run(asgi_get(app, "/", headers))
    return list(sent[0]["headers"])


def test_the_response_is_exactly_the_apps_when_the_request_carried_no_id() -> None:
    bare = response_headers(starlette_app())
    app = starlette_app()
    obskit.configure(app, **QUIET)
    assert response_headers(app) == bare


@pytest.mark.parametrize(
    ("echo", "sent", "answered"),
    [
        ("incoming", "from-the-caller", "from-the-caller"),
        ("incoming", "not valid!", "replaced"),  # the caller asked: it gets the id used
        ("incoming", None, None),
        ("always", None, "generated"),
        ("always", "from-the-caller", "from-the-caller"),
        ("never", "from-the-caller", None),
    ],
)
def test_request_id_echo(echo: str, sent: str | None, answered: str | None) -> None:
    app = starlette_app()
    obskit.configure(app, request_id_echo=echo, **QUIET)
    headers = dict(response_headers(app, {"x-request-id": sent} if sent else None))
    value = headers.get(b"x-request-id")
    if answered is None:
        assert value is None
    elif answered in ("replaced", "generated"):
        assert value is not None
        assert len(value) == 32
    else:
        assert value == answered.encode()


def test_wsgi_echoes_only_an_incoming_id_by_default() -> None:
    app = flask.Flask(__name__)
    app.add_url_rule("/", "index", lambda: "hi")
    obskit.configure(app, **QUIET)
    client = app.test_client()
    assert "X-Request-ID" not in client.get("/").headers
    assert client.get("/", headers={"X-Request-ID": "r-1"}).headers["X-Request-ID"] == "r-1"


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.parametrize("make", [lambda: flask.Flask(__name__), starlette_app], ids=["flask", "starlette"])
def test_an_instrumented_app_is_freed_on_zero_refcount(no_gc: None, make: Callable[[], Any]) -> None:
    # Flask's own test_app_freed_on_zero_refcount: no reference cycle through obskit's wrapper.
    app = make()
    obskit.configure(app, **QUIET)
    freed = weakref.ref(app)
    obskit.shutdown()
    del app
    assert freed() is None


def test_an_app_that_wrapped_wsgi_app_first_keeps_its_wrapper() -> None:
    app = flask.Flask(__name__)
    app.add_url_rule("/", "index", lambda: "hi")
    calls: list[str] = []
    inner = app.wsgi_app

    def wrapper(environ: dict[str, Any], start_response: Any) -> Any:
        calls.append(environ["PATH_INFO"])
        return inner(environ, start_response)

    app.wsgi_app = wrapper  # type: ignore[method-assign]
    obskit.configure(app, **QUIET)
    assert app.test_client().get("/").status_code == 200
    assert calls == ["/"]


def test_every_app_configured_stays_served_until_shutdown() -> None:
    from obskit.testing import capture

    first, second = starlette_app(), starlette_app()
    obskit.configure(first, **QUIET)
    obskit.configure(second, **QUIET)  # a second app: the first is still served
    with capture() as cap:
        response_headers(first)
        response_headers(second)
        assert cap.counter_value("http_server_requests", route="/") == 2
    obskit.configure(service_name="renamed", **QUIET)  # new settings, no app given
    with capture() as cap:
        response_headers(first)
        assert cap.counter_value("http_server_requests", route="/") == 1
    obskit.shutdown()
    with capture() as cap:
        response_headers(first)
        assert cap.metric_names() == set()
