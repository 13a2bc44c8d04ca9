"""configure(), shutdown(), is_configured(): validation, idempotence, flushing, globals, runtime metrics."""

from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

import obskit
import obskit.testing
from obskit import ConfigError
from obskit._core import state as _state
from obskit._recording import proxy as _proxy
from obskit._recording.loghandler import ObskitHandler
from obskit._runtime import lifecycle as _runtime

QUIET: dict[str, Any] = {"traces_exporter": "none", "metrics_exporter": "none", "logs_exporter": "none"}
RUNTIME_SAMPLES = {
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
    "process_threads",
    "python_gc_collections_total",
}
HOST_SAMPLES = {
    "system_cpu_utilization_ratio",
    "system_memory_total_bytes",
    "system_memory_available_bytes",
    "system_disk_total_bytes",
    "system_disk_free_bytes",
}


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def obskit_handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, ObskitHandler)]


def sample_names() -> set[str]:
    return {s.name for family in _state.STATE.store.registry.collect() for s in family.samples}


def sample_value(name: str, labels: dict[str, str] | None = None) -> float | None:
    return _state.STATE.store.registry.get_sample_value(name, labels or {})


@pytest.fixture
def keep_series_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """configure(series_cap=...) changes the long-lived default store; put the cap back afterwards."""
    store = _state.STATE.store
    monkeypatch.setattr(store, "series_cap", store.series_cap)


# -- validation before installation ---------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"traces_exporter": "zipkin"},
        {"metrics_exporter": "console,none"},
        {"sampling_ratio": 1.5},
        {"log_level": "LOUD"},
        {"metric_namespace": "9x"},
        {"series_cap": 0},
        {"runtime_metrics": "maybe"},
        {"servce_name": "typo"},
    ],
    ids=lambda d: next(iter(d)),
)
def test_bad_value_raises_before_anything_is_installed(bad: dict[str, Any]) -> None:
    root = logging.getLogger()
    level, handlers, state = root.level, list(root.handlers), _state.STATE
    threads = set(threading.enumerate())
    with pytest.raises(ConfigError):
        obskit.configure(**bad)
    assert not obskit.is_configured()
    assert obskit_handlers() == []
    assert root.handlers == handlers
    assert root.level == level
    assert _state.STATE is state
    assert _runtime._installed == []
    assert set(threading.enumerate()) <= threads


def test_bad_env_var_makes_configure_fail_before_installing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBSKIT_LOG_LEVEL", "LOUD")
    with pytest.raises(ConfigError, match=r"\$OBSKIT_LOG_LEVEL"):
        obskit.configure()
    assert not obskit.is_configured()
    assert obskit_handlers() == []


def test_app_argument_is_rejected_before_anything_is_installed() -> None:
    with pytest.raises(ConfigError, match="app"):
        obskit.configure(object(), **QUIET)
    assert not obskit.is_configured()
    assert _runtime._installed == []


def test_bad_value_on_reconfigure_keeps_the_previous_setup(capfd: pytest.CaptureFixture[str]) -> None:
    obskit.configure(service_name="first", traces_exporter="none", metrics_exporter="none")
    state = _state.STATE
    with pytest.raises(ConfigError):
        obskit.configure(log_level="LOUD")
    assert obskit.is_configured()
    assert _state.STATE is state
    assert len(obskit_handlers()) == 1
    logging.getLogger("reconfigure").warning("still logging")
    out = capfd.readouterr().out
    assert json.loads(out.strip().splitlines()[-1])["service"] == "first"


