"""obskit.testing.capture() and the obskit_capture pytest fixture."""

from __future__ import annotations

import importlib.metadata
import logging
import math
import operator
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import obskit
from obskit import MetricsCollector
from obskit._core import state as _state
from obskit.testing import Buckets, Capture, capture

QUIET: dict[str, Any] = {"traces_exporter": "none", "metrics_exporter": "none", "logs_exporter": "none"}
metrics = MetricsCollector()


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


# -- isolation ------------------------------------------------------------------------------------


def test_values_recorded_before_capture_are_not_seen() -> None:
    name = unique("before")
    handle = metrics.counter(name, labels=["k"])
    handle.inc(5, k="a")
    with capture() as cap:
        assert cap.counter_value(name, k="a") == 0
        handle.inc(2, k="a")
        cap.assert_counter(name, 2, k="a")


def test_previous_state_store_and_logging_are_back_after_capture() -> None:
    root = logging.getLogger()
    state, handlers, level = _state.STATE, list(root.handlers), root.level
    name = unique("after")
    handle = metrics.counter(name)
    with capture() as cap:
        assert _state.STATE is not state
        assert _state.STATE.store is cap.store
        assert cap.store is not state.store
        handle.inc(3)
    assert _state.STATE is state
    assert root.handlers == handlers
    assert root.level == level
    handle.inc()
    assert state.store.registry.get_sample_value(f"{name}_total") == 1
    assert cap.counter_value(name) == 3


def test_capture_restores_state_when_the_block_raises() -> None:
    state = _state.STATE
    handlers = list(logging.getLogger().handlers)
    with pytest.raises(ZeroDivisionError), capture():
        1 / 0  # noqa: B018
    assert _state.STATE is state
    assert logging.getLogger().handlers == handlers


def test_capture_keeps_configured_state_and_restores_it() -> None:
    obskit.configure(service_name="cap-configured", **QUIET)
    state = _state.STATE
    with capture() as cap:
        assert obskit.is_configured()
        assert _state.STATE.settings.service_name == "cap-configured"
        logging.getLogger("cap").warning("inside")
    assert _state.STATE is state
    assert cap.logs(message="inside")[0]["service"] == "cap-configured"


def test_capture_records_spans_even_when_unconfigured() -> None:
    assert _state.STATE.tracer is None
    with capture() as cap, obskit.trace_operation("unconfigured-span"):
        pass
    assert _state.STATE.tracer is None
    cap.assert_span("unconfigured-span", status="OK")


def test_nested_capture_restores_the_outer_one() -> None:
    state = _state.STATE
    name = unique("nested")
    handle = metrics.counter(name)
    with capture() as outer:
        handle.inc()
        outer_state = _state.STATE
        with obskit.trace_operation("outer-1"):
            pass
        with capture() as inner:
            handle.inc(10)
            with obskit.trace_operation("inner"):
                pass
        assert _state.STATE is outer_state
        handle.inc()
        with obskit.trace_operation("outer-2"):
            pass
    assert _state.STATE is state
    inner.assert_counter(name, 10)
    outer.assert_counter(name, 2)
    assert [s.name for s in inner.spans()] == ["inner"]
    assert [s.name for s in outer.spans()] == ["outer-1", "outer-2"]


def test_obskit_capture_fixture_is_a_capture(obskit_capture: Capture) -> None:
    assert isinstance(obskit_capture, Capture)
    assert _state.STATE.store is obskit_capture.store
    metrics.counter(unique("fixture")).inc()


# -- metric assertions ----------------------------------------------------------------------------


def test_assert_counter_compares_the_increase_with_or_without_total(obskit_capture: Capture) -> None:
    name = unique("jobs")
    handle = metrics.counter(name, labels=["status"])
    handle.inc(status="ok")
    handle.inc(4, status="ok")
    obskit_capture.assert_counter(name, 5, status="ok")
    obskit_capture.assert_counter(f"{name}_total", 5, status="ok")


