"""trace_operation: spans around functions and blocks (promises 1, 2 and 9)."""

from __future__ import annotations

import asyncio
import inspect
import random
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

import obskit
from obskit import trace_operation
from obskit._core import errors as _errors
from obskit._core import state as _state
from obskit._recording import tracing as _tracing
from obskit.testing import Capture, capture

SLEEP = 0.1
SLEEP_NS = 100_000_000


def _duration_ns(span: ReadableSpan) -> int:
    assert span.start_time is not None
    assert span.end_time is not None
    return span.end_time - span.start_time


def _raise_here(exc: BaseException, where: dict[str, Any]) -> None:
    where["line"] = sys._getframe().f_lineno + 1
    raise exc


def _assert_error_span(span: ReadableSpan, error: BaseException) -> None:
    assert span.status.status_code is StatusCode.ERROR
    assert type(error).__name__ in (span.status.description or "")
    events = [e for e in span.events if e.name == "exception"]
    assert len(events) == 1
    attributes = dict(events[0].attributes or {})
    assert attributes["exception.type"].split(".")[-1] == type(error).__qualname__.split(".")[-1]
    assert attributes["exception.message"] == str(error)


def _current_span_id() -> int:
    return trace.get_current_span().get_span_context().span_id


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


# -- decorator forms and names -------------------------------------------------------------------


def test_decorator_without_parentheses_names_span_after_qualname(obskit_capture: Capture) -> None:
    @trace_operation
    def plain() -> str:
        return "r"

    assert plain() == "r"
    span = obskit_capture.assert_span(plain.__qualname__, status="ok")
    assert span.name.endswith("test_decorator_without_parentheses_names_span_after_qualname.<locals>.plain")


def test_decorator_with_empty_parentheses_names_span_after_qualname(obskit_capture: Capture) -> None:
    @trace_operation()
    def plain() -> str:
        return "r"

    assert plain() == "r"
    obskit_capture.assert_span(plain.__qualname__, status="ok")


def test_decorator_with_explicit_name_uses_that_name(obskit_capture: Capture) -> None:
    @trace_operation("load.users")
    def plain() -> int:
        return 1

    plain()
    assert [s.name for s in obskit_capture.spans()] == ["load.users"]


def test_each_call_makes_its_own_span(obskit_capture: Capture) -> None:
    @trace_operation("each")
    def plain(x: int) -> int:
        return x

    for i in range(3):
        plain(i)
    spans = obskit_capture.spans("each")
    assert len(spans) == 3
    assert len({s.context.span_id for s in spans}) == 3


# -- context manager ----------------------------------------------------------------------------------


def test_with_block_yields_the_current_recording_span(obskit_capture: Capture) -> None:
    with trace_operation("block", attributes={"k": "v"}) as span:
        assert span.is_recording()
        assert trace.get_current_span() is span
    assert trace.get_current_span() is not span
    finished = obskit_capture.assert_span("block", status="ok", k="v")
    assert finished.context.span_id == span.get_span_context().span_id


async def test_async_with_block_yields_the_current_recording_span(obskit_capture: Capture) -> None:
    async with trace_operation("ablock") as span:
        await asyncio.sleep(0)
        assert span.is_recording()
        assert trace.get_current_span() is span
    obskit_capture.assert_span("ablock", status="ok")


def test_with_block_exception_propagates_and_marks_span_error(obskit_capture: Capture) -> None:
    error = ValueError("bad block")
    with pytest.raises(ValueError, match="bad block") as info, trace_operation("failing-block"):
        raise error
    assert info.value is error
    _assert_error_span(obskit_capture.spans("failing-block")[0], error)


def test_with_block_needs_a_name() -> None:
    with pytest.raises(TypeError, match="needs a name"), trace_operation():
        pass


def test_with_block_yields_invalid_span_without_tracer() -> None:
    assert _state.STATE.tracer is None
    with trace_operation("nothing") as span:
        assert span is trace.INVALID_SPAN
        assert not trace.get_current_span().get_span_context().is_valid


async def test_async_with_block_yields_invalid_span_without_tracer() -> None:
    assert _state.STATE.tracer is None
    async with trace_operation("nothing") as span:
        assert span is trace.INVALID_SPAN


def test_same_operation_object_can_be_entered_nested_and_repeatedly(obskit_capture: Capture) -> None:
    op = trace_operation("reused")
    with op as outer:
        with op as inner:
            assert inner is not outer
            assert trace.get_current_span() is inner
        assert trace.get_current_span() is outer
    with op:
        pass
    spans = obskit_capture.spans("reused")
    assert len(spans) == 3
    by_id = {s.context.span_id: s for s in spans}
    assert _parent_id(by_id[inner.get_span_context().span_id]) == outer.get_span_context().span_id


