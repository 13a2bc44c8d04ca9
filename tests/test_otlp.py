"""The OTLP backend: every setting reaches the stock exporters as the OpenTelemetry spec defines it."""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.exporter.otlp.common.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.metrics.export import AggregationTemporality, Histogram, Sum

import obskit
from obskit import track_job
from obskit._core.resource import resource_for
from obskit._core.settings import Settings, resolve_settings
from obskit._export import otlp as _otlp
from obskit._export.bridge import metrics_data
from obskit.testing import capture

SIGNALS = ("traces", "metrics", "logs")
BUILDERS = {"traces": _otlp.span_exporter, "metrics": _otlp.metric_exporter, "logs": _otlp.log_exporter}
HTTP_CLASSES = {"traces": HttpSpanExporter, "metrics": HttpMetricExporter, "logs": HttpLogExporter}
GRPC_CLASSES = {"traces": GrpcSpanExporter, "metrics": GrpcMetricExporter, "logs": GrpcLogExporter}


@pytest.fixture
def built() -> Iterator[list[Any]]:
    """Exporters built by a test, shut down after it (gRPC ones hold a channel)."""
    exporters: list[Any] = []
    yield exporters
    for exporter in exporters:
        exporter.shutdown()


def _build(built: list[Any], signal: str, **settings: Any) -> Any:
    exporter = BUILDERS[signal](resolve_settings(settings))
    built.append(exporter)
    return exporter


def _http_headers(exporter: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in exporter._client._headers.items()}


# -- HTTP/protobuf -----------------------------------------------------------------------------


@pytest.mark.parametrize("signal", SIGNALS)
def test_http_defaults_are_localhost_4318_with_the_signal_path_and_ten_seconds(
    built: list[Any], signal: str
) -> None:
    exporter = _build(built, signal)
    assert isinstance(exporter, HTTP_CLASSES[signal])
    assert exporter._endpoint == f"http://localhost:4318/v1/{signal}"
    assert exporter._client._timeout == 10.0
    assert exporter._client._compression is HttpCompression.NONE
    assert exporter._client._transport._session.verify is True
    assert _http_headers(exporter)["content-type"] == "application/x-protobuf"
    assert "content-encoding" not in _http_headers(exporter)


@pytest.mark.parametrize(
    ("generic", "expected"),
    [
        ("http://collector:4318", "http://collector:4318/v1/{}"),
        ("http://collector:4318/", "http://collector:4318/v1/{}"),
        ("https://gateway.example/otlp", "https://gateway.example/otlp/v1/{}"),
        ("https://gateway.example/otlp/", "https://gateway.example/otlp/v1/{}"),
    ],
)
@pytest.mark.parametrize("signal", SIGNALS)
def test_http_generic_endpoint_gets_the_signal_path_appended(
    built: list[Any], signal: str, generic: str, expected: str
) -> None:
    exporter = _build(built, signal, otlp_endpoint=generic)
    assert exporter._endpoint == expected.format(signal)


@pytest.mark.parametrize("signal", SIGNALS)
def test_http_per_signal_endpoint_is_used_as_is(built: list[Any], signal: str) -> None:
    settings = {
        f"otlp_{signal}_endpoint": "http://collector:9999/custom",
        "otlp_endpoint": "http://other:4318",
    }
    exporter = _build(built, signal, **settings)
    assert exporter._endpoint == "http://collector:9999/custom"
    others = [s for s in SIGNALS if s != signal]
    for other in others:
        assert _build(built, other, **settings)._endpoint == f"http://other:4318/v1/{other}"


def test_http_endpoints_from_the_environment_follow_the_same_rules(
    built: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env-collector:4318")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://env-collector:4318/my/traces")
    assert _build(built, "traces")._endpoint == "http://env-collector:4318/my/traces"
    assert _build(built, "metrics")._endpoint == "http://env-collector:4318/v1/metrics"
    assert _build(built, "logs")._endpoint == "http://env-collector:4318/v1/logs"


