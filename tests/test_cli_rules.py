"""``obskit rules``: the rules file's structure, its options and thresholds, and its errors.

promtool's checks and a real Prometheus evaluating every expression are in
tests/integration/test_rules_dashboard.py.
"""

from __future__ import annotations

import asyncio
import re
import wsgiref.util
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

import obskit
import obskit.testing
import obskit.wsgi
from obskit import _cli, health
from obskit._cli import _promql, rules
from obskit._recording.families import call_specs, job_specs
from obskit._recording.health import health_specs
from obskit._recording.store import count_dropped

ALERTS = (
    "HighErrorRate",
    "HighRequestLatency",
    "JobsStuck",
    "HighJobFailureRate",
    "ServiceDown",
    "HealthCheckFailing",
    "TelemetryDropped",
    "MetricSeriesOverflow",
)


def generate(capsys: pytest.CaptureFixture[str], *options: str) -> str:
    assert _cli.main(["rules", *options]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def document(*options: str, namespace: str = "obskit") -> dict[str, Any]:
    return rules.document(_cli.build_parser().parse_args(["rules", *options]), namespace)


def all_rules(*options: str, namespace: str = "obskit") -> list[dict[str, Any]]:
    return [r for g in document(*options, namespace=namespace)["groups"] for r in g["rules"]]


def alerts(*options: str) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for r in all_rules(*options) if "alert" in r}