def test_inline_block_without_attributes_is_built_once_per_name() -> None:
    # ``with trace_operation("x"):`` written inline runs trace_operation() on every pass.
    assert trace_operation("inline-once") is trace_operation("inline-once")
    assert trace_operation("inline-once") is not trace_operation("inline-other")
    assert trace_operation("inline-once", attributes={"k": 1}) is not trace_operation("inline-once")
    assert trace_operation("inline-once", record_args=True) is not trace_operation("inline-once")


def test_blocks_exited_out_of_order_each_end_their_own_span(obskit_capture: Capture) -> None:
    from obskit._core.wrapping import BLOCKS

    first, second, third = trace_operation("first"), trace_operation("second"), trace_operation("third")
    error = ValueError("second failed")
    spans = [first.__enter__(), second.__enter__(), third.__enter__()]
    second.__exit__(ValueError, error, None)  # the middle one first, as an ExitStack mishandled might
    third.__exit__(None, None, None)
    third.__exit__(None, None, None)  # a second exit finds nothing of its own left to end
    first.__exit__(None, None, None)
    assert BLOCKS.get() is None
    ended = {s.name: s for s in obskit_capture.spans()}
    assert sorted(ended) == ["first", "second", "third"]
    for span in spans:
        assert ended[span.name].context.span_id == span.get_span_context().span_id  # type: ignore[attr-defined]
    _assert_error_span(ended["second"], error)
    assert ended["first"].status.status_code is StatusCode.OK
    assert ended["third"].status.status_code is StatusCode.OK


def test_one_inline_block_in_many_threads_ends_each_threads_own_span(obskit_capture: Capture) -> None:
    barrier = threading.Barrier(4)

    def work(index: int) -> int:
        with trace_operation("threaded-block") as span:
            barrier.wait()  # every thread is inside the one shared block at once
            assert trace.get_current_span() is span
            span.set_attribute("index", index)
            return span.get_span_context().span_id

    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(work, range(4)))
    spans = obskit_capture.spans("threaded-block")
    assert sorted(s.context.span_id for s in spans) == sorted(ids)
    assert sorted(dict(s.attributes or {})["index"] for s in spans) == [0, 1, 2, 3]
    assert all(s.parent is None and s.status.status_code is StatusCode.OK for s in spans)


