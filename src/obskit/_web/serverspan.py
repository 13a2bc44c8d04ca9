"""A lighter recording span for the HTTP server path, exported as the SDK's own ``ReadableSpan``.

The SDK's ``Span`` pays, per request, for a lock, a ``BoundedAttributes`` that cleans every
attribute as it is set, bounded event and link lists, and the processors' ``on_start`` fan-out
built for arbitrary use. A server span is started and ended by obskit's middleware, once per
request, and mostly receives a handful of attributes at its end. :class:`ServerSpan` records into
plain containers and applies the SDK's limits and attribute cleaning once, at :meth:`end`, where
it hands an ordinary :class:`~opentelemetry.sdk.trace.ReadableSpan` to the tracer's span
processor, so exporters, the batch processor and the test capture see exactly what an SDK span
would give them. The sampler, id generator, resource, limits and instrumentation scope are the
tracer's own; a tracer that is not the SDK's (or a newer SDK that moved these) gets the plain
``tracer.start_span`` instead. ``tests/test_serverspan.py`` proves both spans export the same data.

User code sees an ordinary recording span: ``trace.get_current_span()`` inside a handler returns
it, and ``set_attribute``, ``add_event``, ``add_link``, ``set_status``, ``record_exception`` and
``update_name`` behave as the SDK's do (calls after ``end()`` are ignored).
"""

from __future__ import annotations

from collections.abc import Mapping
from random import getrandbits
from time import time_ns
from types import MappingProxyType, TracebackType
from typing import Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util.types import Attributes

from obskit._recording.tracing import describe, exception_attributes

__all__ = ["ServerSpan", "start_server_span"]

_UNSET = Status(StatusCode.UNSET)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_NO_EVENTS: tuple[Event, ...] = ()
_NO_LINKS: tuple[Link, ...] = ()
_RANDOM = getattr(TraceFlags, "RANDOM_TRACE_ID", 0)
_SAMPLED_RANDOM = TraceFlags(TraceFlags.SAMPLED | _RANDOM)
_NO_TRACE_STATE = DEFAULT_TRACE_STATE
#: What a tracer must have for the light path; checked once per tracer object.
_TRACER_PARTS = (
    "sampler",
    "id_generator",
    "span_processor",
    "resource",
    "_span_limits",
    "_instrumentation_scope",
)


class _Plan:
    """What :func:`start_server_span` does for one tracer, decided once for it (see :func:`_plan`).

    ``light``: the tracer is the SDK's, with every part the light path reads. ``every_root``: its
    sampler samples every root span (``ParentBased(ALWAYS_ON)``, obskit's default, or
    ``ParentBased(TraceIdRatioBased(rate >= 1))``).
    ``random_ids``: its id generator is the SDK's random one, whose ids are drawn here directly.
    ``starts``/``endings``: some span processor does something in ``on_start``/``_on_ending``
    (obskit's batch processors do nothing there, so the fan-out is skipped).
    """

    __slots__ = (
        "enabled",
        "ender",
        "endings",
        "every_root",
        "ids",
        "light",
        "processors",
        "random_ids",
        "sampler",
        "starts",
        "tracer",
    )

    def __init__(self, tracer: Any) -> None:
        from opentelemetry.sdk.trace import Tracer as SdkTracer

        self.tracer = tracer
        self.sampler = getattr(tracer, "sampler", None)
        self.ids = getattr(tracer, "id_generator", None)
        processor = getattr(tracer, "span_processor", None)
        self.processors = getattr(processor, "_span_processors", None)
        self.light = type(tracer) is SdkTracer and all(hasattr(tracer, part) for part in _TRACER_PARTS)
        self.every_root = _samples_every_root(self.sampler)
        #: The tracer's ``_is_enabled`` (the SDK's tracer configurator), asked for every span.
        self.enabled = getattr(tracer, "_is_enabled", None)
        self.random_ids = self.light and type(self.ids) is RandomIdGenerator
        self.starts, self.endings = _hooks(processor)
        #: The one obskit batch processor's direct way into its export queue, for sampled spans
        #: (the processors' ``on_end`` fan-out otherwise).
        self.ender = _direct_ender(processor)


