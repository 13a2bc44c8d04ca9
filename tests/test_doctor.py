"""obskit.check_backends(): problems found without sockets (the live ones are integration tests)."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

import obskit
from obskit._core.settings import Settings, resolve_settings
from obskit._runtime import doctor as _doctor


def _no_network(settings: Settings) -> list[str]:
    return []


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep only the checks that open no socket."""
    monkeypatch.setattr(_doctor, "CHECKS", [_doctor.extras_installed])


def test_default_settings_have_nothing_to_check() -> None:
    assert obskit.check_backends() == []


def test_missing_extras_are_each_reported_with_the_pip_install(
    monkeypatch: pytest.MonkeyPatch, offline: None
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a, **k: None if name == "grpc" else real(name, *a, **k)
    )
    problems = obskit.check_backends(
        traces_exporter="otlp,jaeger", metrics_exporter="otlp", logs_exporter="otlp", otlp_protocol="grpc"
    )
    assert len(problems) == 4
    assert all('pip install "obskit[otlp]"' in p for p in problems)
    assert [p.split(":")[0] for p in problems] == [
        "invalid value for traces_exporter",
        "invalid value for traces_exporter",
        "invalid value for metrics_exporter",
        "invalid value for logs_exporter",
    ]


def test_azure_without_connection_string_is_a_problem_not_an_error(offline: None) -> None:
    problems = obskit.check_backends(traces_exporter="azure")
    assert len(problems) == 1
    assert "azure_connection_string" in problems[0]


def test_invalid_settings_raise_like_configure() -> None:
    with pytest.raises(obskit.ConfigError, match="otlp_protocol"):
        obskit.check_backends(otlp_protocol="carrier-pigeon", traces_exporter="otlp")


def test_settings_object_and_keywords_do_not_mix() -> None:
    with pytest.raises(obskit.ConfigError, match="service_name"):
        obskit.check_backends(Settings(), service_name="x")


def test_a_backend_adds_its_own_check(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Settings] = []

    def prometheus_port_free(settings: Settings) -> list[str]:
        seen.append(settings)
        return ["prometheus_port: 9464 is taken"]

    monkeypatch.setattr(_doctor, "CHECKS", [*_doctor.CHECKS, prometheus_port_free])
    assert obskit.check_backends(service_name="svc") == ["prometheus_port: 9464 is taken"]
    assert seen[0].service_name == "svc"


def test_a_check_that_fails_is_reported_as_a_problem(
    monkeypatch: pytest.MonkeyPatch, swallow_internal_errors: None
) -> None:
    def broken(settings: Settings) -> list[str]:
        raise RuntimeError("bug in a check")

    monkeypatch.setattr(_doctor, "CHECKS", [broken, _no_network])
    (problem,) = obskit.check_backends()
    assert "broken could not run" in problem
    assert "bug in a check" in problem


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("http://collector:4318/v1/traces", ("collector", 4318)),
        ("https://gateway.example/otlp", ("gateway.example", 443)),
        ("http://gateway.example", ("gateway.example", 80)),
        ("collector:4317", ("collector", 4317)),
        ("[::1]:4317", ("::1", 4317)),
    ],
)
def test_endpoint_host_and_port(endpoint: str, expected: tuple[str, int]) -> None:
    assert _doctor._host_port(endpoint) == expected


def test_endpoints_group_the_signals_that_share_one(monkeypatch: pytest.MonkeyPatch) -> None:
    settings: Any = resolve_settings(
        {
            "traces_exporter": "otlp",
            "metrics_exporter": "otlp",
            "logs_exporter": "otlp",
            "otlp_protocol": "grpc",
            "otlp_metrics_endpoint": "http://m:1",
        }
    )
    assert _doctor._endpoints(settings) == {
        ("otlp_endpoint", "http://localhost:4317"): ["traces (grpc)", "logs (grpc)"],
        ("otlp_metrics_endpoint", "http://m:1"): ["metrics (grpc)"],
    }


