"""The global TracerProvider obskit installs once, and the provider obskit adopts instead.

OpenTelemetry lets the global provider be set only once per process. Installing this proxy
instead of a real provider lets a second ``configure()``, ``shutdown()`` and the test capture
swap what is behind it, so ``opentelemetry.trace.get_tracer(__name__)`` in user code always
records into obskit's current pipeline.

When the application (or ``opentelemetry-instrument``) set an SDK provider first, obskit adopts
it: its span processors join that provider inside one :class:`AdoptedSpanProcessors`, added
once per provider and emptied by ``shutdown()``, which never shuts the provider itself down.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Tracer, TracerProvider
from opentelemetry.util._decorator import _agnosticcontextmanager
from opentelemetry.util.types import Attributes

from obskit._core import state as _state

__all__ = [
    "AdoptedSpanProcessors",
    "ObskitTracerProvider",
    "add_processor",
    "adopt",
    "foreign_tracer_provider",
    "install_global_tracer_provider",
    "is_sdk_provider",
]

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
        return False  # configure() adopted it, or warned why it cannot
    trace.set_tracer_provider(_PROXY)
    return True


def foreign_tracer_provider() -> Any:
    """The global TracerProvider someone other than obskit set, or None."""
    current = trace.get_tracer_provider()
    if current is _PROXY or isinstance(current, trace.ProxyTracerProvider):
        return None
    return current


def is_sdk_provider(provider: object) -> bool:
    """Whether ``provider`` is the SDK's TracerProvider (or a subclass of it): one obskit can adopt."""
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

    return isinstance(provider, SdkTracerProvider)


class AdoptedSpanProcessors:
    """obskit's span processors inside a provider it adopted; one per provider, however often configured.

    The SDK cannot remove a span processor from a provider, so obskit adds this one once and
    swaps what it holds: ``configure()`` puts obskit's processors in, ``shutdown()`` takes them
    out (and flushes and shuts down only those). The provider's own processors never see it.
    """

    def __init__(self) -> None:
        self.processors: tuple[Any, ...] = ()

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        for processor in self.processors:
            processor.on_start(span, parent_context=parent_context)

    def _on_ending(self, span: Any) -> None:  # the SDK's experimental hook (1.40 on)
        for processor in self.processors:
            hook = getattr(processor, "_on_ending", None)
            if hook is not None:
                hook(span)

    def on_end(self, span: Any) -> None:
        for processor in self.processors:
            processor.on_end(span)

    def shutdown(self) -> None:
        """The provider is shutting down (the application's own shutdown): so do obskit's processors."""
        processors, self.processors = self.processors, ()
        for processor in processors:
            processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        deadline = time.monotonic() + timeout_millis / 1000
        done = True
        for processor in self.processors:
            left = max(0, int((deadline - time.monotonic()) * 1000))
            done = bool(processor.force_flush(left)) and done
        return done


_ADOPTED: weakref.WeakKeyDictionary[Any, AdoptedSpanProcessors] = weakref.WeakKeyDictionary()


def add_processor(provider: Any, processor: Any) -> None:
    """Add ``processor`` to ``provider``: into obskit's holder when obskit adopted it.

    There the next configure() or shutdown() takes it out again; added to a provider the
    application owns, it would stay for the provider's life, one more per configure().
    """
    holder = _ADOPTED.get(provider)
    if holder is not None:
        holder.processors = (*holder.processors, processor)
    else:
        provider.add_span_processor(processor)


def adopt(provider: Any, processors: Iterable[Any]) -> AdoptedSpanProcessors:
    """Put ``processors`` into SDK ``provider`` (replacing the ones a previous configure() put there)."""
    holder = _ADOPTED.get(provider)
    if holder is None:
        holder = _ADOPTED[provider] = AdoptedSpanProcessors()
        provider.add_span_processor(holder)
    holder.processors = tuple(processors)
    return holder