def test_partial_label_matching_sums_series(obskit_capture: Capture) -> None:
    name = unique("http")
    handle = metrics.counter(name, labels=["route", "status"])
    handle.inc(2, route="/a", status="200")
    handle.inc(1, route="/a", status="500")
    handle.inc(4, route="/b", status="200")
    cap = obskit_capture
    cap.assert_counter(name, 3, route="/a")
    cap.assert_counter(name, 6, status="200")
    cap.assert_counter(name, 6, status=200)  # label values compare as strings
    cap.assert_counter(name, 7)
    cap.assert_counter(name, 0, route="/missing")
    assert cap.counter_value(name, route="/a", status="500") == 1


def test_assert_counter_failure_message(obskit_capture: Capture) -> None:
    name = unique("fails")
    metrics.counter(name, labels=["k"]).inc(2, k="v")
    with pytest.raises(AssertionError) as info:
        obskit_capture.assert_counter(name, 3, k="v")
    message = str(info.value)
    assert name in message
    assert "'k': 'v'" in message
    assert "rose by 2.0, expected 3.0" in message


def test_assert_counter_failure_lists_the_series_that_exist(obskit_capture: Capture) -> None:
    name = unique("listed")
    handle = metrics.counter(name, labels=["route", "status"])
    handle.inc(2, route="/a", status="200")
    handle.inc(route="/b", status="500")
    with pytest.raises(AssertionError) as info:
        obskit_capture.assert_counter(name, 1, route="/c")
    message = str(info.value)
    assert "rose by 0.0, expected 1.0" in message  # a float whether or not a series matched
    assert f"series of {name}_total: [" in message
    assert "{'route': '/a', 'status': '200'} = 2.0" in message
    assert "{'route': '/b', 'status': '500'} = 1.0" in message


def test_assert_counter_failure_lists_at_most_ten_series(obskit_capture: Capture) -> None:
    name = unique("many")
    handle = metrics.counter(name, labels=["n"])
    for n in range(25):
        handle.inc(n=str(n))
    with pytest.raises(AssertionError) as info:
        obskit_capture.assert_counter(name, 1, n="absent")
    message = str(info.value)
    assert message.count(" = 1.0") == 10
    assert "... and 15 more]" in message


def test_assert_counter_on_a_counter_without_series_lists_the_counters(obskit_capture: Capture) -> None:
    other = unique("other")
    metrics.counter(other).inc()
    missing = unique("unrecorded")
    metrics.counter(missing, labels=["kind"])  # declared, never bound nor incremented
    with pytest.raises(AssertionError) as info:
        obskit_capture.assert_counter(missing, 1, kind="a")
    message = str(info.value)
    assert "rose by 0.0, expected 1.0" in message
    assert f"no series of {missing}_total in this capture" in message
    assert f"{other}_total" in message
    unlabelled = unique("unlabelled")
    metrics.counter(unlabelled)  # declared, never incremented: its one series is at 0
    with pytest.raises(AssertionError) as info:
        obskit_capture.assert_counter(unlabelled, 1)
    assert f"rose by 0.0, expected 1.0; series of {unlabelled}_total: [{{}} = 0.0]" in str(info.value)
    typo = unique("typo")
    with pytest.raises(AssertionError, match=f"no counter '{typo}_total' was ever declared; counters: "):
        obskit_capture.assert_counter(typo, 1)


def test_assert_span_failure_lists_at_most_ten_spans(obskit_capture: Capture) -> None:
    for n in range(12):
        with obskit.trace_operation(f"span-{n}"):
            pass
    with pytest.raises(AssertionError) as info:
        obskit_capture.assert_span("absent")
    message = str(info.value)
    assert "'span-9'" in message
    assert "'span-10'" not in message
    assert "... and 2 more]" in message


def test_values_read_are_floats_even_when_nothing_matches(obskit_capture: Capture) -> None:
    counter, histogram, gauge = unique("empty_c"), unique("empty_hist"), unique("empty_g")
    metrics.counter(counter, labels=["a"])
    metrics.histogram(histogram, labels=["a"], buckets=[1])
    metrics.gauge(gauge, labels=["a"])
    for value in (
        obskit_capture.counter_value(counter, a="x"),
        obskit_capture.histogram_count(histogram),
        obskit_capture.histogram_sum(histogram, a="x"),
        obskit_capture.gauge_value(gauge),
    ):
        assert value == 0.0
        assert isinstance(value, float)


