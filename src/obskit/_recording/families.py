"""obskit's built-in metric families, named under the configured namespace.

The metric catalogue in docs/metrics.md lists every family here with its labels and unit.
"""

from __future__ import annotations

from typing import Final

from obskit._recording.store import MetricSpec

__all__ = [
    "CALL_DURATION_BUCKETS",
    "JOB_DURATION_BUCKETS",
    "JOB_NAME_LABEL",
    "RESERVED_JOB_LABELS",
    "call_specs",
    "job_specs",
]

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

#: The label holding a job's name. Not ``job``: Prometheus attaches ``job`` (the scrape job) to
#: every series it scrapes and renames a target's own ``job`` label ``exported_job``, so a query
#: written as ``{job="nightly"}`` would find nothing (docs/design.md, "Decisions").
JOB_NAME_LABEL: Final = "job_name"
#: Label names a job may not declare: obskit's own, and the target labels Prometheus sets on
#: every scraped series (a target's label of that name would be renamed ``exported_<name>``).
RESERVED_JOB_LABELS: Final = frozenset({JOB_NAME_LABEL, "status", "result", "le", "job", "instance"})


def job_specs(
    namespace: str, labels: tuple[str, ...] = ()
) -> tuple[MetricSpec, MetricSpec, MetricSpec, MetricSpec]:
    """The jobs counter, duration histogram, in-progress gauge and result gauge specs.

    ``labels`` are the label names one job declared (sorted). Each job's series carry its own
    names; the exposition shows every job's series in one family per name (see jobs.py).
    """
    return (
        MetricSpec(
            "counter",
            f"{namespace}_jobs",
            "Jobs finished, by job_name and status (success|error).",
            (JOB_NAME_LABEL, "status", *labels),
        ),
        MetricSpec(
            "histogram",
            f"{namespace}_job_duration_seconds",
            "Duration of jobs in seconds.",
            (JOB_NAME_LABEL, *labels),
            JOB_DURATION_BUCKETS,
            "s",
            family="job",
        ),
        MetricSpec("gauge", f"{namespace}_jobs_in_progress", "Jobs running now.", (JOB_NAME_LABEL, *labels)),
        MetricSpec(
            "gauge",
            f"{namespace}_job_result",
            "Last value of a result a job reported.",
            (JOB_NAME_LABEL, "result", *labels),
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
