"""Every environment variable obskit reads, with what it does and its default.

Resolution order for each setting is: keyword argument to :func:`obskit.configure` >
environment variable > default. Where OpenTelemetry defines a variable for the same thing, its
name is used (or honoured after obskit's own, as stated below). This module is the single
reference: the configuration page of the docs is generated from it.
"""

from typing import Final

OBSKIT_SERVICE_NAME: Final = "OBSKIT_SERVICE_NAME"
"""Service name on every span, metric resource and log line.

Falls back to ``OTEL_SERVICE_NAME``, then ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES``, then
``unknown_service:python``. Keyword: ``service_name``.
"""

OTEL_SERVICE_NAME: Final = "OTEL_SERVICE_NAME"
"""The OpenTelemetry name of the service-name setting; read when ``OBSKIT_SERVICE_NAME`` is unset."""

OTEL_RESOURCE_ATTRIBUTES: Final = "OTEL_RESOURCE_ATTRIBUTES"
"""Comma-separated ``key=value`` resource attributes (values percent-decoded), added to the resource.

``service.name``, ``service.version`` and ``deployment.environment.name`` (or the older
``deployment.environment``) in it also fill the matching settings when nothing more specific is given.
"""

OBSKIT_SERVICE_VERSION: Final = "OBSKIT_SERVICE_VERSION"
"""Service version (resource attribute ``service.version``). Default: unset. Keyword: ``service_version``."""

OBSKIT_ENVIRONMENT: Final = "OBSKIT_ENVIRONMENT"
"""Deployment environment (``deployment.environment.name``, log field ``environment``).

Default: ``development``. Keyword: ``environment``.
"""

OTEL_TRACES_EXPORTER: Final = "OTEL_TRACES_EXPORTER"
"""Comma-separated span exporters: ``console`` (default) or ``none``. Keyword: ``traces_exporter``."""

OTEL_METRICS_EXPORTER: Final = "OTEL_METRICS_EXPORTER"
"""Comma-separated metric exporters: ``console`` (default) or ``none``. Keyword: ``metrics_exporter``."""

OTEL_LOGS_EXPORTER: Final = "OTEL_LOGS_EXPORTER"
"""Comma-separated log exporters: ``console`` (default: log lines on stdout) or ``none``.

Keyword: ``logs_exporter``.
"""

OBSKIT_SAMPLING_RATIO: Final = "OBSKIT_SAMPLING_RATIO"
"""Fraction of new traces sampled, from 0 to 1; a parent's decision is always followed.

Falls back to ``OTEL_TRACES_SAMPLER_ARG`` when ``OTEL_TRACES_SAMPLER`` is ``traceidratio`` or
``parentbased_traceidratio``. Default: ``1.0``. Keyword: ``sampling_ratio``.
"""

OTEL_TRACES_SAMPLER: Final = "OTEL_TRACES_SAMPLER"
"""Read only to decide whether ``OTEL_TRACES_SAMPLER_ARG`` is a ratio (see ``OBSKIT_SAMPLING_RATIO``)."""

OTEL_TRACES_SAMPLER_ARG: Final = "OTEL_TRACES_SAMPLER_ARG"
"""The OpenTelemetry sampling ratio; see ``OBSKIT_SAMPLING_RATIO``."""

OBSKIT_LOG_LEVEL: Final = "OBSKIT_LOG_LEVEL"
"""Level of the root logger and obskit's handler: DEBUG, INFO, WARNING, ERROR or CRITICAL.

Default: ``INFO``. Keyword: ``log_level``.
"""

OBSKIT_LOG_FORMAT: Final = "OBSKIT_LOG_FORMAT"
"""How log lines are written: ``json`` (one JSON object a line, default) or ``console`` (for humans).

Keyword: ``log_format``.
"""

OBSKIT_METRIC_NAMESPACE: Final = "OBSKIT_METRIC_NAMESPACE"
"""Prefix of obskit's built-in metric families (``<namespace>_jobs_total`` ...).

A Prometheus name: letters, digits and underscores, not starting with a digit. Default: ``obskit``.
Keyword: ``metric_namespace``.
"""

OBSKIT_REDACT_KEYS: Final = "OBSKIT_REDACT_KEYS"
"""Comma-separated extra key patterns to redact, added to the built-in ones.

A key is redacted when, lower-cased and with ``-`` read as ``_``, it contains a pattern not followed
by another letter (a plural ``s`` aside, except for ``token``, so token counts such as
``prompt_tokens`` stay visible). Built in:
password, passwd, secret, token, api_key, apikey, authorization, cookie, connection_string,
private_key, credential. Default: none extra. Keyword: ``redact_keys``.
"""

OBSKIT_SERIES_CAP: Final = "OBSKIT_SERIES_CAP"
"""Most label combinations (series) one metric may create; beyond it values go to one overflow series.

A whole number of at least 1. Default: ``2000``. Keyword: ``series_cap``.
"""

OBSKIT_RUNTIME_METRICS: Final = "OBSKIT_RUNTIME_METRICS"
"""``true`` adds process metrics (CPU seconds, resident memory, open fds, threads, GC collections).

Collected when metrics are read, never by a polling thread. Default: ``false``. Keyword: ``runtime_metrics``.
"""

OBSKIT_HOST_METRICS: Final = "OBSKIT_HOST_METRICS"
"""``true`` adds host CPU, memory and disk metrics through psutil (``pip install "obskit[host]"``).

Default: ``false``. Keyword: ``host_metrics``.
"""

OTEL_METRIC_EXPORT_INTERVAL: Final = "OTEL_METRIC_EXPORT_INTERVAL"
"""Milliseconds between two exports of metrics by push exporters (console included).

A positive number. Default: ``60000``. Keyword: ``metric_export_interval_ms``.
"""

OBSKIT_SHUTDOWN_TIMEOUT: Final = "OBSKIT_SHUTDOWN_TIMEOUT"
"""Overall deadline in seconds for :func:`obskit.shutdown` to flush every signal.

A positive number. Default: ``5``. Keyword: ``shutdown_timeout``.
"""

ALL: Final = tuple(value for key, value in sorted(globals().items()) if key.isupper() and key not in {"ALL"})
"""Every variable name above, sorted."""