def test_reading_a_metric_never_declared_says_so(obskit_capture: Capture) -> None:
    declared = unique("declared_hist")
    metrics.histogram(declared, buckets=[1])
    typo = declared.replace("declared", "declraed")
    readers = {
        "histogram": (
            obskit_capture.histogram_count,
            obskit_capture.histogram_sum,
            obskit_capture.histogram_buckets,
        ),
        "counter": (obskit_capture.counter_value,),
        "gauge": (obskit_capture.gauge_value,),
    }
    for kind, functions in readers.items():
        for read in functions:
            with pytest.raises(
                AssertionError, match=f"no {kind} '{typo}(_total)?' was ever declared"
            ) as raised:
                read(typo)
            assert f"{kind}s: [" in str(raised.value)  # the declared ones are listed
    with pytest.raises(AssertionError, match=r"was ever declared \(declared as a histogram\)"):
        obskit_capture.gauge_value(declared)


def test_histogram_count_sum_and_buckets(obskit_capture: Capture) -> None:
    name = unique("hist")
    handle = metrics.histogram(name, labels=["op", "db"], buckets=[1, 2])
    handle.observe(0.5, op="read", db="a")
    handle.observe(1.5, op="read", db="b")
    handle.observe(3, op="write", db="a")
    cap = obskit_capture
    assert cap.histogram_count(name) == 3
    assert cap.histogram_count(name, op="read") == 2
    assert cap.histogram_count(name, db="a") == 2
    assert cap.histogram_count(name, op="nothing") == 0
    assert cap.histogram_sum(name, op="read") == 2.0
    assert cap.histogram_buckets(name, op="read") == {1: 1, 2: 2, math.inf: 2}
    assert cap.histogram_buckets(name, op="read") == {"1.0": 1.0, "2.0": 2.0, "+Inf": 2.0}  # as before
    assert cap.histogram_buckets(name, op="nothing") == {}


def test_histogram_buckets_are_keyed_as_declared(obskit_capture: Capture) -> None:
    name = unique("sizes")
    handle = metrics.histogram(name, buckets=[0.5, 32, 64])
    handle.observe(0.25)
    handle.observe(40)
    buckets = obskit_capture.histogram_buckets(name)
    assert isinstance(buckets, Buckets)
    assert list(buckets) == [0.5, 32.0, 64.0, math.inf]  # ascending, +Inf last
    assert (buckets[0.5], buckets[32], buckets[64], buckets[math.inf]) == (1, 1, 2, 2)
    assert buckets[float("inf")] == 2


@pytest.mark.parametrize("key", [64, 64.0, "64", "64.0", "6.4e1"])
def test_histogram_buckets_accept_a_bound_as_number_or_text(obskit_capture: Capture, key: object) -> None:
    name = unique("bound")
    metrics.histogram(name, buckets=[32, 64]).observe(40)
    buckets = obskit_capture.histogram_buckets(name)
    assert buckets[key] == 1
    assert key in buckets
    assert buckets.get(key) == 1
    assert buckets["+Inf"] == buckets["inf"] == 1


@pytest.mark.parametrize("key", [63, "sixty-four", None, True, (64,)])
def test_histogram_buckets_miss_on_other_keys(obskit_capture: Capture, key: object) -> None:
    name = unique("miss")
    metrics.histogram(name, buckets=[32, 64]).observe(40)
    buckets = obskit_capture.histogram_buckets(name)
    with pytest.raises(KeyError):
        buckets[key]
    assert key not in buckets
    assert buckets.get(key) is None
    assert buckets.get(key, 0.0) == 0.0


