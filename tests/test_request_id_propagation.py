"""The request id follows outgoing calls to the next service, which takes it up (request_id_propagation)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
from flask import Flask, jsonify
from opentelemetry import propagate
from werkzeug.serving import make_server

import obskit
from obskit._web.http import _propagation_fields
from obskit.testing import capture

TRACES_ONLY: dict[str, Any] = {
    "traces_exporter": "console",
    "metrics_exporter": "none",
    "logs_exporter": "none",
}


def downstream() -> Flask:
    app = Flask(__name__)  # a module Flask can locate, whatever the current directory

    @app.get("/who")
    def who() -> Any:
        return jsonify(request_id=obskit.LoggingContext.current().get("request_id"))

    return app


@pytest.fixture
def back() -> Iterator[tuple[Flask, str]]:
    app = downstream()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_port}/who"
    finally:
        server.shutdown()
        thread.join()


def front(url: str) -> Flask:
    app = Flask(__name__)

    @app.get("/call/<client>")
    def call(client: str) -> Any:
        if client == "httpx":
            return httpx.get(url).json()
        return requests.get(url, timeout=5).json()

    return app


@pytest.mark.parametrize("client", ["requests", "httpx"])
def test_the_request_id_of_a_request_reaches_the_next_service(back: tuple[Flask, str], client: str) -> None:
    back_app, url = back
    app = front(url)
    obskit.configure(back_app, **TRACES_ONLY)
    obskit.configure(app, **TRACES_ONLY)
    with capture() as cap:
        answer = app.test_client().get(f"/call/{client}", headers={"X-Request-ID": "order-42"}).get_json()
        assert answer == {"request_id": "order-42"}
        lines = [line for line in cap.logs() if line["logger"] == "http.access"]
        assert {line["path"]: line["request_id"] for line in lines} == {
            "/who": "order-42",
            f"/call/{client}": "order-42",
        }


def test_a_logging_context_outside_a_request_sends_its_id(back: tuple[Flask, str]) -> None:
    back_app, url = back
    obskit.configure(back_app, **TRACES_ONLY)
    with obskit.LoggingContext(request_id="nightly-7"):
        assert requests.get(url, timeout=5).json() == {"request_id": "nightly-7"}
    # No request id current: none is sent, and the next service makes its own.
    assert len(requests.get(url, timeout=5).json()["request_id"]) == 32


def test_off_sends_nothing(back: tuple[Flask, str]) -> None:
    back_app, url = back
    obskit.configure(back_app, request_id_propagation=False, **TRACES_ONLY)
    with obskit.LoggingContext(request_id="nightly-7"):
        assert requests.get(url, timeout=5).json()["request_id"] != "nightly-7"


def test_the_propagators_already_there_stay_and_come_back_at_shutdown() -> None:
    before = propagate.get_global_textmap()
    obskit.configure(**TRACES_ONLY)
    names = [type(p).__name__ for p in propagate.get_global_textmap()._propagators]  # type: ignore[attr-defined]
    assert names == ["TraceContextTextMapPropagator", "W3CBaggagePropagator", "RequestIdPropagator"]
    # The request id header alone is no reason to extract a trace context (the hot path).
    assert _propagation_fields()[1] == frozenset({b"traceparent", b"tracestate", b"baggage"})
    obskit.configure(**TRACES_ONLY)  # again: still one
    assert len(propagate.get_global_textmap()._propagators) == 3  # type: ignore[attr-defined]
    obskit.shutdown()
    assert propagate.get_global_textmap() is before


LATE_IMPORT = """
import sys
import obskit

obskit.configure(traces_exporter="console", metrics_exporter="none", logs_exporter="none")
assert "opentelemetry.propagate" not in sys.modules  # nothing loaded for calls not yet made
import requests  # instrumented on import: the request id propagator goes in then

with obskit.LoggingContext(request_id="late-1"):
    print(requests.get(sys.argv[1], timeout=5).json()["request_id"])
"""


def test_a_client_imported_after_configure_sends_the_request_id(back: tuple[Flask, str]) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    back_app, url = back
    obskit.configure(back_app, **TRACES_ONLY)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSKIT_", "OTEL_", "PYTEST_"))}
    env["PYTHONPATH"] = str(Path(obskit.__file__).parents[1])
    done = subprocess.run(
        [sys.executable, "-c", LATE_IMPORT, url], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "late-1" in done.stdout.splitlines()
