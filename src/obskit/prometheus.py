"""Prometheus helpers: serve the metrics from your own app, push them, and run under gunicorn.

``obskit.configure(metrics_exporter="prometheus")`` serves the scrape endpoint by itself (see
docs/backends/prometheus.md). This module is for the rest:

- :func:`make_wsgi_app` / :func:`make_asgi_app`: the same exposition, mounted in your app;
- :func:`server_address`: where the standalone server listens (with ``prometheus_port=0``);
- :func:`push`: push to the push gateway now, for batch jobs that want to be sure;
- :func:`child_exit` (a gunicorn hook) and :func:`mark_process_dead`: forget a dead worker's
  live gauges in multi-process mode.

Importing it costs nothing beyond obskit itself and starts nothing.
"""

from obskit._export.prometheus import (
    child_exit,
    make_asgi_app,
    make_wsgi_app,
    mark_process_dead,
    multiprocess_directory,
    push,
    server_address,
)

__all__ = [
    "child_exit",
    "make_asgi_app",
    "make_wsgi_app",
    "mark_process_dead",
    "multiprocess_directory",
    "push",
    "server_address",
]
