"""track_job: a span plus jobs counter by status, duration histogram and in-progress gauge."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from opentelemetry.trace import Span

from obskit._core import state as _state
from obskit._core.errors import report_internal_error
from obskit._core.wrapping import HookedBlock, wrap
from obskit._recording.exemplars import exemplar_due, span_exemplar
from obskit._recording.families import job_specs, register_job_labels
from obskit._recording.store import MetricSpec, Store, value_adder
from obskit._recording.tracing import activate_span, clean_attributes, deactivate_span, end_span

__all__ = ["Job", "track_job"]

_F = TypeVar("_F", bound=Callable[..., Any])
_perf_counter = time.perf_counter


class _Bound:
    """prometheus_client children of one job's series in one store, resolved once per state."""

    __slots__ = (
        "add_error",
        "add_in_progress",
        "add_success",
        "duration",
        "error",
        "in_progress",
        "result_spec",
        "state",
        "store",
        "success",
        "values",
    )

    def __init__(self, state: _state.State, job: str, labels: Mapping[str, str]) -> None:
        store = state.store
        self.store = store
        self.state: _state.State | None = state
        counter, duration, in_progress, result = (
            store.live_spec(s) for s in job_specs(state.settings.metric_namespace)
        )
        values = {"job": job, **labels}
        self.values = values
        children = [
            store.child(spec, tuple(v.get(n, "") for n in spec.labels))
            for spec, v in (
                (counter, {**values, "status": "success"}),
                (counter, {**values, "status": "error"}),
                (duration, values),
                (in_progress, values),
            )
        ]
        self.success, self.error, self.duration, self.in_progress = (child for child, _ in children)
        self.result_spec = result
        if any(overflowed for _, overflowed in children):
            # Past the series cap: resolve again on every run, so each one counts as an overflow.
            self.state = None
        # Bound once per state: the jobs counter and in-progress gauge are updated on every call.
        self.add_success, self.add_error = value_adder(self.success), value_adder(self.error)
        self.add_in_progress = value_adder(self.in_progress)


def _child(store: Store, spec: MetricSpec, values: Mapping[str, str]) -> Any:
    return store.child(spec, tuple(values.get(n, "") for n in spec.labels))[0]


class Job:
    """One run of a tracked job: its span, and a way to report result metrics."""

    __slots__ = ("_bound", "span", "started")

    def __init__(self, bound: _Bound | None, span: Span | None, started: float) -> None:
        self._bound = bound
        self.span = span
        self.started = started

    def result(self, name: str, value: float) -> None:
        """Report a result of this run (e.g. a quality score).

        Sets ``<namespace>_job_result{job, result=name}`` and the span attribute ``job.result.<name>``.
        """
        try:
            if self._bound is not None:
                bound = self._bound
                _child(bound.store, bound.result_spec, {**bound.values, "result": name}).set(value)
            if self.span is not None:
                self.span.set_attribute(f"job.result.{name}", value)
        except Exception as exc:
            report_internal_error("track_job result", exc)


_NO_JOB = Job(None, None, 0.0)
#: What the hooks pass from start to finish: (bound children, span or None, perf_counter start).
#: A plain tuple, not a Job: the decorator path never shows it to the user, and a tuple is built
#: without a Python-level __init__ call (measurable on the tracing-off path, see docs/performance.md).
_Run = tuple[_Bound, Span | None, float]