def _hooks(processor: Any) -> tuple[bool, bool]:
    """Whether ``processor`` does anything in ``on_start`` and in ``_on_ending``."""
    from opentelemetry.sdk.trace import SpanProcessor, SynchronousMultiSpanProcessor
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from obskit._export.pipeline import CountingSpanProcessor

    if type(processor) is not SynchronousMultiSpanProcessor:
        return True, True
    quiet_start = {SpanProcessor.on_start, BatchSpanProcessor.on_start}
    # ``_on_ending`` is the SDK's experimental hook (1.40 on): before it, None on every side.
    quiet_ending = {
        getattr(SpanProcessor, "_on_ending", None),
        getattr(BatchSpanProcessor, "_on_ending", None),
    }
    starts = endings = False
    for one in processor._span_processors:
        inner = one.inner if type(one) is CountingSpanProcessor else one  # it hands on on_start only
        starts = starts or type(inner).on_start not in quiet_start
        endings = endings or getattr(type(one), "_on_ending", None) not in quiet_ending
    return starts, endings


def _direct_ender(processor: Any) -> Any:
    """``CountingSpanProcessor.end_sampled`` when it is the provider's only span processor.

    A processor that says it looks at client spans only (``client_spans_only``: the database
    metrics of ``instrument_libraries``, there as soon as SQLAlchemy, psycopg or Redis is
    imported) has nothing to do with a server span, and does not count.
    """
    from opentelemetry.sdk.trace import SynchronousMultiSpanProcessor

    from obskit._export.pipeline import CountingSpanProcessor

    if type(processor) is not SynchronousMultiSpanProcessor:
        return None
    others = [p for p in processor._span_processors if not getattr(type(p), "client_spans_only", False)]
    if len(others) != 1:
        return None
    (only,) = others
    if type(only) is not CountingSpanProcessor or only.emit is None:
        return None
    return only.end_sampled


_last_plan: _Plan | None = None


def _plan(tracer: Any) -> _Plan:
    """A new plan for ``tracer``, kept as the last one (checked in :func:`start_server_span`)."""
    global _last_plan
    plan = _last_plan = _Plan(tracer)
    return plan


def start_server_span(
    tracer: Any, name: str, parent: Context | None, attributes: dict[str, Any]
) -> trace.Span:
    """Start a SERVER span under ``parent`` (an extracted context), as ``tracer.start_span`` would.

    ``attributes`` is taken over by the span (not copied): the caller builds it for this span.
    An empty ``parent`` means no parent (a request without trace headers).
    """
    plan = _last_plan
    if (  # the plan holds while the tracer, its sampler, ids and processors are the same
        plan is None
        or plan.tracer is not tracer
        or (
            plan.light
            and (
                plan.sampler is not tracer.sampler
                or plan.ids is not tracer.id_generator
                or plan.processors is not getattr(tracer.span_processor, "_span_processors", None)
            )
        )
    ):
        plan = _plan(tracer)
    if (
        plan.random_ids
        and plan.every_root
        and parent is not None
        and not parent
        and (plan.enabled is None or plan.enabled())
    ):
        # A root span (no trace headers) from the SDK's random ids and a sampler that samples
        # every root: what the sampler would answer (sample, the span's own attributes, no trace
        # state) without asking, and the context SpanContext() would build for these valid ids.
        trace_id = getrandbits(128)
        span_id = getrandbits(64)
        if trace_id and span_id:
            context = tuple.__new__(
                SpanContext, (trace_id, span_id, False, _SAMPLED_RANDOM, _NO_TRACE_STATE, True)
            )
            span = ServerSpan(tracer, name, context, None, attributes)
            span._checked = _all_str_or_int(attributes)
            span._endings = plan.endings
            span._ender = plan.ender  # sampled: the export queue takes it as is
            if plan.starts:
                tracer.span_processor.on_start(span, parent_context=parent)
            return span
    return _start_span(plan, tracer, name, parent, attributes)


