"""OTLP end to end: obskit's exporters against a real receiver of the official collector services.

The receiver (``otlp_receiver.py``) runs in the test process on loopback: gRPC
(Trace/Metrics/LogsService servicers) and HTTP (``POST /v1/<signal>``, protobuf, gzip), decoding
what arrives with opentelemetry-proto.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import obskit
from obskit import LoggingContext, trace_operation, track_job
from obskit._core import state as _state
from obskit._recording.store import Store

try:  # a package if tests/integration gets an __init__.py, a rootdir module otherwise
    from . import otlp_receiver as rx
except ImportError:
    import otlp_receiver as rx  # type: ignore[no-redef]

pytestmark = pytest.mark.integration

PROTOCOLS = ["grpc", "http/protobuf"]
STATUS_OK, STATUS_ERROR = 1, 2  # opentelemetry.proto.trace.v1.Status.StatusCode
SEVERITY_WARN = 13
FAST = {"metric_export_interval_ms": 100, "shutdown_timeout": 5}


@pytest.fixture(autouse=True)
def _own_metric_store() -> None:
    """A fresh metric store for each test: configure() keeps the store's values, and this
    module's jobs (failing ones included) must not show up in another test's totals.
    conftest's state restore puts the previous store back afterwards."""
    _state.set_state(dataclasses.replace(_state.STATE, store=Store()))


def _dropped(signal: str) -> float:
    value = _state.STATE.store.registry.get_sample_value(
        "obskit_telemetry_dropped_total", {"signal": signal, "reason": "export_failed"}
    )
    return value or 0.0


def _configure(protocol: str, endpoint: str, **extra: Any) -> None:
    settings: dict[str, Any] = {
        "service_name": "otlp-it",
        "traces_exporter": "otlp",
        "metrics_exporter": "otlp",
        "logs_exporter": "otlp",
        "otlp_protocol": protocol,
        "otlp_endpoint": endpoint,
        **FAST,
    }
    settings.update(extra)
    obskit.configure(**settings)


class _JobFailed(Exception):
    pass


def _workload(run: str) -> dict[str, str]:
    """Nested spans, a failing job, labelled metrics and log lines inside a span.

    The metric store outlives a test (values are cumulative), so each test's jobs and series
    carry its own ``run`` name. Returns the names used.
    """
    names = {"ingest": f"ingest_{run}", "parse": f"parse_{run}", "fails": f"fails_{run}"}
    metrics = obskit.MetricsCollector()
    orders = metrics.counter("it_orders", "Orders placed", labels=["region", "run"])
    latency = metrics.histogram(
        "it_checkout_seconds", "Checkout", labels=["region", "run"], buckets=[0.1, 0.5, 1.0]
    )

    @track_job(names["ingest"])
    def ingest() -> int:
        with (
            trace_operation(names["parse"], attributes={"stage": "parse"}),
            LoggingContext(request_id="req-42"),
        ):
            logging.getLogger("tests.app").warning("parsed %d items", 3, extra={"item_count": 3})
            # Never exported back: obskit's own and the exporting libraries' records.
            logging.getLogger("obskit").warning("internal-obskit-noise")
            logging.getLogger("opentelemetry.exporter.x").warning("internal-exporter-noise")
        orders.inc(region="eu", run=run)
        orders.inc(2, region="us", run=run)
        for value in (0.05, 0.3, 0.3, 2.0):
            latency.observe(value, region="eu", run=run)
        return 3

    @track_job(names["fails"])
    def fails() -> None:
        raise _JobFailed("boom")

    assert ingest() == 3
    with pytest.raises(_JobFailed):
        fails()
    return names


def _run(tag: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in tag)


def _by_name(spans: list[Any]) -> dict[str, Any]:
    return {span.name: span for span in spans}