@pytest.mark.usefixtures("swallow_internal_errors")
def test_a_block_whose_span_cannot_be_ended_runs_and_leaves_the_context_as_it_was(
    obskit_capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.sdk.trace import Span as SdkSpan

    ended: list[str] = []
    original_end = SdkSpan.end

    def broken_status(self: SdkSpan, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("set_status broke")

    def end(self: SdkSpan, *args: Any, **kwargs: Any) -> None:
        ended.append(self.name)
        original_end(self, *args, **kwargs)

    monkeypatch.setattr(SdkSpan, "set_status", broken_status)
    monkeypatch.setattr(SdkSpan, "end", end)
    with trace_operation("status-broken") as span:
        inside = trace.get_current_span()
    assert inside is span
    assert ended == ["status-broken"]  # ended all the same
    assert not trace.get_current_span().get_span_context().is_valid

    def broken_end(self: SdkSpan, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("end broke")

    monkeypatch.setattr(SdkSpan, "end", broken_end)
    with trace_operation("end-broken"):
        pass
    assert not trace.get_current_span().get_span_context().is_valid


def test_block_attributes_are_those_given_when_the_block_was_made(obskit_capture: Capture) -> None:
    attributes: dict[str, Any] = {"region": "eu"}
    block = trace_operation("made-with", attributes=attributes)
    attributes["region"] = "us"
    with block:
        pass
    with trace_operation("pairs", attributes=[("k", "v")]):  # type: ignore[arg-type]
        pass
    obskit_capture.assert_span("made-with", region="eu")
    obskit_capture.assert_span("pairs", k="v")


def test_with_block_inside_a_closed_generator_ends_ok(obskit_capture: Capture) -> None:
    def numbers() -> Any:
        with trace_operation("inside-gen"):
            yield 1
            yield 2

    gen = numbers()
    assert next(gen) == 1
    gen.close()
    obskit_capture.assert_span("inside-gen", status="ok")


# -- kinds of functions: results, status, errors -------------------------------------------------------


def test_sync_function_result_unchanged_and_span_ok(obskit_capture: Capture) -> None:
    marker = object()

    @trace_operation("sync")
    def f(x: object) -> object:
        assert trace.get_current_span().is_recording()
        return x

    assert f(marker) is marker
    span = obskit_capture.assert_span("sync", status="ok")
    assert not [e for e in span.events if e.name == "exception"]


def test_sync_function_exception_same_object_traceback_and_error_span(obskit_capture: Capture) -> None:
    error = ValueError("sync failure")
    where: dict[str, Any] = {}

    @trace_operation("sync-fail")
    def f() -> None:
        _raise_here(error, where)

    with pytest.raises(ValueError, match="sync failure") as info:
        f()
    assert info.value is error
    last = traceback.extract_tb(info.value.__traceback__)[-1]
    assert (last.name, last.lineno) == ("_raise_here", where["line"])
    _assert_error_span(obskit_capture.spans("sync-fail")[0], error)


async def test_async_function_result_unchanged_and_span_ok(obskit_capture: Capture) -> None:
    @trace_operation("async")
    async def f(x: int) -> dict[str, int]:
        await asyncio.sleep(0)
        return {"x": x}

    assert await f(3) == {"x": 3}
    obskit_capture.assert_span("async", status="ok")


async def test_async_function_exception_same_object_traceback_and_error_span(obskit_capture: Capture) -> None:
    error = KeyError("async failure")
    where: dict[str, Any] = {}

    @trace_operation("async-fail")
    async def f() -> None:
        await asyncio.sleep(0)
        _raise_here(error, where)

    with pytest.raises(KeyError) as info:
        await f()
    assert info.value is error
    last = traceback.extract_tb(info.value.__traceback__)[-1]
    assert (last.name, last.lineno) == ("_raise_here", where["line"])
    _assert_error_span(obskit_capture.spans("async-fail")[0], error)


async def test_async_function_span_lasts_at_least_its_sleep(obskit_capture: Capture) -> None:
    @trace_operation("slow-async")
    async def slow() -> str:
        await asyncio.sleep(SLEEP)
        return "done"

    assert await slow() == "done"
    assert _duration_ns(obskit_capture.spans("slow-async")[0]) >= SLEEP_NS


def test_sync_function_span_lasts_at_least_its_sleep(obskit_capture: Capture) -> None:
    @trace_operation("slow-sync")
    def slow() -> None:
        time.sleep(SLEEP)

    slow()
    assert _duration_ns(obskit_capture.spans("slow-sync")[0]) >= SLEEP_NS


def test_generator_span_covers_whole_iteration(obskit_capture: Capture) -> None:
    @trace_operation("slow-gen")
    def slow() -> Any:
        for i in range(4):
            time.sleep(SLEEP / 4)
            yield i

    gen = slow()
    assert next(gen) == 0
    assert obskit_capture.spans("slow-gen") == []  # still running
    assert list(gen) == [1, 2, 3]
    span = obskit_capture.assert_span("slow-gen", status="ok")
    assert _duration_ns(span) >= SLEEP_NS


async def test_async_generator_span_covers_whole_iteration(obskit_capture: Capture) -> None:
    @trace_operation("slow-agen")
    async def slow() -> Any:
        for i in range(4):
            await asyncio.sleep(SLEEP / 4)
            yield i

    items = [i async for i in slow()]
    assert items == [0, 1, 2, 3]
    span = obskit_capture.assert_span("slow-agen", status="ok")
    assert _duration_ns(span) >= SLEEP_NS


def test_generator_error_marks_span_error_and_propagates_same_object(obskit_capture: Capture) -> None:
    error = RuntimeError("gen failure")

    @trace_operation("gen-fail")
    def broken() -> Any:
        yield 1
        raise error

    gen = broken()
    assert next(gen) == 1
    with pytest.raises(RuntimeError) as info:
        next(gen)
    assert info.value is error
    _assert_error_span(obskit_capture.spans("gen-fail")[0], error)


def test_generator_send_throw_and_return_value_pass_through(obskit_capture: Capture) -> None:
    @trace_operation("echo-gen")
    def echo() -> Any:
        value = yield "ready"
        while value != "stop":
            try:
                value = yield ("echo", value)
            except ValueError as exc:
                value = yield ("caught", exc)
        return "result"

    def consumer(inner: Any) -> Any:
        return (yield from inner)

    gen = consumer(echo())
    assert next(gen) == "ready"
    marker = object()
    assert gen.send(marker) == ("echo", marker)
    error = ValueError("thrown in")
    tag, caught = gen.throw(error)
    assert tag == "caught"
    assert caught is error
    with pytest.raises(StopIteration) as info:
        gen.send("stop")
    assert info.value.value == "result"
    obskit_capture.assert_span("echo-gen", status="ok")


def test_generator_throw_unhandled_marks_span_error(obskit_capture: Capture) -> None:
    @trace_operation("throw-gen")
    def numbers() -> Any:
        yield 1
        yield 2

    gen = numbers()
    next(gen)
    error = TimeoutError("stop now")
    with pytest.raises(TimeoutError) as info:
        gen.throw(error)
    assert info.value is error
    _assert_error_span(obskit_capture.spans("throw-gen")[0], error)


def test_generator_close_ends_span_ok_not_error(obskit_capture: Capture) -> None:
    @trace_operation("closed-gen")
    def numbers() -> Any:
        yield 1
        yield 2

    gen = numbers()
    next(gen)
    gen.close()
    span = obskit_capture.assert_span("closed-gen", status="ok")
    assert not span.events


def test_generator_break_in_for_loop_ends_span_ok(obskit_capture: Capture) -> None:
    @trace_operation("broken-loop")
    def numbers() -> Any:
        yield from range(100)

    for i in numbers():
        if i == 3:
            break
    obskit_capture.assert_span("broken-loop", status="ok")


async def test_async_generator_asend_athrow_pass_through(obskit_capture: Capture) -> None:
    @trace_operation("echo-agen")
    async def echo() -> Any:
        value = yield "ready"
        while True:
            try:
                value = yield ("echo", value)
            except ValueError as exc:
                value = yield ("caught", exc)

    agen = echo()
    assert await agen.asend(None) == "ready"
    marker = object()
    assert await agen.asend(marker) == ("echo", marker)
    error = ValueError("in")
    tag, caught = await agen.athrow(error)
    assert tag == "caught"
    assert caught is error
    assert await agen.asend(1) == ("echo", 1)
    await agen.aclose()
    obskit_capture.assert_span("echo-agen", status="ok")


async def test_async_generator_athrow_unhandled_marks_span_error(obskit_capture: Capture) -> None:
    @trace_operation("athrow-agen")
    async def numbers() -> Any:
        yield 1
        yield 2

    agen = numbers()
    await agen.__anext__()
    error = ConnectionError("gone")
    with pytest.raises(ConnectionError) as info:
        await agen.athrow(error)
    assert info.value is error
    _assert_error_span(obskit_capture.spans("athrow-agen")[0], error)


async def test_async_generator_aclose_ends_span_ok(obskit_capture: Capture) -> None:
    @trace_operation("closed-agen")
    async def numbers() -> Any:
        yield 1
        yield 2

    agen = numbers()
    await agen.__anext__()
    await agen.aclose()
    obskit_capture.assert_span("closed-agen", status="ok")


async def test_async_generator_error_marks_span_error(obskit_capture: Capture) -> None:
    error = ArithmeticError("agen failure")

    @trace_operation("agen-fail")
    async def broken() -> Any:
        yield 1
        raise error

    with pytest.raises(ArithmeticError) as info:
        async for _ in broken():
            pass
    assert info.value is error
    _assert_error_span(obskit_capture.spans("agen-fail")[0], error)


# -- methods, classmethods, staticmethods ---------------------------------------------------------------


class Service:
    factor = 10

    @trace_operation
    def method(self, x: int) -> int:
        return x * self.factor

    @trace_operation
    async def amethod(self, x: int) -> int:
        await asyncio.sleep(0)
        return x + self.factor

    @trace_operation
    def gen_method(self, n: int) -> Any:
        yield from range(n)

    @classmethod
    @trace_operation
    def cls_below(cls, x: int) -> tuple[type, int]:
        return cls, x

    @trace_operation
    @classmethod
    def cls_above(cls, x: int) -> tuple[type, int]:
        return cls, x

    @trace_operation("named.classmethod")
    @classmethod
    async def acls_above(cls, x: int) -> tuple[type, int]:
        await asyncio.sleep(0)
        return cls, x

    @staticmethod
    @trace_operation
    def static_below(x: int) -> int:
        return -x

    @trace_operation
    @staticmethod
    def static_above(x: int) -> int:
        return -x

    @trace_operation()
    @staticmethod
    async def astatic_above(x: int) -> int:
        await asyncio.sleep(0)
        return -x


class SubService(Service):
    factor = 100


async def test_methods_return_correct_values_and_spans_named_after_qualname(obskit_capture: Capture) -> None:
    svc = SubService()
    assert svc.method(2) == 200
    assert await svc.amethod(2) == 102
    assert list(svc.gen_method(3)) == [0, 1, 2]
    assert SubService.cls_below(1) == (SubService, 1)
    assert svc.cls_above(2) == (SubService, 2)
    assert await SubService.acls_above(3) == (SubService, 3)
    assert Service.static_below(4) == -4
    assert svc.static_above(5) == -5
    assert await Service.astatic_above(6) == -6

    names = sorted(s.name for s in obskit_capture.spans())
    assert names == sorted(
        [
            "Service.method",
            "Service.amethod",
            "Service.gen_method",
            "Service.cls_below",
            "Service.cls_above",
            "named.classmethod",
            "Service.static_below",
            "Service.static_above",
            "Service.astatic_above",
        ]
    )
    assert all(s.status.status_code is StatusCode.OK for s in obskit_capture.spans())


def test_method_decorators_keep_descriptor_types_and_inspect_results() -> None:
    assert isinstance(Service.__dict__["cls_above"], classmethod)
    assert isinstance(Service.__dict__["static_above"], staticmethod)
    assert isinstance(Service.__dict__["acls_above"], classmethod)
    assert isinstance(Service.__dict__["astatic_above"], staticmethod)
    assert inspect.iscoroutinefunction(Service.amethod)
    assert inspect.iscoroutinefunction(Service.acls_above)
    assert inspect.iscoroutinefunction(Service.astatic_above)
    assert inspect.isgeneratorfunction(Service.gen_method)
    assert not inspect.iscoroutinefunction(Service.cls_above)
    assert list(inspect.signature(Service().method).parameters) == ["x"]
    assert list(inspect.signature(Service.cls_above).parameters) == ["x"]
    assert list(inspect.signature(Service.cls_below).parameters) == ["x"]
    assert list(inspect.signature(Service.static_above).parameters) == ["x"]
    assert Service.static_below.__name__ == "static_below"
    assert Service.cls_above.__doc__ is None


def test_method_errors_propagate_and_mark_span_error(obskit_capture: Capture) -> None:
    error = ValueError("method")

    class Broken:
        @trace_operation
        @classmethod
        def fail(cls) -> None:
            raise error

    with pytest.raises(ValueError, match="method") as info:
        Broken.fail()
    assert info.value is error
    _assert_error_span(obskit_capture.spans()[0], error)


# -- current span and parent/child links ---------------------------------------------------------------


def test_nested_decorated_calls_link_parent_and_child(obskit_capture: Capture) -> None:
    @trace_operation("inner")
    def inner() -> int:
        return _current_span_id()

    @trace_operation("outer")
    def outer() -> tuple[int, int]:
        return _current_span_id(), inner()

    with trace_operation("root") as root:
        outer_id, inner_id = outer()
    spans = {s.name: s for s in obskit_capture.spans()}
    assert spans["outer"].context.span_id == outer_id
    assert spans["inner"].context.span_id == inner_id
    assert _parent_id(spans["inner"]) == outer_id
    assert _parent_id(spans["outer"]) == root.get_span_context().span_id
    assert spans["root"].parent is None
    assert len({s.context.trace_id for s in spans.values()}) == 1


def test_caller_does_not_see_suspended_generator_span_as_current(obskit_capture: Capture) -> None:
    inside: list[int] = []

    @trace_operation("child")
    def child() -> None:
        pass

    @trace_operation("gen")
    def numbers() -> Any:
        for i in range(3):
            inside.append(_current_span_id())
            child()
            yield i

    with trace_operation("caller") as caller:
        caller_id = caller.get_span_context().span_id
        gen = numbers()
        for _ in gen:
            assert _current_span_id() == caller_id
            child()
        assert _current_span_id() == caller_id
    assert not trace.get_current_span().get_span_context().is_valid

    gen_span = obskit_capture.spans("gen")[0]
    assert inside == [gen_span.context.span_id] * 3
    assert _parent_id(gen_span) == caller_id
    children = obskit_capture.spans("child")
    assert sorted(_parent_id(c) for c in children) == sorted([gen_span.context.span_id] * 3 + [caller_id] * 3)


def test_abandoned_generator_leaves_no_span_current(obskit_capture: Capture) -> None:
    @trace_operation("abandoned")
    def numbers() -> Any:
        yield from range(10)

    gen = numbers()
    next(gen)
    assert not trace.get_current_span().get_span_context().is_valid
    del gen
    assert not trace.get_current_span().get_span_context().is_valid
    obskit_capture.assert_span("abandoned", status="ok")


async def test_caller_does_not_see_suspended_async_generator_span_as_current(obskit_capture: Capture) -> None:
    inside: list[int] = []

    @trace_operation("agen")
    async def numbers() -> Any:
        for i in range(3):
            await asyncio.sleep(0)
            inside.append(_current_span_id())
            yield i

    async with trace_operation("caller") as caller:
        caller_id = caller.get_span_context().span_id
        async for _ in numbers():
            assert _current_span_id() == caller_id
    agen_span = obskit_capture.spans("agen")[0]
    assert inside == [agen_span.context.span_id] * 3
    assert _parent_id(agen_span) == caller_id


async def test_concurrent_tasks_each_get_their_own_parent(obskit_capture: Capture) -> None:
    rng = random.Random(1234)
    delays = [rng.uniform(0, 0.01) for _ in range(50)]

    @trace_operation("task.inner", record_args=True)
    async def inner(i: int) -> int:
        await asyncio.sleep(delays[i])
        return i

    @trace_operation("task.agen", record_args=True)
    async def stream(i: int) -> Any:
        for _ in range(2):
            await asyncio.sleep(delays[-i - 1])
            yield await inner(i)

    @trace_operation("task.outer", record_args=True)
    async def outer(i: int) -> list[int]:
        await asyncio.sleep(delays[-i - 1])
        first = await inner(i)
        rest = [x async for x in stream(i)]
        return [first, *rest]

    results = await asyncio.gather(*(outer(i) for i in range(50)))
    assert results == [[i, i, i] for i in range(50)]

    outers = {s.attributes["code.args.i"]: s for s in obskit_capture.spans("task.outer")}
    streams = {s.attributes["code.args.i"]: s for s in obskit_capture.spans("task.agen")}
    assert len(outers) == len(streams) == 50
    for span in obskit_capture.spans("task.inner"):
        i = span.attributes["code.args.i"]
        assert _parent_id(span) in (outers[i].context.span_id, streams[i].context.span_id)
    assert len(obskit_capture.spans("task.inner")) == 150
    for i, span in streams.items():
        assert _parent_id(span) == outers[i].context.span_id
    assert all(s.parent is None for s in outers.values())
    assert len({s.context.trace_id for s in outers.values()}) == 50


def test_concurrent_threads_each_get_their_own_parent(obskit_capture: Capture) -> None:
    barrier = threading.Barrier(8)

    @trace_operation("thread.inner", record_args=True)
    def inner(i: int) -> int:
        return i

    @trace_operation("thread.outer", record_args=True)
    def outer(i: int) -> int:
        barrier.wait(timeout=10)
        return inner(i)

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(outer, range(8))) == list(range(8))
    outers = {s.attributes["code.args.i"]: s for s in obskit_capture.spans("thread.outer")}
    for span in obskit_capture.spans("thread.inner"):
        assert _parent_id(span) == outers[span.attributes["code.args.i"]].context.span_id


# -- attributes and redaction ----------------------------------------------------------------------------


def test_static_attributes_are_set_and_non_primitives_converted(obskit_capture: Capture) -> None:
    @trace_operation(
        "attrs",
        attributes={
            "db.system": "postgresql",
            "retries": 3,
            "ratio": 0.5,
            "flag": True,
            "tags": ["a", "b"],
            "obj": {"x": 1},
            "skipped": None,
        },
    )
    def f() -> None:
        pass

    f()
    span = obskit_capture.spans("attrs")[0]
    attributes = dict(span.attributes or {})
    assert attributes["db.system"] == "postgresql"
    assert attributes["retries"] == 3
    assert attributes["ratio"] == 0.5
    assert attributes["flag"] is True
    assert tuple(attributes["tags"]) == ("a", "b")
    assert attributes["obj"] == str({"x": 1})
    assert "skipped" not in attributes


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "db_password",
        "token",
        "access-token",
        "api_key",
        "Authorization",
        "client_secret",
        "cookie",
        "connection_string",
    ],
)
def test_sensitive_static_attribute_keys_are_redacted_from_the_start(
    obskit_capture: Capture, key: str
) -> None:
    seen: dict[str, Any] = {}

    @trace_operation("secret-attrs", attributes={key: "s3cr3t", "user": "alice"})
    def f() -> None:
        # the live span already carries the redacted value, before any exporter sees it
        seen.update(trace.get_current_span().attributes)  # type: ignore[attr-defined]

    f()
    assert seen[key] == "[REDACTED]"
    span = obskit_capture.assert_span("secret-attrs", **{key: "[REDACTED]", "user": "alice"})
    assert "s3cr3t" not in repr(dict(span.attributes or {}))


