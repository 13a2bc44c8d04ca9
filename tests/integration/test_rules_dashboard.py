"""``obskit rules`` and ``obskit dashboard`` against the real peers.

promtool checks the generated rules file and runs unit tests proving that each alert fires (and
only where it should) on synthetic series; a real Prometheus server scraping obskit's standalone
endpoint evaluates every expression of the rules and of the dashboard on real obskit data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from peers import PROMTOOL, QUIET, Prometheus, http_get, needs_prometheus, needs_promtool, wait_until

import obskit
import obskit.prometheus
import obskit.testing
from obskit import _cli, health
from obskit._cli import dashboard, rules
from obskit._recording.store import count_dropped

pytestmark = pytest.mark.integration


def generate(tmp_path: Path, command: str, *options: str) -> Path:
    path = tmp_path / f"{command}.{'yml' if command == 'rules' else 'json'}"
    assert _cli.main([command, "--output", str(path), *options]) == 0
    return path


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


# -- promtool check rules -------------------------------------------------------------------------


@needs_promtool
@pytest.mark.parametrize(
    "options",
    [
        (),
        ("--namespace", "acme", "--job-label", "job", "--selector", 'job="api",env=~"prod|staging"'),
        (
            "--for",
            "0s",
            "--stuck-for",
            "1h30m",
            "--window",
            "2m",
            "--job-window",
            "6h",
            "--label",
            "team=it's",
        ),
        (
            "--error-rate",
            "1",
            "--latency-p95",
            "0.25",
            "--critical-severity",
            "page",
            "--warning-severity",
            "yes",
        ),
    ],
    ids=["defaults", "namespace-selector", "durations-labels", "thresholds-severities"],
)
def test_promtool_check_rules_accepts_the_generated_file(tmp_path: Path, options: tuple[str, ...]) -> None:
    path = generate(tmp_path, "rules", *options)
    result = promtool("check", "rules", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 15 rules found" in result.stdout


# -- promtool test rules: the alerts fire on synthetic series -------------------------------------

# One minute per sample. /items answers 10% 5xx and /ok none; /slow takes 1-2.5 s and /fast < 50 ms;
# "export" has a run in progress for good and no counter at all, "busy" always runs but keeps
# finishing; "flaky" fails half its runs; instance b of api stops answering at minute 2.
API = 'job="api",instance="a",method="GET"'
REQUESTS = "http_server_requests_total"
BUCKETS = "obskit_http_server_request_duration_seconds_bucket"
SERIES = {
    f'{REQUESTS}{{{API},route="/items",status_code="200"}}': "0+90x40",
    f'{REQUESTS}{{{API},route="/items",status_code="500"}}': "0+10x40",
    f'{REQUESTS}{{{API},route="/ok",status_code="200"}}': "0+50x40",
    f'{BUCKETS}{{{API},route="/slow",le="1"}}': "0x40",
    f'{BUCKETS}{{{API},route="/slow",le="2.5"}}': "0+10x40",
    f'{BUCKETS}{{{API},route="/slow",le="+Inf"}}': "0+10x40",
    f'{BUCKETS}{{{API},route="/fast",le="0.05"}}': "0+10x40",
    f'{BUCKETS}{{{API},route="/fast",le="+Inf"}}': "0+10x40",
    'obskit_jobs_in_progress{job="worker",instance="w",job_name="export"}': "1x40",
    'obskit_jobs_in_progress{job="worker",instance="w",job_name="busy"}': "1x40",
    'obskit_jobs_total{job="worker",instance="w",job_name="busy",status="success"}': "0+3x40",
    'obskit_jobs_total{job="worker",instance="w",job_name="flaky",status="success"}': "0+1x40",
    'obskit_jobs_total{job="worker",instance="w",job_name="flaky",status="error"}': "0+1x40",
    'up{job="api",instance="a"}': "1x40",
    'up{job="api",instance="b"}': "1 1 0x38",
    'obskit_health_check_status{job="api",instance="a",check="db"}': "0x40",
    'obskit_health_check_status{job="api",instance="a",check="cache"}': "1x40",
    'obskit_telemetry_dropped_total{job="api",instance="a",signal="traces",reason="queue_full"}': "0+5x40",
    'obskit_telemetry_dropped_total{job="api",instance="a",signal="logs",reason="export_failed"}': "0x40",
    'obskit_telemetry_overflow_total{job="api",instance="a",metric="tenant_requests_total"}': "0+2x40",
}


def alert(name: str, minute: int, labels: dict[str, str], summary: str, description: str) -> dict[str, Any]:
    return {
        "eval_time": f"{minute}m",
        "alertname": name,
        "exp_alerts": [
            {
                "exp_labels": {**labels, "team": "payments"},
                "exp_annotations": {"summary": summary, "description": description},
            }
        ],
    }


def not_firing(name: str, minute: int) -> dict[str, Any]:
    return {"eval_time": f"{minute}m", "alertname": name, "exp_alerts": []}


ALERT_TESTS = [
    not_firing("HighErrorRate", 4),  # pending: true for less than --for (5m)
    alert(
        "HighErrorRate",
        12,
        {"severity": "critical", "job": "api", "route": "/items"},
        "High 5xx error rate on /items on api",
        "10% of the requests to /items on api answered 5xx over the last 5m (threshold 5%).",
    ),
    alert(
        "HighRequestLatency",
        12,
        {"severity": "warning", "job": "api", "route": "/slow"},
        "Slow responses on /slow on api",
        "The p95 duration of requests to /slow on api is 2.425s over the last 5m (threshold 1s).",
    ),
    not_firing("JobsStuck", 10),  # in progress for less than --stuck-for (15m)
    alert(
        "JobsStuck",
        20,
        {"severity": "critical", "job": "worker", "job_name": "export"},
        "Runs of job export on worker look stuck",
        "1 run(s) of job export on worker in progress and none finished for at least 15m.",
    ),
    alert(
        "HighJobFailureRate",
        20,
        {"severity": "warning", "job": "worker", "job_name": "flaky"},
        "Runs of job flaky on worker are failing",
        "50% of the runs of job flaky on worker failed over the last 1h (threshold 10%).",
    ),
    not_firing("ServiceDown", 2),
    alert(
        "ServiceDown",
        6,
        {"severity": "critical", "job": "api", "instance": "b"},
        "Target b of api is down",
        "Prometheus has failed to scrape b (job api) for at least 1m.",
    ),
    alert(
        "HealthCheckFailing",
        10,
        {"severity": "warning", "job": "api", "instance": "a", "check": "db"},
        "Health check db is failing on a",
        "The latest run of health check db on a (job api) was degraded or unhealthy, for at least 5m.",
    ),
    alert(
        "TelemetryDropped",
        15,
        {"severity": "warning", "job": "api", "instance": "a", "signal": "traces", "reason": "queue_full"},
        "a is dropping traces",
        "25 traces item(s) were not delivered (reason queue_full) by a over the last 5m.",
    ),
    alert(
        "MetricSeriesOverflow",
        15,
        {"severity": "warning", "job": "api", "instance": "a", "metric": "tenant_requests_total"},
        "Metric tenant_requests_total reached its series cap on a",
        "10 recording(s) of tenant_requests_total went to the __overflow__ series over the last 5m: a label "
        "has too many values.",
    ),
]

# The recording rules, rounded so that float noise in rate() cannot fail an exact comparison.
RECORDED = [
    (
        'round(job_route:http_server_requests:rate5m{route="/items"}, 0.001)',
        {"job": "api", "route": "/items"},
        "1.667",
    ),
    (
        'round(job_route:http_server_requests_5xx:ratio_rate5m{route="/items"}, 0.001)',
        {"job": "api", "route": "/items"},
        "0.1",
    ),
    (
        'round(job_route:http_server_requests_5xx:ratio_rate5m{route="/ok"}, 0.001)',
        {"job": "api", "route": "/ok"},
        "0",
    ),
    (
        'round(job_route:obskit_http_server_request_duration_seconds:p95_rate5m{route="/slow"}, 0.001)',
        {"job": "api", "route": "/slow"},
        "2.425",
    ),
    (
        'round(job_route:obskit_http_server_request_duration_seconds:p50_rate5m{route="/slow"}, 0.001)',
        {"job": "api", "route": "/slow"},
        "1.75",
    ),
    (
        'round(job_job_name:obskit_jobs_error:ratio_rate1h{job_name="flaky"}, 0.001)',
        {"job": "worker", "job_name": "flaky"},
        "0.5",
    ),
]


@needs_promtool
def test_promtool_test_rules_proves_each_alert_fires_where_it_should(tmp_path: Path) -> None:
    generate(tmp_path, "rules", "--label", "team=payments")
    expressions = [
        {
            "expr": expr,
            "eval_time": "20m",
            "exp_samples": [
                {
                    "labels": "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}",
                    "value": float(value),
                }
            ],
        }
        for expr, labels, value in RECORDED
    ]
    unit_test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in SERIES.items()],
                "alert_rule_test": ALERT_TESTS,
                "promql_expr_test": expressions,
            }
        ],
    }
    # JSON is YAML: promtool reads this test file as it reads any.
    (tmp_path / "rules_test.yml").write_text(json.dumps(unit_test, indent=1))
    result = promtool("test", "rules", "rules_test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_selector_scopes_every_alert_to_the_matching_targets(tmp_path: Path) -> None:
    generate(tmp_path, "rules", "--selector", 'job="worker"', "--label", "team=payments")
    unit_test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in SERIES.items()],
                "alert_rule_test": [
                    not_firing("ServiceDown", 6),
                    not_firing("HighErrorRate", 12),
                    not_firing("HealthCheckFailing", 10),
                    next(t for t in ALERT_TESTS if t["alertname"] == "JobsStuck" and t["exp_alerts"]),
                ],
            }
        ],
    }
    (tmp_path / "rules_test.yml").write_text(json.dumps(unit_test, indent=1))
    result = promtool("test", "rules", "rules_test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


# -- every expression on a real Prometheus scraping real obskit data -----------------------------


@contextlib.contextmanager
def stuck_job() -> Iterator[None]:
    """A run of the job ``stuck`` in progress (and never finished) while the block runs."""
    with obskit.track_job("stuck"):
        yield


def traffic(checks: health.HealthRegistry, tenants: Iterator[int]) -> None:
    """Requests (a quarter of /items/{id} answering 500, /slow taking 3 s), jobs, checks, drops."""
    metrics = obskit.MetricsCollector()
    for status in (200, 200, 200, 500):
        metrics.http_request("GET", "/items/{id}", status, 0.03)
    metrics.http_request("POST", "/slow", 200, 3.0)
    metrics.job("nightly", 0.2)
    metrics.job("nightly", 0.4, error=True)
    asyncio.run(checks.run())
    count_dropped("traces", "queue_full", 3)
    capped = metrics.counter("tenant_requests", "Requests by tenant", labels=["tenant"])
    capped.inc(tenant=f"t{next(tenants)}")


def rule_expressions(namespace: str) -> dict[str, str]:
    args = _cli.build_parser().parse_args(["rules"])
    groups = rules.document(args, namespace)["groups"]
    return {r.get("record") or r["alert"]: r["expr"] for g in groups for r in g["rules"]}


def dashboard_expressions(namespace: str) -> tuple[dict[str, str], dict[str, str]]:
    """The panels' queries and the variables' ``label_values`` queries, with the variables filled in."""
    model = dashboard.build(_cli.build_parser().parse_args(["dashboard"]), namespace)
    values = {"$__rate_interval": "5m", "$job": "obskit", "$route": ".*", "$obskit_job": ".*"}

    def fill(expr: str) -> str:
        for name, value in values.items():
            expr = expr.replace(name, value)
        assert "$" not in expr, expr
        return expr

    panels = {
        f"{p['title']} {t['refId']}": fill(t["expr"]) for p in model["panels"] for t in p.get("targets", [])
    }
    variables = {v["name"]: fill(v["query"]) for v in model["templating"]["list"] if v["type"] == "query"}
    return panels, variables


def label_values(server: Prometheus, query: str) -> list[str]:
    """What Grafana asks Prometheus for ``label_values(selector, label)``: the label's values API."""
    selector, label = query.removeprefix("label_values(").removesuffix(")").rsplit(", ", 1)
    params = urllib.parse.urlencode({"match[]": selector})
    status, body = http_get(f"{server.url}/api/v1/label/{label}/values?{params}")
    assert status == 200, body
    return json.loads(body)["data"]  # type: ignore[no-any-return]