def test_histogram_buckets_compare_with_any_spelling_of_the_bounds(obskit_capture: Capture) -> None:
    name = unique("compare")
    metrics.histogram(name, buckets=[1]).observe(0.5)
    buckets = obskit_capture.histogram_buckets(name)
    assert buckets == {1.0: 1.0, math.inf: 1.0}
    assert buckets == {"1": 1, "+Inf": 1}
    assert dict.__eq__({"1": 1, "+Inf": 1}, buckets) is False  # a plain dict alone compares keys as they are
    assert {"1": 1, "+Inf": 1}.__eq__(buckets) is False
    assert operator.eq({"1": 1, "+Inf": 1}, buckets)  # but == asks Buckets first (a subclass)
    assert buckets != {"1": 1}
    assert buckets != {"one": 1, "+Inf": 1}
    assert buckets != [(1.0, 1.0)]
    assert operator.ne(buckets, {1: 1, "+Inf": 1}) is False
    with pytest.raises(TypeError):
        hash(buckets)


def test_default_job_buckets_are_floats(obskit_capture: Capture) -> None:
    job = unique("job")

    @obskit.track_job(job)
    def work() -> None:
        return None

    work()
    buckets = obskit_capture.histogram_buckets("obskit_job_duration_seconds", job_name=job)
    assert buckets[math.inf] == 1
    assert all(isinstance(bound, float) for bound in buckets)
    assert buckets[1] == buckets["1.0"]


def test_gauge_value(obskit_capture: Capture) -> None:
    name = unique("gauge")
    handle = metrics.gauge(name, labels=["pool"])
    handle.set(3, pool="a")
    handle.set(4, pool="b")
    assert obskit_capture.gauge_value(name, pool="a") == 3
    assert obskit_capture.gauge_value(name) == 7
    assert obskit_capture.gauge_value(name, pool="none") == 0


def test_metric_names_lists_recorded_families(obskit_capture: Capture) -> None:
    counter, histogram, gauge, idle = unique("c"), unique("h"), unique("g"), unique("idle")
    metrics.counter(counter).inc()
    metrics.histogram(histogram).observe(1)
    metrics.gauge(gauge).set(1)
    metrics.counter(idle, labels=["x"])
    names = obskit_capture.metric_names()
    assert {f"{counter}_total", histogram, gauge} <= names
    assert counter not in names
    assert f"{idle}_total" not in names
    assert "obskit_telemetry_overflow_total" not in names


def test_metric_names_is_empty_in_a_fresh_capture() -> None:
    with capture() as cap:
        assert cap.metric_names() == set()


# -- span assertions ------------------------------------------------------------------------------


def test_spans_filters_by_name_oldest_first(obskit_capture: Capture) -> None:
    for index in range(3):
        with obskit.trace_operation("repeated", attributes={"index": index}):
            pass
    with obskit.trace_operation("other"):
        pass
    assert [s.attributes["index"] for s in obskit_capture.spans(name="repeated")] == [0, 1, 2]
    assert [s.name for s in obskit_capture.spans()] == ["repeated", "repeated", "repeated", "other"]
    assert obskit_capture.spans("absent") == []


def test_assert_span_matches_status_and_attributes(obskit_capture: Capture) -> None:
    @obskit.trace_operation("charge", attributes={"provider": "stripe", "attempt": 1})
    def charge(fail: bool) -> str:
        if fail:
            raise RuntimeError("card declined")
        return "ok"

    assert charge(False) == "ok"
    with pytest.raises(RuntimeError):
        charge(True)
    failed = obskit_capture.assert_span("charge", status="ERROR", provider="stripe")
    assert failed.status.status_code == StatusCode.ERROR
    assert "card declined" in (failed.status.description or "")
    ok = obskit_capture.assert_span("charge", status="ok", attempt=1)
    assert ok.status.status_code == StatusCode.OK
    assert obskit_capture.assert_span("charge", status=StatusCode.ERROR) is failed
    assert obskit_capture.assert_span("charge") is ok  # first match, oldest first


def test_assert_span_failure_names_what_was_seen(obskit_capture: Capture) -> None:
    with obskit.trace_operation("present", attributes={"team": "a"}):
        pass
    with pytest.raises(AssertionError) as info:
        obskit_capture.assert_span("present", status="ERROR")
    assert "'present'" in str(info.value)
    assert "OK" in str(info.value)
    with pytest.raises(AssertionError, match="team"):
        obskit_capture.assert_span("present", team="b")
    with pytest.raises(AssertionError, match="absent"):
        obskit_capture.assert_span("absent")


