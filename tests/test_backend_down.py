"""Promise 3 for the push backends: a backend that is down costs the application nothing.

Two ways down, on loopback only: a port that refuses connections (a socket bound but not
listening, held for the whole test so that nobody else can take the port), and a black hole
that accepts connections and never answers, so that every export waits for its timeout. Against
each, for OTLP over gRPC and HTTP/protobuf and for the Prometheus push gateway: the application's
calls return their values and raise their exceptions unchanged and never wait for an export,
``shutdown()`` keeps its deadline, every item that could not be delivered is counted in
``obskit_telemetry_dropped_total`` and the exporting libraries' warnings are rate-limited.

The timing bounds are not speed targets: a call that waited for the dead peer would take the
export timeout (5 s, or the push gateway's) where the bound allows a fraction of it, with a wide
margin for a loaded machine.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI

import obskit
import obskit.prometheus
from asgicall import asgi_get
from logcapture import messages_of
from obskit import LoggingContext, trace_operation, track_job
from obskit._core import state as _state
from obskit._export import prometheus as _prometheus
from obskit._export.pipeline import is_library_logger
from obskit._recording.store import Store

CALLS = 500
#: Milliseconds each OTLP export may take (retries included): what a blocked caller would wait.
EXPORT_TIMEOUT_MS = 5000
SHUTDOWN_TIMEOUT = 2.0
#: Far below the export timeout; generous for CALLS calls on a shared, loaded machine.
CALLS_BOUND = 2.5
#: What shutdown() may take beyond its deadline (thread start-up and join on a loaded machine).
SHUTDOWN_MARGIN = 1.5
#: How long exports abandoned at shutdown may take to end on their own (each gives up at its
#: timeout; a flush and the processor's final drain can follow each other).
SETTLE_SECONDS = 45.0
#: Threads that export (or push) and count what they could not deliver.
EXPORTING_THREADS = ("obskit-shutdown-", "obskit-prometheus-push", "OtelBatch", "OtelPeriodicExporting")
PROTOCOLS = ["grpc", "http/protobuf"]
DOWN = ["refused", "black_hole"]


# -- dead peers -----------------------------------------------------------------------------


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port bound but not listening: every connect is refused, and no other test
    can take the port while it is held."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@contextlib.contextmanager
def black_hole() -> Iterator[int]:
    """A loopback port that accepts every connection and never reads from or answers it."""
    held: list[socket.socket] = []
    stop = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        listener.settimeout(0.05)

        def accept() -> None:
            while not stop.is_set():
                try:
                    held.append(listener.accept()[0])
                except OSError:
                    continue

        thread = threading.Thread(target=accept, name="test-black-hole", daemon=True)
        thread.start()
        try:
            yield int(listener.getsockname()[1])
        finally:
            stop.set()
            thread.join(5)
            for conn in held:
                conn.close()


@pytest.fixture(params=DOWN)
def down_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a peer that is down, one way or the other."""
    with refusing_port() if request.param == "refused" else black_hole() as port:
        yield f"http://127.0.0.1:{port}"


# -- isolation ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _own_metric_store() -> None:
    """Drops are counted in the current store: a fresh one makes the counts this test's own.
    conftest's state restore puts the previous store back afterwards."""
    _state.set_state(dataclasses.replace(_state.STATE, store=Store()))


def _exporting_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(EXPORTING_THREADS)]


@pytest.fixture(autouse=True)
def _settled() -> Iterator[None]:
    """Let exports abandoned at shutdown end inside this test.

    They end at their own timeout and count their items as dropped into whatever store is
    current then; after this test that would be another test's.
    """
    yield
    obskit.shutdown(timeout=SHUTDOWN_TIMEOUT)
    wait_for_exporting_threads()


def wait_for_exporting_threads() -> None:
    deadline = time.monotonic() + SETTLE_SECONDS
    while alive := _exporting_threads():
        assert time.monotonic() < deadline, f"exports outlived their timeout: {alive}"
        time.sleep(0.05)


def dropped(signal: str) -> float:
    value = _state.STATE.store.registry.get_sample_value(
        "obskit_telemetry_dropped_total", {"signal": signal, "reason": "export_failed"}
    )
    return value or 0.0


def repeated_library_warnings(records: list[logging.LogRecord]) -> dict[tuple[str, object], int]:
    """The exporting libraries' warnings (and errors) that were let through more than once."""
    seen = collections.Counter(
        (r.name, r.msg) for r in records if r.levelno >= logging.WARNING and is_library_logger(r.name)
    )
    return {key: count for key, count in seen.items() if count > 1}