def test_missing_psutil_on_reconfigure_keeps_the_previous_setup(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    obskit.configure(service_name="kept", traces_exporter="none", metrics_exporter="none")
    state = _state.STATE
    monkeypatch.setitem(sys.modules, "psutil", None)
    with pytest.raises(ConfigError, match="obskit\\[host\\]"):
        obskit.configure(service_name="replacement", host_metrics=True, **QUIET)
    assert obskit.is_configured()
    assert _state.STATE is state
    assert len(obskit_handlers()) == 1
    logging.getLogger("reconfigure").warning("handler survived")
    out = capfd.readouterr().out
    assert json.loads(out.strip().splitlines()[-1])["service"] == "kept"


# -- idempotence, is_configured, shutdown ---------------------------------------------------------


def test_configure_three_times_installs_one_handler_and_exports_each_span_once(
    capfd: pytest.CaptureFixture[str],
) -> None:
    new_threads = []
    for _ in range(3):
        before = set(threading.enumerate())
        obskit.configure(service_name="idem", metrics_exporter="none")
        new_threads.append(sorted(t.name for t in set(threading.enumerate()) - before))
    assert len(obskit_handlers()) == 1
    alive = [t.name for t in threading.enumerate() if t.name.startswith("OtelBatchSpan")]
    assert len(alive) == 1, alive

    @obskit.trace_operation("idempotent-op")
    def op() -> int:
        return 42

    assert op() == 42
    with trace.get_tracer("idem.user").start_as_current_span("idempotent-user-span"):
        pass
    logging.getLogger("idem.test").warning("exactly one line")
    obskit.shutdown()
    out, err = capfd.readouterr()
    assert err.count("[obskit span] idempotent-op ") == 1
    assert err.count("[obskit span] idempotent-user-span ") == 1
    lines = [line for line in out.splitlines() if "exactly one line" in line]
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert (record["message"], record["service"], record["level"]) == ("exactly one line", "idem", "WARNING")
    assert new_threads[0] == new_threads[1] == new_threads[2]


def test_is_configured_follows_configure_and_shutdown() -> None:
    assert not obskit.is_configured()
    obskit.configure(**QUIET)
    assert obskit.is_configured()
    obskit.shutdown()
    assert not obskit.is_configured()
    obskit.configure(**QUIET)
    assert obskit.is_configured()


def test_shutdown_before_configure_and_twice_is_harmless() -> None:
    obskit.shutdown()
    obskit.configure(metrics_exporter="console", traces_exporter="console", logs_exporter="console")
    obskit.shutdown()
    obskit.shutdown()
    obskit.shutdown(timeout=0.01)
    assert not obskit.is_configured()
    assert obskit_handlers() == []
    assert _runtime._installed == []


def test_shutdown_flushes_console_spans_and_metrics_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    obskit.configure(service_name="flush", logs_exporter="none", metric_export_interval_ms=3_600_000)
    name = unique("flush_events")
    obskit.MetricsCollector().counter(name, labels=["kind"]).inc(3, kind="a")
    with obskit.trace_operation("flushed-span"):
        pass
    before = capfd.readouterr().err
    assert "flushed-span" not in before  # batched, not exported on the request path
    obskit.shutdown()
    err = capfd.readouterr().err
    assert "[obskit span] flushed-span " in err
    assert f'[obskit metric] {name}_total{{kind="a"}} 3' in err


def test_shutdown_removes_handler_and_restores_root_level() -> None:
    root = logging.getLogger()
    root.setLevel(logging.CRITICAL)
    obskit.configure(log_level="debug", traces_exporter="none", metrics_exporter="none")
    (handler,) = obskit_handlers()
    assert handler.level == logging.DEBUG
    assert root.level == logging.DEBUG
    obskit.shutdown()
    assert obskit_handlers() == []
    assert root.level == logging.CRITICAL


def test_log_format_console_installs_console_formatter() -> None:
    from obskit.logging import ConsoleFormatter

    obskit.configure(log_format="console", traces_exporter="none", metrics_exporter="none")
    (handler,) = obskit_handlers()
    assert isinstance(handler.formatter, ConsoleFormatter)


def test_logs_exporter_none_installs_no_handler() -> None:
    obskit.configure(**QUIET)
    assert obskit_handlers() == []


# -- tracing on/off and the global tracer provider ------------------------------------------------


def test_traces_exporter_none_means_no_tracer_and_no_spans(capfd: pytest.CaptureFixture[str]) -> None:
    obskit.configure(traces_exporter="none", metrics_exporter="none", logs_exporter="none")
    assert _state.STATE.tracer is None
    assert _state.STATE.tracer_provider is None
    seen = []

    @obskit.trace_operation("not-traced")
    def op(x: int) -> int:
        seen.append(trace.get_current_span().get_span_context().is_valid)
        return x * 2

    assert op(4) == 8
    with trace.get_tracer("user.none").start_as_current_span("user-not-traced") as span:
        assert not span.is_recording()
    assert seen == [False]
    obskit.shutdown()
    assert "[obskit span]" not in capfd.readouterr().err


def test_global_tracer_provider_is_obskit_proxy_after_configure() -> None:
    obskit.configure(metrics_exporter="none", logs_exporter="none")
    assert trace.get_tracer_provider() is _proxy._PROXY


def test_global_tracer_spans_land_in_capture_and_follow_reconfiguration(
    capfd: pytest.CaptureFixture[str],
) -> None:
    tracer = trace.get_tracer("user.module")  # obtained once, as a module would at import time
    obskit.configure(metrics_exporter="none", logs_exporter="none")

    with (
        obskit.testing.capture() as first,
        tracer.start_as_current_span("user-outer") as outer,
        obskit.trace_operation("obskit-inner"),
    ):
        pass
    assert [s.name for s in first.spans()] == ["obskit-inner", "user-outer"]
    inner = first.assert_span("obskit-inner")
    assert inner.parent is not None
    assert inner.parent.span_id == outer.get_span_context().span_id

    with tracer.start_as_current_span("after-capture"):
        pass
    obskit.configure(traces_exporter="none", metrics_exporter="none", logs_exporter="none")
    with tracer.start_as_current_span("while-disabled") as span:
        assert not span.is_recording()
    with obskit.testing.capture() as second, tracer.start_as_current_span("second-capture"):
        pass
    assert [s.name for s in second.spans()] == ["second-capture"]
    assert [s.name for s in first.spans()] == ["obskit-inner", "user-outer"]
    obskit.shutdown()
    err = capfd.readouterr().err
    assert "[obskit span] after-capture " in err
    assert "while-disabled" not in err
    assert "second-capture" not in err


def test_spans_carry_service_resource() -> None:
    obskit.configure(service_name="res-svc", service_version="9.9", environment="qa", **QUIET)
    with obskit.testing.capture() as cap, obskit.trace_operation("with-resource"):
        pass
    attributes = cap.assert_span("with-resource").resource.attributes
    assert attributes["service.name"] == "res-svc"
    assert attributes["service.version"] == "9.9"
    assert attributes["deployment.environment.name"] == "qa"
    assert attributes["process.pid"] == os.getpid()


# -- import has no side effects -------------------------------------------------------------------

IMPORT_PROBE = textwrap.dedent(
    """
    import atexit, os, threading, logging
    fds_before = sorted(os.listdir("/proc/self/fd"))
    callbacks_before = atexit._ncallbacks()
    import obskit
    from opentelemetry import trace
    fds_after = sorted(os.listdir("/proc/self/fd"))
    assert threading.active_count() == 1, threading.enumerate()
    assert logging.getLogger().handlers == [], logging.getLogger().handlers
    assert logging.getLogger("obskit").handlers == []
    assert trace._TRACER_PROVIDER is None, trace._TRACER_PROVIDER
    assert type(trace.get_tracer_provider()) is trace.ProxyTracerProvider, trace.get_tracer_provider()
    assert fds_after == fds_before, (fds_before, fds_after)
    assert atexit._ncallbacks() == callbacks_before
    assert not obskit.is_configured()
    print("import-ok")
    """
)


def clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OBSKIT_", "OTEL_", "PYTEST_", "APPLICATIONINSIGHTS_"))
    }


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_import_obskit_has_no_side_effects(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "import-ok"
    assert result.stderr == ""
    assert list(tmp_path.iterdir()) == []


# -- runtime and host metrics ---------------------------------------------------------------------


def test_runtime_metrics_are_exposed_in_the_store_registry() -> None:
    assert not RUNTIME_SAMPLES & sample_names()
    obskit.configure(runtime_metrics=True, **QUIET)
    names = sample_names()
    assert names >= RUNTIME_SAMPLES
    assert sample_value("process_resident_memory_bytes") > 0
    assert sample_value("process_open_fds") > 0
    assert sample_value("process_threads") >= 1
    assert sample_value("process_cpu_seconds_total") >= 0
    assert sample_value("python_gc_collections_total", {"generation": "0"}) is not None


def test_runtime_metrics_are_collected_at_read_time() -> None:
    obskit.configure(runtime_metrics=True, **QUIET)
    collections = sample_value("python_gc_collections_total", {"generation": "2"})
    threads = sample_value("process_threads")
    gc.collect()
    assert sample_value("python_gc_collections_total", {"generation": "2"}) >= collections + 1
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, name="read-time-probe")
    worker.start()
    try:
        assert sample_value("process_threads") == threads + 1
    finally:
        stop.set()
        worker.join()


