"""A Celery app observed by obskit: each task is a job, and the worker continues the caller's trace.

Run a worker (a Redis broker on localhost):

    PROMETHEUS_MULTIPROC_DIR=/tmp/obskit-metrics celery -A tasks worker --pool=prefork --concurrency=2

and send tasks from any process that imports this module: ``tasks.add.delay(2, 3)``.
"""

from __future__ import annotations

import os

import obskit

# First, before Celery is imported: Celery gets instrumented as it is imported (the celery extra).
# The settings come from the environment too (OTEL_TRACES_EXPORTER, PROMETHEUS_MULTIPROC_DIR...).
obskit.configure(service_name=os.environ.get("OTEL_SERVICE_NAME", "celery-worker"))

from celery import Celery  # noqa: E402
from celery.signals import setup_logging  # noqa: E402

app = Celery("tasks", broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    worker_redirect_stdouts=False,  # obskit's handler writes to stdout itself
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)


@setup_logging.connect
def leave_logging_to_obskit(**kwargs: object) -> None:
    """With a receiver connected, Celery installs no log handlers of its own."""


@app.task
def add(x: int, y: int) -> int:
    """A task that succeeds: obskit_jobs_total{job_name="tasks.add",status="success"}."""
    return x + y


@app.task
def fail(reason: str) -> None:
    """A task that fails: status="error", and the worker's span records the exception."""
    raise ValueError(reason)


@app.task(bind=True, max_retries=2, default_retry_delay=0)
def flaky(self: object, attempts: int) -> str:
    """A task retried until its ``attempts``-th run: status="retry" for each retry, then "success"."""
    retries: int = self.request.retries  # type: ignore[attr-defined]
    if retries + 1 < attempts:
        raise self.retry(exc=RuntimeError("not yet"))  # type: ignore[attr-defined]
    return "done"


@app.task(obskit_labels=("organization",))
def build_report(organization: str, pages: int) -> int:
    """A task with a label from its arguments, on its counter, duration and in-progress gauge:
    obskit_jobs_total{job_name="tasks.build_report",organization="acme",status="success"}."""
    return pages
