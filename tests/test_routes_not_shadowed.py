"""obskit's scrape and health endpoints never shadow a path the application serves itself."""

from __future__ import annotations

import asyncio
import logging
import sys
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.responses import PlainTextResponse
from flask import Flask
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

import obskit
import obskit.asgi
import obskit.wsgi
from asgicall import asgi_get
from obskit._web import routes as _routes

with warnings.catch_warnings():  # starlette asks for httpx2, not installed here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


@pytest.fixture
def obskit_warnings() -> Iterator[list[str]]:
    """The messages obskit's own logger warns (it does not propagate once configured)."""
    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger = logging.getLogger("obskit")
    handler = Keep(logging.WARNING)
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


def fastapi_with_health() -> FastAPI:
    app = FastAPI()

    @app.get("/health", response_class=PlainTextResponse)
    def own_health() -> str:
        return "mine"

    return app


def is_obskits(response: Any) -> bool:
    return bool(response.headers["content-type"] == "application/json" and "status" in response.json())


# -- FastAPI / Starlette: the routes decide ---------------------------------------------------------


def test_fastapi_health_route_is_the_apps_and_obskit_warns_once(obskit_warnings: list[str]) -> None:
    app = fastapi_with_health()
    obskit.configure(app)
    client = TestClient(app)
    for _ in range(3):
        response = client.get("/health")
        assert response.status_code == 200
        assert response.text == "mine"
        assert response.headers["content-type"].startswith("text/plain")
    assert client.get("/health/live").json() == {"status": "alive"}  # still obskit's: the app has none
    [warning] = [m for m in obskit_warnings if "/health " in m]
    assert "health_path" in warning
    assert "OBSKIT_HEALTH_PATH" in warning


def test_an_apps_own_404_stays_a_404() -> None:
    app = FastAPI()

    @app.get("/health/ready")
    def not_ready() -> Response:
        return JSONResponse({"ready": False}, status_code=404)

    obskit.configure(app)
    response = TestClient(app).get("/health/ready")
    assert response.status_code == 404
    assert response.json() == {"ready": False}


def test_a_route_added_after_configure_counts() -> None:
    app = FastAPI()
    obskit.configure(app)
    client = TestClient(app)
    assert is_obskits(client.get("/health"))  # free: obskit answers

    router = APIRouter()

    @router.get("/health", response_class=PlainTextResponse)
    def added() -> str:
        return "added later"

    app.include_router(router)
    assert client.get("/health").text == "added later"


def test_a_path_parameter_that_matches_takes_the_path_one_that_does_not_leaves_it() -> None:
    app = FastAPI()

    @app.get("/health/{probe}", response_class=PlainTextResponse)
    def probe(probe: str) -> str:
        return f"app probe {probe}"

    @app.get("/{page_id:int}", response_class=PlainTextResponse)
    def page(page_id: int) -> str:
        return "page"

    obskit.configure(app, metrics_exporter="prometheus", prometheus_port=0)
    client = TestClient(app)
    assert client.get("/health/live").text == "app probe live"
    assert client.get("/health/ready").text == "app probe ready"
    assert is_obskits(client.get("/health"))
    assert "# HELP" in client.get("/metrics").text  # /{page_id:int} does not match /metrics


def test_a_route_refusing_get_still_owns_the_path() -> None:
    app = FastAPI()

    @app.post("/health")
    def post_only() -> dict[str, str]:
        return {}

    obskit.configure(app)
    assert TestClient(app).get("/health").status_code == 405


def test_routes_inside_mounts_and_sub_applications_are_read(obskit_warnings: list[str]) -> None:
    async def inner(request: Request) -> Response:
        return PlainTextResponse("mounted " + request.url.path)

    sub = Starlette(routes=[Route("/metrics", inner)])
    app = Starlette(routes=[Mount("/health", routes=[Route("/live", inner)]), Mount("/sub", app=sub)])
    obskit.configure(app, metrics_exporter="prometheus", prometheus_port=0, prometheus_path="/sub/metrics")
    client = TestClient(app)
    assert client.get("/health/live").text == "mounted /health/live"
    assert client.get("/sub/metrics").text == "mounted /sub/metrics"
    assert is_obskits(client.get("/health/ready"))  # the mount has no /ready: a 404 in the app
    assert any("prometheus_path (or OBSKIT_PROMETHEUS_PATH)" in m for m in obskit_warnings)


