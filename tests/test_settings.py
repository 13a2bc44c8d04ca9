"""Settings resolution: keyword > environment variable > default, validation and error messages."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest

import obskit
from obskit import ConfigError, environment_variables
from obskit._core.errors import ObskitError
from obskit._core.settings import (
    _FIELDS,
    BACKEND_SETTINGS,
    EXPORTERS,
    LOG_LEVELS,
    SECRET_SETTINGS,
    Settings,
    rejected_settings,
    resolve_settings,
)

ENV_SOURCE = Path(inspect.getfile(environment_variables)).read_text()
SETTINGS_SOURCE = Path(inspect.getfile(resolve_settings)).read_text()

# field, env var, raw env value, value parsed from env, keyword value, value parsed from keyword.
# Each row has env value != default and keyword value != env value, so each step is observable.
PRECEDENCE = [
    ("service_name", "OBSKIT_SERVICE_NAME", "env-svc", "env-svc", "kw-svc", "kw-svc"),
    ("service_version", "OBSKIT_SERVICE_VERSION", "2.0.0", "2.0.0", "3.1.4", "3.1.4"),
    ("environment", "OBSKIT_ENVIRONMENT", "staging", "staging", "production", "production"),
    (
        "resource_attributes",
        "OTEL_RESOURCE_ATTRIBUTES",
        "team=payments,region=eu%2Dwest",
        {"team": "payments", "region": "eu-west"},
        {"team": "search"},
        {"team": "search"},
    ),
    ("traces_exporter", "OTEL_TRACES_EXPORTER", "none", (), "console", ("console",)),
    ("metrics_exporter", "OTEL_METRICS_EXPORTER", "none", (), ["console"], ("console",)),
    ("logs_exporter", "OTEL_LOGS_EXPORTER", "none", (), "Console", ("console",)),
    ("sampling_ratio", "OBSKIT_SAMPLING_RATIO", "0.25", 0.25, 0.5, 0.5),
    ("log_level", "OBSKIT_LOG_LEVEL", "debug", "DEBUG", "error", "ERROR"),
    ("log_format", "OBSKIT_LOG_FORMAT", "CONSOLE", "console", "json", "json"),
    ("log_source", "OBSKIT_LOG_SOURCE", "true", True, False, False),
    ("metric_namespace", "OBSKIT_METRIC_NAMESPACE", "envns", "envns", "kw_ns", "kw_ns"),
    ("redact_keys", "OBSKIT_REDACT_KEYS", "Session-Id, pin", ("session_id", "pin"), ["X-Ssn"], ("x_ssn",)),
    ("redact_text", "OBSKIT_REDACT_TEXT", "false", False, True, True),
    ("redact_patterns", "OBSKIT_REDACT_PATTERNS", '["a{1,2}", "b"]', ("a{1,2}", "b"), ["c+"], ("c+",)),
    ("series_cap", "OBSKIT_SERIES_CAP", "50", 50, 7, 7),
    (
        "histogram_buckets",
        "OBSKIT_HISTOGRAM_BUCKETS",
        '{"external_call": [1, 60, 300]}',
        {"external_call": (1.0, 60.0, 300.0)},
        {"db": [0.5, "1"]},
        {"db": (0.5, 1.0)},
    ),
    ("runtime_metrics", "OBSKIT_RUNTIME_METRICS", "true", True, False, False),
    ("host_metrics", "OBSKIT_HOST_METRICS", "yes", True, False, False),
    ("metric_export_interval_ms", "OTEL_METRIC_EXPORT_INTERVAL", "1500", 1500.0, 250, 250.0),
    ("shutdown_timeout", "OBSKIT_SHUTDOWN_TIMEOUT", "2.5", 2.5, 1, 1.0),
    ("export_queue_size", "OBSKIT_EXPORT_QUEUE_SIZE", "100", 100, 7, 7),
    ("export_batch_size", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "256", 256, 16, 16),
    ("prometheus_host", "OTEL_EXPORTER_PROMETHEUS_HOST", "0.0.0.0", "0.0.0.0", "::1", "::1"),
    ("prometheus_port", "OTEL_EXPORTER_PROMETHEUS_PORT", "9999", 9999, 0, 0),
    ("prometheus_path", "OBSKIT_PROMETHEUS_PATH", "/prom", "/prom", "/m", "/m"),
    ("prometheus_created", "OBSKIT_PROMETHEUS_CREATED", "true", True, False, False),
    ("exponential_histograms", "OBSKIT_EXPONENTIAL_HISTOGRAMS", "true", True, False, False),
    ("multiprocess_dir", "OBSKIT_PROMETHEUS_MULTIPROC_DIR", "/tmp", "/tmp", "/", "/"),
    ("pushgateway_url", "OBSKIT_PUSHGATEWAY_URL", "http://a:9091", "http://a:9091", "https://b", "https://b"),
    ("pushgateway_job", "OBSKIT_PUSHGATEWAY_JOB", "env-job", "env-job", "kw-job", "kw-job"),
    (
        "pushgateway_grouping",
        "OBSKIT_PUSHGATEWAY_GROUPING",
        "instance=a",
        {"instance": "a"},
        {"i": "b"},
        {"i": "b"},
    ),
    ("push_on", "OBSKIT_PUSH_ON", "job,shutdown", ("job", "shutdown"), "job", ("job",)),
    ("jaeger_endpoint", "OBSKIT_JAEGER_ENDPOINT", "http://j:4317", "http://j:4317", "j2:4317", "j2:4317"),
    (
        "azure_connection_string",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "InstrumentationKey=a",
        "InstrumentationKey=a",
        "InstrumentationKey=b;IngestionEndpoint=https://x",
        "InstrumentationKey=b;IngestionEndpoint=https://x",
    ),
    ("azure_live_metrics", "OBSKIT_AZURE_LIVE_METRICS", "true", True, False, False),
    ("azure_offline_storage", "OBSKIT_AZURE_OFFLINE_STORAGE", "true", True, False, False),
    ("azure_statsbeat", "OBSKIT_AZURE_STATSBEAT", "true", True, False, False),
    ("excluded_urls", "OTEL_PYTHON_EXCLUDED_URLS", "^/ping$,/static/", ("^/ping$", "/static/"), [], ()),
    ("health_path", "OBSKIT_HEALTH_PATH", "/hc", "/hc", "/status", "/status"),
    ("liveness_path", "OBSKIT_LIVENESS_PATH", "/live", "/live", "/alive", "/alive"),
    ("readiness_path", "OBSKIT_READINESS_PATH", "/ready", "/ready", "/r", "/r"),
    (
        "request_id_header",
        "OBSKIT_REQUEST_ID_HEADER",
        "X-Correlation-ID",
        "X-Correlation-ID",
        "Req-Id",
        "Req-Id",
    ),
    ("request_id_echo", "OBSKIT_REQUEST_ID_ECHO", "always", "always", "never", "never"),
    ("access_log", "OBSKIT_ACCESS_LOG", "false", False, True, True),
    ("access_log_flush_interval", "OBSKIT_ACCESS_LOG_FLUSH_INTERVAL", "0", 0.0, 0.25, 0.25),
    ("trust_forwarded_headers", "OBSKIT_TRUST_FORWARDED", "true", True, False, False),
    ("instrument_http_clients", "OBSKIT_INSTRUMENT_HTTP_CLIENTS", "false", False, True, True),
    (
        "instrument_libraries",
        "OBSKIT_INSTRUMENT_LIBRARIES",
        "redis, SQLAlchemy",
        ("redis", "sqlalchemy"),
        "none",
        (),
    ),
    ("request_id_propagation", "OBSKIT_REQUEST_ID_PROPAGATION", "false", False, True, True),
    ("sampler", "OTEL_TRACES_SAMPLER", "always_on", "always_on", "always_off", "always_off"),
    ("sdk_disabled", "OTEL_SDK_DISABLED", "true", True, False, False),
]
_OTLP_ROWS = {
    "endpoint": ("http://env:4318", "http://env:4318", "kw:4317", "kw:4317"),
    "protocol": ("grpc", "grpc", "http/protobuf", "http/protobuf"),
    "headers": ("a=1,b=x%20y", {"a": "1", "b": "x y"}, {"c": "3"}, {"c": "3"}),
    "timeout": ("2500", 2500.0, 100, 100.0),
    "compression": ("gzip", "gzip", "deflate", "deflate"),
    "certificate": (__file__, __file__, "/etc/hostname", "/etc/hostname"),
    "insecure": ("true", True, False, False),
}
for _opt, (_raw, _env_value, _kw, _kw_value) in _OTLP_ROWS.items():
    for _sig in ("", "traces_", "metrics_", "logs_"):
        PRECEDENCE.append(
            (
                f"otlp_{_sig}{_opt}",
                f"OTEL_EXPORTER_OTLP_{_sig.upper()}{_opt.upper()}",
                _raw,
                _env_value,
                _kw,
                _kw_value,
            )
        )
PRECEDENCE_IDS = [row[0] for row in PRECEDENCE]
DEFAULTS = Settings()


def _env_constants() -> list[str]:
    return [name for name in vars(environment_variables) if name.isupper()]


def test_precedence_table_covers_every_setting() -> None:
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert {row[0] for row in PRECEDENCE} == fields


@pytest.mark.parametrize(
    ("field", "var", "raw", "from_env", "keyword", "from_keyword"), PRECEDENCE, ids=PRECEDENCE_IDS
)
def test_default_used_when_neither_keyword_nor_env_given(
    field: str, var: str, raw: str, from_env: Any, keyword: Any, from_keyword: Any
) -> None:
    assert getattr(resolve_settings({}, {}), field) == getattr(DEFAULTS, field)
    assert getattr(DEFAULTS, field) != from_env


@pytest.mark.parametrize(
    ("field", "var", "raw", "from_env", "keyword", "from_keyword"), PRECEDENCE, ids=PRECEDENCE_IDS
)
def test_env_var_beats_default(
    field: str, var: str, raw: str, from_env: Any, keyword: Any, from_keyword: Any
) -> None:
    assert getattr(resolve_settings({}, {var: raw}), field) == from_env


@pytest.mark.parametrize(
    ("field", "var", "raw", "from_env", "keyword", "from_keyword"), PRECEDENCE, ids=PRECEDENCE_IDS
)
def test_keyword_beats_env_var(
    field: str, var: str, raw: str, from_env: Any, keyword: Any, from_keyword: Any
) -> None:
    assert from_keyword != from_env
    assert getattr(resolve_settings({field: keyword}, {var: raw}), field) == from_keyword


@pytest.mark.parametrize(
    ("field", "var", "raw", "from_env", "keyword", "from_keyword"), PRECEDENCE, ids=PRECEDENCE_IDS
)
def test_keyword_none_falls_through_to_env_var(
    field: str, var: str, raw: str, from_env: Any, keyword: Any, from_keyword: Any
) -> None:
    assert getattr(resolve_settings({field: None}, {var: raw}), field) == from_env


@pytest.mark.parametrize(
    ("field", "var", "raw", "from_env", "keyword", "from_keyword"), PRECEDENCE, ids=PRECEDENCE_IDS
)
def test_blank_env_var_is_ignored(
    field: str, var: str, raw: str, from_env: Any, keyword: Any, from_keyword: Any
) -> None:
    assert getattr(resolve_settings({}, {var: "   "}), field) == getattr(DEFAULTS, field)


def test_resolve_settings_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBSKIT_SERVICE_NAME", "from-os-environ")
    monkeypatch.setenv("OBSKIT_SERIES_CAP", "12")
    settings = resolve_settings({})
    assert settings.service_name == "from-os-environ"
    assert settings.series_cap == 12


def test_configure_resolves_env_vars_and_returns_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBSKIT_SERVICE_NAME", "env-configured")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "none")
    settings = obskit.configure(environment="kw-env")
    assert settings.service_name == "env-configured"
    assert settings.environment == "kw-env"
    assert settings.traces_exporter == settings.metrics_exporter == settings.logs_exporter == ()


# -- service name from the OpenTelemetry variables ------------------------------------------------


def test_otel_service_name_used_when_obskit_service_name_unset() -> None:
    assert resolve_settings({}, {"OTEL_SERVICE_NAME": "otel-svc"}).service_name == "otel-svc"


def test_obskit_service_name_beats_otel_service_name() -> None:
    environ = {"OBSKIT_SERVICE_NAME": "obskit-svc", "OTEL_SERVICE_NAME": "otel-svc"}
    assert resolve_settings({}, environ).service_name == "obskit-svc"


def test_otel_service_name_beats_service_name_in_resource_attributes() -> None:
    environ = {"OTEL_SERVICE_NAME": "otel-svc", "OTEL_RESOURCE_ATTRIBUTES": "service.name=attr-svc"}
    assert resolve_settings({}, environ).service_name == "otel-svc"


def test_service_name_from_resource_attributes_is_percent_decoded() -> None:
    environ = {"OTEL_RESOURCE_ATTRIBUTES": "team=a,service.name=my%20svc%2Cv2,x=%3D"}
    settings = resolve_settings({}, environ)
    assert settings.service_name == "my svc,v2"
    assert settings.resource_attributes == {"team": "a", "service.name": "my svc,v2", "x": "="}


def test_keyword_service_name_beats_every_env_source() -> None:
    environ = {
        "OBSKIT_SERVICE_NAME": "a",
        "OTEL_SERVICE_NAME": "b",
        "OTEL_RESOURCE_ATTRIBUTES": "service.name=c",
    }
    assert resolve_settings({"service_name": "kw"}, environ).service_name == "kw"


def test_version_and_environment_fall_back_to_resource_attributes() -> None:
    environ = {"OTEL_RESOURCE_ATTRIBUTES": "service.version=1.2.3,deployment.environment.name=qa"}
    settings = resolve_settings({}, environ)
    assert settings.service_version == "1.2.3"
    assert settings.environment == "qa"


def test_older_deployment_environment_attribute_is_honoured() -> None:
    environ = {"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=legacy"}
    assert resolve_settings({}, environ).environment == "legacy"


def test_specific_variables_beat_resource_attributes_for_version_and_environment() -> None:
    environ = {
        "OTEL_RESOURCE_ATTRIBUTES": "service.version=1,deployment.environment.name=qa",
        "OBSKIT_SERVICE_VERSION": "2",
        "OBSKIT_ENVIRONMENT": "prod",
    }
    settings = resolve_settings({}, environ)
    assert (settings.service_version, settings.environment) == ("2", "prod")


# -- sampling ratio from OTEL_TRACES_SAMPLER_ARG --------------------------------------------------


@pytest.mark.parametrize("sampler", ["traceidratio", "parentbased_traceidratio", "TraceIdRatio"])
def test_sampler_arg_used_for_ratio_samplers(sampler: str) -> None:
    environ = {"OTEL_TRACES_SAMPLER": sampler, "OTEL_TRACES_SAMPLER_ARG": "0.3"}
    assert resolve_settings({}, environ).sampling_ratio == 0.3


@pytest.mark.parametrize("sampler", ["always_on", "always_off", "parentbased_always_on", ""])
def test_sampler_arg_ignored_for_non_ratio_samplers(sampler: str) -> None:
    environ = {"OTEL_TRACES_SAMPLER": sampler, "OTEL_TRACES_SAMPLER_ARG": "0.3"}
    assert resolve_settings({}, environ).sampling_ratio == 1.0


def test_sampler_arg_ignored_without_sampler() -> None:
    assert resolve_settings({}, {"OTEL_TRACES_SAMPLER_ARG": "0.3"}).sampling_ratio == 1.0


def test_bad_sampler_arg_ignored_for_non_ratio_sampler() -> None:
    environ = {"OTEL_TRACES_SAMPLER": "always_on", "OTEL_TRACES_SAMPLER_ARG": "not-a-number"}
    assert resolve_settings({}, environ).sampling_ratio == 1.0


def test_obskit_sampling_ratio_beats_sampler_arg() -> None:
    environ = {
        "OBSKIT_SAMPLING_RATIO": "0.1",
        "OTEL_TRACES_SAMPLER": "traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.9",
    }
    assert resolve_settings({}, environ).sampling_ratio == 0.1


def test_keyword_sampling_ratio_beats_sampler_arg() -> None:
    environ = {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.9"}
    assert resolve_settings({"sampling_ratio": 0.2}, environ).sampling_ratio == 0.2


def test_bad_sampler_arg_for_ratio_sampler_names_the_variable() -> None:
    environ = {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"}
    with pytest.raises(ConfigError) as info:
        resolve_settings({}, environ)
    message = str(info.value)
    assert "OTEL_TRACES_SAMPLER_ARG" in message
    assert "'1.5'" in message
    assert "0 to 1" in message


# -- exporter lists -------------------------------------------------------------------------------


@pytest.mark.parametrize("setting", sorted(EXPORTERS))
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("console", ("console",)),
        (" Console , ", ("console",)),
        ("console,console", ("console",)),
        ("none", ()),
        ("NONE", ()),
    ],
)
def test_exporter_env_comma_lists(setting: str, raw: str, expected: tuple[str, ...]) -> None:
    var = {
        "traces_exporter": "OTEL_TRACES_EXPORTER",
        "metrics_exporter": "OTEL_METRICS_EXPORTER",
        "logs_exporter": "OTEL_LOGS_EXPORTER",
    }[setting]
    assert getattr(resolve_settings({}, {var: raw}), setting) == expected


@pytest.mark.parametrize("setting", sorted(EXPORTERS))
def test_exporter_keyword_accepts_a_list(setting: str) -> None:
    assert getattr(resolve_settings({setting: ["console"]}, {}), setting) == ("console",)
    assert getattr(resolve_settings({setting: ("none",)}, {}), setting) == ()


# -- bad values -----------------------------------------------------------------------------------

BAD_KEYWORDS = [
    ("traces_exporter", "zipkin", ["console", "none"]),
    ("traces_exporter", "console,none", ["console", "none"]),
    ("metrics_exporter", ["none", "console"], ["console", "none"]),
    ("metrics_exporter", "statsd", ["console", "prometheus", "otlp", "azure", "none"]),
    ("logs_exporter", "", ["console", "none"]),
    ("logs_exporter", "none,console", ["console", "none"]),
    ("sampling_ratio", 1.5, ["0 to 1"]),
    ("sampling_ratio", -0.1, ["0 to 1"]),
    ("sampling_ratio", "half", ["0 to 1"]),
    ("sampling_ratio", True, ["0 to 1"]),
    ("log_level", "LOUD", list(LOG_LEVELS)),
    ("log_format", "xml", ["json", "console"]),
    ("metric_namespace", "9x", ["[a-z_][a-z0-9_]*"]),
    ("metric_namespace", "has-dash", ["[a-z_][a-z0-9_]*"]),
    ("series_cap", 0, [">= 1"]),
    ("series_cap", "many", [">= 1"]),
    ("runtime_metrics", "maybe", ["true", "false"]),
    ("host_metrics", "maybe", ["true", "false"]),
    ("metric_export_interval_ms", 0, ["positive"]),
    ("shutdown_timeout", 0, ["positive"]),
    ("shutdown_timeout", 7200, ["at most 3600"]),
    ("export_batch_size", 0, [">= 1"]),
    ("export_batch_size", "lots", [">= 1"]),
    ("access_log_flush_interval", -1, ["from 0 to 60", "0: write each access line at once"]),
    ("access_log_flush_interval", "soon", ["from 0 to 60"]),
    ("service_name", "  ", ["non-empty"]),
    ("service_name", 42, ["non-empty"]),
    ("service_version", "", ["non-empty"]),
    ("environment", "", ["non-empty"]),
    ("resource_attributes", "no-equals-sign", ["key=value"]),
    ("redact_keys", 5, ["comma-separated"]),
]


@pytest.mark.parametrize(("setting", "value", "allowed"), BAD_KEYWORDS, ids=lambda v: repr(v)[:30])
def test_bad_keyword_raises_config_error_naming_setting_value_and_allowed(
    setting: str, value: Any, allowed: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_settings({setting: value}, {})
    message = str(info.value)
    assert info.value.setting == setting
    assert info.value.value == value
    assert setting in message
    assert repr(value) in message
    for fragment in allowed:
        assert fragment in message


def test_log_level_error_lists_every_level() -> None:
    with pytest.raises(ConfigError, match="LOUD") as info:
        resolve_settings({"log_level": "LOUD"}, {})
    assert info.value.allowed == "DEBUG, INFO, WARNING, ERROR, CRITICAL"


def test_unknown_keyword_raises_config_error_naming_the_nearest_setting() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_settings({"servce_name": "typo"}, {})
    assert str(info.value) == "unknown setting 'servce_name'; did you mean 'service_name'?"
    assert info.value.setting == "servce_name"


def test_configure_rejects_unknown_keyword() -> None:
    with pytest.raises(ConfigError, match="no_such_setting"):
        obskit.configure(no_such_setting=1)
    assert not obskit.is_configured()


BAD_ENV = [
    ("OTEL_TRACES_EXPORTER", "zipkin", "traces_exporter", ["console", "none"]),
    (
        "OTEL_METRICS_EXPORTER",
        "statsd",
        "metrics_exporter",
        ["console", "prometheus", "otlp", "azure", "none"],
    ),
    ("OTEL_LOGS_EXPORTER", "none,console", "logs_exporter", ["console", "none"]),
    ("OBSKIT_SAMPLING_RATIO", "1.5", "sampling_ratio", ["0 to 1"]),
    ("OBSKIT_LOG_LEVEL", "LOUD", "log_level", list(LOG_LEVELS)),
    ("OBSKIT_LOG_FORMAT", "xml", "log_format", ["json", "console"]),
    ("OBSKIT_METRIC_NAMESPACE", "9x", "metric_namespace", ["[a-z_][a-z0-9_]*"]),
    ("OBSKIT_METRIC_NAMESPACE", "Acme", "metric_namespace", ["snake_case", "capitals"]),
    ("OBSKIT_SERIES_CAP", "0", "series_cap", [">= 1"]),
    ("OBSKIT_RUNTIME_METRICS", "maybe", "runtime_metrics", ["true", "false"]),
    ("OBSKIT_HOST_METRICS", "maybe", "host_metrics", ["true", "false"]),
    ("OTEL_METRIC_EXPORT_INTERVAL", "-5", "metric_export_interval_ms", ["positive"]),
    ("OBSKIT_SHUTDOWN_TIMEOUT", "soon", "shutdown_timeout", ["positive"]),
    ("OTEL_RESOURCE_ATTRIBUTES", "novalue", "resource_attributes", ["key=value"]),
]


@pytest.mark.parametrize(("var", "raw", "setting", "allowed"), BAD_ENV, ids=[row[0] for row in BAD_ENV])
def test_bad_env_var_error_names_variable_setting_value_and_allowed(
    var: str, raw: str, setting: str, allowed: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_settings({}, {var: raw})
    message = str(info.value)
    assert f"${var}" in message
    assert setting in message
    assert repr(raw) in message
    for fragment in allowed:
        assert fragment in message


def test_bad_env_var_is_not_consulted_when_keyword_given() -> None:
    settings = resolve_settings({"log_level": "warning"}, {"OBSKIT_LOG_LEVEL": "LOUD"})
    assert settings.log_level == "WARNING"


def test_config_error_is_an_obskit_error_and_a_value_error() -> None:
    assert issubclass(ConfigError, ObskitError)
    assert issubclass(ConfigError, ValueError)


def test_settings_are_frozen() -> None:
    settings = resolve_settings({}, {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.service_name = "changed"  # type: ignore[misc]


# -- the environment variable reference -----------------------------------------------------------


def _documented_constants() -> dict[str, str | None]:
    """Each upper-case constant of environment_variables and the string literal right after it."""
    body = ast.parse(ENV_SOURCE).body
    docs: dict[str, str | None] = {}
    for index, node in enumerate(body):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name = node.target.id
        elif (
            isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        ):
            name = node.targets[0].id
        else:
            continue
        if not name.isupper():
            continue
        following = body[index + 1] if index + 1 < len(body) else None
        doc = None
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            doc = following.value.value
        docs[name] = doc
    return docs


def test_every_env_var_constant_has_a_docstring() -> None:
    docs = _documented_constants()
    assert set(docs) == set(_env_constants())
    undocumented = [name for name, doc in docs.items() if not doc or not doc.strip()]
    assert undocumented == []


def test_env_var_constants_are_their_own_names() -> None:
    for name in _env_constants():
        if name != "ALL":
            assert getattr(environment_variables, name) == name


def test_all_lists_every_variable_sorted() -> None:
    names = [n for n in _env_constants() if n != "ALL"]
    assert list(environment_variables.ALL) == sorted(names)


def test_every_env_var_is_read_by_settings_module() -> None:
    from obskit._core import settings as _settings

    referenced = {
        node.attr
        for node in ast.walk(ast.parse(SETTINGS_SOURCE))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "env"
    }
    read = {variable for variables, _ in _settings._FIELDS.values() for variable in variables}
    missing = sorted(set(environment_variables.ALL) - referenced - read)
    assert missing == []


# One environment that each variable alone (or with its required partner) changes the result of.
ENV_EFFECT: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    # var: (environment with it, same environment without it)
    "OBSKIT_SERVICE_NAME": ({"OBSKIT_SERVICE_NAME": "x"}, {}),
    "OTEL_SERVICE_NAME": ({"OTEL_SERVICE_NAME": "x"}, {}),
    "OTEL_RESOURCE_ATTRIBUTES": ({"OTEL_RESOURCE_ATTRIBUTES": "a=b"}, {}),
    "OBSKIT_SERVICE_VERSION": ({"OBSKIT_SERVICE_VERSION": "1"}, {}),
    "OBSKIT_ENVIRONMENT": ({"OBSKIT_ENVIRONMENT": "prod"}, {}),
    "OTEL_TRACES_EXPORTER": ({"OTEL_TRACES_EXPORTER": "none"}, {}),
    "OTEL_METRICS_EXPORTER": ({"OTEL_METRICS_EXPORTER": "none"}, {}),
    "OTEL_LOGS_EXPORTER": ({"OTEL_LOGS_EXPORTER": "none"}, {}),
    "OBSKIT_SAMPLING_RATIO": ({"OBSKIT_SAMPLING_RATIO": "0.5"}, {}),
    "OTEL_TRACES_SAMPLER": (
        {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"},
        {"OTEL_TRACES_SAMPLER_ARG": "0.5"},
    ),
    "OTEL_TRACES_SAMPLER_ARG": (
        {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"},
        {"OTEL_TRACES_SAMPLER": "traceidratio"},
    ),
    "OBSKIT_LOG_LEVEL": ({"OBSKIT_LOG_LEVEL": "ERROR"}, {}),
    "OBSKIT_LOG_FORMAT": ({"OBSKIT_LOG_FORMAT": "console"}, {}),
    "OBSKIT_LOG_SOURCE": ({"OBSKIT_LOG_SOURCE": "on"}, {}),
    "OBSKIT_METRIC_NAMESPACE": ({"OBSKIT_METRIC_NAMESPACE": "acme"}, {}),
    "OBSKIT_REDACT_KEYS": ({"OBSKIT_REDACT_KEYS": "ssn"}, {}),
    "OBSKIT_REDACT_TEXT": ({"OBSKIT_REDACT_TEXT": "false"}, {}),
    "OBSKIT_REDACT_PATTERNS": ({"OBSKIT_REDACT_PATTERNS": "pin-[0-9]+"}, {}),
    "OBSKIT_SERIES_CAP": ({"OBSKIT_SERIES_CAP": "9"}, {}),
    "OBSKIT_RUNTIME_METRICS": ({"OBSKIT_RUNTIME_METRICS": "1"}, {}),
    "OBSKIT_HOST_METRICS": ({"OBSKIT_HOST_METRICS": "on"}, {}),
    "OTEL_METRIC_EXPORT_INTERVAL": ({"OTEL_METRIC_EXPORT_INTERVAL": "10"}, {}),
    "OBSKIT_SHUTDOWN_TIMEOUT": ({"OBSKIT_SHUTDOWN_TIMEOUT": "1"}, {}),
    "OBSKIT_EXPORT_QUEUE_SIZE": ({"OBSKIT_EXPORT_QUEUE_SIZE": "10"}, {}),
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": ({"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "512"}, {}),
    "OTEL_EXPORTER_PROMETHEUS_HOST": ({"OTEL_EXPORTER_PROMETHEUS_HOST": "0.0.0.0"}, {}),
    "OTEL_EXPORTER_PROMETHEUS_PORT": ({"OTEL_EXPORTER_PROMETHEUS_PORT": "9999"}, {}),
    "OBSKIT_PROMETHEUS_PATH": ({"OBSKIT_PROMETHEUS_PATH": "/prom"}, {}),
    "OBSKIT_PROMETHEUS_CREATED": ({"OBSKIT_PROMETHEUS_CREATED": "true"}, {}),
    "OBSKIT_EXPONENTIAL_HISTOGRAMS": ({"OBSKIT_EXPONENTIAL_HISTOGRAMS": "true"}, {}),
    "OBSKIT_HISTOGRAM_BUCKETS": ({"OBSKIT_HISTOGRAM_BUCKETS": '{"http": [1, 2]}'}, {}),
    "OBSKIT_PROMETHEUS_MULTIPROC_DIR": ({"OBSKIT_PROMETHEUS_MULTIPROC_DIR": "/tmp"}, {}),
    "PROMETHEUS_MULTIPROC_DIR": ({"PROMETHEUS_MULTIPROC_DIR": "/tmp"}, {}),
    "OBSKIT_PUSHGATEWAY_URL": ({"OBSKIT_PUSHGATEWAY_URL": "http://127.0.0.1:9091"}, {}),
    "OBSKIT_PUSHGATEWAY_JOB": ({"OBSKIT_PUSHGATEWAY_JOB": "batch"}, {}),
    "OBSKIT_PUSHGATEWAY_GROUPING": ({"OBSKIT_PUSHGATEWAY_GROUPING": "instance=a"}, {}),
    "OBSKIT_PUSH_ON": ({"OBSKIT_PUSH_ON": "job"}, {}),
    "OBSKIT_JAEGER_ENDPOINT": ({"OBSKIT_JAEGER_ENDPOINT": "http://jaeger:4317"}, {}),
    "APPLICATIONINSIGHTS_CONNECTION_STRING": (
        {"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000"},
        {},
    ),
    "OBSKIT_AZURE_LIVE_METRICS": ({"OBSKIT_AZURE_LIVE_METRICS": "true"}, {}),
    "OBSKIT_AZURE_OFFLINE_STORAGE": ({"OBSKIT_AZURE_OFFLINE_STORAGE": "true"}, {}),
    "OBSKIT_AZURE_STATSBEAT": ({"OBSKIT_AZURE_STATSBEAT": "true"}, {}),
    "OTEL_PYTHON_EXCLUDED_URLS": ({"OTEL_PYTHON_EXCLUDED_URLS": "/ping"}, {}),
    "OBSKIT_HEALTH_PATH": ({"OBSKIT_HEALTH_PATH": "/hc"}, {}),
    "OBSKIT_LIVENESS_PATH": ({"OBSKIT_LIVENESS_PATH": "/live"}, {}),
    "OBSKIT_READINESS_PATH": ({"OBSKIT_READINESS_PATH": "/ready"}, {}),
    "OBSKIT_REQUEST_ID_HEADER": ({"OBSKIT_REQUEST_ID_HEADER": "X-Correlation-ID"}, {}),
    "OBSKIT_REQUEST_ID_ECHO": ({"OBSKIT_REQUEST_ID_ECHO": "always"}, {}),
    "OBSKIT_ACCESS_LOG": ({"OBSKIT_ACCESS_LOG": "off"}, {}),
    "OBSKIT_ACCESS_LOG_FLUSH_INTERVAL": ({"OBSKIT_ACCESS_LOG_FLUSH_INTERVAL": "0.2"}, {}),
    "OBSKIT_TRUST_FORWARDED": ({"OBSKIT_TRUST_FORWARDED": "on"}, {}),
    "OBSKIT_INSTRUMENT_HTTP_CLIENTS": ({"OBSKIT_INSTRUMENT_HTTP_CLIENTS": "off"}, {}),
    "OBSKIT_INSTRUMENT_LIBRARIES": ({"OBSKIT_INSTRUMENT_LIBRARIES": "none"}, {}),
    "OBSKIT_REQUEST_ID_PROPAGATION": ({"OBSKIT_REQUEST_ID_PROPAGATION": "off"}, {}),
    "OTEL_SDK_DISABLED": ({"OTEL_SDK_DISABLED": "true"}, {}),
}
_OTLP_EXAMPLES = {
    "ENDPOINT": "http://collector:4318",
    "PROTOCOL": "grpc",
    "HEADERS": "api-key=x",
    "TIMEOUT": "500",
    "COMPRESSION": "gzip",
    "CERTIFICATE": __file__,
    "INSECURE": "true",
}
for _option, _example in _OTLP_EXAMPLES.items():
    for _signal in ("", "TRACES_", "METRICS_", "LOGS_"):
        _var = f"OTEL_EXPORTER_OTLP_{_signal}{_option}"
        ENV_EFFECT[_var] = ({_var: _example}, {})


@pytest.mark.parametrize("var", environment_variables.ALL)
def test_every_env_var_changes_the_resolved_settings(var: str) -> None:
    assert var in ENV_EFFECT, f"no behaviour example for {var}: add one to ENV_EFFECT"
    with_it, without_it = ENV_EFFECT[var]
    assert resolve_settings({}, with_it) != resolve_settings({}, without_it)


def test_env_effect_examples_name_only_known_variables() -> None:
    assert set(ENV_EFFECT) == set(environment_variables.ALL)


@pytest.mark.parametrize(
    ("setting", "variable", "secret_value"),
    [
        ("otlp_headers", "OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer sk-live-123,broken"),
        ("otlp_traces_headers", "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-api-key=sk-live-123,broken"),
        ("pushgateway_url", "OBSKIT_PUSHGATEWAY_URL", "ftp://user:sk-live-123@gateway"),
    ],
)
def test_an_invalid_secret_setting_is_named_but_its_value_is_not_quoted(
    setting: str, variable: str, secret_value: str
) -> None:
    chosen = {"traces_exporter": "otlp", "metrics_exporter": "prometheus"}  # the backends using them
    for overrides, environ in (({setting: secret_value, **chosen}, {}), (chosen, {variable: secret_value})):
        with pytest.raises(ConfigError) as caught:
            resolve_settings(overrides, environ)
        message = str(caught.value)
        assert setting in message
        assert "sk-live-123" not in message
        assert "<hidden>" in message
        assert caught.value.value == "<hidden>"
    assert "pushgateway_url" in SECRET_SETTINGS
    assert "azure_connection_string" in SECRET_SETTINGS


def test_an_invalid_ordinary_setting_still_quotes_its_value() -> None:
    with pytest.raises(ConfigError, match="'sometimes'"):
        resolve_settings({}, {"OBSKIT_ACCESS_LOG": "sometimes"})


def test_an_invalid_url_setting_shows_its_value_without_the_password() -> None:
    for overrides, environ in (
        ({"otlp_endpoint": "ftp://ci:pw-5ecret@collector:4318", "logs_exporter": "otlp"}, {}),
        ({"logs_exporter": "otlp"}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://ci:pw-5ecret@collector:4318"}),
    ):
        with pytest.raises(ConfigError) as caught:
            resolve_settings(overrides, environ)
        message = str(caught.value)
        assert "pw-5ecret" not in message
        assert "ftp://ci:<hidden>@collector:4318" in message  # the rest stays, to fix the value


# -- settings no chosen backend uses --------------------------------------------------------------

#: An invalid value for each setting only some backend uses, and settings that choose that backend.
_INVALID_OPTION = {
    "endpoint": "not a url",
    "protocol": "carrier-pigeon",
    "headers": "no-equals-sign",
    "timeout": "soon",
    "compression": "zip",
    "certificate": "/no/such/ca.pem",
    "insecure": "maybe",
}
BACKEND_INVALID: dict[str, tuple[str, dict[str, str]]] = {
    **{f"otlp_{o}": (v, {"logs_exporter": "otlp"}) for o, v in _INVALID_OPTION.items()},
    **{
        f"otlp_{s}_{o}": (v, {f"{s}_exporter": "otlp"})
        for s in ("traces", "metrics", "logs")
        for o, v in _INVALID_OPTION.items()
    },
    "prometheus_host": (" ", {"metrics_exporter": "prometheus"}),
    "prometheus_port": ("http", {"metrics_exporter": "prometheus"}),
    "prometheus_path": ("metrics", {"metrics_exporter": "prometheus"}),
    "prometheus_created": ("maybe", {"metrics_exporter": "prometheus"}),
    "exponential_histograms": ("maybe", {"metrics_exporter": "otlp"}),
    "pushgateway_url": ("not a url", {"metrics_exporter": "prometheus"}),
    "pushgateway_job": (" ", {"metrics_exporter": "prometheus"}),
    "pushgateway_grouping": ("no-equals-sign", {"metrics_exporter": "prometheus"}),
    "push_on": ("always", {"metrics_exporter": "prometheus"}),
    "jaeger_endpoint": ("not a url", {"traces_exporter": "jaeger"}),
    "azure_connection_string": ("AccountKey=sk-live-5ecret", {"traces_exporter": "azure"}),
    "azure_live_metrics": ("maybe", {"metrics_exporter": "azure"}),
    "azure_offline_storage": ("maybe", {"logs_exporter": "azure"}),
    "azure_statsbeat": ("maybe", {"traces_exporter": "azure"}),
}


def test_every_backend_setting_has_an_invalid_example() -> None:
    assert set(BACKEND_INVALID) == set(BACKEND_SETTINGS)


@pytest.mark.parametrize("name", sorted(BACKEND_INVALID))
def test_an_invalid_backend_setting_is_ignored_unless_its_backend_is_chosen(name: str) -> None:
    value, chosen = BACKEND_INVALID[name]
    variable = _FIELDS[name][0][0]
    cases = [({name: value}, {}, name), ({}, {variable: value}, f"${variable}")]
    for overrides, environ, source in cases if value.strip() else cases[:1]:  # a blank variable is unset
        settings = resolve_settings(overrides, environ)
        assert getattr(settings, name) == getattr(DEFAULTS, name)  # the default stands
        (reason,) = rejected_settings(settings).values()
        assert reason.startswith(name if source == name else f"{name} (from {source}): invalid value")
        assert "sk-live-5ecret" not in reason
        with pytest.raises(ConfigError) as caught:
            resolve_settings({**overrides, **chosen}, environ)
        assert name in str(caught.value)
        assert "sk-live-5ecret" not in str(caught.value)


def test_jaeger_uses_the_otlp_traces_timeout() -> None:
    with pytest.raises(ConfigError, match="otlp_traces_timeout"):
        resolve_settings({"traces_exporter": "jaeger"}, {"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "soon"})
    settings = resolve_settings({"traces_exporter": "jaeger"}, {"OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "soon"})
    assert list(rejected_settings(settings)) == ["otlp_metrics_timeout"]


def test_settings_of_no_backend_stay_fatal_whatever_is_chosen() -> None:
    with pytest.raises(ConfigError, match="log_level"):
        resolve_settings(
            {"traces_exporter": "none", "metrics_exporter": "none"}, {"OBSKIT_LOG_LEVEL": "LOUD"}
        )


def _reference_settings() -> type:
    """Settings as ``dataclasses.dataclass(frozen=True)`` would generate it, from the same fields."""
    fields = [(f.name, f.type, f) for f in dataclasses.fields(Settings)]
    return dataclasses.make_dataclass("Settings", fields, frozen=True)


def test_settings_methods_are_not_generated_source_compiled_at_import() -> None:
    # dataclass() writes and compiles these for ~75 fields at every import (about 1.7 ms).
    import obskit._core.frozen as module

    for name in ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__"):
        assert getattr(Settings, name).__code__.co_filename == module.__file__, name


def test_settings_behave_as_the_frozen_dataclass_they_are_declared_as() -> None:
    reference = _reference_settings()
    given = {"service_name": "svc", "otlp_headers": {"api-key": "k"}, "azure_connection_string": "x"}
    ours, theirs = Settings(**given), reference(**given)
    assert repr(ours) == repr(theirs)
    assert "api-key" not in repr(ours)  # repr=False fields hidden
    assert (ours == Settings(**given), ours == Settings()) == (True, False)
    assert ours.__eq__(theirs) is NotImplemented  # another class: not equal
    assert Settings("a").service_name == reference("a").service_name == "a"  # positional too
    assert Settings().resource_attributes is not Settings().resource_attributes  # factories called
    for settings in (ours, theirs):
        with pytest.raises(TypeError, match="unhashable"):
            hash(settings)  # the mappings in it cannot be hashed, as generated
        with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'service_name'"):
            settings.service_name = "other"  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete field 'service_name'"):
            del settings.service_name  # type: ignore[misc]
    for make in (Settings, reference):
        with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
            make(colour="red")
        with pytest.raises(TypeError, match="multiple values for argument 'service_name'"):
            make("a", service_name="b")
    changed = dataclasses.replace(ours, environment="prod")
    assert (changed.environment, changed.service_name, type(changed)) == ("prod", "svc", Settings)
    assert dataclasses.asdict(ours) == dataclasses.asdict(theirs)
    assert Settings.__match_args__ == reference.__match_args__
    assert Settings.sampler == "parentbased_traceidratio"  # defaults readable on the class
