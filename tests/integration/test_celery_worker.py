"""A real Celery worker (prefork pool, two processes) on a real Redis broker, observed by obskit.

The example in examples/celery_worker/ is the app. A producer process sends tasks (one succeeds,
one fails, one is retried once); the worker's processes record them as jobs in Prometheus
multi-process files, scraped from the worker's endpoint, and both ends export their spans by
OTLP to a loopback receiver, where the worker's spans continue the producer's trace.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import peers
import pytest
from otlp_receiver import HttpReceiver

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "celery_worker"

pytestmark = [
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed"),
    pytest.mark.skipif(
        importlib.util.find_spec("celery") is None or importlib.util.find_spec("redis") is None,
        reason="celery and redis are not installed (the test extra has them)",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("opentelemetry.instrumentation.celery") is None,
        reason='the Celery instrumentation is not installed: pip install "obskit[celery]"',
    ),
]


def _wait(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


@pytest.fixture
def broker() -> Iterator[str]:
    port = peers.free_port()
    args = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: _listening(port), "redis-server", timeout=10)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)


def _scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _jobs(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], job: str, status: str, **labels: str
) -> float:
    key = ("obskit_jobs_total", frozenset({("job_name", job), ("status", status), *labels.items()}))
    return samples.get(key, 0.0)


PRODUCER = """
import tasks
tasks.add.delay(2, 3)
tasks.fail.delay("boom")
tasks.flaky.delay(2)
tasks.build_report.delay("acme", 3)
"""


def test_a_prefork_worker_records_its_tasks_as_jobs_in_the_producers_trace(
    broker: str, tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    port = peers.free_port()
    with HttpReceiver() as receiver:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OBSKIT_", "PROMETHEUS_"))},
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(EXAMPLE)]),
            "PYTHONDONTWRITEBYTECODE": "1",
            "CELERY_BROKER_URL": broker,
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "prometheus",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "OTEL_EXPORTER_PROMETHEUS_PORT": str(port),
        }
        command = [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool=prefork"]
        command += ["--concurrency=2", "--without-heartbeat", "--without-gossip", "--without-mingle"]
        worker = subprocess.Popen(
            [*command, "--loglevel=WARNING"],
            cwd=tmp_path,
            env={**env, "OTEL_SERVICE_NAME": "worker"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            _wait(lambda: _listening(port) or worker.poll() is not None, "the worker's metrics endpoint")
            assert worker.poll() is None, worker.communicate()[0]
            producer_env = {**env, "OTEL_SERVICE_NAME": "producer", "OTEL_METRICS_EXPORTER": "none"}
            del producer_env["PROMETHEUS_MULTIPROC_DIR"]
            sent = subprocess.run(
                [sys.executable, "-c", PRODUCER],
                cwd=tmp_path,
                env=producer_env,
                capture_output=True,
                text=True,
            )
            assert sent.returncode == 0, sent.stderr

            def done() -> bool:
                samples = _scrape(port)
                return (
                    _jobs(samples, "tasks.add", "success") == 1
                    and _jobs(samples, "tasks.fail", "error") == 1
                    and _jobs(samples, "tasks.flaky", "success") == 1
                    and _jobs(samples, "tasks.build_report", "success", organization="acme") == 1
                )

            _wait(done, "the worker's job metrics")
            samples = _scrape(port)
            assert _jobs(samples, "tasks.flaky", "retry") == 1
            duration = ("obskit_job_duration_seconds_count", frozenset({("job_name", "tasks.add")}))
            assert samples[duration] == 1
            in_progress = ("obskit_jobs_in_progress", frozenset({("job_name", "tasks.add")}))
            assert samples.get(in_progress, 0.0) == 0
            # The task's label is on each of its families, in the worker's multi-process files too.
            report = frozenset({("job_name", "tasks.build_report"), ("organization", "acme")})
            assert samples[("obskit_job_duration_seconds_count", report)] == 1
            assert samples[("obskit_jobs_in_progress", report)] == 0
        finally:
            worker.send_signal(signal.SIGTERM)
            output = worker.communicate(timeout=60)[0]
        assert worker.returncode == 0, output

        def spans_named(name: str) -> list[tuple[dict[str, object], object]]:
            return [(r, s) for r, s in receiver.store.resource_spans() if s.name == name]

        _wait(lambda: len(spans_named("run/tasks.add")) == 1, "the worker's span", timeout=30)
        _wait(lambda: len(spans_named("apply_async/tasks.add")) == 1, "the producer's span", timeout=30)
        ((producer_resource, sent_span),) = spans_named("apply_async/tasks.add")
        ((worker_resource, run_span),) = spans_named("run/tasks.add")
        assert producer_resource["service.name"] == "producer"
        assert worker_resource["service.name"] == "worker"
        assert run_span.trace_id == sent_span.trace_id  # type: ignore[attr-defined]
        assert worker_resource["process.pid"] != producer_resource["process.pid"]
        failed = [s for _, s in spans_named("run/tasks.fail")]
        assert len(failed) == 1