def test_global_tracer_spans_are_captured(obskit_capture: Capture) -> None:
    with trace.get_tracer("user").start_as_current_span("plain-otel", attributes={"x": 1}):
        pass
    obskit_capture.assert_span("plain-otel", x=1)


# -- logs -----------------------------------------------------------------------------------------


def test_logs_filtered_by_level_and_fields(obskit_capture: Capture) -> None:
    log = logging.getLogger(unique("app"))
    log.debug("debugging", extra={"user": "bob"})
    log.info("hello", extra={"user": "bob"})
    log.warning("careful", extra={"user": "bob", "attempt": 2})
    log.warning("other user", extra={"user": "alice"})
    cap = obskit_capture
    assert [r["message"] for r in cap.logs()] == ["debugging", "hello", "careful", "other user"]
    assert [r["message"] for r in cap.logs(level="warning")] == ["careful", "other user"]
    assert [r["message"] for r in cap.logs(level="WARNING", user="bob")] == ["careful"]
    assert [r["message"] for r in cap.logs(user="bob", attempt=2)] == ["careful"]
    assert cap.logs(level="error") == []
    assert cap.logs(level="debug")[0]["logger"] == log.name


def test_logs_inside_spans_carry_trace_ids(obskit_capture: Capture) -> None:
    with obskit.trace_operation("logged") as span:
        logging.getLogger("traced").info("in span")
    (record,) = obskit_capture.logs(message="in span")
    assert record["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert record["span_id"] == format(span.get_span_context().span_id, "016x")


def test_structlog_logger_events_are_captured(obskit_capture: Capture) -> None:
    obskit.get_logger("structured").info("order placed", order_id=7)
    (record,) = obskit_capture.logs(order_id=7)
    assert record["message"] == "order placed"
    assert record["level"] == "INFO"


def test_logs_before_capture_are_not_seen() -> None:
    logging.getLogger("early").warning("too early")
    with capture() as cap:
        pass
    logging.getLogger("late").warning("too late")
    assert cap.logs() == []


# -- the pytest plugin ----------------------------------------------------------------------------


def test_pytest11_entry_point_is_registered() -> None:
    entry_points = importlib.metadata.entry_points(group="pytest11")
    ours = [ep for ep in entry_points if ep.name == "obskit"]
    assert len(ours) == 1
    assert ours[0].value == "obskit.pytest_plugin"
    assert hasattr(ours[0].load(), "obskit_capture")


PLUGIN_TEST = textwrap.dedent(
    """
    import logging

    import obskit
    from obskit import MetricsCollector

    requests = MetricsCollector().counter("plugin_probe_requests", labels=["route"])


    def test_first(obskit_capture):
        requests.inc(route="/a")
        with obskit.trace_operation("probe-span", attributes={"n": 1}):
            logging.getLogger("probe").warning("probe log", extra={"k": "v"})
        obskit_capture.assert_counter("plugin_probe_requests_total", 1, route="/a")
        obskit_capture.assert_span("probe-span", status="OK", n=1)
        assert obskit_capture.logs(level="warning", k="v")


    def test_second_is_isolated(obskit_capture):
        assert obskit_capture.counter_value("plugin_probe_requests_total") == 0
        assert obskit_capture.spans() == []
        requests.inc(route="/b")
        obskit_capture.assert_counter("plugin_probe_requests_total", 1)


    def test_third_sees_only_its_own(obskit_capture):
        requests.inc(route="/c")
        obskit_capture.assert_counter("plugin_probe_requests_total", 1, route="/c")
    """
)


def test_fixture_works_in_a_plain_pytest_run(tmp_path: Path) -> None:
    (tmp_path / "test_probe.py").write_text(PLUGIN_TEST)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "OBSKIT_", "OTEL_"))}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            "-q",
            "test_probe.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
