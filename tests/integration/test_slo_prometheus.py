"""SLOs end to end: a real Prometheus loading ``obskit rules --slo`` and scraping a real service.

A Starlette app instrumented by ``obskit.configure(app)`` and served by a real uvicorn answers
half of its ``/checkout`` requests with a 500 and every ``/browse`` request with a 200. Prometheus
(1 s scrapes and rule evaluations, loopback, free ports) loads the rules generated for three
objectives (checkout and browse with traffic, idle without) and must put ``SLOBurnRatePage`` on
checkout and on nothing else. ``obskit slo report`` against that Prometheus then shows checkout's
budget burning with its alert, browse untouched, idle without data, and an objective whose rules
are not loaded computed from the raw series.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from peers import (
    QUIET,
    Prometheus,
    free_port,
    needs_prometheus,
    prometheus_server,
    wait_until,
)

import obskit
import obskit.prometheus
from obskit import _cli

pytestmark = pytest.mark.integration

OBJECTIVES = """
[[slo]]
name = "checkout"
objective = 0.999
route = "/checkout"

[[slo]]
name = "browse"
objective = 0.999
route = "/browse"

[[slo]]
name = "idle"
objective = 0.99
route = "/idle"
"""
#: An objective Prometheus has no rules for: the report computes it from the raw series.
UNRECORDED = """
[[slo]]
name = "checkout_unrecorded"
objective = 0.99
route = "/checkout"
"""
PAGE = "SLOBurnRatePage"


def service() -> Any:
    """``/checkout`` fails every other request, ``/browse`` never, ``/idle`` is never called."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    calls = itertools.count()

    async def checkout(request: Request) -> PlainTextResponse:
        failing = next(calls) % 2 == 0
        return PlainTextResponse("injected failure" if failing else "ok", 500 if failing else 200)

    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    routes = [Route("/checkout", checkout), Route("/browse", ok), Route("/idle", ok)]
    return Starlette(routes=routes)


@contextlib.contextmanager
def uvicorn_serving(app: Any) -> Iterator[str]:
    """A real uvicorn serving ``app`` on loopback from a thread; its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, "uvicorn to start", 30)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def prometheus_with_rules(
    tmp_path: Path, target: str, rules: Path
) -> contextlib.AbstractContextManager[Prometheus]:
    """Prometheus scraping ``target`` and evaluating ``rules``, both every second."""
    return prometheus_server(tmp_path, target, job="shop", rules=rules)


def report(capsys: pytest.CaptureFixture[str], url: str, *sources: Path) -> tuple[int, dict[str, Any], str]:
    """``obskit slo report`` as JSON (by objective name) and as text."""
    argv = ["slo", "report", "--prometheus", url, *(f"--slo={s}" for s in sources)]
    capsys.readouterr()  # what the test printed before
    status = _cli.main([*argv, "--format", "json"])
    out, err = capsys.readouterr()
    assert err == ""
    document = json.loads(out)
    text_status = _cli.main(argv)
    text, err = capsys.readouterr()
    assert err == ""
    assert text_status in (0, 1)
    return status, {o["name"]: o for o in document["objectives"]}, text


#: The panels of an objective without traffic that show no data: all but its objective line.
IDLE_EMPTY = [
    ("error budget remaining", "A"),
    ("SLI over 30d", "A"),
    *(("burn rate by window", chr(ord("A") + i)) for i in range(8)),
    *(("SLI (1 - error ratio)", ref) for ref in "ABC"),
]


def dashboard_answers(server: Prometheus, source: Path) -> dict[str, bool]:
    """Whether each query of the dashboard's SLO rows answers a series: by panel title and refId."""
    from obskit._cli import dashboard

    model = dashboard.build(_cli.build_parser().parse_args(["dashboard", "--slo", str(source)]), "obskit")
    return {
        f"{p['title']} {t['refId']}": bool(server.query(t["expr"]))
        for p in model["panels"]
        for t in p.get("targets", [])
        if "obskit_slo:" in t["expr"]
    }