def test_sensitive_attributes_in_with_block_are_redacted(obskit_capture: Capture) -> None:
    with trace_operation("block-secret", attributes={"api_key": "k", "region": "eu"}) as span:
        assert span.attributes["api_key"] == "[REDACTED]"  # type: ignore[attr-defined]
    obskit_capture.assert_span("block-secret", api_key="[REDACTED]", region="eu")


def test_record_args_sets_code_args_attributes_redacted_and_without_self(obskit_capture: Capture) -> None:
    seen: dict[str, Any] = {}

    class Client:
        @trace_operation("login", record_args=True)
        def login(self, user: str, password: str, retries: int = 1, *, options: Any = None) -> str:
            seen.update(trace.get_current_span().attributes)  # type: ignore[attr-defined]
            return user

    assert Client().login("alice", "hunter2", options={"a": 1}) == "alice"
    assert seen["code.args.password"] == "[REDACTED]"
    span = obskit_capture.spans("login")[0]
    attributes = dict(span.attributes or {})
    assert attributes["code.args.user"] == "alice"
    assert attributes["code.args.password"] == "[REDACTED]"
    assert attributes["code.args.options"] == repr({"a": 1})
    assert "code.args.self" not in attributes
    assert "code.args.retries" not in attributes  # defaults that were not passed are not recorded
    assert "hunter2" not in repr(attributes)


