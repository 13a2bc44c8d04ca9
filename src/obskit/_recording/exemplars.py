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
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from contextvars import ContextVar
from time import monotonic
from typing import Any

from opentelemetry import trace

__all__ = ["EXEMPLAR_INTERVAL", "OTEL_CONTEXT_VAR", "current_exemplar", "exemplar_due", "span_exemplar"]

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


_current_span = _span_lookup()


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
    span = _current_span()
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
    if index >= len(stamps):  # NaN
        return None
    now = monotonic()
    if now - stamps[index] < EXEMPLAR_INTERVAL:
        return None
    found = exemplar()
    if found is not None:
        stamps[index] = now
    return found
