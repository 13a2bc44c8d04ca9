"""track_job: a span plus jobs counter by status, duration histogram and in-progress gauge."""

from __future__ import annotations

import inspect
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, overload

from opentelemetry.trace import Span, Status, StatusCode
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric

from obskit._core import state as _state
from obskit._core.errors import MetricDeclarationError, report_internal_error, report_usage_error
from obskit._core.wrapping import HookedBlock, wrap
from obskit._recording.exemplars import (
    attach_span,
    current_context,
    detach_span,
    histogram_observer,
    span_observer,
)
from obskit._recording.families import JOB_NAME_LABEL, RESERVED_JOB_LABELS, job_specs
from obskit._recording.store import (
    OVERFLOW_LABEL_VALUE,
    MetricSpec,
    Store,
    label_value,
    series_child,
    unregistered_metric,
    value_adder,
)
from obskit._recording.tracing import clean_attributes, end_span

__all__ = ["Job", "record_job", "track_job"]

_F = TypeVar("_F", bound=Callable[..., Any])
_perf_counter = time.perf_counter
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_COUNTER, _DURATION, _IN_PROGRESS, _RESULT = range(4)
_MISSING: Any = object()
_OK = Status(StatusCode.OK)


class _Families:
    """The jobs families of one store, with a label set per job.

    Each label set (``job_name``, ``status`` and the names one job declared) has prometheus_client
    metrics of its own, kept out of the registry; this collector, registered once in the store's
    registry, shows them all as one family per name. So a job declared after others ran keeps its
    labels, and each job's series carry only its own labels: Prometheus takes series with
    different label names in one family, and ``sum by (job_name, status)`` adds them up.
    Multi-process files key each value by its own labels, so they merge the same way.
    """

    def __init__(self, store: Store, namespace: str) -> None:
        # Weak: the store's registry holds this collector, and _FAMILIES's values must not keep
        # their keys (the stores) alive.
        self._store = weakref.ref(store)
        self._namespace = namespace
        self._lock = threading.Lock()
        self._sets: dict[tuple[str, ...], tuple[tuple[MetricSpec, ...], tuple[MetricWrapperBase, ...]]] = {}
        #: Per family: the series made so far, (label names, values) -> child; capped per family.
        self._series: tuple[dict[tuple[tuple[str, ...], tuple[str, ...]], Any], ...] = ({}, {}, {}, {})
        self._set(())
        store.registry.register(self)

    def _set(self, names: tuple[str, ...]) -> tuple[tuple[MetricSpec, ...], tuple[MetricWrapperBase, ...]]:
        found = self._sets.get(names)
        if found is None:
            with self._lock:
                found = self._sets.get(names)
                if found is None:
                    made = [unregistered_metric(spec) for spec in job_specs(self._namespace, names)]
                    specs = tuple(spec for spec, _ in made)
                    found = self._sets[names] = (specs, tuple(metric for _, metric in made))
        return found

    def child(self, index: int, names: tuple[str, ...], values: Mapping[str, str]) -> tuple[Any, bool]:
        """The child of family ``index`` for a job declaring ``names``, and whether it overflowed."""
        specs, metrics = self._set(names)
        spec = specs[index]
        key = (names, tuple(values.get(n, "") for n in spec.labels))
        series = self._series[index]
        child = series.get(key)
        if child is not None:
            return child, False
        store = self._store()
        cap = store.series_cap if store is not None else 0
        with self._lock:
            child = series.get(key)
            if child is None and len(series) < cap:
                child = metrics[index].labels(*map(label_value, key[1]))
                child = series[key] = series_child(spec, key[1], child)
        if child is None:
            if store is not None:
                store.count_overflow(spec.sample_name)
            overflow = (OVERFLOW_LABEL_VALUE,) * len(spec.labels)
            return series_child(spec, overflow, metrics[index].labels(*overflow)), True
        return child, False

    def parts(self) -> list[MetricWrapperBase]:
        """Every metric behind the four families (``store.take_extremes`` reads the histograms)."""
        return [metric for _, metrics in list(self._sets.values()) for metric in metrics]

    def describe(self) -> Iterable[Metric]:
        """The four families, empty: the registry claims their names."""
        for metric in self._sets[()][1]:
            yield from metric.describe()

    def collect(self) -> Iterable[Metric]:
        """Each family once, with the series of every label set."""
        sets = list(self._sets.values())
        for index in range(4):
            merged: Metric | None = None
            for _, metrics in sets:
                for family in metrics[index].collect():
                    if merged is None:
                        merged = family
                    else:
                        merged.samples.extend(family.samples)
            if merged is not None:
                yield merged


