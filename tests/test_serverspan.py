"""The light SERVER span exports exactly what the SDK's own span exports for the same calls."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    StaticSampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode

import obskit.asgi
from asgicall import asgi_get
from obskit import trace_operation
from obskit._web.serverspan import ServerSpan, start_server_span
from obskit.testing import capture

NAME = "GET"
START: dict[str, Any] = {
    "http.request.method": "GET",
    "url.path": "/items/1",
    "url.scheme": "http",
    "server.address": "testserver",
    "server.port": 8000,
}
LOW_TRACE_ID = 0x00000000000000000000000000000001  # sampled by any positive ratio
HIGH_TRACE_ID = 0x0000000000000000FFFFFFFFFFFFFFF0  # dropped by TraceIdRatioBased(0.5)
PARENT_TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
PARENT_SPAN_ID = 0xB7AD6B7169203331
RANDOM = TraceFlags(0x02)  # TraceFlags.RANDOM_TRACE_ID (W3C Trace Context level 2)


class Boom(Exception):
    """Recorded by the record_exception sequences."""


class Ids(IdGenerator):
    """Deterministic ids, so both runs of a sequence get the very same trace and span ids."""

    def __init__(self, trace_id: int = LOW_TRACE_ID, random: bool = False) -> None:
        self._trace_id = trace_id
        self._random = random
        self._next = 0x1000

    def generate_span_id(self) -> int:
        self._next += 1
        return self._next

    def generate_trace_id(self) -> int:
        return self._trace_id

    def is_trace_id_random(self) -> bool:
        return self._random


class Collector(SpanProcessor):
    """Sees every started and ended span, sampled or not (the exporter sees only sampled ones)."""

    def __init__(self) -> None:
        self.started: list[tuple[str, dict[str, Any], SpanContext, Context | None]] = []
        self.ended: list[ReadableSpan] = []

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        self.started.append((span.name, dict(span.attributes), span.get_span_context(), parent_context))

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)


class Run:
    """One path's provider, exporter, processor and what the sequence's observations returned."""

    def __init__(
        self,
        sampler: Sampler | None,
        limits: SpanLimits | None,
        ids: Ids,
        processors: Sequence[SpanProcessor] = (),
    ) -> None:
        self.exporter = InMemorySpanExporter()
        self.collector = Collector()
        self.provider = TracerProvider(
            sampler=sampler,
            span_limits=limits,
            id_generator=ids,
            resource=Resource.create({"service.name": "svc", "deployment.environment": "test"}),
            shutdown_on_exit=False,
        )
        for processor in processors:
            self.provider.add_span_processor(processor)
        self.provider.add_span_processor(self.collector)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("obskit.test", "1.2.3", schema_url="https://example.com/s")
        self.observed: list[Any] = []


Op = Callable[[Any, Run], None]


def run_path(
    light: bool,
    ops: Sequence[Op],
    *,
    sampler: Sampler | None = None,
    limits: SpanLimits | None = None,
    parent: Context | None = None,
    start: Mapping[str, Any] = START,
    ids: Callable[[], Ids] = Ids,
    processors: Callable[[], Sequence[SpanProcessor]] = tuple,
) -> tuple[Any, Run]:
    """Start a SERVER span through the SDK or the light path, apply ``ops``, end it."""
    run = Run(sampler, limits, ids(), processors())
    attributes = dict(start)
    if light:
        span = start_server_span(run.tracer, NAME, parent, attributes)
    else:
        span = run.tracer.start_span(NAME, context=parent, kind=SpanKind.SERVER, attributes=attributes)
    for op in ops:
        op(span, run)
    span.end()
    run.provider.shutdown()
    return span, run


def _span_context(ctx: SpanContext | None) -> Any:
    if ctx is None:
        return None
    return (ctx.trace_id, ctx.span_id, ctx.is_remote, int(ctx.trace_flags), tuple(ctx.trace_state.items()))


def _event(event: Any, timestamps: bool) -> Any:
    return (
        event.name,
        dict(event.attributes),
        event.dropped_attributes,
        event.timestamp if timestamps else None,
    )


def _link(link: Any) -> Any:
    return (_span_context(link.context), dict(link.attributes), link.dropped_attributes)


def _json(span: ReadableSpan) -> dict[str, Any] | None:
    try:
        data = json.loads(span.to_json())
    except TypeError:  # the SDK's to_json cannot render a bytes value: both must fail alike
        return None
    data.pop("start_time")
    data.pop("end_time")
    for event in data["events"]:
        event.pop("timestamp")
    return data


def assert_same_span(sdk: ReadableSpan, light: ReadableSpan, *, event_timestamps: bool = False) -> None:
    """Every exported field of ``light`` equals ``sdk``'s (start/end times necessarily differ)."""
    assert isinstance(light, ReadableSpan)  # the light span is exported as itself
    assert light.name == sdk.name
    assert light.kind is sdk.kind is SpanKind.SERVER
    assert _span_context(light.context) == _span_context(sdk.context)
    assert _span_context(light.parent) == _span_context(sdk.parent)
    assert light.resource.attributes == sdk.resource.attributes
    assert light.resource.schema_url == sdk.resource.schema_url
    assert light.instrumentation_scope == sdk.instrumentation_scope
    assert dict(light.attributes) == dict(sdk.attributes)
    assert light.dropped_attributes == sdk.dropped_attributes
    assert [_event(e, event_timestamps) for e in light.events] == [
        _event(e, event_timestamps) for e in sdk.events
    ]
    assert light.dropped_events == sdk.dropped_events
    assert [_link(link) for link in light.links] == [_link(link) for link in sdk.links]
    assert light.dropped_links == sdk.dropped_links
    assert light.status.status_code is sdk.status.status_code
    assert light.status.description == sdk.status.description
    assert light.start_time is not None
    assert light.end_time is not None
    if sdk.end_time in FIXED_END_TIMES:
        assert light.end_time == sdk.end_time
    else:
        assert light.start_time <= light.end_time
    assert _json(light) == _json(sdk)


