"""Celery tasks as jobs: each task run counts as a ``track_job`` run named after the task.

The official Celery instrumentation (``obskit[celery]``, turned on by ``instrument_libraries``)
gives the spans: the producer's ``apply_async/<task>`` span, whose context travels in the
message, and the worker's ``run/<task>`` span under it, so the worker continues the producer's
trace. This module adds the jobs metrics through Celery's signals, as ``track_job`` records them:
``<ns>_jobs_total{job_name, status}`` (``success``, ``error``, ``retry``, or the task's final
state in lower case), ``<ns>_job_duration_seconds{job_name}`` and ``<ns>_jobs_in_progress{job_name}``.
No second span is made: the instrumentation's run span is the job's.

A task declares labels as ``track_job``'s ``labels=`` does, with the task option
``obskit_labels`` (``@app.task(obskit_labels=("organization",))``: each value from the task's
argument of that name; a mapping for fixed values or callables given the task's arguments). A
run's values are known when it starts, so all three families carry them, the in-progress gauge
included, as ``track_job``'s gauge carries the values known at start; the run span gets them as
``job.<label>`` attributes.

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
from obskit._core.errors import MetricUsageError, report_internal_error

__all__ = ["connect", "disconnect"]

_UID = "obskit-jobs"
_STATUS = {"SUCCESS": "success", "FAILURE": "error", "RETRY": "retry"}
#: The task option naming a task's labels (Celery keeps unknown options as task attributes).
LABELS_OPTION = "obskit_labels"
_lock = threading.Lock()
#: Running tasks: task id -> (start time, the hooks of its job, its label values, the in-progress
#: adder it raised).
_runs: dict[str, tuple[float, Any, dict[str, str], Any]] = {}
#: Per task name: (its labels declaration, the job hooks made from it).
_hooks: dict[str, tuple[object, Any]] = {}
_connected = False


def _job_hooks(task: Any, name: str) -> tuple[Any, str | None]:
    """The ``track_job`` hooks of the task's job (its label names, where their values come from).

    Made once per task (again if its declaration changes). A declaration ``track_job`` would
    refuse comes back as a message, the first time: the task then counts under ``job_name`` alone.
    """
    declared = getattr(task, LABELS_OPTION, None)
    found = _hooks.get(name)
    if found is not None and found[0] is declared:
        return found[1], None
    from obskit._core.errors import MetricDeclarationError
    from obskit._recording.jobs import _JobHooks

    mistake = None
    try:
        labels = tuple(declared) if isinstance(declared, list) else declared
        hooks = _JobHooks(name, labels, func=getattr(task, "run", None) if labels is not None else None)
    except MetricDeclarationError as exc:
        hooks = _JobHooks(name, None)
        mistake = f"Celery task {name}: {LABELS_OPTION}: {exc}; its runs count without labels"
    _hooks[name] = (declared, hooks)
    return hooks, mistake


def _prerun(
    task_id: str | None = None, task: Any = None, args: Any = None, kwargs: Any = None, **_: Any
) -> None:
    mistake = None
    try:
        name = str(getattr(task, "name", None) or "celery.task")
        hooks, mistake = _job_hooks(task, name)
        values: dict[str, str] = hooks._call_values(tuple(args or ()), dict(kwargs or {}))
        bound = hooks._bound_for(_state.STATE, values)
        bound.add_in_progress(1)
        _runs[str(task_id)] = (time.perf_counter(), hooks, values, bound.add_in_progress)
        given = {f"job.{k}": v for k, v in values.items()}
        if given:  # on the instrumentation's run span, current here, as track_job's span has them
            from opentelemetry import trace

            from obskit._recording.tracing import clean_attributes

            span = trace.get_current_span()
            if span.is_recording():
                span.set_attributes(clean_attributes(given, _state.STATE.redactor))
    except MetricUsageError:  # strict mode: a label's callable raised, as track_job raises it
        raise
    except Exception as exc:
        report_internal_error("celery task start", exc)
    if mistake is not None:  # the run is counted first: in strict mode (capture()) this raises
        from obskit._core.errors import report_usage_error

        report_usage_error(mistake)


def _postrun(task_id: str | None = None, state: str | None = None, **_: Any) -> None:
    run = _runs.pop(str(task_id), None)
    if run is None:
        return
    started, hooks, values, add_in_progress = run
    try:
        from obskit._recording.jobs import _COUNTER

        add_in_progress(-1)  # in the series, and the store, it went up in
        status = _STATUS.get(str(state), str(state or "unknown").lower())
        bound = hooks._bound_for(_state.STATE, values)  # the store of now, after a reconfiguration
        if status == "success":
            bound.add_success(1)
        elif status == "error":
            bound.add_error(1)
        else:
            counter, _overflowed = bound.families.child(
                _COUNTER, bound.names, {**bound.values, "status": status}
            )
            counter.inc()
        bound.duration.observe(time.perf_counter() - started)
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