_FAMILIES: weakref.WeakKeyDictionary[Store, dict[str, _Families]] = weakref.WeakKeyDictionary()
_FAMILIES_LOCK = threading.Lock()


def _families(state: _state.State) -> _Families:
    store, namespace = state.store, state.settings.metric_namespace
    with _FAMILIES_LOCK:
        per_store = _FAMILIES.setdefault(store, {})
        families = per_store.get(namespace)
        if families is None:
            families = per_store[namespace] = _Families(store, namespace)
        return families


class _Bound:
    """prometheus_client children of one job's series in one store, resolved once per state."""

    __slots__ = (
        "add_error",
        "add_in_progress",
        "add_success",
        "duration",
        "error",
        "families",
        "in_progress",
        "names",
        "observe",
        "observe_in_span",
        "state",
        "store",
        "success",
        "values",
    )

    def __init__(
        self, state: _state.State, job: str, names: tuple[str, ...], labels: Mapping[str, str]
    ) -> None:
        families = _families(state)
        self.families = families
        self.store = state.store
        self.names = names
        self.state: _state.State | None = state
        values = {JOB_NAME_LABEL: job, **labels}
        self.values = values
        children = [
            families.child(index, names, v)
            for index, v in (
                (_COUNTER, {**values, "status": "success"}),
                (_COUNTER, {**values, "status": "error"}),
                (_DURATION, values),
                (_IN_PROGRESS, values),
            )
        ]
        self.success, self.error, self.duration, self.in_progress = (child for child, _ in children)
        if any(overflowed for _, overflowed in children):
            # Past the series cap: resolve again on every run, so each one counts as an overflow.
            self.state = None
        # Bound once per state: the jobs counter and in-progress gauge are updated on every call.
        self.add_success, self.add_error = value_adder(self.success), value_adder(self.error)
        self.add_in_progress = value_adder(self.in_progress)
        #: The duration histogram's observation without an exemplar (most runs: one is due rarely).
        self.observe = histogram_observer(self.duration)
        #: The same inside a span, with the span's ids as exemplar when the bucket is due one.
        self.observe_in_span = span_observer(self.duration)


class _Labels:
    """The label values of one run of a job declaring per-call labels; ``Job.set_labels`` changes them."""

    __slots__ = ("changed", "hooks", "values")

    def __init__(self, hooks: _JobHooks, values: dict[str, str]) -> None:
        self.hooks = hooks
        self.values = values
        #: Whether set_labels changed a value after the run started.
        self.changed = False


