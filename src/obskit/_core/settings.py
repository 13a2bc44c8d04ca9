"""Settings: one frozen dataclass, resolved as keyword argument > environment variable > default."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import unquote, urlparse

from obskit import environment_variables as env
from obskit._core.errors import ConfigError
from obskit._core.frozen import frozen_dataclass

__all__ = [
    "BACKEND_SETTINGS",
    "EXPORTERS",
    "SECRET_SETTINGS",
    "Settings",
    "given_settings",
    "ignored_settings",
    "is_used",
    "rejected_settings",
    "resolve_settings",
    "unknown_variables",
]

#: Exporter names each signal accepts in this version.
EXPORTERS: Mapping[str, tuple[str, ...]] = {
    "traces_exporter": ("console", "otlp", "jaeger", "azure", "none"),
    "metrics_exporter": ("console", "prometheus", "otlp", "azure", "none"),
    "logs_exporter": ("console", "otlp", "azure", "none"),
}
OTLP_PROTOCOLS = ("grpc", "http/protobuf")
OTLP_COMPRESSIONS = ("gzip", "deflate", "none")
OTLP_SIGNALS = ("traces", "metrics", "logs")
OTLP_OPTIONS = ("endpoint", "protocol", "headers", "timeout", "compression", "certificate", "insecure")
PUSH_ON = ("job", "shutdown")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("json", "console")
#: When the request id goes back in the response header: always, only when the request carried
#: one, or never.
REQUEST_ID_ECHOES = ("incoming", "always", "never")
#: The samplers ``OTEL_TRACES_SAMPLER`` may name (the OpenTelemetry specification's list). The
#: last three come from separate packages, found through the ``opentelemetry_traces_sampler``
#: entry points as the SDK finds them; any other name such an entry point provides is accepted.
SAMPLERS = (
    "parentbased_traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "traceidratio",
    "always_on",
    "always_off",
    "parentbased_jaeger_remote",
    "jaeger_remote",
    "xray",
)
#: The samplers the OpenTelemetry SDK itself provides; the others need their package installed.
BUILTIN_SAMPLERS = SAMPLERS[:6]
SAMPLER_ENTRY_POINTS = "opentelemetry_traces_sampler"
#: Compiled (and cached by ``re``) when first used, as the other patterns of this module.
_NAMESPACE = r"^[a-z_][a-z0-9_]*$"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@frozen_dataclass()
class Settings:
    """The resolved configuration obskit runs with. Build it with :func:`resolve_settings`."""

    service_name: str = "unknown_service:python"
    service_version: str | None = None
    environment: str = "development"
    resource_attributes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    traces_exporter: tuple[str, ...] = ("console",)
    metrics_exporter: tuple[str, ...] = ("console",)
    logs_exporter: tuple[str, ...] = ("console",)
    sampling_ratio: float = 1.0
    sampler: str = "parentbased_traceidratio"
    sdk_disabled: bool = False
    log_level: str = "INFO"
    log_format: str = "json"
    log_source: bool = False
    metric_namespace: str = "obskit"
    redact_keys: tuple[str, ...] = ()
    redact_text: bool = True
    redact_patterns: tuple[str, ...] = ()
    series_cap: int = 2000
    histogram_buckets: Mapping[str, tuple[float, ...]] = dataclasses.field(default_factory=dict)
    exponential_histograms: bool = False
    runtime_metrics: bool = False
    host_metrics: bool = False
    metric_export_interval_ms: float = 60_000.0
    shutdown_timeout: float = 5.0
    export_queue_size: int = 2048
    export_batch_size: int = 128
    prometheus_host: str = "127.0.0.1"
    prometheus_port: int = 9464
    prometheus_path: str = "/metrics"
    prometheus_created: bool = False
    multiprocess_dir: str | None = None
    pushgateway_url: str | None = None
    pushgateway_job: str | None = None
    pushgateway_grouping: Mapping[str, str] = dataclasses.field(default_factory=dict)
    push_on: tuple[str, ...] = ("shutdown",)
    jaeger_endpoint: str = "http://localhost:4317"
    azure_connection_string: str | None = dataclasses.field(default=None, repr=False)
    azure_live_metrics: bool = False
    azure_offline_storage: bool = False
    azure_statsbeat: bool = False
    excluded_urls: tuple[str, ...] | None = None
    health_path: str = "/health"
    liveness_path: str = "/health/live"
    readiness_path: str = "/health/ready"
    request_id_header: str = "X-Request-ID"
    request_id_echo: str = "incoming"
    access_log: bool = True
    access_log_flush_interval: float = 1.0
    trust_forwarded_headers: bool = False
    instrument_http_clients: bool = True
    instrument_libraries: tuple[str, ...] = ("auto",)
    request_id_propagation: bool = True
    otlp_endpoint: str | None = None
    otlp_protocol: str = "http/protobuf"
    otlp_headers: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)
    otlp_timeout: float = 10_000.0
    otlp_compression: str = "none"
    otlp_certificate: str | None = None
    otlp_insecure: bool | None = None
    otlp_traces_endpoint: str | None = None
    otlp_traces_protocol: str | None = None
    otlp_traces_headers: Mapping[str, str] | None = dataclasses.field(default=None, repr=False)
    otlp_traces_timeout: float | None = None
    otlp_traces_compression: str | None = None
    otlp_traces_certificate: str | None = None
    otlp_traces_insecure: bool | None = None
    otlp_metrics_endpoint: str | None = None
    otlp_metrics_protocol: str | None = None
    otlp_metrics_headers: Mapping[str, str] | None = dataclasses.field(default=None, repr=False)
    otlp_metrics_timeout: float | None = None
    otlp_metrics_compression: str | None = None
    otlp_metrics_certificate: str | None = None
    otlp_metrics_insecure: bool | None = None
    otlp_logs_endpoint: str | None = None
    otlp_logs_protocol: str | None = None
    otlp_logs_headers: Mapping[str, str] | None = dataclasses.field(default=None, repr=False)
    otlp_logs_timeout: float | None = None
    otlp_logs_compression: str | None = None
    otlp_logs_certificate: str | None = None
    otlp_logs_insecure: bool | None = None

    def excluded_patterns(self) -> tuple[str, ...]:
        """Regular expressions of the paths not instrumented: the setting, else scrape and health paths."""
        if self.excluded_urls is not None:
            return self.excluded_urls
        paths = (self.prometheus_path, self.health_path, self.liveness_path, self.readiness_path)
        return tuple(f"^{re.escape(p)}$" for p in paths)

    def otlp(self, signal: str, option: str) -> Any:
        """The OTLP ``option`` for ``signal`` (traces, metrics, logs): per-signal value, else generic."""
        specific = getattr(self, f"otlp_{signal}_{option}")
        return specific if specific is not None else getattr(self, f"otlp_{option}")


# Each parser takes the setting's name (for its error) and the value, then the arguments its
# spec gives (see _FIELDS): one function per kind of value, shared by the settings of that kind,
# instead of a closure per setting (146 of them, made at every start and freed at every exit).


def _exporters(setting: str, value: object) -> tuple[str, ...]:
    allowed = EXPORTERS[setting]
    items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
    names = tuple(dict.fromkeys(str(i).strip().lower() for i in items if str(i).strip()))
    if not names or any(n not in allowed for n in names) or ("none" in names and len(names) > 1):
        raise ConfigError(setting, value, allowed, "Several may be given, comma-separated; 'none' alone.")
    return () if names == ("none",) else names


def _choice(setting: str, value: object, allowed: tuple[str, ...], upper: bool) -> str:
    text = str(value).strip()
    text = text.upper() if upper else text.lower()
    if text not in allowed:
        raise ConfigError(setting, value, allowed)
    return text


def _number(setting: str, value: object, kind: type, low: float, high: float, allowed: str) -> Any:
    try:
        if isinstance(value, bool):
            raise TypeError
        number = kind(value.strip() if isinstance(value, str) else value)
        if kind is int and isinstance(value, float) and value != number:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(setting, value, allowed) from None
    if not low <= number <= high:
        raise ConfigError(setting, value, allowed)
    return number


def _flag(setting: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ConfigError(setting, value, "true, false, 1, 0, yes, no, on, off")


def _text(setting: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(setting, value, "a non-empty string")
    return value.strip()


def _namespace(setting: str, value: object) -> str:
    if not isinstance(value, str) or not re.match(_NAMESPACE, value):
        raise ConfigError(
            setting,
            value,
            "a snake_case Prometheus name: [a-z_][a-z0-9_]*",
            "promtool flags capitals in metric names.",
        )
    return value


def _key_list(setting: str, value: object) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    try:
        keys = tuple(str(k).strip().lower().replace("-", "_") for k in items)  # type: ignore[attr-defined]
    except TypeError:
        raise ConfigError(setting, value, "a list of key patterns or a comma-separated string") from None
    return tuple(k for k in keys if k)


#: The built-in histogram families whose buckets ``histogram_buckets`` may set.
HISTOGRAM_FAMILIES: Final = ("http", "db", "external_call", "job")
#: Most buckets one histogram family may have: each is one series per label combination.
MAX_BUCKETS: Final = 40


def _bucket_list(family: str, value: object) -> tuple[float, ...]:
    """``value`` as a histogram's upper bounds: finite, distinct, increasing numbers (``+Inf`` implied)."""
    items = value.replace(",", " ").split() if isinstance(value, str) else value
    bounds = tuple(float(b) for b in items)  # type: ignore[attr-defined]
    if bounds and math.isinf(bounds[-1]) and bounds[-1] > 0:
        bounds = bounds[:-1]
    if not bounds or len(bounds) > MAX_BUCKETS:
        raise ValueError(f"{family}: from 1 to {MAX_BUCKETS} bucket bounds")
    if any(math.isnan(b) or math.isinf(b) for b in bounds) or list(bounds) != sorted(set(bounds)):
        raise ValueError(f"{family}: bounds must be finite, distinct and increasing")
    return bounds