def _start_span(
    plan: _Plan, tracer: Any, name: str, parent: Context | None, attributes: dict[str, Any]
) -> trace.Span:
    """:func:`start_server_span` for every other case: a parent, a sampler to ask, another tracer."""
    if not plan.light:
        return tracer.start_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes)  # type: ignore[no-any-return]
    if plan.enabled is not None and not plan.enabled():
        return trace.NonRecordingSpan(trace.get_current_span(parent).get_span_context())
    parent_context: SpanContext | None
    if parent is not None and not parent:
        parent_context = None
    else:
        parent_context = trace.get_current_span(parent).get_span_context()
        if parent_context is None or not parent_context.is_valid:
            parent_context = None
    result: Any
    if parent_context is None:
        trace_id = tracer.id_generator.generate_trace_id()
        random_id = _RANDOM and tracer.id_generator.is_trace_id_random()
    else:
        trace_id = parent_context.trace_id
        random_id = _RANDOM and parent_context.trace_flags & _RANDOM
    result = tracer.sampler.should_sample(parent, trace_id, name, SpanKind.SERVER, attributes, ())
    flags = _SAMPLED if result.decision.is_sampled() else _NOT_SAMPLED
    if random_id:
        flags = TraceFlags(flags | _RANDOM)
    context = SpanContext(
        trace_id,
        tracer.id_generator.generate_span_id(),
        is_remote=False,
        trace_flags=flags,
        trace_state=result.trace_state,
    )
    if not result.decision.is_recording():
        return trace.NonRecordingSpan(context)
    if result.attributes != attributes:  # the SDK's span takes them as is
        attributes = dict(result.attributes)
    span = ServerSpan(tracer, name, context, parent_context, attributes)
    span._checked = _all_str_or_int(attributes)
    span._endings = plan.endings
    if plan.starts:
        tracer.span_processor.on_start(span, parent_context=parent)
    return span


def _samples_every_root(sampler: Any) -> bool:
    """Whether ``sampler`` is ``ParentBased`` over a root sampler that samples every trace id.

    That root sampler is ``ALWAYS_ON`` (obskit's default) or ``TraceIdRatioBased(rate >= 1)``:
    both answer a root span with "sample", its own attributes and no trace state.
    """
    if type(sampler) is not ParentBased:
        return False
    root = getattr(sampler, "_root", None)
    return root is ALWAYS_ON or (
        type(root) is TraceIdRatioBased and root.bound > TraceIdRatioBased.TRACE_ID_LIMIT
    )


def _all_str_or_int(attributes: Mapping[str, Any]) -> bool:
    for key, value in attributes.items():
        cls = value.__class__
        if (cls is not str and cls is not int) or key.__class__ is not str or not key:
            return False
    return True


def _kept(value: Any) -> Any:
    """``value`` as it must be kept until the end: a list copied, as the SDK's cleaning copies it."""
    return tuple(value) if value.__class__ is list else value


