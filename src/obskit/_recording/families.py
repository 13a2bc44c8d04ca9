"""obskit's built-in metric families, named under the configured namespace.

The metric catalogue in docs/metrics.md lists every family here with its labels and unit.
"""

from __future__ import annotations

import threading
from typing import Final

from obskit._recording.store import MetricSpec

__all__ = ["CALL_DURATION_BUCKETS", "JOB_DURATION_BUCKETS", "call_specs", "job_specs", "register_job_labels"]

#: Seconds-scale buckets for batch jobs: from 10 ms to 1 hour.
JOB_DURATION_BUCKETS: Final = (
    0.01,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
)
#: Call-scale buckets for HTTP requests, DB queries and external calls: from 5 ms to 2 min.
#: The top of the old 5 ms .. 10 s set hid every slow call in its last bucket: an LLM call of
#: 45 s read as p95 = 10 s, and an alert on p95 > 30 s could never fire. 30, 60 and 120 s cover
#: slow APIs, LLM completions and the usual proxy timeouts (60 s), at 14 bounds as before (15
#: series per label set with +Inf): 75 ms, 750 ms and 7.5 s made room for them.
CALL_DURATION_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)

_job_labels: list[str] = []
_lock = threading.Lock()


def register_job_labels(names: tuple[str, ...]) -> None:
    """Add extra label names (from ``track_job(labels=...)``) to the job families, process-wide.

    Families take the names registered before their first recording in a store; decorators
    normally run at import time, before any job does.
    """
    with _lock:
        for name in names:
            if name not in _job_labels:
                _job_labels.append(name)


def job_specs(namespace: str) -> tuple[MetricSpec, MetricSpec, MetricSpec, MetricSpec]:
    """The jobs counter, duration histogram, in-progress gauge and result gauge specs."""
    extra = tuple(sorted(_job_labels))
    return (
        MetricSpec(
            "counter",
            f"{namespace}_jobs",
            "Jobs finished, by job and status (success|error).",
            ("job", "status", *extra),
        ),
        MetricSpec(
            "histogram",
            f"{namespace}_job_duration_seconds",
            "Duration of jobs in seconds.",
            ("job", *extra),
            JOB_DURATION_BUCKETS,
            "s",
            family="job",
        ),
        MetricSpec("gauge", f"{namespace}_jobs_in_progress", "Jobs running now.", ("job", *extra)),
        MetricSpec(
            "gauge",
            f"{namespace}_job_result",
            "Last value of a result a job reported.",
            ("job", "result", *extra),
            # Across gunicorn/uwsgi workers: the value set last, whichever worker set it.
            multiprocess_mode="mostrecent",
        ),
    )


def call_specs(namespace: str) -> dict[str, MetricSpec]:
    """Specs of the helper families: HTTP server requests, cache, DB and external calls."""
    return {
        "http_requests": MetricSpec(
            "counter", "http_server_requests", "HTTP requests served.", ("method", "route", "status_code")
        ),
        # Not OpenTelemetry's ``http.server.request.duration``, whose Prometheus name is
        # ``http_server_request_duration_seconds`` with other labels (``http_request_method``...):
        # the namespace keeps the two apart wherever both arrive (docs/metrics.md).
        "http_duration": MetricSpec(
            "histogram",
            f"{namespace}_http_server_request_duration_seconds",
            "Duration of HTTP requests in seconds; error_type is the span's error.type.",
            ("method", "route", "error_type"),
            CALL_DURATION_BUCKETS,
            "s",
            family="http",
        ),
        "http_in_progress": MetricSpec(
            "gauge", "http_server_requests_in_progress", "HTTP requests being served.", ("method",)
        ),
        "cache": MetricSpec(
            "counter",
            f"{namespace}_cache_requests",
            "Cache lookups, by cache and result (hit|miss).",
            ("cache", "result"),
        ),
        "db_duration": MetricSpec(
            "histogram",
            f"{namespace}_db_query_duration_seconds",
            "Duration of database calls in seconds.",
            ("db", "operation", "status"),
            CALL_DURATION_BUCKETS,
            "s",
            family="db",
        ),
        "external_duration": MetricSpec(
            "histogram",
            f"{namespace}_external_call_duration_seconds",
            "Duration of calls to external services in seconds.",
            ("service", "operation", "status"),
            CALL_DURATION_BUCKETS,
            "s",
            family="external_call",
        ),
        "external_tokens": MetricSpec(
            "counter",
            f"{namespace}_external_call_tokens",
            "Tokens (or other units) consumed by external calls.",
            ("service", "operation", "kind"),
        ),
    }
