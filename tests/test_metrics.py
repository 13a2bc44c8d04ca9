"""MetricsCollector and metric handles: declaration, recording, labels, series cap, helper families."""

from __future__ import annotations

import logging
import sys
import time
import uuid
from typing import Any

import pytest

import obskit
from obskit import Counter, Gauge, Histogram, MetricDeclarationError, MetricsCollector
from obskit._core import state as _state
from obskit._recording.store import DEFAULT_BUCKETS, OVERFLOW_LABEL_VALUE
from obskit.testing import Capture, capture

QUIET: dict[str, Any] = {"traces_exporter": "none", "metrics_exporter": "none", "logs_exporter": "none"}
metrics = MetricsCollector()


def unique(prefix: str = "m") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def samples(cap: Capture, sample_name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in cap.store.registry.collect()
        for s in family.samples
        if s.name == sample_name
    }


def global_value(name: str, **labels: str) -> float | None:
    return _state.STATE.store.registry.get_sample_value(name, labels)


@pytest.fixture
def keep_series_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """configure(series_cap=...) changes the long-lived default store; put the cap back afterwards."""
    store = _state.STATE.store
    monkeypatch.setattr(store, "series_cap", store.series_cap)


# Declared at import time, before any configure(), as user modules do.
IMPORT_TIME_NAME = unique("import_time_events")
IMPORT_TIME_COUNTER = metrics.counter(IMPORT_TIME_NAME, "Declared at import.", labels=["kind"])
IMPORT_TIME_HISTOGRAM = metrics.histogram(IMPORT_TIME_NAME + "_seconds", labels=["kind"], buckets=[1, 2])
IMPORT_TIME_GAUGE = metrics.gauge(IMPORT_TIME_NAME + "_level", labels=["kind"])
IMPORT_TIME_BOUND = IMPORT_TIME_COUNTER.labels(kind="bound")


# -- declaration ----------------------------------------------------------------------------------


def test_counter_declared_twice_returns_same_handle() -> None:
    name = unique("c")
    first = metrics.counter(name, "help", labels=["a"])
    assert isinstance(first, Counter)
    assert metrics.counter(name, "other help", labels=["a"]) is first
    assert MetricsCollector().counter(name, labels=("a",)) is first


def test_histogram_declared_twice_returns_same_handle() -> None:
    name = unique("h")
    first = metrics.histogram(name, labels=["a"], buckets=[0.5, 1])
    assert isinstance(first, Histogram)
    assert metrics.histogram(name, labels=["a"], buckets=[0.5, 1.0]) is first
    assert metrics.histogram(name, labels=["a"]) is first  # no buckets given: no conflict


def test_gauge_declared_twice_returns_same_handle() -> None:
    name = unique("g")
    first = metrics.gauge(name, labels=["a", "b"])
    assert isinstance(first, Gauge)
    assert metrics.gauge(name, labels=["a", "b"]) is first


def test_counter_with_and_without_total_suffix_is_one_metric(obskit_capture: Capture) -> None:
    name = unique("reqs")
    plain = metrics.counter(name)
    assert metrics.counter(f"{name}_total") is plain
    assert plain.name == f"{name}_total"
    plain.inc()
    metrics.counter(f"{name}_total").inc(2)
    assert samples(obskit_capture, f"{name}_total") == {(): 3.0}
    assert not samples(obskit_capture, f"{name}_total_total")


def test_label_names_given_as_one_string_are_one_label(obskit_capture: Capture) -> None:
    name = unique("single_label")
    handle = metrics.counter(name, labels="route")
    assert handle.label_names == ("route",)
    handle.inc(route="/x")
    obskit_capture.assert_counter(name, 1, route="/x")