def test_an_opaque_mounted_app_is_asked_first() -> None:
    async def files(scope: Any, receive: Any, send: Any) -> None:  # a plain ASGI app, as StaticFiles
        status, body = (200, b"a file") if scope["path"].endswith("/health") else (404, b"no such file")
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})

    app = Starlette(routes=[Mount("/", app=files)])
    obskit.configure(app)
    client = TestClient(app)
    assert client.get("/health").text == "a file"
    live = client.get("/health/live")
    assert live.json() == {"status": "alive"}
    assert b"no such file" not in live.content


def test_the_doctor_reports_an_endpoint_the_configured_app_serves() -> None:
    app = fastapi_with_health()
    obskit.configure(app)
    [problem] = [p for p in obskit.check_backends() if "/health" in p]
    assert problem.startswith("health_path:")
    assert "OBSKIT_HEALTH_PATH" in problem
    obskit.shutdown()
    assert not [p for p in obskit.check_backends() if "/health" in p]  # obskit off for the app


def test_ordinary_requests_never_read_the_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    app = fastapi_with_health()

    @app.get("/items")
    def items() -> list[int]:
        return []

    read: list[str] = []
    owner = _routes.AppRoutes.owner

    def counting(self: _routes.AppRoutes, path: str, root_path: str = "") -> str:
        read.append(path)
        return owner(self, path, root_path)

    monkeypatch.setattr(_routes.AppRoutes, "owner", counting)
    obskit.configure(app)
    client = TestClient(app)
    client.get("/items")
    client.get("/nowhere")
    assert read == []
    client.get("/health")
    assert read == ["/health"]


# -- plain ASGI callables: asked first ------------------------------------------------------------


async def plain_asgi(scope: Any, receive: Any, send: Any) -> None:
    """Serves /health (streamed, in two chunks) and /metrics; a 404 in two chunks elsewhere."""
    if scope["type"] != "http":
        return
    if scope["path"] in ("/health", "/metrics"):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/x")]})
        await send({"type": "http.response.body", "body": b"app ", "more_body": True})
        await send({"type": "http.response.body", "body": b"answer"})
        return
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b"not ", "more_body": True})
    await send({"type": "http.response.body", "body": b"found"})


def test_a_plain_asgi_app_is_asked_first(obskit_warnings: list[str]) -> None:
    obskit.configure(metrics_exporter="prometheus", prometheus_port=0)
    app = obskit.asgi.middleware(plain_asgi)
    sent = asyncio.run(asgi_get(app, "/health"))
    assert [m.get("body") for m in sent] == [None, b"app ", b"answer"]  # streamed as the app sent it
    assert sent[0]["status"] == 200
    asyncio.run(asgi_get(app, "/health"))
    assert len([m for m in obskit_warnings if "/health " in m]) == 1

    live = asyncio.run(asgi_get(app, "/health/live"))
    assert live[0]["status"] == 200
    assert [m["body"] for m in live[1:]] == [b'{"status": "alive"}']  # the app's 404 is not sent
    assert asyncio.run(asgi_get(app, "/metrics"))[1]["body"] == b"app "


def test_a_starlette_app_wrapped_by_hand_has_its_routes_read() -> None:
    obskit.configure()
    inner = Starlette(routes=[Route("/health/{kind}", lambda request: PlainTextResponse("app"))])
    app = obskit.asgi.middleware(inner)
    assert asyncio.run(asgi_get(app, "/health/live"))[1]["body"] == b"app"
    assert asyncio.run(asgi_get(app, "/health"))[0]["status"] == 200  # obskit's (no checks: healthy)


# -- Flask: the url_map decides ---------------------------------------------------------------------


def test_flask_health_route_is_the_apps(obskit_warnings: list[str]) -> None:
    app = Flask("shadow_test")

    @app.get("/health")
    def own() -> tuple[str, int, dict[str, str]]:
        return "mine", 200, {"Content-Type": "text/plain"}

    obskit.configure(app)
    client = app.test_client()
    for _ in range(2):
        assert client.get("/health", buffered=True).text == "mine"
    assert client.get("/health/live", buffered=True).json == {"status": "alive"}
    [warning] = [m for m in obskit_warnings if "/health " in m]
    assert "health_path (or OBSKIT_HEALTH_PATH)" in warning
    assert [p for p in obskit.check_backends() if p.startswith("health_path:")]