def parse_histogram_buckets(value: object) -> dict[str, tuple[float, ...]]:
    allowed = (
        "a mapping of family to increasing bucket bounds, as JSON in the environment:"
        f' {{"external_call": [0.1, 1, 10, 60, 300]}}; families: {", ".join(HISTOGRAM_FAMILIES)}'
    )
    try:
        items = json.loads(value) if isinstance(value, str) else value
        if not isinstance(items, Mapping):
            raise ValueError("not a mapping")
        result = {}
        for family, bounds in items.items():
            if family not in HISTOGRAM_FAMILIES:
                raise ValueError(f"unknown family {family!r}")
            result[str(family)] = _bucket_list(family, bounds)
        return result
    except (TypeError, ValueError) as error:
        raise ConfigError("histogram_buckets", value, allowed, f"Not one: {error}") from None


def _histogram_buckets(setting: str, value: object) -> dict[str, tuple[float, ...]]:
    return parse_histogram_buckets(value)


def _pairs(setting: str, value: object) -> dict[str, str]:
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    result: dict[str, str] = {}
    for pair in str(value).split(","):
        if not pair.strip():
            continue
        key, sep, val = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(setting, value, "comma-separated key=value pairs")
        result[unquote(key.strip())] = unquote(val.strip())
    return result