def compare(ops: Sequence[Op], **options: Any) -> tuple[Run, Run]:
    """Run ``ops`` through both paths and assert they export the same span(s) and observations."""
    sdk_span, sdk = run_path(False, ops, **options)
    light_span, light = run_path(True, ops, **options)
    assert light.observed == sdk.observed
    assert [s.name for s in light.exporter.get_finished_spans()] == [
        s.name for s in sdk.exporter.get_finished_spans()
    ]
    assert len(light.collector.ended) == len(sdk.collector.ended)
    for light_ended, sdk_ended in zip(light.collector.ended, sdk.collector.ended, strict=True):
        assert_same_span(sdk_ended, light_ended)
    assert [(n, a, _span_context(c), p) for n, a, c, p in light.collector.started] == [
        (n, a, _span_context(c), p) for n, a, c, p in sdk.collector.started
    ]
    assert _span_context(light_span.get_span_context()) == _span_context(sdk_span.get_span_context())
    assert light_span.is_recording() is sdk_span.is_recording() is False
    return sdk, light


# -- operation sequences ------------------------------------------------------------------------


def attr(key: str, value: Any) -> Op:
    return lambda span, run: span.set_attribute(key, value)


def attrs(values: Mapping[str, Any]) -> Op:
    return lambda span, run: span.set_attributes(values)


def event(name: str, attributes: Any = None, timestamp: int | None = None) -> Op:
    return lambda span, run: span.add_event(name, attributes, timestamp)


def link(context: SpanContext, attributes: Any = None) -> Op:
    return lambda span, run: span.add_link(context, attributes)


def status(value: Status | StatusCode, description: str | None = None) -> Op:
    return lambda span, run: span.set_status(value, description)


def rename(name: str) -> Op:
    return lambda span, run: span.update_name(name)


def end(end_time: int | None = None) -> Op:
    return lambda span, run: span.end(end_time)


def observe(span: Any, run: Run) -> None:
    run.observed.append((span.is_recording(), getattr(span, "name", None)))


def observe_attributes(span: Any, run: Run) -> None:
    run.observed.append(dict(span.attributes))


def observe_recording(span: Any, run: Run) -> None:
    run.observed.append(span.is_recording())


def exception(attributes: Any = None, timestamp: int | None = None, escaped: bool = False) -> Op:
    def op(span: Any, run: Run) -> None:
        try:
            raise Boom("it broke")
        except Boom as error:
            span.record_exception(error, attributes, timestamp, escaped)

    return op


def checked(values: Mapping[str, str | int]) -> Op:
    """What the middleware does at the end: the checked setter on the light span."""

    def op(span: Any, run: Run) -> None:
        if isinstance(span, ServerSpan):
            span.set_checked_attributes(values)
        else:
            span.set_attributes(values)

    return op