def test_record_args_skips_cls_on_classmethods_in_both_orders(obskit_capture: Capture) -> None:
    class Repo:
        @trace_operation("above", record_args=True)
        @classmethod
        def above(cls, api_key: str, n: int) -> int:
            return n

        @classmethod
        @trace_operation("below", record_args=True)
        def below(cls, token: str, n: int) -> int:
            return n

    assert Repo.above("k", 1) == 1
    assert Repo.below("t", n=2) == 2
    above = dict(obskit_capture.spans("above")[0].attributes or {})
    below = dict(obskit_capture.spans("below")[0].attributes or {})
    assert above == {"code.args.api_key": "[REDACTED]", "code.args.n": 1}
    assert below == {"code.args.token": "[REDACTED]", "code.args.n": 2}


def test_record_args_truncates_long_values(obskit_capture: Capture) -> None:
    @trace_operation("long", record_args=True)
    def f(text: str, items: list[int]) -> int:
        return len(text)

    assert f("x" * 10_000, list(range(10_000))) == 10_000
    attributes = dict(obskit_capture.spans("long")[0].attributes or {})
    assert attributes["code.args.text"] == "x" * 256
    assert len(attributes["code.args.items"]) == 256


def test_record_args_with_static_attributes_and_generators(obskit_capture: Capture) -> None:
    @trace_operation("gen-args", attributes={"kind": "gen"}, record_args=True)
    def numbers(n: int) -> Any:
        yield from range(n)

    assert list(numbers(2)) == [0, 1]
    obskit_capture.assert_span("gen-args", status="ok", kind="gen", **{"code.args.n": 2})


