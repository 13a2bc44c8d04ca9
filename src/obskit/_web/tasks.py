"""Celery tasks as jobs: each task run counts as a ``track_job`` run named after the task.

The official Celery instrumentation (``obskit[celery]``, turned on by ``instrument_libraries``)
gives the spans: the producer's ``apply_async/<task>`` span, whose context travels in the
message, and the worker's ``run/<task>`` span under it, so the worker continues the producer's
trace. This module adds the jobs metrics through Celery's signals, as ``track_job`` records them:
``<ns>_jobs_total{job_name, status}`` (``success``, ``error``, ``retry``, or the task's final
state in lower case), ``<ns>_job_duration_seconds{job_name}`` and ``<ns>_jobs_in_progress{job_name}``.
No second span is made: the instrumentation's run span is the job's.

Under the prefork pool each worker process is a fork of the main one: obskit's fork hook gives it
a store of its own, so its metrics reach Prometheus through multi-process mode
(``multiprocess_dir``) or are pushed by OTLP from each process.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from obskit._core import state as _state
from obskit._core.errors import report_internal_error

__all__ = ["connect", "disconnect"]

_UID = "obskit-jobs"
_STATUS = {"SUCCESS": "success", "FAILURE": "error", "RETRY": "retry"}
_lock = threading.Lock()
#: Running tasks: task id -> (start time, the in-progress adder, the task's name).
_runs: dict[str, tuple[float, Any, str]] = {}
_connected = False


def _prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    try:
        from obskit._recording.families import JOB_NAME_LABEL
        from obskit._recording.jobs import _IN_PROGRESS, _families
        from obskit._recording.store import value_adder

        name = str(getattr(task, "name", None) or "celery.task")
        gauge, _overflowed = _families(_state.STATE).child(_IN_PROGRESS, (), {JOB_NAME_LABEL: name})
        add = value_adder(gauge)
        add(1)
        _runs[str(task_id)] = (time.perf_counter(), add, name)
    except Exception as exc:
        report_internal_error("celery task start", exc)


def _postrun(task_id: str | None = None, state: str | None = None, **_: Any) -> None:
    run = _runs.pop(str(task_id), None)
    if run is None:
        return
    started, add_in_progress, name = run
    try:
        from obskit._recording.families import JOB_NAME_LABEL
        from obskit._recording.jobs import _COUNTER, _DURATION, _families
        from obskit._recording.store import value_adder

        add_in_progress(-1)
        status = _STATUS.get(str(state), str(state or "unknown").lower())
        families = _families(_state.STATE)
        values = {JOB_NAME_LABEL: name}
        counter, _overflowed = families.child(_COUNTER, (), {**values, "status": status})
        value_adder(counter)(1)
        families.child(_DURATION, (), values)[0].observe(time.perf_counter() - started)
    except Exception as exc:
        report_internal_error("celery task end", exc)


def _flush(**_: Any) -> None:
    """A prefork worker process is about to exit: export its last spans first.

    Celery's pool ends its processes without running ``atexit`` hooks, so the spans of the last
    tasks would wait in the batch queue for an export that never comes. In Prometheus
    multi-process mode its live gauges are forgotten, as gunicorn's ``child_exit`` does.
    """
    try:
        state = _state.STATE
        provider: Any = state.tracer_provider
        flush = getattr(provider, "force_flush", None)
        if flush is not None:
            flush(int(state.settings.shutdown_timeout * 1000))
        if state.settings.multiprocess_dir:  # its live gauges (jobs in progress) go with it
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid(), state.settings.multiprocess_dir)  # type: ignore[no-untyped-call]
    except Exception as exc:
        report_internal_error("celery worker process exit", exc)


def connect() -> None:
    """Count Celery task runs as jobs (once, however often the instrumentation is turned on)."""
    global _connected
    from celery import signals

    with _lock:
        if _connected:
            return
        signals.task_prerun.connect(_prerun, weak=False, dispatch_uid=_UID)
        signals.task_postrun.connect(_postrun, weak=False, dispatch_uid=_UID)
        signals.worker_process_shutdown.connect(_flush, weak=False, dispatch_uid=_UID)
        _connected = True


def disconnect() -> None:
    """Stop counting (``shutdown()``)."""
    global _connected
    with _lock:
        if not _connected:
            return
        from celery import signals

        signals.task_prerun.disconnect(_prerun, dispatch_uid=_UID)
        signals.task_postrun.disconnect(_postrun, dispatch_uid=_UID)
        signals.worker_process_shutdown.disconnect(_flush, dispatch_uid=_UID)
        # Runs in flight stay known: a configure() again connects at once, and their end then
        # brings the in-progress gauge they raised back down.
        _connected = False
