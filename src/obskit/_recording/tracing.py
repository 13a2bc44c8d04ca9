"""trace_operation: a span around a function or block, with attributes, status and exception."""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from obskit._core import state as _state
from obskit._core.errors import report_internal_error
from obskit._core.redact import Redactor, safe_value, unrenderable
from obskit._core.wrapping import BLOCKS, pop_block, wrap

__all__ = [
    "clean_attributes",
    "describe",
    "end_span",
    "exception_attributes",
    "record_exception",
    "trace_operation",
]

_F = TypeVar("_F", bound=Callable[..., Any])
_OK = Status(StatusCode.OK)
_MAX_ARG_LENGTH = 256
_PRIMITIVES = (str, bool, int, float)


def clean_attributes(attributes: Mapping[str, Any] | None, redactor: Redactor) -> dict[str, Any]:
    """Attributes OpenTelemetry accepts: primitives or homogeneous sequences; others become strings."""
    clean: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        key = str(key)
        if redactor.is_sensitive(key):
            clean[key] = "[REDACTED]"
        elif isinstance(value, _PRIMITIVES):
            clean[key] = value
        elif isinstance(value, list | tuple) and value and all(isinstance(v, type(value[0])) for v in value):
            clean[key] = tuple(v if isinstance(v, _PRIMITIVES) else safe_value(v) for v in value)
        elif value is not None:
            clean[key] = safe_value(value)  # its str(), or a marker when that raises
    return clean


def end_span(span: Span, error: BaseException | None) -> None:
    """Set OK or ERROR (with the exception recorded) and end ``span``; it is ended whatever fails."""
    try:
        if error is None:
            span.set_status(_OK)
        else:
            span.set_status(Status(StatusCode.ERROR, describe(error)))
            record_exception(span, error)
    finally:
        span.end()


def describe(error: BaseException) -> str:
    """``Type: message`` for a status description; the type alone when ``str(error)`` raises."""
    try:
        return f"{type(error).__name__}: {error}"
    except Exception:  # an exception whose __str__ fails still gets an ERROR status
        return type(error).__name__


def record_exception(span: Span, error: BaseException) -> None:
    """``span.record_exception(error, escaped=True)``, whatever ``str(error)`` does.

    When it raises (the SDK's ``record_exception`` does not guard it), the same ``exception`` event
    is added with ``[unrenderable Type]`` as its message.
    """
    try:
        span.record_exception(error, escaped=True)
    except Exception:
        span.add_event("exception", exception_attributes(error, escaped=True))


def exception_attributes(error: BaseException, escaped: bool) -> dict[str, str]:
    """The ``exception.*`` event attributes the SDK records, whatever ``str(error)`` does."""
    cls = type(error)
    module, qualname = cls.__module__, cls.__qualname__
    try:
        message = str(error)
    except Exception:
        message = unrenderable(error)
    return {
        "exception.type": f"{module}.{qualname}" if module and module != "builtins" else qualname,
        "exception.message": message,
        "exception.stacktrace": "".join(traceback.format_exception(error)),  # guards str() itself
        "exception.escaped": str(escaped),
    }


def activate_span(span: Span | None) -> object:
    """Make ``span`` current; the token undoes it (None when there is no span)."""
    return None if span is None else otel_context.attach(trace.set_span_in_context(span))


def deactivate_span(token: object) -> None:
    """Undo :func:`activate_span`."""
    if token is not None:
        otel_context.detach(token)  # type: ignore[arg-type]


def _arg_value(value: Any) -> Any:
    if isinstance(value, str):
        return value[:_MAX_ARG_LENGTH]
    if isinstance(value, _PRIMITIVES):
        return value
    try:
        return repr(value)[:_MAX_ARG_LENGTH]
    except Exception:  # an argument whose repr() raises is recorded as a marker, the call goes on
        return unrenderable(value)


