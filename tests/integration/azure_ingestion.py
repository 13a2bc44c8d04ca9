"""A loopback Application Insights ingestion endpoint for the tests.

The server stands in for ``IngestionEndpoint`` in the connection string and receives the
exporter's real ``POST /v2.1/track`` requests (JSON arrays, or newline-delimited JSON; gzip or
deflate when the exporter says so). Bodies are parsed strictly: a bare ``NaN`` fails the test, as
it would fail the real endpoint. The ``ingestion`` fixture (tests/integration/conftest.py) starts
one on a free loopback port and stops it after the test.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

IKEY = "00000000-0000-0000-0000-000000000000"


def _no_constants(token: str) -> Any:
    raise ValueError(f"not JSON: {token}")


def _decode(body: bytes, encoding: str) -> list[dict[str, Any]]:
    if encoding == "gzip":
        body = gzip.decompress(body)
    elif encoding == "deflate":
        body = zlib.decompress(body)
    text = body.decode("utf-8")
    try:
        parsed = json.loads(text, parse_constant=_no_constants)
        return parsed if isinstance(parsed, list) else [parsed]
    except ValueError as error:
        if "not JSON" in str(error):
            raise
        return [json.loads(line, parse_constant=_no_constants) for line in text.splitlines() if line.strip()]


class Ingestion:
    """A loopback ``/v2.1/track`` endpoint that records envelopes and answers a chosen status."""

    def __init__(self) -> None:
        self.envelopes: list[dict[str, Any]] = []
        self.requests: list[tuple[float, str]] = []
        self.errors: list[str] = []
        self.status = 200
        self.headers: dict[str, str] = {}
        self.lock = threading.Lock()
        ingestion = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, extra = ingestion.status, dict(ingestion.headers)
                try:
                    items = _decode(body, self.headers.get("Content-Encoding", ""))
                except ValueError as error:
                    with ingestion.lock:
                        ingestion.errors.append(f"{self.path}: {error}")
                    items, status = [], 400
                with ingestion.lock:
                    ingestion.requests.append((time.monotonic(), self.path))
                    if status == 200 and self.path.endswith("/v2.1/track"):
                        ingestion.envelopes.extend(items)
                accepted = len(items) if status == 200 else 0
                reply = json.dumps({"itemsReceived": len(items), "itemsAccepted": accepted, "errors": []})
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply.encode())

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="azure-ingestion", daemon=True)

    @property
    def connection_string(self) -> str:
        port = self.server.server_address[1]
        return f"InstrumentationKey={IKEY};IngestionEndpoint=http://127.0.0.1:{port}/"

    def named(self, kind: str) -> list[dict[str, Any]]:
        """Envelopes of ``Microsoft.ApplicationInsights.<kind>``."""
        with self.lock:
            return [e for e in self.envelopes if e["name"] == f"Microsoft.ApplicationInsights.{kind}"]

    def metric_points(self, name: str) -> list[dict[str, Any]]:
        """Metric data points named ``name``, in arrival order."""
        return [
            point
            for envelope in self.named("Metric")
            for point in envelope["data"]["baseData"]["metrics"]
            if point["name"] == name
        ]

    def wait_for(self, condition: Callable[[], bool], timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.05)
        return condition()
