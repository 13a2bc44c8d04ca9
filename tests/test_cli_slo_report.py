"""``obskit slo report``: what it asks Prometheus, what it prints, its exit status and its errors.

A loopback HTTP server stands in for Prometheus here, answering the HTTP API's JSON with the
series each test sets, so that no data, NaN, errors and alert states can be set exactly; a real
Prometheus with the generated rules and a real service is in
tests/integration/test_slo_prometheus.py.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from obskit import _cli
from obskit._cli import _promql as q
from obskit._cli import _slo
from obskit._recording import slo as declarations

OBJECTIVES = """
[[slo]]
name = "checkout"
objective = 0.999
route = "/checkout"

[[slo]]
name = "search"
objective = 0.99
route = "/search"
latency_under = 0.25
window = "7d"
"""
ALL_WINDOWS = (*_slo.WINDOWS, "30d")


class FakePrometheus:
    """Answers ``/api/v1/query`` from ``series`` (PromQL text -> result list), empty otherwise."""

    def __init__(self) -> None:
        self.series: dict[str, list[dict[str, Any]]] = {}
        self.rules: list[dict[str, Any]] | None = []  # None: no rules API (HTTP 404)
        self.error: tuple[int, str] | None = None  # (status, body) answered to every query
        self.asked: list[str] = []
        self.authorization: str | None = None  # the Authorization header required, if any
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                params = dict(urllib.parse.parse_qsl(url.query))
                if fake.authorization and self.headers.get("Authorization") != fake.authorization:
                    self._send(401, "Unauthorized\n", "text/plain")
                    return
                if url.path == "/api/v1/rules":
                    if fake.rules is None:
                        self._send(404, "404 page not found", "text/plain")
                    else:
                        self._send(200, json.dumps({"status": "success", "data": {"groups": fake.rules}}))
                    return
                if url.path != "/api/v1/query":
                    self._send(404, "<html>not found</html>", "text/html")
                    return
                fake.asked.append(params["query"])
                if fake.error is not None:
                    self._send(*fake.error)
                    return
                result = fake.series.get(params["query"], [])
                data = {"resultType": "vector", "result": result}
                self._send(200, json.dumps({"status": "success", "data": data}))

            def _send(self, status: int, body: str, kind: str = "application/json") -> None:
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def record(self, metric: str, value: float | str, **labels: str) -> None:
        """Add a series to the answer of the query ``metric`` and of the report's grouped queries."""
        sample = {"metric": {"__name__": metric, **labels}, "value": [1.7e9, str(value)]}
        self.series.setdefault(metric, []).append(sample)

    def recorded_objective(
        self, name: str, kind: str, objective: float, ratios: dict[str, Any], period: str = "30d"
    ) -> None:
        """What the recording rules of one objective write (its objective, its error ratios where
        there was traffic), and the rules the rules API lists for it (every window and the period)."""
        self.record(_slo.OBJECTIVE, objective, slo=name, slo_kind=kind)
        by_window: list[dict[str, Any]] = [
            {
                "metric": {"__name__": _slo.ERROR_RATIO + w, "slo": name, "slo_kind": kind},
                "value": [1, str(r)],
            }
            for w, r in ratios.items()
        ]
        self.series[f'{{__name__=~"{_slo.ERROR_RATIO}.+",slo="{name}"}}'] = by_window
        grouped = f'group by (__name__, slo) ({{__name__=~"{_slo.ERROR_RATIO}.+"}})'
        self.series.setdefault(grouped, []).extend(
            {"metric": {"__name__": s["metric"]["__name__"], "slo": name}, "value": [1, "1"]}
            for s in by_window
        )
        labels = {"slo": name, "slo_kind": kind}
        recording = [
            {"type": "recording", "name": _slo.ERROR_RATIO + w, "query": "...", "labels": labels}
            for w in (*_slo.WINDOWS, period)
        ]
        self._group(name).extend(recording)

    def _group(self, name: str) -> list[dict[str, Any]]:
        assert self.rules is not None
        for group in self.rules:
            if group["name"] == f"obskit-slo-{name}":
                return group["rules"]  # type: ignore[no-any-return]
        self.rules.append({"name": f"obskit-slo-{name}", "rules": []})
        return self.rules[-1]["rules"]  # type: ignore[no-any-return]

    def alert(self, name: str, alertname: str, state: str, severity: str) -> None:
        query = 'ALERTS{alertname=~"SLOBurnRate.*"}'
        labels = {"alertname": alertname, "alertstate": state, "severity": severity, "slo": name}
        self.series.setdefault(query, []).append(
            {"metric": {"__name__": "ALERTS", **labels}, "value": [1, "1"]}
        )

    def alert_rules(self, *names: str, labelled: bool = True) -> None:
        """SLO alert rules for ``names``: with an ``slo`` label, or naming it in the query only."""
        for name in names:
            self._group(name).extend(
                {
                    "type": "alerting",
                    "name": alert,
                    "query": f'obskit_slo:burn_rate:rate1h{{slo="{name}"}} > 14.4',
                    "labels": {"slo": name} if labelled else {},
                }
                for alert in _slo.ALERTS
            )


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    fake = FakePrometheus()
    thread = threading.Thread(target=fake.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def source(tmp_path: Path) -> str:
    path = tmp_path / "slos.toml"
    path.write_text(OBJECTIVES)
    return str(path)


def report(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = _cli.main(["slo", "report", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def report_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    status, out, err = report(capsys, *argv, "--format", "json")
    assert err == ""
    document: dict[str, Any] = json.loads(out)
    return status, document


# -- the figures ----------------------------------------------------------------------------------


def test_recorded_series_give_sli_budget_burn_rates_and_a_pending_alert(
    prometheus: FakePrometheus, source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # 0.5% of checkout's requests failed over 30d with a 0.1% budget: 5x, budget spent 5 times.
    prometheus.recorded_objective("checkout", "availability", 0.999, {w: 0.005 for w in ALL_WINDOWS})
    ratios = {w: 0.001 for w in (*_slo.WINDOWS, "7d")}
    prometheus.recorded_objective("search", "latency", 0.99, ratios, period="7d")
    prometheus.alert("checkout", "SLOBurnRateTicket", "pending", "warning")
    prometheus.alert_rules("checkout", "search")
    status, out, err = report(capsys, "--prometheus", prometheus.url, "--slo", source)
    assert (status, err) == (0, "")  # pending is not firing
    assert f"SLO report from Prometheus at {prometheus.url}" in out
    checkout, search = out.split("\n\n")[1:]
    assert checkout.splitlines() == [
        "checkout: availability, objective 99.9% over 30d (recording rules)",
        "  SLI over 30d     99.5%",
        "  budget left      -400% of a 0.1% error budget (exhausted)",
        "  burn rate        5m 5x, 30m 5x, 1h 5x, 2h 5x, 6h 5x, 1d 5x, 3d 5x",
        "  alerts           SLOBurnRateTicket pending (warning)",
    ]
    assert search.splitlines()[0] == "search: latency under 0.25s, objective 99% over 7d (recording rules)"
    assert "  SLI over 7d      99.9%" in search
    assert "  budget left      90% of a 1% error budget" in search
    assert "  alerts           none pending or firing" in search
    # The recorded series were read, never the raw families.
    assert not any("http_server_requests_total" in asked for asked in prometheus.asked)


def test_a_firing_alert_exits_1_and_json_says_so(
    prometheus: FakePrometheus, source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prometheus.recorded_objective("checkout", "availability", 0.999, {w: 0.5 for w in ALL_WINDOWS})
    prometheus.alert("checkout", "SLOBurnRatePage", "firing", "critical")
    prometheus.alert("checkout", "SLOBurnRateTicket", "pending", "warning")
    prometheus.alert("other", "SLOBurnRatePage", "firing", "critical")  # not an objective reported
    status, document = report_json(capsys, "--prometheus", prometheus.url, "--slo", source)
    assert status == 1
    assert document["firing"] is True
    checkout = document["objectives"][0]
    assert checkout == {
        "name": "checkout",
        "kind": "availability",
        "objective": 0.999,
        "window": "30d",
        "series": "recorded",
        "sli": 0.5,
        "error_budget_remaining": -499,  # exactly: the budget is 0.001, not 1 - 0.999
        "burn_rates": dict.fromkeys(_slo.WINDOWS, 500),
        "alerts": [
            {"alertname": "SLOBurnRatePage", "state": "firing", "severity": "critical"},
            {"alertname": "SLOBurnRateTicket", "state": "pending", "severity": "warning"},
        ],
        "alert_rules_loaded": False,
        "firing": True,
        "note": None,
    }
    assert [o["name"] for o in document["objectives"]] == ["checkout", "search"]
    status, out, _ = report(capsys, "--prometheus", prometheus.url, "--slo", source)
    assert status == 1
    assert "alerts           SLOBurnRatePage firing (critical), SLOBurnRateTicket pending (warning)" in out


def test_without_recording_rules_the_raw_expressions_are_queried_and_named(
    prometheus: FakePrometheus, source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    checkout, search = declarations.load(source)
    families = q.families("obskit")
    for w in ALL_WINDOWS:
        prometheus.series[_slo.error_ratio(checkout, w, families)] = [{"metric": {}, "value": [1, "0.002"]}]
    prometheus.rules = None  # an older server, or a query front end without the rules API
    status, document = report_json(capsys, "--prometheus", prometheus.url, "--slo", source)
    assert status == 0
    first, second = document["objectives"]
    assert (first["series"], second["series"]) == ("raw", "raw")
    assert first["sli"] == pytest.approx(0.998)
    assert first["error_budget_remaining"] == pytest.approx(-1)
    assert first["alert_rules_loaded"] is None
    assert second["sli"] is None  # no search traffic: no data
    for w in (*_slo.WINDOWS, "7d"):
        assert _slo.error_ratio(search, w, families) in prometheus.asked
    _, out, _ = report(capsys, "--prometheus", prometheus.url, "--slo", source)
    headline = "checkout: availability, objective 99.9% over 30d"
    assert f"{headline} (raw expressions: its recording rules are not loaded)" in out


def test_raw_expressions_follow_namespace_job_label_and_selector(
    prometheus: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "jobs.toml"
    path.write_text('[[slo]]\nname = "export"\nobjective = 0.99\njob = "export"\n')
    (export,) = declarations.load(str(path))
    argv = ["--namespace", "acme", "--job-label", "task", "--selector", 'env="prod"']
    report(capsys, "--prometheus", prometheus.url, "--slo", str(path), *argv)
    expected = _slo.error_ratio(export, "1h", q.families("acme"), job_label="task", selector=('env="prod"',))
    assert expected in prometheus.asked
    assert 'acme_jobs_total{task="export",env="prod"' in expected


def test_no_traffic_is_no_data_not_nan(
    prometheus: FakePrometheus, source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Rules loaded; checkout had no request for a while (NaN, as a 0/0 rule would record), and
    # search none at all (no series, as obskit's rules record).
    prometheus.recorded_objective("checkout", "availability", 0.999, {w: "NaN" for w in ALL_WINDOWS})
    prometheus.recorded_objective("search", "latency", 0.99, {}, period="7d")
    prometheus.alert_rules("checkout", "search")
    status, out, err = report(capsys, "--prometheus", prometheus.url, "--slo", source)
    assert (status, err) == (0, "")
    assert "nan" not in out.lower()
    assert out.count("no data (no events in the window)") == 2
    assert out.count("  burn rate        no data\n") == 2
    status, document = report_json(capsys, "--prometheus", prometheus.url, "--slo", source)
    for objective in document["objectives"]:
        assert objective["sli"] is None
        assert objective["error_budget_remaining"] is None
        assert set(objective["burn_rates"].values()) == {None}


def test_alert_rules_missing_from_prometheus_are_said(
    prometheus: FakePrometheus, source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prometheus.alert_rules("checkout")
    _, out, _ = report(capsys, "--prometheus", prometheus.url, "--slo", source)
    checkout, search = out.split("\n\n")[1:]
    assert "alerts           none pending or firing" in checkout
    assert "alerts           none (no SLO alert rules for it in this Prometheus)" in search


def test_alert_rules_naming_the_objective_in_their_query_count(
    prometheus: FakePrometheus, source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prometheus.alert_rules("checkout", "search", labelled=False)
    _, document = report_json(capsys, "--prometheus", prometheus.url, "--slo", source)
    assert [o["alert_rules_loaded"] for o in document["objectives"]] == [True, True]


def test_rules_loaded_for_another_objective_are_pointed_out(
    prometheus: FakePrometheus, source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # checkout's rules were generated for 99% (its ratios still hold: they do not depend on it);
    # search's for a 30d period, not its 7d: its ratio over 7d is computed from the raw series.
    prometheus.recorded_objective("checkout", "availability", 0.99, {w: 0.002 for w in ALL_WINDOWS})
    prometheus.recorded_objective("search", "latency", 0.99, {w: 0.001 for w in ALL_WINDOWS})
    _, document = report_json(capsys, "--prometheus", prometheus.url, "--slo", source)
    checkout, search = document["objectives"]
    assert checkout["series"] == "recorded"
    assert checkout["error_budget_remaining"] == pytest.approx(-1)  # with the declared 99.9%
    assert (
        checkout["note"]
        == "the rules in Prometheus are for 99% over 30d: regenerate them with obskit rules --slo"
    )
    assert search["series"] == "raw"
    assert (
        search["note"]
        == "the rules in Prometheus are for 99% over 30d: regenerate them with obskit rules --slo"
    )
    _, out, _ = report(capsys, "--prometheus", prometheus.url, "--slo", source)
    assert "  note             the rules in Prometheus are for 99% over 30d: regenerate them" in out


# -- which objectives -----------------------------------------------------------------------------


def test_without_slo_the_obskit_toml_of_the_current_directory_is_read(
    prometheus: FakePrometheus,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "obskit.toml").write_text(OBJECTIVES)
    monkeypatch.chdir(tmp_path)
    status, document = report_json(capsys, "--prometheus", prometheus.url)
    assert status == 0
    assert [o["name"] for o in document["objectives"]] == ["checkout", "search"]


def test_without_any_source_the_objectives_recorded_in_prometheus_are_reported(
    prometheus: FakePrometheus,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    ratios = {**{w: 0.0001 for w in _slo.WINDOWS}, "28d": 0.0002}
    prometheus.recorded_objective("payments", "availability", 0.999, ratios, period="28d")
    status, document = report_json(capsys, "--prometheus", prometheus.url)
    assert status == 0
    (payments,) = document["objectives"]
    assert (payments["name"], payments["kind"], payments["window"]) == ("payments", "availability", "28d")
    assert payments["sli"] == pytest.approx(0.9998)
    assert payments["error_budget_remaining"] == pytest.approx(0.8)


def test_without_the_rules_api_the_period_is_read_from_the_series(
    prometheus: FakePrometheus,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    prometheus.recorded_objective(
        "payments", "availability", 0.999, {"5m": 0, "1h": 0, "28d": 0}, period="28d"
    )
    prometheus.rules = None
    _, document = report_json(capsys, "--prometheus", prometheus.url)
    (payments,) = document["objectives"]
    assert (payments["window"], payments["sli"], payments["alert_rules_loaded"]) == ("28d", 1, None)


def test_no_objectives_anywhere_exits_2(
    prometheus: FakePrometheus,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    status, out, err = report(capsys, "--prometheus", prometheus.url)
    assert (status, out) == (2, "")
    assert err.startswith(f"obskit slo report: no objectives: Prometheus at {prometheus.url} has no ")
    assert "--slo" in err


def test_a_bad_source_exits_2_naming_it(
    prometheus: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[slo]]\nname = "x"\nobjective = 1.5\n')
    status, out, err = report(capsys, "--prometheus", prometheus.url, "--slo", str(path))
    assert (status, out) == (2, "")
    assert err.startswith("obskit slo report: ")
    assert "bad.toml" in err
    assert prometheus.asked == []  # the source is checked before Prometheus is asked


# -- Prometheus errors ----------------------------------------------------------------------------


def test_unreachable_prometheus_exits_2_naming_the_url(
    source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"  # nothing listens once closed
    status, out, err = report(capsys, "--prometheus", url, "--slo", source)
    assert (status, out) == (2, "")
    assert err.startswith(f"obskit slo report: cannot reach Prometheus at {url}: ")


def test_a_silent_prometheus_times_out(source: str, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        status, _, err = report(capsys, "--prometheus", url, "--slo", source, "--timeout", "0.2")
    assert status == 2
    assert err.startswith(f"obskit slo report: cannot reach Prometheus at {url}: ")
    assert "timed out" in err


def test_a_refused_query_exits_2_with_prometheus_error(
    prometheus: FakePrometheus, source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = {"status": "error", "errorType": "bad_data", "error": "1:1: parse error: unexpected"}
    prometheus.error = (400, json.dumps(answer))
    status, out, err = report(capsys, "--prometheus", prometheus.url, "--slo", source)
    assert (status, out) == (2, "")
    assert err.startswith(f"obskit slo report: Prometheus at {prometheus.url} answered 1:1: parse error")
    assert "(HTTP 400)" in err


def test_something_else_than_prometheus_exits_2(
    prometheus: FakePrometheus, source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = report(capsys, "--prometheus", prometheus.url + "/grafana", "--slo", source)
    assert status == 2
    assert "answered HTTP 404 to /api/v1/query, not as the Prometheus HTTP API" in err


def test_credentials_in_the_url_are_sent_as_basic_auth_and_never_shown(
    prometheus: FakePrometheus, source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prometheus.authorization = "Basic " + base64.b64encode(b"ops:s3cr@t").decode()
    address = prometheus.url.replace("http://", "http://ops:s3cr%40t@")
    status, out, err = report(capsys, "--prometheus", address, "--slo", source)
    assert (status, err) == (0, "")
    assert f"SLO report from Prometheus at {prometheus.url}\n" in out
    assert "s3cr" not in out
    wrong = prometheus.url.replace("http://", "http://ops:guess@")
    status, out, err = report(capsys, "--prometheus", wrong, "--slo", source)
    assert (status, out) == (2, "")
    assert err.startswith(f"obskit slo report: Prometheus at {prometheus.url} refused the credentials")
    assert "guess" not in err
    status, _, err = report(capsys, "--prometheus", prometheus.url, "--slo", source)
    assert status == 2
    assert "wants credentials (HTTP 401); basic auth goes in the URL" in err


def test_a_bearer_token_file_is_sent_and_never_shown(
    prometheus: FakePrometheus, source: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prometheus.authorization = "Bearer eyJ0b2tlbiI.s3cr3t"
    token = tmp_path / "token"
    token.write_text("  eyJ0b2tlbiI.s3cr3t\n", encoding="utf-8")  # as kubectl create token writes it
    status, out, err = report(
        capsys, "--prometheus", prometheus.url, "--bearer-token-file", str(token), "--slo", source
    )
    assert (status, err) == (0, "")
    assert "s3cr3t" not in out
    token.write_text("guess\n", encoding="utf-8")
    status, out, err = report(
        capsys, "--prometheus", prometheus.url, "--bearer-token-file", str(token), "--slo", source
    )
    assert (status, out) == (2, "")
    assert err.startswith(
        f"obskit slo report: Prometheus at {prometheus.url} refused the bearer token of --bearer-token-file"
    )
    assert "guess" not in err
    status, _, err = report(capsys, "--prometheus", prometheus.url, "--slo", source)
    assert status == 2
    assert "wants credentials (HTTP 401); basic auth goes in the URL: http://user:password@host:9090, " in err
    assert "a bearer token in --bearer-token-file FILE" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read --bearer-token-file {path}: No such file or directory"),
        ("\n", "--bearer-token-file {path} is empty; allowed: a file holding the token"),
        ("s3cr3t\nmore\n", "--bearer-token-file {path} holds more than a token; allowed: one line of"),
        ("s3cr3t\u2013\n", "--bearer-token-file {path} holds more than a token; allowed: one line of"),
    ],
)
def test_a_bad_bearer_token_file_exits_2_before_asking(
    prometheus: FakePrometheus,
    source: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    message: str,
) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    status, out, err = report(
        capsys, "--prometheus", prometheus.url, "--bearer-token-file", str(path), "--slo", source
    )
    assert (status, out) == (2, "")
    assert err.startswith("obskit slo report: " + message.format(path=path))
    assert "s3cr3t" not in err
    assert prometheus.asked == []


def test_credentials_in_the_url_and_a_bearer_token_are_refused_together(
    prometheus: FakePrometheus, source: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = tmp_path / "token"
    token.write_text("s3cr3t\n", encoding="utf-8")
    address = prometheus.url.replace("http://", "http://ops:pa55@")
    status, out, err = report(
        capsys, "--prometheus", address, "--bearer-token-file", str(token), "--slo", source
    )
    assert (status, out) == (2, "")
    assert err == (
        f"obskit slo report: credentials given twice, in the URL of --prometheus {prometheus.url} and in "
        "--bearer-token-file; allowed: one of them\n"
    )
    assert prometheus.asked == []


@pytest.mark.parametrize("url", ["prometheus:9090", "ftp://host", "http://", "http://a b"])
def test_a_bad_url_is_refused_by_the_parser(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _cli.main(["slo", "report", "--prometheus", url])
    assert exit_info.value.code == 2
    assert f"argument --prometheus: invalid value {url!r}; allowed: an http:// or https:// URL" in (
        capsys.readouterr().err
    )


def test_a_bad_url_with_credentials_is_refused_without_showing_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        _cli.main(["slo", "report", "--prometheus", "http://ops:s3cret@host:9090/a b"])
    err = capsys.readouterr().err
    assert "invalid value 'http://***@host:9090/a b'" in err
    assert "s3cret" not in err


@pytest.mark.parametrize(
    ("ratio", "digits", "down", "shown"),
    [
        (0.999, 3, False, "99.9%"),
        (0.5, 3, False, "50%"),
        (-499.0, 1, False, "-49900%"),
        (-0.00001, 1, False, "0%"),
        (0.9989996, 3, False, "99.9%"),
        (0.9989996, 3, True, "99.899%"),  # an SLI missing 99.9% is not shown as 99.9%
        (0.9985, 3, True, "99.85%"),
        (1.0, 3, True, "100%"),
        (0.99999, 3, True, "99.999%"),
    ],
)
def test_percent(ratio: float, digits: int, down: bool, shown: str) -> None:
    from obskit._cli.slo import percent

    assert percent(ratio, digits, down=down) == shown


def test_a_trailing_slash_is_dropped(
    prometheus: FakePrometheus, source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, document = report_json(capsys, "--prometheus", prometheus.url + "/", "--slo", source)
    assert (status, document["prometheus"]) == (0, prometheus.url)
