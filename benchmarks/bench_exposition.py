"""Benchmark P: answering a scrape of ``/metrics``, against prometheus_client serving the same series.

After ``configure(metrics_exporter="prometheus")`` (``_setup.configured``), obskit's exposition is
called in process as a scrape reaches it: ``obskit.prometheus.make_wsgi_app()`` (what the scrape
server that ``configure()`` starts serves, and what a WSGI app mounts) with a plain ``GET`` and no
``Accept`` header (the text format, no gzip), and ``obskit.prometheus.make_asgi_app()`` the same
way. The baseline is prometheus_client's own ``make_wsgi_app(registry)`` / ``make_asgi_app(registry)``
over a registry holding the same families (obskit's two empty ``obskit_telemetry_*`` families
included) with the same series and values. obskit leaves out ``<name>_created`` samples by
default (``prometheus_created=False``); the baseline's are switched off while it is measured
(``disable_created_metrics()``), so both answers are the same bytes, which is checked first.
A third case scrapes the WSGI apps as a Prometheus server does: ``Accept`` preferring OpenMetrics
and ``Accept-Encoding: gzip`` (the bodies compared once uncompressed).

Two registries: ``small`` (one counter series and one histogram series: where the fixed cost of
a scrape shows) and ``service`` (a web service's request metrics: 60 counter series, 30
histogram series of 11 buckets, one gauge). Each starts from an empty obskit store.
"""

from __future__ import annotations

import difflib
import gzip
from typing import Any

import prometheus_client
from _harness import Config, Row, Side, async_loop, compare, event_loop, loop
from _setup import configured
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge as PromGauge
from prometheus_client import Histogram as PromHistogram

import obskit
import obskit.prometheus

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: registry name -> (methods, routes, statuses): the request counter has one series per
#: combination, the duration histogram one per (method, route).
SIZES = {
    "small": (("GET",), ("/items/{id}",), ("200",)),
    "service": (
        ("GET", "POST", "PUT"),
        tuple(f"/api/v1/resource{n}/{{id}}" for n in range(10)),
        ("200", "500"),
    ),
}
ENVIRON = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/metrics",
    "QUERY_STRING": "",
    "SERVER_PROTOCOL": "HTTP/1.1",
}
#: What a Prometheus server sends with its scrapes: OpenMetrics preferred, gzip accepted.
PROMETHEUS_ENVIRON = {
    **ENVIRON,
    "HTTP_ACCEPT": (
        "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,"
        "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
    ),
    "HTTP_ACCEPT_ENCODING": "gzip",
}
SCOPE = {
    "type": "http",
    "method": "GET",
    "path": "/metrics",
    "raw_path": b"/metrics",
    "query_string": b"",
    "headers": [],
    "http_version": "1.1",
}


def record(metrics: dict[str, Any], size: str) -> None:
    """The same recordings on either side: ``metrics`` holds a counter, histogram and gauge."""
    methods, routes, statuses = SIZES[size]
    for i, method in enumerate(methods):
        for j, route in enumerate(routes):
            for status in statuses:
                metrics["counter"].labels(method=method, route=route, status=status).inc(i + j + 1)
            for k in range(5):
                metrics["histogram"].labels(method=method, route=route).observe(0.003 * (i + j + k + 1) ** 2)
    if size != "small":
        metrics["gauge"].set(7)


def obskit_metrics(size: str) -> dict[str, Any]:
    collector = obskit.MetricsCollector()
    metrics: dict[str, Any] = {
        "counter": collector.counter(f"{size}_requests", "Requests.", labels=["method", "route", "status"]),
        "histogram": collector.histogram(
            f"{size}_request_duration_seconds", "Duration.", labels=["method", "route"], buckets=BUCKETS
        ),
    }
    if size != "small":
        metrics["gauge"] = collector.gauge(f"{size}_in_flight", "In flight.")
    return metrics


def _prometheus_metrics(size: str, registry: CollectorRegistry) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "counter": PromCounter(
            f"{size}_requests", "Requests.", ["method", "route", "status"], registry=registry
        ),
        "histogram": PromHistogram(
            f"{size}_request_duration_seconds",
            "Duration.",
            ["method", "route"],
            registry=registry,
            buckets=BUCKETS,
            unit="seconds",  # obskit takes it from the name's suffix (OpenMetrics shows it)
        ),
    }
    if size != "small":
        metrics["gauge"] = PromGauge(f"{size}_in_flight", "In flight.", registry=registry)
    return metrics


def _baseline_registry(state: Any, size: str) -> CollectorRegistry:
    """A registry with obskit's own (empty) families first, as obskit's store has them, then the app's."""
    registry = CollectorRegistry()
    for family in state.store.registry.collect():
        if family.name.startswith("obskit_telemetry_"):
            if family.samples:
                raise RuntimeError(f"obskit recorded {family.name} during the benchmark")
            PromCounter(family.name, family.documentation, ["unused"], registry=registry)
    record(_prometheus_metrics(size, registry), size)
    return registry


