"""JSON (and console) log rendering for stdlib ``logging`` and structlog, sharing one record shape.

Every line is one JSON object: ``timestamp`` (UTC, RFC 3339), ``level``, ``logger``, ``message``,
``service``, ``environment``, ``trace_id``/``span_id`` (W3C hex, only inside a span), the fields
of the active :class:`~obskit.LoggingContext` (``request_id``, ``user_id``, ...), the keys bound
with structlog's ``bind_contextvars()``, ``extra`` fields, and ``exception`` (type, message,
stack). With ``log_source`` on, ``module``, ``function`` and ``line`` say where the call was made.
Sensitive keys are redacted with the same list as span attributes, at any depth, and
credentials in the message, exception and string fields are hidden
(:meth:`obskit._core.redact.Redactor.scrub`). Messages with newlines, quotes or non-ASCII stay one
valid JSON line, of valid UTF-8 whatever they hold; a value that cannot be rendered costs its own
field only (see docs/logging.md).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping, MutableMapping
from contextvars import ContextVar
from functools import partial
from math import trunc as _trunc
from typing import Any

from opentelemetry.context import get_current
from opentelemetry.trace import get_current_span

from obskit._core import state as _state
from obskit._core.context import current_fields
from obskit._core.errors import report_internal_error
from obskit._core.redact import REDACTED, safe_json, safe_text, unrenderable

__all__ = [
    "ConsoleFormatter",
    "JsonFormatter",
    "add_obskit_fields",
    "get_logger",
    "print_logger_factory",
    "render_record",
    "structlog_processors",
]

_STRUCTLOG_FIELDS = "_obskit_fields"
#: The attributes every LogRecord has (one record made at import, read twice below).
_RECORD_KEYS = logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
_RESERVED = frozenset(
    _RECORD_KEYS
    | {
        "message",
        "asctime",
        "taskName",
        _STRUCTLOG_FIELDS,
        "_logger",  # set by structlog's ProcessorFormatter.wrap_for_formatter
        "_name",
        "otelTraceID",
        "otelSpanID",
        "otelServiceName",
        "otelTraceSampled",
    }
)
_BASE_KEYS = len(_RECORD_KEYS)
_CORE = frozenset(
    {
        "timestamp",
        "level",
        "logger",
        "message",
        "service",
        "environment",
        "trace_id",
        "span_id",
        "exception",
        "stack_info",
        "service_version",
    }
)


def _text_of(value: Any) -> str:
    """A value JSON has no type for, as exported logs have it: ``str()``, credentials hidden.

    The marker when ``str()`` raises: a broken value must not cost the log line.
    """
    try:
        text = str(value)
    except Exception:
        return unrenderable(value)
    return str(_state.STATE.redactor.scrub(text))


# NaN and infinities are not JSON: encoding fails on them and _encode renders them as strings.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_text_of, allow_nan=False)


def _finite(value: Any) -> Any:
    """``value`` with what JSON cannot hold replaced, as exported logs have it.

    NaN and infinities become their text, an int too long to print the marker.
    """
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return str(value)
    if value.__class__ is int:
        try:
            int.__repr__(value)
        except ValueError:  # past sys.get_int_max_str_digits()
            return unrenderable(value)
        return value
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


_encode_str = json.encoder.encode_basestring  # what _ENCODER uses for strings (ensure_ascii=False)


def _encode(out: dict[str, Any]) -> str:
    try:
        # The common line has only string keys and values: joining their encodings by hand gives
        # the bytes _ENCODER would, about a third faster. Anything else raises TypeError here.
        return "{" + ",".join([f"{_encode_str(k)}:{_encode_str(v)}" for k, v in out.items()]) + "}"
    except TypeError:
        pass
    try:
        return _ENCODER.encode(out)
    except ValueError:
        return _ENCODER.encode(_finite(out))


class _Clock:
    """RFC 3339 UTC timestamps with millisecond precision; the seconds part is cached."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        #: The last second formatted and its text up to the seconds: one tuple, read and
        #: replaced whole, so that threads never pair a second with another one's text.
        self.last: tuple[int, str] = (-1, "")

    def format(self, created: float) -> str:
        second = _trunc(created)  # int() of a float, at half the cost
        last = self.last
        prefix = last[1] if last[0] == second else self.prefix(second)
        return prefix + _MILLIS[_trunc((created - second) * 1000)]

    def prefix(self, second: int) -> str:
        """The timestamp up to its seconds for ``second`` (whole seconds since the epoch), kept."""
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        self.last = (second, prefix)
        return prefix


#: ".000Z" to ".999Z" (twice ".999Z" at the end, for a fraction that rounds up to 1000): a lookup
#: is cheaper than formatting the number on every line. Built from the digits, not by formatting
#: each number: 0.04 ms instead of 0.27 ms at import.
_MILLIS = (*[f".{a}{b}{c}Z" for a in "0123456789" for b in "0123456789" for c in "0123456789"], ".999Z")


