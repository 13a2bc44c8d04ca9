"""``obskit doctor``: resolved settings with their sources, secrets masked, backend checks, exit codes."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from obskit._cli import main


def doctor(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["doctor", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def doctor_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    status, out, _ = doctor(capsys, "--format", "json", *argv)
    return status, json.loads(out)


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_defaults_are_attributed_to_default_and_all_is_well(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = doctor(capsys)
    assert status == 0, out + err
    assert any(
        line.split()[:3] == ["service_name", "unknown_service:python", "default"] for line in out.splitlines()
    )
    assert "All checks passed" in out


def test_each_value_names_the_keyword_or_variable_it_came_from(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "orders-api")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.version=2.1.0,team=payments")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    monkeypatch.setenv("OBSKIT_LOG_LEVEL", "warning")
    status, report = doctor_json(capsys, "--set", "log_level=debug", "--set", "series_cap=50")
    settings = report["settings"]
    assert status == 0
    assert settings["service_name"] == {"value": "orders-api", "source": "$OTEL_SERVICE_NAME"}
    assert settings["service_version"] == {
        "value": "2.1.0",
        "source": "$OTEL_RESOURCE_ATTRIBUTES (service.version)",
    }
    assert settings["sampling_ratio"] == {"value": 0.25, "source": "$OTEL_TRACES_SAMPLER_ARG"}
    assert settings["log_level"] == {"value": "DEBUG", "source": "keyword"}  # keyword beats variable
    assert settings["series_cap"] == {"value": 50, "source": "keyword"}
    assert settings["environment"] == {"value": "development", "source": "default"}


def test_the_obskit_variable_wins_over_the_opentelemetry_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "otel-name")
    monkeypatch.setenv("OBSKIT_SERVICE_NAME", "obskit-name")
    _, report = doctor_json(capsys)
    assert report["settings"]["service_name"] == {"value": "obskit-name", "source": "$OBSKIT_SERVICE_NAME"}


def test_secrets_never_appear_in_the_output(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = closed_port()
    secrets = ["ikey-5ecret-0001", "hdr-5ecret-0002", "pw-5ecret-0003", "attr-5ecret-0004"]
    monkeypatch.setenv(
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        f"InstrumentationKey={secrets[0]};IngestionEndpoint=http://127.0.0.1:{port}/",
    )
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "azure,otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"api-key={secrets[1]}")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", "0")
    monkeypatch.setenv("OBSKIT_PUSHGATEWAY_URL", f"http://ci:{secrets[2]}@127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", f"db_password={secrets[3]},team=payments")
    for fmt in ("text", "json"):
        status, out, err = doctor(capsys, "--format", fmt)
        assert status == 1  # every endpoint is closed: the problem lines quote the URLs
        for secret in secrets:
            assert secret not in out + err
        assert "[REDACTED]" in out
        assert f"IngestionEndpoint=http://127.0.0.1:{port}/" in out  # addresses stay visible
        assert "api-key" in out
        assert "team" in out
        assert "payments" in out


def test_a_bad_value_exits_2_naming_the_setting_and_what_is_allowed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OBSKIT_LOG_LEVEL", "loud")
    status, _out, err = doctor(capsys)
    assert status == 2
    assert "log_level (from $OBSKIT_LOG_LEVEL)" in err
    assert "'loud'" in err
    assert "DEBUG, INFO, WARNING, ERROR, CRITICAL" in err


def test_a_bad_secret_value_is_reported_without_the_value(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "Bearer sk-live-5ecret")
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "otlp")
    for fmt in ("text", "json"):
        status, out, err = doctor(capsys, "--format", fmt)
        assert status == 2
        assert "otlp_headers (from $OTEL_EXPORTER_OTLP_HEADERS)" in err
        assert "sk-live-5ecret" not in out + err


def test_an_unknown_keyword_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = doctor(capsys, "--set", "colour=blue")
    assert status == 2
    assert "colour" in err
    assert "unknown setting 'colour'" in err


def test_an_unreachable_otlp_endpoint_exits_1_naming_the_setting(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = closed_port()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    status, out, _ = doctor(capsys)
    assert status == 1
    problems = [line for line in out.splitlines() if line.startswith("  - ")]
    assert len(problems) == 1
    assert problems[0].startswith(f"  - otlp_endpoint: cannot connect to http://127.0.0.1:{port}")


def test_a_reachable_otlp_endpoint_exits_0(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, listening: int
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{listening}")
    status, out, _ = doctor(capsys)
    assert status == 0, out
    assert "All checks passed" in out


def test_a_taken_scrape_port_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, listening: int
) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
    status, report = doctor_json(capsys, "--set", f"prometheus_port={listening}")
    assert status == 1
    assert report["ok"] is False
    assert [p.split(":")[0] for p in report["problems"]] == ["prometheus_port"]  # type: ignore[attr-defined]


def test_json_format_has_every_setting_with_value_and_source(capsys: pytest.CaptureFixture[str]) -> None:
    from obskit import Settings

    status, report = doctor_json(capsys)
    assert status == 0
    assert report["ok"] is True
    assert report["problems"] == []
    assert report["exporters"] == {"traces": ["console"], "metrics": ["console"], "logs": ["console"]}
    settings = report["settings"]
    assert isinstance(settings, dict)
    assert set(settings) == set(Settings.__dataclass_fields__)
    assert all(set(item) == {"value", "source"} for item in settings.values())
    assert settings["traces_exporter"] == {"value": ["console"], "source": "default"}


def test_text_format_lists_per_signal_otlp_settings_only_when_set_or_asked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
    _, out, _ = doctor(capsys)
    assert "otlp_traces_protocol" in out
    assert "$OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" in out
    assert "otlp_logs_protocol" not in out
    _, out, _ = doctor(capsys, "--all")
    assert "otlp_logs_protocol" in out


def test_an_invalid_setting_no_chosen_backend_uses_is_a_problem_not_an_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url")
    status, report = doctor_json(capsys)
    assert status == 1
    (problem,) = report["problems"]  # type: ignore[misc]
    assert problem.startswith("otlp_endpoint (from $OTEL_EXPORTER_OTLP_ENDPOINT): invalid value")
    assert "not a url" not in problem
    settings = report["settings"]
    assert settings["otlp_endpoint"] == {  # type: ignore[index]
        "value": None,
        "source": "default ($OTEL_EXPORTER_OTLP_ENDPOINT invalid, ignored)",
    }
    status, _, err = doctor(capsys, "--set", "traces_exporter=otlp")
    assert status == 2
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in err
