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
"""Comma-separated span exporters: ``console`` (default), ``otlp``, ``jaeger`` (OTLP to Jaeger), ``azure``,
or ``none``. Keyword: ``traces_exporter``.
"""

OTEL_METRICS_EXPORTER: Final = "OTEL_METRICS_EXPORTER"
"""Comma-separated metric exporters: ``console`` (default), ``prometheus``, ``otlp``, ``azure``, or ``none``.

Keyword: ``metrics_exporter``.
"""

OTEL_LOGS_EXPORTER: Final = "OTEL_LOGS_EXPORTER"
"""Comma-separated log exporters: ``console`` (default: JSON lines on stdout), ``otlp``, ``azure``, or
``none``. Keyword: ``logs_exporter``.
"""

OBSKIT_SAMPLING_RATIO: Final = "OBSKIT_SAMPLING_RATIO"
"""Fraction of new traces sampled, from 0 to 1; a parent's decision is always followed.

Falls back to ``OTEL_TRACES_SAMPLER_ARG`` when ``OTEL_TRACES_SAMPLER`` is ``traceidratio`` or
``parentbased_traceidratio``. Default: ``1.0``. Keyword: ``sampling_ratio``.
"""

OTEL_TRACES_SAMPLER: Final = "OTEL_TRACES_SAMPLER"
"""The sampler of new spans, one of the OpenTelemetry specification's names.

``parentbased_traceidratio`` (default; the ratio is ``OBSKIT_SAMPLING_RATIO``),
``parentbased_always_on``, ``parentbased_always_off``, ``traceidratio``, ``always_on``,
``always_off``; ``parentbased_jaeger_remote``, ``jaeger_remote``, ``xray`` and any other name when
an installed package provides it (entry point group ``opentelemetry_traces_sampler``; its
argument is ``OTEL_TRACES_SAMPLER_ARG``). Any other name is a ``ConfigError``. Giving
``sampling_ratio`` with a sampler that takes no ratio is one too. Keyword: ``sampler``.
"""

OTEL_TRACES_SAMPLER_ARG: Final = "OTEL_TRACES_SAMPLER_ARG"
"""The OpenTelemetry sampling ratio; see ``OBSKIT_SAMPLING_RATIO``."""

OTEL_SDK_DISABLED: Final = "OTEL_SDK_DISABLED"
"""``true`` turns every signal off: no spans, metrics or log lines are exported, whatever the
exporter settings say (the recording API keeps working and costs little). Default: ``false``.
Keyword: ``sdk_disabled``.
"""

OBSKIT_LOG_LEVEL: Final = "OBSKIT_LOG_LEVEL"
"""Level of the root logger and obskit's handlers: DEBUG, INFO, WARNING, ERROR or CRITICAL.

Not given, a root level the application set before ``configure()`` (anything but Python's
default, WARNING) is kept. Default: ``INFO``. Keyword: ``log_level``.
"""

OBSKIT_LOG_FORMAT: Final = "OBSKIT_LOG_FORMAT"
"""How log lines are written: ``json`` (one JSON object a line, default) or ``console`` (for humans).

Keyword: ``log_format``.
"""

OBSKIT_LOG_SOURCE: Final = "OBSKIT_LOG_SOURCE"
"""``true`` adds where each log call was made: ``module`` (the file name without ``.py``, as
stdlib's ``%(module)s``), ``function`` and ``line``. Finding the caller costs time on every line
(docs/performance.md), hence off by default. Default: ``false``. Keyword: ``log_source``.
"""

OBSKIT_METRIC_NAMESPACE: Final = "OBSKIT_METRIC_NAMESPACE"
"""Prefix of obskit's built-in metric families (``<namespace>_jobs_total`` ...).

A snake_case Prometheus name: lowercase letters, digits and underscores, not starting with a
digit (promtool flags capitals). Default: ``obskit``.
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

OBSKIT_REDACT_TEXT: Final = "OBSKIT_REDACT_TEXT"
"""Whether credentials in free text are hidden too: ``true`` (the default) or ``false``.