def _context_reader() -> Callable[[], Any]:
    """A function returning the current OpenTelemetry context, as ``get_current()`` does.

    With OpenTelemetry's default runtime context (one ``ContextVar``, under a private name), the
    variable's own ``get``: one C call instead of two Python ones per line. Otherwise, or when
    the names differ in an OpenTelemetry release, ``get_current`` itself. The same lookup as
    ``obskit._recording.exemplars.OTEL_CONTEXT_VAR``, made here so that start-up, which imports
    this module, leaves that one out.
    """
    try:
        from opentelemetry.context import _RUNTIME_CONTEXT
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
    except ImportError:  # pragma: no cover - an OpenTelemetry release without these names
        return get_current
    variable = getattr(_RUNTIME_CONTEXT, "_current_context", None)
    if type(_RUNTIME_CONTEXT) is ContextVarsRuntimeContext and isinstance(variable, ContextVar):
        return variable.get
    return get_current  # pragma: no cover - another runtime context


_current_context = _context_reader()

# The last OpenTelemetry context seen, its span's hex ids ("" outside a span) and their JSON
# fragment: consecutive lines in one context skip the span lookup and the formatting. Contexts are
# immutable, so the same object means the same span. Replaced as one tuple (an atomic global
# assignment), so threads never mix two spans' ids.
_last_ids: tuple[Any, str, str, str] = (None, "", "", "")


def _current_ids(current: Any = None) -> tuple[Any, str, str, str]:
    """The span ids of ``current`` (an OpenTelemetry context; by default the current one)."""
    global _last_ids
    if current is None:
        current = _current_context()
    cached = _last_ids
    if cached[0] is not current:
        cached = _last_ids = (current, *_span_ids(get_current_span(current).get_span_context()))
    return cached


def _span_ids(context: Any) -> tuple[str, str, str]:
    """A span context's W3C hex trace and span ids and their JSON fragment; empty when invalid."""
    if not context.is_valid:
        return "", "", ""
    # to_bytes().hex(): W3C hex ids in a third of the time format(id, "032x") takes.
    trace_id, span_id = context.trace_id.to_bytes(16, "big").hex(), context.span_id.to_bytes(8, "big").hex()
    return trace_id, span_id, f',"trace_id":"{trace_id}","span_id":"{span_id}"'


def _trace_ids(out: dict[str, Any]) -> None:
    cached = _current_ids()
    if cached[1]:
        out["trace_id"] = cached[1]
        out["span_id"] = cached[2]


_STRUCTLOG_PREFIX = "structlog_"
_STRUCTLOG_CONTEXTVARS = "structlog.contextvars"
#: structlog's registry of the context variables bind_contextvars() made, once structlog is
#: imported (None before): looked up once, then a length check per line.
_registry: dict[str, Any] | None = None


def _bound_contextvars() -> dict[str, Any] | None:
    """The keys bound with ``structlog.contextvars.bind_contextvars()`` in this context, or None.

    What structlog's ``merge_contextvars`` would add. Cheap when nothing was ever bound: structlog
    keeps one registry of the variables it made, empty until the first bind.
    """
    global _registry
    registry = _registry
    if registry is None:
        module = sys.modules.get(_STRUCTLOG_CONTEXTVARS)
        if module is None:
            return None
        registry = getattr(module, "_CONTEXT_VARS", None)
        if registry is None:  # a structlog without the registry: its public (slower) reader
            return dict(module.get_contextvars()) or None
        _registry = registry
    if not registry:
        return None
    bound = {}
    for name, var in list(registry.items()):
        value = var.get(Ellipsis)
        if value is not Ellipsis:
            bound[name[len(_STRUCTLOG_PREFIX) :] if name.startswith(_STRUCTLOG_PREFIX) else name] = value
    return bound or None


#: The fields ``log_source`` adds: where the log call was made.
_SOURCE = frozenset({"module", "function", "line"})
#: The logger of access lines, whose call site is always obskit's middleware: no source fields.
_ACCESS_LOGGER = "http.access"


def _module_name(filename: str) -> str:
    """The file name without directory and extension, as stdlib's ``LogRecord.module`` has it."""
    return os.path.splitext(os.path.basename(filename))[0]


def _source_fragment(record: logging.LogRecord) -> str:
    """``,"module":...,"function":...,"line":...`` of ``record`` for the direct path."""
    function = record.funcName
    line = record.lineno
    return (
        f',"module":{_encode_str(record.module)}'
        f',"function":{_encode_str(function) if function.__class__ is str else "null"}'
        f',"line":{int.__repr__(line) if line.__class__ is int else "null"}'
    )