class Job:
    """One run of a tracked job: its span, and ways to report result metrics and label values."""

    __slots__ = ("_bound", "_labels", "span", "started")

    def __init__(
        self, bound: _Bound | None, span: Span | None, started: float, labels: _Labels | None = None
    ) -> None:
        self._bound = bound
        self.span = span
        self.started = started
        self._labels = labels

    def result(self, name: str, value: float) -> None:
        """Report a result of this run (e.g. a quality score).

        Sets ``<namespace>_job_result{job_name, result=name}`` and the span attribute
        ``job.result.<name>``.
        """
        try:
            bound = self._bound
            if bound is not None:
                values = (
                    bound.values if self._labels is None else self._labels.hooks.label_values(self._labels)
                )
                bound.families.child(_RESULT, bound.names, {**values, "result": name})[0].set(value)
            if self.span is not None:
                self.span.set_attribute(f"job.result.{name}", value)
        except Exception as exc:
            report_internal_error("track_job result", exc)

    def set_labels(self, **values: Any) -> None:
        """Give values to labels the job declared, for this run (``track_job(name, labels=(...))``).

        They go on the jobs counter, the duration histogram and the result gauge when the run
        ends, and on the span now. The in-progress gauge keeps the values known when the run
        started (``""`` for the others), so that it goes back down in the series it went up in.
        A name the job did not declare is a usage error: reported, and nothing set for it.
        """
        bound, labels = self._bound, self._labels
        if bound is None:  # telemetry failed to start: nothing to label
            return
        settable = () if labels is None else labels.hooks.per_call
        unknown = [name for name in sorted(values) if name not in settable]
        if unknown:
            job, fixed = bound.values[JOB_NAME_LABEL], [n for n in unknown if n in bound.names]
            undeclared = [n for n in unknown if n not in bound.names]
            said = []
            if undeclared:
                said.append(
                    f"label {', '.join(map(repr, undeclared))} not declared"
                    f" (declared: {', '.join(bound.names) or 'none'}); declare it with"
                    f" track_job({job!r}, labels=({', '.join(map(repr, undeclared))},))"
                )
            if fixed:
                said.append(
                    f"label {', '.join(map(repr, fixed))} has a fixed value in track_job({job!r}, labels=...)"
                )
            report_usage_error(f"track_job({job}).set_labels: {'; '.join(said)}; not recorded")
        if labels is None:
            return
        declared = settable
        given = {k: label_value(v) for k, v in values.items() if k in declared}
        if any(labels.values.get(k) != v for k, v in given.items()):
            labels.values.update(given)
            labels.changed = True
        try:
            if self.span is not None and given:
                state = _state.STATE
                self.span.set_attributes(
                    clean_attributes({f"job.{k}": v for k, v in given.items()}, state.redactor)
                )
        except Exception as exc:
            report_internal_error("track_job set_labels", exc)


_NO_JOB = Job(None, None, 0.0)
#: What the hooks pass from start to finish: (bound children, span or None, perf_counter start,
#: the run's label values or None when the job declares no per-call labels, the token of the
#: span made current by start or None). A plain tuple, not a Job: the decorator path never shows
#: it to the user, and a tuple is built without a Python-level __init__ call (measurable on the
#: tracing-off path, see docs/performance.md).
_Run = tuple[_Bound, Span | None, float, _Labels | None, object]


def _label_names(job: str, names: Iterable[str]) -> None:
    for name in names:
        if not isinstance(name, str) or not _LABEL.match(name) or name.startswith("__"):
            raise MetricDeclarationError(
                f"track_job({job!r}): invalid label name {name!r}:"
                " allowed [a-zA-Z_][a-zA-Z0-9_]*, no leading __"
            )
        if name in RESERVED_JOB_LABELS:
            why = (
                "Prometheus sets it on every scraped series and would rename it exported_" + name
                if name in ("job", "instance")
                else "obskit sets it"
            )
            raise MetricDeclarationError(
                f"track_job({job!r}): label {name!r} is reserved ({why}); the job's name is in"
                f" label {JOB_NAME_LABEL!r}. Reserved: {', '.join(sorted(RESERVED_JOB_LABELS))}"
            )