def _url(setting: str, value: object, bare: bool) -> str:
    """An http or https URL with a host; with ``bare``, ``host:port`` too."""
    text = str(value).strip()
    parsed = urlparse(text)
    if parsed.scheme in ("http", "https") and parsed.netloc:
        return text
    if bare and re.match(r"^[A-Za-z0-9.\-\[\]:]+:\d+$", text):
        return text
    allowed = "http://host[:port][/path] or https://host[:port][/path]"
    raise ConfigError(setting, value, allowed + (" or host:port" if bare else ""))


def _path(setting: str, value: object) -> str:
    text = str(value).strip()
    if not text.startswith("/") or any(c.isspace() for c in text):
        raise ConfigError(setting, value, "a URL path starting with /")
    return text


def _existing(setting: str, value: object, directory: bool) -> str:
    text = str(value).strip()
    if not (os.path.isdir(text) if directory else os.path.isfile(text)):
        raise ConfigError(setting, value, "an existing directory" if directory else "an existing file")
    return text


def _subset(setting: str, value: object, allowed: tuple[str, ...]) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
    names = tuple(dict.fromkeys(str(i).strip().lower() for i in items if str(i).strip()))
    if not names or any(n not in allowed for n in names):
        raise ConfigError(setting, value, allowed, "Several may be given, comma-separated.")
    return names


#: The libraries ``instrument_libraries`` may name (``_web/libraries.py`` holds how each is instrumented).
INSTRUMENTABLE_LIBRARIES = (
    "aiohttp",
    "celery",
    "httpx",
    "psycopg",
    "psycopg2",
    "redis",
    "requests",
    "sqlalchemy",
)


def _libraries(setting: str, value: object) -> tuple[str, ...]:
    """``auto``, ``none`` or a comma list of :data:`INSTRUMENTABLE_LIBRARIES`; ``none`` is ``()``."""
    allowed = ("auto", "none", *INSTRUMENTABLE_LIBRARIES)
    hint = "auto (every installed one), none, or library names, comma-separated."
    items = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
    names = tuple(dict.fromkeys(str(i).strip().lower() for i in items if str(i).strip()))
    if not names or any(n not in allowed for n in names):
        raise ConfigError(setting, value, allowed, hint)
    if len(names) > 1 and ("auto" in names or "none" in names):
        raise ConfigError(setting, value, allowed, f"auto and none stand alone. {hint}")
    return () if names == ("none",) else names


def _regexes(setting: str, value: object) -> tuple[str, ...]:
    try:
        if isinstance(value, str):
            text = value.strip()
            # Regular expressions often hold commas: a JSON list keeps them whole.
            items: object = json.loads(text) if text.startswith("[") else text.split(",")
        else:
            items = value
        patterns = tuple(str(p).strip() for p in items if str(p).strip())  # type: ignore[attr-defined]
        for pattern in patterns:
            re.compile(pattern)
    except (TypeError, ValueError, re.error) as error:
        raise ConfigError(
            setting,
            value,
            "comma-separated regular expressions (or a JSON list of them)",
            f"Not one: {error}",
        ) from None
    return patterns