Log messages, exception messages and stacks, string fields, span attributes and events are searched
for URL userinfo (``https://user:pw@host``), the credential after an authorization scheme
(``Bearer eyJ...``, ``Basic ...``) and the value after a sensitive key written in text
(``password=...``, ``"api_key": "..."``, ``?token=...``, ``AccountKey=...``, ``sig=...``); each is
replaced by ``[REDACTED]``. The keys are the ``OBSKIT_REDACT_KEYS`` patterns. Costs about 0.2-0.6 us
per message (see docs/performance.md). Keyword: ``redact_text``.
"""

OBSKIT_REDACT_PATTERNS: Final = "OBSKIT_REDACT_PATTERNS"
"""Extra regular expressions whose every match is replaced by ``[REDACTED]`` in exported text.

Comma-separated, or a JSON list when a pattern holds a comma. Applied wherever ``OBSKIT_REDACT_TEXT``
applies, and even when it is ``false``. Default: none. Keyword: ``redact_patterns``.
"""

OBSKIT_SERIES_CAP: Final = "OBSKIT_SERIES_CAP"
"""Most label combinations (series) one metric may create; beyond it values go to one overflow series.

A whole number of at least 1. Default: ``2000``. Keyword: ``series_cap``.
"""

OBSKIT_HISTOGRAM_BUCKETS: Final = "OBSKIT_HISTOGRAM_BUCKETS"
"""Bucket bounds (seconds) of obskit's duration histograms, by family, as a JSON object.

Families: ``http``, ``db``, ``external_call``, ``job``; say ``{"external_call": [0.5, 1, 5, 10,
30, 60, 120, 300]}``. Bounds are finite, distinct and increasing, at most 40 (``+Inf`` is
implied). Default: none (the built-in buckets of docs/metrics.md). Keyword: ``histogram_buckets``
(a mapping).
"""

OBSKIT_EXPONENTIAL_HISTOGRAMS: Final = "OBSKIT_EXPONENTIAL_HISTOGRAMS"
"""``true`` sends histograms to OTLP as exponential (base-2) histograms instead of explicit buckets.

Their bounds adapt to the values observed (160 buckets), so percentiles stay close whatever the
latencies; the Prometheus exposition keeps the declared buckets. Each observation is then
recorded twice (about 6 µs more each, measured), and only series created after ``configure()``
are in them. Used by ``metrics_exporter=otlp``. Default: ``false``. Keyword: ``exponential_histograms``.
"""

OBSKIT_RUNTIME_METRICS: Final = "OBSKIT_RUNTIME_METRICS"
"""``true`` adds process metrics (CPU seconds, resident memory, open fds, threads, GC collections).

Collected when metrics are read, never by a polling thread. Default: ``false``. Keyword: ``runtime_metrics``.
"""

OBSKIT_HOST_METRICS: Final = "OBSKIT_HOST_METRICS"
"""``true`` adds host CPU, memory, file system and network metrics through psutil.

Needs ``pip install "obskit[host]"``.

Default: ``false``. Keyword: ``host_metrics``.
"""

OTEL_METRIC_EXPORT_INTERVAL: Final = "OTEL_METRIC_EXPORT_INTERVAL"
"""Milliseconds between two exports of metrics by push exporters (console included).

A positive number. Default: ``60000``. Keyword: ``metric_export_interval_ms``.
"""

OBSKIT_SHUTDOWN_TIMEOUT: Final = "OBSKIT_SHUTDOWN_TIMEOUT"
"""Overall deadline in seconds for :func:`obskit.shutdown` to flush every signal.

At exit it bounds the whole exit, from the moment obskit learns of it (a signal, the ASGI
lifespan shutdown or the exit hook): every flush on the way out shares this one budget. A
positive number. Default: ``5``. Keyword: ``shutdown_timeout``.
"""

OTEL_EXPORTER_PROMETHEUS_HOST: Final = "OTEL_EXPORTER_PROMETHEUS_HOST"
"""Address the standalone Prometheus scrape server binds to when no app is given.

Default: ``127.0.0.1`` (loopback; set ``0.0.0.0`` to be scraped from elsewhere). Keyword: ``prometheus_host``.
"""

OTEL_EXPORTER_PROMETHEUS_PORT: Final = "OTEL_EXPORTER_PROMETHEUS_PORT"
"""Port of the standalone Prometheus scrape server; ``0`` picks a free one. Default: ``9464``.

Keyword: ``prometheus_port``.
"""

OBSKIT_PROMETHEUS_PATH: Final = "OBSKIT_PROMETHEUS_PATH"
"""Path of the scrape endpoint, on the standalone server or mounted in the app. Default: ``/metrics``.

Keyword: ``prometheus_path``.
"""

OBSKIT_PROMETHEUS_CREATED: Final = "OBSKIT_PROMETHEUS_CREATED"
"""``true`` serves a ``<name>_created`` series next to every counter and histogram series.

Default: ``false``: a ``_created`` sample is a start time nothing in PromQL needs, and it adds
one series per counter and histogram series to every scrape and push. OTLP and Azure exports
keep their start times either way. Keyword: ``prometheus_created``.
"""

OBSKIT_PROMETHEUS_MULTIPROC_DIR: Final = "OBSKIT_PROMETHEUS_MULTIPROC_DIR"
"""Directory for prometheus_client's multi-process mode (gunicorn, uwsgi): every worker writes there and
a scrape sums them. Falls back to ``PROMETHEUS_MULTIPROC_DIR``. Default: unset (single process).
Keyword: ``multiprocess_dir``.
"""

PROMETHEUS_MULTIPROC_DIR: Final = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's own name for the multi-process directory; see ``OBSKIT_PROMETHEUS_MULTIPROC_DIR``."""

OBSKIT_PUSHGATEWAY_URL: Final = "OBSKIT_PUSHGATEWAY_URL"
"""URL of a Prometheus push gateway for batch jobs (``http://host:9091``). Default: unset (no push).

Keyword: ``pushgateway_url``.
"""

OBSKIT_PUSHGATEWAY_JOB: Final = "OBSKIT_PUSHGATEWAY_JOB"
"""The ``job`` grouping key used when pushing. Default: the service name. Keyword: ``pushgateway_job``."""

OBSKIT_PUSHGATEWAY_GROUPING: Final = "OBSKIT_PUSHGATEWAY_GROUPING"
"""Extra grouping key labels, comma-separated ``key=value`` pairs (``instance=worker-1``).

Default: none. Keyword: ``pushgateway_grouping``.
"""

OBSKIT_PUSH_ON: Final = "OBSKIT_PUSH_ON"
"""When metrics are pushed to the gateway: ``shutdown`` (default), ``job`` (after every ``track_job`` run),
or both, comma-separated. Keyword: ``push_on``.
"""

OBSKIT_JAEGER_ENDPOINT: Final = "OBSKIT_JAEGER_ENDPOINT"
"""Jaeger's OTLP gRPC endpoint, used by ``traces_exporter=jaeger``. Default: ``http://localhost:4317``.

Keyword: ``jaeger_endpoint``.
"""

APPLICATIONINSIGHTS_CONNECTION_STRING: Final = "APPLICATIONINSIGHTS_CONNECTION_STRING"
"""Azure Application Insights connection string, needed by the ``azure`` exporters
(``pip install "obskit[azure]"``). Default: unset. Keyword: ``azure_connection_string``.
"""

OBSKIT_AZURE_LIVE_METRICS: Final = "OBSKIT_AZURE_LIVE_METRICS"
"""``true`` turns on Azure live metrics. Default: ``false``. Keyword: ``azure_live_metrics``."""

OBSKIT_AZURE_OFFLINE_STORAGE: Final = "OBSKIT_AZURE_OFFLINE_STORAGE"
"""``true`` lets the Azure exporters keep failed batches on disk to retry. Default: ``false``.

Keyword: ``azure_offline_storage``.
"""

OBSKIT_AZURE_STATSBEAT: Final = "OBSKIT_AZURE_STATSBEAT"
"""``true`` lets the Azure exporters send their own usage statistics (statsbeat, SDK stats) and poll
Azure's control plane. Default: ``false``. Keyword: ``azure_statsbeat``.
"""

OBSKIT_EXPORT_QUEUE_SIZE: Final = "OBSKIT_EXPORT_QUEUE_SIZE"
"""Most spans and most log records each waiting to be exported; beyond it new ones are dropped and
counted in ``obskit_telemetry_dropped_total{signal,reason="queue_full"}``. Default: ``2048``.
Keyword: ``export_queue_size``.
"""

OTEL_BSP_MAX_EXPORT_BATCH_SIZE: Final = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"
"""Most spans in one export; the batch span processor also wakes to export as soon as this many
wait. Default: ``128`` (OpenTelemetry's is 512), at most ``export_queue_size``. Keyword:
``export_batch_size``.

Smaller than the SDK's default because in Python a span waiting for its batch is an object the
garbage collector tracks: under a steady load, 512 waiting spans (and their contexts and
attributes) survive into the collector's older generations and make it run full collections,
which 128 rarely do (docs/performance.md). Exporters send more, smaller requests.
"""

OTEL_EXPORTER_OTLP_ENDPOINT: Final = "OTEL_EXPORTER_OTLP_ENDPOINT"
"""OTLP, every signal: Endpoint URL. Default: the exporter's default (``http://localhost:4317`` for gRPC,
``http://localhost:4318`` for HTTP, with ``/v1/<signal>`` appended to a generic HTTP endpoint as the
specification says). Keyword: ``otlp_endpoint``.
"""

OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: Final = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
"""OTLP, traces only: overrides ``OTEL_EXPORTER_OTLP_ENDPOINT``. Keyword: ``otlp_traces_endpoint``."""

OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: Final = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
"""OTLP, metrics only: overrides ``OTEL_EXPORTER_OTLP_ENDPOINT``. Keyword: ``otlp_metrics_endpoint``."""

OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: Final = "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"
"""OTLP, logs only: overrides ``OTEL_EXPORTER_OTLP_ENDPOINT``. Keyword: ``otlp_logs_endpoint``."""

OTEL_EXPORTER_OTLP_PROTOCOL: Final = "OTEL_EXPORTER_OTLP_PROTOCOL"
"""OTLP, every signal: Transport, ``grpc`` or ``http/protobuf``. Default: ``http/protobuf`` (the
specification's default). Keyword: ``otlp_protocol``.
"""

OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: Final = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
"""OTLP, traces only: overrides ``OTEL_EXPORTER_OTLP_PROTOCOL``. Keyword: ``otlp_traces_protocol``."""

OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: Final = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"
"""OTLP, metrics only: overrides ``OTEL_EXPORTER_OTLP_PROTOCOL``. Keyword: ``otlp_metrics_protocol``."""

OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: Final = "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL"
"""OTLP, logs only: overrides ``OTEL_EXPORTER_OTLP_PROTOCOL``. Keyword: ``otlp_logs_protocol``."""

OTEL_EXPORTER_OTLP_HEADERS: Final = "OTEL_EXPORTER_OTLP_HEADERS"
"""OTLP, every signal: Headers sent with every export, comma-separated ``key=value`` pairs (values percent-
decoded). Default: none. Keyword: ``otlp_headers``.
"""

OTEL_EXPORTER_OTLP_TRACES_HEADERS: Final = "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
"""OTLP, traces only: overrides ``OTEL_EXPORTER_OTLP_HEADERS``. Keyword: ``otlp_traces_headers``."""

OTEL_EXPORTER_OTLP_METRICS_HEADERS: Final = "OTEL_EXPORTER_OTLP_METRICS_HEADERS"
"""OTLP, metrics only: overrides ``OTEL_EXPORTER_OTLP_HEADERS``. Keyword: ``otlp_metrics_headers``."""

OTEL_EXPORTER_OTLP_LOGS_HEADERS: Final = "OTEL_EXPORTER_OTLP_LOGS_HEADERS"
"""OTLP, logs only: overrides ``OTEL_EXPORTER_OTLP_HEADERS``. Keyword: ``otlp_logs_headers``."""

OTEL_EXPORTER_OTLP_TIMEOUT: Final = "OTEL_EXPORTER_OTLP_TIMEOUT"
"""OTLP, every signal: Export timeout in milliseconds, as the specification defines it. Default: ``10000``.
Keyword: ``otlp_timeout``.
"""

OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: Final = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"
"""OTLP, traces only: overrides ``OTEL_EXPORTER_OTLP_TIMEOUT``. Keyword: ``otlp_traces_timeout``."""

OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: Final = "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT"
"""OTLP, metrics only: overrides ``OTEL_EXPORTER_OTLP_TIMEOUT``. Keyword: ``otlp_metrics_timeout``."""

OTEL_EXPORTER_OTLP_LOGS_TIMEOUT: Final = "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT"
"""OTLP, logs only: overrides ``OTEL_EXPORTER_OTLP_TIMEOUT``. Keyword: ``otlp_logs_timeout``."""

OTEL_EXPORTER_OTLP_COMPRESSION: Final = "OTEL_EXPORTER_OTLP_COMPRESSION"
"""OTLP, every signal: Compression, ``gzip``, ``deflate`` (gRPC only) or ``none``. Default: ``none``.

Keyword: ``otlp_compression``.
"""

OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: Final = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"
"""OTLP, traces only: overrides ``OTEL_EXPORTER_OTLP_COMPRESSION``. Keyword: ``otlp_traces_compression``."""

OTEL_EXPORTER_OTLP_METRICS_COMPRESSION: Final = "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION"
"""OTLP, metrics only: overrides ``OTEL_EXPORTER_OTLP_COMPRESSION``. Keyword: ``otlp_metrics_compression``."""

OTEL_EXPORTER_OTLP_LOGS_COMPRESSION: Final = "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION"
"""OTLP, logs only: overrides ``OTEL_EXPORTER_OTLP_COMPRESSION``. Keyword: ``otlp_logs_compression``."""

OTEL_EXPORTER_OTLP_CERTIFICATE: Final = "OTEL_EXPORTER_OTLP_CERTIFICATE"
"""OTLP, every signal: Path of a PEM file of trusted certificates for TLS. Default: the system's. Keyword:
``otlp_certificate``.
"""

OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE: Final = "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE"
"""OTLP, traces only: overrides ``OTEL_EXPORTER_OTLP_CERTIFICATE``. Keyword: ``otlp_traces_certificate``."""

OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE: Final = "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE"
"""OTLP, metrics only: overrides ``OTEL_EXPORTER_OTLP_CERTIFICATE``. Keyword: ``otlp_metrics_certificate``."""

OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE: Final = "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE"
"""OTLP, logs only: overrides ``OTEL_EXPORTER_OTLP_CERTIFICATE``. Keyword: ``otlp_logs_certificate``."""

OTEL_EXPORTER_OTLP_INSECURE: Final = "OTEL_EXPORTER_OTLP_INSECURE"
"""OTLP, every signal: ``true`` for plain-text gRPC to an ``https``-less endpoint. Default: derived from
the endpoint's scheme. Keyword: ``otlp_insecure``.
"""

OTEL_EXPORTER_OTLP_TRACES_INSECURE: Final = "OTEL_EXPORTER_OTLP_TRACES_INSECURE"
"""OTLP, traces only: overrides ``OTEL_EXPORTER_OTLP_INSECURE``. Keyword: ``otlp_traces_insecure``."""

OTEL_EXPORTER_OTLP_METRICS_INSECURE: Final = "OTEL_EXPORTER_OTLP_METRICS_INSECURE"
"""OTLP, metrics only: overrides ``OTEL_EXPORTER_OTLP_INSECURE``. Keyword: ``otlp_metrics_insecure``."""

OTEL_EXPORTER_OTLP_LOGS_INSECURE: Final = "OTEL_EXPORTER_OTLP_LOGS_INSECURE"
"""OTLP, logs only: overrides ``OTEL_EXPORTER_OTLP_INSECURE``. Keyword: ``otlp_logs_insecure``."""

OTEL_PYTHON_EXCLUDED_URLS: Final = "OTEL_PYTHON_EXCLUDED_URLS"
"""Comma-separated regular expressions; a request whose path matches one (``re.search``) gets no span,
metrics or access log. Default: the scrape path and the three health paths. Keyword: ``excluded_urls``.
"""

OBSKIT_HEALTH_PATH: Final = "OBSKIT_HEALTH_PATH"
"""Path of the full health report (JSON, every check) mounted by ``configure(app)``. Default: ``/health``.

Keyword: ``health_path``.
"""

OBSKIT_LIVENESS_PATH: Final = "OBSKIT_LIVENESS_PATH"
"""Path of the liveness probe (always cheap, runs no check). Default: ``/health/live``.

Keyword: ``liveness_path``.
"""

OBSKIT_READINESS_PATH: Final = "OBSKIT_READINESS_PATH"
"""Path of the readiness probe (503 when a critical check fails). Default: ``/health/ready``.

Keyword: ``readiness_path``.
"""

OBSKIT_REQUEST_ID_HEADER: Final = "OBSKIT_REQUEST_ID_HEADER"
"""Header carrying the request id, read from requests and echoed in responses (``OBSKIT_REQUEST_ID_ECHO``).

Default: ``X-Request-ID``.

Keyword: ``request_id_header``.
"""

OBSKIT_REQUEST_ID_ECHO: Final = "OBSKIT_REQUEST_ID_ECHO"
"""When the request id goes back in the response's ``OBSKIT_REQUEST_ID_HEADER`` header.

``incoming`` (default): only when the request carried one (the caller asked for correlation; an
invalid one is answered with its replacement), so that an app's responses are otherwise exactly
its own; ``always``: a generated id too; ``never``. A response whose app set the header keeps
its own. Keyword: ``request_id_echo``.
"""

OBSKIT_ACCESS_LOG: Final = "OBSKIT_ACCESS_LOG"
"""``false`` turns off the one-line access log per request. Default: ``true``. Keyword: ``access_log``."""

OBSKIT_TRUST_FORWARDED: Final = "OBSKIT_TRUST_FORWARDED"
"""``true`` when every request comes through a proxy you run: server spans then take ``url.scheme``,
``client.address`` and ``server.address``/``server.port`` from ``Forwarded``, or from
``X-Forwarded-Proto``, ``X-Forwarded-For`` and ``X-Forwarded-Host``, instead of the connection and
the ``Host`` header. Off, a client could write what these attributes say. Default: ``false``.
Keyword: ``trust_forwarded_headers``."""

OBSKIT_ACCESS_LOG_FLUSH_INTERVAL: Final = "OBSKIT_ACCESS_LOG_FLUSH_INTERVAL"
"""Seconds an access line may wait to be written with others, from 0 to 60. Default: ``1``.

When the console log is JSON and stdout is not a terminal, access lines are written in runs, one
write for up to 64 lines, as nginx's ``access_log buffer=`` does: each line keeps its request's
time, ids and fields when the request ends and is rendered with its run, written when 64 wait,
the oldest has waited this long, or anything else is logged (an ERROR access line, any other
record, a flush, shutdown, exit or fork writes them first, so the order of lines is kept). ``0``
writes every line at once, as on a terminal. A hard kill loses at most the last interval's lines. Keyword:
``access_log_flush_interval``.
"""

OBSKIT_INSTRUMENT_HTTP_CLIENTS: Final = "OBSKIT_INSTRUMENT_HTTP_CLIENTS"
"""``false`` leaves outgoing ``httpx`` and ``requests`` calls alone. Default: ``true``.

When true and the instrumentations are installed (``pip install "obskit[http-clients]"``), outgoing
calls get a CLIENT span and a ``traceparent`` header, so that services chain into one trace; a
client without its instrumentation is skipped silently. Keyword: ``instrument_http_clients``.
"""

OBSKIT_INSTRUMENT_LIBRARIES: Final = "OBSKIT_INSTRUMENT_LIBRARIES"
"""The libraries whose calls get CLIENT spans: ``auto``, ``none`` or names. Default: ``auto``.

Names, comma-separated: ``aiohttp``, ``celery``, ``httpx``, ``psycopg``, ``psycopg2``, ``redis``,
``requests``, ``sqlalchemy``, each through its official OpenTelemetry instrumentation (the extra
of the same name, ``http-clients`` for httpx and requests, ``libraries`` for all). ``auto``
instruments every one whose instrumentation is installed, and skips the others silently; a named
library without its instrumentation gets one warning naming the extra. A library is instrumented
when the application imports it, so an unused one costs nothing. Database and Redis calls also
feed ``obskit_db_query_duration_seconds``, Redis reads ``obskit_cache_requests_total``, Celery
tasks the jobs metrics. ``OBSKIT_INSTRUMENT_HTTP_CLIENTS=false`` removes httpx and requests from
the list. Keyword: ``instrument_libraries``.
"""

OBSKIT_REQUEST_ID_PROPAGATION: Final = "OBSKIT_REQUEST_ID_PROPAGATION"
"""Send the current request id on outgoing calls, in the ``OBSKIT_REQUEST_ID_HEADER`` header.

Every instrumented client that injects trace headers (httpx, requests, any OpenTelemetry
instrumentation) adds it, inside a request or a ``LoggingContext``; a downstream service running
obskit takes it up as its own request id. Default: ``true``. Keyword: ``request_id_propagation``.
"""

ALL: Final = tuple(value for key, value in sorted(globals().items()) if key.isupper() and key not in {"ALL"})
"""Every variable name above, sorted."""
