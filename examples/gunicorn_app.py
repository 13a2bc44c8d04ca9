"""A tiny WSGI app for gunicorn with several workers, its metrics summed across them.

Run it (see docs/backends/prometheus.md):

    export OTEL_METRICS_EXPORTER=prometheus OBSKIT_PROMETHEUS_MULTIPROC_DIR=/tmp/obskit-mp
    rm -rf "$OBSKIT_PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$OBSKIT_PROMETHEUS_MULTIPROC_DIR"
    gunicorn -c examples/gunicorn.conf.py --chdir examples gunicorn_app:app
    curl -s localhost:8000/work; curl -s localhost:8000/metrics | grep demo_work_total

Every worker records into its own file in the multi-process directory; ``/metrics`` (served by
whichever worker takes the request) and obskit's standalone port (9464, served by one worker)
merge all of them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import obskit
from obskit.prometheus import make_wsgi_app

obskit.configure(service_name="gunicorn-demo")  # the rest comes from the environment
metrics = obskit.MetricsCollector()
work_done = metrics.counter("demo_work", "Work requests handled.")
busy = metrics.gauge("demo_busy", "Work requests being handled now.")  # livesum across workers
metrics_app = make_wsgi_app()


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/metrics":
        return metrics_app(environ, start_response)
    started = time.perf_counter()
    with busy.track_inprogress():
        time.sleep(0.01)
        work_done.inc()
    metrics.http_request(environ["REQUEST_METHOD"], "/work", 200, time.perf_counter() - started)
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [b"done\n"]