def test_record_args_with_wrong_arguments_raises_the_functions_own_type_error() -> None:
    @trace_operation("wrong", record_args=True)
    def f(a: int) -> int:
        return a

    def call_plain() -> None:
        f.__wrapped__(1, 2)  # type: ignore[attr-defined]

    with pytest.raises(TypeError) as expected:
        call_plain()
    with capture() as cap, pytest.raises(TypeError) as info:
        f(1, 2)  # type: ignore[call-arg]
    assert str(info.value) == str(expected.value)
    _assert_error_span(cap.spans("wrong")[0], info.value)


# -- no tracer --------------------------------------------------------------------------------------------


def test_without_tracer_decorated_functions_work_and_make_no_span() -> None:
    assert _state.STATE.tracer is None

    @trace_operation
    def f(x: int) -> bool:
        return trace.get_current_span().get_span_context().is_valid

    @trace_operation("a")
    async def af() -> bool:
        return trace.get_current_span().get_span_context().is_valid

    @trace_operation
    def gen() -> Any:
        value = yield 1
        yield value

    assert f(1) is False
    assert asyncio.run(af()) is False
    g = gen()
    assert next(g) == 1
    assert g.send("sent") == "sent"

    error = ValueError("x")

    @trace_operation
    def fail() -> None:
        raise error

    with pytest.raises(ValueError, match="x") as info:
        fail()
    assert info.value is error