# -- the application ------------------------------------------------------------------------


class JobFailed(Exception):
    """What the application raises; the very same object must come out."""


class Result:
    """What the application returns; the very same object must come out."""


log = logging.getLogger("tests.backend_down")
#: What ``job`` returned and raised, in order, to compare with what its callers got.
made: list[Result | JobFailed] = []


@track_job("down_job")
def job(number: int) -> Result:
    with LoggingContext(request_id=f"req-{number}"), trace_operation("down_step", attributes={"n": number}):
        log.warning("working on %d", number)
        if number % 10 == 0:
            error = JobFailed(number)
            made.append(error)
            raise error
        result = Result()
        made.append(result)
        return result


def run_jobs() -> tuple[float, int]:
    """CALLS jobs (one in ten failing); the seconds they took and how many failed.

    Each caller gets the very object the job returned or raised.
    """
    made.clear()
    got: list[Result | JobFailed] = []
    started = time.perf_counter()
    for number in range(CALLS):
        try:
            got.append(job(number))
        except JobFailed as error:
            got.append(error)
    elapsed = time.perf_counter() - started
    assert len(got) == len(made) == CALLS
    assert all(mine is theirs for mine, theirs in zip(got, made, strict=True))
    failed = [error for error in got if isinstance(error, JobFailed)]
    # The traceback still reaches into the job that raised it.
    assert all(_raised_in_job(error) for error in failed)
    return elapsed, len(failed)


def _raised_in_job(error: BaseException) -> bool:
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code.co_name == "job"


# -- OTLP -------------------------------------------------------------------------------------


def make_app() -> FastAPI:
    app = FastAPI()
    raised: list[JobFailed] = []

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        log.warning("item %d", item_id)
        return {"id": item_id}

    @app.get("/boom")
    async def boom() -> None:
        error = JobFailed("boom")
        raised.append(error)
        raise error

    app.state.raised = raised
    return app