class _JobHooks:
    __slots__ = (
        "_attributes",
        "_bound",
        "_bounds",
        "_bounds_state",
        "_derived",
        "_from_args",
        "_raw_attributes",
        "_readers",
        "_redactor",
        "_results",
        "_static",
        "job",
        "names",
        "per_call",
        "where",
    )

    #: start(args, kwargs, True) makes the span current and finish undoes it (obskit._core.wrapping).
    current_on_start = True

    def __init__(
        self,
        job: str,
        labels: Mapping[str, Any] | Sequence[str] | None,
        results: Callable[[Any], Mapping[str, float]] | None = None,
        func: Callable[..., Any] | None = None,
    ) -> None:
        self.job = job
        self.where = f"track_job({job})"
        static: dict[str, str] = {}
        derived: dict[str, Callable[..., Any]] = {}
        from_args: tuple[str, ...] = ()
        if isinstance(labels, str):
            from_args = (labels,)
        elif isinstance(labels, Mapping):
            for key, value in labels.items():
                if callable(value):
                    derived[str(key)] = value
                else:
                    static[str(key)] = label_value(value)
        elif labels is not None:
            from_args = tuple(dict.fromkeys(labels))
        _label_names(job, [*static, *derived, *from_args])
        #: Every label name this job declared, sorted: its series carry exactly these (and job_name).
        self.names = tuple(sorted({*static, *derived, *from_args}))
        #: The names whose values come with each run (``set_labels`` may set these).
        self.per_call = tuple(sorted({*derived, *from_args}))
        self._static = static
        self._derived = derived
        self._from_args = from_args
        self._readers: tuple[tuple[str, int, bool, Any], ...] = ()
        if from_args and func is not None:
            self._bind_to(func)
        self._raw_attributes = {"job.name": job, **{f"job.{k}": v for k, v in static.items()}}
        self._attributes: dict[str, Any] = {}
        self._redactor: object = None
        self._bound: _Bound | None = None
        self._bounds: dict[tuple[str, ...], _Bound] = {}
        self._bounds_state: object = None
        self._results = results

    def _bind_to(self, func: Callable[..., Any]) -> None:
        """Check, when decorating, that each per-call label names a parameter of ``func``."""
        target = func.__func__ if isinstance(func, classmethod | staticmethod) else func
        try:
            signature = inspect.signature(target)
        except (TypeError, ValueError) as exc:
            raise MetricDeclarationError(
                f"track_job({self.job!r}): cannot read the parameters of {target!r} to take labels"
                f" {list(self._from_args)} from ({exc}); pass labels={{name: callable}} instead"
            ) from None
        parameters = signature.parameters
        kinds = inspect.Parameter
        takes_kwargs = any(p.kind is kinds.VAR_KEYWORD for p in parameters.values())
        missing = [
            n
            for n in self._from_args
            if (n not in parameters and not takes_kwargs)
            or (n in parameters and parameters[n].kind in (kinds.VAR_POSITIONAL, kinds.VAR_KEYWORD))
        ]
        if missing:
            raise MetricDeclarationError(
                f"track_job({self.job!r}): label {', '.join(map(repr, missing))} names no parameter of"
                f" {getattr(target, '__qualname__', target)}{signature}; labels=(...) takes each value from"
                " the parameter of that name. For a derived value, pass labels={name: callable}"
            )
        # How to find each value in a call, worked out once: signature.bind() on every call would
        # cost a few microseconds. (name, position or -1, by keyword too, default or _MISSING)
        positions = {name: i for i, name in enumerate(parameters)}
        readers = []
        for name in self._from_args:
            param = parameters.get(name)
            if param is None:  # collected by **kwargs
                readers.append((name, -1, True, _MISSING))
                continue
            positional = param.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)
            default = _MISSING if param.default is param.empty else param.default
            readers.append(
                (
                    name,
                    positions[name] if positional else -1,
                    param.kind is not kinds.POSITIONAL_ONLY,
                    default,
                )
            )
        self._readers = tuple(readers)

    def _call_values(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, str]:
        """This call's label values: static ones, then arguments, then derived ones."""
        values = dict(self._static)
        for name, position, keyword, default in self._readers:
            if keyword and name in kwargs:
                value = kwargs[name]
            elif 0 <= position < len(args):
                value = args[position]
            elif default is not _MISSING:
                value = default
            else:  # not given: the call itself is wrong and the function raises TypeError
                continue
            values[name] = label_value(value)
        for name, compute in self._derived.items():
            try:
                values[name] = label_value(compute(*args, **kwargs))
            except Exception as exc:
                report_usage_error(
                    f"track_job({self.job}): the callable giving label {name!r} raised"
                    f' {type(exc).__name__}: {exc}; recorded {name}=""'
                )
        return values

    def label_values(self, labels: _Labels) -> dict[str, str]:
        """``job_name`` and a run's current label values."""
        return {JOB_NAME_LABEL: self.job, **labels.values}

    def _bound_for(self, state: _state.State, values: Mapping[str, str]) -> _Bound:
        """The children for one set of per-call values, cached per state up to the series cap."""
        if self._bounds_state is not state:
            self._bounds, self._bounds_state = {}, state
        key = tuple(values.get(n, "") for n in self.names)
        bound = self._bounds.get(key)
        if bound is None or bound.state is not state:
            bound = _Bound(state, self.job, self.names, values)
            if bound.state is not None and len(self._bounds) < state.store.series_cap:
                self._bounds[key] = bound
        return bound

    def start(self, args: tuple[Any, ...], kwargs: dict[str, Any], current: bool = False) -> _Run:
        state = _state.STATE
        labels: _Labels | None = None
        if self.per_call:  # per-call values (in a with block, none: set_labels)
            labels = _Labels(self, self._call_values(args, kwargs))
            bound = self._bound_for(state, labels.values)
        else:
            bound = self._bound  # type: ignore[assignment]
            if bound is None or bound.state is not state:
                bound = self._bound = _Bound(state, self.job, self.names, self._static)
        bound.add_in_progress(1)
        tracer = state.tracer
        if tracer is None:
            return bound, None, _perf_counter(), labels, None
        if self._redactor is not state.redactor:
            self._attributes = clean_attributes(self._raw_attributes, state.redactor)
            self._redactor = state.redactor
        attributes = self._attributes
        if labels is not None:
            given = {f"job.{k}": v for k, v in labels.values.items() if k not in self._static}
            attributes = {**attributes, **clean_attributes(given, state.redactor)}
        try:
            # The current context given: what the SDK would look up itself, three times over.
            span = tracer.start_span(self.job, context=current_context(), attributes=attributes)
        except Exception as exc:  # in_progress is already up: the run must still be finished
            report_internal_error(self.where, exc)
            return bound, None, _perf_counter(), labels, None
        token = None
        if current:
            try:
                token = attach_span(span)
            except Exception as exc:  # the span is started: the run goes on, its span not current
                report_internal_error(self.where, exc)
        return bound, span, _perf_counter(), labels, token

    @staticmethod
    def activate(run: _Run) -> object:
        span = run[1]
        return None if span is None else attach_span(span)

    @staticmethod
    def deactivate(token: object) -> None:
        if token is not None:
            detach_span(token)

    def finish(self, run: _Run, error: BaseException | None, result: Any = None) -> None:
        started_bound, span, started, labels, token = run
        bound = started_bound
        try:
            if token is not None:  # made current by start: no longer (never raises)
                detach_span(token)
            elapsed = _perf_counter() - started
            if labels is not None and labels.changed:
                # Labels set during the run: the counter and histogram take the final values.
                state = started_bound.state or _state.STATE
                bound = self._bound_for(state, labels.values)
            (bound.add_success if error is None else bound.add_error)(1)
            if span is not None and bound.store.exemplars:  # the run's span ids, when one is due
                bound.observe_in_span(elapsed, span)
            else:
                bound.observe(elapsed)
            if error is None and self._results is not None:
                self._report_results(Job(bound, span, started, labels), result)
        finally:  # whatever failed above, the run stops counting as in progress and its span ends
            try:
                started_bound.add_in_progress(-1)
            finally:
                if span is not None and error is None:  # end_span's success path, without its call
                    try:
                        span.set_status(_OK)
                    finally:
                        span.end()
                elif span is not None:
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