def _caller_source() -> dict[str, Any]:
    """``module``, ``function`` and ``line`` of the log call made through structlog.

    The first frame outside structlog and this module (and stdlib ``logging``, for structlog set
    up to hand events to it).
    """
    frame: Any = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__") or ""
        if not (
            name == "obskit.logging"
            or name == "logging"
            or name == "structlog"
            or name.startswith("structlog.")
        ):
            code = frame.f_code
            return {
                "module": _module_name(code.co_filename),
                "function": code.co_name,
                "line": frame.f_lineno,
            }
        frame = frame.f_back
    return {}


def _add_fields(out: dict[str, Any], fields: Mapping[str, Any], redactor: Any) -> None:
    sensitive, scrub = redactor.is_sensitive, redactor.scrub
    for key, value in fields.items():
        if key in _CORE or (key in _SOURCE and _state.STATE.settings.log_source):
            key = f"field_{key}"
        out[key] = (
            REDACTED
            if sensitive(key)
            else (
                scrub(value)
                if value.__class__ is str
                else (
                    value
                    if not isinstance(value, Mapping | list | tuple)
                    else redactor.walk(key, value, redactor.text_value)
                )
            )
        )


def _exception(exc_info: Any, formatter: logging.Formatter | None = None) -> dict[str, Any]:
    exc_type, exc, tb = exc_info
    stack = (
        formatter.formatException(exc_info)
        if formatter is not None
        else "".join(traceback.format_exception(exc_type, exc, tb)).rstrip("\n")
    )
    scrub = _state.STATE.redactor.scrub
    return {
        "type": getattr(exc_type, "__name__", str(exc_type)),
        "message": _text_of(exc),  # an exception whose __str__ fails is still logged
        "stack": scrub(stack),
    }


