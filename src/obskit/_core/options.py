"""The keyword arguments of ``configure()`` and ``check_backends()``, typed for editors and mypy.

One key per setting (``tests/test_settings_typed.py`` keeps it equal to the settings), each
taking what the setting's parser accepts from a keyword; ``None`` means "not given" (the
environment variable, then the default, decides). A misspelled keyword is then an error in the
editor and in mypy, before run time, and still a ``ConfigError`` naming the nearest setting at
run time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypedDict

__all__ = ["SettingsKeywords"]


class SettingsKeywords(TypedDict, total=False):
    """Every setting ``configure()`` accepts as a keyword (see :mod:`obskit.environment_variables`)."""

    service_name: str | None
    service_version: str | None
    environment: str | None
    resource_attributes: str | Mapping[str, str] | None
    traces_exporter: str | Sequence[str] | None
    metrics_exporter: str | Sequence[str] | None
    logs_exporter: str | Sequence[str] | None
    sampling_ratio: float | None
    sampler: str | None
    sdk_disabled: bool | None
    log_level: str | None
    log_format: str | None
    log_source: bool | None
    metric_namespace: str | None
    redact_keys: str | Sequence[str] | None
    redact_text: bool | None
    redact_patterns: str | Sequence[str] | None
    series_cap: int | None
    histogram_buckets: str | Mapping[str, Sequence[float]] | None
    exponential_histograms: bool | None
    runtime_metrics: bool | None
    host_metrics: bool | None
    metric_export_interval_ms: float | None
    shutdown_timeout: float | None
    export_queue_size: int | None
    export_batch_size: int | None
    prometheus_host: str | None
    prometheus_port: int | None
    prometheus_path: str | None
    prometheus_created: bool | None
    multiprocess_dir: str | None
    pushgateway_url: str | None
    pushgateway_job: str | None
    pushgateway_grouping: str | Mapping[str, str] | None
    push_on: str | Sequence[str] | None
    jaeger_endpoint: str | None
    azure_connection_string: str | None
    azure_live_metrics: bool | None
    azure_offline_storage: bool | None
    azure_statsbeat: bool | None
    excluded_urls: str | Sequence[str] | None
    health_path: str | None
    liveness_path: str | None
    readiness_path: str | None
    request_id_header: str | None
    request_id_echo: str | None
    access_log: bool | None
    access_log_flush_interval: float | None
    instrument_http_clients: bool | None
    instrument_libraries: str | Sequence[str] | None
    request_id_propagation: bool | None
    trust_forwarded_headers: bool | None
    otlp_endpoint: str | None
    otlp_traces_endpoint: str | None
    otlp_metrics_endpoint: str | None
    otlp_logs_endpoint: str | None
    otlp_protocol: str | None
    otlp_traces_protocol: str | None
    otlp_metrics_protocol: str | None
    otlp_logs_protocol: str | None
    otlp_headers: str | Mapping[str, str] | None
    otlp_traces_headers: str | Mapping[str, str] | None
    otlp_metrics_headers: str | Mapping[str, str] | None
    otlp_logs_headers: str | Mapping[str, str] | None
    otlp_timeout: float | None
    otlp_traces_timeout: float | None
    otlp_metrics_timeout: float | None
    otlp_logs_timeout: float | None
    otlp_compression: str | None
    otlp_traces_compression: str | None
    otlp_metrics_compression: str | None
    otlp_logs_compression: str | None
    otlp_certificate: str | None
    otlp_traces_certificate: str | None
    otlp_metrics_certificate: str | None
    otlp_logs_certificate: str | None
    otlp_insecure: bool | None
    otlp_traces_insecure: bool | None
    otlp_metrics_insecure: bool | None
    otlp_logs_insecure: bool | None
