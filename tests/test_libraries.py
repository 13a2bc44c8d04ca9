"""instrument_libraries: which libraries get CLIENT spans, and the metrics database spans feed."""

from __future__ import annotations

import asyncio
import http.server
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import ClassVar

import pytest
from opentelemetry.trace import SpanKind

import obskit
import procs
from obskit._core.errors import ConfigError
from obskit._web import libraries as _libraries
from obskit.testing import capture

_QUIET = {"metrics_exporter": "none", "logs_exporter": "none"}


def test_an_unknown_library_is_refused_naming_the_allowed_ones() -> None:
    with pytest.raises(ConfigError) as raised:
        obskit.configure(traces_exporter="console", instrument_libraries="redis,mongo", **_QUIET)
    assert "sqlalchemy" in str(raised.value)
    assert "auto" in str(raised.value)
    with pytest.raises(ConfigError):
        obskit.configure(traces_exporter="console", instrument_libraries="auto,redis", **_QUIET)


def test_the_selection() -> None:
    from obskit._core.settings import resolve_settings

    assert _libraries.selected(resolve_settings({}))[0] == sorted(_libraries.LIBRARIES)
    named = resolve_settings({"instrument_libraries": "redis, httpx", "instrument_http_clients": False})
    assert _libraries.selected(named) == (["redis"], True)
    assert _libraries.selected(resolve_settings({"instrument_libraries": "none"}))[0] == []


def test_none_leaves_the_http_clients_alone() -> None:
    import requests  # noqa: F401
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    obskit.configure(traces_exporter="console", instrument_libraries="none", **_QUIET)
    assert not RequestsInstrumentor().is_instrumented_by_opentelemetry
    obskit.configure(traces_exporter="console", instrument_libraries="requests", **_QUIET)
    assert RequestsInstrumentor().is_instrumented_by_opentelemetry


def test_a_named_library_without_its_instrumentation_is_one_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = _libraries.Library("no_such_instrumentation_module", "X", "psycopg", "database")
    monkeypatch.setitem(_libraries.LIBRARIES, "psycopg", missing)
    obskit.configure(traces_exporter="console", instrument_libraries="psycopg", **_QUIET)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "psycopg" in line]
    assert len(warnings) == 1
    assert "WARNING" in warnings[0]
    assert 'pip install "obskit[psycopg]"' in warnings[0]