def test_namespace_prefixes_declared_names(obskit_capture: Capture) -> None:
    suffix = unique("events")
    handle = MetricsCollector(namespace="svc").counter(suffix)
    assert handle.name == f"svc_{suffix}_total"
    handle.inc()
    obskit_capture.assert_counter(f"svc_{suffix}_total", 1)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("counter", {}), ("gauge", {})),
        (("gauge", {}), ("histogram", {})),
        (("histogram", {}), ("counter", {})),
        (("counter", {"labels": ["a"]}), ("counter", {"labels": ["b"]})),
        (("counter", {"labels": ["a", "b"]}), ("counter", {"labels": ["b", "a"]})),
        (("gauge", {"labels": ["a"]}), ("gauge", {})),
        (("histogram", {"buckets": [1, 2]}), ("histogram", {"buckets": [1, 3]})),
        (("histogram", {}), ("histogram", {"buckets": [1, 2]})),
    ],
    ids=lambda pair: f"{pair[0]}{pair[1]}",
)
def test_conflicting_redeclaration_raises(
    first: tuple[str, dict[str, Any]], second: tuple[str, dict[str, Any]]
) -> None:
    name = unique("conflict")
    kind, kwargs = first
    handle = getattr(metrics, kind)(name, **kwargs)
    kind2, kwargs2 = second
    with pytest.raises(MetricDeclarationError, match=name):
        getattr(metrics, kind2)(name, **kwargs2)
    assert getattr(metrics, kind)(name, **kwargs) is handle  # the original declaration stands


@pytest.mark.parametrize("name", ["9lives", "has-dash", "has space", "", "__reserved", "dot.ted"])
def test_invalid_metric_names_rejected(name: str) -> None:
    with pytest.raises(MetricDeclarationError):
        metrics.gauge(name)


@pytest.mark.parametrize(
    ("kind", "labels"),
    [
        ("counter", ["9a"]),
        ("counter", ["a-b"]),
        ("gauge", ["__internal"]),
        ("gauge", ["ok", "ok"]),
        ("histogram", ["le"]),
        ("counter", ["with space"]),
    ],
)
def test_invalid_label_names_rejected(kind: str, labels: list[str]) -> None:
    with pytest.raises(MetricDeclarationError):
        getattr(metrics, kind)(unique("bad_labels"), labels=labels)


@pytest.mark.parametrize("buckets", [[1, 0.5], [1, 1], []])
def test_invalid_buckets_rejected(buckets: list[float]) -> None:
    with pytest.raises(MetricDeclarationError):
        metrics.histogram(unique("bad_buckets"), buckets=buckets)


def test_failed_declaration_does_not_reserve_the_name(obskit_capture: Capture) -> None:
    name = unique("retry")
    with pytest.raises(MetricDeclarationError):
        metrics.counter(name, labels=["bad-label"])
    handle = metrics.counter(name, labels=["good"])
    handle.inc(good="yes")
    obskit_capture.assert_counter(name, 1, good="yes")


def test_explicit_buckets_are_honoured(obskit_capture: Capture) -> None:
    name = unique("latency") + "_seconds"
    handle = metrics.histogram(name, labels=["op"], buckets=[0.1, 0.5, 2])
    for value in (0.05, 0.3, 0.3, 1.0, 10.0):
        handle.observe(value, op="read")
    buckets = obskit_capture.histogram_buckets(name, op="read")
    assert sorted(float(le) for le in buckets) == [0.1, 0.5, 2.0, float("inf")]
    assert {float(le): v for le, v in buckets.items()} == {0.1: 1, 0.5: 3, 2.0: 4, float("inf"): 5}


def test_trailing_inf_bucket_is_implicit(obskit_capture: Capture) -> None:
    name = unique("with_inf")
    handle = metrics.histogram(name, buckets=[1, 5, float("inf")])
    assert metrics.histogram(name, buckets=[1, 5]) is handle
    handle.observe(3)
    assert sorted(float(le) for le in obskit_capture.histogram_buckets(name)) == [1.0, 5.0, float("inf")]


def test_default_buckets_when_none_given(obskit_capture: Capture) -> None:
    name = unique("default_buckets")
    metrics.histogram(name).observe(0.2)
    bounds = sorted(float(le) for le in obskit_capture.histogram_buckets(name))
    assert bounds == [*DEFAULT_BUCKETS, float("inf")]


# -- recording ------------------------------------------------------------------------------------


def test_counter_inc_adds_amounts_per_series(obskit_capture: Capture) -> None:
    name = unique("orders")
    handle = metrics.counter(name, labels=["region"])
    handle.inc(region="eu")
    handle.inc(2.5, region="eu")
    handle.inc(region="us")
    assert samples(obskit_capture, f"{name}_total") == {(("region", "eu"),): 3.5, (("region", "us"),): 1.0}


