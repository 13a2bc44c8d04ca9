"""The wrapping machinery shared by every obskit decorator (obskit._core.wrapping).

Promise 1: telemetry never raises into user code and never changes a return value, an
exception (same object, same traceback), a signature, ``inspect.iscoroutinefunction`` or the
values sent into generators. These tests drive ``wrap()`` with recording hooks so that each
hook call can be observed, and then check the same promises through the public decorators.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import gc
import inspect
import sys
import traceback
from collections.abc import Callable
from typing import Any

import pytest

import obskit
from obskit._core import errors as _errors
from obskit._core.wrapping import HookedBlock, wrap

ACTIVE: contextvars.ContextVar[Any] = contextvars.ContextVar("test_wrapping_active", default=None)


class Call:
    """The state of one call: what the hooks saw."""

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.args = args
        self.kwargs = kwargs
        self.finished = False
        self.error: BaseException | None = None
        self.result: Any = None
        self.activations = 0


class RecordingHooks:
    """Hooks that remember every call and make its state current in a contextvar."""

    where = "recording hooks"

    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[Call] = []
        self.events: list[str] = []
        self.fail = fail

    def _maybe_fail(self, what: str) -> None:
        if self.fail == what:
            raise RuntimeError(f"hook {what} broke")

    def start(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
        self.events.append("start")
        self._maybe_fail("start")
        call = Call(args, kwargs)
        self.calls.append(call)
        return call

    def activate(self, state: Call) -> Any:
        self.events.append("activate")
        self._maybe_fail("activate")
        state.activations += 1
        return ACTIVE.set(state)

    def deactivate(self, token: Any) -> None:
        self.events.append("deactivate")
        if token is not None:
            ACTIVE.reset(token)
        self._maybe_fail("deactivate")

    def finish(self, state: Call, error: BaseException | None, result: Any = None) -> None:
        self.events.append("finish")
        state.finished = True
        state.error = error
        state.result = result
        self._maybe_fail("finish")


def _raise_here(exc: BaseException, where: dict[str, Any]) -> None:
    """Raise ``exc`` and remember the line that raised it."""
    where["line"] = sys._getframe().f_lineno + 1
    raise exc


def _last_frame(exc: BaseException) -> traceback.FrameSummary:
    return traceback.extract_tb(exc.__traceback__)[-1]


# -- kinds of callables are preserved -------------------------------------------------------------


def sync_fn(a: int, b: str = "x", *rest: int, key: bool = False, **extra: Any) -> str:
    """Sync docstring."""
    return f"{a}{b}"


async def async_fn(a: int, b: str = "x", *, key: bool = False) -> str:
    """Async docstring."""
    return f"{a}{b}"


def gen_fn(n: int, /, step: int = 1) -> Any:
    """Generator docstring."""
    yield from range(0, n, step)


async def agen_fn(n: int, *, step: int = 1) -> Any:
    """Async generator docstring."""
    for i in range(0, n, step):
        yield i


KINDS = [sync_fn, async_fn, gen_fn, agen_fn]
PREDICATES = [
    inspect.iscoroutinefunction,
    inspect.isasyncgenfunction,
    inspect.isgeneratorfunction,
    inspect.isfunction,
]


def _decorators() -> list[tuple[str, Callable[[Any], Any]]]:
    return [
        ("wrap", lambda f: wrap(f, RecordingHooks())),
        ("trace_operation", obskit.trace_operation),
        ("trace_operation()", obskit.trace_operation()),
        ("trace_operation(record_args)", obskit.trace_operation("n", record_args=True)),
        ("track_job", obskit.track_job),
        ("track_job(name)", obskit.track_job("a_job")),
        ("LoggingContext", obskit.LoggingContext(user_id="u")),
    ]


DECORATORS = _decorators()
DECORATOR_IDS = [name for name, _ in DECORATORS]


@pytest.mark.parametrize("func", KINDS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("decorate", [d for _, d in DECORATORS], ids=DECORATOR_IDS)
def test_decorating_keeps_the_kind_of_function_for_inspect(func: Any, decorate: Any) -> None:
    wrapped = decorate(func)
    for predicate in PREDICATES:
        assert predicate(wrapped) == predicate(func), predicate.__name__


@pytest.mark.parametrize("func", KINDS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("decorate", [d for _, d in DECORATORS], ids=DECORATOR_IDS)
def test_decorating_keeps_signature_and_functools_metadata(func: Any, decorate: Any) -> None:
    wrapped = decorate(func)
    assert inspect.signature(wrapped) == inspect.signature(func)
    assert wrapped.__name__ == func.__name__
    assert wrapped.__qualname__ == func.__qualname__
    assert wrapped.__doc__ == func.__doc__
    assert wrapped.__module__ == func.__module__
    assert wrapped.__wrapped__ is func
    assert wrapped.__annotations__ == func.__annotations__


def test_wrap_refuses_a_non_callable_with_type_error() -> None:
    with pytest.raises(TypeError, match="callables"):
        wrap(42, RecordingHooks())  # type: ignore[arg-type]


def test_wrap_of_classmethod_and_staticmethod_objects_returns_the_same_descriptor_kind() -> None:
    hooks = RecordingHooks()

    class Thing:
        def _cm(cls, x: int) -> tuple[Any, int]:
            return cls, x

        def _sm(x: int) -> int:
            return x * 2

        cm = wrap(classmethod(_cm), hooks)
        sm = wrap(staticmethod(_sm), hooks)

    assert isinstance(Thing.__dict__["cm"], classmethod)
    assert isinstance(Thing.__dict__["sm"], staticmethod)
    assert Thing.cm(3) == (Thing, 3)
    assert Thing().cm(4) == (Thing, 4)
    assert Thing.sm(5) == 10
    assert Thing().sm(6) == 12
    assert [c.args for c in hooks.calls] == [(Thing, 3), (Thing, 4), (5,), (6,)]


# -- hook order and what the hooks are told --------------------------------------------------------


def test_sync_call_runs_hooks_in_order_with_args_and_result() -> None:
    hooks = RecordingHooks()
    seen: list[Any] = []

    @functools.partial(wrap, hooks=hooks)
    def add(a: int, b: int = 0) -> int:
        seen.append(ACTIVE.get())
        return a + b

    assert add(1, b=2) == 3
    assert hooks.events == ["start", "activate", "deactivate", "finish"]
    (call,) = hooks.calls
    assert call.args == (1,)
    assert call.kwargs == {"b": 2}
    assert seen == [call]
    assert call.error is None
    assert call.result == 3
    assert ACTIVE.get() is None


def test_sync_call_return_value_is_the_same_object() -> None:
    marker = object()
    assert wrap(lambda: marker, RecordingHooks())() is marker


def test_sync_exception_is_the_same_object_with_original_raise_line_last() -> None:
    hooks = RecordingHooks()
    error = ValueError("boom")
    where: dict[str, Any] = {}
    wrapped = wrap(lambda: _raise_here(error, where), hooks)

    with pytest.raises(ValueError, match="boom") as info:
        wrapped()

    assert info.value is error
    last = _last_frame(info.value)
    assert (last.name, last.lineno) == ("_raise_here", where["line"])
    assert hooks.calls[0].error is error
    assert hooks.events == ["start", "activate", "deactivate", "finish"]
    assert ACTIVE.get() is None


def test_base_exceptions_like_keyboard_interrupt_propagate_and_finish_the_call() -> None:
    hooks = RecordingHooks()
    error = KeyboardInterrupt()

    @functools.partial(wrap, hooks=hooks)
    def interrupted() -> None:
        raise error

    with pytest.raises(KeyboardInterrupt) as info:
        interrupted()
    assert info.value is error
    assert hooks.calls[0].error is error


async def test_coroutine_hooks_run_when_awaited_and_context_is_current_across_awaits() -> None:
    hooks = RecordingHooks()
    seen: list[Any] = []

    @functools.partial(wrap, hooks=hooks)
    async def work(x: int) -> int:
        seen.append(ACTIVE.get())
        await asyncio.sleep(0)
        seen.append(ACTIVE.get())
        return x * 2

    coro = work(21)
    assert hooks.events == []  # nothing happens until the coroutine runs
    assert await coro == 42
    (call,) = hooks.calls
    assert seen == [call, call]
    assert call.result == 42
    assert call.error is None
    assert ACTIVE.get() is None


async def test_coroutine_exception_is_the_same_object_with_original_raise_line_last() -> None:
    hooks = RecordingHooks()
    error = LookupError("missing")
    where: dict[str, Any] = {}

    @functools.partial(wrap, hooks=hooks)
    async def fail() -> None:
        await asyncio.sleep(0)
        _raise_here(error, where)

    with pytest.raises(LookupError) as info:
        await fail()
    assert info.value is error
    last = _last_frame(info.value)
    assert (last.name, last.lineno) == ("_raise_here", where["line"])
    assert hooks.calls[0].error is error


async def test_cancelled_coroutine_propagates_cancellation_and_finishes_the_call() -> None:
    hooks = RecordingHooks()
    started = asyncio.Event()

    @functools.partial(wrap, hooks=hooks)
    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(forever())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert isinstance(hooks.calls[0].error, asyncio.CancelledError)
    assert hooks.calls[0].finished


# -- generators ----------------------------------------------------------------------------------


def test_generator_starts_nothing_until_iterated_and_nothing_when_never_iterated() -> None:
    hooks = RecordingHooks()
    gen = wrap(gen_fn, hooks)(3)
    assert hooks.events == []
    gen.close()
    del gen
    gc.collect()
    assert hooks.events == []


def test_generator_is_current_only_while_its_body_runs() -> None:
    hooks = RecordingHooks()
    inside: list[Any] = []

    @functools.partial(wrap, hooks=hooks)
    def numbers() -> Any:
        for i in range(3):
            inside.append(ACTIVE.get())
            yield i

    outside = []
    gen = numbers()
    for _ in gen:
        outside.append(ACTIVE.get())
    (call,) = hooks.calls
    assert inside == [call, call, call]
    assert outside == [None, None, None]
    assert call.finished
    assert call.error is None
    assert hooks.events.count("activate") == hooks.events.count("deactivate")


def test_generator_send_values_reach_the_body_and_yields_reach_the_caller() -> None:
    hooks = RecordingHooks()
    received: list[Any] = []

    @functools.partial(wrap, hooks=hooks)
    def echo() -> Any:
        value = yield "ready"
        while True:
            received.append(value)
            value = yield ("echo", value)

    gen = echo()
    assert next(gen) == "ready"
    marker = object()
    assert gen.send(1) == ("echo", 1)
    assert gen.send(marker) == ("echo", marker)
    assert next(gen) == ("echo", None)
    assert received == [1, marker, None]
    assert received[1] is marker


def test_generator_throw_reaches_the_body_which_may_handle_it_and_continue() -> None:
    hooks = RecordingHooks()
    caught: list[BaseException] = []

    @functools.partial(wrap, hooks=hooks)
    def resilient() -> Any:
        while True:
            try:
                yield "ok"
            except ValueError as exc:
                caught.append(exc)
                yield "handled"

    gen = resilient()
    assert next(gen) == "ok"
    error = ValueError("into the generator")
    assert gen.throw(error) == "handled"
    assert caught == [error]
    assert caught[0] is error
    assert next(gen) == "ok"
    assert not hooks.calls[0].finished
    gen.close()
    assert hooks.calls[0].finished
    assert hooks.calls[0].error is None


def test_generator_throw_not_handled_propagates_the_same_object_and_fails_the_call() -> None:
    hooks = RecordingHooks()
    gen = wrap(gen_fn, hooks)(5)
    assert next(gen) == 0
    error = KeyError("k")
    with pytest.raises(KeyError) as info:
        gen.throw(error)
    assert info.value is error
    assert hooks.calls[0].error is error


def test_generator_return_value_is_preserved_through_yield_from() -> None:
    hooks = RecordingHooks()

    @functools.partial(wrap, hooks=hooks)
    def produce() -> Any:
        yield 1
        yield 2
        return "done"

    def consumer() -> Any:
        result = yield from produce()
        return result

    outer = consumer()
    assert next(outer) == 1
    assert next(outer) == 2
    with pytest.raises(StopIteration) as info:
        next(outer)
    assert info.value.value == "done"
    assert hooks.calls[0].result == "done"
    assert hooks.calls[0].error is None


def test_generator_close_finishes_without_error_and_runs_the_body_cleanup() -> None:
    hooks = RecordingHooks()
    cleanup: list[Any] = []

    @functools.partial(wrap, hooks=hooks)
    def with_cleanup() -> Any:
        try:
            yield 1
            yield 2
        finally:
            cleanup.append(ACTIVE.get())

    gen = with_cleanup()
    assert next(gen) == 1
    gen.close()
    (call,) = hooks.calls
    assert call.finished
    assert call.error is None
    assert cleanup == [call]  # the cleanup code runs with the call current
    assert ACTIVE.get() is None


def test_abandoned_generator_is_finished_when_collected() -> None:
    hooks = RecordingHooks()
    gen = wrap(gen_fn, hooks)(10)
    next(gen)
    del gen
    gc.collect()
    assert hooks.calls[0].finished
    assert hooks.calls[0].error is None


def test_generator_error_in_body_propagates_same_object_with_original_line_last() -> None:
    hooks = RecordingHooks()
    error = ZeroDivisionError("nope")
    where: dict[str, Any] = {}

    @functools.partial(wrap, hooks=hooks)
    def broken() -> Any:
        yield 1
        _raise_here(error, where)

    gen = broken()
    next(gen)
    with pytest.raises(ZeroDivisionError) as info:
        next(gen)
    assert info.value is error
    last = _last_frame(info.value)
    assert (last.name, last.lineno) == ("_raise_here", where["line"])
    assert hooks.calls[0].error is error


def test_generator_called_with_wrong_arguments_raises_on_first_next_and_fails_the_call() -> None:
    hooks = RecordingHooks()
    gen = wrap(gen_fn, hooks)(1, 2, 3)  # wrong arguments: the error appears on first next()
    with pytest.raises(TypeError):
        next(gen)
    assert isinstance(hooks.calls[0].error, TypeError)


# -- async generators ----------------------------------------------------------------------------


async def test_async_generator_is_current_only_while_its_body_runs() -> None:
    hooks = RecordingHooks()
    inside: list[Any] = []

    @functools.partial(wrap, hooks=hooks)
    async def numbers() -> Any:
        for i in range(3):
            inside.append(ACTIVE.get())
            await asyncio.sleep(0)
            inside.append(ACTIVE.get())
            yield i

    outside = []
    async for _ in numbers():
        outside.append(ACTIVE.get())
    (call,) = hooks.calls
    assert inside == [call] * 6
    assert outside == [None] * 3
    assert call.finished
    assert call.error is None


async def test_async_generator_asend_and_athrow_pass_through() -> None:
    hooks = RecordingHooks()
    received: list[Any] = []

    @functools.partial(wrap, hooks=hooks)
    async def echo() -> Any:
        value = yield "ready"
        while True:
            try:
                received.append(value)
                value = yield ("echo", value)
            except ValueError as exc:
                received.append(exc)
                value = yield "handled"

    agen = echo()
    assert await agen.asend(None) == "ready"
    marker = object()
    assert await agen.asend(marker) == ("echo", marker)
    error = ValueError("in")
    assert await agen.athrow(error) == "handled"
    assert await agen.asend(7) == ("echo", 7)
    assert received == [marker, error, 7]
    assert received[0] is marker
    assert received[1] is error
    await agen.aclose()
    assert hooks.calls[0].finished
    assert hooks.calls[0].error is None


async def test_async_generator_athrow_not_handled_propagates_the_same_object() -> None:
    hooks = RecordingHooks()
    agen = wrap(agen_fn, hooks)(3)
    assert await agen.__anext__() == 0
    error = RuntimeError("stop")
    with pytest.raises(RuntimeError) as info:
        await agen.athrow(error)
    assert info.value is error
    assert hooks.calls[0].error is error


async def test_async_generator_aclose_finishes_without_error_and_runs_cleanup() -> None:
    hooks = RecordingHooks()
    cleanup: list[Any] = []

    @functools.partial(wrap, hooks=hooks)
    async def with_cleanup() -> Any:
        try:
            yield 1
            yield 2
        finally:
            await asyncio.sleep(0)
            cleanup.append(ACTIVE.get())

    agen = with_cleanup()
    assert await agen.__anext__() == 1
    await agen.aclose()
    (call,) = hooks.calls
    assert call.finished
    assert call.error is None
    assert cleanup == [call]


async def test_async_generator_error_propagates_same_object_with_original_line_last() -> None:
    hooks = RecordingHooks()
    error = OSError("disk")
    where: dict[str, Any] = {}

    @functools.partial(wrap, hooks=hooks)
    async def broken() -> Any:
        yield 1
        _raise_here(error, where)

    agen = broken()
    await agen.__anext__()
    with pytest.raises(OSError, match="disk") as info:
        await agen.__anext__()
    assert info.value is error
    last = _last_frame(info.value)
    assert (last.name, last.lineno) == ("_raise_here", where["line"])
    assert hooks.calls[0].error is error


# -- failing hooks never reach user code -----------------------------------------------------------

HOOK_NAMES = ["start", "activate", "deactivate", "finish"]


@pytest.mark.usefixtures("swallow_internal_errors")
@pytest.mark.parametrize("broken", HOOK_NAMES)
def test_failing_hook_leaves_sync_result_and_exception_intact(broken: str) -> None:
    hooks = RecordingHooks(fail=broken)
    marker = object()
    assert wrap(lambda: marker, hooks)() is marker

    error = ValueError("user error")
    where: dict[str, Any] = {}
    with pytest.raises(ValueError, match="user error") as info:
        wrap(lambda: _raise_here(error, where), hooks)()
    assert info.value is error
    assert _last_frame(info.value).lineno == where["line"]
    assert ACTIVE.get() is None


@pytest.mark.usefixtures("swallow_internal_errors")
@pytest.mark.parametrize("broken", HOOK_NAMES)
async def test_failing_hook_leaves_coroutine_result_and_exception_intact(broken: str) -> None:
    hooks = RecordingHooks(fail=broken)

    async def ok() -> list[int]:
        await asyncio.sleep(0)
        return [1, 2]

    assert await wrap(ok, hooks)() == [1, 2]

    error = ValueError("user error")

    async def fail() -> None:
        await asyncio.sleep(0)
        raise error

    with pytest.raises(ValueError, match="user error") as info:
        await wrap(fail, hooks)()
    assert info.value is error


@pytest.mark.usefixtures("swallow_internal_errors")
@pytest.mark.parametrize("broken", HOOK_NAMES)
def test_failing_hook_leaves_generator_send_throw_and_return_intact(broken: str) -> None:
    hooks = RecordingHooks(fail=broken)

    def echo() -> Any:
        value = yield "ready"
        while value != "stop":
            try:
                value = yield ("echo", value)
            except ValueError as exc:
                value = yield ("caught", exc)
        return "finished"

    gen = wrap(echo, hooks)()
    assert next(gen) == "ready"
    assert gen.send(5) == ("echo", 5)
    error = ValueError("thrown")
    tag, caught = gen.throw(error)
    assert tag == "caught"
    assert caught is error
    with pytest.raises(StopIteration) as info:
        gen.send("stop")
    assert info.value.value == "finished"


@pytest.mark.usefixtures("swallow_internal_errors")
@pytest.mark.parametrize("broken", HOOK_NAMES)
async def test_failing_hook_leaves_async_generator_asend_and_athrow_intact(broken: str) -> None:
    hooks = RecordingHooks(fail=broken)
    cleaned: list[bool] = []

    async def echo() -> Any:
        try:
            value = yield "ready"
            while True:
                try:
                    value = yield ("echo", value)
                except ValueError as exc:
                    value = yield ("caught", exc)
        finally:
            cleaned.append(True)

    agen = wrap(echo, hooks)()
    assert await agen.asend(None) == "ready"
    assert await agen.asend(5) == ("echo", 5)
    error = ValueError("thrown")
    tag, caught = await agen.athrow(error)
    assert tag == "caught"
    assert caught is error
    assert await agen.asend(6) == ("echo", 6)
    await agen.aclose()
    assert cleaned == [True]


@pytest.mark.usefixtures("swallow_internal_errors")
def test_failing_hook_is_logged_as_an_obskit_warning(caplog: pytest.LogCaptureFixture) -> None:
    hooks = RecordingHooks(fail="finish")
    with caplog.at_level("WARNING", logger="obskit"):
        assert wrap(lambda: 1, hooks)() == 1
    assert any("recording hooks" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("broken", HOOK_NAMES)
def test_failing_hook_raises_in_obskit_own_suite(broken: str) -> None:
    assert _errors.RAISE_INTERNAL_ERRORS
    hooks = RecordingHooks(fail=broken)
    with pytest.raises(RuntimeError, match=f"hook {broken} broke"):
        wrap(lambda: 1, hooks)()


# -- HookedBlock -------------------------------------------------------------------------------------


def test_hooked_block_is_reentrant_and_restores_outer_state() -> None:
    hooks = RecordingHooks()
    block = HookedBlock(hooks, lambda state: state)
    with block as outer:
        assert ACTIVE.get() is outer
        with block as inner:
            assert inner is not outer
            assert ACTIVE.get() is inner
        assert ACTIVE.get() is outer
        assert inner.finished
        assert not outer.finished
    assert ACTIVE.get() is None
    assert outer.finished
    with block as again:
        assert again not in (outer, inner)


def test_hooked_block_exception_propagates_and_is_reported_to_finish() -> None:
    hooks = RecordingHooks()
    error = ValueError("in block")
    with pytest.raises(ValueError, match="in block") as info, HookedBlock(hooks, lambda state: state):
        raise error
    assert info.value is error
    assert hooks.calls[0].error is error


async def test_hooked_block_async_with_makes_state_current() -> None:
    hooks = RecordingHooks()
    async with HookedBlock(hooks, lambda state: state) as state:
        await asyncio.sleep(0)
        assert ACTIVE.get() is state
    assert ACTIVE.get() is None
    assert state.finished
    assert state.error is None


@pytest.mark.usefixtures("swallow_internal_errors")
def test_hooked_block_with_failing_start_still_runs_the_block() -> None:
    hooks = RecordingHooks(fail="start")
    ran = []
    with HookedBlock(hooks, lambda state: state) as value:
        ran.append(value)
    assert ran == [None]


@pytest.mark.usefixtures("swallow_internal_errors")
def test_failing_deactivate_still_finishes_the_call() -> None:
    from obskit._core.wrapping import wrap

    finished: list[Any] = []

    class Hooks:
        where = "test"

        def start(self, args: Any, kwargs: Any) -> str:
            return "state"

        def activate(self, state: str) -> str:
            return "token"

        def deactivate(self, token: str) -> None:
            raise RuntimeError("deactivate broke")

        def finish(self, state: str, error: BaseException | None, result: Any = None) -> None:
            finished.append((state, error, result))

    assert wrap(lambda: 41 + 1, Hooks())() == 42
    assert finished == [("state", None, 42)]


# -- hooks that start a call current (current_on_start) ---------------------------------------------


class CurrentOnStartHooks(RecordingHooks):
    """Hooks whose start(args, kwargs, True) also makes the call current, undone by finish."""

    current_on_start = True

    def start(self, args: tuple[Any, ...], kwargs: dict[str, Any], current: bool = False) -> Any:
        call = super().start(args, kwargs)
        if not current:
            return (call, None)
        self.events.append("current")
        call.activations += 1
        return (call, ACTIVE.set(call))

    def activate(self, state: Any) -> Any:
        return super().activate(state[0])

    def finish(self, state: Any, error: BaseException | None, result: Any = None) -> None:
        call, token = state
        if token is not None:
            ACTIVE.reset(token)
        super().finish(call, error, result)


def test_current_on_start_hooks_make_two_calls_per_sync_call() -> None:
    hooks = CurrentOnStartHooks()
    seen: list[Any] = []
    error = ValueError("user error")

    def body(fail: bool) -> object:
        seen.append(ACTIVE.get())
        if fail:
            raise error
        return seen

    assert wrap(body, hooks)(False) is seen
    with pytest.raises(ValueError, match="user error") as info:
        wrap(body, hooks)(True)
    assert info.value is error
    assert hooks.events == ["start", "current", "finish"] * 2
    assert seen == hooks.calls  # each call current while its body ran
    assert ACTIVE.get() is None
    assert [(c.result, c.error) for c in hooks.calls] == [(seen, None), (None, error)]


async def test_current_on_start_hooks_make_two_calls_per_coroutine_call() -> None:
    hooks = CurrentOnStartHooks()
    seen: list[Any] = []

    async def body() -> int:
        await asyncio.sleep(0)
        seen.append(ACTIVE.get())
        return 7

    assert await wrap(body, hooks)() == 7
    assert hooks.events == ["start", "current", "finish"]
    assert seen == hooks.calls
    assert ACTIVE.get() is None


def test_current_on_start_generators_keep_the_four_hooks() -> None:
    hooks = CurrentOnStartHooks()

    def gen() -> Any:
        yield ACTIVE.get()

    assert list(wrap(gen, hooks)()) == hooks.calls
    assert "current" not in hooks.events
    assert hooks.events.count("activate") == hooks.events.count("deactivate") > 0


@pytest.mark.usefixtures("swallow_internal_errors")
@pytest.mark.parametrize("broken", ["start", "finish"])
def test_failing_current_on_start_hook_leaves_results_and_exceptions_intact(broken: str) -> None:
    hooks = CurrentOnStartHooks(fail=broken)
    marker = object()
    error = ValueError("user error")

    def fail() -> None:
        raise error

    async def afail() -> None:
        raise error

    async def aok() -> object:
        return marker

    assert wrap(lambda: marker, hooks)() is marker
    assert asyncio.run(wrap(aok, hooks)()) is marker
    for call in (lambda: wrap(fail, hooks)(), lambda: asyncio.run(wrap(afail, hooks)())):
        with pytest.raises(ValueError, match="user error") as info:
            call()
        assert info.value is error
    assert ACTIVE.get() is None
