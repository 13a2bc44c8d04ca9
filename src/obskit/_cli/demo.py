"""``obskit demo``: a small instrumented web service under real traffic, then where to look.

Needs nothing beyond obskit's core dependencies: the service is a plain WSGI app on stdlib
``wsgiref`` wrapped by :func:`obskit.wsgi.middleware`. While traffic runs, JSON log lines go to
stdout and spans to stderr (the console default); metrics are served for Prometheus. At the end
a summary on stderr gives the URLs, a few metric lines scraped from the real endpoint, a sample
log line and one request's span tree. Exits by itself after ``--duration`` seconds or
``--requests`` requests; Ctrl-C stops it early (status 130), or ends ``--keep-running`` (0).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="run an instrumented demo service under real traffic and show where its telemetry goes",
        description="Serve a small shop API (stdlib wsgiref + obskit.wsgi.middleware) on 127.0.0.1, "
        "drive it with real HTTP requests (some 404s and 500s), batch jobs (some failing) and a "
        "custom metric, then print where to look: the metrics URL, key metric lines scraped from "
        "it, a sample JSON log line and one request's span tree. JSON logs go to stdout, spans and "
        "the summary to stderr. Settings not given here are resolved from the environment as "
        "obskit.configure() does; by default metrics are served for Prometheus (a free port).",
    )
    parser.add_argument(
        "--duration", type=float, default=6.0, metavar="SECONDS", help="seconds of traffic (default 6)"
    )
    parser.add_argument("--requests", type=int, metavar="N", help="stop the traffic after N requests")
    parser.add_argument("--port", type=int, default=0, help="port of the demo service (default: a free one)")
    parser.add_argument("--service-name", metavar="NAME", help="service name (default obskit-demo)")
    parser.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        help='also export all three signals over OTLP to URL (needs pip install "obskit[otlp]")',
    )
    parser.add_argument(
        "--azure-connection-string",
        metavar="STRING",
        help='also export to Application Insights (needs pip install "obskit[azure]")',
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="after the traffic and the summary, keep serving until Ctrl-C (to browse /metrics)",
    )
    parser.set_defaults(run=run)


def _with(names: tuple[str, ...], extra: str) -> str:
    return ",".join(dict.fromkeys([n for n in names if n != "none"] + [extra]))


def configure_keywords(args: argparse.Namespace, environ: Any) -> dict[str, Any]:
    """The ``configure()`` keywords of the demo: its defaults where the environment says nothing."""
    from obskit import environment_variables as env
    from obskit._core.settings import resolve_settings

    keywords: dict[str, Any] = {}
    named = any(environ.get(v, "").strip() for v in (env.OBSKIT_SERVICE_NAME, env.OTEL_SERVICE_NAME))
    if args.service_name or not (named or "service.name=" in environ.get(env.OTEL_RESOURCE_ATTRIBUTES, "")):
        keywords["service_name"] = args.service_name or "obskit-demo"
    if not environ.get(env.OTEL_METRICS_EXPORTER, "").strip():
        keywords["metrics_exporter"] = "prometheus"
    if not environ.get(env.OTEL_EXPORTER_PROMETHEUS_PORT, "").strip():
        keywords["prometheus_port"] = 0  # a fixed 9464 could be taken; the summary says where it is
    extras = []
    if args.otlp_endpoint:
        keywords["otlp_endpoint"] = args.otlp_endpoint
        extras.append("otlp")
    if args.azure_connection_string:
        keywords["azure_connection_string"] = args.azure_connection_string
        extras.append("azure")
    if extras:
        base = resolve_settings(keywords, environ)
        for signal_name in ("traces", "metrics", "logs"):
            names: tuple[str, ...] = getattr(base, f"{signal_name}_exporter")
            for extra in extras:
                names = tuple(_with(names, extra).split(","))
            keywords[f"{signal_name}_exporter"] = ",".join(names)
    return keywords


class _Interrupt:
    """The first Ctrl-C asks for a clean stop; a second one gives up waiting (KeyboardInterrupt)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: Any = None

    def __enter__(self) -> _Interrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: object) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()
        print("\nobskit demo: stopping (Ctrl-C again to quit at once)", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 when it ended by itself, 130 on Ctrl-C, 2 on a configuration error."""
    import obskit

    try:
        settings = obskit.configure(**configure_keywords(args, os.environ))
    except obskit.ConfigError as error:
        print(f"obskit demo: {error}", file=sys.stderr)
        return 2
    try:
        with _Interrupt() as interrupt:
            return _serve(args, settings, interrupt)
    finally:
        obskit.shutdown()


def _serve(args: argparse.Namespace, settings: Any, interrupt: _Interrupt) -> int:
    from obskit import health
    from obskit._cli import _demo_report as report
    from obskit._cli import _demo_service as service

    tee = report.SpanTee.attach()
    server = service.make_server(args.port, service.make_app())
    serving = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="obskit-demo-server", daemon=True
    )
    serving.start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    samples = report.LogSample.attach("demo.shop")
    try:
        report.banner(settings, base_url, args)
        traffic = service.Traffic(base_url, threading.Event(), args.requests, on_showcase=tee.keep)
        started = time.monotonic()
        _drive(traffic, interrupt, args.duration)
        elapsed = time.monotonic() - started
        report.summary(settings, base_url, traffic, elapsed, tee, samples)
        if args.keep_running and not interrupt.event.is_set():
            print(f"obskit demo: serving {base_url} until Ctrl-C", file=sys.stderr, flush=True)
            while not interrupt.event.wait(0.5):
                pass
            return 0
        return 130 if interrupt.event.is_set() else 0
    finally:
        samples.detach()
        server.shutdown()
        server.server_close()
        for name in ("inventory_db", "payment_gateway"):
            health.unregister(name)


def _drive(traffic: Any, interrupt: _Interrupt, duration: float) -> None:
    """Run the traffic on a thread until it is done, ``duration`` is over, or Ctrl-C."""
    driver = threading.Thread(target=traffic.run, name="obskit-demo-traffic", daemon=True)
    driver.start()
    deadline = time.monotonic() + duration
    while driver.is_alive() and not interrupt.event.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        interrupt.event.wait(min(0.1, remaining))
    traffic.stop.set()
    driver.join(10)
