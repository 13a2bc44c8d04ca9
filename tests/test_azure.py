"""The azure backend without a network: what the exporters are built with, and what they send."""

from __future__ import annotations

import importlib.util
import json
import math
import os
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter

import obskit
from obskit._core import state as _state
from obskit._core.errors import ConfigError
from obskit._core.settings import Settings, resolve_settings
from obskit._export import azure as _azure
from obskit._export.bridge import DeltaConverter, make_reader
from obskit._export.pipeline import counting_metric_exporter

# Port 9 (discard) on loopback: nothing is sent in these tests, and nothing could be.
CONNECTION_STRING = (
    "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/"
)
FACTORIES = (_azure.span_exporter, _azure.metric_exporter, _azure.log_exporter)


def _settings(**overrides: Any) -> Settings:
    return resolve_settings({"azure_connection_string": CONNECTION_STRING, **overrides}, environ={})


class Recorder:
    """Stands in for an Azure exporter class: records its arguments and the environment it saw."""

    built: ClassVar[list[Recorder]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.environ = dict(os.environ)
        Recorder.built.append(self)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Recorder]]:
    Recorder.built = []
    monkeypatch.setattr(_azure, "_classes", lambda: (Recorder, Recorder, Recorder))
    yield Recorder.built
    for exporter in Recorder.built:
        _azure._release(exporter)


# -- what the exporters are built with -------------------------------------------------------


def test_factories_build_the_azure_exporters_from_the_connection_string() -> None:
    from azure.monitor.opentelemetry.exporter import (
        AzureMonitorLogExporter,
        AzureMonitorMetricExporter,
        AzureMonitorTraceExporter,
    )

    settings = _settings()
    exporters = [factory(settings) for factory in FACTORIES]
    try:
        for exporter, cls in zip(
            exporters,
            (AzureMonitorTraceExporter, AzureMonitorMetricExporter, AzureMonitorLogExporter),
            strict=True,
        ):
            assert isinstance(exporter, cls)
            assert exporter._instrumentation_key == "00000000-0000-0000-0000-000000000000"
            assert exporter._endpoint.rstrip("/") == "http://127.0.0.1:9"
            assert exporter._disable_offline_storage is True
            assert exporter.storage is None
    finally:
        for exporter in exporters:
            exporter.shutdown()


def test_statsbeat_sdk_stats_and_control_plane_do_not_start_by_default() -> None:
    from azure.monitor.opentelemetry.exporter._configuration import _state as control_plane
    from azure.monitor.opentelemetry.exporter.statsbeat._state import get_statsbeat_manager
    from azure.monitor.opentelemetry.exporter.statsbeat.customer import get_customer_stats_manager

    get_customer_stats_manager()  # created outside obskit, enabled: still not started by obskit
    exporters = [factory(_settings()) for factory in FACTORIES]
    try:
        assert not get_statsbeat_manager().is_initialized()
        assert not get_customer_stats_manager().is_initialized
        manager = control_plane._configuration_manager
        assert manager is None or manager._configuration_worker is None
        assert _azure.CONTROL_PLANE_SWITCH not in os.environ  # restored after construction
    finally:
        for exporter in exporters:
            exporter.shutdown()


def test_options_keep_offline_storage_off_and_bound_timeouts_and_retries(recorded: list[Recorder]) -> None:
    _azure.metric_exporter(_settings())
    options = recorded[0].kwargs
    assert options["connection_string"] == CONNECTION_STRING
    assert options["disable_offline_storage"] is True
    assert options["timeout"] == options["read_timeout"] == _azure.REQUEST_TIMEOUT_S
    assert options["retry_policy"].total_retries == _azure.RETRIES


def test_offline_storage_is_on_when_asked(recorded: list[Recorder]) -> None:
    _azure.log_exporter(_settings(azure_offline_storage=True))
    assert recorded[0].kwargs["disable_offline_storage"] is False


def test_statsbeat_and_sdk_stats_are_off_through_a_constructor_argument(recorded: list[Recorder]) -> None:
    _azure.span_exporter(_settings())
    assert recorded[0].kwargs["instrumentation_collection"] is True
    assert "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL" not in recorded[0].environ
    assert "APPLICATIONINSIGHTS_SDKSTATS_DISABLED" not in recorded[0].environ