def _point(metric: Any, **labels: str) -> Any:
    """The point with these label values (other labels, such as extra job labels other tests
    declared in this process, may be present with any value)."""
    field = metric.WhichOneof("data")
    for point in getattr(metric, field).data_points:
        attributes = rx.attributes(point.attributes)
        if all(attributes.get(k) == v for k, v in labels.items()):
            return point
    raise AssertionError(f"no point {labels} in {metric}")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_traces_metrics_and_logs_arrive_decoded_and_linked(protocol: str) -> None:
    run = _run(f"full_{protocol}")
    with rx.receiver(protocol) as receiver:
        _configure(protocol, receiver.endpoint, otlp_headers={"X-Api-Key": "k-123"})
        names = _workload(run)
        obskit.shutdown()
        store = receiver.store

        spans = _by_name(store.spans())
        ingest, parse, fails = spans[names["ingest"]], spans[names["parse"]], spans[names["fails"]]
        assert parse.parent_span_id == ingest.span_id
        assert parse.trace_id == ingest.trace_id
        assert ingest.parent_span_id == b""
        statuses = (ingest.status.code, parse.status.code, fails.status.code)
        assert statuses == (STATUS_OK, STATUS_OK, STATUS_ERROR)
        assert "boom" in fails.status.message
        assert [e.name for e in fails.events] == ["exception"]
        assert rx.attributes(parse.attributes) == {"stage": "parse"}
        assert rx.attributes(ingest.attributes)["job.name"] == names["ingest"]
        for signal in ("traces", "metrics", "logs"):
            resources = store.resources(signal)
            assert resources, signal
            assert {r["service.name"] for r in resources} == {"otlp-it"}

        metrics = store.metrics()
        jobs = metrics["obskit_jobs_total"]
        assert jobs.sum.is_monotonic
        assert _point(jobs, job_name=names["ingest"], status="success").as_double == 1
        assert _point(jobs, job_name=names["fails"], status="error").as_double == 1
        assert _point(metrics["it_orders_total"], region="us", run=run).as_double == 2
        assert _point(metrics["it_orders_total"], region="eu", run=run).as_double == 1
        histogram = metrics["it_checkout_seconds"]
        assert histogram.unit == "s"
        point = _point(histogram, region="eu", run=run)
        assert list(point.explicit_bounds) == [0.1, 0.5, 1.0]
        assert list(point.bucket_counts) == [1, 2, 0, 1]
        assert (point.count, round(point.sum, 6)) == (4, 2.65)
        assert not point.HasField("min")
        assert not point.HasField("max")
        assert _point(metrics["obskit_job_duration_seconds"], job_name=names["ingest"]).count == 1

        records = store.log_records()
        bodies = [r.body.string_value for r in records]
        assert "internal-obskit-noise" not in bodies
        assert "internal-exporter-noise" not in bodies
        assert not any(
            str(rx.attributes(r.attributes).get("logger.name", "")).startswith(("obskit", "opentelemetry"))
            for r in records
        )
        (record,) = [r for r in records if r.body.string_value == "parsed 3 items"]
        assert (record.severity_number, record.severity_text) == (SEVERITY_WARN, "WARN")
        assert (record.trace_id, record.span_id) == (parse.trace_id, parse.span_id)
        fields = rx.attributes(record.attributes)
        assert fields["request_id"] == "req-42"
        assert fields["item_count"] == 3
        assert fields["logger.name"] == "tests.app"

        for item in store.items():
            assert item.headers["x-api-key"] == "k-123"
        if protocol == "http/protobuf":
            assert {i.path for i in store.items()} == {"/v1/traces", "/v1/metrics", "/v1/logs"}


def test_gzip_compression_over_http_arrives_gzip_encoded() -> None:
    with rx.HttpReceiver() as receiver:
        _configure("http/protobuf", receiver.endpoint, otlp_compression="gzip")
        names = _workload("gzip_http")
        obskit.shutdown()
        items = receiver.store.items()
        assert {i.signal for i in items} == {"traces", "metrics", "logs"}
        assert {i.encoding for i in items} == {"gzip"}
        assert names["parse"] in _by_name(receiver.store.spans())


@pytest.mark.parametrize("accept_gzip", [True, False])
def test_gzip_compression_over_grpc_is_really_applied(accept_gzip: bool) -> None:
    # gRPC strips grpc-encoding before a servicer sees it: a server refusing gzip is the witness.
    before = _dropped("traces")
    with rx.GrpcReceiver(accept_gzip=accept_gzip) as receiver:
        _configure("grpc", receiver.endpoint, otlp_compression="gzip", otlp_timeout=1000)
        names = _workload(_run(f"gzip_grpc_{accept_gzip}"))
        obskit.shutdown()
        if accept_gzip:
            assert {i.signal for i in receiver.store.items()} == {"traces", "metrics", "logs"}
            assert names["parse"] in _by_name(receiver.store.spans())
        else:
            assert receiver.store.items() == []
            assert _dropped("traces") - before >= 3


