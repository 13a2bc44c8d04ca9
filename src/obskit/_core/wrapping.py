"""Decorating any kind of callable with start/activate/deactivate/finish hooks.

The kind of function (plain, coroutine, generator, async generator) is decided once, at
decoration time. Return values, exceptions (same object), values sent into generators, the
signature and ``inspect.iscoroutinefunction`` pass through untouched. Generators are made
current only while their body runs, so a caller between two ``next()`` calls never sees the
generator's span or context, and an abandoned generator leaks nothing.

Every hook call is guarded: a failing hook is reported once and the user's function runs and
returns or raises exactly as it would without obskit.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from obskit._core.errors import report_internal_error

__all__ = ["BLOCKS", "HookedBlock", "pop_block", "wrap"]

S = TypeVar("S")
S_co = TypeVar("S_co")
_F = TypeVar("_F", bound=Callable[..., Any])


if TYPE_CHECKING:  # for mypy only: a Protocol class costs start-up time to create

    class Hooks(Protocol[S]):
        """What a decorator does around each call: start, make current, stop being current, finish."""

        where: str

        def start(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> S:
            """Begin a call (create the span, start the clock); nothing is current yet."""

        def activate(self, state: S) -> Any:
            """Make the call's span/context current; return a token for :meth:`deactivate`."""

        def deactivate(self, token: Any) -> None:
            """Undo :meth:`activate`."""

        def finish(self, state: S, error: BaseException | None, result: Any = None) -> None:
            """End the call, successful when ``error`` is None; ``result`` is what it returned."""

    class CurrentOnStart(Hooks[S], Protocol[S]):
        """Hooks that can also start a call already current (``current_on_start`` is True).

        ``start(args, kwargs, True)`` begins the call and makes it current, as :meth:`start` then
        :meth:`activate` do; :meth:`finish` of such a call undoes that first, as :meth:`deactivate`
        would. The function and coroutine wrappers then make two hook calls per call, not four;
        generators and blocks keep the four (they are current only while their body runs).
        """

        current_on_start: bool

        def start(self, args: tuple[Any, ...], kwargs: dict[str, Any], current: bool = False) -> S:
            """Begin a call; make it current too when ``current``."""


