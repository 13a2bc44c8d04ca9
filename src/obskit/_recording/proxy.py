"""The global TracerProvider obskit installs once: a proxy to whatever obskit runs with now.

OpenTelemetry lets the global provider be set only once per process. Installing this proxy
instead of a real provider lets a second ``configure()``, ``shutdown()`` and the test capture
swap what is behind it, so ``opentelemetry.trace.get_tracer(__name__)`` in user code always
records into obskit's current pipeline.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Tracer, TracerProvider
from opentelemetry.util._decorator import _agnosticcontextmanager
from opentelemetry.util.types import Attributes

from obskit._core import state as _state

__all__ = ["ObskitTracerProvider", "install_global_tracer_provider"]

_log = logging.getLogger("obskit")
_NOOP = trace.NoOpTracer()


class _DelegatingTracer(Tracer):
    """A tracer that resolves the real one from obskit's current provider on each span."""

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._args = args
        self._kwargs = kwargs
        self._cache: tuple[object, Tracer] | None = None

    def _tracer(self) -> Tracer:
        provider = _state.STATE.tracer_provider
        if provider is None:
            return _NOOP
        cache = self._cache
        if cache is None or cache[0] is not provider:
            cache = self._cache = (provider, provider.get_tracer(*self._args, **self._kwargs))
        return cache[1]

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span:
        return self._tracer().start_span(
            name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception
        )

    @_agnosticcontextmanager
    def start_as_current_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[Span]:
        with self._tracer().start_as_current_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
            end_on_exit,
        ) as span:
            yield span


class ObskitTracerProvider(TracerProvider):
    """The process-wide provider: hands out tracers that follow obskit's current pipeline."""

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> Tracer:
        return _DelegatingTracer(
            (instrumenting_module_name, instrumenting_library_version, schema_url),
            {"attributes": attributes} if attributes else {},
        )


_PROXY = ObskitTracerProvider()


def install_global_tracer_provider() -> bool:
    """Make obskit's proxy the global provider, once. False when another one was already set."""
    current = trace.get_tracer_provider()
    if current is _PROXY:
        return True
    if not isinstance(current, trace.ProxyTracerProvider):
        _log.warning(
            "a global TracerProvider (%s) was set before obskit.configure(); obskit's decorators use "
            "obskit's pipeline, but opentelemetry.trace.get_tracer() keeps using the existing provider",
            type(current).__name__,
        )
        return False
    trace.set_tracer_provider(_PROXY)
    return True