FIXED_END_TIMES = (1_700_000_000_000_000_000, 1_700_000_000_123_456_789)
VALID = SpanContext(PARENT_TRACE_ID, 0x1111111111111111, is_remote=True, trace_flags=TraceFlags(1))
INVALID = trace.INVALID_SPAN_CONTEXT
INVALID_WITH_STATE = SpanContext(0, 0, is_remote=False, trace_state=TraceState([("k", "v")]))
LONG = "abcdefghijklmnopqrstuvwxyz"

SEQUENCES: dict[str, list[Op]] = {
    "nothing": [],
    "valid-attribute-types": [
        attr("s", "text"),
        attr("i", 7),
        attr("f", 1.5),
        attr("b", True),
        attr("bytes", b"raw"),
        attr("seq-str", ["a", "b"]),
        attr("seq-int", (1, 2, 3)),
        attr("seq-none", ["a", None]),
        attr("empty-seq", []),
        observe_recording,
    ],
    "invalid-values-dropped": [
        attr("none", None),
        attr("dict", {"x": 1}),
        attr("mixed", [1, "a"]),
        attr("object", object()),
        attr("", "empty key"),
        attrs({"ok": 1, "bad": {"a": 1}}),
    ],
    "overwrite-valid": [attr("k", "one"), attr("k", "two"), attr("url.path", "/other")],
    "set-attributes-mapping": [attrs({"a": 1, "b": "two", "c": 3.0}), attrs({"a": 4})],
    "long-values": [attr("long", LONG), attr("longs", [LONG, "x"]), attr("n", 12345678901234567890)],
    "events": [
        event("plain"),
        event("with-attributes", {"a": 1, "long": LONG, "bad": None, "b": [1, 2]}),
        event("timed", {"k": "v"}, 1_700_000_000_000_000_000),
        event("more", {"x": 1, "y": 2, "z": 3}),
        event("last"),
    ],
    "record-exception": [exception()],
    "record-exception-escaped-with-attributes": [
        exception({"extra": "yes", "exception.message": "overridden"}, 1_700_000_000_000_000_001, True)
    ],
    "links": [
        link(VALID),
        link(VALID, {"a": 1, "long": LONG, "bad": None}),
        link(INVALID),
        link(INVALID, {"kept": True}),
        link(INVALID_WITH_STATE),
        link(VALID, {"x": 1, "y": 2, "z": 3}),
    ],
    "status-unset-ignored": [status(StatusCode.UNSET), status(Status(StatusCode.UNSET))],
    "status-error-description": [status(StatusCode.ERROR, "went wrong")],
    "status-error-object": [status(Status(StatusCode.ERROR, "object"))],
    "status-error-then-unset": [status(StatusCode.ERROR, "first"), status(StatusCode.UNSET)],
    "status-error-then-ok": [status(StatusCode.ERROR, "first"), status(StatusCode.OK)],
    "status-ok-is-final": [
        status(StatusCode.OK),
        status(StatusCode.ERROR, "later"),
        status(Status(StatusCode.ERROR)),
    ],
    "status-ok-description-dropped": [status(StatusCode.OK, "ignored")],
    "status-object-with-description-argument": [status(Status(StatusCode.ERROR, "kept"), "ignored")],
    "update-name": [rename("GET /items/{id}"), observe],
    "end-time-given": [end(1_700_000_000_123_456_789)],
    "calls-after-end-ignored": [
        attr("before", 1),
        end(),
        observe_recording,
        attr("after", 1),
        attrs({"after2": 2}),
        event("after"),
        link(VALID),
        status(StatusCode.ERROR, "after"),
        rename("after"),
        exception(),
        checked({"http.route": "/late"}),
        end(),
    ],
    "end-twice-keeps-first-end-time": [end(1_700_000_000_000_000_000), end(1_800_000_000_000_000_000)],
    "middleware-finish": [
        rename("GET /items/{id}"),
        exception(escaped=True),
        status(Status(StatusCode.ERROR, "Boom: it broke")),
        checked({"http.route": "/items/{id}", "http.response.status_code": 500, "error.type": "Boom"}),
    ],
    "checked-after-user-attributes": [
        attr("user", [1, 2]),
        checked({"http.route": "/r", "http.response.status_code": 200}),
    ],
    "checked-only": [checked({"http.route": "/r", "http.response.status_code": 200})],
    "many-attributes": [attr(f"k{i}", i) for i in range(140)],
}

