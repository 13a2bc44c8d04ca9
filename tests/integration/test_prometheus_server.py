"""obskit's Prometheus backend against the real peers: a Prometheus server scraping it and answering
PromQL, promtool's linter, the push gateway, and gunicorn with four workers in multi-process mode.

Every server binds to 127.0.0.1 on a free port, is stopped in a ``finally``, and every wait is
bounded. Each test skips, naming the binary, when that peer is not installed
(``bash ../shared/ci/install-peers.sh`` installs them).
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from peers import (
    EXAMPLES,
    PROMTOOL,
    QUIET,
    Prometheus,
    free_port,
    gateway_value,
    http_get,
    needs_gunicorn,
    needs_prometheus,
    needs_promtool,
    needs_pushgateway,
    running,
    sample,
    wait_until,
)

import obskit
import obskit.prometheus
import obskit.testing

pytestmark = pytest.mark.integration


# -- a real Prometheus scraping the standalone server ---------------------------------------------


@needs_prometheus
def test_real_prometheus_scrapes_jobs_http_histogram_and_exemplars(
    prometheus: Callable[..., Prometheus],
) -> None:
    obskit.configure(**QUIET, service_name="scraped", metrics_exporter="prometheus", prometheus_port=0)
    host, port = obskit.prometheus.server_address() or ("", 0)
    # A fresh store (the endpoint serves whichever is current) and an in-memory tracer: Prometheus
    # sees exactly what this test records, whatever ran before in this process.
    with obskit.testing.capture():
        scrape_and_query(prometheus(f"{host}:{port}"))


def scrape_and_query(server: Prometheus) -> None:
    metrics = obskit.MetricsCollector()

    @obskit.track_job("integration_job")
    def job(fail: bool = False) -> None:
        if fail:
            raise RuntimeError("planned failure")

    for _ in range(3):
        with pytest.raises(RuntimeError, match="planned"):
            job(fail=True)
    trace_ids: set[str] = set()

    def traffic() -> None:
        job()
        with obskit.trace_operation("GET /items/{id}"):
            metrics.http_request("GET", "/items/{id}", 200, 0.03)
            metrics.http_request("GET", "/items/{id}", 200, 0.045)
            trace_ids.add(format(trace.get_current_span().get_span_context().trace_id, "032x"))

    def answered() -> bool:
        traffic()
        rate = server.scalar('sum(rate(obskit_jobs_total{status="success"}[1m]))')
        p95 = server.scalar(
            "histogram_quantile(0.95, sum by (le) "
            "(rate(obskit_http_server_request_duration_seconds_bucket[1m])))"
        )
        return bool(rate and rate > 0 and p95 is not None and not math.isnan(p95))  # NaN until 2 scrapes

    wait_until(answered, "rate() and histogram_quantile() to have two scrapes", 60)
    assert server.scalar('sum(obskit_jobs_total{status="error"})') == 3
    # Prometheus renames obskit's own "job" label, since every target carries job="<scrape job>".
    assert server.scalar('sum(obskit_jobs_total{job_name="integration_job",status="error"})') == 3
    p95 = server.scalar(
        "histogram_quantile(0.95, rate(obskit_http_server_request_duration_seconds_bucket[1m]))"
    )
    assert p95 is not None
    assert 0.025 <= p95 <= 0.05  # the bucket holding every observation (0.03 and 0.045)
    assert server.scalar('up{job="obskit"}') == 1

    # Prometheus asked for OpenMetrics, so the exemplars came along with the trace ids.
    def exemplar_trace_ids() -> set[str]:
        series = server.exemplars("obskit_http_server_request_duration_seconds_bucket")
        return {e["labels"].get("trace_id", "") for s in series for e in s["exemplars"]}

    found = wait_until(lambda: exemplar_trace_ids() & trace_ids, "an exemplar with a recorded trace id", 30)
    assert all(re.fullmatch(r"[0-9a-f]{32}", t) for t in found)


# -- promtool on what obskit serves ---------------------------------------------------------------


def realistic_traffic() -> None:
    metrics = obskit.MetricsCollector()

    @obskit.track_job("nightly_export", labels={"tenant": "acme"})
    def export(fail: bool = False) -> int:
        if fail:
            raise ValueError("no rows")
        return 1

    export()
    with contextlib.suppress(ValueError):
        export(fail=True)
    with obskit.track_job("cluster") as run:
        run.result("silhouette", 0.71)
    metrics.http_request("GET", "/items/{id}", 200, 0.02)
    metrics.http_request("POST", "/items", 500, 0.3)
    metrics.cache_access("articles", hit=True)
    metrics.cache_access("articles", hit=False)
    metrics.db_call("select_articles", 0.004)
    metrics.db_call("insert_article", 0.2, error=True)
    metrics.external_call("openai", "chat", 1.3, tokens={"prompt": 120, "completion": 30})
    metrics.gauge("queue_depth", "Items waiting", labels=["queue"]).set(4, queue="emails")
    metrics.histogram("compliance_score", "Compliance score", buckets=[0.25, 0.5, 0.75, 1]).observe(0.8)
    capped = metrics.counter("tenant_requests", "Requests by tenant", labels=["tenant"])
    for tenant in range(5):  # past the series cap of 3: the overflow counter moves
        capped.inc(tenant=f"t{tenant}")
    from obskit._recording.store import count_dropped

    count_dropped("metrics", "export_failed", 2)


def promtool_check(exposition: str) -> None:
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout
    assert result.stderr.strip() == "", result.stderr


@needs_promtool
def test_promtool_accepts_a_realistic_exposition() -> None:
    host_metrics = importlib.util.find_spec("psutil") is not None
    obskit.configure(
        **QUIET,
        metrics_exporter="prometheus",
        prometheus_port=0,
        runtime_metrics=True,
        host_metrics=host_metrics,
        series_cap=3,
    )
    realistic_traffic()
    host, port = obskit.prometheus.server_address() or ("", 0)
    status, text = http_get(f"http://{host}:{port}/metrics")
    assert status == 200
    for family in (
        "obskit_jobs_total",
        "obskit_job_duration_seconds_bucket",
        "obskit_jobs_in_progress",
        "obskit_job_result",
        "http_server_requests_total",
        "obskit_http_server_request_duration_seconds_bucket",
        "obskit_cache_requests_total",
        "obskit_db_query_duration_seconds_bucket",
        "obskit_external_call_duration_seconds_bucket",
        "obskit_external_call_tokens_total",
        "obskit_telemetry_overflow_total",
        "obskit_telemetry_dropped_total",
        "process_cpu_seconds_total",
        "python_gc_collections_total",
    ):
        assert f"\n{family}{{" in text or f"\n{family} " in text, family
    promtool_check(text)


@needs_promtool
def test_promtool_accepts_the_merged_multiprocess_exposition(tmp_path: Path) -> None:
    obskit.configure(
        **QUIET, metrics_exporter="prometheus", prometheus_port=0, multiprocess_dir=str(tmp_path)
    )
    realistic_traffic()
    host, port = obskit.prometheus.server_address() or ("", 0)
    status, text = http_get(f"http://{host}:{port}/metrics")
    assert status == 200
    assert sample(text, "obskit_jobs_total", job_name="nightly_export", status="error", tenant="acme") == 1
    promtool_check(text)


# -- the push gateway -----------------------------------------------------------------------------


@needs_pushgateway
def test_push_gateway_gets_job_pushes_then_the_shutdown_push(pushgateway: str) -> None:
    obskit.configure(
        **QUIET,
        service_name="batch",
        metrics_exporter="prometheus",
        prometheus_port=0,
        pushgateway_url=pushgateway,
        pushgateway_job="nightly-batch",
        pushgateway_grouping="instance=batch-1",
        push_on="job,shutdown",
    )

    name = f"nightly_export_{uuid.uuid4().hex[:8]}"  # this process's store outlives the test

    @obskit.track_job(name)
    def export(fail: bool = False) -> None:
        if fail:
            raise ValueError("bad row")

    for _ in range(3):
        export()
    with pytest.raises(ValueError, match="bad row"):
        export(fail=True)
    group = {"instance": "batch-1", "job": "nightly-batch"}
    success = {**group, "job_name": name, "status": "success"}
    error = {**group, "job_name": name, "status": "error"}
    wait_until(
        lambda: (
            gateway_value(pushgateway, "obskit_jobs_total", **success) == 3
            and gateway_value(pushgateway, "obskit_jobs_total", **error) == 1
        ),
        "the pushes after the jobs",
    )
    assert gateway_value(pushgateway, "push_time_seconds", **group)

    time.sleep(obskit_min_push_interval() + 0.5)  # any push still owed to the jobs is done
    rows = f"rows_written_{uuid.uuid4().hex[:8]}"
    obskit.MetricsCollector().counter(rows, "Rows written.").inc(42)
    time.sleep(1.0)
    assert gateway_value(pushgateway, f"{rows}_total", **group) is None  # no job: no push
    obskit.shutdown(timeout=10)
    assert gateway_value(pushgateway, f"{rows}_total", **group) == 42
    assert gateway_value(pushgateway, "obskit_jobs_total", **success) == 3


def obskit_min_push_interval() -> float:
    from obskit._export import prometheus as _prometheus

    return _prometheus.MIN_PUSH_INTERVAL_SECONDS


BATCH_SCRIPT = textwrap.dedent(
    """
    import sys, obskit
    obskit.configure(service_name="exit-batch", metrics_exporter="prometheus", prometheus_port=0,
                     traces_exporter="none", logs_exporter="none", pushgateway_url=sys.argv[1])

    @obskit.track_job("at_exit")
    def work():
        return 1

    work()
    work()
    # no shutdown(): the exit hook pushes (push_on defaults to "shutdown")
    """
)


@needs_pushgateway
def test_a_batch_process_pushes_on_normal_exit(pushgateway: str, tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-c", BATCH_SCRIPT, pushgateway], check=True, timeout=60, cwd=tmp_path)
    labels = {"instance": "", "job": "exit-batch", "job_name": "at_exit", "status": "success"}
    assert gateway_value(pushgateway, "obskit_jobs_total", **labels) == 2


# -- gunicorn, four workers, multi-process mode ---------------------------------------------------


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """examples/gunicorn_app.py under gunicorn: 4 workers, a multi-process directory, child_exit."""
    directory = tmp_path / "multiproc"
    directory.mkdir()
    app_port, metrics_port = free_port(), free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OBSKIT_", "OTEL_", "PROMETHEUS_"))}
    environ.update(
        OTEL_METRICS_EXPORTER="prometheus",
        OTEL_TRACES_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_PROMETHEUS_PORT=str(metrics_port),
        OBSKIT_PROMETHEUS_MULTIPROC_DIR=str(directory),
    )
    log = tmp_path / "gunicorn.log"
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        str(EXAMPLES / "gunicorn.conf.py"),
        "--bind",
        f"127.0.0.1:{app_port}",
        "--workers",
        "4",
        "--chdir",
        str(EXAMPLES),
        "--no-control-socket",
        "gunicorn_app:app",
    ]
    with running(args, log, env=environ, cwd=tmp_path) as process:
        app_url = f"http://127.0.0.1:{app_port}"
        wait_until(lambda: http_get(f"{app_url}/metrics")[0] == 200, "gunicorn to serve", 60, process, log)
        yield {
            "app": app_url,
            "metrics": f"http://127.0.0.1:{metrics_port}",
            "dir": directory,
            "process": process,
            "log": log,
        }


def live_gauge_pids(directory: Path) -> set[int]:
    return {int(p.stem.rsplit("_", 1)[1]) for p in directory.glob("gauge_livesum_*.db")}


@needs_gunicorn
def test_gunicorn_four_workers_sum_in_one_scrape(gunicorn: dict[str, Any]) -> None:
    requests = 80
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: http_get(f"{gunicorn['app']}/work")[0], range(requests)))
    assert statuses == [200] * requests
    workers = {int(p.stem.rsplit("_", 1)[1]) for p in gunicorn["dir"].glob("counter_*.db")}
    assert len(workers) >= 2, workers  # the requests really were spread over several workers

    text = http_get(f"{gunicorn['app']}/metrics")[1]  # whichever worker answers merges all files
    assert sample(text, "demo_work_total") == requests
    assert (
        sample(text, "http_server_requests_total", method="GET", route="/work", status_code="200") == requests
    )
    assert (
        sample(text, "obskit_http_server_request_duration_seconds_count", method="GET", route="/work")
        == requests
    )
    buckets = [
        sample(text, "obskit_http_server_request_duration_seconds_bucket", le=le, method="GET", route="/work")
        for le in ("0.005", "0.01", "0.025", "+Inf")
    ]
    assert buckets[0] == 0  # each request sleeps 10 ms: buckets are kept, not flattened
    assert buckets[-1] == requests
    assert sample(text, "demo_busy") == 0

    # obskit's standalone port is served by one worker and shows the same sums.
    wait_until(
        lambda: sample(http_get(f"{gunicorn['metrics']}/metrics")[1], "demo_work_total") == requests,
        "the standalone port",
        30,
        gunicorn["process"],
        gunicorn["log"],
    )

    # A worker that dies: gunicorn's child_exit hook removes its live gauges, counters stay.
    victim = sorted(live_gauge_pids(gunicorn["dir"]))[0]
    os.kill(victim, signal.SIGTERM)
    wait_until(
        lambda: victim not in live_gauge_pids(gunicorn["dir"]),
        "child_exit to forget the dead worker",
        30,
        gunicorn["process"],
        gunicorn["log"],
    )
    text = http_get(f"{gunicorn['app']}/metrics")[1]
    assert sample(text, "demo_work_total") == requests


@needs_gunicorn
@needs_prometheus
def test_real_prometheus_sums_the_gunicorn_workers(
    gunicorn: dict[str, Any], prometheus: Callable[..., Prometheus]
) -> None:
    requests = 40
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(lambda _: http_get(f"{gunicorn['app']}/work")[0], range(requests))) == {200}
    server = prometheus(gunicorn["app"].removeprefix("http://"))
    wait_until(lambda: server.scalar("sum(demo_work_total)") == requests, "Prometheus to see every request")
    assert server.scalar('sum(http_server_requests_total{route="/work"})') == requests
    assert server.scalar("count(demo_work_total)") == 1  # one merged series, not one per worker