class _JobHooks:
    __slots__ = (
        "_attributes",
        "_bound",
        "_labels",
        "_raw_attributes",
        "_redactor",
        "_results",
        "job",
        "where",
    )

    def __init__(
        self,
        job: str,
        labels: Mapping[str, Any] | None,
        results: Callable[[Any], Mapping[str, float]] | None = None,
    ) -> None:
        self.job = job
        self.where = f"track_job({job})"
        self._labels = {str(k): str(v) for k, v in (labels or {}).items()}
        register_job_labels(tuple(self._labels))
        self._raw_attributes = {"job.name": job, **{f"job.{k}": v for k, v in self._labels.items()}}
        self._attributes: dict[str, Any] = {}
        self._redactor: object = None
        self._bound: _Bound | None = None
        self._results = results

    def start(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Run:
        state = _state.STATE
        bound = self._bound
        if bound is None or bound.state is not state:
            bound = self._bound = _Bound(state, self.job, self._labels)
        bound.add_in_progress(1)
        tracer = state.tracer
        if tracer is None:
            return bound, None, _perf_counter()
        if self._redactor is not state.redactor:
            self._attributes = clean_attributes(self._raw_attributes, state.redactor)
            self._redactor = state.redactor
        try:
            span = tracer.start_span(self.job, attributes=self._attributes)
        except Exception as exc:  # in_progress is already up: the run must still be finished
            report_internal_error(self.where, exc)
            span = None
        return bound, span, _perf_counter()

    @staticmethod
    def activate(run: _Run) -> object:
        return activate_span(run[1])

    deactivate = staticmethod(deactivate_span)

    def finish(self, run: _Run, error: BaseException | None, result: Any = None) -> None:
        bound, span, started = run
        try:
            elapsed = _perf_counter() - started
            (bound.add_success if error is None else bound.add_error)(1)
            if span is not None and bound.store.exemplars:  # the run's span ids as exemplar
                duration = bound.duration
                duration.observe(elapsed, exemplar_due(duration, elapsed, lambda: span_exemplar(span)))
            else:
                bound.duration.observe(elapsed)
            if error is None and self._results is not None:
                self._report_results(Job(*run), result)
        finally:  # whatever failed above, the run stops counting as in progress and its span ends
            try:
                bound.add_in_progress(-1)
            finally:
                if span is not None:
                    end_span(span, error)
                for listener in _state.JOB_LISTENERS:
                    listener(self.job)

    def _report_results(self, run: Job, result: Any) -> None:
        assert self._results is not None
        try:
            for name, value in self._results(result).items():
                run.result(name, value)
        except Exception as exc:
            report_internal_error(self.where, exc)


class _TrackJob(HookedBlock[_Run]):
    """What ``track_job(...)`` returns: a decorator and a (async) context manager yielding a :class:`Job`."""

    __slots__ = ("_spec",)

    def __init__(
        self, job: str, labels: Mapping[str, Any] | None, results: Callable[[Any], Mapping[str, float]] | None
    ) -> None:
        self._spec = (job, labels, results)
        super().__init__(_JobHooks(job, labels), lambda run: Job(*run) if run is not None else _NO_JOB)

    def __call__(self, func: _F) -> _F:
        job, labels, results = self._spec
        return wrap(func, _JobHooks(job, labels, results))


@overload
def track_job(name: _F, /) -> _F: ...


@overload
def track_job(
    name: str,
    /,
    *,
    labels: Mapping[str, Any] | None = None,
    results: Callable[[Any], Mapping[str, float]] | None = None,
) -> _TrackJob: ...


def track_job(
    name: str | Callable[..., Any],
    /,
    *,
    labels: Mapping[str, Any] | None = None,
    results: Callable[[Any], Mapping[str, float]] | None = None,
) -> Any:
    """Track a batch job: a span, ``<ns>_jobs_total{job,status}``, duration and in-progress.

    ``status`` is ``success`` or ``error`` (the exception propagates untouched). Duration goes to
    ``<ns>_job_duration_seconds{job}`` (seconds-scale buckets) and ``<ns>_jobs_in_progress{job}``
    counts running jobs. ``labels`` adds static labels to all three families.

    Results: as a block, ``with track_job("cluster") as job: job.result("silhouette", 0.71)``;
    as a decorator, ``results=lambda value: {"silhouette": value.score}`` maps the return value.
    Each result sets ``<ns>_job_result{job, result}`` and the span attribute ``job.result.<name>``.

    Works on sync, async, generator and async-generator functions, methods, classmethods and
    staticmethods. Without ``configure()`` the metrics are still recorded; spans need a tracer.
    """
    if callable(name) or isinstance(name, classmethod | staticmethod):
        target = name.__func__ if isinstance(name, classmethod | staticmethod) else name
        return _TrackJob(getattr(target, "__qualname__", repr(target)), None, None)(name)
    if not isinstance(name, str) or not name:
        raise TypeError("track_job needs a job name")
    return _TrackJob(name, labels, results)