def test_flask_converters_and_rules_added_after_configure() -> None:
    app = Flask("shadow_converters")

    @app.get("/health/<int:number>")
    def numbered(number: int) -> str:
        return "numbered"

    obskit.configure(app, metrics_exporter="prometheus", prometheus_port=0)

    @app.get("/<name>")
    def named(name: str) -> str:
        return f"named {name}"

    client = app.test_client()
    assert client.get("/health/live", buffered=True).json == {"status": "alive"}  # <int:> does not match
    assert client.get("/health", buffered=True).text == "named health"
    assert client.get("/metrics", buffered=True).text == "named metrics"


def test_flask_redirect_and_refused_method_own_the_path() -> None:
    app = Flask("shadow_redirect")

    @app.get("/health/")
    def slash() -> str:
        return "slash"

    @app.post("/health/live")
    def post_only() -> str:
        return "post"

    obskit.configure(app)
    client = app.test_client()
    assert client.get("/health", buffered=True).status_code == 308  # Werkzeug's strict-slash redirect
    assert client.get("/health/live", buffered=True).status_code == 405


# -- plain WSGI callables: asked first --------------------------------------------------------------


class Closing:
    """A WSGI body that notes it was closed."""

    closed: ClassVar[list[bytes]] = []

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        Closing.closed.append(b"".join(self.chunks))


def plain_wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/health":
        start_response("200 OK", [("Content-Type", "text/x")])
        return Closing([b"app ", b"answer"])
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return Closing([b"not found"])


def lazy_wsgi(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    """Calls start_response only when its body is first iterated (a generator)."""
    found = environ["PATH_INFO"] == "/health"
    start_response("200 OK" if found else "404 Not Found", [])
    yield b"lazy app" if found else b"lazy 404"


def wsgi_get(app: Any, path: str) -> tuple[str, bytes]:
    from werkzeug.test import Client

    response = Client(app).get(path, buffered=True)
    return response.status, response.data


def test_a_plain_wsgi_app_is_asked_first(obskit_warnings: list[str]) -> None:
    obskit.configure()
    Closing.closed.clear()
    app = obskit.wsgi.middleware(plain_wsgi)
    assert wsgi_get(app, "/health") == ("200 OK", b"app answer")
    status, body = wsgi_get(app, "/health/live")
    assert status == "200 OK"
    assert body == b'{"status": "alive"}'
    assert b"not found" in Closing.closed  # the app's 404 body was closed, unsent
    assert len([m for m in obskit_warnings if "/health " in m]) == 1

    lazy = obskit.wsgi.middleware(lazy_wsgi)
    assert wsgi_get(lazy, "/health") == ("200 OK", b"lazy app")
    assert wsgi_get(lazy, "/health/ready")[1].startswith(b'{"status": "healthy"')


# -- obskit doctor --app ----------------------------------------------------------------------------

SERVICE = """
from fastapi import FastAPI

import obskit

app = FastAPI()


@app.get("/hz")
def own() -> str:
    return "mine"

{configure}
"""


@pytest.mark.parametrize(
    ("configure", "setting"),
    [("", None), ("obskit.configure(app, health_path='/hz')", "health_path")],
)
def test_doctor_app_reports_the_endpoints_the_app_serves(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    configure: str,
    setting: str | None,
) -> None:
    from obskit._cli import main

    name = f"doctor_service_{setting or 'plain'}"
    (tmp_path / f"{name}.py").write_text(SERVICE.format(configure=configure))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    status = main(["doctor", "--app", f"{name}:app"])
    out = capsys.readouterr().out
    if setting is None:  # not configured: the environment's paths, /health... are free
        assert status == 0, out
        monkeypatch.setenv("OBSKIT_READINESS_PATH", "/hz")
        assert main(["doctor", "--app", f"{name}:app"]) == 1
        assert "readiness_path: the application serves /hz itself" in capsys.readouterr().out
    else:  # configured at import with health_path="/hz": the app serves it
        assert status == 1, out
        assert "health_path: the application serves /hz itself" in out
    sys.modules.pop(name, None)


def test_doctor_app_that_cannot_be_imported_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    from obskit._cli import main

    assert main(["doctor", "--app", "no_such_module_here:app"]) == 2
    assert "--app no_such_module_here:app" in capsys.readouterr().err


def test_an_app_asked_first_that_fails_raises_as_usual() -> None:
    async def failing_asgi(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("app down")

    def failing_wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        raise RuntimeError("app down")

    obskit.configure()
    with pytest.raises(RuntimeError, match="app down"):
        asyncio.run(asgi_get(obskit.asgi.middleware(failing_asgi), "/health"))
    with pytest.raises(RuntimeError, match="app down"):
        wsgi_get(obskit.wsgi.middleware(failing_wsgi), "/health")