def values(server: Prometheus, expr: str) -> dict[str, float]:
    """Each series the expression answers, as ``label=value,...`` -> value."""
    return {
        ",".join(f"{k}={v}" for k, v in sorted(s["metric"].items())): float(s["value"][1])
        for s in server.query(expr)
    }


@needs_prometheus
def test_every_rule_and_panel_expression_answers_on_real_obskit_data(
    prometheus: Callable[..., Prometheus],
) -> None:
    obskit.configure(**QUIET, metrics_exporter="prometheus", prometheus_port=0, series_cap=5)
    host, port = obskit.prometheus.server_address() or ("", 0)
    checks = health.HealthRegistry()
    checks.register("database", lambda: False)
    checks.register("cache", lambda: True)
    tenants = iter(range(1_000_000))
    recorded = rule_expressions("obskit")
    panels, variables = dashboard_expressions("obskit")
    with obskit.testing.capture(), stuck_job():
        # Whole rounds of traffic before the first scrape and after the last one that counts: every
        # counter's first and last samples in the window hold whole rounds, so ratios are exact.
        traffic(checks, tenants)
        server = prometheus(f"{host}:{port}")

        def answered() -> bool:
            traffic(checks, tenants)
            keys = (
                "job_route:http_server_requests_5xx:ratio_rate5m",
                "HighJobFailureRate",
                "MetricSeriesOverflow",
            )
            return all(server.query(recorded[k]) for k in keys) and bool(
                server.query(panels["Telemetry dropped A"])
            )

        wait_until(answered, "rate() over two scrapes of every family", 60)
        stopped = time.time()
        wait_until(
            lambda: (server.scalar('timestamp(up{job="obskit"})') or 0) > stopped + 0.1,
            "a scrape after the traffic",
            30,
        )
        rule_results = {name: values(server, expr) for name, expr in recorded.items()}
        panel_results = {name: values(server, expr) for name, expr in panels.items()}
        variable_results = {name: label_values(server, query) for name, query in variables.items()}

    # Recording rules: plausible values from what was recorded.
    items = "job=obskit,route=/items/{id}"
    assert rule_results["job_route:http_server_requests:rate5m"][items] > 0
    assert rule_results["job_route:http_server_requests_5xx:ratio_rate5m"][items] == pytest.approx(0.25)
    assert rule_results["job_route:http_server_requests_5xx:ratio_rate5m"]["job=obskit,route=/slow"] == 0
    assert (
        0.025
        <= rule_results["job_route:obskit_http_server_request_duration_seconds:p95_rate5m"][items]
        <= 0.05
    )
    assert (
        2.5
        <= rule_results["job_route:obskit_http_server_request_duration_seconds:p95_rate5m"][
            "job=obskit,route=/slow"
        ]
        <= 5
    )
    nightly = "job=obskit,job_name=nightly"
    assert rule_results["job_job_name:obskit_jobs_error:ratio_rate1h"][nightly] == pytest.approx(0.5)
    assert 0.1 <= rule_results["job_job_name:obskit_job_duration_seconds:p95_rate1h"][nightly] <= 0.5
    assert set(rule_results["job_job_name_status:obskit_jobs:rate5m"]) >= {
        f"job=obskit,job_name=nightly,status={s}" for s in ("success", "error")
    }
    # Alert conditions (default thresholds): each fires exactly where the traffic says it should.
    assert set(rule_results["HighErrorRate"]) == {items}  # 25% > 5%
    assert set(rule_results["HighRequestLatency"]) == {"job=obskit,route=/slow"}  # 3 s > 1 s
    assert rule_results["JobsStuck"] == {"job=obskit,job_name=stuck": 1}
    assert set(rule_results["HighJobFailureRate"]) == {nightly}
    assert rule_results["ServiceDown"] == {}
    target = f"instance={host}:{port},job=obskit"
    assert set(rule_results["HealthCheckFailing"]) == {
        f"__name__=obskit_health_check_status,check=database,{target}"
    }
    assert set(rule_results["TelemetryDropped"]) == {f"{target},reason=queue_full,signal=traces"}
    assert set(rule_results["MetricSeriesOverflow"]) == {f"{target},metric=tenant_requests_total"}

    # Dashboard: every panel query is accepted, and all but in-progress requests (recorded by
    # the web middleware only, not by MetricsCollector.http_request) answer plausible values.
    empty = {name for name, result in panel_results.items() if not result}
    assert empty == {"Requests in progress A"}, empty
    assert panel_results["5xx ratio A"][""] == pytest.approx(0.2)  # 4 of 20 per round
    assert panel_results["5xx ratio by route A"]["route=/items/{id}"] == pytest.approx(0.25)
    assert panel_results["Targets up A"] == {"": 1}
    assert panel_results["Health check status A"] == {"check=cache": 1, "check=database": 0}
    assert panel_results["Jobs in progress A"]["job_name=stuck"] == 1
    odd = {(n, k) for n, r in panel_results.items() for k, v in r.items() if not 0 <= v < math.inf}
    # A job none of whose runs has finished has no rate: its ratio and quantile are NaN (a gap).
    assert odd == {
        ("Job duration p95 A", "job_name=stuck"),
        ("Job failure ratio A", "job_name=stuck"),
    }
    assert "obskit" in variable_results["job"]
    assert set(variable_results["route"]) == {"/items/{id}", "/slow"}
    assert set(variable_results["obskit_job"]) >= {"nightly", "stuck"}