@needs_prometheus
def test_injected_failures_page_and_the_report_shows_the_budget_burning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slos, unrecorded, rules = tmp_path / "slos.toml", tmp_path / "unrecorded.toml", tmp_path / "slo.yml"
    slos.write_text(OBJECTIVES)
    unrecorded.write_text(UNRECORDED)
    assert _cli.main(["rules", "--slo", str(slos), "--output", str(rules)]) == 0
    app = service()
    obskit.configure(app, **QUIET, service_name="shop", metrics_exporter="prometheus", prometheus_port=0)
    host, port = obskit.prometheus.server_address() or ("", 0)

    with uvicorn_serving(app) as shop, prometheus_with_rules(tmp_path, f"{host}:{port}", rules) as server:

        def traffic() -> None:
            for path in ("/checkout", "/checkout", "/browse", "/browse"):
                with contextlib.suppress(urllib.error.HTTPError):  # the injected 500s
                    urllib.request.urlopen(f"{shop}{path}", timeout=5).close()

        def paged() -> list[dict[str, Any]]:
            traffic()
            browsing = server.query('obskit_slo:sli_error:ratio_rate5m{slo="browse"}')
            return server.query(f'ALERTS{{alertname="{PAGE}",slo="checkout"}}') if browsing else []

        (alert,) = wait_until(paged, f"{PAGE} pending or firing for checkout", 60)
        assert alert["metric"]["alertstate"] in ("pending", "firing")
        assert alert["metric"]["severity"] == "critical"
        assert server.query(f'ALERTS{{alertname="{PAGE}",slo!="checkout"}}') == []
        status, objectives, text = report(capsys, server.url, slos, unrecorded)
        panels = dashboard_answers(server, slos)

    # The dashboard's SLO rows: every query of checkout and browse answers; idle's only the objective.
    assert {title for title, answered in panels.items() if not answered} == {
        f"idle: {panel} {ref}" for panel, ref in IDLE_EMPTY
    }

    checkout, browse, idle = objectives["checkout"], objectives["browse"], objectives["idle"]
    # checkout: half its requests fail against a 0.1% budget, spent 500 times as fast as allowed.
    assert checkout["series"] == "recorded"
    assert checkout["sli"] == pytest.approx(0.5, abs=0.1)
    assert checkout["error_budget_remaining"] < -300
    assert checkout["burn_rates"]["5m"] > 14.4
    assert checkout["burn_rates"]["1h"] > 14.4
    pages = [a for a in checkout["alerts"] if a["alertname"] == PAGE]
    assert [a["state"] in ("pending", "firing") for a in pages] == [True]
    assert checkout["alert_rules_loaded"] is True
    # Exit status 1 exactly when an SLO alert fires (the page fires without a pending time here).
    assert status == (1 if any(o["firing"] for o in objectives.values()) else 0)
    # browse: every request answered; idle: no request at all, so no data (not NaN, not 100%).
    assert (browse["sli"], browse["error_budget_remaining"], browse["alerts"]) == (1, 1, [])
    assert (idle["series"], idle["sli"], idle["error_budget_remaining"]) == ("recorded", None, None)
    assert set(idle["burn_rates"].values()) == {None}
    # An objective whose rules Prometheus lacks: the same ratio, from the raw series.
    raw = objectives["checkout_unrecorded"]
    assert (raw["series"], raw["alert_rules_loaded"]) == ("raw", False)
    assert raw["sli"] == pytest.approx(0.5, abs=0.1)
    # The text says the same for the operator.
    assert "checkout: availability, objective 99.9% over 30d (recording rules)" in text
    assert f"{PAGE} {pages[0]['state']} (critical)" in text or f"{PAGE} firing (critical)" in text
    assert "(exhausted)" in text
    assert "idle: availability, objective 99% over 30d (recording rules)\n  SLI over 30d     no data" in text
    assert "checkout_unrecorded: availability, objective 99% over 30d (raw expressions:" in text
    assert "nan" not in text.lower()
    assert "note" not in text  # the rules loaded are those of the objectives declared
