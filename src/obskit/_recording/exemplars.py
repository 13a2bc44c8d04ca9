"""Exemplars: the trace and span ids of the span that recorded a histogram observation.

OpenMetrics expositions carry them on bucket lines (``# {trace_id="...",span_id="..."} 0.42``),
which is how a dashboard jumps from a slow bucket to the trace behind it. The lookups here sit
on the recording path, so they are as cheap as OpenTelemetry allows: the current span is read
straight from the context variable behind OpenTelemetry's default runtime context (about 50 ns
against 250 ns for ``trace.get_current_span()`` on the benchmark machine), and the ids of the
last span seen are formatted once.

A histogram bucket holds one exemplar, the last one set, and a scrape shows that one; setting it
on every observation (prometheus_client validates, wraps and timestamps each) would cost every
traced request a few microseconds for nothing a scrape could show. So a bucket of a series takes
a new exemplar at most once per :data:`EXEMPLAR_INTERVAL` seconds (:func:`exemplar_due`): every
bucket that sees traced observations still shows a recent trace, the slow buckets included.

Recording paths ask :func:`current_span` first: outside any span (most observations of a
process that traces only its requests) that one lookup is all the exemplar machinery costs.
:func:`histogram_observer` records an observation without an exemplar for less than
prometheus_client's ``observe`` takes, so that a bound histogram costs no more than a
prometheus_client child (docs/performance.md, benchmark 4).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from contextvars import ContextVar
from math import inf
from time import monotonic
from typing import Any

from opentelemetry import trace

__all__ = [
    "EXEMPLAR_INTERVAL",
    "OTEL_CONTEXT_VAR",
    "attach_span",
    "current_context",
    "current_exemplar",
    "current_span",
    "detach_span",
    "exemplar_due",
    "histogram_observer",
    "span_exemplar",
    "span_observer",
]

#: Seconds between two exemplars set on the same bucket of the same series. Well under any
#: scrape interval, so each scrape sees a fresh one wherever traced observations keep coming.
EXEMPLAR_INTERVAL = 1.0

#: The ids of the last span context :func:`span_exemplar` saw, and its exemplar (None when the
#: span is invalid or not sampled). One tuple, read and replaced whole, so threads never see a
#: context paired with another one's ids; it keeps the last context alive, so ``is`` is safe.
_last: tuple[Any, dict[str, str] | None] = (None, None)


def _runtime_variable() -> ContextVar[Any] | None:
    """The ``ContextVar`` behind OpenTelemetry's default runtime context, or None.

    OpenTelemetry keeps the current context in one ``ContextVar`` of its default runtime
    context. Its name is private: when it is not what is expected (another runtime context
    chosen through ``OTEL_PYTHON_CONTEXT``, a changed release), callers use the public API,
    which costs speed, never correctness.
    """
    try:
        from opentelemetry.context import _RUNTIME_CONTEXT
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
    except ImportError:  # pragma: no cover - an OpenTelemetry release without these names
        return None
    variable = getattr(_RUNTIME_CONTEXT, "_current_context", None)
    if type(_RUNTIME_CONTEXT) is ContextVarsRuntimeContext and isinstance(variable, ContextVar):
        return variable
    return None  # pragma: no cover - same


#: OpenTelemetry's current-context variable (None: use the public API). Setting and resetting it
#: is what ``attach``/``detach`` do, five calls fewer (obskit._web.http); reading it, what
#: ``get_current`` does.
OTEL_CONTEXT_VAR = _runtime_variable()


def _context_getter() -> Callable[[], Any]:
    from opentelemetry import context as otel_context

    return otel_context.get_current if OTEL_CONTEXT_VAR is None else OTEL_CONTEXT_VAR.get


#: The current OpenTelemetry context, read without a Python call on the default runtime. Given as
#: ``start_span(context=...)``, it spares the SDK looking the current context up three times (the
#: parent, the sampler's parent, the parent's trace state), two Python calls each.
current_context = _context_getter()


def _span_lookup() -> Callable[[], Any]:
    """A function returning the current span or None, fast when the default runtime is in use.

    The span sits in the current context under a key made at import (private too).
    """
    try:
        from opentelemetry.trace.propagation import _SPAN_KEY
    except ImportError:  # pragma: no cover - an OpenTelemetry release without it
        return trace.get_current_span
    if OTEL_CONTEXT_VAR is None:  # pragma: no cover - another runtime context
        return trace.get_current_span
    get = OTEL_CONTEXT_VAR.get
    key = _SPAN_KEY

    def current_span() -> Any:
        return get().get(key)

    return current_span


#: The current span, or None outside any span (no object made): recording paths ask it first, so
#: that an observation outside a span costs one lookup and no exemplar bookkeeping.
current_span = _span_lookup()


def _span_activation() -> tuple[Callable[[Any], Any], Callable[[Any], None]]:
    """``(attach_span, detach_span)``: make a span current and undo it, fast on the default runtime.

    ``attach(set_span_in_context(span))`` and ``detach(token)`` are six Python calls; setting the
    runtime's variable to the same context directly is none. On another runtime context or a
    release without the private names, the public calls.
    """
    from opentelemetry import context as otel_context

    detach = otel_context.detach

    def attach_public(span: Any) -> Any:
        return otel_context.attach(trace.set_span_in_context(span))

    try:
        from opentelemetry.trace.propagation import _SPAN_KEY
    except ImportError:  # pragma: no cover - an OpenTelemetry release without it
        return attach_public, detach
    if OTEL_CONTEXT_VAR is None:  # pragma: no cover - another runtime context
        return attach_public, detach
    get, set_, reset = OTEL_CONTEXT_VAR.get, OTEL_CONTEXT_VAR.set, OTEL_CONTEXT_VAR.reset
    make, key = otel_context.Context, _SPAN_KEY

    def attach_span(span: Any) -> Any:
        return set_(make({**get(), key: span}))

    def detach_span(token: Any) -> None:
        try:
            reset(token)
        except Exception:  # the public detach logs the failure, as OpenTelemetry does
            detach(token)

    return attach_span, detach_span


#: ``attach_span(span)`` makes ``span`` current and returns a token; ``detach_span(token)`` undoes
#: it: what ``context.attach(trace.set_span_in_context(span))`` and ``context.detach`` do.
attach_span, detach_span = _span_activation()


def span_exemplar(span: Any) -> dict[str, str] | None:
    """``{"trace_id", "span_id"}`` (W3C hex) of ``span`` when it is valid and sampled, else None."""
    global _last
    context = span.get_span_context()
    last = _last
    if last[0] is context:
        return last[1]
    exemplar = None
    if context.is_valid and context.trace_flags & 1:
        # to_bytes().hex() formats W3C ids in a third of the time format(id, "032x") takes.
        exemplar = {
            "trace_id": context.trace_id.to_bytes(16, "big").hex(),
            "span_id": context.span_id.to_bytes(8, "big").hex(),
        }
    _last = (context, exemplar)
    return exemplar


def current_exemplar() -> dict[str, str] | None:
    """The exemplar of the current span (see :func:`span_exemplar`), or None outside any span."""
    span = current_span()
    return None if span is None else span_exemplar(span)


def exemplar_due(child: Any, value: float, exemplar: Callable[[], dict[str, str] | None]) -> Any:
    """The exemplar to attach to observing ``value`` in the prometheus_client histogram ``child``.

    ``exemplar()`` is asked only when the bucket ``value`` falls in has had none for
    :data:`EXEMPLAR_INTERVAL` seconds; None otherwise (or when there is no sampled span).
    """
    bounds = child._upper_bounds
    index = bisect_left(bounds, value)  # the first bound >= value: prometheus_client's bucket
    try:
        stamps = child._obskit_exemplar_at
    except AttributeError:
        stamps = child._obskit_exemplar_at = [-EXEMPLAR_INTERVAL] * len(bounds)
    if index >= len(stamps) or not value <= bounds[index]:  # NaN: prometheus_client buckets it nowhere
        return None
    now = monotonic()
    if now - stamps[index] < EXEMPLAR_INTERVAL:
        return None
    found = exemplar()
    if found is not None:
        stamps[index] = now
    return found


def span_observer(child: Any) -> Callable[[float, Any], None]:
    """A function observing ``value`` in the histogram ``child`` with ``span``'s ids as exemplar when due.

    For a caller that holds the span already (``track_job``'s finish): the check of
    :func:`exemplar_due` (same bucket clock, same interval), then the observation, in one call and
    without a closure made per observation; between exemplars it is :func:`histogram_observer`'s.
    """
    observe = histogram_observer(child)
    bounds = getattr(child, "_upper_bounds", None)
    if not isinstance(bounds, list) or not bounds:  # not prometheus_client's: the general path

        def observe_any(value: float, span: Any) -> None:
            child.observe(value, exemplar_due(child, value, lambda: span_exemplar(span)))

        return observe_any
    try:
        stamps = child._obskit_exemplar_at
    except AttributeError:
        stamps = child._obskit_exemplar_at = [-EXEMPLAR_INTERVAL] * len(bounds)
    size = min(len(stamps), len(bounds))

    def observe_in_span(value: float, span: Any) -> None:
        index = bisect_left(bounds, value)  # the first bound >= value: prometheus_client's bucket
        if index < size and value <= bounds[index]:  # NaN: prometheus_client buckets it nowhere
            now = monotonic()
            if now - stamps[index] >= EXEMPLAR_INTERVAL:
                exemplar = span_exemplar(span)
                if exemplar is not None:
                    stamps[index] = now
                    child.observe(value, exemplar)
                    return
        observe(value)

    return observe_in_span


def histogram_observer(child: Any) -> Callable[[float], None]:
    """A function observing its argument in the histogram ``child`` (no exemplar), as cheaply as possible.

    prometheus_client's ``observe`` checks on every call that the metric is a labelled child
    (two Python calls) and walks the bucket bounds in Python. For a resolved child the check
    cannot fail, and a binary search finds the same bucket (the first bound >= the value; none
    for NaN), so the function adds to the sum and that bucket's value objects directly, in the
    same order: a third less than a bound histogram's ``observe`` cost. The shortcut is taken
    only when the child's class has prometheus_client's own ``observe`` (not a subclass's, a
    wrapper's or a test double's) and its fields look as expected; otherwise it is the public
    ``observe``. Observations with an exemplar go through ``child.observe(value, exemplar)``.
    """
    from prometheus_client import Histogram  # here: obskit.logging imports this module too

    if type(child).observe is not Histogram.observe:
        return child.observe  # type: ignore[no-any-return]
    bounds = getattr(child, "_upper_bounds", None)
    buckets = getattr(child, "_buckets", None)
    add_sum = getattr(getattr(child, "_sum", None), "inc", None)
    observable = getattr(child, "_is_observable", None)  # False for a labelled parent
    if (
        not isinstance(bounds, list)
        or not isinstance(buckets, list)
        or not bounds
        or len(bounds) != len(buckets)
        or bounds[-1] != inf
        or not callable(add_sum)
        or not callable(observable)
        or not observable()
    ):
        return child.observe  # type: ignore[no-any-return]
    adders = [bucket.inc for bucket in buckets]

    def observe(amount: float) -> None:
        add_sum(amount)
        index = bisect_left(bounds, amount)  # < len(bounds): the last bound is +Inf
        if amount <= bounds[index]:  # False only for NaN, which prometheus_client buckets nowhere
            adders[index](1)

    return observe