def test_traces_exporter_none_means_no_span() -> None:
    obskit.configure(traces_exporter="none", metrics_exporter="none", logs_exporter="none")
    assert _state.STATE.tracer is None

    @trace_operation("none")
    def f() -> bool:
        return trace.get_current_span().get_span_context().is_valid

    assert f() is False
    with trace_operation("none") as span:
        assert span is trace.INVALID_SPAN


def test_decorated_before_capture_records_inside_capture() -> None:
    @trace_operation("late")
    def f() -> int:
        return 1

    f()
    with capture() as cap:
        f()
    assert len(cap.spans("late")) == 1


# -- telemetry failures never reach user code -------------------------------------------------------------


def _break_start_span(monkeypatch: pytest.MonkeyPatch) -> None:
    def start_span(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tracer is broken")

    assert _state.STATE.tracer is not None
    monkeypatch.setattr(_state.STATE.tracer, "start_span", start_span)


@pytest.mark.usefixtures("swallow_internal_errors")
async def test_broken_tracer_leaves_results_and_exceptions_intact(
    obskit_capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    _break_start_span(monkeypatch)
    marker = object()
    error = ValueError("user")

    @trace_operation
    def f() -> object:
        return marker

    @trace_operation
    async def af() -> object:
        await asyncio.sleep(0)
        return marker

    @trace_operation
    def gen() -> Any:
        value = yield 1
        return value

    @trace_operation
    async def agen() -> Any:
        value = yield 1
        yield value

    @trace_operation
    def fail() -> None:
        raise error

    assert f() is marker
    assert await af() is marker
    g = gen()
    next(g)
    with pytest.raises(StopIteration) as stop:
        g.send(marker)
    assert stop.value.value is marker
    ag = agen()
    await ag.asend(None)
    assert await ag.asend(marker) is marker
    with pytest.raises(ValueError, match="user") as info:
        fail()
    assert info.value is error
    with trace_operation("block") as span:
        assert span is trace.INVALID_SPAN
    assert obskit_capture.spans() == []


@pytest.mark.usefixtures("swallow_internal_errors")
def test_broken_span_end_leaves_results_and_exceptions_intact(
    obskit_capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def end_span(span: Any, error: Any) -> None:
        raise RuntimeError("end is broken")

    monkeypatch.setattr(_tracing, "end_span", end_span)
    error = ValueError("user")

    @trace_operation
    def f() -> int:
        return 5

    @trace_operation
    def fail() -> None:
        raise error

    assert f() == 5
    with pytest.raises(ValueError, match="user") as info:
        fail()
    assert info.value is error
    with pytest.raises(ValueError, match="user") as info, trace_operation("block"):
        raise error
    assert info.value is error


@pytest.mark.usefixtures("swallow_internal_errors")
def test_unprintable_exception_still_propagates_unchanged(obskit_capture: Capture) -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str")

    error = Unprintable()

    @trace_operation("unprintable")
    def fail() -> None:
        raise error

    with pytest.raises(Unprintable) as info:
        fail()
    assert info.value is error


def test_broken_tracer_raises_in_obskit_own_suite(
    obskit_capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _errors.RAISE_INTERNAL_ERRORS
    _break_start_span(monkeypatch)

    @trace_operation
    def f() -> int:
        return 1

    with pytest.raises(RuntimeError, match="tracer is broken"):
        f()


async def test_one_shared_block_object_ends_each_tasks_own_span(obskit_capture: Capture) -> None:
    shared = trace_operation("shared_block")

    async def work(delay: float) -> int:
        async with shared as span:
            await asyncio.sleep(delay)
            assert trace.get_current_span() is span
            return span.get_span_context().span_id

    ids = await asyncio.gather(work(0.03), work(0.01), work(0.02))
    spans = obskit_capture.spans("shared_block")
    assert sorted(s.context.span_id for s in spans) == sorted(ids)
    assert all(s.status.status_code is StatusCode.OK for s in spans)


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


@pytest.mark.usefixtures("swallow_internal_errors")
def test_exception_whose_str_fails_still_ends_span_with_error(obskit_capture: Capture) -> None:
    error = _Unprintable()

    @trace_operation("unprintable")
    def fail() -> None:
        raise error

    with pytest.raises(_Unprintable) as info:
        fail()
    assert info.value is error
    span = obskit_capture.assert_span("unprintable", status="ERROR")
    assert span.end_time is not None