def test_histogram_observe_counts_and_sums(obskit_capture: Capture) -> None:
    name = unique("size_bytes")
    handle = metrics.histogram(name, labels=["kind"], buckets=[10, 100])
    for value in (5, 50, 500):
        handle.observe(value, kind="a")
    assert obskit_capture.histogram_count(name, kind="a") == 3
    assert obskit_capture.histogram_sum(name, kind="a") == 555


def test_gauge_set_inc_dec(obskit_capture: Capture) -> None:
    name = unique("queue_depth")
    handle = metrics.gauge(name, labels=["queue"])
    handle.set(10, queue="q")
    handle.inc(queue="q")
    handle.inc(4, queue="q")
    handle.dec(queue="q")
    handle.dec(2, queue="q")
    assert obskit_capture.gauge_value(name, queue="q") == 12


def test_bound_children_record_into_their_series(obskit_capture: Capture) -> None:
    counter = metrics.counter(unique("bound_c"), labels=["a"])
    histogram = metrics.histogram(unique("bound_hist"), labels=["a"], buckets=[1])
    gauge = metrics.gauge(unique("bound_g"), labels=["a"])
    c, h, g = counter.labels(a="x"), histogram.labels(a="x"), gauge.labels(a="x")
    c.inc()
    c.inc(2)
    h.observe(0.5)
    h.observe(3)
    g.set(7)
    g.inc(3)
    g.dec()
    obskit_capture.assert_counter(counter.name, 3, a="x")
    assert obskit_capture.histogram_count(histogram.name, a="x") == 2
    assert obskit_capture.histogram_sum(histogram.name, a="x") == 3.5
    assert obskit_capture.gauge_value(gauge.name, a="x") == 9


def test_bound_child_follows_store_changes() -> None:
    bound = metrics.counter(unique("bound_follow"), labels=["a"]).labels(a="x")
    with capture() as first:
        bound.inc()
    with capture() as second:
        bound.inc(5)
    assert first.counter_value(bound._handle.name) == 1
    assert second.counter_value(bound._handle.name) == 5


def test_histogram_time_observes_block_duration(obskit_capture: Capture) -> None:
    name = unique("block_seconds")
    handle = metrics.histogram(name, labels=["step"])
    with handle.time(step="sleep"):
        time.sleep(0.02)
    with pytest.raises(KeyError), handle.time(step="fail"):
        raise KeyError("boom")
    assert obskit_capture.histogram_count(name, step="sleep") == 1
    assert 0.02 <= obskit_capture.histogram_sum(name, step="sleep") < 5
    assert obskit_capture.histogram_count(name, step="fail") == 1


def test_histogram_time_keeps_the_exception_object(obskit_capture: Capture) -> None:
    handle = metrics.histogram(unique("exc_seconds"))
    error = RuntimeError("same object")
    with pytest.raises(RuntimeError) as info, handle.time():
        raise error
    assert info.value is error


def test_gauge_track_inprogress(obskit_capture: Capture) -> None:
    name = unique("in_flight")
    handle = metrics.gauge(name, labels=["worker"])
    with handle.track_inprogress(worker="w1"):
        with handle.track_inprogress(worker="w1"):
            assert obskit_capture.gauge_value(name, worker="w1") == 2
        assert obskit_capture.gauge_value(name, worker="w1") == 1
    assert obskit_capture.gauge_value(name, worker="w1") == 0
    with pytest.raises(ValueError, match="inside"), handle.track_inprogress(worker="w1"):
        raise ValueError("inside")
    assert obskit_capture.gauge_value(name, worker="w1") == 0


def test_non_string_label_values_are_stringified(obskit_capture: Capture) -> None:
    name = unique("status_codes")
    handle = metrics.counter(name, labels=["code"])
    handle.inc(code=200)
    handle.inc(code="200")
    assert samples(obskit_capture, f"{name}_total") == {(("code", "200"),): 2.0}


# -- label mistakes never make new series, never raise into user code -----------------------------