@pytest.mark.parametrize(("insecure", "scheme"), [(True, "http"), (False, "https"), (None, "https")])
def test_http_endpoint_without_scheme_takes_it_from_insecure(
    built: list[Any], insecure: bool | None, scheme: str
) -> None:
    exporter = _build(built, "traces", otlp_endpoint="collector:4318", otlp_insecure=insecure)
    assert exporter._endpoint == f"{scheme}://collector:4318/v1/traces"


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
@pytest.mark.parametrize("signal", SIGNALS)
def test_timeout_milliseconds_become_the_exporters_seconds(
    built: list[Any], protocol: str, signal: str
) -> None:
    exporter = _build(built, signal, otlp_protocol=protocol, otlp_timeout=2500)
    timeout = exporter._client._timeout if protocol == "http/protobuf" else exporter._timeout
    assert timeout == 2.5


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_timeout_from_the_environment_is_milliseconds_too(
    built: list[Any], monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    # The Python exporters, left alone, would read these as seconds: 10000 s and 250 s.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "10000")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "250")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    traces, logs = _build(built, "traces"), _build(built, "logs")
    if protocol == "grpc":
        assert (traces._timeout, logs._timeout) == (10.0, 0.25)
    else:
        assert (traces._client._timeout, logs._client._timeout) == (10.0, 0.25)


@pytest.mark.parametrize(
    ("compression", "expected"),
    [("gzip", HttpCompression.GZIP), ("deflate", HttpCompression.DEFLATE), ("none", HttpCompression.NONE)],
)
def test_http_compression_and_its_content_encoding(
    built: list[Any], compression: str, expected: HttpCompression
) -> None:
    exporter = _build(built, "metrics", otlp_compression=compression)
    assert exporter._client._compression is expected
    assert _http_headers(exporter).get("content-encoding") == (None if compression == "none" else compression)


def test_http_headers_keyword_replaces_the_environment_instead_of_adding_to_it(
    built: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "from-env=1")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "logs-env=1")
    exporter = _build(built, "traces", otlp_headers={"X-Api-Key": "k"})
    headers = _http_headers(exporter)
    assert headers["x-api-key"] == "k"
    assert "from-env" not in headers
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["user-agent"].startswith("OTel-OTLP-Exporter-Python/")
    # Per signal beats generic, from the environment as from keywords.
    logs = _http_headers(_build(built, "logs"))
    assert logs["logs-env"] == "1"
    assert "from-env" not in logs
    env_only = _http_headers(_build(built, "metrics"))
    assert env_only["from-env"] == "1"


def test_http_certificate_is_what_tls_verifies_against(built: list[Any], tmp_path: Path) -> None:
    pem = tmp_path / "ca.pem"
    pem.write_text("not really a certificate\n")
    exporter = _build(
        built, "traces", otlp_endpoint="https://collector:4318", otlp_traces_certificate=str(pem)
    )
    assert exporter._client._transport._session.verify == str(pem)
    assert (
        _build(built, "logs", otlp_endpoint="https://collector:4318")._client._transport._session.verify
        is True
    )


# -- gRPC --------------------------------------------------------------------------------------


@pytest.mark.parametrize("signal", SIGNALS)
def test_grpc_defaults_are_plain_text_localhost_4317(built: list[Any], signal: str) -> None:
    exporter = _build(built, signal, otlp_protocol="grpc")
    assert isinstance(exporter, GRPC_CLASSES[signal])
    assert exporter._endpoint == "localhost:4317"
    assert exporter._insecure is True
    assert exporter._timeout == 10.0
    assert exporter._compression is grpc.Compression.NoCompression
    assert exporter._headers == ()


@pytest.mark.parametrize(
    ("endpoint", "insecure", "plain_text"),
    [
        ("http://collector:4317", None, True),
        ("http://collector:4317", False, True),  # the scheme decides: insecure applies to bare host:port
        ("https://collector:4317", None, False),
        ("https://collector:4317", True, False),
        ("collector:4317", None, False),
        ("collector:4317", False, False),
        ("collector:4317", True, True),
    ],
)
def test_grpc_transport_security_follows_scheme_then_insecure(
    built: list[Any], endpoint: str, insecure: bool | None, plain_text: bool
) -> None:
    exporter = _build(built, "traces", otlp_protocol="grpc", otlp_endpoint=endpoint, otlp_insecure=insecure)
    assert exporter._endpoint == "collector:4317"  # used as is: no path is appended over gRPC
    assert exporter._insecure is plain_text
    assert (exporter._credentials is None) is plain_text


def test_grpc_per_signal_endpoint_and_insecure_override_the_generic_ones(built: list[Any]) -> None:
    settings = {
        "otlp_protocol": "grpc",
        "otlp_endpoint": "https://generic:4317",
        "otlp_metrics_endpoint": "metrics-only:4317",
        "otlp_metrics_insecure": True,
    }
    assert _build(built, "traces", **settings)._insecure is False
    metrics = _build(built, "metrics", **settings)
    assert (metrics._endpoint, metrics._insecure) == ("metrics-only:4317", True)


@pytest.mark.parametrize(
    ("compression", "expected"),
    [
        ("gzip", grpc.Compression.Gzip),
        ("deflate", grpc.Compression.Deflate),
        ("none", grpc.Compression.NoCompression),
    ],
)
def test_grpc_compression(built: list[Any], compression: str, expected: grpc.Compression) -> None:
    exporter = _build(built, "logs", otlp_protocol="grpc", otlp_logs_compression=compression)
    assert exporter._compression is expected