def _new_thread_names(**settings: Any) -> list[str]:
    before = set(threading.enumerate())
    obskit.configure(**settings)
    names = sorted(t.name for t in set(threading.enumerate()) - before)
    obskit.shutdown()
    return names


def test_runtime_metrics_start_no_thread_of_their_own() -> None:
    common = {"traces_exporter": "none", "logs_exporter": "none", "metric_export_interval_ms": 3_600_000}
    without = _new_thread_names(runtime_metrics=False, metrics_exporter="console", **common)
    with_runtime = _new_thread_names(runtime_metrics=True, metrics_exporter="console", **common)
    assert with_runtime == without == ["OtelPeriodicExportingMetricReader"]
    assert _new_thread_names(runtime_metrics=True, metrics_exporter="none", **common) == []


def test_runtime_metrics_survive_reconfigure_and_go_away_on_shutdown() -> None:
    obskit.configure(runtime_metrics=True, **QUIET)
    obskit.configure(runtime_metrics=True, **QUIET)  # no duplicate-registration error
    assert sample_names() >= RUNTIME_SAMPLES
    obskit.configure(runtime_metrics=False, **QUIET)
    assert not RUNTIME_SAMPLES & sample_names()
    obskit.configure(runtime_metrics=True, **QUIET)
    obskit.shutdown()
    assert not RUNTIME_SAMPLES & sample_names()


