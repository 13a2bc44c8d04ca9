"""``obskit rules``: a severity level and extra labels per alert (``--severity``, ``--label ALERT:``).

The generated file goes through the real ``promtool check rules``, and ``promtool test rules``
evaluates it as Prometheus does, proving the labels each firing alert carries.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from obskit import _cli
from obskit._cli import rules

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not on PATH")

OVERRIDES = (
    "--severity", "ServiceDown=info",
    "--severity", "HighRequestLatency=critical",
    "--info-severity", "notice",
    "--label", "team=platform",
    "--label", "ServiceDown:service=api",
    "--label", "ServiceDown:team=payments",
    "--label", "HealthCheckFailing:service=db:primary",
)  # fmt: skip


def alerts(*options: str) -> dict[str, dict[str, Any]]:
    document = rules.document(_cli.build_parser().parse_args(["rules", *options]), "obskit")
    return {r["alert"]: r for g in document["groups"] for r in g["rules"] if "alert" in r}


def test_alerts_lists_every_alert_written(tmp_path: Path) -> None:
    source = tmp_path / "obskit.toml"  # the SLO alerts are written per objective, with --slo only
    source.write_text('[[slo]]\nname = "checkout"\nobjective = 0.999\n', encoding="utf-8")
    assert tuple(alerts("--slo", str(source))) == rules.ALERTS


def test_severity_and_labels_of_one_alert_leave_the_others_alone() -> None:
    found = alerts(*OVERRIDES)
    assert found["ServiceDown"]["labels"] == {"severity": "notice", "team": "payments", "service": "api"}
    assert found["HighRequestLatency"]["labels"] == {"severity": "critical", "team": "platform"}
    assert found["HealthCheckFailing"]["labels"] == {
        "severity": "warning",
        "team": "platform",
        "service": "db:primary",
    }
    assert found["HighErrorRate"]["labels"] == {"severity": "critical", "team": "platform"}
    assert found["TelemetryDropped"]["labels"] == {"severity": "warning", "team": "platform"}


def test_info_level_defaults_to_info_and_follows_the_critical_and_warning_values() -> None:
    found = alerts(
        "--severity", "TelemetryDropped=info", "--severity", "JobsStuck=warning",
        "--severity", "HealthCheckFailing=critical", "--critical-severity", "page",
    )  # fmt: skip
    assert found["TelemetryDropped"]["labels"]["severity"] == "info"
    assert found["JobsStuck"]["labels"]["severity"] == "warning"
    assert found["HealthCheckFailing"]["labels"]["severity"] == "page"


def test_a_label_value_with_a_colon_is_a_label_for_every_alert() -> None:
    found = alerts("--label", "runbook=https://runbooks.example/obskit")
    assert all(a["labels"]["runbook"] == "https://runbooks.example/obskit" for a in found.values())


@pytest.mark.parametrize(
    ("option", "value", "allowed"),
    [
        ("--severity", "ServiceDown", "ALERT=LEVEL with LEVEL one of critical, warning, info"),
        ("--severity", "ServiceDown=page", "ALERT=LEVEL with LEVEL one of critical, warning, info"),
        ("--severity", "NoSuchAlert=info", "ALERT=LEVEL"),
        ("--label", "NoSuchAlert:service=api", "ALERT:NAME=VALUE"),
        ("--label", "ServiceDown:severity=page", "ALERT:NAME=VALUE"),
        ("--label", "ServiceDown:service=", "ALERT:NAME=VALUE"),
        ("--info-severity", "", "a non-empty label value"),
    ],
)
def test_bad_values_exit_2_naming_the_option_and_the_values_allowed(
    capsys: pytest.CaptureFixture[str], option: str, value: str, allowed: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _cli.main(["rules", option, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: invalid value {value!r}; allowed: {allowed}" in err
    if "NoSuchAlert" in value:
        assert "ServiceDown" in err  # the alert names are listed


def _write_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "rules.yml"
    assert _cli.main(["rules", *OVERRIDES, "--output", str(path)]) == 0
    capsys.readouterr()
    return path


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@needs_promtool
def test_promtool_check_rules_accepts_the_file_with_overrides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_rules(tmp_path, capsys)
    result = _promtool("check", "rules", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_prometheus_fires_the_alerts_with_their_own_severity_and_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_rules(tmp_path, capsys)
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": 'up{job="api",instance="b"}', "values": "1 1 0x20"},
                    {
                        "series": 'obskit_health_check_status{job="api",instance="a",check="db"}',
                        "values": "0x20",
                    },
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "6m",
                        "alertname": "ServiceDown",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "notice",
                                    "team": "payments",
                                    "service": "api",
                                    "job": "api",
                                    "instance": "b",
                                },
                                "exp_annotations": {
                                    "summary": "Target b of api is down",
                                    "description": "Prometheus has failed to scrape b (job api) for at "
                                    "least 1m.",
                                },
                            }
                        ],
                    },
                    {
                        "eval_time": "10m",
                        "alertname": "HealthCheckFailing",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "team": "platform",
                                    "service": "db:primary",
                                    "job": "api",
                                    "instance": "a",
                                    "check": "db",
                                },
                                "exp_annotations": {
                                    "summary": "Health check db is failing on a",
                                    "description": "The latest run of health check db on a (job api) was "
                                    "degraded or unhealthy, for at least 5m.",
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = _promtool("test", "rules", "tests.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