@pytest.mark.obskit(strict=False)
def test_undeclared_label_is_dropped_never_a_new_series(
    obskit_capture: Capture, caplog: pytest.LogCaptureFixture
) -> None:
    name = unique("dropped_label")
    handle = metrics.counter(name, labels=["route"])
    for _ in range(3):
        handle.inc(route="/a", user_id="u1")
    first = sys._getframe().f_lineno - 1
    handle.inc(route="/a", user_id="u2")
    second = sys._getframe().f_lineno - 1
    assert samples(obskit_capture, f"{name}_total") == {(("route", "/a"),): 4.0}
    assert obskit_capture.store.series_count(handle.spec) == 1
    # Once per call site, as the caller's mistake at its file:line, saying what was recorded.
    warnings = [r.getMessage() for r in caplog.records if "user_id" in r.getMessage() and r.name == "obskit"]
    assert warnings == [
        f"obskit: {__file__}:{line}: {name}_total: label 'user_id' not declared (declared: route);"
        " recorded without it"
        for line in (first, second)
    ]
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.name == "obskit")


@pytest.mark.obskit(strict=False)
def test_missing_label_is_recorded_as_empty(obskit_capture: Capture) -> None:
    name = unique("missing_label")
    handle = metrics.histogram(name, labels=["route", "method"], buckets=[1])
    handle.observe(0.5, route="/a")
    assert obskit_capture.histogram_count(name, route="/a", method="") == 1


def test_label_mistakes_raise_in_obskit_own_suite() -> None:
    handle = metrics.counter(unique("strict"), labels=["a"])
    with capture(), pytest.raises(ValueError, match="not declared"):
        handle.inc(a="x", b="y")


@pytest.mark.obskit(strict=False)
def test_negative_counter_inc_does_not_raise_into_user_code(obskit_capture: Capture) -> None:
    name = unique("neg")
    handle = metrics.counter(name, labels=["a"])
    handle.inc(2, a="x")
    handle.inc(-1, a="x")
    handle.labels(a="x").inc(-5)
    obskit_capture.assert_counter(name, 2, a="x")


# -- series cap -----------------------------------------------------------------------------------


def _assert_capped(cap: Capture, name: str, sample: str, value_of: Any) -> None:
    series = samples(cap, sample)
    assert series == value_of
    assert cap.counter_value("obskit_telemetry_overflow_total", metric=name) == 7


def test_series_cap_from_configure_folds_into_overflow_series(keep_series_cap: None) -> None:
    obskit.configure(series_cap=3, **QUIET)
    name = unique("capped")
    handle = metrics.counter(name, labels=["user"])
    for i in range(10):
        handle.inc(user=f"u{i}")
    registry = _state.STATE.store.registry
    values = {
        s.labels["user"]: s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == f"{name}_total"
    }
    assert values == {"u0": 1, "u1": 1, "u2": 1, OVERFLOW_LABEL_VALUE: 7}
    overflow = global_value("obskit_telemetry_overflow_total", metric=f"{name}_total")
    assert overflow == 7


def test_series_cap_applies_inside_capture(keep_series_cap: None) -> None:
    obskit.configure(series_cap=3, **QUIET)
    name = unique("capped_cap")
    handle = metrics.counter(name, labels=["user", "plan"])
    with capture() as cap:
        for i in range(10):
            handle.inc(user=f"u{i}", plan="free")
        handle.inc(user="u0", plan="free")  # an existing series keeps recording
    expected = {
        (("plan", "free"), ("user", "u0")): 2.0,
        (("plan", "free"), ("user", "u1")): 1.0,
        (("plan", "free"), ("user", "u2")): 1.0,
        (("plan", OVERFLOW_LABEL_VALUE), ("user", OVERFLOW_LABEL_VALUE)): 7.0,
    }
    _assert_capped(cap, f"{name}_total", f"{name}_total", expected)
    assert cap.store.series_count(handle.spec) == 3


def test_series_cap_on_histograms_and_gauges(keep_series_cap: None) -> None:
    obskit.configure(series_cap=3, **QUIET)
    hist = metrics.histogram(unique("capped_hist"), labels=["k"], buckets=[1])
    gauge = metrics.gauge(unique("capped_g"), labels=["k"])
    with capture() as cap:
        for i in range(10):
            hist.observe(0.5, k=str(i))
            gauge.inc(k=str(i))
    assert cap.histogram_count(hist.name, k=OVERFLOW_LABEL_VALUE) == 7
    assert cap.gauge_value(gauge.name, k=OVERFLOW_LABEL_VALUE) == 7
    assert cap.counter_value("obskit_telemetry_overflow_total", metric=hist.name) == 7
    assert cap.counter_value("obskit_telemetry_overflow_total", metric=gauge.name) == 7