def render_record(
    created: float,
    level: str,
    logger: str,
    message: str,
    fields: Mapping[str, Any] | None = None,
    exc_info: Any = None,
    clock: _Clock | None = None,
    source: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The dict every obskit log line is made of (before JSON encoding).

    ``source`` is where the call was made (``module``, ``function``, ``line``), for ``log_source``.
    """
    state = _state.STATE
    out: dict[str, Any] = {
        "timestamp": (clock or _CLOCK).format(created),
        "level": level,
        "logger": logger,
        "message": state.redactor.scrub(message),
        **state.log_fields,
    }
    _trace_ids(out)
    bound = _bound_contextvars()
    if bound:
        _add_fields(out, bound, state.redactor)
    context = current_fields()
    if context:
        _add_fields(out, context, state.redactor)
    if source:
        out.update(source)
    if fields:
        _add_fields(out, fields, state.redactor)
    if exc_info:
        out["exception"] = _exception(exc_info)
    return out


_CLOCK = _Clock()


def _static_fragment(fields: Mapping[str, Any]) -> str | None:
    """The JSON of the service fields for the direct path, or None if they need the general one."""
    if any(k.__class__ is not str or v.__class__ is not str or k in _HEAD for k, v in fields.items()):
        return None
    return "".join(f",{_encode_str(k)}:{_encode_str(v)}" for k, v in fields.items())


def _context_fragment(context: Mapping[str, Any], redactor: Any, fields: Mapping[str, Any]) -> str | None:
    """The JSON of the LoggingContext fields for the direct path, or None if they need the general one."""
    items = context.items()
    if any(k.__class__ is not str or v.__class__ is not str or k in _CORE or k in fields for k, v in items):
        return None
    sensitive, scrub = redactor.is_sensitive, redactor.scrub
    return "".join(
        f",{_encode_str(k)}:{_encode_str(REDACTED if sensitive(k) else scrub(v))}" for k, v in items
    )


def _scalar(value: Any) -> str | None:
    """The JSON _ENCODER gives a str, int, finite float, bool or None; None for anything else."""
    cls = value.__class__
    if cls is str:
        return _encode_str(value)
    if cls is int:
        return int.__repr__(value)
    if cls is float:
        return float.__repr__(value) if math.isfinite(value) else None
    if value is None:
        return "null"
    if cls is bool:
        return "true" if value else "false"
    return None


_UNCHECKED: Any = object()
#: The fields of an ``http.access`` line after the core ones, in order (see obskit._web.http).
_ACCESS_KEYS = ("method", "route", "path", "status", "duration_ms", "response_bytes", "client", "user_agent")


def _key_fragment(key: Any, fields: Mapping[str, Any], redactor: Any) -> str | None:
    """``,"key":`` for an extra-field key the direct path can write as is, else None."""
    if key.__class__ is not str or key in _CORE or key in fields or redactor.is_sensitive(key):
        return None
    return f",{_encode_str(key)}:"


#: How a path can end for its message's status to become a key's value (``/token: 200``); the
#: empty string too, so that an empty path gets the whole message scrubbed.
_OPEN_ENDS = "=:\"' \t"
#: Keys the direct path writes itself; service fields named like them take the general path.
_HEAD = frozenset({"timestamp", "level", "logger", "message", "trace_id", "span_id"})


class JsonFormatter(logging.Formatter):
    """Render each stdlib log record as one line of JSON (see the module docstring for the fields).

    Attach it to any handler; ``obskit.configure()`` installs it on the root logger for you.
    """

    def __init__(self) -> None:
        super().__init__()
        self._clock = _Clock()
        # A subclass that changes to_dict() must get what it returns: only this class goes direct.
        self._direct = type(self).to_dict is JsonFormatter.to_dict
        self._static: tuple[Any, str | None] = (None, None)
        # The last LoggingContext mapping seen (read-only, so the same object means the same
        # fields), the redactor and service fields it was rendered with, and its JSON fragment.
        self._context: tuple[Any, Any, Any, str | None] = (None, None, None, None)
        # Extra-field keys checked against the service fields and redactor they were checked
        # with: key -> its JSON fragment (``,"key":``), or None when the key needs the general path.
        self._keys: tuple[Any, Any, dict[Any, str | None]] = (None, None, {})
        # The access-line keys' fragments for the service fields and redactor they were made with.
        self._access_keys: tuple[Any, Any, tuple[str | None, ...] | None] = (None, None, None)
        #: (service fields, redactor, whether "request_id" can be written as is, whether redacted)
        self._request_id_key: tuple[Any, Any, bool, bool] = (None, None, False, False)
        #: Text that repeats (a message without arguments, a route, a user agent) and what the
        #: redactor's scrub() made of it, for the redactor it was scrubbed with.
        self._scrubbed: tuple[Any, dict[str, str]] = (None, {})

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as one line of valid UTF-8 JSON; never raises.

        A value JSON has no type for is written as its ``str()``, one that cannot be rendered
        (``str()`` raises, an int too long to print) as ``"[unrenderable <type>]"``, a lone
        surrogate as the text of its escape: each costs its own field only.
        """
        if self._direct:
            attrs = record.__dict__
            if len(attrs) == _BASE_KEYS:
                line = self._direct_line(record, None)
            else:
                # Extra fields (``extra=``, the access log's): direct only when nothing but them
                # was added to the record (no structlog fields, no OpenTelemetry ids, no message).
                extra = {k: v for k, v in attrs.items() if k not in _RESERVED}
                line = self._direct_line(record, extra) if len(attrs) - len(extra) == _BASE_KEYS else None
            if line is not None:
                return line if line.isascii() else safe_json(line)  # safe_json's own first test, inline
        return safe_json(_encode(self.to_dict(record)))

    def _scrub_same(self, text: str, redactor: Any) -> str:
        """``redactor.scrub(text)`` for text that repeats, remembered (a dict lookup when it does)."""
        cached = self._scrubbed
        if cached[0] is not redactor:
            cached = self._scrubbed = (redactor, {})
        done: dict[str, str] = cached[1]
        try:
            return done[text]
        except KeyError:
            scrubbed: str = redactor.scrub(text)
            if len(done) < 1024:
                done[text] = scrubbed
            return scrubbed

    def _head(
        self,
        created: float,
        level: str,
        logger: str,
        message: str,
        state: Any,
        context: Mapping[str, Any] | str,
        ids: str | None = None,
    ) -> str | None:
        """The line up to its extra fields: core keys, service fields, span ids, context fields.

        ``context`` is the LoggingContext mapping of the line (read once by the caller), or the
        request id alone, and ``ids`` its span ids fragment (None: the current span's). None
        when the service or context fields need the general path.
        """
        # structlog's bound keys: the general path adds them. _bound_contextvars() is None while
        # structlog.contextvars is not imported or its registry is empty: checked here, no call.
        registry = _registry
        if (_STRUCTLOG_CONTEXTVARS in sys.modules if registry is None else registry) and _bound_contextvars():
            return None
        fields = state.log_fields
        static = self._static
        if static[0] is not fields:
            static = self._static = (fields, _static_fragment(fields))
        if static[1] is None:
            return None
        cached = self._context
        if cached[0] is context and cached[1] is state.redactor and cached[2] is fields:
            context_fragment = cached[3]  # the same LoggingContext as the last line's
        elif isinstance(context, str):  # the request id alone (a kept access line)
            context_fragment = self._request_id_fragment(context, state)
        elif context:
            cached = self._context = (
                context,
                state.redactor,
                fields,
                _context_fragment(context, state.redactor, fields),
            )
            context_fragment = cached[3]
        else:
            context_fragment = ""
        if context_fragment is None:
            return None
        if ids is None:  # _current_ids()[3], without the call while the context is the last one
            last_ids = _last_ids
            ids = (last_ids if last_ids[0] is _current_context() else _current_ids())[3]
        # self._clock.format(created), without the call while the second is the same
        clock, second = self._clock, _trunc(created)
        last = clock.last
        prefix = last[1] if last[0] == second else clock.prefix(second)
        millis = _MILLIS[_trunc((created - second) * 1000)]
        return (
            f'{{"timestamp":"{prefix}{millis}","level":{_encode_str(level)}'
            f',"logger":{_encode_str(logger)},"message":{_encode_str(message)}'
            f"{static[1]}{ids}{context_fragment}"
        )

    def _request_id_fragment(self, request_id: str, state: Any) -> str | None:
        """``_context_fragment({"request_id": request_id}, ...)``, with the key's checks done once."""
        fields, redactor = state.log_fields, state.redactor
        cached = self._request_id_key
        if cached[0] is not fields or cached[1] is not redactor:
            usable = "request_id" not in _CORE and "request_id" not in fields
            cached = self._request_id_key = (fields, redactor, usable, redactor.is_sensitive("request_id"))
        if not cached[2]:
            return None
        return ',"request_id":' + _encode_str(REDACTED if cached[3] else redactor.scrub(request_id))

    def _access_json(
        self,
        created: float,
        level: str,
        message: str,
        method: str,
        route: str,
        path: str,
        status: int,
        duration_ms: float,
        response_bytes: int,
        client: str,
        user_agent: str,
        context: Mapping[str, Any] | str | None = None,
        ids: str | None = None,
    ) -> str | None:
        """The ``http.access`` line for these values; None when it needs the general path.

        Exactly what :meth:`format` renders for the record the LogRecord path builds (``extra``
        = the access fields, in this order), made with one f-string instead of the generic
        extra-field loop. ``context`` and ``ids`` are the LoggingContext mapping and the span ids
        fragment of the line (None: the current ones), for a line kept to be rendered later
        (obskit._recording.logbuffer).
        """
        state = _state.STATE
        fields = state.log_fields
        keys = self._access_keys
        if keys[0] is not fields or keys[1] is not state.redactor:
            made = tuple(_key_fragment(key, fields, state.redactor) for key in _ACCESS_KEYS)
            keys = self._access_keys = (fields, state.redactor, None if None in made else made)
        fragments = keys[2]
        if (
            fragments is None
            or method.__class__ is not str
            or route.__class__ is not str
            or path.__class__ is not str
            or status.__class__ is not int
            or duration_ms.__class__ is not float
            or not math.isfinite(duration_ms)
            or response_bytes.__class__ is not int
            or client.__class__ is not str
            or user_agent.__class__ is not str
        ):
            return None
        if context is None:
            context = current_fields()
        if context and not isinstance(context, str) and not context.keys().isdisjoint(_ACCESS_KEYS):
            return None
        redactor = state.redactor
        if redactor.scrubs_text:  # the path and user agent are the client's text
            message, path, route, client, user_agent = self._scrub_access(
                redactor, message, path, route, client, user_agent
            )
            if redactor.user_patterns:
                method = redactor.scrub(method)
        head = self._head(created, level, "http.access", message, state, context, ids)
        if head is None:
            return None
        k = fragments
        return safe_json(
            f"{head}{k[0]}{_encode_str(method)}{k[1]}{_encode_str(route)}{k[2]}{_encode_str(path)}"
            f"{k[3]}{int.__repr__(status)}{k[4]}{float.__repr__(duration_ms)}"
            f"{k[5]}{int.__repr__(response_bytes)}{k[6]}{_encode_str(client)}{k[7]}{_encode_str(user_agent)}}}"
        )

    def _scrub_access(
        self, redactor: Any, message: str, path: str, route: str, client: str, user_agent: str
    ) -> tuple[str, str, str, str, str]:
        """The access line's text values scrubbed as the general path scrubs each of them.

        The message is ``"{method} {path} {status}"``: the method (a known one, or ``_OTHER``)
        and the status hold no credential, so the message changes only if the path does or the
        path ends where a key's value would begin (``/token:``, then `` 200``), unless the user's
        own patterns apply. Values that repeat (route, client, user agent) are remembered.
        """
        scrub, same = redactor.scrub, self._scrub_same
        scrubbed = scrub(path)
        if scrubbed is not path or path[-1:] in _OPEN_ENDS or redactor.user_patterns:
            message = scrub(message)
        return message, scrubbed, same(route, redactor), same(client, redactor), same(user_agent, redactor)

    def _direct_line(self, record: logging.LogRecord, extra: dict[str, Any] | None) -> str | None:
        """``_encode(self.to_dict(record))`` built without the dict, for the common record.

        The common record has no extra attributes, exception or stack, and string service and
        context fields whose names collide with nothing. Anything else returns None and takes the
        general path. Worth it because it is most log lines (see docs/performance.md).
        """
        if record.exc_info or record.exc_text or record.stack_info:
            return None
        state = _state.STATE
        redactor = state.redactor
        try:
            context = current_fields()
            message = record.getMessage()
            if redactor.scrubs_text:
                message = redactor.scrub(message) if record.args else self._scrub_same(message, redactor)
            head = self._head(record.created, record.levelname, record.name, message, state, context)
            if head is None:
                return None
            if not extra and not state.settings.log_source:
                return head + "}"  # most lines
            fields, scrub = state.log_fields, redactor.scrub
            parts = [head]
            if state.settings.log_source and record.name != _ACCESS_LOGGER:
                if (context and not context.keys().isdisjoint(_SOURCE)) or (
                    extra and not extra.keys().isdisjoint(_SOURCE)
                ):
                    return None  # renamed to field_<key> by the general path
                parts.append(_source_fragment(record))
            if extra:
                if context and not context.keys().isdisjoint(extra):
                    return None
                keys = self._keys
                if keys[0] is not fields or keys[1] is not state.redactor:
                    keys = self._keys = (fields, state.redactor, {})
                checked = keys[2]
                for key, value in extra.items():
                    fragment = checked.get(key, _UNCHECKED)
                    if fragment is _UNCHECKED:
                        fragment = _key_fragment(key, fields, state.redactor)
                        if len(checked) < 256:
                            checked[key] = fragment
                    if fragment is None:
                        return None
                    cls = value.__class__
                    if cls is str:
                        parts.append(fragment + _encode_str(scrub(value)))
                        continue
                    encoded = _scalar(value)
                    if encoded is None:
                        return None
                    parts.append(fragment + encoded)
        except Exception:  # an int too long to print, a message that cannot be made: general path
            return None
        parts.append("}")
        return "".join(parts)

    def to_dict(self, record: logging.LogRecord) -> dict[str, Any]:
        """The fields of ``record`` as they will be rendered."""
        state = _state.STATE
        event = _wrapped_event(record)
        out: dict[str, Any] = {
            "timestamp": self._clock.format(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": state.redactor.scrub(
                _message(record) if event is None else _str_or_marker(event.pop("event", ""))
            ),
            **state.log_fields,
        }
        trace_id = getattr(record, "otelTraceID", None)
        if trace_id and trace_id != "0":
            out["trace_id"], out["span_id"] = trace_id, record.otelSpanID  # type: ignore[attr-defined]
        else:
            _trace_ids(out)
        bound = _bound_contextvars()
        if bound:
            _add_fields(out, bound, state.redactor)
        context = current_fields()
        if context:
            _add_fields(out, context, state.redactor)
        if state.settings.log_source and record.name != _ACCESS_LOGGER:
            out["module"], out["function"], out["line"] = record.module, record.funcName, record.lineno
        exc_info = record.exc_info
        if event is not None:
            asked = _exc_tuple(event.pop("exc_info", None), False)
            exc_info = exc_info or asked
            event.pop("stack_info", None)  # asked for at the call; the stack is gone by now
            _add_fields(out, event, state.redactor)
        attrs = record.__dict__
        if len(attrs) > _BASE_KEYS:
            structured = attrs.get(_STRUCTLOG_FIELDS)
            if structured:
                _add_fields(out, structured, state.redactor)
            extra = {k: v for k, v in attrs.items() if k not in _RESERVED}
            if extra:
                _add_fields(out, extra, state.redactor)
        if exc_info:
            out["exception"] = _exception(exc_info, self)
        elif record.exc_text:
            out["exception"] = {"type": "", "message": "", "stack": state.redactor.scrub(record.exc_text)}
        if record.stack_info:
            out["stack_info"] = state.redactor.scrub(self.formatStack(record.stack_info))
        return out


class ConsoleFormatter(JsonFormatter):
    """Human-readable lines: ``time LEVEL logger: message key=value ...`` (same fields as JSON)."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` for a terminal."""
        data = self.to_dict(record)
        head = f"{data.pop('timestamp')} {data.pop('level'):<8} {data.pop('logger')}: {data.pop('message')}"
        exception = data.pop("exception", None)
        stack_info = data.pop("stack_info", None)
        tail = " ".join(f"{k}={_str_or_marker(v)}" for k, v in data.items())
        text = f"{head}  {tail}" if tail else head
        if exception:
            text = f"{text}\n{exception['stack']}"
        if stack_info:
            text = f"{text}\n{stack_info}"
        return safe_text(text)


def _message(record: logging.LogRecord) -> str:
    """The record's message, or its format when the arguments do not fit (or ``str()`` raises).

    The line is kept, as exported records keep it.
    """
    try:
        return record.getMessage()
    except Exception:
        return record.msg if record.msg.__class__ is str else _text_of(record.msg)


def _wrapped_event(record: logging.LogRecord) -> dict[str, Any] | None:
    """A copy of the event of a record from structlog's ``ProcessorFormatter.wrap_for_formatter``.

    Such a record's message is structlog's event dict; obskit renders it as structlog's
    ``ProcessorFormatter`` would see it: ``event`` is the message, the other keys are fields.
    """
    msg = record.msg
    if msg.__class__ is dict and "_logger" in record.__dict__ and "_name" in record.__dict__:
        return {k: v for k, v in msg.items() if k not in ("_record", "_from_structlog")}
    return None


def _exc_tuple(exc_info: Any, error: bool) -> Any:
    """An ``exc_info`` as structlog takes it (True, an exception, a tuple) as a ``sys.exc_info()`` tuple.

    ``error`` is whether the call was ``.exception()``, where structlog takes the
    exception being handled when none is given.
    """
    if exc_info is True or (error and exc_info is None):
        current = sys.exc_info()
        return current if current[0] is not None else None
    if isinstance(exc_info, BaseException):
        return (type(exc_info), exc_info, exc_info.__traceback__)
    if isinstance(exc_info, tuple) and len(exc_info) == 3 and exc_info[0] is not None:
        return exc_info
    return None


def _str_or_marker(value: Any) -> str:
    """``str(value)``, or the marker when that raises (an int too long to print, say)."""
    if value.__class__ is str:
        return value
    try:
        return str(value)
    except Exception:  # an int too long to print, a broken __str__: the field alone is lost
        return unrenderable(value)


# -- structlog -------------------------------------------------------------------------------------


def _is_structlog(name: str) -> bool:
    return name == "structlog" or name.startswith("structlog.")


def _structlog_depth() -> int:
    """The ``stacklevel`` that makes the stdlib record name the caller of the structlog logger.

    Counted from the processor chain: its own frames and the bound logger's are all structlog's,
    and they are one more than stand between the stdlib call and the user's frame (the chain
    has returned by then). Their number depends on the wrapper class, so it is counted.
    """
    depth = 0
    frame: Any = sys._getframe(2)
    while frame is not None and _is_structlog(frame.f_globals.get("__name__") or ""):
        depth += 1
        frame = frame.f_back
    return max(depth, 1)


_STDLIB_FIND_CALLER = logging.Logger.findCaller


def _forward_to_stdlib(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
    """Last processor of :func:`get_logger`: hand the event to stdlib logging, fields kept apart."""
    event = event_dict.pop("event", "")
    exc_info = event_dict.pop("exc_info", None)
    if exc_info is True or (method_name == "exception" and exc_info is None):
        exc_info = True
    stack_info = bool(event_dict.pop("stack_info", False))
    kwargs: dict[str, Any] = {
        "extra": {_STRUCTLOG_FIELDS: dict(event_dict)},
        # A logger class with a findCaller of its own (structlog's LoggerFactory installs one
        # that skips structlog's frames itself) finds the caller alone: counting would overshoot.
        "stacklevel": _structlog_depth() if type(logger).findCaller is _STDLIB_FIND_CALLER else 1,
    }
    if exc_info:
        kwargs["exc_info"] = exc_info
    if stack_info:
        kwargs["stack_info"] = True
    return (_str_or_marker(event),), kwargs


def get_logger(name: str | None = None, **initial: Any) -> Any:
    """A structlog logger whose events go through stdlib ``logging`` and render as obskit JSON.

    Safe at module level before ``configure()``. ``log.info("job done", job_id=7)`` gives the same
    line as ``logging.getLogger(name).info("job done", extra={"job_id": 7})``. Independent of any
    global ``structlog.configure()``.
    """
    import structlog

    return structlog.wrap_logger(
        logging.getLogger(name),
        processors=[structlog.stdlib.PositionalArgumentsFormatter(), _forward_to_stdlib],
        wrapper_class=structlog.stdlib.BoundLogger,
        **initial,
    )


def _render_structlog(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> str:
    event_dict.pop("timestamp", None)
    message = _str_or_marker(event_dict.pop("event", ""))
    level = str(event_dict.pop("level", method_name)).upper()
    level = "WARNING" if level == "WARN" else level
    name = event_dict.pop("logger", None) or getattr(logger, "name", None) or _calling_module()
    exc_info = _exc_tuple(event_dict.pop("exc_info", None), method_name == "exception")
    source = _caller_source() if _state.STATE.settings.log_source else None
    out = render_record(time.time(), level, str(name), message, event_dict, exc_info, source=source)
    return safe_json(_encode(out))


def _calling_module() -> str:
    """The ``__name__`` of the module that made the log call (outside structlog and obskit).

    The name of a logger that has none (structlog's ``PrintLogger``), as stdlib's
    ``getLogger(__name__)`` would have it; ``"root"`` when no frame is found.
    """
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__") or ""
        if not (name == "obskit.logging" or name == "structlog" or name.startswith("structlog.")):
            return str(name) or "root"
        frame = frame.f_back  # type: ignore[assignment]
    return "root"


def structlog_processors() -> list[Callable[..., Any]]:
    """Processors for ``structlog.configure(processors=...)`` that print obskit's JSON lines.

    Use them when structlog writes directly (``PrintLoggerFactory``, or :func:`print_logger_factory`
    to keep the names given to ``structlog.get_logger(name)``) rather than through stdlib logging;
    the lines have the same fields as :class:`JsonFormatter` produces, keys bound with
    ``structlog.contextvars.bind_contextvars()`` included. The ``logger`` field is the bound
    ``logger`` key, else the logger's name, else the calling module's ``__name__``.
    """
    import structlog

    return [
        structlog.processors.add_log_level,
        structlog.stdlib.PositionalArgumentsFormatter(),
        _render_structlog,
    ]


def print_logger_factory(file: Any = None) -> Any:
    """A ``structlog.PrintLoggerFactory`` whose loggers keep the name given to ``get_logger(name)``.

    structlog's own ``PrintLogger`` has no name; with this factory :func:`structlog_processors`
    (and structlog's ``add_logger_name``) see it. ``file`` defaults to standard output.
    """
    import structlog

    class _NamedPrintLoggerFactory(structlog.PrintLoggerFactory):
        def __call__(self, *args: Any) -> Any:
            logger: Any = super().__call__(*args)
            if args and isinstance(args[0], str):
                logger.name = args[0]
            return logger

    return _NamedPrintLoggerFactory(file)


def add_obskit_fields(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
    """A structlog processor adding obskit's fields to the event; put it before your renderer.

    Adds the service fields (``service``, ``environment``, ...), ``trace_id`` and ``span_id``
    (inside a span) and the active :class:`~obskit.LoggingContext` fields (``request_id``, ...),
    redacted as obskit's own lines have them. Keys the event already has are kept. Never raises:
    a failure costs obskit's fields, not the log line. ``obskit.configure()`` inserts it in a
    structlog set-up made before it (see docs/logging.md).
    """
    try:
        state = _state.STATE
        added: dict[str, Any] = dict(state.log_fields)
        _trace_ids(added)
        context = current_fields()
        if context:
            _add_fields(added, context, state.redactor)
        if state.settings.log_source:
            added.update(_caller_source())
        for key, value in added.items():
            event_dict.setdefault(key, value)
    except Exception as exc:
        report_internal_error("structlog fields", exc)
    return event_dict


def _renders_itself(chain: list[Any]) -> bool:
    """Whether a structlog chain renders its own lines (so obskit's fields belong before its end).

    Not when it ends in obskit's own renderer (the fields are there already) or hands the event
    to stdlib logging (obskit's handler or the user's ``ProcessorFormatter`` adds them there).
    """
    import structlog

    last = chain[-1]
    handed_on = (
        _render_structlog,
        _forward_to_stdlib,
        structlog.stdlib.render_to_log_kwargs,
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    )
    return _render_structlog not in chain and not any(last == each for each in handed_on)


def adopt_structlog(undo: list[Callable[[float], None]]) -> bool:
    """Add obskit's fields to a structlog set-up the application made before ``configure()``.

    Touches two things, each only once however often ``configure()`` runs, and appends to
    ``undo`` what puts them back (``shutdown()`` runs it):

    - structlog's global processor chain, when ``structlog.configure()`` was called and the chain
      renders its own lines: :func:`add_obskit_fields` goes just before its last processor (the
      renderer). The list is changed in place, so loggers structlog already cached get it too.
    - each ``structlog.stdlib.ProcessorFormatter`` on a root-logger handler: the same, in its
      ``processors``; it then adds the fields to structlog's and stdlib's records alike.

    Returns whether such a handler writes to the console: the application's structlog set-up
    owns the console, and obskit adds no console handler of its own (each line would be written
    twice). Nothing happens when structlog was never imported.
    """
    structlog = sys.modules.get("structlog")
    if structlog is None:
        return False
    from obskit._recording.loghandler import writes_to_console

    owns_console = False
    try:
        if structlog.is_configured():
            chain = structlog.get_config()["processors"]
            if (
                isinstance(chain, list)
                and chain
                and add_obskit_fields not in chain
                and _renders_itself(chain)
            ):
                chain.insert(len(chain) - 1, add_obskit_fields)
                undo.append(lambda timeout: _take_out(chain))
        for handler in logging.getLogger().handlers:
            formatter = handler.formatter
            if not isinstance(formatter, structlog.stdlib.ProcessorFormatter):
                continue
            processors = list(formatter.processors)
            if processors and add_obskit_fields not in processors:
                before = formatter.processors
                formatter.processors = [*processors[:-1], add_obskit_fields, processors[-1]]
                undo.append(partial(_put_back, formatter, before))
            owns_console = owns_console or writes_to_console(handler)
    except Exception as exc:
        report_internal_error("structlog set-up", exc)
    return owns_console


def _put_back(formatter: Any, processors: Any, timeout: float) -> None:
    formatter.processors = processors


def _take_out(chain: list[Any]) -> None:
    while add_obskit_fields in chain:
        chain.remove(add_obskit_fields)