def _job_of(run: _Run | None) -> Job:
    return Job(run[0], run[1], run[2], run[3]) if run is not None else _NO_JOB


class _TrackJob(HookedBlock[_Run]):
    """What ``track_job(...)`` returns: a decorator and a (async) context manager yielding a :class:`Job`."""

    __slots__ = ("_spec",)

    def __init__(
        self,
        job: str,
        labels: Mapping[str, Any] | Sequence[str] | None,
        results: Callable[[Any], Mapping[str, float]] | None,
    ) -> None:
        self._spec = (job, labels, results)
        super().__init__(_JobHooks(job, labels), _job_of)

    def __call__(self, func: _F) -> _F:
        job, labels, results = self._spec
        return wrap(func, _JobHooks(job, labels, results, func))


@overload
def track_job(name: _F, /) -> _F: ...


@overload
def track_job(
    name: str,
    /,
    *,
    labels: Mapping[str, Any] | Sequence[str] | None = None,
    results: Callable[[Any], Mapping[str, float]] | None = None,
) -> _TrackJob: ...


def track_job(
    name: str | Callable[..., Any],
    /,
    *,
    labels: Mapping[str, Any] | Sequence[str] | None = None,
    results: Callable[[Any], Mapping[str, float]] | None = None,
) -> Any:
    """Track a batch job: a span, ``<ns>_jobs_total{job_name,status}``, duration and in-progress.

    ``status`` is ``success`` or ``error`` (the exception propagates untouched). Duration goes to
    ``<ns>_job_duration_seconds{job_name}`` (seconds-scale buckets) and
    ``<ns>_jobs_in_progress{job_name}`` counts running jobs. The label is ``job_name``, not
    ``job``: Prometheus owns ``job`` (the scrape job).

    ``labels`` adds labels to all of them (and ``job.<label>`` span attributes):

    - ``labels={"model": "m1"}``: fixed values;
    - ``labels=("organization", "method")`` on a decorator: each value from the call's argument
      of that name (checked when decorating); in a ``with`` block, from ``job.set_labels(...)``;
    - ``labels={"tier": lambda user, **_: user.tier}``: a callable given the call's arguments.

    Label values come from the store's series cap like every metric's: past it, the overflow series.

    Results: as a block, ``with track_job("cluster") as job: job.result("silhouette", 0.71)``;
    as a decorator, ``results=lambda value: {"silhouette": value.score}`` maps the return value.
    Each result sets ``<ns>_job_result{job_name, result}`` and the span attribute ``job.result.<name>``.

    Works on sync, async, generator and async-generator functions, methods, classmethods and
    staticmethods. Without ``configure()`` the metrics are still recorded; spans need a tracer.

    Raises:
        MetricDeclarationError: a label name that is invalid, reserved (``job``, ``instance``,
            ``job_name``, ``status``, ``result``, ``le``) or names no parameter of the function.
    """
    if callable(name) or isinstance(name, classmethod | staticmethod):
        target = name.__func__ if isinstance(name, classmethod | staticmethod) else name
        return _TrackJob(getattr(target, "__qualname__", repr(target)), None, None)(name)
    if not isinstance(name, str) or not name:
        raise TypeError("track_job needs a job name")
    return _TrackJob(name, labels, results)


def record_job(job: str, duration: float, error: bool = False) -> None:
    """Count one finished run of ``job`` and observe its duration, without a span."""
    state = _state.STATE
    families = _families(state)
    values = {JOB_NAME_LABEL: job, "status": "error" if error else "success"}
    families.child(_COUNTER, (), values)[0].inc()
    families.child(_DURATION, (), values)[0].observe(duration)