def _header_name(setting: str, value: object) -> str:
    text = str(value).strip()
    if not re.match(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", text):
        raise ConfigError(setting, value, "an HTTP header name (letters, digits, - and _)")
    return text


def _connection_string(setting: str, value: object) -> str:
    text = str(value).strip()
    keys = {part.partition("=")[0].strip().lower() for part in text.split(";") if "=" in part}
    if "instrumentationkey" not in keys:
        raise ConfigError(
            setting,
            "<hidden>",
            "an Application Insights connection string: InstrumentationKey=...;IngestionEndpoint=https://...",
        )
    return text


def _sampler_plugins() -> list[str]:
    """Names of the samplers installed packages provide (``opentelemetry_traces_sampler`` entry points)."""
    from importlib.metadata import entry_points

    return sorted(point.name for point in entry_points(group=SAMPLER_ENTRY_POINTS))


def _close_matches(name: str, options: Iterable[str], cutoff: float = 0.6) -> list[str]:
    """The option nearest to a misspelled ``name``, if one is near (difflib: imported for errors only)."""
    import difflib

    return difflib.get_close_matches(name, options, n=1, cutoff=cutoff)


def _sampler(setting: str, value: object) -> str:
    name = str(value).strip().lower()
    if name in BUILTIN_SAMPLERS:
        return name
    plugins = _sampler_plugins()
    if name in plugins:
        return name
    allowed = [*BUILTIN_SAMPLERS, *(p for p in plugins if p not in BUILTIN_SAMPLERS)]
    if name in SAMPLERS:
        hint = (
            f"{name!r} is a sampler of the OpenTelemetry specification that the SDK does not provide:"
            f" install the package that registers it (entry point group {SAMPLER_ENTRY_POINTS!r});"
            " none installed does."
        )
    else:
        close = _close_matches(name, [*SAMPLERS, *plugins])
        hint = f"Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(setting, value, allowed, hint)


#: How a setting's value is parsed: a parser of this module, then its arguments after the
#: setting's name and the value. Settings of one kind share one spec.
_Spec = tuple[Any, ...]
_FLAG: _Spec = (_flag,)
_TEXT: _Spec = (_text,)
_PATH: _Spec = (_path,)
_PAIRS: _Spec = (_pairs,)
_COUNT = "a whole number >= 1"
_OTLP_SPECS: dict[str, _Spec] = {
    "endpoint": (_url, True),
    "protocol": (_choice, OTLP_PROTOCOLS, False),
    "headers": _PAIRS,
    "timeout": (_number, float, 0.001, 3_600_000.0, "a positive number of milliseconds"),
    "compression": (_choice, OTLP_COMPRESSIONS, False),
    "certificate": (_existing, False),
    "insecure": _FLAG,
}


def _otlp_fields() -> dict[str, tuple[tuple[str, ...], _Spec]]:
    fields: dict[str, tuple[tuple[str, ...], _Spec]] = {}
    for option, spec in _OTLP_SPECS.items():
        fields[f"otlp_{option}"] = ((f"OTEL_EXPORTER_OTLP_{option.upper()}",), spec)
        for signal in OTLP_SIGNALS:
            name = f"otlp_{signal}_{option}"
            fields[name] = ((f"OTEL_EXPORTER_OTLP_{signal.upper()}_{option.upper()}",), spec)
    return fields


#: Setting name -> (the variables read for it, first found wins; how its value is parsed).
_FIELDS: dict[str, tuple[tuple[str, ...], _Spec]] = {
    "service_name": ((env.OBSKIT_SERVICE_NAME, env.OTEL_SERVICE_NAME), _TEXT),
    "service_version": ((env.OBSKIT_SERVICE_VERSION,), _TEXT),
    "environment": ((env.OBSKIT_ENVIRONMENT,), _TEXT),
    "resource_attributes": ((env.OTEL_RESOURCE_ATTRIBUTES,), _PAIRS),
    "traces_exporter": ((env.OTEL_TRACES_EXPORTER,), (_exporters,)),
    "metrics_exporter": ((env.OTEL_METRICS_EXPORTER,), (_exporters,)),
    "logs_exporter": ((env.OTEL_LOGS_EXPORTER,), (_exporters,)),
    "sampling_ratio": ((env.OBSKIT_SAMPLING_RATIO,), (_number, float, 0.0, 1.0, "a number from 0 to 1")),
    "sampler": ((env.OTEL_TRACES_SAMPLER,), (_sampler,)),
    "sdk_disabled": ((env.OTEL_SDK_DISABLED,), _FLAG),
    "log_level": ((env.OBSKIT_LOG_LEVEL,), (_choice, LOG_LEVELS, True)),
    "log_format": ((env.OBSKIT_LOG_FORMAT,), (_choice, LOG_FORMATS, False)),
    "log_source": ((env.OBSKIT_LOG_SOURCE,), _FLAG),
    "metric_namespace": ((env.OBSKIT_METRIC_NAMESPACE,), (_namespace,)),
    "redact_keys": ((env.OBSKIT_REDACT_KEYS,), (_key_list,)),
    "redact_text": ((env.OBSKIT_REDACT_TEXT,), _FLAG),
    "redact_patterns": ((env.OBSKIT_REDACT_PATTERNS,), (_regexes,)),
    "series_cap": ((env.OBSKIT_SERIES_CAP,), (_number, int, 1, 10**7, _COUNT)),
    "histogram_buckets": ((env.OBSKIT_HISTOGRAM_BUCKETS,), (_histogram_buckets,)),
    "exponential_histograms": ((env.OBSKIT_EXPONENTIAL_HISTOGRAMS,), _FLAG),
    "runtime_metrics": ((env.OBSKIT_RUNTIME_METRICS,), _FLAG),
    "host_metrics": ((env.OBSKIT_HOST_METRICS,), _FLAG),
    "metric_export_interval_ms": (
        (env.OTEL_METRIC_EXPORT_INTERVAL,),
        (_number, float, 1.0, 1e12, "a positive number of milliseconds"),
    ),
    "shutdown_timeout": (
        (env.OBSKIT_SHUTDOWN_TIMEOUT,),
        (_number, float, 0.001, 3600.0, "a positive number of seconds, at most 3600"),
    ),
    "export_queue_size": ((env.OBSKIT_EXPORT_QUEUE_SIZE,), (_number, int, 1, 10**7, _COUNT)),
    "export_batch_size": ((env.OTEL_BSP_MAX_EXPORT_BATCH_SIZE,), (_number, int, 1, 10**6, _COUNT)),
    "prometheus_host": ((env.OTEL_EXPORTER_PROMETHEUS_HOST,), _TEXT),
    "prometheus_port": (
        (env.OTEL_EXPORTER_PROMETHEUS_PORT,),
        (_number, int, 0, 65535, "a port number from 0 (any free port) to 65535"),
    ),
    "prometheus_path": ((env.OBSKIT_PROMETHEUS_PATH,), _PATH),
    "prometheus_created": ((env.OBSKIT_PROMETHEUS_CREATED,), _FLAG),
    "multiprocess_dir": (
        (env.OBSKIT_PROMETHEUS_MULTIPROC_DIR, env.PROMETHEUS_MULTIPROC_DIR),
        (_existing, True),
    ),
    "pushgateway_url": ((env.OBSKIT_PUSHGATEWAY_URL,), (_url, False)),
    "pushgateway_job": ((env.OBSKIT_PUSHGATEWAY_JOB,), _TEXT),
    "pushgateway_grouping": ((env.OBSKIT_PUSHGATEWAY_GROUPING,), _PAIRS),
    "push_on": ((env.OBSKIT_PUSH_ON,), (_subset, PUSH_ON)),
    "jaeger_endpoint": ((env.OBSKIT_JAEGER_ENDPOINT,), (_url, True)),
    "azure_connection_string": ((env.APPLICATIONINSIGHTS_CONNECTION_STRING,), (_connection_string,)),
    "azure_live_metrics": ((env.OBSKIT_AZURE_LIVE_METRICS,), _FLAG),
    "azure_offline_storage": ((env.OBSKIT_AZURE_OFFLINE_STORAGE,), _FLAG),
    "azure_statsbeat": ((env.OBSKIT_AZURE_STATSBEAT,), _FLAG),
    "excluded_urls": ((env.OTEL_PYTHON_EXCLUDED_URLS,), (_regexes,)),
    "health_path": ((env.OBSKIT_HEALTH_PATH,), _PATH),
    "liveness_path": ((env.OBSKIT_LIVENESS_PATH,), _PATH),
    "readiness_path": ((env.OBSKIT_READINESS_PATH,), _PATH),
    "request_id_header": ((env.OBSKIT_REQUEST_ID_HEADER,), (_header_name,)),
    "request_id_echo": ((env.OBSKIT_REQUEST_ID_ECHO,), (_choice, REQUEST_ID_ECHOES, False)),
    "access_log": ((env.OBSKIT_ACCESS_LOG,), _FLAG),
    "trust_forwarded_headers": ((env.OBSKIT_TRUST_FORWARDED,), _FLAG),
    "access_log_flush_interval": (
        (env.OBSKIT_ACCESS_LOG_FLUSH_INTERVAL,),
        (_number, float, 0.0, 60.0, "a number of seconds from 0 to 60 (0: write each access line at once)"),
    ),
    "request_id_propagation": ((env.OBSKIT_REQUEST_ID_PROPAGATION,), _FLAG),
    "instrument_http_clients": ((env.OBSKIT_INSTRUMENT_HTTP_CLIENTS,), _FLAG),
    "instrument_libraries": ((env.OBSKIT_INSTRUMENT_LIBRARIES,), (_libraries,)),
    **_otlp_fields(),
}


def _parse(name: str, spec: _Spec, value: object) -> Any:
    """``value`` of setting ``name`` parsed as ``spec`` says; a ConfigError if it is invalid."""
    return spec[0](name, value, *spec[1:])


def _sampler_ratio(environ: Mapping[str, str], sampler: str) -> str | None:
    if sampler in {"traceidratio", "parentbased_traceidratio"}:
        return environ.get(env.OTEL_TRACES_SAMPLER_ARG)
    return None


#: Settings whose values may hold a secret (keys, tokens, passwords): an error about one of them
#: does not quote the value (it would end up in logs and crash reports); in any other setting's
#: value a URL's password is hidden.
SECRET_SETTINGS = frozenset(
    {field.name for field in dataclasses.fields(Settings) if not field.repr} | {"pushgateway_url"}
)


def _shown(error: ConfigError, name: str) -> ConfigError:
    """``error`` as it may be shown: no secret setting's value, no password in a URL."""
    if name in SECRET_SETTINGS:
        hint = f"{error.hint} (The value is not shown: {name} may hold a secret.)".strip()
        return ConfigError(error.setting, "<hidden>", error.allowed, hint)
    value = error.value
    if isinstance(value, str) and "@" in value:
        masked = re.sub(_URL_PASSWORD, r"\1<hidden>@", value)
        if masked != value:
            return ConfigError(error.setting, masked, error.allowed, error.hint)
    return error


#: ``scheme://user:password@``: the password part of a URL's user information.
_URL_PASSWORD = r"(://[^/@:]*:)[^/@]*@"


#: ``(exporter, signal)`` pairs: the backend is chosen when any of them is.
_Choices = tuple[tuple[str, str], ...]


def _backend_settings() -> dict[str, tuple[str, _Choices]]:
    """Every setting only some backend uses: name -> (that backend, in words; the choices using it)."""
    any_otlp = "an otlp exporter (traces_exporter, metrics_exporter or logs_exporter=otlp)"
    otlp = tuple(("otlp", signal) for signal in OTLP_SIGNALS)
    jaeger = ("jaeger", "traces")
    table: dict[str, tuple[str, _Choices]] = {}
    for option in OTLP_OPTIONS:
        # The jaeger preset takes the OTLP (traces) timeout; nothing else of OTLP's.
        timeout = (jaeger,) if option == "timeout" else ()
        table[f"otlp_{option}"] = (any_otlp, (*otlp, *timeout))
        for signal in OTLP_SIGNALS:
            also = timeout if signal == "traces" else ()
            table[f"otlp_{signal}_{option}"] = (f"{signal}_exporter=otlp", (("otlp", signal), *also))
    prometheus = (("prometheus", "metrics"),)
    for name in ("prometheus_host", "prometheus_port", "prometheus_path", "prometheus_created"):
        table[name] = ("metrics_exporter=prometheus", prometheus)
    for name in ("pushgateway_url", "pushgateway_job", "pushgateway_grouping", "push_on"):
        table[name] = ("metrics_exporter=prometheus (its push gateway)", prometheus)
    table["exponential_histograms"] = ("metrics_exporter=otlp", (("otlp", "metrics"),))
    table["jaeger_endpoint"] = ("traces_exporter=jaeger", (jaeger,))
    any_azure = "an azure exporter (traces_exporter, metrics_exporter or logs_exporter=azure)"
    azure = tuple(("azure", signal) for signal in OTLP_SIGNALS)
    for name in ("azure_connection_string", "azure_live_metrics", "azure_offline_storage", "azure_statsbeat"):
        table[name] = (any_azure, azure)
    return table


#: Settings only some backend uses: name -> (that backend, in words; the ``(exporter, signal)``
#: choices that use it). Given while no chosen backend uses it, such a setting is warned about
#: and ignored, its value never fatal: an ``OTEL_EXPORTER_OTLP_ENDPOINT`` left in a deployment's
#: environment must not stop an application that logs to the console.
BACKEND_SETTINGS = _backend_settings()


def is_used(name: str, settings: Settings) -> bool:
    """Whether a chosen backend uses setting ``name`` (settings of no one backend always are)."""
    entry = BACKEND_SETTINGS.get(name)
    return entry is None or any(
        exporter in getattr(settings, f"{signal}_exporter") for exporter, signal in entry[1]
    )


def given_settings(settings: Settings) -> Mapping[str, str]:
    """Setting name -> where its value came from (``keyword`` or ``$VARIABLE``), for those given.

    Known only for settings made by :func:`resolve_settings`; empty for any other.
    """
    given: Mapping[str, str] = getattr(settings, "_given", {})
    return given


def rejected_settings(settings: Settings) -> Mapping[str, str]:
    """Setting name -> why its value was invalid, for those ignored since no chosen backend uses them.

    The reason names the setting, its source and the values allowed, never the value itself.
    """
    rejected: Mapping[str, str] = getattr(settings, "_rejected", {})
    return rejected


def _raw(
    name: str, variables: tuple[str, ...], overrides: Mapping[str, object], environ: Mapping[str, str]
) -> tuple[object, str] | None:
    if name in overrides and overrides[name] is not None:
        return overrides[name], "keyword"
    for variable in variables:
        raw = environ.get(variable)
        if raw is not None and raw.strip():
            return raw, f"${variable}"
    return None


def _parsed(name: str, spec: _Spec, raw: object, source: str) -> Any:
    try:
        return _parse(name, spec, raw)
    except ConfigError as error:
        named = (
            error
            if source == "keyword"
            else ConfigError(f"{name} (from {source})", raw, error.allowed, error.hint)
        )
        raise _shown(named, name) from None


def resolve_settings(overrides: Mapping[str, object], environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve every setting: keyword > environment variable > default, validating each value.

    A value no chosen backend would use (:data:`BACKEND_SETTINGS`: an invalid
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` with console exporters) is not fatal: it is left out, the
    default stands, and :func:`rejected_settings` says why (``configure()`` warns about it and
    ``obskit doctor`` reports it). The same value is a ConfigError once such a backend is chosen.

    Raises:
        ConfigError: an unknown keyword or a value outside what the setting allows.
    """
    environ = os.environ if environ is None else environ
    unknown = sorted(set(overrides) - set(_FIELDS))
    if unknown:
        raise unknown_setting(unknown[0])
    values: dict[str, Any] = {}
    given: dict[str, str] = {}
    errors: dict[str, ConfigError] = {}
    for name, (variables, spec) in _FIELDS.items():
        found = _raw(name, variables, overrides, environ)
        if found is None:
            continue
        given[name] = found[1]
        try:
            values[name] = _parsed(name, spec, *found)
        except ConfigError as error:
            if name not in BACKEND_SETTINGS:
                raise
            errors[name] = error
    rejected: dict[str, str] = {}
    if errors:
        chosen = Settings(**{k: values[k] for k in EXPORTERS if k in values})
        for name, invalid in errors.items():
            if is_used(name, chosen):
                raise invalid
            rejected[name] = f"{invalid.setting}: invalid value (allowed: {invalid.allowed})"
    sampler = values.get("sampler", Settings.sampler)
    if "sampling_ratio" in values and sampler not in {"traceidratio", "parentbased_traceidratio"}:
        raise ConfigError(
            f"sampler (from {given['sampler']})",
            sampler,
            "traceidratio or parentbased_traceidratio while sampling_ratio is given",
            f"sampling_ratio (from {given['sampling_ratio']}) is the ratio of those two samplers;"
            f" {sampler!r} takes none. Drop one of the two.",
        )
    if (
        "sampling_ratio" not in values
        and "sampler" in values
        and (raw_ratio := _sampler_ratio(environ, sampler))
    ):
        try:
            values["sampling_ratio"] = _parse("sampling_ratio", _FIELDS["sampling_ratio"][1], raw_ratio)
        except ConfigError as error:
            raise ConfigError(
                f"sampling_ratio (from ${env.OTEL_TRACES_SAMPLER_ARG})", raw_ratio, error.allowed
            ) from None
    attributes = values.get("resource_attributes", {})
    for field, keys in (
        ("service_name", ("service.name",)),
        ("service_version", ("service.version",)),
        ("environment", ("deployment.environment.name", "deployment.environment")),
    ):
        if field not in values:
            found = next((attributes[k] for k in keys if attributes.get(k)), None)
            if found:
                values[field] = found
    if values.get("sdk_disabled"):
        # OTEL_SDK_DISABLED: no signal leaves the process, whatever the exporters say.
        values.update(traces_exporter=(), metrics_exporter=(), logs_exporter=())
    settings = Settings(**values)
    # Not fields: they describe how the settings were made, not how obskit runs.
    object.__setattr__(settings, "_given", given)
    object.__setattr__(settings, "_rejected", rejected)
    object.__setattr__(settings, "_unknown_variables", _unknown_variables(environ))
    return settings


def unknown_setting(name: str) -> ConfigError:
    """The error for keyword ``name``, which is no setting: with the nearest setting's name."""
    close = _close_matches(name, _FIELDS)
    guess = f"; did you mean {close[0]!r}?" if close else "; see obskit.environment_variables"
    return ConfigError(name, None, (), message=f"unknown setting {name!r}{guess}")


#: Every variable obskit reads: the constants of :mod:`obskit.environment_variables`.
KNOWN_VARIABLES = frozenset(env.ALL)
#: ``OTEL_*`` variables obskit does not read but others do: a near-miss of one of obskit's is
#: not reported when it is one of these (``OTEL_PYTHON_*`` and instrumentation-specific ones
#: are never looked at).
_OTEL_MODULES = ("opentelemetry.environment_variables", "opentelemetry.sdk.environment_variables")


def _otel_variables() -> frozenset[str]:
    import importlib

    names: set[str] = set()
    for module_name in _OTEL_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # pragma: no cover - the SDK is a dependency
            continue
        names.update(v for k, v in vars(module).items() if k.startswith("OTEL_") and isinstance(v, str))
    return frozenset(names)


def _unknown_variables(environ: Mapping[str, str]) -> tuple[str, ...]:
    """A line per unknown ``OBSKIT_*`` variable, and per near-miss of an ``OTEL_*`` one obskit reads."""
    lines = []
    obskit_names = sorted(n for n in KNOWN_VARIABLES if n.startswith("OBSKIT_"))
    otel_names = sorted(n for n in KNOWN_VARIABLES if n.startswith("OTEL_"))
    others: frozenset[str] | None = None
    for name in sorted(environ):
        if name in KNOWN_VARIABLES:
            continue
        if name.startswith("OBSKIT_"):
            close = _close_matches(name, obskit_names)
            guess = f"; did you mean {close[0]}?" if close else ""
            lines.append(f"environment variable {name} is not an obskit setting and is ignored{guess}")
        elif name.startswith("OTEL_") and not name.startswith("OTEL_PYTHON_"):
            close = _close_matches(name, otel_names, cutoff=0.88)
            if not close:
                continue
            if others is None:
                others = _otel_variables()
            if name not in others:
                lines.append(
                    f"environment variable {name} is not an OpenTelemetry setting obskit reads and is"
                    f" ignored; did you mean {close[0]}?"
                )
    return tuple(lines)


def unknown_variables(settings: Settings) -> list[str]:
    """Misspelled variables in the environment the settings were resolved from; one line each.

    ``OBSKIT_*`` variables obskit does not read, and ``OTEL_*`` variables close to one obskit
    reads that no OpenTelemetry package defines, each with the nearest known name.
    ``configure()`` logs these as warnings; ``obskit doctor`` reports them as problems.
    """
    return list(getattr(settings, "_unknown_variables", ()))


def log_level_number(settings: Settings) -> int:
    """The stdlib number of the configured log level."""
    return logging.getLevelNamesMapping()[settings.log_level]


def _chosen_names(names: tuple[str, ...]) -> str:
    return ",".join(names) or "none"


def ignored_settings(settings: Settings) -> list[str]:
    """Settings given for a backend that is not chosen, so unused; one line each, no network.

    Each line names the setting and where it came from (keyword or environment variable), never
    its value; an invalid value there is among them, since it stopped nothing (see
    :data:`obskit._core.settings.BACKEND_SETTINGS`). Settings not made by ``resolve_settings`` are
    looked at only where a default is "unset". ``configure()`` logs these as warnings too.
    """
    problems = []
    given = dict(given_settings(settings))
    rejected = rejected_settings(settings)
    if settings.pushgateway_url and "prometheus" not in settings.metrics_exporter:
        given.pop("pushgateway_url", None)
        chosen = _chosen_names(settings.metrics_exporter)
        keep = f", or '{chosen},prometheus' to keep {chosen}" if settings.metrics_exporter else ""
        problems.append(
            f"pushgateway_url is set but metrics_exporter is {chosen!r}: the push gateway is only used"
            " with metrics_exporter including 'prometheus', so nothing is pushed; set"
            f" metrics_exporter='prometheus' (OTEL_METRICS_EXPORTER=prometheus){keep}"
        )
    for name, source in given.items():
        if is_used(name, settings):
            continue
        backend = BACKEND_SETTINGS[name][0]
        if name in rejected:
            problems.append(f"{rejected[name]}; ignored, since only {backend} uses it and none is chosen")
        else:
            shown = name if source == "keyword" else f"{name} (from {source})"
            problems.append(f"{shown} is set but ignored: only {backend} uses it, and none is chosen")
    return problems
