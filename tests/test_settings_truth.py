"""Settings tell the truth: misspelled names, OTEL_SDK_DISABLED, samplers, a second configure()."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import sampling

import obskit
from obskit import ConfigError
from obskit._core import settings as _settings
from obskit._core import state as _state
from obskit._core.options import SettingsKeywords
from obskit._core.settings import resolve_settings, unknown_variables
from obskit._runtime import lifecycle as _runtime
from obskit._runtime.doctor import check_backends

QUIET: dict[str, Any] = {"traces_exporter": "none", "metrics_exporter": "none", "logs_exporter": "none"}


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_runtime, "_warned_variables", set())


# -- misspelled keywords -------------------------------------------------------------------------


def test_a_misspelled_keyword_names_the_nearest_setting_not_all_of_them() -> None:
    with pytest.raises(ConfigError) as raised:
        obskit.configure(service_nme="x", **QUIET)  # type: ignore[call-arg]
    assert str(raised.value) == "unknown setting 'service_nme'; did you mean 'service_name'?"
    assert "allowed" not in str(raised.value)


def test_a_keyword_near_no_setting_points_to_the_reference() -> None:
    with pytest.raises(ConfigError, match=r"unknown setting 'colour'; see obskit.environment_variables$"):
        resolve_settings({"colour": "blue"})


def test_the_typed_keywords_are_exactly_the_settings() -> None:
    assert set(SettingsKeywords.__annotations__) == set(_settings._FIELDS)
    assert set(_settings._FIELDS) == {f.name for f in dataclasses.fields(_settings.Settings)}


def test_mypy_catches_a_misspelled_keyword_before_run_time(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api", reason="mypy comes with the [lint] extra")
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent(
            """
            import obskit

            obskit.configure(service_name="shop", sampling_ratio=0.5)
            obskit.configure(service_nme="shop")
            obskit.configure(sampling_ratio=[1])
            """
        )
    )
    out, _, status = api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "c"), str(script)]
    )
    assert status == 1, out
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 2, out
    assert 'Unexpected keyword argument "service_nme"' in errors[0]
    assert ":6:" in errors[1]
    assert "sampling_ratio" in errors[1]


# -- misspelled environment variables ------------------------------------------------------------


def test_unknown_obskit_variables_and_near_misses_of_otel_ones_are_named_with_a_guess() -> None:
    settings = resolve_settings(
        {},
        {
            "OBSKIT_SERVCE_NAME": "shop",
            "OTEL_SERVICE_NAM": "shop",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINTS": "http://x:4318",
            # Not misspellings: OpenTelemetry's own, an instrumentation's, one far from any.
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_PYTHON_LOG_CORRELATION": "true",
            "OTEL_SOMETHING_ELSE": "1",
            "OBSKIT_SERVICE_NAME": "shop",
        },
    )
    assert unknown_variables(settings) == [
        "environment variable OBSKIT_SERVCE_NAME is not an obskit setting and is ignored;"
        " did you mean OBSKIT_SERVICE_NAME?",
        "environment variable OTEL_EXPORTER_OTLP_TRACES_ENDPOINTS is not an OpenTelemetry setting obskit"
        " reads and is ignored; did you mean OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?",
        "environment variable OTEL_SERVICE_NAM is not an OpenTelemetry setting obskit reads and is"
        " ignored; did you mean OTEL_SERVICE_NAME?",
    ]


def test_configure_warns_once_about_a_misspelled_variable_and_doctor_reports_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OBSKIT_SERVCE_NAME", "shop")
    obskit.configure(**QUIET)
    obskit.configure(**QUIET)
    err = capsys.readouterr().err
    assert err.count("OBSKIT_SERVCE_NAME is not an obskit setting") == 1, err
    assert "did you mean OBSKIT_SERVICE_NAME?" in err
    problems = check_backends(**QUIET)
    assert any("OBSKIT_SERVCE_NAME" in line and "OBSKIT_SERVICE_NAME" in line for line in problems)


def test_doctor_is_clean_without_misspellings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBSKIT_SERVICE_NAME", "shop")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    assert check_backends(**QUIET) == []


# -- OTEL_SDK_DISABLED ---------------------------------------------------------------------------


def test_sdk_disabled_stops_every_signal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    settings = obskit.configure(service_name="quiet", metric_export_interval_ms=50)
    assert (settings.traces_exporter, settings.metrics_exporter, settings.logs_exporter) == ((), (), ())
    with obskit.trace_operation("work"):
        logging.getLogger("app").warning("a line that must not be exported")
    obskit.MetricsCollector().counter("disabled_things_total", "Things.").inc()
    obskit.shutdown()
    out = capsys.readouterr().out
    assert out == "", out


def test_sdk_disabled_false_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")
    settings = resolve_settings({})
    assert settings.traces_exporter == ("console",)
    assert not settings.sdk_disabled


# -- samplers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bogus", "alwayson"])
def test_an_unknown_sampler_is_a_config_error_naming_the_allowed_ones(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", name)
    with pytest.raises(ConfigError) as raised:
        obskit.configure(**QUIET)
    message = str(raised.value)
    assert message.startswith(f"invalid value for sampler (from $OTEL_TRACES_SAMPLER): {name!r}")
    assert "parentbased_traceidratio" in message
    assert "always_off" in message
    if name == "alwayson":
        assert "Did you mean 'always_on'?" in message


def test_a_spec_sampler_whose_package_is_missing_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "jaeger_remote")
    with pytest.raises(ConfigError, match="install the package that registers it"):
        obskit.configure(**QUIET)


def _sampler() -> Any:
    return _state.STATE.tracer_provider.sampler


@pytest.mark.parametrize(
    ("name", "arg", "check"),
    [
        ("always_off", None, lambda s: s is sampling.ALWAYS_OFF),
        ("always_on", None, lambda s: s is sampling.ALWAYS_ON),
        ("traceidratio", "0.25", lambda s: isinstance(s, sampling.TraceIdRatioBased) and s.rate == 0.25),
        ("parentbased_always_off", None, lambda s: s._root is sampling.ALWAYS_OFF),
        ("parentbased_traceidratio", "0.5", lambda s: s._root.rate == 0.5),
    ],
)
def test_every_sdk_sampler_of_the_spec_is_built(
    monkeypatch: pytest.MonkeyPatch, name: str, arg: str | None, check: Any
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", name)
    if arg is not None:
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", arg)
    obskit.configure(traces_exporter="console", metrics_exporter="none", logs_exporter="none")
    assert check(_sampler())


def test_always_off_records_no_span(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    obskit.configure(traces_exporter="console", metrics_exporter="none", logs_exporter="none")
    with obskit.trace_operation("not sampled") as span:
        assert not span.is_recording()
    obskit.shutdown()
    assert "not sampled" not in capsys.readouterr().out


def test_a_sampler_from_an_installed_package_is_loaded_by_its_entry_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # azure-monitor-opentelemetry-exporter registers one (entry point group opentelemetry_traces_sampler).
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "azure_monitor_opentelemetry_sampler")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.5")
    obskit.configure(traces_exporter="console", metrics_exporter="none", logs_exporter="none")
    assert type(_sampler()).__module__.startswith("azure.monitor.opentelemetry")


def test_a_ratio_with_a_sampler_that_takes_none_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    with pytest.raises(ConfigError, match=r"sampling_ratio \(from keyword\) is the ratio of those two"):
        obskit.configure(sampling_ratio=0.5, **QUIET)


# -- a second configure() ------------------------------------------------------------------------


def test_a_second_configure_says_what_it_changed_and_where_both_calls_were(
    capsys: pytest.CaptureFixture[str],
) -> None:
    obskit.configure(service_name="app", **QUIET)
    first = sys._getframe().f_lineno - 1
    obskit.configure(service_name="library", azure_connection_string="InstrumentationKey=secret-key", **QUIET)
    second = sys._getframe().f_lineno - 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "configure() called again" in line]
    assert len(lines) == 1, err
    line = lines[0]
    assert f"at {__file__}:{second} (before: {__file__}:{first})" in line
    assert "service_name: 'app' -> 'library'" in line
    assert "azure_connection_string (values not shown)" in line
    assert "secret-key" not in err


def test_the_same_configure_twice_says_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    obskit.configure(service_name="app", **QUIET)
    obskit.configure(service_name="app", **QUIET)
    assert "configure() called again" not in capsys.readouterr().err


def test_settings_json_round_trip_has_the_new_fields() -> None:
    settings = resolve_settings({"sampler": "always_on", "sdk_disabled": False})
    assert json.loads(json.dumps({"sampler": settings.sampler})) == {"sampler": "always_on"}