def test_grpc_headers_are_lower_cased_metadata_replacing_the_environment(
    built: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "from-env=1")
    exporter = _build(built, "traces", otlp_protocol="grpc", otlp_headers={"X-Api-Key": "k"})
    assert exporter._headers == (("x-api-key", "k"),)
    # An explicit empty keyword means none, although the exporter would fall back to the variable.
    assert _build(built, "traces", otlp_protocol="grpc", otlp_headers={})._headers == ()
    assert _build(built, "metrics", otlp_protocol="grpc")._headers == (("from-env", "1"),)


def test_grpc_certificate_builds_tls_credentials(built: list[Any], tmp_path: Path) -> None:
    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    exporter = _build(
        built, "traces", otlp_protocol="grpc", otlp_endpoint="https://c:4317", otlp_certificate=str(pem)
    )
    assert isinstance(exporter._credentials, grpc.ChannelCredentials)
    assert exporter._insecure is False


def test_per_signal_protocol_picks_the_exporter_package(built: list[Any]) -> None:
    settings = {"otlp_protocol": "grpc", "otlp_logs_protocol": "http/protobuf", "otlp_endpoint": "http://c:1"}
    assert isinstance(_build(built, "traces", **settings), GrpcSpanExporter)
    assert isinstance(_build(built, "metrics", **settings), GrpcMetricExporter)
    logs = _build(built, "logs", **settings)
    assert isinstance(logs, HttpLogExporter)
    assert logs._endpoint == "http://c:1/v1/logs"


def test_protocol_from_the_environment(built: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
    assert isinstance(_build(built, "traces"), HttpSpanExporter)
    assert isinstance(_build(built, "logs"), GrpcLogExporter)


# -- the metric exporter and the bridge ------------------------------------------------------


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_metric_exporter_prefers_cumulative_whatever_the_environment_says(
    built: list[Any], monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
    exporter = _build(built, "metrics", otlp_protocol=protocol)
    assert set(exporter._preferred_temporality.values()) == {AggregationTemporality.CUMULATIVE}


def test_histograms_are_encoded_without_min_and_max_which_prometheus_client_does_not_keep() -> None:
    with capture() as cap:
        histogram = obskit.MetricsCollector().histogram("otlp_hist_seconds", "h", buckets=[0.5, 1.0])
        histogram.observe(0.25)
        histogram.observe(3.0)
        data = metrics_data(cap.store.registry, resource_for(Settings()), 0)
    point = next(
        m for m in data.resource_metrics[0].scope_metrics[0].metrics if m.name == "otlp_hist_seconds"
    ).data.data_points[0]
    assert point.min is None
    assert point.max is None
    encoded = encode_metrics(data).resource_metrics[0].scope_metrics[0].metrics
    proto = next(m for m in encoded if m.name == "otlp_hist_seconds")
    proto_point = proto.histogram.data_points[0]
    assert not proto_point.HasField("min")
    assert not proto_point.HasField("max")
    assert list(proto_point.bucket_counts) == [1, 0, 1]
    assert list(proto_point.explicit_bounds) == [0.5, 1.0]
    assert (proto_point.count, proto_point.sum) == (2, 3.25)
    assert proto.unit == "s"


def test_job_families_keep_their_catalogue_names_and_units_in_otlp() -> None:
    @track_job("otlp_names")
    def job() -> int:
        return 1

    with capture() as cap:
        job()
        data = metrics_data(cap.store.registry, resource_for(Settings()), 0)
    encoded = {m.name: m for m in encode_metrics(data).resource_metrics[0].scope_metrics[0].metrics}
    jobs = encoded["obskit_jobs_total"]
    assert jobs.WhichOneof("data") == "sum"
    assert jobs.sum.is_monotonic
    assert jobs.sum.aggregation_temporality == AggregationTemporality.CUMULATIVE.value
    assert jobs.unit == ""  # dimensionless: see docs/metrics.md
    duration = encoded["obskit_job_duration_seconds"]
    assert (duration.WhichOneof("data"), duration.unit) == ("histogram", "s")
    assert encoded["obskit_jobs_in_progress"].WhichOneof("data") == "gauge"
    assert encoded["obskit_jobs_in_progress"].unit == ""
    # The SDK objects before encoding, for the record.
    sdk = {m.name: m for m in data.resource_metrics[0].scope_metrics[0].metrics}
    assert isinstance(sdk["obskit_jobs_total"].data, Sum)
    assert isinstance(sdk["obskit_job_duration_seconds"].data, Histogram)
    assert not math.isnan(sdk["obskit_job_duration_seconds"].data.data_points[0].sum)


# -- Jaeger preset ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "target", "plain_text"),
    [
        ("http://jaeger:4317", "jaeger:4317", True),
        ("jaeger:4317", "jaeger:4317", True),
        ("https://jaeger.example:443", "jaeger.example:443", False),
    ],
)
def test_jaeger_is_otlp_grpc_to_the_jaeger_endpoint_without_the_otlp_headers(
    built: list[Any], endpoint: str, target: str, plain_text: bool
) -> None:
    settings = resolve_settings(
        {
            "jaeger_endpoint": endpoint,
            "otlp_headers": {"authorization": "vendor-secret"},
            "otlp_protocol": "http/protobuf",
            "otlp_traces_timeout": 1500,
        }
    )
    exporter = _otlp.jaeger_span_exporter(settings)
    built.append(exporter)
    assert isinstance(exporter, GrpcSpanExporter)
    assert (exporter._endpoint, exporter._insecure) == (target, plain_text)
    assert exporter._headers == ()
    assert exporter._timeout == 1.5


def test_jaeger_default_endpoint_is_localhost_4317(built: list[Any]) -> None:
    exporter = _otlp.jaeger_span_exporter(Settings())
    built.append(exporter)
    assert (exporter._endpoint, exporter._insecure) == ("localhost:4317", True)


# -- missing extra, fork ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "missing"),
    [("grpc", "grpc"), ("http/protobuf", "opentelemetry.exporter.otlp.proto.http")],
)
def test_configure_without_the_extra_names_the_pip_install(
    monkeypatch: pytest.MonkeyPatch, protocol: str, missing: str
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == missing else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(obskit.ConfigError, match=r'pip install "obskit\[otlp\]"') as info:
        obskit.configure(traces_exporter="otlp", otlp_protocol=protocol)
    assert info.value.setting == "traces_exporter"
    assert not obskit.is_configured()


def test_jaeger_without_grpc_names_the_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a, **k: None if name == "grpc" else real(name, *a, **k)
    )
    with pytest.raises(obskit.ConfigError, match=r'pip install "obskit\[otlp\]"'):
        obskit.configure(traces_exporter="jaeger")