def _wsgi_body(app: Any, environ: dict[str, str] = ENVIRON) -> bytes:
    """The answer's body (uncompressed)."""
    answers: list[tuple[str, dict[str, str]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answers.append((status, dict(headers)))

    body = b"".join(app(dict(environ), start_response))
    if [status for status, _ in answers] != ["200 OK"]:
        raise RuntimeError(f"the scrape was answered {answers}")
    if answers[0][1].get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    elif "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
        raise RuntimeError("a scrape that accepts gzip was answered uncompressed")
    return body


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(message: dict[str, Any]) -> None:
    return None


def _asgi_body(app: Any) -> bytes:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    event_loop().run_until_complete(app(dict(SCOPE), _receive, send))
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def _created(on: bool) -> Any:
    def prepare() -> None:
        (prometheus_client.enable_created_metrics if on else prometheus_client.disable_created_metrics)()

    return prepare


def scrape_apps(state: Any, size: str) -> tuple[Any, Any, Any, Any, int]:
    """(baseline WSGI, obskit WSGI, baseline ASGI, obskit ASGI, lines), checked to answer the same bytes.

    Call with obskit configured and ``size``'s metrics recorded through it.
    """
    registry = _baseline_registry(state, size)
    theirs_wsgi = prometheus_client.make_wsgi_app(registry)
    ours_wsgi = obskit.prometheus.make_wsgi_app()
    theirs_asgi = prometheus_client.make_asgi_app(registry)
    ours_asgi = obskit.prometheus.make_asgi_app()
    try:
        _created(False)()
        expected = _wsgi_body(theirs_wsgi)
        if _asgi_body(theirs_asgi) != expected:
            raise RuntimeError("prometheus_client's WSGI and ASGI answers differ")
        expected_openmetrics = _wsgi_body(theirs_wsgi, PROMETHEUS_ENVIRON)
    finally:
        _created(True)()
    for got, wanted in (
        (_wsgi_body(ours_wsgi), expected),
        (_asgi_body(ours_asgi), expected),
        (_wsgi_body(ours_wsgi, PROMETHEUS_ENVIRON), expected_openmetrics),
    ):
        if got != wanted:
            diff = "\n".join(
                difflib.unified_diff(wanted.decode().splitlines(), got.decode().splitlines(), lineterm="")
            )
            raise RuntimeError(f"obskit's exposition differs from the baseline's:\n{diff[:3000]}")
    if not expected_openmetrics.endswith(b"# EOF\n"):
        raise RuntimeError("the Prometheus-style scrape was not answered in OpenMetrics")
    return theirs_wsgi, ours_wsgi, theirs_asgi, ours_asgi, expected.count(b"\n")


def _rows(config: Config, state: Any, size: str) -> list[Row]:
    theirs_wsgi, ours_wsgi, theirs_asgi, ours_asgi, lines = scrape_apps(state, size)
    wsgi_stmt = "app(dict(environ), start_response)"
    asgi_stmt = "await app(dict(scope), receive, send)"

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        return None

    def wsgi(app: Any, environ: dict[str, str] = ENVIRON) -> Any:
        return loop(wsgi_stmt, {"app": app, "environ": environ, "start_response": start_response})

    def asgi(app: Any) -> Any:
        return async_loop(asgi_stmt, {"app": app, "scope": SCOPE, "receive": _receive, "send": _discard})

    note = f"{lines} lines, text format"
    return [
        compare(
            "P",
            f"/metrics, WSGI, {size} registry",
            Side("prometheus_client make_wsgi_app", wsgi(theirs_wsgi), _created(False)),
            Side("obskit", wsgi(ours_wsgi), _created(True)),
            config,
            max_ratio=1.0,
            note=note,
        ),
        compare(
            "P",
            f"/metrics, ASGI, {size} registry",
            Side("prometheus_client make_asgi_app", asgi(theirs_asgi), _created(False)),
            Side("obskit", asgi(ours_asgi), _created(True)),
            config,
            max_ratio=1.0,
            note=note,
        ),
        compare(
            "P",
            f"/metrics, WSGI, {size} registry, as Prometheus asks",
            Side("prometheus_client make_wsgi_app", wsgi(theirs_wsgi, PROMETHEUS_ENVIRON), _created(False)),
            Side("obskit", wsgi(ours_wsgi, PROMETHEUS_ENVIRON), _created(True)),
            config,
            max_ratio=1.0,
            note="OpenMetrics, gzip",
        ),
    ]


def run(config: Config) -> list[Row]:
    rows: list[Row] = []
    try:
        for size in SIZES:
            with configured() as state:
                if state.settings.prometheus_created:
                    raise RuntimeError("the benchmark expects prometheus_created=False (the default)")
                record(obskit_metrics(size), size)
                rows += _rows(config, state, size)
    finally:
        prometheus_client.enable_created_metrics()
    return rows


if __name__ == "__main__":
    import sys

    from _harness import table

    print(table(run(Config.make("--quick" in sys.argv))))