def _closed_port() -> int:
    import socket as _socket

    with _socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_pushgateway_is_reported() -> None:
    port = _closed_port()
    problems = obskit.check_backends(
        metrics_exporter="prometheus", pushgateway_url=f"http://127.0.0.1:{port}", prometheus_port=0
    )
    assert any(p.startswith("pushgateway_url:") and str(port) in p for p in problems), problems


def test_taken_prometheus_port_is_reported() -> None:
    import socket as _socket

    with _socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        problems = obskit.check_backends(metrics_exporter="prometheus", prometheus_port=port)
    assert any(p.startswith("prometheus_port:") for p in problems), problems
    assert obskit.check_backends(metrics_exporter="prometheus", prometheus_port=_closed_port()) == []


def test_unreachable_azure_ingestion_endpoint_is_reported() -> None:
    port = _closed_port()
    problems = obskit.check_backends(
        traces_exporter="azure",
        azure_connection_string=f"InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:{port}/",
    )
    assert any("IngestionEndpoint" in p and str(port) in p for p in problems), problems


# -- settings no chosen backend uses ---------------------------------------------------------------


def test_pushgateway_without_prometheus_is_reported_naming_both_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OBSKIT_PUSHGATEWAY_URL", "http://127.0.0.1:1")
    (problem,) = obskit.check_backends()  # console metrics: nothing to connect to
    assert problem.startswith("pushgateway_url is set but metrics_exporter is 'console':")
    assert "only used with metrics_exporter including 'prometheus'" in problem
    assert "metrics_exporter='prometheus' (OTEL_METRICS_EXPORTER=prometheus)" in problem
    assert "'console,prometheus' to keep console" in problem


@pytest.mark.parametrize(
    ("metrics_exporter", "shown", "keep"),
    [("none", "'none'", False), ("otlp,console", "'otlp,console'", True)],
)
def test_pushgateway_without_prometheus_names_the_exporters_chosen(
    metrics_exporter: str, shown: str, keep: bool
) -> None:
    settings = resolve_settings({"metrics_exporter": metrics_exporter, "pushgateway_url": "http://gw:9091"})
    (problem,) = _doctor.ignored_settings(settings)
    assert f"metrics_exporter is {shown}" in problem
    assert ("to keep" in problem) is keep


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"metrics_exporter": "prometheus", "pushgateway_url": "http://gw:9091"},
        {"metrics_exporter": "console,prometheus", "pushgateway_url": "http://gw:9091"},
    ],
)
def test_nothing_ignored_without_pushgateway_or_with_prometheus(settings: dict[str, Any]) -> None:
    assert _doctor.ignored_settings(resolve_settings(settings)) == []


def test_ignored_settings_is_one_of_the_checks() -> None:
    assert _doctor.ignored_settings in _doctor.CHECKS


def test_every_setting_given_for_a_backend_not_chosen_is_a_problem_naming_its_source() -> None:
    settings = resolve_settings(
        {"otlp_compression": "gzip", "azure_statsbeat": True},
        {"OBSKIT_JAEGER_ENDPOINT": "not a url", "OTEL_EXPORTER_OTLP_LOGS_INSECURE": "true"},
    )
    assert _doctor.ignored_settings(settings) == [
        "jaeger_endpoint (from $OBSKIT_JAEGER_ENDPOINT): invalid value (allowed: http://host[:port][/path] or"
        " https://host[:port][/path] or host:port); ignored, since only traces_exporter=jaeger uses it and"
        " none is chosen",
        "azure_statsbeat is set but ignored: only an azure exporter (traces_exporter, metrics_exporter or"
        " logs_exporter=azure) uses it, and none is chosen",
        "otlp_compression is set but ignored: only an otlp exporter (traces_exporter, metrics_exporter or"
        " logs_exporter=otlp) uses it, and none is chosen",
        "otlp_logs_insecure (from $OTEL_EXPORTER_OTLP_LOGS_INSECURE) is set but ignored: only"
        " logs_exporter=otlp uses it, and none is chosen",
    ]
    chosen = resolve_settings({"otlp_compression": "gzip", "logs_exporter": "otlp"}, {})
    assert _doctor.ignored_settings(chosen) == []