def test_runtime_metrics_from_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBSKIT_RUNTIME_METRICS", "true")
    obskit.configure(**QUIET)
    assert sample_names() >= RUNTIME_SAMPLES


def test_host_metrics_read_through_psutil(monkeypatch: pytest.MonkeyPatch) -> None:
    psutil = pytest.importorskip("psutil")

    class FakeMemory:
        total = 123_456_789
        available = 23_456_789

    monkeypatch.setattr(psutil, "virtual_memory", lambda: FakeMemory())
    obskit.configure(host_metrics=True, **QUIET)
    assert sample_names() >= HOST_SAMPLES
    assert sample_value("system_memory_total_bytes") == 123_456_789
    assert sample_value("system_memory_available_bytes") == 23_456_789
    assert 0.0 <= sample_value("system_cpu_utilization_ratio") <= 1.0
    assert sample_value("system_disk_total_bytes") == psutil.disk_usage("/").total
    obskit.shutdown()
    assert not HOST_SAMPLES & sample_names()


def test_host_metrics_without_psutil_tells_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)
    with pytest.raises(ConfigError) as info:
        obskit.configure(host_metrics=True, **QUIET)
    assert 'pip install "obskit[host]"' in str(info.value)
    assert "host_metrics" in str(info.value)
    assert not obskit.is_configured()
    assert obskit_handlers() == []
    assert _runtime._installed == []


# -- settings reach the runtime -------------------------------------------------------------------


def test_series_cap_setting_reaches_the_store(keep_series_cap: None) -> None:
    obskit.configure(series_cap=17, **QUIET)
    assert _state.STATE.store.series_cap == 17
    with obskit.testing.capture() as cap:
        assert cap.store.series_cap == 17