def test_series_cap_counts_every_overflowed_recording_of_bound_children(keep_series_cap: None) -> None:
    obskit.configure(series_cap=3, **QUIET)
    name = unique("capped_bound")
    handle = metrics.counter(name, labels=["user"])
    with capture() as cap:
        for i in range(3):
            handle.inc(user=f"u{i}")
        late = handle.labels(user="late")
        for _ in range(7):
            late.inc()
    assert cap.counter_value(name, user=OVERFLOW_LABEL_VALUE) == 7
    assert cap.counter_value("obskit_telemetry_overflow_total", metric=f"{name}_total") == 7


def test_series_cap_from_env_var(monkeypatch: pytest.MonkeyPatch, keep_series_cap: None) -> None:
    monkeypatch.setenv("OBSKIT_SERIES_CAP", "2")
    obskit.configure(**QUIET)
    handle = metrics.counter(unique("env_capped"), labels=["k"])
    with capture() as cap:
        for i in range(5):
            handle.inc(k=str(i))
    assert cap.counter_value(handle.name, k=OVERFLOW_LABEL_VALUE) == 3


# -- handles declared before configure() ----------------------------------------------------------


def test_import_time_handles_work_before_after_configure_and_in_capture() -> None:
    IMPORT_TIME_COUNTER.inc(kind="before")
    IMPORT_TIME_BOUND.inc()
    assert global_value(f"{IMPORT_TIME_NAME}_total", kind="before") == 1
    obskit.configure(**QUIET)
    IMPORT_TIME_COUNTER.inc(kind="after")
    IMPORT_TIME_BOUND.inc()
    IMPORT_TIME_HISTOGRAM.observe(1.5, kind="after")
    IMPORT_TIME_GAUGE.set(4, kind="after")
    assert global_value(f"{IMPORT_TIME_NAME}_total", kind="after") == 1
    assert global_value(f"{IMPORT_TIME_NAME}_total", kind="bound") == 2
    with capture() as cap:
        IMPORT_TIME_COUNTER.inc(kind="after")
        IMPORT_TIME_BOUND.inc()
        IMPORT_TIME_HISTOGRAM.observe(1.5, kind="after")
        IMPORT_TIME_GAUGE.set(9, kind="after")
    cap.assert_counter(IMPORT_TIME_NAME, 1, kind="after")
    cap.assert_counter(IMPORT_TIME_NAME, 1, kind="bound")
    assert cap.histogram_count(IMPORT_TIME_HISTOGRAM.name, kind="after") == 1
    assert cap.gauge_value(IMPORT_TIME_GAUGE.name, kind="after") == 9
    # back in the configured store after the capture
    IMPORT_TIME_BOUND.inc()
    assert global_value(f"{IMPORT_TIME_NAME}_total", kind="bound") == 3
    assert global_value(f"{IMPORT_TIME_NAME}_total", kind="after") == 1
    assert global_value(f"{IMPORT_TIME_NAME}_level", kind="after") == 4


# -- ready-made helper families -------------------------------------------------------------------


def test_http_request_helper(obskit_capture: Capture) -> None:
    metrics.http_request("get", "/items/{id}", 200, 0.12)
    metrics.http_request("GET", "/items/{id}", "404", 0.01)
    cap = obskit_capture
    cap.assert_counter("http_server_requests_total", 1, method="GET", route="/items/{id}", status_code="200")
    cap.assert_counter("http_server_requests_total", 1, method="GET", route="/items/{id}", status_code="404")
    assert (
        cap.histogram_count("obskit_http_server_request_duration_seconds", method="GET", route="/items/{id}")
        == 2
    )
    assert cap.histogram_sum("obskit_http_server_request_duration_seconds", method="GET") == pytest.approx(
        0.13
    )


def test_cache_access_helper(obskit_capture: Capture) -> None:
    metrics.cache_access("users", hit=True)
    metrics.cache_access("users", hit=True)
    metrics.cache_access("users", hit=False)
    obskit_capture.assert_counter("obskit_cache_requests_total", 2, cache="users", result="hit")
    obskit_capture.assert_counter("obskit_cache_requests_total", 1, cache="users", result="miss")