async def serve_requests(app: FastAPI, count: int) -> float:
    started = time.perf_counter()
    for number in range(count):
        sent = await asgi_get(app, f"/items/{number}")
        assert sent[0]["status"] == 200
        assert sent[-1]["body"] == f'{{"id":{number}}}'.encode()
    with pytest.raises(JobFailed) as info:
        await asgi_get(app, "/boom")
    assert info.value is app.state.raised[-1]
    return time.perf_counter() - started


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_otlp_backend_down_costs_the_application_nothing_and_counts_every_drop(
    protocol: str, down_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = make_app()
    obskit.configure(
        app,
        service_name="backend-down",
        traces_exporter="otlp",
        metrics_exporter="otlp",
        logs_exporter="otlp",
        otlp_protocol=protocol,
        otlp_endpoint=down_url,
        otlp_timeout=EXPORT_TIMEOUT_MS,
        metric_export_interval_ms=200,  # metric exports fail again and again while the jobs run
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        access_log=False,
    )

    elapsed, failures = run_jobs()
    assert failures == CALLS // 10
    assert elapsed < CALLS_BOUND, f"{CALLS} jobs took {elapsed:.2f}s: the caller waited for an export"
    requests = 100
    elapsed = asyncio.run(serve_requests(app, requests))
    assert elapsed < CALLS_BOUND, f"{requests} requests took {elapsed:.2f}s: the caller waited for an export"
    time.sleep(1.0)  # a few metric exports fail meanwhile (they warn: rate-limited below)

    shutdown_started = time.time()
    started = time.monotonic()
    obskit.shutdown()
    took = time.monotonic() - started
    assert took < SHUTDOWN_TIMEOUT + SHUTDOWN_MARGIN, f"shutdown took {took:.2f}s"
    assert not obskit.is_configured()

    wait_for_exporting_threads()
    # Nothing was delivered and nothing was lost without being counted: every span (the job's,
    # its step's and each request's), every log record (the application's, and the error line
    # of the failed request), and the metric points of each export.
    assert dropped("traces") == 2 * CALLS + requests + 1
    exported_records = [r for r in caplog.records if not is_library_logger(r.name)]
    assert len(exported_records) == CALLS + requests + 1
    assert dropped("logs") == len(exported_records)
    assert dropped("metrics") >= 1
    before_shutdown = [r for r in caplog.records if r.created < shutdown_started]
    assert repeated_library_warnings(before_shutdown) == {}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_otlp_export_failures_warn_once_not_once_per_batch(
    protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with refusing_port() as port:
        obskit.configure(
            traces_exporter="otlp",
            metrics_exporter="otlp",
            logs_exporter="otlp",
            otlp_protocol=protocol,
            otlp_endpoint=f"http://127.0.0.1:{port}",
            otlp_timeout=200,  # each export gives up at once: no time for a retry
            metric_export_interval_ms=50,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
        )
        obskit.MetricsCollector().counter("backend_down_events", "Events").inc()
        deadline = time.monotonic() + 20
        while not (first := dropped("metrics")):
            assert time.monotonic() < deadline, "no metric export failed"
            time.sleep(0.05)
        # The reader's first export can fail before configure() has put the rate limit on the
        # libraries' loggers (it does so last); count from here.
        caplog.clear()
        while dropped("metrics") < 5 * first:  # five failed exports at least
            assert time.monotonic() < deadline, "metric exports stopped failing"
            time.sleep(0.05)
        for number in range(3):
            log.warning("between failures %d", number)
            time.sleep(0.3)
        while dropped("logs") < 3:  # the log processor exports at least once a second
            assert time.monotonic() < deadline, "the log export did not fail"
            time.sleep(0.05)
        records = list(caplog.records)
    assert repeated_library_warnings(records) == {}


def test_otlp_export_failures_stay_rate_limited_while_shutdown_flushes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with refusing_port() as port:
        obskit.configure(
            traces_exporter="otlp",
            metrics_exporter="none",
            logs_exporter="none",
            otlp_protocol="http/protobuf",
            otlp_endpoint=f"http://127.0.0.1:{port}",
            otlp_timeout=EXPORT_TIMEOUT_MS,  # retries (about 1 s, then 2 s apart) until then
            shutdown_timeout=4.0,
        )
        for _ in range(3):
            job(1)
        obskit.shutdown()
        records = list(caplog.records)
    assert repeated_library_warnings(records) == {}


def dropped_for(signal: str, reason: str) -> float:
    value = _state.STATE.store.registry.get_sample_value(
        "obskit_telemetry_dropped_total", {"signal": signal, "reason": reason}
    )
    return value or 0.0


@pytest.mark.parametrize("signal", ["traces", "logs"])
def test_every_item_a_full_queue_pushes_out_while_the_peer_hangs_is_counted(signal: str) -> None:
    queue_size, items = 64, 400
    with black_hole() as port:
        obskit.configure(
            traces_exporter="otlp" if signal == "traces" else "none",
            metrics_exporter="none",
            logs_exporter="otlp" if signal == "logs" else "none",
            otlp_protocol="http/protobuf",
            otlp_endpoint=f"http://127.0.0.1:{port}",
            otlp_timeout=1500,  # each export hangs this long; the queue fills meanwhile
            export_queue_size=queue_size,
            shutdown_timeout=1.0,
        )
        for number in range(items):
            with trace_operation("queued"):
                log.warning("queued %d", number)
        obskit.shutdown()
        wait_for_exporting_threads()
    full, failed = dropped_for(signal, "queue_full"), dropped_for(signal, "export_failed")
    assert full >= items - 3 * queue_size
    # Every item is counted. A full queue is seen before the item is added, so when the export
    # thread takes the queue's contents in between, one item of that export is counted twice.
    assert items <= full + failed <= items + 3, (full, failed)


def test_full_log_queue_drops_are_counted_by_the_counting_processor() -> None:
    from opentelemetry._logs import LogRecord
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import (
        BatchLogRecordProcessor,
        LogRecordExporter,
        LogRecordExportResult,
    )

    from obskit._export.pipeline import counting_log_processor

    release = threading.Event()

    class Blocking(LogRecordExporter):
        def export(self, batch: Any) -> LogRecordExportResult:
            release.wait(10)
            return LogRecordExportResult.SUCCESS

        def shutdown(self) -> None:
            release.set()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    batch = BatchLogRecordProcessor(Blocking(), max_queue_size=2, max_export_batch_size=1)
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(counting_log_processor(batch, 2))
    logger = provider.get_logger("tests.backend_down")
    for number in range(10):
        logger.emit(LogRecord(body=f"record {number}"))
    # The worker may have taken one record off the queue; at least 7 of 10 could not be queued.
    assert dropped_for("logs", "queue_full") >= 7
    release.set()
    provider.shutdown()


def test_otlp_refused_port_is_named_by_check_backends() -> None:
    with refusing_port() as port:
        settings = obskit.configure(
            traces_exporter="otlp",
            metrics_exporter="otlp",
            logs_exporter="otlp",
            otlp_endpoint=f"http://127.0.0.1:{port}",
            otlp_protocol="grpc",
        )
        (problem,) = obskit.check_backends(settings)
    assert problem.startswith(f"otlp_endpoint: cannot connect to http://127.0.0.1:{port}")
    assert "traces (grpc), metrics (grpc), logs (grpc)" in problem


# -- the Prometheus push gateway --------------------------------------------------------------


@pytest.fixture
def obskit_warnings() -> Iterator[list[str]]:
    """What obskit's own logger says (it does not propagate while configured)."""
    yield from messages_of("obskit")


@pytest.mark.parametrize("push_on", ["job,shutdown", "shutdown"])
def test_push_gateway_down_costs_jobs_nothing_and_counts_the_failed_pushes(
    down_url: str, push_on: str, obskit_warnings: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A background push to the black hole waits this long (10 s by default) for an answer.
    monkeypatch.setattr(_prometheus, "PUSH_TIMEOUT_SECONDS", 3.0)
    monkeypatch.setattr(_prometheus, "MIN_PUSH_INTERVAL_SECONDS", 0.2)
    obskit.configure(
        metrics_exporter="prometheus",
        prometheus_port=0,
        traces_exporter="none",
        logs_exporter="none",
        pushgateway_url=down_url,
        push_on=push_on,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    )
    elapsed, failures = run_jobs()
    assert failures == CALLS // 10
    assert elapsed < CALLS_BOUND, f"{CALLS} jobs took {elapsed:.2f}s: the caller waited for a push"

    started = time.monotonic()
    assert obskit.prometheus.push(timeout=1.0) is False
    took = time.monotonic() - started
    assert took < 1.0 + SHUTDOWN_MARGIN, f"push(timeout=1) took {took:.2f}s"

    started = time.monotonic()
    obskit.shutdown()
    took = time.monotonic() - started
    assert took < SHUTDOWN_TIMEOUT + SHUTDOWN_MARGIN, f"shutdown took {took:.2f}s"

    wait_for_exporting_threads()
    # The explicit push and the shutdown push, and with push_on=job the pushes after jobs:
    # each failed one counts its series.
    assert dropped("metrics") >= 2
    failed = [m for m in obskit_warnings if "pushing metrics to the Prometheus push gateway" in m]
    assert len(failed) == 1, obskit_warnings
    assert "obskit_telemetry_dropped_total" in failed[0]


def test_push_gateway_refused_port_is_named_by_check_backends() -> None:
    with refusing_port() as port:
        (problem,) = obskit.check_backends(
            metrics_exporter="prometheus",
            prometheus_port=0,
            pushgateway_url=f"http://127.0.0.1:{port}",
        )
    assert problem.startswith(f"pushgateway_url: cannot connect to http://127.0.0.1:{port}")


def test_a_push_gateway_password_appears_nowhere_on_stderr(
    down_url: str,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_prometheus, "PUSH_TIMEOUT_SECONDS", 3.0)
    secret = "Sup3r-s3cret-pw"
    url = down_url.replace("http://", f"http://ci:{secret}@")
    obskit.configure(
        metrics_exporter="prometheus",
        prometheus_port=0,
        traces_exporter="none",
        logs_exporter="console",
        pushgateway_url=url,
        push_on="job,shutdown",
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    )
    job(1)
    assert obskit.prometheus.push(timeout=1.0) is False
    # push() stops waiting after 1 s, when its push times out too: the warning is written by the
    # push's thread, which may come just after. Waited for, so that shutdown() does not take
    # obskit's stderr handler away first (a race by microseconds, lost now and then under load).
    for thread in threading.enumerate():
        if thread.name == "obskit-prometheus-push-now":
            thread.join(SETTLE_SECONDS)
    obskit.shutdown()
    wait_for_exporting_threads()
    out, err = capfd.readouterr()
    # A black-holed push times out after shutdown() removed obskit's stderr handler: its warning
    # then goes to the application's handlers (here pytest's) instead. Wherever it went, once.
    warnings = [line for line in err.splitlines() if "pushing metrics to the Prometheus push gateway" in line]
    warnings += [
        r.getMessage() for r in caplog.records if "pushing metrics to the Prometheus" in r.getMessage()
    ]
    (warning,) = warnings
    assert "http://[REDACTED]@127.0.0.1:" in warning
    assert secret not in err
    assert secret not in out
    assert not [r for r in caplog.records if secret in r.getMessage()]