LIMITS: dict[str, SpanLimits | None] = {
    "default": None,
    "tight": SpanLimits(
        max_span_attributes=8,
        max_events=3,
        max_links=3,
        max_event_attributes=2,
        max_link_attributes=2,
        max_attribute_length=5,
        max_span_attribute_length=4,
    ),
    "count-only": SpanLimits(max_span_attributes=6),
    "length-only": SpanLimits(max_span_attribute_length=3),
    "unlimited": SpanLimits(
        max_span_attributes=SpanLimits.UNSET,
        max_events=SpanLimits.UNSET,
        max_links=SpanLimits.UNSET,
        max_event_attributes=SpanLimits.UNSET,
        max_link_attributes=SpanLimits.UNSET,
        max_attribute_length=SpanLimits.UNSET,
    ),
}


@pytest.mark.parametrize("limits", list(LIMITS.values()), ids=list(LIMITS))
@pytest.mark.parametrize("ops", list(SEQUENCES.values()), ids=list(SEQUENCES))
def test_light_span_exports_what_the_sdk_span_exports(ops: list[Op], limits: SpanLimits | None) -> None:
    sdk, _ = compare(ops, limits=limits)
    assert len(sdk.exporter.get_finished_spans()) == 1


@pytest.mark.parametrize(
    ("env", "ops"),
    [
        ({"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "3"}, SEQUENCES["long-values"]),
        ({"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "3"}, SEQUENCES["middleware-finish"]),
        ({"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "3"}, SEQUENCES["valid-attribute-types"]),
        ({"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "3"}, SEQUENCES["checked-only"]),
        ({"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "0"}, SEQUENCES["middleware-finish"]),
        ({"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "2"}, SEQUENCES["events"] + SEQUENCES["long-values"]),
        ({"OTEL_ATTRIBUTE_COUNT_LIMIT": "2"}, SEQUENCES["links"] + SEQUENCES["events"]),
        ({"OTEL_SPAN_EVENT_COUNT_LIMIT": "1", "OTEL_SPAN_LINK_COUNT_LIMIT": "1"}, SEQUENCES["links"]),
        ({"OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT": "1"}, SEQUENCES["record-exception"]),
        ({"OTEL_LINK_ATTRIBUTE_COUNT_LIMIT": "1"}, SEQUENCES["links"]),
    ],
    ids=lambda value: "-".join(value) if isinstance(value, dict) else None,
)
def test_limits_from_the_environment_are_honoured(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], ops: list[Op]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    compare(ops)  # the providers read SpanLimits() from the environment


STARTS: dict[str, dict[str, Any]] = {
    "server-attributes": START,
    "empty": {},
    "float-and-bool": {**START, "f": 0.5, "flag": False},
    "sequence": {**START, "list": ["a", "b"]},
    "invalid-values": {**START, "none": None, "dict": {"a": 1}},
    "empty-key": {**START, "": "x"},
    "str-subclass": {**START, "method": type("S", (str,), {})("GET")},
    "long-string": {**START, "url.path": "/" + LONG * 4},
}


@pytest.mark.parametrize("limits", list(LIMITS.values()), ids=list(LIMITS))
@pytest.mark.parametrize("start", list(STARTS.values()), ids=list(STARTS))
def test_start_attributes_are_cleaned_and_limited_as_the_sdk_does(
    start: dict[str, Any], limits: SpanLimits | None
) -> None:
    compare(SEQUENCES["middleware-finish"] + [observe], start=start, limits=limits)


def test_checked_fast_path_is_taken_only_when_nothing_could_change() -> None:
    def exported(ops: list[Op], **options: Any) -> Any:
        return run_path(True, ops, **options)[1].exporter.get_finished_spans()[0]

    fast = exported(SEQUENCES["checked-only"])
    assert type(fast._attributes) is dict  # kept as is: no object made per exported span
    assert isinstance(fast.attributes, MappingProxyType)  # and shown read-only
    with pytest.raises(TypeError):
        fast.attributes["http.route"] = "/changed"  # type: ignore[index]
    assert type(exported([attr("user", 1)])._attributes) is not dict
    assert type(exported([], start={**START, "b": True})._attributes) is not dict
    assert type(exported([], limits=SpanLimits(max_span_attribute_length=100))._attributes) is not dict
    assert type(exported([], limits=SpanLimits(max_span_attributes=2))._attributes) is not dict


# -- samplers, parents and flags -----------------------------------------------------------------


class AddingSampler(Sampler):
    """Samples, adding an attribute and a trace_state entry to the ones it was given."""

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Any = None,
        links: Any = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        state = trace.get_current_span(parent_context).get_span_context().trace_state
        return SamplingResult(
            Decision.RECORD_AND_SAMPLE,
            {**(attributes or {}), "sampler.name": "adding", "url.path": "/by-sampler"},
            state.add("sampler", "yes") if "sampler" not in state else state,
        )

    def get_description(self) -> str:
        return "AddingSampler"


class RecordOnlySampler(AddingSampler):
    """Records without sampling: the span reaches the processors but not the exporter."""

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        result = super().should_sample(*args, **kwargs)
        return SamplingResult(Decision.RECORD_ONLY, result.attributes, result.trace_state)


class ReplacingSampler(AddingSampler):
    """Samples, returning only its own attributes (the SDK span then has only these)."""

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return SamplingResult(Decision.RECORD_AND_SAMPLE, {"sampler.name": "replacing"})


def remote_parent(flags: int, state: TraceState | None = None) -> Context:
    ctx = SpanContext(
        PARENT_TRACE_ID, PARENT_SPAN_ID, is_remote=True, trace_flags=TraceFlags(flags), trace_state=state
    )
    return trace.set_span_in_context(NonRecordingSpan(ctx))


def local_parent(flags: int) -> Context:
    ctx = SpanContext(PARENT_TRACE_ID, PARENT_SPAN_ID, is_remote=False, trace_flags=TraceFlags(flags))
    return trace.set_span_in_context(NonRecordingSpan(ctx))


STATE = TraceState([("vendor", "value")])
SAMPLING: dict[str, dict[str, Any]] = {
    "always-on-root": {"sampler": ALWAYS_ON},
    "always-on-root-random-ids": {"sampler": ALWAYS_ON, "ids": lambda: Ids(random=True)},
    "always-off-root": {"sampler": ALWAYS_OFF},
    "always-off-root-random-ids": {"sampler": ALWAYS_OFF, "ids": lambda: Ids(random=True)},
    "ratio-sampled": {"sampler": TraceIdRatioBased(0.5), "ids": lambda: Ids(LOW_TRACE_ID)},
    "ratio-dropped": {"sampler": TraceIdRatioBased(0.5), "ids": lambda: Ids(HIGH_TRACE_ID)},
    "default-sampler-empty-context": {"parent": Context()},
    "parent-based-remote-sampled": {"sampler": ParentBased(ALWAYS_OFF), "parent": remote_parent(1)},
    "parent-based-remote-unsampled": {"sampler": ParentBased(ALWAYS_ON), "parent": remote_parent(0)},
    "parent-based-remote-sampled-random": {"sampler": ParentBased(ALWAYS_OFF), "parent": remote_parent(3)},
    "parent-based-remote-unsampled-random": {"sampler": ParentBased(ALWAYS_ON), "parent": remote_parent(2)},
    "parent-based-remote-trace-state": {"sampler": ParentBased(ALWAYS_ON), "parent": remote_parent(1, STATE)},
    "parent-based-local-sampled": {"sampler": ParentBased(ALWAYS_OFF), "parent": local_parent(1)},
    "parent-based-local-unsampled": {"sampler": ParentBased(ALWAYS_ON), "parent": local_parent(0)},
    "parent-based-root": {"sampler": ParentBased(ALWAYS_ON)},
    # obskit's own sampler at the default ratio (the light path answers roots without asking it)
    "obskit-sampler-root": {"sampler": ParentBased(TraceIdRatioBased(1.0))},
    "obskit-sampler-root-random-ids": {
        "sampler": ParentBased(TraceIdRatioBased(1.0)),
        "ids": lambda: Ids(random=True),
    },
    "obskit-sampler-remote-unsampled": {
        "sampler": ParentBased(TraceIdRatioBased(1.0)),
        "parent": remote_parent(0),
    },
    "obskit-sampler-remote-state": {
        "sampler": ParentBased(TraceIdRatioBased(1.0)),
        "parent": remote_parent(1, STATE),
    },
    "obskit-sampler-half-root-dropped": {
        "sampler": ParentBased(TraceIdRatioBased(0.5)),
        "ids": lambda: Ids(HIGH_TRACE_ID),
    },
    "parent-based-root-off": {"sampler": ParentBased(ALWAYS_OFF)},
    "invalid-parent-is-root": {"parent": trace.set_span_in_context(trace.INVALID_SPAN)},
    "adding-sampler-root": {"sampler": AddingSampler()},
    "adding-sampler-remote-parent": {"sampler": AddingSampler(), "parent": remote_parent(1, STATE)},
    "record-only-sampler": {"sampler": RecordOnlySampler(), "parent": remote_parent(1)},
}


@pytest.mark.parametrize("options", list(SAMPLING.values()), ids=list(SAMPLING))
def test_sampling_decisions_flags_and_parents_match_the_sdk(options: dict[str, Any]) -> None:
    ops = [*SEQUENCES["middleware-finish"], observe]
    sdk_span, _ = run_path(False, ops, **options)
    light_span, _ = run_path(True, ops, **options)
    assert type(light_span) is (NonRecordingSpan if type(sdk_span) is NonRecordingSpan else ServerSpan)
    assert _span_context(light_span.get_span_context()) == _span_context(sdk_span.get_span_context())
    compare(ops, **options)


def test_sampler_returning_only_its_own_attributes() -> None:
    compare(SEQUENCES["middleware-finish"], sampler=ReplacingSampler())


def test_disabled_tracer_gives_the_sdks_non_recording_span() -> None:
    from opentelemetry.sdk.trace import _disable_tracer_configurator  # type: ignore[attr-defined]

    def disabled(light: bool, parent: Context | None) -> trace.Span:
        provider = TracerProvider(shutdown_on_exit=False, _tracer_configurator=_disable_tracer_configurator)
        tracer = provider.get_tracer("obskit.test")
        if light:
            return start_server_span(tracer, NAME, parent, dict(START))
        return tracer.start_span(NAME, context=parent, kind=SpanKind.SERVER, attributes=dict(START))

    for parent in (None, remote_parent(1)):
        sdk, light = disabled(False, parent), disabled(True, parent)
        assert type(light) is type(sdk) is NonRecordingSpan
        assert _span_context(light.get_span_context()) == _span_context(sdk.get_span_context())


# -- span processors -----------------------------------------------------------------------------


class SettingProcessor(SpanProcessor):
    """Sets attributes in on_start, as BaggageSpanProcessor-like processors do."""

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        span.set_attribute("from.on_start", "yes")
        span.set_attributes({"tenant": "t1", "parent.given": parent_context is not None})


class ReadingProcessor(SpanProcessor):
    """Reads the ReadableSpan side of the span it is given in on_start."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        self.seen.append(
            (
                span.kind,
                _span_context(span.parent),
                _span_context(span.context),
                dict(span.resource.attributes),
                span.instrumentation_scope,
                span.status.status_code,
                span.start_time is not None,
                span.end_time,
                list(span.events),
                list(span.links),
            )
        )


class EndingProcessor(SpanProcessor):
    """Implements the SDK's (experimental, private) _on_ending hook, called from Span.end()."""

    def __init__(self) -> None:
        self.ending: list[str] = []

    def _on_ending(self, span: Any) -> None:
        self.ending.append(span.name)


@pytest.mark.parametrize("parent", [None, remote_parent(1)], ids=["root", "remote-parent"])
def test_processor_setting_attributes_in_on_start_is_exported(parent: Context | None) -> None:
    _, light = compare(SEQUENCES["middleware-finish"], parent=parent, processors=lambda: [SettingProcessor()])
    exported = light.exporter.get_finished_spans()[0].attributes
    assert exported["from.on_start"] == "yes"
    assert exported["parent.given"] is (parent is not None)
    started_parent = light.collector.started[0][3]
    assert started_parent is parent


def test_processor_reading_the_span_in_on_start_sees_what_the_sdk_gives() -> None:
    readers = [ReadingProcessor(), ReadingProcessor()]
    for light, reader in zip((False, True), readers, strict=True):
        run_path(light, [], parent=remote_parent(1), processors=lambda r=reader: [r])  # type: ignore[misc]
    assert readers[1].seen == readers[0].seen


def test_processor_on_ending_hook_is_called() -> None:
    processors = [EndingProcessor(), EndingProcessor()]
    for light, processor in zip((False, True), processors, strict=True):
        run_path(light, [], processors=lambda p=processor: [p])  # type: ignore[misc]
    assert processors[1].ending == processors[0].ending == [NAME]


# -- cases where the SDK cleans each value when it is set, and reads of the running span --------


def test_invalid_value_over_a_valid_one_is_cleaned_alike() -> None:
    compare([attr("k", "valid"), attr("k", None), attr("url.path", {"not": "valid"})])


def test_count_limit_evicts_the_least_recently_set_key() -> None:
    compare(
        [attr("a", 1), attr("b", 2), attr("a", 3), attr("c", 4)],
        start={},
        limits=SpanLimits(max_span_attributes=2),
    )


def test_list_value_mutated_after_set_exports_the_value_at_set_time() -> None:
    def mutate(span: Any, run: Run) -> None:
        values = ["a"]
        span.set_attribute("list", values)
        values.append("b")

    compare([mutate])


def test_attributes_property_shows_cleaned_values() -> None:
    compare([attr("list", ["a"]), attr("bad", None), observe_attributes])


def test_on_start_sees_cleaned_attributes() -> None:
    sdk, light = compare([], start={**START, "bad": None}, limits=SpanLimits(max_span_attribute_length=3))
    assert light.collector.started[0][1] == sdk.collector.started[0][1]


def test_span_as_context_manager_records_the_escaping_exception() -> None:
    def exit_with_error(span: Any, run: Run) -> None:
        with pytest.raises(Boom), span:
            raise Boom("inside")

    compare([exit_with_error])


# -- a tracer that is not the SDK's ----------------------------------------------------------------


class RecordingTracer(trace.Tracer):
    """Not the SDK's tracer: start_server_span must hand the call to its start_span."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.span = NonRecordingSpan(VALID)

    def start_span(self, name: str, context: Context | None = None, **kwargs: Any) -> trace.Span:  # type: ignore[override]
        self.calls.append((name, context, kwargs))
        return self.span

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        raise AssertionError("not used")


class SubclassedTracer(SdkTracer):
    """A subclass of the SDK tracer may override start_span: it takes the plain path too."""


def test_non_sdk_tracer_gets_plain_start_span() -> None:
    tracer = RecordingTracer()
    parent = remote_parent(1)
    attributes = dict(START)
    span = start_server_span(tracer, NAME, parent, attributes)
    assert span is tracer.span
    assert tracer.calls == [(NAME, parent, {"kind": SpanKind.SERVER, "attributes": attributes})]


def test_no_op_and_subclassed_tracers_take_the_plain_path() -> None:
    no_op = trace.NoOpTracer()
    assert type(start_server_span(no_op, NAME, None, dict(START))) is NonRecordingSpan
    provider = TracerProvider(shutdown_on_exit=False)
    sdk_tracer = provider.get_tracer("obskit.test")
    sub = SubclassedTracer(
        sdk_tracer.sampler,
        sdk_tracer.resource,
        sdk_tracer.span_processor,
        sdk_tracer.id_generator,
        sdk_tracer.instrumentation_info,
        sdk_tracer._span_limits,
        sdk_tracer._instrumentation_scope,
    )
    span = start_server_span(sub, NAME, None, dict(START))
    assert not isinstance(span, ServerSpan)
    assert span.is_recording()
    span.end()
    assert isinstance(start_server_span(sdk_tracer, NAME, None, dict(START)), ServerSpan)


# -- end to end through the ASGI middleware --------------------------------------------------------


class HandlerError(Exception):
    """Raised by the end-to-end handler after it touched the current span."""


async def failing_app(scope: Any, receive: Any, send: Any) -> None:
    span = trace.get_current_span()
    span.set_attribute("handler.attribute", "set")
    span.add_event("handler.event", {"n": 1})
    with trace_operation("child.operation"):
        pass
    raise HandlerError("handler failed")


async def drive(app: Any, path: str) -> None:
    with pytest.raises(HandlerError):
        await asgi_get(app, path, {"user-agent": "e2e"})


def test_handler_calls_on_the_current_span_reach_the_exported_server_span() -> None:
    app = obskit.asgi.middleware(failing_app)
    with capture() as cap:
        asyncio.run(drive(app, "/fail"))
        spans = cap.spans()
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    (child,) = cap.spans("child.operation")
    assert server.attributes["handler.attribute"] == "set"
    assert server.attributes["http.response.status_code"] == 500
    assert server.attributes["error.type"] == "test_serverspan.HandlerError"  # as its exception event says
    names = [e.name for e in server.events]
    assert names == ["handler.event", "exception"]
    assert dict(server.events[0].attributes) == {"n": 1}
    raised = server.events[1].attributes
    assert raised["exception.type"].endswith("HandlerError")
    assert raised["exception.message"] == "handler failed"
    assert raised["exception.escaped"] == "True"
    assert "HandlerError: handler failed" in raised["exception.stacktrace"]
    assert server.status.status_code is StatusCode.ERROR
    assert server.status.description == "HandlerError: handler failed"
    assert child.parent is not None
    assert child.parent.span_id == server.context.span_id
    assert child.context.trace_id == server.context.trace_id


def test_only_a_sampler_that_takes_every_root_skips_the_sampling_call() -> None:
    from obskit._web.serverspan import _samples_every_root

    assert _samples_every_root(ParentBased(TraceIdRatioBased(1.0)))
    assert _samples_every_root(ParentBased(ALWAYS_ON))  # obskit's default sampler
    assert not _samples_every_root(ParentBased(TraceIdRatioBased(0.999999)))
    assert not _samples_every_root(ParentBased(ALWAYS_OFF))
    assert not _samples_every_root(ParentBased(StaticSampler(Decision.RECORD_AND_SAMPLE)))  # asked each time
    assert not _samples_every_root(TraceIdRatioBased(1.0))
    assert not _samples_every_root(ALWAYS_ON)
    assert not _samples_every_root(AddingSampler())


@pytest.mark.parametrize("environ", [{}, {"OTEL_TRACES_SAMPLER": "parentbased_always_on"}])
def test_a_root_under_the_sampler_configure_builds_takes_the_light_path(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str]
) -> None:
    from obskit._core import state as _state
    from obskit._web import serverspan

    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    obskit.configure(
        service_name="svc", traces_exporter="console", metrics_exporter="none", logs_exporter="none"
    )
    tracer = _state.STATE.tracer
    span = start_server_span(tracer, "GET /", Context(), {"http.request.method": "GET"})
    assert serverspan._last_plan is not None
    assert serverspan._last_plan.every_root
    assert span._ender is not None  # type: ignore[attr-defined]  # sampled without asking the sampler
    span.end()


def test_a_database_librarys_metrics_leave_server_spans_their_light_ending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An app that imports SQLAlchemy (or psycopg, Redis) gets instrument_libraries' database
    # metrics processor beside obskit's: server spans still go straight to the export queue.
    import sqlalchemy  # noqa: F401  # the processor is added at configure() or at this import

    from obskit._core import state as _state
    from obskit._web import serverspan
    from obskit._web.libraries import _DatabaseMetrics

    monkeypatch.delenv("OBSKIT_INSTRUMENT_LIBRARIES", raising=False)
    obskit.configure(
        service_name="svc", traces_exporter="console", metrics_exporter="none", logs_exporter="none"
    )
    tracer = _state.STATE.tracer
    kinds = [type(p) for p in tracer.span_processor._span_processors]
    assert _DatabaseMetrics in kinds
    span = start_server_span(tracer, "GET /", Context(), {"http.request.method": "GET"})
    assert serverspan._last_plan is not None
    assert span._ender is not None  # type: ignore[attr-defined]
    span.end()


def test_add_link_with_no_context_is_ignored_as_by_the_sdk() -> None:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = start_server_span(provider.get_tracer("t"), "GET", None, {})
    span.add_link(None)  # type: ignore[arg-type]
    span.end()
    [exported] = exporter.get_finished_spans()
    assert exported.links == ()


def test_a_processor_added_later_is_told_of_the_spans_that_start_after() -> None:
    """The light path skips on_start while every processor ignores it, and notices a new one."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from obskit._export.pipeline import CountingSpanProcessor

    class Starts(SpanProcessor):
        def __init__(self) -> None:
            self.started: list[str] = []

            self.ended: list[str] = []

        def on_start(self, span: Any, parent_context: Context | None = None) -> None:
            self.started.append(span.name)

        def on_end(self, span: Any) -> None:
            self.ended.append(span.name)

    # obskit's sampler at the default ratio: root spans take the light path
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(1.0)), shutdown_on_exit=False)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(CountingSpanProcessor(BatchSpanProcessor(exporter), 2048))
    tracer = provider.get_tracer("t")
    first = start_server_span(tracer, "GET /a", Context(), {})
    assert first._ender is not None  # type: ignore[attr-defined]  # straight into the batch queue
    first.end()
    starts = Starts()
    provider.add_span_processor(starts)
    second = start_server_span(tracer, "GET /b", Context(), {})
    assert second._ender is None  # type: ignore[attr-defined]  # two processors: the fan-out
    second.end()
    assert starts.started == ["GET /b"]
    assert starts.ended == ["GET /b"]
    provider.force_flush()
    assert [span.name for span in exporter.get_finished_spans()] == ["GET /a", "GET /b"]
    provider.shutdown()
