"""``obskit demo``: the real command in a subprocess, its telemetry streams and its summary."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest

TIMEOUT = 90


class Run(NamedTuple):
    status: int
    out: str
    err: str


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OBSKIT_", "OTEL_", "APPLICATIONINSIGHTS_"))
    }
    return {**env, **extra}


def demo(*argv: str, **env: str) -> Run:
    done = subprocess.run(
        [sys.executable, "-m", "obskit", "demo", *argv],
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def run() -> Run:
    """One real three-second demo, shared by the tests that only read its output."""
    return demo("--duration", "3")


def summary(err: str) -> str:
    start = err.index(" obskit demo: where to look ")
    return err[start:]


def test_demo_ends_by_itself_with_status_0(run: Run) -> None:
    assert run.status == 0, run.err[-3000:]
    assert "Traceback" not in run.err


def test_stdout_is_json_log_lines_carrying_trace_and_request_ids(run: Run) -> None:
    records = [json.loads(line) for line in run.out.splitlines()]  # every line is JSON
    access = [r for r in records if r["logger"] == "http.access"]
    assert access
    assert all(re.fullmatch(r"[0-9a-f]{32}", r["trace_id"]) for r in access)
    assert all(r["request_id"] and re.fullmatch(r"[0-9a-f]{16}", r["span_id"]) for r in access)
    assert {r["status"] for r in access} >= {200, 404, 500}
    failed = [r for r in access if r["status"] == 500]
    assert failed[0]["level"] == "ERROR"
    assert failed[0]["exception"]["type"] == "RuntimeError"
    paid = [r for r in records if r["message"] == "order paid"]
    assert paid
    assert paid[0]["trace_id"]
    assert paid[0]["request_id"]
    jobs = [r for r in records if r["message"] in ("batch exported", "batch export failed")]
    assert {r["job_id"] for r in jobs} >= {"export-0", "export-2"}


def test_spans_are_printed_and_one_request_is_shown_as_a_tree(run: Run) -> None:
    spans = [line for line in run.err.splitlines() if line.startswith("[obskit span] ")]
    assert any(line.startswith("[obskit span] GET /orders/{order_id} ") for line in spans)
    assert any(line.startswith("[obskit span] charge_payment ") for line in spans)
    tree = summary(run.err).split("Span tree of one request")[1].splitlines()
    trace_id = re.search(r"trace_id ([0-9a-f]{32})", tree[0])
    assert trace_id is not None
    assert tree[1].strip().startswith("POST /orders/{order_id}/checkout  CLIENT")
    assert "POST /orders/{order_id}/checkout  SERVER" in tree[2]
    assert tree[2].index("POST") > tree[1].index("POST")
    children = " ".join(tree[3:6])
    assert "load_order" in children
    assert "reserve_stock" in children
    assert "charge_payment" in children
    # the tree is the same trace the console exporter printed
    assert sum(f"trace={trace_id.group(1)}" in line for line in spans) == 5


def test_summary_shows_requests_by_route_and_jobs_by_status(run: Run) -> None:
    text = summary(run.err)
    assert re.search(r"Key metrics, scraped from http://127\.0\.0\.1:\d+/metrics", text)
    for line in (
        'http_server_requests_total{method="GET",route="/orders/{order_id}",status_code="200"}',
        'http_server_requests_total{method="GET",route="/reports/{name}",status_code="500"}',
        'http_server_requests_total{method="GET",route="__unmatched__",status_code="404"}',
        'obskit_jobs_total{job_name="nightly_export",status="success"}',
        'obskit_jobs_total{job_name="nightly_export",status="error"}',
        'obskit_jobs_total{job_name="charge_payment",status="error"}',
        'demo_orders_paid_total{currency="EUR"}',
    ):
        assert f"  {line} " in text, line


def test_summary_gives_the_metrics_urls_and_a_sample_log_line(run: Run) -> None:
    text = summary(run.err)
    assert re.search(r"Metrics +http://127\.0\.0\.1:\d+/metrics  \(mounted", text)
    assert re.search(r"http://127\.0\.0\.1:\d+/metrics  \(standalone scrape server", text)
    sample = text.split("Sample log line")[1].splitlines()[1].strip()
    record = json.loads(sample)
    assert record["message"] == "order paid"
    assert record["trace_id"]
    assert record["request_id"]


def test_requests_option_bounds_the_traffic() -> None:
    result = demo("--requests", "4", "--duration", "60")
    assert result.status == 0, result.err[-3000:]
    assert "Traffic    4 requests" in result.err


def test_ctrl_c_stops_cleanly_without_traceback(tmp_path: Path) -> None:
    stdout = (tmp_path / "stdout").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "obskit", "demo", "--duration", "60"],
        env=clean_env(),
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()
        assert "traffic for 60 s" in banner, banner
        time.sleep(1.0)
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        err = process.communicate(timeout=TIMEOUT)[1]
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        stdout.close()
    assert process.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    assert "KeyboardInterrupt" not in err
    assert "obskit demo: stopping" in err
    assert "where to look" in err
    assert took < 30
    lines = (tmp_path / "stdout").read_text().splitlines()
    assert lines
    assert all(json.loads(line) for line in lines)


def test_a_bad_setting_in_the_environment_exits_2_with_its_message() -> None:
    result = demo("--duration", "1", OBSKIT_LOG_LEVEL="loud")
    assert result.status == 2
    assert "invalid value for log_level (from $OBSKIT_LOG_LEVEL): 'loud'" in result.err
    assert "Traceback" not in result.err