def test_uncompressed_grpc_reaches_a_receiver_refusing_gzip() -> None:
    with rx.GrpcReceiver(accept_gzip=False) as receiver:
        _configure("grpc", receiver.endpoint, otlp_compression="none")
        _workload("plain_grpc")
        obskit.shutdown()
        assert {i.signal for i in receiver.store.items()} == {"traces", "metrics", "logs"}


def test_environment_variables_route_each_signal_to_its_path(monkeypatch: pytest.MonkeyPatch) -> None:
    with rx.HttpReceiver() as receiver:
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
        monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp")
        monkeypatch.setenv("OTEL_LOGS_EXPORTER", "otlp")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"{receiver.endpoint}/base/")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{receiver.endpoint}/custom/traces")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "tenant=acme%20corp")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "5000")
        obskit.configure(service_name="otlp-env", **FAST)
        _workload("env_http")
        obskit.shutdown()
        paths = {i.signal: i.path for i in receiver.store.items()}
        assert paths == {"traces": "/custom/traces", "metrics": "/base/v1/metrics", "logs": "/base/v1/logs"}
        assert {i.headers["tenant"] for i in receiver.store.items()} == {"acme corp"}


def test_environment_variables_select_grpc(monkeypatch: pytest.MonkeyPatch) -> None:
    with rx.GrpcReceiver() as receiver:
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
        monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
        monkeypatch.setenv("OTEL_LOGS_EXPORTER", "otlp")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "tenant=acme")
        obskit.configure(service_name="otlp-env-grpc", **FAST)
        names = _workload("env_grpc")
        obskit.shutdown()
        assert {i.signal for i in receiver.store.items()} == {"traces", "logs"}
        assert names["ingest"] in _by_name(receiver.store.spans())
        assert {i.headers["tenant"] for i in receiver.store.items()} == {"acme"}


def test_jaeger_preset_sends_traces_over_otlp_grpc() -> None:
    with rx.GrpcReceiver() as receiver:
        obskit.configure(
            service_name="otlp-jaeger",
            traces_exporter="jaeger",
            metrics_exporter="none",
            logs_exporter="none",
            jaeger_endpoint=receiver.endpoint,
            **FAST,
        )
        names = _workload("jaeger")
        obskit.shutdown()
        assert {i.signal for i in receiver.store.items()} == {"traces"}
        spans = _by_name(receiver.store.spans())
        assert spans[names["parse"]].parent_span_id == spans[names["ingest"]].span_id
        assert {r["service.name"] for r in receiver.store.resources("traces")} == {"otlp-jaeger"}


# -- a peer that is down, refusing or silent ------------------------------------------------


@pytest.fixture
def failing_peer(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, Any]]:
    """(protocol, endpoint, receiver-or-None) for each way a peer can fail."""
    protocol, kind = request.param
    if kind == "unavailable":
        with rx.receiver(protocol, mode="unavailable") as receiver:
            yield protocol, receiver.endpoint, receiver
    elif kind == "closed":
        yield protocol, f"http://127.0.0.1:{rx.closed_port()}", None
    else:
        with rx.BlackHole() as hole:
            yield protocol, hole.endpoint, None


FAILURES = [(p, k) for p in PROTOCOLS for k in ("unavailable", "closed", "black_hole")]