def test_control_plane_switch_is_set_only_while_the_exporter_is_built(
    recorded: list[Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    _azure.span_exporter(_settings())
    assert recorded[0].environ[_azure.CONTROL_PLANE_SWITCH] == "true"
    assert _azure.CONTROL_PLANE_SWITCH not in os.environ
    monkeypatch.setenv(_azure.CONTROL_PLANE_SWITCH, "false")
    _azure.log_exporter(_settings())
    assert recorded[1].environ[_azure.CONTROL_PLANE_SWITCH] == "true"  # obskit's setting decides
    assert os.environ[_azure.CONTROL_PLANE_SWITCH] == "false"


def test_statsbeat_setting_leaves_the_exporter_to_its_defaults(
    recorded: list[Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_azure, "_stop_statsbeat", lambda: None)
    _azure.span_exporter(_settings(azure_statsbeat=True))
    assert recorded[0].kwargs["instrumentation_collection"] is False
    assert _azure.CONTROL_PLANE_SWITCH not in recorded[0].environ


def test_statsbeat_is_stopped_when_the_last_exporter_shuts_down(
    recorded: list[Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped: list[str] = []
    monkeypatch.setattr(_azure, "_stop_statsbeat", lambda: stopped.append("statsbeat"))
    span, log = _azure.span_exporter(_settings(azure_statsbeat=True)), _azure.log_exporter(_settings())
    _azure._release(span)
    assert stopped == []
    _azure._release(log)
    _azure._release(log)  # a second shutdown changes nothing
    assert stopped == ["statsbeat"]


def test_stopping_statsbeat_stops_sdk_stats_and_the_control_plane(monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.monitor.opentelemetry.exporter import statsbeat
    from azure.monitor.opentelemetry.exporter._configuration import _state as control_plane

    calls: list[str] = []
    monkeypatch.setattr(statsbeat._statsbeat, "shutdown_statsbeat_metrics", lambda: calls.append("statsbeat"))
    monkeypatch.setattr(
        statsbeat.customer, "shutdown_customer_sdkstats_metrics", lambda: calls.append("sdkstats")
    )
    monkeypatch.setattr(
        control_plane,
        "_configuration_manager",
        SimpleNamespace(shutdown=lambda: calls.append("control plane")),
    )
    _azure._stop_statsbeat()
    assert calls == ["statsbeat", "sdkstats", "control plane"]


def test_stopping_statsbeat_without_a_control_plane(monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.monitor.opentelemetry.exporter import statsbeat
    from azure.monitor.opentelemetry.exporter._configuration import _state as control_plane

    calls: list[str] = []
    monkeypatch.setattr(statsbeat._statsbeat, "shutdown_statsbeat_metrics", lambda: calls.append("statsbeat"))
    monkeypatch.setattr(
        statsbeat.customer, "shutdown_customer_sdkstats_metrics", lambda: calls.append("sdkstats")
    )
    monkeypatch.setattr(control_plane, "_configuration_manager", None)
    _azure._stop_statsbeat()
    assert calls == ["statsbeat", "sdkstats"]


def test_live_metrics_start_when_asked_and_stop_with_the_last_exporter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from azure.monitor.opentelemetry.exporter import _quickpulse
    from azure.monitor.opentelemetry.exporter._quickpulse import _live_metrics

    started: list[dict[str, Any]] = []
    stopped: list[bool] = []
    monkeypatch.setattr(_quickpulse, "enable_live_metrics", lambda **kwargs: started.append(kwargs))
    monkeypatch.setattr(_live_metrics, "shutdown_live_metrics", lambda: stopped.append(True))
    settings = _settings(azure_live_metrics=True, service_name="live-svc")
    span, log = _azure.span_exporter(settings), _azure.log_exporter(settings)
    try:
        assert len(started) == 1
        assert started[0]["connection_string"] == CONNECTION_STRING
        assert started[0]["resource"].attributes["service.name"] == "live-svc"
        assert _azure._FEATURES.live
    finally:
        span.shutdown()
        assert stopped == []
        log.shutdown()
    assert stopped == [True]
    assert not _azure._FEATURES.live


def test_live_metrics_are_off_by_default(recorded: list[Recorder], monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.monitor.opentelemetry.exporter import _quickpulse

    monkeypatch.setattr(
        _quickpulse, "enable_live_metrics", lambda **kwargs: pytest.fail("live metrics started")
    )
    _azure.span_exporter(_settings())
    assert not _azure._FEATURES.live


def test_exported_spans_and_logs_feed_live_metrics_when_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.monitor.opentelemetry.exporter._quickpulse import _state as quickpulse

    fed: list[tuple[str, object]] = []
    manager = SimpleNamespace(
        _record_span=lambda s: fed.append(("span", s)), _record_log_record=lambda r: fed.append(("log", r))
    )
    monkeypatch.setattr(quickpulse, "get_quickpulse_manager", lambda: manager)
    _azure._live_record(["s1"], "span")
    assert fed == []  # live metrics off: nothing recorded
    monkeypatch.setattr(_azure._FEATURES, "_live", True)
    _azure._live_record(["s1", "s2"], "span")
    _azure._live_record(["r1"], "log")
    assert fed == [("span", "s1"), ("span", "s2"), ("log", "r1")]


@pytest.mark.usefixtures("swallow_internal_errors")
def test_a_failing_live_metrics_feed_never_reaches_the_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.monitor.opentelemetry.exporter._quickpulse import _state as quickpulse

    def broken() -> Any:
        raise RuntimeError("live metrics broke")

    monkeypatch.setattr(quickpulse, "get_quickpulse_manager", broken)
    monkeypatch.setattr(_azure._FEATURES, "_live", True)
    _azure._live_record(["s1"], "span")  # reported once to obskit's logger, not raised


def test_a_long_retry_after_is_not_waited_for() -> None:
    policy = _azure._retry_policy()

    def response(status: int, retry_after: str | None) -> Any:
        headers = {"Retry-After": retry_after} if retry_after else {}
        http_response = SimpleNamespace(status_code=status, headers=headers)
        return SimpleNamespace(http_response=http_response, http_request=SimpleNamespace(method="POST"))

    settings = policy.configure_retries({})
    assert policy.is_retry(settings, response(503, None))
    assert policy.is_retry(settings, response(429, "1"))
    assert not policy.is_retry(settings, response(429, "30"))


def test_span_exporter_gives_the_exporter_obskits_resource(recorded: list[Recorder]) -> None:
    _azure.span_exporter(_settings(service_name="resource-svc"))
    provider = recorded[0].kwargs["tracer_provider"]
    assert provider.resource.attributes["service.name"] == "resource-svc"


# -- configuration errors ----------------------------------------------------------------------


def test_missing_extra_is_a_config_error_naming_the_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name.startswith("azure.monitor") else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    for signal in ("traces_exporter", "metrics_exporter", "logs_exporter"):
        with pytest.raises(ConfigError, match=r'pip install "obskit\[azure\]"') as error:
            obskit.configure(**{signal: "azure"}, azure_connection_string=CONNECTION_STRING)
        assert error.value.setting == signal
    for factory in FACTORIES:
        with pytest.raises(ConfigError, match=r'pip install "obskit\[azure\]"'):
            factory(_settings())
    assert not obskit.is_configured()


def test_missing_connection_string_is_a_config_error() -> None:
    for signal in ("traces_exporter", "metrics_exporter", "logs_exporter"):
        with pytest.raises(ConfigError, match="APPLICATIONINSIGHTS_CONNECTION_STRING") as error:
            obskit.configure(**{signal: "azure"})
        assert error.value.setting == "azure_connection_string"
    for factory in FACTORIES:
        with pytest.raises(ConfigError, match="azure_connection_string"):
            factory(Settings())


def test_connection_string_comes_from_the_environment(recorded: list[Recorder]) -> None:
    settings = resolve_settings({}, environ={"APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION_STRING})
    _azure.log_exporter(settings)
    assert recorded[0].kwargs["connection_string"] == CONNECTION_STRING


# -- what the metric exporter sends --------------------------------------------------------------


def _data(*metrics: Metric) -> MetricsData:
    scope = ScopeMetrics(InstrumentationScope("obskit"), list(metrics), "")
    return MetricsData([ResourceMetrics(Resource.create({"service.name": "t"}), [scope], "")])


def _histogram_point(
    count: int, total: float, buckets: list[int], when: int = 2, **extra: Any
) -> HistogramDataPoint:
    values = {"min": math.nan, "max": math.nan, **extra}
    return HistogramDataPoint({"k": "v"}, 1, when, count, total, buckets, [1.0], values["min"], values["max"])


def _points(data: MetricsData) -> list[Any]:
    return [p for m in data.resource_metrics[0].scope_metrics[0].metrics for p in m.data.data_points]


def test_unknown_histogram_min_and_max_are_left_out() -> None:
    data = _data(
        Metric("h", "", "s", Histogram([_histogram_point(3, 1.5, [1, 2])], AggregationTemporality.DELTA))
    )
    sendable, dropped = _azure.finite_points(data)
    (point,) = _points(sendable)
    assert (point.count, point.sum, point.min, point.max, dropped) == (3, 1.5, None, None, 0)


def test_points_that_json_cannot_carry_are_dropped() -> None:
    gauge = Metric(
        "g", "", "", Gauge([NumberDataPoint({}, 0, 2, math.nan), NumberDataPoint({"a": "1"}, 0, 2, 4.0)])
    )
    total = Sum([NumberDataPoint({}, 1, 2, math.inf)], AggregationTemporality.DELTA, True)
    histogram = Histogram([_histogram_point(1, math.nan, [1, 0])], AggregationTemporality.DELTA)
    sendable, dropped = _azure.finite_points(
        _data(gauge, Metric("c", "", "", total), Metric("h", "", "", histogram))
    )
    assert dropped == 3
    assert [p.value for p in _points(sendable)] == [4.0]


def test_finite_data_is_passed_on_untouched() -> None:
    point = _histogram_point(2, 1.0, [1, 1], min=0.2, max=0.8)
    data = _data(
        Metric("h", "", "s", Histogram([point], AggregationTemporality.DELTA)),
        Metric("g", "", "", Gauge([NumberDataPoint({}, 0, 2, 1.0)])),
    )
    assert _azure.finite_points(data) == (data, 0)


class Sent:
    """Captures the envelopes the Azure metric exporter would transmit."""

    def __init__(self) -> None:
        self.envelopes: list[dict[str, Any]] = []

    def __call__(self, envelopes: list[Any], *args: Any) -> Any:
        from azure.monitor.opentelemetry.exporter.export._base import ExportResult

        self.envelopes.extend(e.as_dict() for e in envelopes)
        return ExportResult.SUCCESS

    def metric(self, name: str) -> list[dict[str, Any]]:
        return [
            point
            for envelope in self.envelopes
            for point in envelope["data"]["baseData"]["metrics"]
            if point["name"] == name
        ]


@pytest.fixture
def azure_metrics() -> Iterator[tuple[Any, Sent]]:
    exporter = _azure.metric_exporter(_settings())
    sent = Sent()
    exporter._transmit = sent
    try:
        yield exporter, sent
    finally:
        exporter.shutdown()


def test_metric_exporter_sends_valid_json_and_counts_what_it_drops(azure_metrics: tuple[Any, Sent]) -> None:
    exporter, sent = azure_metrics
    before = _state.STATE.store.registry.get_sample_value(
        "obskit_telemetry_dropped_total", {"signal": "metrics", "reason": "invalid_value"}
    )
    data = _data(
        Metric("h", "", "s", Histogram([_histogram_point(3, 1.5, [1, 2])], AggregationTemporality.DELTA)),
        Metric("g", "", "", Gauge([NumberDataPoint({}, 0, 2, math.nan)])),
    )
    exporter.export(data)
    json.dumps(sent.envelopes, allow_nan=False)
    assert sent.metric("h") == [{"name": "h", "value": 1.5, "count": 3}]
    assert sent.metric("g") == []
    after = _state.STATE.store.registry.get_sample_value(
        "obskit_telemetry_dropped_total", {"signal": "metrics", "reason": "invalid_value"}
    )
    assert (after or 0) - (before or 0) == 1


def test_metric_exporter_accepts_no_data(azure_metrics: tuple[Any, Sent]) -> None:
    from opentelemetry.sdk.metrics.export import MetricExportResult

    exporter, sent = azure_metrics
    assert exporter.export(None) is MetricExportResult.SUCCESS
    assert sent.envelopes == []


def test_bridge_reader_sends_deltas_to_the_azure_exporter(azure_metrics: tuple[Any, Sent]) -> None:
    exporter, sent = azure_metrics
    registry = CollectorRegistry()
    orders = PromCounter("azure_unit_orders", "Orders", ["kind"], registry=registry)
    reader = make_reader(counting_metric_exporter(exporter), registry, Resource.create({}), 60_000)
    try:
        orders.labels("web").inc(3)
        reader.collect()
        orders.labels("web").inc(2)
        reader.collect()
        reader.collect()
    finally:
        reader.shutdown()
    values = [p["value"] for p in sent.metric("azure_unit_orders_total")]
    assert values[:3] == [3, 2, 0]


# -- the bridge's cumulative-to-delta conversion -------------------------------------------------


def _sum(value: float, when: int, attributes: dict[str, str] | None = None) -> Metric:
    point = NumberDataPoint(attributes or {"k": "v"}, 1, when, value)
    return Metric("c_total", "", "", Sum([point], AggregationTemporality.CUMULATIVE, True))


def test_delta_converter_differences_successive_sums() -> None:
    converter = DeltaConverter()
    first = _points(converter.convert(_data(_sum(3, 10))))[0]
    second = _points(converter.convert(_data(_sum(5, 20))))[0]
    assert (first.value, second.value) == (3, 2)
    assert (second.start_time_unix_nano, second.time_unix_nano) == (10, 20)
    converted = converter.convert(_data(_sum(5, 30)))
    metric = converted.resource_metrics[0].scope_metrics[0].metrics[0]
    assert metric.data.aggregation_temporality is AggregationTemporality.DELTA
    assert metric.data.is_monotonic
    assert _points(converted)[0].value == 0


def test_delta_converter_differences_histograms_bucket_by_bucket() -> None:
    converter = DeltaConverter()

    def histogram(count: int, total: float, buckets: list[int], when: int) -> Metric:
        data = Histogram([_histogram_point(count, total, buckets, when)], AggregationTemporality.CUMULATIVE)
        return Metric("h", "", "s", data)

    converter.convert(_data(histogram(2, 1.0, [1, 1], 10)))
    point = _points(converter.convert(_data(histogram(5, 4.0, [2, 3], 20))))[0]
    assert (point.count, point.sum, list(point.bucket_counts)) == (3, 3.0, [1, 2])
    assert (point.start_time_unix_nano, point.time_unix_nano) == (10, 20)
    assert list(point.explicit_bounds) == [1.0]


def test_delta_converter_passes_gauges_through() -> None:
    converter = DeltaConverter()
    gauge = Metric("g", "", "", Gauge([NumberDataPoint({}, 0, 10, 7.0)]))
    converter.convert(_data(gauge))
    again = converter.convert(_data(gauge))
    assert _points(again)[0].value == 7.0
    assert isinstance(again.resource_metrics[0].scope_metrics[0].metrics[0].data, Gauge)


def test_delta_converter_reports_a_reset_counter_from_zero() -> None:
    converter = DeltaConverter()
    converter.convert(_data(_sum(5, 10)))
    assert _points(converter.convert(_data(_sum(2, 20))))[0].value == 2
    assert _points(converter.convert(_data(_sum(6, 30))))[0].value == 4


def test_delta_converter_keeps_series_apart() -> None:
    converter = DeltaConverter()
    converter.convert(_data(_sum(5, 10, {"k": "a"})))
    first_of_b = _points(converter.convert(_data(_sum(4, 20, {"k": "b"}))))[0]
    assert first_of_b.value == 4  # a new series reports everything so far
    assert _points(converter.convert(_data(_sum(6, 30, {"k": "a"}))))[0].value == 1