def test_db_call_helper(obskit_capture: Capture) -> None:
    metrics.db_call("select", 0.05, db="main")
    metrics.db_call("select", 0.5, db="main", error=True)
    metrics.db_call("insert", 0.02)
    cap = obskit_capture
    name = "obskit_db_query_duration_seconds"
    assert cap.histogram_count(name, db="main", operation="select", status="ok") == 1
    assert cap.histogram_count(name, db="main", operation="select", status="error") == 1
    assert cap.histogram_sum(name, db="main", operation="select", status="error") == 0.5
    assert cap.histogram_count(name, db="default", operation="insert", status="ok") == 1


def test_external_call_helper_counts_tokens(obskit_capture: Capture) -> None:
    metrics.external_call("openai", "chat", 1.5, tokens={"prompt": 120, "completion": 30})
    metrics.external_call("openai", "chat", 0.5, error=True, tokens={"prompt": 10})
    metrics.external_call("search", "query", 0.1)
    cap = obskit_capture
    cap.assert_counter(
        "obskit_external_call_tokens_total", 130, service="openai", operation="chat", kind="prompt"
    )
    cap.assert_counter("obskit_external_call_tokens_total", 30, kind="completion")
    cap.assert_counter("obskit_external_call_tokens_total", 160)
    duration = "obskit_external_call_duration_seconds"
    assert cap.histogram_count(duration, service="openai", status="ok") == 1
    assert cap.histogram_count(duration, service="openai", status="error") == 1
    assert cap.histogram_count(duration, service="search", operation="query") == 1


def test_job_helper_records_job_families(obskit_capture: Capture) -> None:
    metrics.job("nightly", 2.0)
    metrics.job("nightly", 3.0, error=True)
    cap = obskit_capture
    cap.assert_counter("obskit_jobs_total", 1, job_name="nightly", status="success")
    cap.assert_counter("obskit_jobs_total", 1, job_name="nightly", status="error")
    assert cap.histogram_count("obskit_job_duration_seconds", job_name="nightly") == 2
    assert cap.histogram_sum("obskit_job_duration_seconds", job_name="nightly") == 5.0


def test_helpers_follow_the_configured_namespace() -> None:
    namespace = "ns" + uuid.uuid4().hex[:8]
    obskit.configure(metric_namespace=namespace, **QUIET)
    with capture() as cap:
        metrics.cache_access("c", hit=True)
        metrics.job("j", 1.0)
        metrics.db_call("q", 0.1)
    cap.assert_counter(f"{namespace}_cache_requests_total", 1, cache="c", result="hit")
    cap.assert_counter(f"{namespace}_jobs_total", 1, job_name="j", status="success")
    assert cap.histogram_count(f"{namespace}_db_query_duration_seconds", operation="q") == 1
    assert "obskit_cache_requests_total" not in cap.metric_names()


def test_value_adder_falls_back_to_public_inc_for_subclasses_and_doubles() -> None:
    from prometheus_client import CollectorRegistry
    from prometheus_client import Counter as PromCounter

    from obskit._recording.store import value_adder

    class Loud(PromCounter):
        def inc(self, amount: float = 1, exemplar: Any = None) -> None:
            super().inc(amount * 2, exemplar)

    registry = CollectorRegistry()
    plain = PromCounter("plain", "p", ["a"], registry=registry).labels("x")
    loud = Loud("loud", "l", ["a"], registry=registry).labels("x")
    value_adder(plain)(3)
    value_adder(loud)(3)
    assert registry.get_sample_value("plain_total", {"a": "x"}) == 3
    assert registry.get_sample_value("loud_total", {"a": "x"}) == 6


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")


def test_label_values_no_exposition_can_take_become_their_safe_form(obskit_capture: Capture) -> None:
    from prometheus_client import generate_latest

    counter = MetricsCollector().counter(f"safe_labels_{uuid.uuid4().hex[:8]}", "x", labels=["what"])
    counter.inc(what="caf\udce9")
    counter.inc(what=_Unprintable())
    counter.labels(what=2**70).inc()
    obskit_capture.assert_counter(counter.name, 1, what="caf\\udce9")
    obskit_capture.assert_counter(counter.name, 1, what="[unrenderable _Unprintable]")
    obskit_capture.assert_counter(counter.name, 1, what=str(2**70))
    generate_latest(obskit_capture.store.registry).decode("utf-8")  # what /metrics and a push send