@pytest.mark.parametrize("failing_peer", FAILURES, indirect=True, ids=lambda p: "-".join(p))
def test_a_failing_peer_costs_no_exception_and_a_bounded_shutdown(failing_peer: tuple[str, str, Any]) -> None:
    protocol, endpoint, receiver = failing_peer
    before = {s: _dropped(s) for s in ("traces", "metrics", "logs")}
    shutdown_timeout = 5.0
    _configure(
        protocol,
        endpoint,
        service_name="otlp-down",
        otlp_timeout=500,  # every export gives up within half a second, retries included
        metric_export_interval_ms=60_000,  # metrics go out once, on shutdown
        shutdown_timeout=shutdown_timeout,
    )
    started = time.monotonic()
    _workload(_run(f"down_{protocol}_{endpoint}"))
    assert time.monotonic() - started < 1.0  # nothing is exported on the caller's thread
    started = time.monotonic()
    obskit.shutdown()
    assert time.monotonic() - started < shutdown_timeout + 1.0
    if receiver is not None:
        assert receiver.store.refused >= 1
        assert receiver.store.items() == []
    after = {s: _dropped(s) for s in ("traces", "metrics", "logs")}
    assert after["traces"] - before["traces"] >= 3  # ingest, parse, fails
    assert after["metrics"] > before["metrics"]
    assert after["logs"] > before["logs"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_shutdown_abandons_an_export_stuck_on_a_black_hole_at_the_deadline(protocol: str) -> None:
    with rx.BlackHole() as hole:
        # Each export may wait 3 s for an answer that never comes; shutdown may take 1 s.
        _configure(protocol, hole.endpoint, otlp_timeout=3000, shutdown_timeout=1.0)
        _workload(_run(f"hole_{protocol}"))
        started = time.monotonic()
        obskit.shutdown()
        elapsed = time.monotonic() - started
    assert elapsed < 1.0 + 1.0
    assert not obskit.is_configured()
    # The abandoned flushes end on their own at the export timeout; let them, inside this test.
    deadline = time.monotonic() + 15
    while any(t.name.startswith("obskit-shutdown-") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "an abandoned flush outlived its export timeout"
        time.sleep(0.05)


EXIT_SCRIPT = textwrap.dedent(
    """
    import logging, sys, time, obskit
    from obskit import trace_operation

    obskit.configure(
        traces_exporter="otlp", metrics_exporter="otlp", logs_exporter="otlp", otlp_protocol=sys.argv[1],
        otlp_endpoint=sys.argv[2], otlp_timeout=30_000, shutdown_timeout=1.0, metric_export_interval_ms=100,
    )
    with trace_operation("before-exit"):
        logging.getLogger("app").warning("exiting without calling shutdown")
    print(time.monotonic(), file=sys.stderr, flush=True)  # the end of the program; the exit flush follows
    """
)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_process_exit_against_a_black_hole_is_bounded_by_the_shutdown_deadline(
    protocol: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OBSKIT_"))}
    with rx.BlackHole() as hole:
        result = subprocess.run(
            [sys.executable, "-c", EXIT_SCRIPT, protocol, hole.endpoint],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=tmp_path,
        )
        exited = time.monotonic()  # CLOCK_MONOTONIC: the same clock in both processes
    assert result.returncode == 0, result.stderr
    program_end = next(float(line) for line in result.stderr.splitlines() if line.replace(".", "").isdigit())
    # From the end of the program to the end of the process: the 1 s deadline plus interpreter
    # teardown, with a wide margin for a loaded machine (the export timeout, 30 s, is what fails).
    assert exited - program_end < 1.0 + 3.0


# -- fork ----------------------------------------------------------------------------------

FORK_SCRIPT = textwrap.dedent(
    """
    import logging, multiprocessing, os, sys, time
    import obskit
    from obskit import trace_operation

    protocol, endpoint = sys.argv[1], sys.argv[2]
    obskit.configure(
        service_name="otlp-fork", traces_exporter="otlp", metrics_exporter="otlp", logs_exporter="otlp",
        otlp_protocol=protocol, otlp_endpoint=endpoint, metric_export_interval_ms=100, shutdown_timeout=5,
    )
    counter = obskit.MetricsCollector().counter("fork_items", "items", labels=["who"])
    with trace_operation("parent-op"):
        logging.getLogger("app").warning("from parent")
    counter.inc(who="parent")
    time.sleep(0.6)  # the parent's exporters have connected (and pooled) before the fork

    def child():
        with trace_operation("child-op"):
            logging.getLogger("app").warning("from child")
        counter.inc(who="child")
        started = time.monotonic()
        obskit.shutdown()
        print("child-shutdown", time.monotonic() - started, flush=True)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(30)
    print("child-exit", process.exitcode, process.pid, flush=True)
    obskit.shutdown()
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    "first_metrics_delay",
    [0.0, 2.0],  # 2 s: the parent's first metrics export is still in flight when it forks
    ids=["idle", "export_in_flight"],
)
def test_a_forked_child_exports_its_own_spans_logs_and_metrics(
    protocol: str, first_metrics_delay: float, tmp_path: Path
) -> None:
    with rx.receiver(protocol, first_metrics_delay=first_metrics_delay) as receiver:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OBSKIT_"))}
        env["OTEL_BSP_SCHEDULE_DELAY"] = "100"  # the parent exports spans before it forks
        env["OTEL_BLRP_SCHEDULE_DELAY"] = "100"
        result = subprocess.run(
            [sys.executable, "-c", FORK_SCRIPT, protocol, receiver.endpoint],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        exit_line = next(line for line in result.stdout.splitlines() if line.startswith("child-exit"))
        _, code, child_pid = exit_line.split()
        assert code == "0", result.stderr
        shutdown_line = next(line for line in result.stdout.splitlines() if line.startswith("child-shutdown"))
        assert float(shutdown_line.split()[1]) < 2.5  # its flush never waited on a lock the parent held
        store = receiver.store
        assert {"parent-op", "child-op"} <= set(_by_name(store.spans()))
        bodies = [r.body.string_value for r in store.log_records()]
        assert "from child" in bodies
        assert "from parent" in bodies

        def peers(is_child: bool) -> set[str]:
            found = set()
            for item in store.items():
                if item.signal == "traces":
                    names = {
                        s.name
                        for rs in item.request.resource_spans
                        for ss in rs.scope_spans
                        for s in ss.spans
                    }
                    mine = "child-op" in names
                elif item.signal == "logs":
                    texts = {
                        r.body.string_value
                        for rl in item.request.resource_logs
                        for sl in rl.scope_logs
                        for r in sl.log_records
                    }
                    mine = "from child" in texts
                else:
                    pids = {
                        rx.attributes(rm.resource.attributes)["process.pid"]
                        for rm in item.request.resource_metrics
                    }
                    mine = int(child_pid) in pids
                if mine == is_child:
                    found.add(item.peer)
            return found

        child_peers, parent_peers = peers(True), peers(False)
        assert child_peers
        # The child never wrote on a connection its parent had opened (pooled HTTP, gRPC channel).
        assert not child_peers & parent_peers

        child_metrics = [
            item
            for item in store.items("metrics")
            for rm in item.request.resource_metrics
            if rx.attributes(rm.resource.attributes)["process.pid"] == int(child_pid)
        ]
        assert child_metrics
        last = {
            m.name: m
            for rm in child_metrics[-1].request.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        }
        assert _point(last["fork_items_total"], who="child").as_double == 1


# -- obskit.check_backends ---------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_check_backends_finds_nothing_wrong_with_a_live_receiver(protocol: str) -> None:
    with rx.receiver(protocol) as receiver, rx.GrpcReceiver() as jaeger:
        problems = obskit.check_backends(
            traces_exporter="otlp,jaeger",
            metrics_exporter="otlp",
            logs_exporter="otlp",
            otlp_protocol=protocol,
            otlp_endpoint=receiver.endpoint,
            jaeger_endpoint=jaeger.endpoint,
        )
        assert problems == []
        assert receiver.store.items() == []  # a TCP connect, nothing exported
    assert not obskit.is_configured()


def test_check_backends_names_the_setting_and_endpoint_nobody_listens_on() -> None:
    with rx.HttpReceiver() as receiver:
        closed = f"http://127.0.0.1:{rx.closed_port()}"
        problems = obskit.check_backends(
            traces_exporter="otlp",
            metrics_exporter="otlp",
            logs_exporter="otlp",
            otlp_endpoint=receiver.endpoint,
            otlp_logs_endpoint=f"{closed}/v1/logs",
        )
    (problem,) = problems
    assert problem.startswith("otlp_logs_endpoint: ")
    assert f"{closed}/v1/logs" in problem
    assert "logs (http/protobuf)" in problem


def test_check_backends_reports_each_unreachable_endpoint_once_with_its_uses() -> None:
    closed = f"127.0.0.1:{rx.closed_port()}"
    problems = obskit.check_backends(
        traces_exporter="otlp,jaeger",
        metrics_exporter="none",
        logs_exporter="otlp",
        otlp_protocol="grpc",
        otlp_endpoint=f"http://{closed}",
        jaeger_endpoint=f"http://{closed}",
    )
    assert len(problems) == 2
    otlp, jaeger = problems
    assert otlp.startswith("otlp_endpoint: ")
    assert "traces (grpc), logs (grpc)" in otlp
    assert jaeger.startswith("jaeger_endpoint: ")
    assert closed in otlp
    assert closed in jaeger


def test_check_backends_takes_the_settings_configure_returned() -> None:
    with rx.GrpcReceiver() as receiver:
        settings = obskit.configure(
            traces_exporter="otlp", otlp_protocol="grpc", otlp_endpoint=receiver.endpoint, **FAST
        )
        assert obskit.check_backends(settings) == []
        obskit.shutdown()


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text")


def _exported_only(name: str) -> logging.Logger:
    """Logger ``name`` with obskit's exporting handler alone, not propagating: pytest's capture
    handlers would keep the bad values raw for its report, which pytest-xdist cannot send."""
    from obskit._export.logexport import ObskitLoggingHandler

    logger = logging.getLogger(name)
    logger.handlers[:] = [h for h in logging.getLogger().handlers if isinstance(h, ObskitLoggingHandler)]
    logger.propagate = False
    return logger


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_one_bad_log_record_costs_no_other_record(protocol: str) -> None:
    bad_fields = {
        "wide": 2**70,
        "huge": 10**5000,
        "broken": _Unprintable(),
        "key\udc80": "value \udcff",
        "nested": {"client_secret": "s3cr3t-nested", "note": "bad \ud800"},
    }
    with rx.receiver(protocol) as receiver:
        _configure(protocol, receiver.endpoint, traces_exporter="none", metrics_exporter="none")
        logger = _exported_only("tests.bad_values")
        try:
            before = _dropped("logs")
            for i in range(50):
                logger.warning("good %d", i)
            try:
                raise ValueError("exception \udc80 token=abc123")
            except ValueError:
                logger.exception("bad \ud800 password=hunter2", extra=bad_fields)
            for i in range(50, 100):
                logger.warning("good %d", i)
            obskit.shutdown()
        finally:
            logger.handlers.clear()
            logger.propagate = True
        records = {r.body.string_value: r for r in receiver.store.log_records()}
        assert set(records) == {f"good {i}" for i in range(100)} | {"bad \\ud800 password=[REDACTED]"}
        assert _dropped("logs") == before
        fields = rx.attributes(records["bad \\ud800 password=[REDACTED]"].attributes)
        assert fields["wide"] == str(2**70)
        assert fields["huge"] == "[unrenderable int]"
        assert fields["broken"] == "[unrenderable _Unprintable]"
        assert fields["key\\udc80"] == "value \\udcff"
        assert json.loads(fields["nested"]) == {"client_secret": "[REDACTED]", "note": "bad \\ud800"}
        assert fields["exception.message"] == "exception \\udc80 token=[REDACTED]"
        assert "abc123" not in fields["exception.stacktrace"]


def test_an_http_client_s_request_line_is_exported_redacted() -> None:
    httpx = pytest.importorskip("httpx")
    with rx.HttpReceiver() as receiver:
        _configure("http/protobuf", receiver.endpoint, traces_exporter="none", metrics_exporter="none")
        port = receiver.endpoint.rsplit(":", 1)[1].strip("/")
        with httpx.Client() as client:
            client.get(f"http://user:pw-in-url@127.0.0.1:{port}/x?api_key=K9-query-key")
        obskit.shutdown()
        (record,) = [
            r
            for r in receiver.store.log_records()
            if rx.attributes(r.attributes).get("logger.name") == "httpx"
        ]
    message = record.body.string_value
    assert message.startswith("HTTP Request: GET http://")
    assert "api_key=[REDACTED]" in message
    assert "pw-in-url" not in message
    assert "K9-query-key" not in message