def rejected(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        _cli.main(list(argv))
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    return err


# -- structure ------------------------------------------------------------------------------------


def test_default_output_is_a_rules_file_with_a_recording_and_an_alerting_group(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = generate(capsys)
    assert text.startswith("# Prometheus rules for obskit's metrics (namespace obskit)")
    assert "\ngroups:\n  - name: obskit.recording\n    rules:\n      - record: " in text
    assert "\n  - name: obskit.alerts\n    rules:\n      - alert: HighErrorRate\n" in text
    assert text == rules.render(_cli.build_parser().parse_args(["rules"]), "obskit")
    recording, alerting = document()["groups"]
    assert all(set(r) == {"record", "expr"} for r in recording["rules"])
    assert all(re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", r["record"]) for r in recording["rules"])
    assert [r["alert"] for r in alerting["rules"]] == list(ALERTS)
    for rule in alerting["rules"]:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}
        assert set(rule["annotations"]) == {"summary", "description"}
        assert rule["labels"]["severity"] in {"critical", "warning"}


def test_default_alerts_follow_the_seed_alert_set_with_obskit_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rule = alerts()
    assert 'status_code=~"5.."' in rule["HighErrorRate"]["expr"]
    assert rule["HighErrorRate"]["expr"].endswith("\n  > 0.05")
    assert rule["HighErrorRate"]["for"] == "5m"
    assert rule["HighRequestLatency"]["expr"].startswith("histogram_quantile(0.95, sum by (job, route, le)")
    assert (
        'rate(obskit_http_server_request_duration_seconds_bucket{method!="WS"}[5m])'
        in rule["HighRequestLatency"]["expr"]
    )
    assert rule["HighRequestLatency"]["expr"].endswith("> 1")
    assert rule["JobsStuck"]["expr"] == (
        "sum by (job, job_name) (obskit_jobs_in_progress) > 0\n"
        "unless on (job, job_name)\n"
        "sum by (job, job_name) (increase(obskit_jobs_total[15m])) > 0"
    )
    assert rule["JobsStuck"]["for"] == "15m"
    assert 'obskit_jobs_total{status="error"}[1h]' in rule["HighJobFailureRate"]["expr"]
    assert rule["ServiceDown"] == {**rule["ServiceDown"], "expr": "up == 0", "for": "1m"}
    assert rule["HealthCheckFailing"]["expr"] == "obskit_health_check_status == 0"
    assert "increase(obskit_telemetry_dropped_total[5m])" in rule["TelemetryDropped"]["expr"]
    assert "increase(obskit_telemetry_overflow_total[5m])" in rule["MetricSeriesOverflow"]["expr"]
    critical = {name for name, r in rule.items() if r["labels"]["severity"] == "critical"}
    assert critical == {"HighErrorRate", "JobsStuck", "ServiceDown"}


def test_annotations_template_the_alerts_labels_and_value() -> None:
    rule = alerts()
    assert "{{ $labels.route }}" in rule["HighErrorRate"]["annotations"]["summary"]
    assert "{{ $value | humanizePercentage }}" in rule["HighErrorRate"]["annotations"]["description"]
    assert "{{ $value | humanizeDuration }}" in rule["HighRequestLatency"]["annotations"]["description"]
    assert "{{ $labels.job_name }}" in rule["JobsStuck"]["annotations"]["summary"]
    assert "{{ $labels.check }}" in rule["HealthCheckFailing"]["annotations"]["summary"]
    assert "{{ $labels.instance }}" in rule["ServiceDown"]["annotations"]["summary"]
    for r in rule.values():
        for text in r["annotations"].values():
            assert text.count("{{") == text.count("}}")


def test_error_ratio_is_zero_rather_than_absent_for_a_route_without_5xx() -> None:
    ratio = next(
        r for r in all_rules() if r.get("record") == "job_route:http_server_requests_5xx:ratio_rate5m"
    )
    total = "sum by (job, route) (rate(http_server_requests_total[5m]))"
    assert ratio["expr"] == (
        f'(\n  sum by (job, route) (rate(http_server_requests_total{{status_code=~"5.."}}[5m]))\n'
        f"    or\n  {total} * 0\n)\n  /\n{total}"
    )


# -- names come from the specs obskit records with -----------------------------------------------


def test_family_names_come_from_the_recording_specs() -> None:
    jobs, duration, in_progress, _ = job_specs("acme")
    calls = call_specs("acme")
    status, check_duration = health_specs("acme")
    names = _promql.families("acme")
    assert names.jobs_total == f"{jobs.name}_total" == "acme_jobs_total"
    assert names.job_duration == duration.name
    assert names.jobs_in_progress == in_progress.name
    assert names.http_requests_total == f"{calls['http_requests'].name}_total"
    assert names.http_duration == calls["http_duration"].name
    assert names.http_in_progress == calls["http_in_progress"].name
    assert (names.health_status, names.health_duration) == (status.name, check_duration.name)
    # The labels the rules and the dashboard group and filter by are declared by those specs.
    assert {"job_name", "status"} <= set(jobs.labels)
    assert "job_name" in duration.labels
    assert "job_name" in in_progress.labels
    assert {"method", "route", "status_code"} <= set(calls["http_requests"].labels)
    assert {"method", "route"} <= set(calls["http_duration"].labels)
    assert "method" in calls["http_in_progress"].labels
    assert "check" in status.labels
    assert "check" in check_duration.labels


def exposed(samples: Iterable[Any]) -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for sample in samples:
        names.setdefault(sample.name, set()).update(k for k, v in sample.labels.items() if v)
    return names


def test_every_family_the_rules_query_is_in_the_real_exposition_with_its_labels() -> None:
    obskit.configure(metric_namespace="acme", traces_exporter="none", logs_exporter="none", series_cap=2)
    checks = health.HealthRegistry()
    checks.register("database", lambda: False)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [b"no"]

    environ: dict[str, Any] = {}
    wsgiref.util.setup_testing_defaults(environ)
    environ["obskit.route"] = "/items/{id}"
    with obskit.testing.capture() as cap:
        obskit.track_job("nightly")(lambda: None)()
        with obskit.track_job("running"):
            body = obskit.wsgi.middleware(app)(environ, lambda status, headers, exc_info=None: None)
            b"".join(body)
            asyncio.run(checks.run())
            count_dropped("traces", "queue_full")
            capped = obskit.MetricsCollector().counter("tenant_requests", "By tenant", labels=["tenant"])
            for tenant in range(3):
                capped.inc(tenant=str(tenant))
            names = exposed(s for family in cap.store.registry.collect() for s in family.samples)
    f = _promql.families("acme")
    assert names[f.jobs_total] >= {"job_name", "status"}
    assert names[f"{f.job_duration}_bucket"] >= {"job_name", "le"}
    assert names[f.jobs_in_progress] >= {"job_name"}
    assert names[f.http_requests_total] >= {"method", "route", "status_code"}
    assert names[f"{f.http_duration}_bucket"] >= {"method", "route", "le"}
    assert names[f.http_in_progress] >= {"method"}
    assert names[f.health_status] >= {"check"}
    assert names[f"{f.health_duration}_bucket"] >= {"check", "le"}
    assert names[f.dropped_total] >= {"signal", "reason"}
    assert names[f.overflow_total] >= {"metric"}


# -- options --------------------------------------------------------------------------------------


def test_thresholds_and_durations_appear_in_the_expressions_and_descriptions() -> None:
    rule = alerts(
        "--error-rate", "0.2", "--latency-p95", "0.25", "--job-failure-rate", "0.3", "--stuck-for", "1h",
        "--for", "10m", "--down-for", "3m", "--window", "2m", "--job-window", "6h",
    )  # fmt: skip
    assert rule["HighErrorRate"]["expr"].endswith("> 0.2")
    assert "[2m]" in rule["HighErrorRate"]["expr"]
    assert "[5m]" not in rule["HighErrorRate"]["expr"]
    assert "threshold 20%" in rule["HighErrorRate"]["annotations"]["description"]
    assert rule["HighRequestLatency"]["expr"].endswith("> 0.25")
    assert "threshold 0.25s" in rule["HighRequestLatency"]["annotations"]["description"]
    assert rule["HighJobFailureRate"]["expr"].endswith("> 0.3")
    assert "[6h]" in rule["HighJobFailureRate"]["expr"]
    assert "[1h]" in rule["JobsStuck"]["expr"]
    assert rule["JobsStuck"]["for"] == "1h"
    assert rule["ServiceDown"]["for"] == "3m"
    assert {r["for"] for n, r in rule.items() if n not in {"JobsStuck", "ServiceDown"}} == {"10m"}
    records = [r["record"] for r in all_rules("--window", "2m", "--job-window", "6h") if "record" in r]
    assert "job_route:http_server_requests:rate2m" in records
    assert "job_job_name:obskit_jobs_error:ratio_rate6h" in records


def test_severities_and_extra_labels_go_on_every_alert() -> None:
    rule = alerts(
        "--critical-severity", "page", "--warning-severity", "ticket", "--label", "team=payments",
        "--label", "tier=1",
    )  # fmt: skip
    assert rule["ServiceDown"]["labels"] == {"severity": "page", "team": "payments", "tier": "1"}
    assert rule["HighRequestLatency"]["labels"] == {"severity": "ticket", "team": "payments", "tier": "1"}


METRIC = re.compile(r"\b(up|[a-z_]+_(?:total|bucket|in_progress|status))\b(\{[^}]*\})?")


def test_selector_is_added_to_every_series_selector(capsys: pytest.CaptureFixture[str]) -> None:
    selected = all_rules("--selector", '{job="api", env=~"prod|staging"}')
    found = 0
    for rule in selected:
        for match in METRIC.finditer(rule["expr"]):
            found += 1
            assert match.group(2) is not None, (match.group(0), rule["expr"])
            assert match.group(2).endswith(',job="api",env=~"prod|staging"}') or match.group(2) == (
                '{job="api",env=~"prod|staging"}'
            )
    assert found >= 20
    assert 'up{job="api",env=~"prod|staging"} == 0' in generate(
        capsys, "--selector", 'job="api",env=~"prod|staging"'
    )


def test_namespace_option_beats_the_environment_which_beats_the_default(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "obskit_jobs_total" in generate(capsys)
    monkeypatch.setenv("OBSKIT_METRIC_NAMESPACE", "fromenv")
    text = generate(capsys)
    assert "fromenv_jobs_total" in text
    assert "obskit_jobs_total" not in text
    assert "name: obskit.fromenv.recording" in text
    text = generate(capsys, "--namespace", "acme")
    assert "acme_jobs_in_progress" in text
    assert "acme_health_check_status" in text
    assert "fromenv" not in text
    # Families outside the namespace keep their names.
    assert "http_server_requests_total" in text
    assert "obskit_telemetry_dropped_total" in text


def test_job_label_names_the_label_holding_obskits_job_name() -> None:
    rule = alerts("--job-label", "job")
    assert rule["JobsStuck"]["expr"].startswith(
        "sum by (job) (obskit_jobs_in_progress) > 0\nunless on (job)\n"
    )
    assert "{{ $labels.job }}" in rule["JobsStuck"]["annotations"]["summary"]
    assert all("job_name" not in r["expr"] for r in all_rules("--job-label", "job"))
    assert "job_status:obskit_jobs:rate5m" in [r.get("record") for r in all_rules("--job-label", "job")]


def test_output_writes_the_file_and_nothing_to_stdout(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "obskit.rules.yml"
    assert _cli.main(["rules", "--output", str(path), "--error-rate", "0.1"]) == 0
    assert capsys.readouterr() == ("", "")
    assert path.read_text(encoding="utf-8") == generate(capsys, "--error-rate", "0.1")
    assert _cli.main(["rules", "-o", "-"]) == 0
    assert capsys.readouterr().out == generate(capsys)


def test_unwritable_output_is_an_error_naming_the_option(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert _cli.main(["rules", "--output", str(tmp_path / "missing" / "rules.yml")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("obskit rules: cannot write --output ")
    assert "missing" in err


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "allowed"),
    [
        ("--error-rate", "0", "a ratio above 0 and at most 1"),
        ("--error-rate", "1.5", "a ratio above 0 and at most 1"),
        ("--error-rate", "five", "a ratio above 0 and at most 1"),
        ("--job-failure-rate", "nan", "a ratio above 0 and at most 1"),
        ("--latency-p95", "-1", "a positive number of seconds"),
        ("--latency-p95", "inf", "a positive number of seconds"),
        ("--stuck-for", "10", "a Prometheus duration"),
        ("--stuck-for", "0m", "a Prometheus duration"),
        ("--window", "5 m", "a Prometheus duration"),
        ("--for", "soon", "a Prometheus duration such as 30s, 5m or 1h30m (0s for none)"),
        ("--selector", "job=api", "comma-separated label matchers"),
        ("--selector", 'job="api" env="prod"', "comma-separated label matchers"),
        ("--label", "severity=page", "NAME=VALUE"),
        ("--label", "team", "NAME=VALUE"),
        ("--label", "team=", "NAME=VALUE"),
        ("--job-label", "1job", "a Prometheus label name"),
        ("--job-label", "__name__", "a Prometheus label name"),
        ("--critical-severity", "", "a non-empty label value"),
        ("--warning-severity", "two\nlines", "a non-empty label value"),
    ],
)
def test_bad_option_values_exit_2_naming_the_option_and_the_values_allowed(
    capsys: pytest.CaptureFixture[str], option: str, value: str, allowed: str
) -> None:
    err = rejected(capsys, "rules", option, value)
    assert f"argument {option}: invalid value {value!r}; allowed: {allowed}" in err


def test_bad_namespace_exits_2_naming_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main(["rules", "--namespace", "9lives"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "obskit rules: invalid value for --namespace: '9lives'; allowed: a snake_case Prometheus name: "
        "[a-z_][a-z0-9_]*\n"
    )


def test_bad_namespace_from_the_environment_names_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OBSKIT_METRIC_NAMESPACE", "my-app")
    assert _cli.main(["rules"]) == 2
    err = capsys.readouterr().err
    assert "metric_namespace (from $OBSKIT_METRIC_NAMESPACE)" in err
    assert "'my-app'" in err


# -- the YAML writer ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("critical", "critical"),
        ("5m", "5m"),
        ("1h30m", "1h30m"),
        ("job_route:http_server_requests:rate5m", "job_route:http_server_requests:rate5m"),
        ("obskit.acme.alerts", "obskit.acme.alerts"),
        ("yes", "'yes'"),
        ("Off", "'Off'"),
        ("123", "'123'"),
        ("0.5", "'0.5'"),
        ("ends:", "'ends:'"),
        ("it's", "'it''s'"),
        ("{{ $labels.route }}: #1", "'{{ $labels.route }}: #1'"),
        ("- dash", "'- dash'"),
        ("café ☕", "'café ☕'"),
        ("tab\there", '"tab\\there"'),
        ("", "''"),
    ],
)
def test_yaml_scalars_are_plain_only_when_yaml_reads_them_back_as_the_same_string(
    value: str, written: str
) -> None:
    assert rules.dump_yaml({"key": value}) == f"key: {written}\n"


def test_yaml_writes_multi_line_expressions_as_literal_blocks() -> None:
    text = rules.dump_yaml({"groups": [{"name": "g", "rules": [{"expr": "a\n  or\nb", "labels": {}}]}]})
    assert text.splitlines() == [
        "groups:",
        "  - name: g",
        "    rules:",
        "      - expr: |-",
        "          a",
        "            or",
        "          b",
        "        labels: {}",
    ]
    # Lines a literal block cannot keep exactly fall back to a quoted scalar.
    assert rules.dump_yaml({"k": " lead\nx"}) == 'k: " lead\\nx"\n'
    assert rules.dump_yaml({"k": "trailing \nx"}) == 'k: "trailing \\nx"\n'
    assert rules.dump_yaml({"k": []}) == "k: []\n"
    assert rules.dump_yaml({"k": ["a", "b c"]}) == "k:\n  - a\n  - 'b c'\n"
    with pytest.raises(TypeError, match="only strings"):
        rules.dump_yaml({"k": 1})


def test_yaml_reads_back_as_the_rules_document_with_awkward_labels() -> None:
    yaml = pytest.importorskip("yaml")  # a dev tool here, never a dependency of obskit
    options = (
        "--label", "team=it's \"quoted\" #1", "--label", "on=yes", "--label", "n=123",
        "--warning-severity", "null", "--selector", 'job=~"a|b\\\\.c"',
    )  # fmt: skip
    args = _cli.build_parser().parse_args(["rules", *options])
    assert yaml.safe_load(rules.render(args, "acme")) == rules.document(args, "acme")


@pytest.mark.parametrize(
    "fragment",
    [
        "",
        "on",
        "No",
        "~",
        "null",
        "1e3",
        "0x1F",
        "5m",
        "a: b",
        "#x",
        "- x",
        "'",
        '"',
        "\\",
        "é",
        "\t",
        "\x7f",
        "{}",
        "*a",
        "&a",
        "!t",
        "%",
        "@",
        "`",
    ],
)
def test_yaml_reads_back_every_awkward_scalar_as_written(fragment: str) -> None:
    yaml = pytest.importorskip("yaml")  # a dev tool here, never a dependency of obskit
    for value in (fragment, f"x {fragment}", f"{fragment} x", f"{fragment}\n{fragment}x"):
        assert yaml.safe_load(rules.dump_yaml({"k": value, "l": [value]})) == {"k": value, "l": [value]}