def test_configured_log_fields_reach_log_lines(capfd: pytest.CaptureFixture[str]) -> None:
    obskit.configure(
        service_name="fields",
        service_version="1.0",
        environment="qa",
        traces_exporter="none",
        metrics_exporter="none",
    )
    logging.getLogger("fields").info("hello", extra={"order_id": 5})
    record = json.loads(capfd.readouterr().out.strip().splitlines()[-1])
    assert record["service"] == "fields"
    assert record["service_version"] == "1.0"
    assert record["environment"] == "qa"
    assert record["order_id"] == 5


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    before = {t for t in threading.enumerate() if t.name.startswith("Otel")}
    yield
    obskit.shutdown()
    leftover = {t for t in threading.enumerate() if t.name.startswith("Otel")} - before
    for thread in leftover:
        thread.join(timeout=5)
    assert not [t for t in leftover if t.is_alive()]


def test_pushgateway_without_prometheus_warns_once_at_configure(capfd: pytest.CaptureFixture[str]) -> None:
    obskit.configure(**QUIET, pushgateway_url="http://127.0.0.1:1")
    err = capfd.readouterr().err
    assert err.count("pushgateway_url is set but metrics_exporter is 'none'") == 1, err
    assert "obskit WARNING" in err


def test_pushgateway_from_env_without_prometheus_warns(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OBSKIT_PUSHGATEWAY_URL", "http://127.0.0.1:1")
    obskit.configure(traces_exporter="none", logs_exporter="none", metric_export_interval_ms=3_600_000)
    assert "pushgateway_url is set but metrics_exporter is 'console'" in capfd.readouterr().err


def test_pushgateway_with_prometheus_does_not_warn(capfd: pytest.CaptureFixture[str]) -> None:
    obskit.configure(
        **{**QUIET, "metrics_exporter": "prometheus"},
        prometheus_port=0,
        pushgateway_url="http://127.0.0.1:1",
        push_on="job",
    )
    assert "pushgateway_url is set" not in capfd.readouterr().err


# -- settings no chosen backend uses: warned about, never fatal ----------------------------------


def test_an_invalid_otlp_endpoint_does_not_stop_a_console_only_configure(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url token=sk-live-5ecret")
    settings = obskit.configure()  # console exporters: nothing uses the endpoint
    assert obskit.is_configured()
    assert settings.otlp_endpoint is None
    err = capfd.readouterr().err
    (warning,) = [line for line in err.splitlines() if "OTEL_EXPORTER_OTLP_ENDPOINT" in line]
    assert warning.startswith(
        "obskit WARNING: obskit: otlp_endpoint (from $OTEL_EXPORTER_OTLP_ENDPOINT): invalid"
    )
    assert "ignored, since only an otlp exporter" in warning
    assert "not a url" not in err
    assert "sk-live-5ecret" not in err
    obskit.shutdown()
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_ENDPOINT"):
        obskit.configure(traces_exporter="otlp")
    assert not obskit.is_configured()


@pytest.mark.parametrize(
    ("variable", "value", "backend"),
    [
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "authorization=Bearer sk-live-5ecret", "traces_exporter=otlp"),
        ("OBSKIT_PUSHGATEWAY_JOB", "nightly", "metrics_exporter=prometheus"),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "9999", "metrics_exporter=prometheus"),
        ("OBSKIT_JAEGER_ENDPOINT", "http://jaeger:4317", "traces_exporter=jaeger"),
        ("APPLICATIONINSIGHTS_CONNECTION_STRING", "InstrumentationKey=sk-live-5ecret", "an azure exporter"),
    ],
)
def test_a_backend_setting_no_chosen_backend_uses_is_warned_about_once_by_name(
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    backend: str,
) -> None:
    monkeypatch.setenv(variable, value)
    obskit.configure()
    err = capfd.readouterr().err
    (warning,) = [line for line in err.splitlines() if variable in line]
    assert f"is set but ignored: only {backend}" in warning
    assert warning.endswith("uses it, and none is chosen")
    assert value not in err