class ServerSpan(trace.Span, ReadableSpan):
    """A recording SERVER span that is its own ``ReadableSpan`` once ended (see the module doc).

    It keeps the fields under the names ``ReadableSpan`` reads, so the processors get the span
    itself at :meth:`end` (attributes cleaned then, later changes ignored) rather than a copy.
    """

    def __init__(
        self,
        tracer: Any,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        attributes: dict[str, Any],
    ) -> None:
        # ReadableSpan's fields, set directly (its __init__ would build what is already here).
        self._name = name
        self._context = context
        self._kind = SpanKind.SERVER
        self._parent = parent
        self._attributes: Any = attributes
        self._events: Any = _NO_EVENTS
        self._links: Any = _NO_LINKS
        self._status = _UNSET
        self._start_time = time_ns()
        self._end_time: int | None = None
        self._resource = tracer.resource
        self._instrumentation_scope = tracer._instrumentation_scope
        self._instrumentation_info = getattr(tracer, "instrumentation_info", None)
        self._tracer = tracer
        #: Whether every attribute so far is one obskit set with a valid value (see :meth:`end`).
        self._checked = False
        #: Whether a span processor does anything in ``_on_ending`` (see :class:`_Plan`).
        self._endings = True
        #: What hands this (sampled) span to the export queue instead of the processors' on_end
        #: fan-out, when the plan found a single batch processor (see :class:`_Plan`).
        self._ender: Any = None

    @property
    def attributes(self) -> Mapping[str, Any]:
        """The attributes, cleaned and limited as the SDK's span shows them (running or ended)."""
        if self._end_time is None:
            final = self._final_attributes()
            return MappingProxyType(final) if final is self._attributes else final
        return MappingProxyType(self._attributes)

    def get_span_context(self) -> SpanContext:
        """The span's context: trace id, span id, flags."""
        return self._context  # type: ignore[return-value]  # always set, for this span

    def is_recording(self) -> bool:
        """True until :meth:`end`."""
        return self._end_time is None

    def set_attribute(self, key: str, value: Any) -> None:
        """Set one attribute (cleaned, as the SDK cleans it, when the span ends)."""
        if self._end_time is None:
            attributes = self._attributes
            attributes.pop(key, None)  # a key set again is the newest, as in the SDK's attributes
            attributes[key] = _kept(value)
            self._checked = False

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Set several attributes."""
        if self._end_time is None:
            mine = self._attributes
            for key, value in attributes.items():
                mine.pop(key, None)
                mine[key] = _kept(value)
            self._checked = False

    def set_checked_attributes(self, attributes: Mapping[str, str | int]) -> None:
        """Set attributes whose keys are valid and whose values are a ``str`` or an ``int``.

        For obskit's own attributes: when all of a span's attributes came this way (and through
        :func:`start_server_span` with such values) the SDK's per-value cleaning at the end,
        which could change nothing, is skipped.
        """
        if self._end_time is None:
            mine = self._attributes
            for key, value in attributes.items():
                mine.pop(key, None)
                mine[key] = value

    def add_event(self, name: str, attributes: Attributes = None, timestamp: int | None = None) -> None:
        """Add an event (limits applied at the end)."""
        if self._end_time is None:
            if self._events is _NO_EVENTS:
                self._events = BoundedList(self._tracer._span_limits.max_events)
            self._events.append(Event(name, self._bounded("max_event_attributes", attributes), timestamp))

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        """Add a link to another span; an invalid context without attributes is ignored, as in the SDK."""
        if context is None:
            return
        if self._end_time is None and (context.is_valid or attributes or context.trace_state):
            if self._links is _NO_LINKS:
                self._links = BoundedList(self._tracer._span_limits.max_links)
            self._links.append(Link(context, self._bounded("max_link_attributes", attributes)))

    def update_name(self, name: str) -> None:
        """Rename the span (the middleware names it after the route once it is known)."""
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """Set the status: UNSET is ignored and OK is final, as in the SDK."""
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            if status.status_code is not StatusCode.UNSET:
                self._status = status
        elif status is not StatusCode.UNSET:
            self._status = Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """Record an exception as an ``exception`` event, with the SDK's attributes."""
        fields: dict[str, Any] = exception_attributes(exception, escaped)
        if attributes:
            fields.update(attributes)
        self.add_event("exception", fields, timestamp)

    def end(self, end_time: int | None = None) -> None:
        """End the span and hand it, as a ``ReadableSpan`` within the SDK's limits, to the processors."""
        if self._end_time is not None:
            return
        self._end_time = end_time if end_time is not None else time_ns()
        processor = self._tracer.span_processor
        if self._endings:
            on_ending = getattr(processor, "_on_ending", None)  # the SDK's (experimental) hook
            if on_ending is not None:
                on_ending(self)
        self._attributes = self._final_attributes()  # what exporters read; the dict is done with
        if self._ender is not None:
            self._ender(self)
        else:
            processor.on_end(self)

    def end_request(self, name: str | None, attributes: dict[str, str | int]) -> None:
        """Rename (unless ``name`` is None), set obskit's closing attributes and end.

        The server middleware's usual ending, in one call. The attributes are str and int values
        with valid keys, as for :meth:`set_checked_attributes`.
        """
        if self._end_time is None:
            if name is not None:
                self._name = name
            self.set_checked_attributes(attributes)
            self.end()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        """End the span; an exception escaping the block is recorded and sets ERROR, as in the SDK."""
        if exc_val is not None and self.is_recording():
            self.record_exception(exc_val, escaped=True)
            self.set_status(Status(StatusCode.ERROR, describe(exc_val)))
        super().__exit__(exc_type, exc_val, exc_tb)

    def _final_attributes(self) -> Mapping[str, Any]:
        limits = self._tracer._span_limits
        if (
            self._checked
            and limits.max_span_attribute_length is None
            and len(self._attributes) <= (limits.max_span_attributes or 0)
        ):
            # Nothing to clean, truncate or drop: the cleaned copy would equal the dict. Kept as
            # is (``attributes`` shows it read-only): no object made for a span waiting in the
            # export queue, where the garbage collector would track it (docs/performance.md).
            return self._attributes  # type: ignore[no-any-return]
        return BoundedAttributes(
            limits.max_span_attributes,
            self._attributes,
            immutable=True,
            max_value_len=limits.max_span_attribute_length,
        )

    def _bounded(self, limit_name: str, attributes: Attributes) -> Any:
        from opentelemetry.attributes import BoundedAttributes

        limits = self._tracer._span_limits
        return BoundedAttributes(
            getattr(limits, limit_name), attributes, max_value_len=limits.max_attribute_length, immutable=True
        )
