"""Everything obskit runs inside an ASGI app works under trio as under asyncio (anyio's two backends)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI

import obskit
from obskit import health
from obskit.testing import capture

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def checks() -> Iterator[None]:
    """A healthy sync and async check, and a sync and an async one that time out (not critical)."""

    async def slow_async() -> bool:
        await anyio.sleep(30)
        return True

    async def quick_async() -> bool:
        await anyio.sleep(0)
        return True

    health.clear()
    health.register("sync", lambda: True)
    health.register("async", quick_async)
    health.register("sync_hung", lambda: time.sleep(2), timeout=0.1, critical=False)
    health.register("async_hung", slow_async, timeout=0.1, critical=False)
    yield
    health.clear()


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return app


async def get_all(app: Any, *paths: str) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return [await client.get(path) for path in paths]


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_health_checks_and_request_telemetry_under_each_backend(checks: None, backend: str) -> None:
    app = make_app()
    obskit.configure(app)
    with capture() as cap:
        ready, full, item = anyio.run(get_all, app, "/health/ready", "/health", "/items/3", backend=backend)
    assert ready.status_code == 200
    assert full.status_code == 200
    body = full.json()
    assert body["status"] == "degraded"
    outcomes = {name: (check["status"], check["error"]) for name, check in body["checks"].items()}
    assert outcomes == {
        "sync": ("healthy", None),
        "async": ("healthy", None),
        "sync_hung": ("unhealthy", "timed out after 0.1s"),
        "async_hung": ("unhealthy", "timed out after 0.1s"),
    }
    assert item.json() == {"id": 3}
    cap.assert_span("GET /items/{item_id}", **{"http.response.status_code": 200})
    cap.assert_counter(
        "http_server_requests_total", 1, method="GET", route="/items/{item_id}", status_code="200"
    )
    assert cap.gauge_value("obskit_health_check_status", check="sync") == 1
    assert cap.gauge_value("obskit_health_check_status", check="async_hung") == 0


def test_a_failing_critical_check_answers_503_under_trio() -> None:
    async def broken() -> bool:
        raise ConnectionError("db down")

    health.clear()
    try:
        health.register("db", broken)
        app = make_app()
        obskit.configure(app)
        [ready] = anyio.run(get_all, app, "/health/ready", backend="trio")
    finally:
        health.clear()
    assert ready.status_code == 503
    assert ready.json()["checks"]["db"]["error"] == "ConnectionError: db down"


def test_tcp_check_under_trio() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        check = health.tcp_check("127.0.0.1", port, timeout=2)
        result = anyio.run(check, backend="trio")
    assert result.status == health.HEALTHY
    assert result.detail == f"connected to 127.0.0.1:{port}"


def test_async_library_is_recognised() -> None:
    from obskit._recording.health import async_library

    async def which() -> str:
        return async_library()

    assert anyio.run(which, backend="trio") == "trio"
    assert anyio.run(which, backend="asyncio") == "asyncio"


APP = """
import time

import anyio
from fastapi import FastAPI

import obskit
from obskit import health

app = FastAPI()


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict:
    return {"id": item_id}


async def quick() -> bool:
    await anyio.sleep(0)
    return True


health.register("sync", lambda: True)
health.register("async", quick)
health.register("sync_hung", lambda: time.sleep(5), timeout=0.2, critical=False)
obskit.configure(app, service_name="trio-app", metrics_exporter="prometheus", prometheus_port=0)
"""


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.mark.integration
def test_hypercorn_trio_worker_serves_health_and_telemetry(tmp_path: Path) -> None:
    (tmp_path / "trio_app.py").write_text(textwrap.dedent(APP))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(tmp_path)])}
    args = [sys.executable, "-m", "hypercorn", "--worker-class", "trio", "--bind", f"127.0.0.1:{port}"]
    log = tmp_path / "hypercorn.log"
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*args, "trio_app:app"], cwd=tmp_path, env=env, stdout=output, stderr=output
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    status, body = get(f"{base}/health")
                    break
                except OSError:
                    assert process.poll() is None, log.read_text()
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.1)
            assert status == 200, body
            report = json.loads(body)
            assert report["service"] == "trio-app"
            assert report["checks"]["async"]["status"] == "healthy"
            assert report["checks"]["sync_hung"]["error"] == "timed out after 0.2s"
            assert get(f"{base}/items/5") == (200, '{"id":5}')
            status, metrics = get(f"{base}/metrics")
        finally:
            process.terminate()
            process.wait(timeout=10)
    assert status == 200
    assert (
        'http_server_requests_total{method="GET",route="/items/{item_id}",status_code="200"} 1.0' in metrics
    )
    assert 'obskit_health_check_status{check="async"} 1.0' in metrics