def test_auto_says_nothing_about_a_missing_instrumentation(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = _libraries.Library("no_such_instrumentation_module", "X", "psycopg", "database")
    monkeypatch.setitem(_libraries.LIBRARIES, "psycopg", missing)
    obskit.configure(traces_exporter="console", **_QUIET)
    assert "psycopg" not in capsys.readouterr().err


def test_operation_is_a_word_never_a_query() -> None:
    assert _libraries._operation({"db.operation.name": "select"}, "") == "SELECT"
    assert _libraries._operation({"db.statement": "INSERT INTO t VALUES (1)"}, "") == "INSERT"
    assert _libraries._operation({"db.query.text": "'; drop"}, "") == "OTHER".lower()
    assert _libraries._operation({}, "GET") == "GET"


def test_sqlalchemy_queries_are_client_spans_and_feed_the_db_metrics() -> None:
    pytest.importorskip("opentelemetry.instrumentation.sqlalchemy", reason="obskit[sqlalchemy] not installed")
    sqlalchemy = pytest.importorskip("sqlalchemy")
    obskit.configure(traces_exporter="console", instrument_libraries="sqlalchemy", **_QUIET)
    engine = sqlalchemy.create_engine("sqlite://")  # instrumented when created
    with capture() as cap, engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT 1"))
        with pytest.raises(sqlalchemy.exc.OperationalError):
            connection.execute(sqlalchemy.text("SELECT * FROM no_such_table"))
    spans = [s for s in cap.spans() if s.kind is SpanKind.CLIENT]
    assert [s.name for s in spans] == ["connect", "SELECT", "SELECT"]
    # SQLAlchemy's instrumentation reads the conventions per engine: the environment's (old) here.
    assert (spans[1].attributes or {}).get("db.system") == "sqlite"
    name = "obskit_db_query_duration_seconds"
    assert cap.histogram_count(name, db="sqlite", operation="SELECT", status="ok") == 1
    assert cap.histogram_count(name, db="sqlite", operation="SELECT", status="error") == 1
    assert cap.histogram_count(name, db="sqlite", operation="CONNECT", status="ok") == 1


@pytest.fixture
def redis_url() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = procs.free_port()
    args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_redis_reads_count_as_cache_hits_and_misses(redis_url: str) -> None:
    pytest.importorskip("opentelemetry.instrumentation.redis", reason="obskit[redis] not installed")
    redis = pytest.importorskip("redis")
    obskit.configure(traces_exporter="console", instrument_libraries="redis", **_QUIET)
    client = redis.Redis.from_url(redis_url)
    with capture() as cap:
        client.set("present", "1")
        assert client.get("present") == b"1"
        assert client.get("absent") is None
        client.mget(["present", "absent", "other"])
    spans = [s for s in cap.spans() if s.kind is SpanKind.CLIENT]
    assert [s.name for s in spans] == ["SET", "GET", "GET", "MGET"]
    attributes = spans[1].attributes or {}
    assert attributes.get("db.system.name") == "redis"  # the stable conventions
    assert "db.system" not in attributes
    assert cap.counter_value("obskit_cache_requests_total", cache="redis", result="hit") == 2
    assert cap.counter_value("obskit_cache_requests_total", cache="redis", result="miss") == 3
    name = "obskit_db_query_duration_seconds"
    assert cap.histogram_count(name, db="redis", operation="GET", status="ok") == 2
    client.close()


def test_shutdown_stops_feeding_the_metrics() -> None:
    pytest.importorskip("opentelemetry.instrumentation.sqlalchemy", reason="obskit[sqlalchemy] not installed")
    sqlalchemy = pytest.importorskip("sqlalchemy")
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    obskit.configure(traces_exporter="console", instrument_libraries="sqlalchemy", **_QUIET)
    assert SQLAlchemyInstrumentor().is_instrumented_by_opentelemetry
    obskit.shutdown()
    assert not SQLAlchemyInstrumentor().is_instrumented_by_opentelemetry
    assert _libraries._ACTIVE is None
    engine = sqlalchemy.create_engine("sqlite://")
    with capture() as cap, engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT 1"))
    assert cap.spans() == []


def test_celery_tasks_run_in_the_process_are_jobs() -> None:
    pytest.importorskip("opentelemetry.instrumentation.celery", reason="obskit[celery] not installed")
    celery = pytest.importorskip("celery")
    obskit.configure(traces_exporter="console", instrument_libraries="celery", **_QUIET)
    app = celery.Celery("eager", broker="memory://")
    app.conf.task_always_eager = True

    @app.task(name="jobs.ok")
    def ok() -> int:
        return 1

    @app.task(name="jobs.broken")
    def broken() -> None:
        raise ValueError("no")

    with capture() as cap:
        ok.delay()
        broken.delay()
    assert cap.counter_value("obskit_jobs_total", job_name="jobs.ok", status="success") == 1
    assert cap.counter_value("obskit_jobs_total", job_name="jobs.broken", status="error") == 1
    assert cap.histogram_count("obskit_job_duration_seconds", job_name="jobs.ok") == 1
    assert cap.gauge_value("obskit_jobs_in_progress", job_name="jobs.ok") == 0
    assert {s.name for s in cap.spans()} >= {"run/jobs.ok", "run/jobs.broken"}
    obskit.shutdown()
    with capture() as cap:
        ok.delay()
    assert "obskit_jobs_total" not in cap.metric_names()  # shutdown() disconnected the signals


def test_a_celery_tasks_labels_are_on_each_jobs_family_the_in_progress_gauge_too() -> None:
    pytest.importorskip("opentelemetry.instrumentation.celery", reason="obskit[celery] not installed")
    celery = pytest.importorskip("celery")
    obskit.configure(traces_exporter="console", instrument_libraries="celery", **_QUIET)
    app = celery.Celery("eager", broker="memory://")
    app.conf.task_always_eager = True
    running: list[float | None] = []

    @app.task(name="jobs.export", obskit_labels=("organization",))
    def export(organization: str, rows: int = 0) -> None:
        gauge = "obskit_jobs_in_progress"
        running.append(cap.gauge_value(gauge, job_name="jobs.export", organization=organization))
        if rows < 0:
            raise ValueError("no")

    sizes = {"size": lambda organization, rows=0: "big" if rows > 10 else "small", "team": "data"}

    @app.task(name="jobs.sized", bind=True, obskit_labels=sizes)
    def sized(self: object, organization: str, rows: int = 0) -> None:
        pass

    with capture() as cap:
        export.delay("acme", 3)
        export.delay(organization="beta", rows=-1)
        sized.delay("acme", rows=50)
    assert running == [1, 1]  # while it ran, in its own series
    total = "obskit_jobs_total"
    assert cap.counter_value(total, job_name="jobs.export", organization="acme", status="success") == 1
    assert cap.counter_value(total, job_name="jobs.export", organization="beta", status="error") == 1
    name = "obskit_job_duration_seconds"
    assert cap.histogram_count(name, job_name="jobs.export", organization="acme") == 1
    for organization in ("acme", "beta"):
        labels = {"job_name": "jobs.export", "organization": organization}
        assert cap.gauge_value("obskit_jobs_in_progress", **labels) == 0
    labels = {"job_name": "jobs.sized", "size": "big", "team": "data"}
    assert cap.counter_value(total, status="success", **labels) == 1
    assert cap.gauge_value("obskit_jobs_in_progress", **labels) == 0
    (run,) = [s for s in cap.spans() if s.name == "run/jobs.export" and s.status.is_ok]
    assert (run.attributes or {}).get("job.organization") == "acme"


def test_a_celery_task_declaring_a_label_it_has_no_argument_for_counts_without_labels(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("opentelemetry.instrumentation.celery", reason="obskit[celery] not installed")
    celery = pytest.importorskip("celery")
    obskit.configure(traces_exporter="console", instrument_libraries="celery", **_QUIET)
    app = celery.Celery("eager", broker="memory://")
    app.conf.task_always_eager = True

    @app.task(name="jobs.misnamed", obskit_labels=("organisation",))
    def misnamed(organization: str) -> None:
        pass

    with capture(strict=False) as cap:
        misnamed.delay("acme")
        misnamed.delay("acme")
    assert cap.counter_value("obskit_jobs_total", job_name="jobs.misnamed", status="success") == 2
    warnings = [line for line in capsys.readouterr().err.splitlines() if "jobs.misnamed" in line]
    assert len(warnings) == 1
    assert "'organisation' names no parameter" in warnings[0]


class _Recorder(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        _Recorder.received.append(dict(self.headers))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


def test_aiohttp_client_calls_carry_the_trace() -> None:
    pytest.importorskip(
        "opentelemetry.instrumentation.aiohttp_client", reason="obskit[aiohttp] not installed"
    )
    aiohttp = pytest.importorskip("aiohttp")
    peer = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=peer.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{peer.server_address[1]}/x"
    obskit.configure(traces_exporter="console", instrument_libraries="aiohttp", **_QUIET)

    async def call() -> int:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return int(response.status)

    try:
        with capture() as cap, obskit.trace_operation("outer"):
            assert asyncio.run(call()) == 200
    finally:
        peer.shutdown()
        peer.server_close()
    (span,) = [s for s in cap.spans() if s.kind is SpanKind.CLIENT]
    attributes = span.attributes or {}
    assert attributes.get("http.request.method") == "GET"  # the stable conventions
    assert "http.method" not in attributes
    traceparent = {k.lower(): v for k, v in _Recorder.received[-1].items()}["traceparent"]
    assert traceparent.split("-")[2] == format(span.context.span_id, "016x")


AUTO_LATER = """
import json, sys
import obskit
obskit.configure(traces_exporter="console", metrics_exporter="none", logs_exporter="none")
report = {"before": [m for m in ("redis", "opentelemetry.instrumentation.redis") if m in sys.modules]}
import redis
from opentelemetry.instrumentation.redis import RedisInstrumentor
report["instrumented"] = RedisInstrumentor().is_instrumented_by_opentelemetry
obskit.shutdown()
report["after_shutdown"] = RedisInstrumentor().is_instrumented_by_opentelemetry
print(json.dumps(report))
"""


def test_auto_instruments_a_library_imported_after_configure() -> None:
    pytest.importorskip("opentelemetry.instrumentation.redis", reason="obskit[redis] not installed")
    pytest.importorskip("redis")
    done = subprocess.run([sys.executable, "-c", AUTO_LATER], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"before": [], "instrumented": True, "after_shutdown": False}


def test_the_doctor_names_the_extra_of_a_missing_instrumentation(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = _libraries.Library("no_such_instrumentation_module", "X", "psycopg", "database")
    monkeypatch.setitem(_libraries.LIBRARIES, "psycopg", missing)
    problems = obskit.check_backends(instrument_libraries="psycopg", metrics_exporter="none")
    (problem,) = [p for p in problems if "instrument_libraries" in p]
    assert problem.startswith("instrument_libraries: psycopg gets no spans")
    assert problem.endswith('pip install "obskit[psycopg]"')
    untraced = {"traces_exporter": "none", "metrics_exporter": "none"}
    assert not obskit.check_backends(instrument_libraries="psycopg", **untraced)
    # auto: only a library that is installed.
    monkeypatch.setattr(_libraries, "_top_level_installed", lambda name: False)
    assert not [p for p in obskit.check_backends(metrics_exporter="none") if "instrument_libraries" in p]
    monkeypatch.setattr(_libraries, "_top_level_installed", lambda name: name == "psycopg")
    assert [p for p in obskit.check_backends(metrics_exporter="none") if "psycopg" in p]
