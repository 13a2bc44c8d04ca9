"""The example apps served by real uvicorn (FastAPI) and gunicorn (Flask, two workers), driven by httpx.

Spans are read from the console exporter's lines on the server's stderr, access logs from the
JSON lines on its stdout, metrics from its own ``/metrics``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from peers import EXAMPLES, free_port, serving, wait_until_up

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
SERIES = re.compile(r"^http_server_requests_total\{(.*)\} (\S+)$", re.MULTILINE)


def server_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSKIT_", "OTEL_"))}
    env.update(
        OTEL_TRACES_EXPORTER="console",
        OTEL_LOGS_EXPORTER="console",
        OTEL_METRICS_EXPORTER="prometheus",
        OTEL_EXPORTER_PROMETHEUS_PORT="0",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def access_lines(stdout: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stdout.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "http.access"]


def span_lines(stderr: Path) -> list[str]:
    return [line for line in stderr.read_text().splitlines() if line.startswith("[obskit span]")]


def http_series(exposition: str) -> dict[str, float]:
    return {labels: float(value) for labels, value in SERIES.findall(exposition)}


def drive(base: str, scan: int, with_report: bool = False) -> dict[str, Any]:
    """The same requests against either server; returns what the assertions need."""
    with httpx.Client(base_url=base, timeout=10) as client:
        found = client.get("/items/5", headers={"X-Request-ID": "req-5.a:b", "traceparent": TRACEPARENT})
        invalid = client.get("/items/6", headers={"X-Request-ID": "not valid!"})
        failed = httpx.get(f"{base}/fail", timeout=10)  # the server may close that connection
        streamed = client.get("/stream")
        report = client.get("/reports/daily", headers={"X-Request-ID": "report-1"}) if with_report else None
        scanned = {client.get(f"/scan/{i}/admin.php").status_code for i in range(scan)}
        live, ready = client.get("/health/live"), client.get("/health/ready")
        scrape = client.get("/metrics").text
    return {
        "found": found,
        "invalid": invalid,
        "failed": failed,
        "streamed": streamed,
        "report": report,
        "scanned": scanned,
        "live": live,
        "ready": ready,
        "scrape": scrape,
    }


def check_responses(seen: dict[str, Any], scan: int) -> None:
    assert seen["found"].json()["id"] == 5
    assert seen["found"].headers["x-request-id"] == "req-5.a:b"
    replaced = seen["invalid"].headers["x-request-id"]
    assert replaced != "not valid!"
    assert re.fullmatch(r"[0-9a-f]{32}", replaced)
    assert seen["failed"].status_code == 500
    assert seen["streamed"].text == "chunk 0\nchunk 1\nchunk 2\n"
    assert seen["scanned"] == {404}
    assert seen["live"].status_code == 200
    assert seen["live"].json() == {"status": "alive"}
    assert seen["ready"].status_code == 503  # the critical payments-api check times out
    checks = seen["ready"].json()["checks"]
    assert {"cache", "payments-api"} <= set(checks)
    series = http_series(seen["scrape"])
    assert series['method="GET",route="/items/{item_id}",status_code="200"'] == 2
    assert series['method="GET",route="/fail",status_code="500"'] == 1
    assert series['method="GET",route="__unmatched__",status_code="404"'] == scan
    assert len(series) <= 6  # items, fail, stream, unmatched: not one per scanned URL


def check_logs_and_spans(files: dict[str, Path], scan: int) -> None:
    access = access_lines(files["stdout"])
    by_id = {line["request_id"]: line for line in access}
    continued = by_id["req-5.a:b"]
    assert continued["trace_id"] == TRACE_ID
    assert continued["route"] == "/items/{item_id}"
    assert continued["status"] == 200
    assert continued["duration_ms"] > 0
    assert continued["user_agent"].startswith("python-httpx")
    assert continued["client"] == "127.0.0.1"
    [failure] = [line for line in access if line["route"] == "/fail"]
    assert failure["level"] == "ERROR"
    assert sum(line["route"] == "__unmatched__" for line in access) == scan
    assert not [line for line in access if line["path"].startswith(("/health", "/metrics"))]
    handler_lines = [
        json.loads(line)
        for line in files["stdout"].read_text().splitlines()
        if line.startswith("{") and '"item requested"' in line
    ]
    assert {line["request_id"] for line in handler_lines} >= {"req-5.a:b"}
    spans = span_lines(files["stderr"])
    [item_span] = [s for s in spans if s.startswith("[obskit span] GET /items/{item_id} ") and TRACE_ID in s]
    assert "http.response.status_code=200" in item_span
    assert any(s.startswith("[obskit span] GET /fail ") and " ERROR" in s for s in spans)


def test_fastapi_example_under_uvicorn(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = [str(BIN / "uvicorn"), "fastapi_app:app", "--host", "127.0.0.1", "--port", str(port)]
    args.append("--no-access-log")
    scan = 300
    with serving(args, tmp_path, server_env(tmp_path), cwd=EXAMPLES) as files:
        wait_until_up(base, files)
        seen = drive(base, scan, with_report=True)
    check_responses(seen, scan)
    check_logs_and_spans(files, scan)
    assert seen["report"].status_code == 200
    # The escaped exception is logged once: obskit's ERROR access line, with its stack; uvicorn's
    # own plain-text "Exception in ASGI application" copy is dropped.
    output = files["stdout"].read_text() + files["stderr"].read_text()
    assert "Exception in ASGI application" not in output
    [failure] = [line for line in access_lines(files["stdout"]) if line["route"] == "/fail"]
    assert "Traceback" in failure["exception"]["stack"]
    lines = [json.loads(line) for line in files["stdout"].read_text().splitlines() if line.startswith("{")]
    [report] = [line for line in lines if line["message"] == "report built"]  # sync handler, worker thread
    assert report["request_id"] == "report-1"
    assert "trace_id" in report


def test_flask_example_under_gunicorn_with_two_workers(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    multiprocess_dir = tmp_path / "prometheus-multiproc"
    multiprocess_dir.mkdir()
    args = [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "-w", "2", "-b", f"127.0.0.1:{port}"]
    args.append("flask_app:app")
    env = server_env(tmp_path, OBSKIT_PROMETHEUS_MULTIPROC_DIR=str(multiprocess_dir))
    scan = 300
    with serving(args, tmp_path, env, cwd=EXAMPLES) as files:
        wait_until_up(base, files)
        seen = drive(base, scan)
    check_responses(seen, scan)  # the scrape merged whichever workers served the requests
    check_logs_and_spans(files, scan)
    assert list(multiprocess_dir.glob("counter_*.db"))
