"""A Flask service instrumented by one ``obskit.configure(app)`` call, served by gunicorn.

Run it with two workers and metrics summed across them (see docs/web.md)::

    export OTEL_METRICS_EXPORTER=prometheus OBSKIT_PROMETHEUS_MULTIPROC_DIR=/tmp/obskit-mp
    rm -rf "$OBSKIT_PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$OBSKIT_PROMETHEUS_MULTIPROC_DIR"
    gunicorn -c examples/gunicorn.conf.py -w 2 --chdir examples flask_app:app

``/metrics`` (answered by whichever worker takes the request) merges both workers' values.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from flask import Flask, Response

import obskit
from obskit import health

app = Flask("flask_example")
log = logging.getLogger("example.flask")


@app.get("/items/<int:item_id>")
def get_item(item_id: int) -> dict[str, object]:
    log.info("item requested", extra={"item_id": item_id})
    return {"id": item_id, "name": f"item {item_id}"}


@app.get("/fail")
def fail() -> None:
    raise RuntimeError("example failure")


@app.get("/stream")
def stream() -> Response:
    def chunks() -> Iterator[bytes]:
        for number in range(3):
            yield f"chunk {number}\n".encode()
            time.sleep(0.01)

    return Response(chunks(), mimetype="text/plain")


@health.check("cache", critical=False)
def cache_reachable() -> bool:
    return False  # degraded, not unready: the cache is optional


@health.check("payments-api", timeout=0.2)
def payments_api() -> bool:
    time.sleep(5)  # times out: a critical dependency that does not answer
    return True


obskit.configure(app, service_name="flask-example")