@pytest.mark.parametrize(
    ("protocol", "module"),
    [
        ("grpc", "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"),
        ("http/protobuf", "opentelemetry.exporter.otlp.proto.http.trace_exporter"),
    ],
)
def test_building_without_the_exporter_package_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, protocol: str, module: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail
    with pytest.raises(obskit.ConfigError, match=r'pip install "obskit\[otlp\]"') as info:
        _otlp.span_exporter(resolve_settings({"otlp_protocol": protocol}))
    assert info.value.setting == "traces_exporter"


def test_after_fork_each_exporter_gets_connections_of_its_own(built: list[Any]) -> None:
    http = _build(built, "traces")
    grpc_exporter = _build(built, "logs", otlp_protocol="grpc")
    session, channel = http._client._transport._session, grpc_exporter._channel
    session.verify = "/some/ca.pem"
    _otlp._after_fork_in_child()
    fresh = http._client._transport._session
    assert fresh is not session
    assert fresh.verify == "/some/ca.pem"
    assert grpc_exporter._channel is not channel
    channel.close()  # the one a real child would have left to its parent


def test_after_fork_leaves_shut_down_exporters_alone(built: list[Any]) -> None:
    exporter = _build(built, "traces")
    built.remove(exporter)
    exporter.shutdown()
    session = exporter._client._transport._session
    _otlp._after_fork_in_child()
    assert exporter._client._transport._session is session


def test_options_name_where_each_endpoint_comes_from() -> None:
    settings = resolve_settings({"otlp_endpoint": "http://a:1", "otlp_logs_endpoint": "http://b:2/logs"})
    assert _otlp.endpoint_setting(settings, "traces") == "otlp_endpoint"
    assert _otlp.endpoint_setting(settings, "logs") == "otlp_logs_endpoint"
    assert _otlp.options(settings, "logs").endpoint == "http://b:2/logs"
    assert "headers" not in repr(_otlp.options(settings, "logs"))  # they may hold credentials


def test_an_unreadable_certificate_is_a_config_error_naming_the_setting(tmp_path: Path) -> None:
    opts = _otlp.OtlpOptions(
        signal="metrics",
        protocol="grpc",
        endpoint="https://c:4317",
        headers={},
        timeout=1.0,
        compression="none",
        certificate=str(tmp_path / "gone.pem"),
        insecure=False,
    )
    with pytest.raises(obskit.ConfigError, match="otlp_metrics_certificate"):
        _otlp.build(opts)
