"""JSON (and console) log rendering for stdlib ``logging`` and structlog, sharing one record shape.

Every line is one JSON object: ``timestamp`` (UTC, RFC 3339), ``level``, ``logger``, ``message``,
``service``, ``environment``, ``trace_id``/``span_id`` (W3C hex, only inside a span), the fields
of the active :class:`~obskit.LoggingContext` (``request_id``, ``user_id``, ...), ``extra`` fields,
and ``exception`` (type, message, stack). Sensitive keys are redacted with the same list as span
attributes. Messages with newlines, quotes or non-ASCII stay one valid JSON line.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from opentelemetry.trace import get_current_span

from obskit import _state
from obskit._context import current_fields

__all__ = [
    "ConsoleFormatter",
    "JsonFormatter",
    "get_logger",
    "render_record",
    "structlog_processors",
]

_STRUCTLOG_FIELDS = "_obskit_fields"
_RESERVED = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "taskName", _STRUCTLOG_FIELDS, "otelTraceID", "otelSpanID", "otelServiceName",
       "otelTraceSampled"}
)
_BASE_KEYS = len(logging.LogRecord("", 0, "", 0, "", (), None).__dict__)
_CORE = frozenset({"timestamp", "level", "logger", "message", "service", "environment", "trace_id", "span_id",
                   "exception", "stack_info"})
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=repr)


class _Clock:
    """RFC 3339 UTC timestamps with millisecond precision; the seconds part is cached."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def format(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._prefix}.{int((created - second) * 1000):03d}Z"


_ids_cache: list[Any] = [None, None, None]


def _trace_ids(out: dict[str, Any]) -> None:
    ctx = get_current_span().get_span_context()
    if not ctx.is_valid:
        return
    cache = _ids_cache
    if cache[0] is not ctx:
        cache[:] = [ctx, format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")]
    out["trace_id"] = cache[1]
    out["span_id"] = cache[2]


def _add_fields(out: dict[str, Any], fields: Mapping[str, Any], redactor: Any) -> None:
    sensitive = redactor.is_sensitive
    for key, value in fields.items():
        if key in _CORE:
            key = f"field_{key}"
        out[key] = "[REDACTED]" if sensitive(key) else (redactor.value(key, value) if isinstance(value, Mapping)
                                                         else value)


def _exception(exc_info: Any, formatter: logging.Formatter | None = None) -> dict[str, Any]:
    exc_type, exc, tb = exc_info
    stack = (formatter.formatException(exc_info) if formatter is not None
             else "".join(traceback.format_exception(exc_type, exc, tb)).rstrip("\n"))
    return {"type": getattr(exc_type, "__name__", str(exc_type)), "message": str(exc), "stack": stack}


def render_record(
    created: float,
    level: str,
    logger: str,
    message: str,
    fields: Mapping[str, Any] | None = None,
    exc_info: Any = None,
    clock: _Clock | None = None,
) -> dict[str, Any]:
    """The dict every obskit log line is made of (before JSON encoding)."""
    state = _state.STATE
    out: dict[str, Any] = {
        "timestamp": (clock or _CLOCK).format(created),
        "level": level,
        "logger": logger,
        "message": message,
        **state.log_fields,
    }
    _trace_ids(out)
    context = current_fields()
    if context:
        _add_fields(out, context, state.redactor)
    if fields:
        _add_fields(out, fields, state.redactor)
    if exc_info:
        out["exception"] = _exception(exc_info)
    return out


_CLOCK = _Clock()


class JsonFormatter(logging.Formatter):
    """Render each stdlib log record as one line of JSON (see the module docstring for the fields).

    Attach it to any handler; ``obskit.configure()`` installs it on the root logger for you.
    """

    def __init__(self) -> None:
        super().__init__()
        self._clock = _Clock()

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record``; never raises (a broken field is rendered with ``repr``)."""
        return _ENCODER.encode(self.to_dict(record))

    def to_dict(self, record: logging.LogRecord) -> dict[str, Any]:
        """The fields of ``record`` as they will be rendered."""
        state = _state.STATE
        out: dict[str, Any] = {
            "timestamp": self._clock.format(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **state.log_fields,
        }
        trace_id = getattr(record, "otelTraceID", None)
        if trace_id and trace_id != "0":
            out["trace_id"], out["span_id"] = trace_id, record.otelSpanID  # type: ignore[attr-defined]
        else:
            _trace_ids(out)
        context = current_fields()
        if context:
            _add_fields(out, context, state.redactor)
        attrs = record.__dict__
        if len(attrs) > _BASE_KEYS:
            structured = attrs.get(_STRUCTLOG_FIELDS)
            if structured:
                _add_fields(out, structured, state.redactor)
            extra = {k: v for k, v in attrs.items() if k not in _RESERVED}
            if extra:
                _add_fields(out, extra, state.redactor)
        if record.exc_info:
            out["exception"] = _exception(record.exc_info, self)
        elif record.exc_text:
            out["exception"] = {"type": "", "message": "", "stack": record.exc_text}
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        return out


class ConsoleFormatter(JsonFormatter):
    """Human-readable lines: ``time LEVEL logger: message key=value ...`` (same fields as JSON)."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` for a terminal."""
        data = self.to_dict(record)
        head = f"{data.pop('timestamp')} {data.pop('level'):<8} {data.pop('logger')}: {data.pop('message')}"
        exception = data.pop("exception", None)
        stack_info = data.pop("stack_info", None)
        tail = " ".join(f"{k}={v}" for k, v in data.items())
        text = f"{head}  {tail}" if tail else head
        if exception:
            text = f"{text}\n{exception['stack']}"
        if stack_info:
            text = f"{text}\n{stack_info}"
        return text


# -- structlog -------------------------------------------------------------------------------------


def _forward_to_stdlib(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
    """Last processor of :func:`get_logger`: hand the event to stdlib logging, fields kept apart."""
    event = event_dict.pop("event", "")
    exc_info = event_dict.pop("exc_info", None)
    if exc_info is True or (method_name == "exception" and exc_info is None):
        exc_info = True
    kwargs: dict[str, Any] = {"extra": {_STRUCTLOG_FIELDS: dict(event_dict)}, "stacklevel": 2}
    if exc_info:
        kwargs["exc_info"] = exc_info
    return (str(event),), kwargs


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
    message = str(event_dict.pop("event", ""))
    level = str(event_dict.pop("level", method_name)).upper()
    level = "WARNING" if level == "WARN" else level
    name = event_dict.pop("logger", None) or getattr(logger, "name", "") or ""
    exc_info = event_dict.pop("exc_info", None)
    if exc_info is True or (method_name == "exception" and exc_info is None):
        import sys

        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    out = render_record(time.time(), level, str(name), message, event_dict, exc_info or None)
    return _ENCODER.encode(out)


def structlog_processors() -> list[Callable[..., Any]]:
    """Processors for ``structlog.configure(processors=...)`` that print obskit's JSON lines.

    Use them when structlog writes directly (``PrintLoggerFactory``) rather than through stdlib
    logging; the lines have the same fields as :class:`JsonFormatter` produces.
    """
    import structlog

    return [structlog.processors.add_log_level, structlog.stdlib.PositionalArgumentsFormatter(), _render_structlog]
