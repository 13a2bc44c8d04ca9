"""``obskit rules --slo`` on a real Prometheus: the generated rules file, loaded with ``rule_files:``,
records each kind's error ratio, burn rate and budget from what a real obskit service exposes.

The service: a real Flask app instrumented by ``configure()`` (a quarter of /checkout requests
raise, answered 500), requests observed by the collector (half of /search slower than 250 ms),
``track_job`` runs (half failing) and external calls (a quarter failing).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from peers import (
    QUIET,
    Prometheus,
    needs_prometheus,
    prometheus_server,
    wait_until,
)

import obskit
import obskit.prometheus
import obskit.testing
from obskit import _cli
from obskit._recording import slo

pytestmark = pytest.mark.integration

OBJECTIVES = """\
[[slo]]
name = "checkout"
objective = 0.99
route = "/checkout"

[[slo]]
name = "search"
objective = 0.99
route = "/search"
latency_under = 0.25

[[slo]]
name = "nightly_export"
objective = 0.9
job = "nightly_export"

[[slo]]
name = "llm"
objective = 0.995
target = "openai"

[[slo]]
name = "idle"
objective = 0.999
route = "/never-called"
"""
#: Each objective's share of bad events in the traffic below.
EXPECTED = {"checkout": 0.25, "search": 0.5, "nightly_export": 0.5, "llm": 0.25}


@pytest.fixture(autouse=True)
def _keep_declared() -> Iterator[None]:
    before = dict(slo._registry)
    yield
    slo._registry.clear()
    slo._registry.update(before)


def shop() -> Flask:
    app = Flask("slo_shop")
    calls = iter(range(1_000_000))

    @app.get("/checkout")
    def checkout() -> str:
        if next(calls) % 4 == 3:
            raise RuntimeError("payment provider down")
        return "ok"

    return app


def traffic(client: object) -> None:
    """One round: 4 checkouts (1 raising), 2 searches (1 slow), 2 runs (1 failing), 4 calls (1 failing)."""
    for _ in range(4):
        client.get("/checkout")  # type: ignore[attr-defined]
    metrics = obskit.MetricsCollector()
    metrics.http_request("GET", "/search", 200, 0.03)
    metrics.http_request("GET", "/search", 200, 0.4)
    obskit.track_job("nightly_export")(lambda: None)()
    with pytest.raises(ValueError, match="export failed"):
        obskit.track_job("nightly_export")(_fail)()
    for error in (False, False, False, True):
        metrics.external_call("openai", "chat", 0.2, error=error)


def _fail() -> None:
    raise ValueError("export failed")


@pytest.fixture
def prometheus_with_rules(tmp_path: Path) -> Iterator[Callable[[str], Prometheus]]:
    """Starts a Prometheus scraping a target every second, the SLO rules of OBJECTIVES loaded.

    Returned once the target has answered its first scrape: a scrape taken in the middle of a
    round of traffic would make the first sample of the window hold part of a round (CI saw
    17/65 for checkout's 1/4).
    """
    (tmp_path / "obskit.toml").write_text(OBJECTIVES, encoding="utf-8")
    rules = tmp_path / "rules.yml"
    assert _cli.main(["rules", "--slo", str(tmp_path / "obskit.toml"), "-o", str(rules)]) == 0
    stack = contextlib.ExitStack()

    def start(target: str) -> Prometheus:
        return stack.enter_context(
            prometheus_server(tmp_path, target, job="shop", rules=rules, first_scrape=True)
        )

    with stack:
        yield start


def recorded(server: Prometheus, metric: str) -> dict[str, float]:
    return {s["metric"]["slo"]: float(s["value"][1]) for s in server.query(metric)}


@needs_prometheus
def test_the_slo_rules_record_each_kind_from_real_obskit_data(
    prometheus_with_rules: Callable[[str], Prometheus],
) -> None:
    app = shop()
    obskit.configure(app, **QUIET, metrics_exporter="prometheus", prometheus_port=0)
    host, port = obskit.prometheus.server_address() or ("", 0)
    client = app.test_client()
    with obskit.testing.capture():
        # Whole rounds before the first scrape (waited for before any more traffic) and before the
        # last one that counts, so that the first and last samples of every counter in the window
        # hold whole rounds and the ratios are exact; scrapes in between take no part in rate().
        traffic(client)
        server = prometheus_with_rules(f"{host}:{port}")

        def answered() -> bool:
            traffic(client)
            return set(recorded(server, "obskit_slo:sli_error:ratio_rate5m")) >= set(EXPECTED)

        wait_until(answered, "the SLO ratios over two scrapes", 60)
        stopped = time.time()
        wait_until(
            lambda: (server.scalar('timestamp(up{job="shop"})') or 0) > stopped + 0.1,
            "a scrape after the traffic",
            30,
        )
        wait_until(
            lambda: (
                (server.scalar("max(timestamp(obskit_slo:error_budget_remaining:ratio))") or 0)
                > stopped + 1.1
            ),
            "a rule evaluation after that scrape",
            30,
        )
        ratios = recorded(server, "obskit_slo:sli_error:ratio_rate5m")
        burn = recorded(server, "obskit_slo:burn_rate:rate1h")
        budget = recorded(server, "obskit_slo:error_budget_remaining:ratio")
        objectives = recorded(server, "obskit_slo:objective:ratio")
        kinds = {
            s["metric"]["slo"]: s["metric"]["slo_kind"] for s in server.query("obskit_slo:objective:ratio")
        }

    assert kinds == {
        "checkout": "availability", "search": "latency", "nightly_export": "job", "llm": "external",
        "idle": "availability",
    }  # fmt: skip
    # A route never called has the objective only: no ratio, no burn rate, no budget (no 0/0).
    assert objectives["idle"] == 0.999
    assert "idle" not in ratios
    assert "idle" not in burn
    assert "idle" not in budget
    budgets = {"checkout": 0.01, "search": 0.01, "nightly_export": 0.1, "llm": 0.005}
    for name, share in EXPECTED.items():
        assert ratios[name] == pytest.approx(share), name
        assert burn[name] == pytest.approx(share / budgets[name]), name
        assert budget[name] == pytest.approx(1 - share / budgets[name]), name