class _SpanHooks:
    """Decorator/block hooks: a span started with static attributes, current while the body runs."""

    __slots__ = ("_attributes", "_raw", "_redactor", "_signature", "name", "where")

    def __init__(self, name: str, attributes: Mapping[str, Any] | None, signature: inspect.Signature | None):
        self.name = name
        self.where = f"trace_operation({name})"
        self._raw = dict(attributes or {})
        self._redactor: Redactor | None = None
        self._attributes: dict[str, Any] = {}
        self._signature = signature

    def _static(self, redactor: Redactor) -> dict[str, Any]:
        if redactor is not self._redactor:
            self._attributes = clean_attributes(self._raw, redactor)
            self._redactor = redactor
        return self._attributes

    def start(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Span | None:
        state = _state.STATE
        tracer = state.tracer
        if tracer is None:
            return None
        attributes = self._static(state.redactor)
        if self._signature is not None:
            attributes = {**attributes, **self._arguments(state.redactor, args, kwargs)}
        return tracer.start_span(self.name, attributes=attributes)

    def _arguments(self, redactor: Redactor, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        assert self._signature is not None
        try:
            bound = self._signature.bind_partial(*args, **kwargs)
        except TypeError:  # the call itself is wrong and will raise the function's own TypeError
            return {}
        return {
            f"code.args.{name}": "[REDACTED]" if redactor.is_sensitive(name) else _arg_value(value)
            for name, value in bound.arguments.items()
            if name not in {"self", "cls"}
        }

    activate = staticmethod(activate_span)
    deactivate = staticmethod(deactivate_span)

    def finish(self, span: Span | None, error: BaseException | None, result: Any = None) -> None:
        if span is not None:
            end_span(span, error)


_METHOD_TYPES = (classmethod, staticmethod)


class _Operation:
    """What ``trace_operation(...)`` returns: a decorator and a (async) context manager.

    As a block it does what the decorator's hooks do, written out in one place: a block is
    usually built and entered once per pass (``with trace_operation("x"):`` inline), so each
    layer of calls, and each object, would be paid on every use. Its entries go on
    :data:`BLOCKS`, so one object can be entered nested, repeatedly, or by concurrent tasks and
    threads.
    """

    __slots__ = ("_attributes", "_cleaned", "_name", "_record_args")
    _attributes: dict[str, Any] | None

    def __init__(self, name: str | None, attributes: Mapping[str, Any] | None, record_args: bool) -> None:
        self._name = name
        self._attributes = dict(attributes) if attributes else None  # as given now, pairs or mapping
        self._record_args = record_args
        #: (redactor, the block's attributes cleaned by it): one slot, read and replaced whole, so
        #: that threads sharing the block never pair one redactor with another's cleaning.
        self._cleaned: tuple[Redactor, dict[str, Any] | None] | None = None

    def __enter__(self) -> Span:
        name = self._name
        if not name:
            raise TypeError("trace_operation used as a context manager needs a name")
        span: Span | None = None
        token: object = None
        try:
            state = _state.STATE
            tracer = state.tracer
            if tracer is not None:
                cleaned = self._cleaned
                if cleaned is None or cleaned[0] is not state.redactor:
                    cleaned = (state.redactor, clean_attributes(self._attributes, state.redactor) or None)
                    self._cleaned = cleaned
                span = tracer.start_span(name, attributes=cleaned[1])
                token = otel_context.attach(trace.set_span_in_context(span))
        except Exception as exc:  # no span, or one that is not current: the block runs all the same
            report_internal_error(f"trace_operation({name})", exc)
        BLOCKS.set((self, span, token, BLOCKS.get()))
        return trace.INVALID_SPAN if span is None else span

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        entry = BLOCKS.get()
        if entry is not None and entry[0] is self:  # exited in order: this block's entry is on top
            BLOCKS.set(entry[3])
        else:
            entry = pop_block(self)
            if entry is None:
                return
        _, span, token, _ = entry
        if span is None:
            return
        try:
            try:
                if token is not None:
                    otel_context.detach(token)
            finally:
                if exc is None:  # end_span's success path, without its call
                    try:
                        span.set_status(_OK)
                    finally:
                        span.end()
                else:  # closing a generator early (GeneratorExit) is not a failure
                    end_span(span, None if isinstance(exc, GeneratorExit) else exc)
        except Exception as error:
            report_internal_error(f"trace_operation({self._name})", error)

    async def __aenter__(self) -> Span:
        return self.__enter__()

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: _F) -> _F:
        target = func.__func__ if isinstance(func, _METHOD_TYPES) else func
        name = self._name or getattr(target, "__qualname__", None) or repr(target)
        signature = inspect.signature(target) if self._record_args else None
        return wrap(func, _SpanHooks(name, self._attributes, signature))


@overload
def trace_operation(name: _F, /) -> _F: ...


@overload
def trace_operation(
    name: str | None = None, /, *, attributes: Mapping[str, Any] | None = None, record_args: bool = False
) -> _Operation: ...


def trace_operation(
    name: str | Callable[..., Any] | None = None,
    /,
    *,
    attributes: Mapping[str, Any] | None = None,
    record_args: bool = False,
) -> Any:
    """A span around a function or a block.

    As a decorator (``@trace_operation``, ``@trace_operation("name", attributes={...})``) the span
    is named after the function's qualified name unless ``name`` is given; it works on sync, async,
    generator and async-generator functions, methods, classmethods and staticmethods, and covers the
    whole call (a generator's whole iteration). As ``with``/``async with`` block it yields the span.

    The span ends with status OK, or ERROR with the exception recorded; the exception itself
    propagates untouched. Sensitive attribute keys are redacted. With ``record_args=True`` the
    call's arguments become ``code.args.<name>`` attributes (truncated, redacted). Without a
    configured tracer (before ``configure()``, or ``traces_exporter="none"``) no span is made.
    """
    if type(name) is str:
        if name and not attributes and not record_args:
            return _OPERATIONS.get(name) or _shared_operation(name)
    elif callable(name) or isinstance(name, _METHOD_TYPES):
        return _Operation(None, None, False)(name)
    return _Operation(name, attributes, record_args)


#: One operation per span name for ``trace_operation("x")`` without attributes: written inline,
#: ``with trace_operation("x"):`` then builds nothing on each pass. An operation is shareable
#: (each entry is kept in its own context), so handing out the same object changes nothing else.
_OPERATIONS: dict[str, _Operation] = {}
_OPERATIONS_LIMIT = 1024


def _shared_operation(name: str) -> _Operation:
    operation = _Operation(name, None, False)
    if len(_OPERATIONS) < _OPERATIONS_LIMIT:
        operation = _OPERATIONS.setdefault(name, operation)
    return operation
