"""Buckets of obskit's duration histograms: defaults that hold slow calls, a setting, collector arguments."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

import obskit
from obskit import ConfigError, MetricDeclarationError
from obskit._core.settings import resolve_settings
from obskit._recording import store as _store
from obskit._recording.families import CALL_DURATION_BUCKETS
from obskit.testing import Capture, capture

QUIET: dict[str, Any] = {"traces_exporter": "none", "logs_exporter": "none", "metrics_exporter": "none"}


@pytest.fixture(autouse=True)
def _no_collector_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    """``MetricsCollector(buckets=...)`` is process-wide: each test starts without any."""
    monkeypatch.setattr(_store, "_FAMILY_BUCKETS", {})


def bounds(cap: Capture, name: str) -> list[str]:
    """The ``le`` values of ``name``'s first series, ``+Inf`` included."""
    (family,) = [f for f in cap.metrics_as_dicts() if f["name"] == name]
    return list(family["series"][0]["buckets"])


def record_every_family() -> None:
    metrics = obskit.MetricsCollector()
    metrics.http_request("GET", "/x", 200, 0.1)
    metrics.db_call("select", 0.1)
    metrics.external_call("openai", "chat", 0.1)
    metrics.job("nightly", 0.1)


def test_default_call_buckets_reach_two_minutes_with_as_many_bounds_as_before() -> None:
    assert CALL_DURATION_BUCKETS[-1] == 120.0
    assert {30.0, 60.0} <= set(CALL_DURATION_BUCKETS)
    assert len(CALL_DURATION_BUCKETS) <= 14  # series per label set stay as they were


def test_a_45_second_llm_call_is_not_read_as_10_seconds() -> None:
    with capture() as cap:
        metrics = obskit.MetricsCollector()
        for _ in range(19):
            metrics.external_call("openai", "chat", 1.2)
        metrics.external_call("openai", "chat", 45.0)
        metrics.external_call("openai", "chat", 46.0)
        (series,) = obskit.MetricsCollector()._family("external_duration").snapshot()
    buckets = series["buckets"]
    assert buckets["10.0"] == 19
    assert buckets["30.0"] == 19
    assert buckets["60.0"] == 21  # ... and below 60 s: a "p95 > 30 s" alert can fire
    assert "obskit_external_call_duration_seconds" in {f["name"] for f in cap.metrics_as_dicts()}


def test_the_setting_sets_each_familys_buckets() -> None:
    obskit.configure(
        **QUIET,
        histogram_buckets={"http": [0.1, 1], "db": [0.2, 2], "external_call": [1, 60, 300], "job": [5, 50]},
    )
    with capture() as cap:
        record_every_family()
    assert bounds(cap, "obskit_http_server_request_duration_seconds") == ["0.1", "1.0", "+Inf"]
    assert bounds(cap, "obskit_db_query_duration_seconds") == ["0.2", "2.0", "+Inf"]
    assert bounds(cap, "obskit_external_call_duration_seconds") == ["1.0", "60.0", "300.0", "+Inf"]
    assert bounds(cap, "obskit_job_duration_seconds") == ["5.0", "50.0", "+Inf"]


def test_the_environment_variable_sets_them_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBSKIT_HISTOGRAM_BUCKETS", '{"external_call": [0.5, 30, 90, "+Inf"]}')
    obskit.configure(**QUIET)
    with capture() as cap:
        record_every_family()
    assert bounds(cap, "obskit_external_call_duration_seconds") == ["0.5", "30.0", "90.0", "+Inf"]
    assert bounds(cap, "obskit_db_query_duration_seconds")[-4:] == ["30.0", "60.0", "120.0", "+Inf"]


def test_the_setting_reaches_the_middlewares_histogram_of_a_real_flask_app() -> None:
    app = Flask("buckets_app")

    @app.get("/slow")
    def slow() -> str:
        return "ok"

    obskit.configure(app, **QUIET, histogram_buckets={"http": [0.5, 5, 50]})
    with capture() as cap:
        assert app.test_client().get("/slow", buffered=True).status_code == 200
    assert bounds(cap, "obskit_http_server_request_duration_seconds") == ["0.5", "5.0", "50.0", "+Inf"]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ('{"grpc": [1]}', "unknown family 'grpc'"),
        ('{"http": [2, 1]}', "increasing"),
        ('{"http": []}', "from 1 to 40"),
        ('{"http": [1, "NaN"]}', "finite"),
        ('{"http": ["soon"]}', "could not convert"),
        ("[1, 2]", "not a mapping"),
        ("http=1", "Expecting value"),
        ({"http": list(range(1, 50))}, "from 1 to 40"),
    ],
)
def test_invalid_bucket_settings_are_config_errors(value: object, words: str) -> None:
    with pytest.raises(ConfigError, match="histogram_buckets") as caught:
        resolve_settings({"histogram_buckets": value})
    assert words in str(caught.value)


def test_collector_arguments_set_buckets_and_the_setting_wins_over_them() -> None:
    metrics = obskit.MetricsCollector(buckets={"db": [0.001, 0.01], "external_call": [10, 100]})
    obskit.configure(**QUIET, histogram_buckets={"external_call": [1, 2]})
    with capture() as cap:
        metrics.db_call("select", 0.005)
        metrics.external_call("llm", "chat", 45.0)
    assert bounds(cap, "obskit_db_query_duration_seconds") == ["0.001", "0.01", "+Inf"]
    assert bounds(cap, "obskit_external_call_duration_seconds") == ["1.0", "2.0", "+Inf"]


def test_collector_arguments_given_again_alike_are_fine_and_otherwise_raise() -> None:
    obskit.MetricsCollector(buckets={"job": [1, 10]})
    obskit.MetricsCollector(buckets={"job": (1.0, 10.0)})
    with pytest.raises(MetricDeclarationError, match="already"):
        obskit.MetricsCollector(buckets={"job": [1, 20]})
    with pytest.raises(MetricDeclarationError, match="unknown family 'jobs'"):
        obskit.MetricsCollector(buckets={"jobs": [1]})


def test_track_job_uses_the_job_buckets() -> None:
    obskit.configure(**QUIET, histogram_buckets={"job": [60, 600]})

    @obskit.track_job("export")
    def export() -> None:
        pass

    with capture() as cap:
        export()
    assert bounds(cap, "obskit_job_duration_seconds") == ["60.0", "600.0", "+Inf"]