def _start(hooks: Hooks[S], args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[bool, S | None]:
    try:
        return True, hooks.start(args, kwargs)
    except Exception as exc:
        report_internal_error(hooks.where, exc)
        return False, None


def _activate(hooks: Hooks[Any], state: Any) -> Any:
    try:
        return hooks.activate(state)
    except Exception as exc:
        report_internal_error(hooks.where, exc)
        return None


def _deactivate(hooks: Hooks[Any], token: Any) -> None:
    try:
        hooks.deactivate(token)
    except Exception as exc:
        report_internal_error(hooks.where, exc)


def _finish(hooks: Hooks[Any], state: Any, error: BaseException | None, result: Any = None) -> None:
    try:
        hooks.finish(state, error, result)
    except Exception as exc:
        report_internal_error(hooks.where, exc)


def _failure(error: BaseException) -> BaseException | None:
    """The error a generator finished with; closing it early (GeneratorExit) is not a failure."""
    return None if isinstance(error, GeneratorExit) else error


def _wrap_function(func: Callable[..., Any], hooks: Hooks[Any]) -> Callable[..., Any]:
    start, activate, deactivate, finish = hooks.start, hooks.activate, hooks.deactivate, hooks.finish

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            state = start(args, kwargs)
        except Exception as exc:
            report_internal_error(hooks.where, exc)
            return func(*args, **kwargs)
        try:
            token = activate(state)
        except Exception as exc:
            report_internal_error(hooks.where, exc)
            token = None
        try:
            result = func(*args, **kwargs)
        except BaseException as error:
            try:
                try:
                    deactivate(token)
                finally:
                    finish(state, error)
            except Exception as exc:
                report_internal_error(hooks.where, exc)
            raise
        try:
            try:
                deactivate(token)
            finally:
                finish(state, None, result)
        except Exception as exc:
            report_internal_error(hooks.where, exc)
        return result

    return wrapper


def _wrap_function_current(func: Callable[..., Any], hooks: CurrentOnStart[Any]) -> Callable[..., Any]:
    """:func:`_wrap_function` for hooks that start a call current and finish undoes it."""
    start, finish = hooks.start, hooks.finish

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            state = start(args, kwargs, True)
        except Exception as exc:
            report_internal_error(hooks.where, exc)
            return func(*args, **kwargs)
        try:
            result = func(*args, **kwargs)
        except BaseException as error:
            try:
                finish(state, error)
            except Exception as exc:
                report_internal_error(hooks.where, exc)
            raise
        try:
            finish(state, None, result)
        except Exception as exc:
            report_internal_error(hooks.where, exc)
        return result

    return wrapper


def _wrap_coroutine_current(func: Callable[..., Any], hooks: CurrentOnStart[Any]) -> Callable[..., Any]:
    """:func:`_wrap_coroutine` for hooks that start a call current and finish undoes it."""
    start, finish = hooks.start, hooks.finish

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            state = start(args, kwargs, True)
        except Exception as exc:
            report_internal_error(hooks.where, exc)
            return await func(*args, **kwargs)
        try:
            result = await func(*args, **kwargs)
        except BaseException as error:
            try:
                finish(state, error)
            except Exception as exc:
                report_internal_error(hooks.where, exc)
            raise
        try:
            finish(state, None, result)
        except Exception as exc:
            report_internal_error(hooks.where, exc)
        return result

    return wrapper


def _wrap_coroutine(func: Callable[..., Any], hooks: Hooks[Any]) -> Callable[..., Any]:
    start, activate, deactivate, finish = hooks.start, hooks.activate, hooks.deactivate, hooks.finish

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            state = start(args, kwargs)
        except Exception as exc:
            report_internal_error(hooks.where, exc)
            return await func(*args, **kwargs)
        try:
            token = activate(state)
        except Exception as exc:
            report_internal_error(hooks.where, exc)
            token = None
        try:
            result = await func(*args, **kwargs)
        except BaseException as error:
            try:
                try:
                    deactivate(token)
                finally:
                    finish(state, error)
            except Exception as exc:
                report_internal_error(hooks.where, exc)
            raise
        try:
            try:
                deactivate(token)
            finally:
                finish(state, None, result)
        except Exception as exc:
            report_internal_error(hooks.where, exc)
        return result

    return wrapper


def _wrap_generator(func: Callable[..., Any], hooks: Hooks[Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        ok, state = _start(hooks, args, kwargs)
        if not ok:
            return (yield from func(*args, **kwargs))
        token = _activate(hooks, state)
        try:
            gen = func(*args, **kwargs)
        except BaseException as error:
            _deactivate(hooks, token)
            _finish(hooks, state, error)
            raise
        _deactivate(hooks, token)
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            token = _activate(hooks, state)
            try:
                item = gen.send(to_send) if to_throw is None else gen.throw(to_throw)
            except StopIteration as stop:
                _deactivate(hooks, token)
                _finish(hooks, state, None, stop.value)
                return stop.value
            except BaseException as error:
                _deactivate(hooks, token)
                _finish(hooks, state, _failure(error))
                raise
            _deactivate(hooks, token)
            to_send, to_throw = None, None
            try:
                to_send = yield item
            except GeneratorExit as close:
                token = _activate(hooks, state)
                try:
                    gen.close()
                except BaseException as error:
                    _deactivate(hooks, token)
                    _finish(hooks, state, error)
                    raise
                _deactivate(hooks, token)
                _finish(hooks, state, None)
                raise close from None
            except BaseException as thrown:
                to_throw = thrown

    return wrapper


def _wrap_async_generator(func: Callable[..., Any], hooks: Hooks[Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        ok, state = _start(hooks, args, kwargs)
        if not ok:
            # Forward asend/athrow/aclose untouched, as ``yield from`` does for generators.
            agen_plain = func(*args, **kwargs)
            sent: Any = None
            thrown_in: BaseException | None = None
            while True:
                try:
                    if thrown_in is None:
                        item = await agen_plain.asend(sent)
                    else:
                        item = await agen_plain.athrow(thrown_in)
                except StopAsyncIteration:
                    return
                sent, thrown_in = None, None
                try:
                    sent = yield item
                except GeneratorExit:
                    await agen_plain.aclose()
                    raise
                except BaseException as thrown:
                    thrown_in = thrown
        token = _activate(hooks, state)
        try:
            agen = func(*args, **kwargs)
        except BaseException as error:
            _deactivate(hooks, token)
            _finish(hooks, state, error)
            raise
        _deactivate(hooks, token)
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            token = _activate(hooks, state)
            try:
                if to_throw is None:
                    item = await agen.asend(to_send)
                else:
                    item = await agen.athrow(to_throw)
            except StopAsyncIteration:
                _deactivate(hooks, token)
                _finish(hooks, state, None)
                return
            except BaseException as error:
                _deactivate(hooks, token)
                _finish(hooks, state, _failure(error))
                raise
            _deactivate(hooks, token)
            to_send, to_throw = None, None
            try:
                to_send = yield item
            except GeneratorExit as close:
                token = _activate(hooks, state)
                try:
                    await agen.aclose()
                except BaseException as error:
                    _deactivate(hooks, token)
                    _finish(hooks, state, error)
                    raise
                _deactivate(hooks, token)
                _finish(hooks, state, None)
                raise close from None
            except BaseException as thrown:
                to_throw = thrown

    return wrapper


def wrap(func: _F, hooks: Hooks[Any]) -> _F:
    """Wrap ``func`` (function, method, classmethod or staticmethod object) with ``hooks``."""
    if isinstance(func, classmethod):
        return classmethod(wrap(func.__func__, hooks))
    if isinstance(func, staticmethod):
        return staticmethod(wrap(func.__func__, hooks))  # type: ignore[return-value]
    if not callable(func):
        raise TypeError(f"obskit can only decorate callables, not {type(func).__name__}")
    current = getattr(hooks, "current_on_start", False) is True
    if inspect.isasyncgenfunction(func):
        wrapped = _wrap_async_generator(func, hooks)
    elif inspect.iscoroutinefunction(func):
        wrapped = _wrap_coroutine_current(func, hooks) if current else _wrap_coroutine(func, hooks)  # type: ignore[arg-type]
    elif inspect.isgeneratorfunction(func):
        wrapped = _wrap_generator(func, hooks)
    else:
        wrapped = _wrap_function_current(func, hooks) if current else _wrap_function(func, hooks)  # type: ignore[arg-type]
    return wrapped  # type: ignore[return-value]


#: The blocks entered and not yet exited in this context, as a linked stack: the innermost entry,
#: ``(block, ..., below)``, whose last item is the entry under it (None at the bottom). A context
#: variable, not a list on the block, so that one block object shared by concurrent tasks or
#: threads (a module-level ``trace_operation("x")``, say) ends each entry's own span. A block
#: exited in order finds its entry on top: one read and one write, nothing copied or scanned.
BLOCKS: contextvars.ContextVar[tuple[Any, ...] | None] = contextvars.ContextVar("obskit_blocks", default=None)


def pop_block(block: object) -> tuple[Any, ...] | None:
    """Take ``block``'s innermost entry off :data:`BLOCKS`; None if it has none in this context."""
    top = BLOCKS.get()
    if top is not None and top[0] is block:
        BLOCKS.set(top[-1])
        return top
    above: list[tuple[Any, ...]] = []  # exited out of order: the entries over it are kept
    entry = top
    while entry is not None and entry[0] is not block:
        above.append(entry)
        entry = entry[-1]
    if entry is None:  # exited in a context it was not entered in: there is nothing of ours here
        return None
    below = entry[-1]
    for kept in reversed(above):
        below = (*kept[:-1], below)
    BLOCKS.set(below)
    return entry


class HookedBlock(Generic[S]):
    """A ``with`` / ``async with`` block driven by the same hooks as the decorator.

    Re-entrant and shareable: each entry keeps its own state in the current context, so one
    object can be entered several times, nested, or by concurrent tasks and threads.
    """

    __slots__ = ("_hooks", "_value")

    def __init__(self, hooks: Hooks[Any], value: Callable[[Any], Any]) -> None:
        self._hooks = hooks
        self._value = value

    def __enter__(self) -> Any:
        ok, state = _start(self._hooks, (), {})
        token = _activate(self._hooks, state) if ok else None
        BLOCKS.set((self, ok, state, token, BLOCKS.get()))
        return self._value(state)

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        entry = pop_block(self)
        if entry is None:
            return
        _, ok, state, token, _ = entry
        if ok:
            _deactivate(self._hooks, token)
            _finish(self._hooks, state, None if exc is None else _failure(exc))

    async def __aenter__(self) -> Any:
        return self.__enter__()

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.__exit__(exc_type, exc, tb)
