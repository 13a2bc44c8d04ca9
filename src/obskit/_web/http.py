"""Framework-neutral request telemetry: span, request id, RED metrics and the access-log line.

The ASGI and WSGI middlewares translate their protocol into calls on :class:`Exchange`; what
can be decided once per settings (excluded paths, mounted endpoints, header names) is decided
in :class:`Config`, cached on the :class:`Hub` for as long as the settings object stays the same.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
from collections import deque
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import get_current as _otel_current
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanContext, Status, StatusCode
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from obskit._core import state as _state
from obskit._core.context import _FIELDS, new_request_id
from obskit._core.errors import report_internal_error
from obskit._core.redact import Redactor, redactor_for
from obskit._core.settings import Settings
from obskit._export.pipeline import RateLimitFilter
from obskit._recording.exemplars import OTEL_CONTEXT_VAR as _OTEL_VAR
from obskit._recording.exemplars import current_exemplar, exemplar_due
from obskit._recording.loghandler import ObskitHandler
from obskit._recording.metrics import MetricsCollector
from obskit._recording.store import value_adder
from obskit._recording.tracing import describe, record_exception
from obskit._web.serverspan import ServerSpan, start_server_span
from obskit.logging import JsonFormatter, _current_ids, _span_ids

__all__ = [
    "UNMATCHED_ROUTE",
    "Config",
    "Exchange",
    "Hub",
    "add_access_fields",
    "error_type_of",
    "flask_route",
    "host_and_port",
    "proxy_view",
    "server_attributes",
    "valid_request_id",
]

#: The one ``route`` label value (and span name suffix) of requests that matched no route.
UNMATCHED_ROUTE = "__unmatched__"
#: Methods kept as they are; any other becomes ``_OTHER`` (OpenTelemetry HTTP conventions, and the
#: official instrumentations' list: QUERY is known there too).
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}
)
#: The request headers a trusted proxy sets (``trust_forwarded_headers``), as ASGI spells them.
FORWARDED_HEADERS = frozenset({b"forwarded", b"x-forwarded-proto", b"x-forwarded-for", b"x-forwarded-host"})
#: The port a URL of each scheme has when it names none (left out of ``server.port``).
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
ACCESS_LOGGER = logging.getLogger("http.access")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_FLASK_PARAM = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


def valid_request_id(value: str | None) -> str:
    """``value`` if it is a usable request id (1-128 of ``[A-Za-z0-9._:-]``), else a new one."""
    if value and _REQUEST_ID.fullmatch(value):
        return value
    return new_request_id()


def flask_route(rule: str) -> str:
    """A Flask/Werkzeug rule in OpenAPI template style: ``/items/<int:item_id>`` -> ``/items/{item_id}``."""
    return _FLASK_PARAM.sub(r"{\1}", rule)


class Config:
    """What the settings decide about serving requests, computed once per settings object."""

    __slots__ = (
        "_bound",
        "_excluded",
        "_gauges",
        "_hosts",
        "_queries",
        "_red",
        "access_log",
        "echo_always",
        "echo_incoming",
        "forwarded",
        "health",
        "metrics_path",
        "redactor",
        "request_id_header",
        "request_id_name",
        "server_span",
        "settings",
    )

    def __init__(self, settings: Settings, server_span: bool = True) -> None:
        self.settings = settings
        #: Whether requests get obskit's SERVER span (not when OpenTelemetry's own server
        #: middleware, outside obskit's, makes the request's server span).
        self.server_span = server_span
        patterns = settings.excluded_patterns()
        self._excluded = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None
        self.request_id_header = settings.request_id_header.lower()
        #: The same, as ASGI spells header names (lowercase bytes).
        self.request_id_name = self.request_id_header.encode("latin-1")
        #: Whether the response carries the request id: always, or when the request had one.
        self.echo_always = settings.request_id_echo == "always"
        self.echo_incoming = settings.request_id_echo == "incoming"
        self.access_log = settings.access_log
        #: The forwarded headers to read (a trusted proxy's), or None: they are ignored.
        self.forwarded = FORWARDED_HEADERS if settings.trust_forwarded_headers else None
        #: Hides sensitive values in ``url.query`` when the span is made.
        self.redactor: Redactor = redactor_for(settings)
        #: Host header -> (server.address, server.port), and query -> ``url.query``, as computed
        #: before: a service sees few distinct hosts and mostly repeated queries. Capped (both
        #: come from clients); past the cap each is computed again.
        self._hosts: dict[str, tuple[str, int | None]] = {}
        self._queries: dict[str, str] = {}
        self.metrics_path = settings.prometheus_path if "prometheus" in settings.metrics_exporter else None
        self.health = {
            settings.health_path: "full",
            settings.liveness_path: "live",
            settings.readiness_path: "ready",
        }
        #: (family key, label values) -> a bound child of the RED families, for the hot path. A
        #: bound child follows store swaps (test capture) itself; the cache is capped.
        self._bound: dict[tuple[str, ...], Any] = {}
        #: (method, route, status, error type) -> (store, add to the requests counter, duration
        #: histogram child) and method -> (store, add to the in-progress gauge): prometheus_client's own
        #: children, for as long as the store is the current one (see :meth:`record`).
        self._red: dict[tuple[str, str, str, str], tuple[Any, Any, Any]] = {}
        self._gauges: dict[str, tuple[Any, Any]] = {}

    def in_progress(self, method: str) -> Any:
        """A function adding to the in-progress gauge of ``method`` (+1 at the start, -1 at the end)."""
        entry = self._gauges.get(method)
        if entry is None or entry[0] is not _state.STATE.store:
            bound, child = self._child("http_in_progress", method)
            if child is None:
                return bound.inc
            entry = self._gauges[method] = (_state.STATE.store, value_adder(child))
        return entry[1]

    def record(self, method: str, route: str, status: str, error_type: str, duration: float) -> None:
        """Count a request and observe its duration (with an exemplar, as the histogram handle does)."""
        state = _state.STATE
        store = state.store
        entry = self._red.get((method, route, status, error_type))
        if entry is None or entry[0] is not store:
            entry = self._red_entry(method, route, status, error_type)
        entry[1](1.0)
        if entry[0] is None:  # not cached (an overflow child): the bound histogram records
            entry[2].observe(duration)
        elif state.tracer is not None and store.exemplars:
            entry[2].observe(duration, exemplar_due(entry[2], duration, current_exemplar))
        else:
            entry[2].observe(duration)

    def _red_entry(self, method: str, route: str, status: str, error_type: str) -> tuple[Any, Any, Any]:
        counter, counter_child = self._child("http_requests", method, route, status)
        histogram, histogram_child = self._child("http_duration", method, route, error_type)
        if counter_child is None or histogram_child is None:
            return (None, counter.inc, histogram)
        entry = (_state.STATE.store, value_adder(counter_child), histogram_child)
        if len(self._red) < _BOUND_CAP:
            self._red[(method, route, status, error_type)] = entry
        return entry

    def _child(self, family: str, *values: str) -> tuple[Any, Any]:
        """A RED family's bound child, and its prometheus_client child in the current store.

        The latter is None when it must not be cached (an overflow child, counted at each use).
        """
        bound = self.bound(family, *values)
        child = bound._current()
        return bound, (child if bound._store is _state.STATE.store else None)

    def bound(self, family: str, *values: str) -> Any:
        """The bound child of RED family ``family`` for these label values (in its label order).

        ``family`` is ``http_requests``, ``http_duration`` or ``http_in_progress``.
        """
        key = (family, *values)
        child = self._bound.get(key)
        if child is None:
            handle = MetricsCollector._family(family)
            child = handle.labels(**dict(zip(handle.label_names, values, strict=True)))
            if len(self._bound) < _BOUND_CAP:
                self._bound[key] = child
        return child

    def excluded(self, path: str) -> bool:
        """Whether requests to ``path`` get no telemetry."""
        return self._excluded is not None and self._excluded.search(path) is not None


#: ids of the exceptions obskit's access line logged at ERROR with their stack, newest last. The server
#: that catches the same exception next logs it again; :class:`AlreadyLoggedFilter` drops that
#: copy. Ids, not the exceptions: they cannot be weakly referenced, and holding them would keep
#: their frames alive. The server logs within microseconds of obskit, so an id is not reused.
LOGGED_ERRORS: deque[int] = deque(maxlen=64)
#: The loggers on which servers report an exception that escaped the application.
SERVER_ERROR_LOGGERS = ("uvicorn.error", "gunicorn.error", "hypercorn.error")


class AlreadyLoggedFilter(logging.Filter):
    """Drops a server's record of an exception that obskit's access line already logged.

    uvicorn logs "Exception in ASGI application", gunicorn "Error handling request" and hypercorn
    "Error in ASGI Framework" with the stack of the exception the application raised; obskit's
    ERROR access line has logged it, with the trace and request ids. One error, one log line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a record whose exception obskit has logged."""
        info = record.exc_info
        return not (info and info[1] is not None and id(info[1]) in LOGGED_ERRORS)


#: Distinct Host headers and queries whose attribute values a config keeps.
_PARSED_CAP = 1024
#: Bound RED children kept per config: methods x routes x statuses, bounded by the routes an app
#: has (unmatched paths share one label); past this the handles' own label caches serve.
_BOUND_CAP = 4096


class Hub:
    """Shared by one middleware and configure(): on/off switch and the current :class:`Config`.

    ``configure(app)`` turns it on and ``shutdown()`` off (the middleware then only passes
    requests through); a middleware made with ``obskit.asgi.middleware`` stays on and follows
    whatever obskit is configured with, including nothing.
    """

    __slots__ = ("_config", "enabled", "server_span")

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.server_span = True
        self._config: Config | None = None

    def config(self) -> Config | None:
        """The config for the active settings, or None when the middleware is switched off."""
        if not self.enabled:
            return None
        settings = _state.STATE.settings
        config = self._config
        if config is None or config.settings is not settings:
            config = self._config = Config(settings, self.server_span)
        return config


def _method(raw: str) -> str:
    method = raw.upper()
    return method if method in KNOWN_METHODS else "_OTHER"


def _span_method(method: str) -> str:
    """The method as a span name starts: ``HTTP`` for one not in :data:`KNOWN_METHODS`."""
    return "HTTP" if method == "_OTHER" else method


def error_type_of(error: BaseException | None, status: int) -> str:
    """The ``error.type`` of a request ("" when it did not fail).

    An exception gives its class name as the ``exception.type`` of the span's exception event
    spells it (module and qualified name, the module left out for builtins), so both say the same;
    a 5xx answer without one gives its status code.
    """
    if error is not None:
        return exception_attributes_type(error)
    return str(status) if status >= 500 else ""


def exception_attributes_type(error: BaseException) -> str:
    """``exception.type`` as the SDK's ``record_exception`` (and :func:`exception_attributes`) writes it."""
    cls = type(error)
    module, qualname = cls.__module__, cls.__qualname__
    return f"{module}.{qualname}" if module and module != "builtins" else qualname


class Exchange:
    """One request's telemetry, from :meth:`start` to :meth:`finish`. Never raises into the app."""

    __slots__ = (
        "_context_token",
        "_exchange_token",
        "_fields_token",
        "_fields_value",
        "_in_progress",
        "_own_fields",
        "_parent",
        "_started",
        "access_fields",
        "client",
        "config",
        "echo",
        "method",
        "path",
        "request_id",
        "response_bytes",
        "span",
        "status",
        "user_agent",
    )

    def __init__(self, config: Config, method: str, path: str, request_id: str | None) -> None:
        self.config = config
        self.method = method if method in KNOWN_METHODS else _method(method)
        self.path = path
        self.request_id = valid_request_id(request_id)
        #: Whether the response gets the request id header (the ``request_id_echo`` setting).
        self.echo = config.echo_always or (config.echo_incoming and request_id is not None)
        self.status = 0
        self.span: Any = None
        self.user_agent = ""
        self.client = ""
        #: Body bytes of the response, as the app handed them to the server.
        self.response_bytes = 0
        #: Fields the app added to the access line (:func:`add_access_fields`), or None.
        self.access_fields: dict[str, Any] | None = None
        self._context_token: object = None
        self._exchange_token: Any = None
        #: The context the propagators extracted from the request's headers (empty without them).
        self._parent = _NO_PARENT
        self._fields_token: Any = None
        #: The LoggingContext mapping activate() bound, and whether it holds the request id alone.
        self._fields_value: Any = None
        self._own_fields = False
        self._in_progress: Any = None
        self._started = time.perf_counter()

    def start(self, carrier: Mapping[str, str], attributes: dict[str, Any]) -> None:
        """Start the SERVER span (continuing an incoming ``traceparent``) and make it current.

        What the propagators extract from ``carrier`` (baggage, trace state, a custom
        propagator's values) is current too while the request runs (:meth:`activate`).
        """
        try:
            self.user_agent = attributes.get("user_agent.original", "")
            self.client = attributes.get("client.address", "")
            # Under the official server instrumentation (server_span off) its middleware has
            # already made the extracted context and its span current: nothing to add.
            server_span = self.config.server_span
            parent = _NO_PARENT if carrier is NO_HEADERS or not server_span else _extract(carrier)
            self._parent = parent
            tracer = _state.STATE.tracer
            if tracer is not None and server_span:
                self.span = start_server_span(tracer, _span_method(self.method), parent, attributes)
            self._in_progress = self.config.in_progress(self.method)
            self._in_progress(1.0)
        except Exception as exc:
            report_internal_error("http request start", exc)
        self.activate()

    def activate(self) -> None:
        """Make the span, the extracted context and the request id current (again, for a WSGI body).

        The request runs in the context the propagators extracted (baggage, a custom
        propagator's values; the remote parent as the current span when obskit makes none),
        over whatever was current, with obskit's span on top: what attaching the extracted
        context and starting the span as current would give, as the official ASGI and WSGI
        instrumentations do.
        """
        span, parent = self.span, self._parent
        if parent:
            if _OTEL_VAR is not None:
                values = {**_OTEL_VAR.get(), **parent, _EXCHANGE_KEY: self}
                if span is not None:
                    values[_SPAN_KEY] = span
                self._context_token = _OTEL_VAR.set(otel_context.Context(values))
            else:  # pragma: no cover - another runtime context (OTEL_PYTHON_CONTEXT)
                merged = {**otel_context.get_current(), **parent, _EXCHANGE_KEY: self}
                if span is not None:
                    merged[_SPAN_KEY] = span
                self._context_token = otel_context.attach(otel_context.Context(merged))
        elif span is not None:
            if _OTEL_VAR is not None:  # what attach(set_span_in_context(span)) does, directly
                self._context_token = _OTEL_VAR.set(
                    otel_context.Context({**_OTEL_VAR.get(), _SPAN_KEY: span, _EXCHANGE_KEY: self})
                )
            else:  # pragma: no cover - another runtime context (OTEL_PYTHON_CONTEXT)
                self._context_token = otel_context.attach(
                    otel_context.set_value(_EXCHANGE_KEY, self, trace.set_span_in_context(span))
                )
        else:  # no OpenTelemetry context to ride in: a variable of its own (about 0.3 us a request)
            self._exchange_token = _EXCHANGE.set(self)
        outer = _FIELDS.get()
        self._own_fields = not outer
        self._fields_value = MappingProxyType({**outer, "request_id": self.request_id})
        self._fields_token = _FIELDS.set(self._fields_value)

    def suspend(self) -> bool:
        """Undo :meth:`activate` for a while, when called from the context it ran in.

        False, with nothing changed, from any other context (a task the app started, which got
        a copy of the request's context): :meth:`activate` is then not to be called.
        """
        if self._fields_token is None:
            return False
        try:
            _FIELDS.reset(self._fields_token)
        except (ValueError, RuntimeError):  # another context (or a token already used)
            return False
        self._fields_token = None
        self.deactivate()
        return True

    def deactivate(self) -> None:
        """Undo :meth:`activate`."""
        if self._fields_token is not None:
            _FIELDS.reset(self._fields_token)
            self._fields_token = None
        if self._exchange_token is not None:
            _EXCHANGE.reset(self._exchange_token)
            self._exchange_token = None
        token: Any = self._context_token
        if token is not None:
            self._context_token = None
            if _OTEL_VAR is not None and token.var is _OTEL_VAR:
                try:
                    _OTEL_VAR.reset(token)
                except ValueError:  # made in another context (a WSGI body closed elsewhere)
                    otel_context.detach(token)  # logs it, as OpenTelemetry does
            else:  # pragma: no cover - another runtime context
                otel_context.detach(token)

    def finish(self, route: str | None, error: BaseException | None, log_error: bool = True) -> None:
        """Record metrics, write the access line inside the span, end the span, deactivate.

        ``error`` is the exception that escaped the application; with ``log_error`` the access
        line carries its stack (the one obskit log of it).
        """
        try:
            duration = time.perf_counter() - self._started
            status = 500 if error is not None and self.status == 0 else self.status
            template = route or UNMATCHED_ROUTE
            if self._in_progress is not None:
                self._in_progress(-1.0)
            # One error.type for the span, its exception event and the duration metric.
            error_type = error_type_of(error, status)
            self.config.record(self.method, template, str(status), error_type, duration)
            if self.config.access_log or (error is not None and log_error):
                self._access_line(template, status, duration, error if log_error else None)
            if self.span is not None:
                self._end_span(route, status, error, error_type)
        except Exception as exc:
            report_internal_error("http request finish", exc)
        finally:
            self.deactivate()

    def _access_line(self, route: str, status: int, duration: float, error: BaseException | None) -> None:
        # An exception with its stack is an ERROR line whatever the status: one raised after the
        # response went out (a background task failing after a 200) keeps the status sent.
        level = logging.ERROR if status >= 500 or error is not None else logging.INFO
        if not ACCESS_LOGGER.isEnabledFor(level):
            return
        message = f"{self.method} {self.path} {status}"
        values = (
            self.method,
            route,
            self.path,
            status,
            round(duration * 1000, 3),
            self.response_bytes,
            self.client,
            self.user_agent,
        )
        added = self.access_fields
        if error is None and added is None and _write_direct(level, message, values, self):
            return
        fields = dict(zip(_ACCESS_FIELDS, values, strict=True))
        if added is not None:
            fields.update(added)
        exc_info = (type(error), error, error.__traceback__) if error is not None else None
        ACCESS_LOGGER.handle(_access_record(level, message, fields, exc_info))
        if error is not None:
            LOGGED_ERRORS.append(id(error))

    def _end_span(self, route: str | None, status: int, error: BaseException | None, error_type: str) -> None:
        span = self.span
        attributes: dict[str, Any] = {}
        name = None
        if route is not None:
            name = f"{_span_method(self.method)} {route}"
            attributes["http.route"] = route
        if status:
            attributes["http.response.status_code"] = status
        if error_type:
            attributes["error.type"] = error_type
        if error is not None:
            record_exception(span, error)
            span.set_status(Status(StatusCode.ERROR, describe(error)[:256]))
        elif error_type:
            span.set_status(Status(StatusCode.ERROR))
        if span.__class__ is ServerSpan and status.__class__ is int:
            span.end_request(name, attributes)  # str and int values: no cleaning needed
            return
        if name is not None:
            span.update_name(name)
        if attributes:
            span.set_attributes(attributes)  # one call (one lock) instead of one per attribute
        span.end()


#: The fields of an access line, in the order of its values (JsonFormatter._access_json's).
_ACCESS_FIELDS = (
    "method",
    "route",
    "path",
    "status",
    "duration_ms",
    "response_bytes",
    "client",
    "user_agent",
)
#: Names an added access field cannot have as is: the access line's own and the LogRecord's
#: attributes (``makeRecord`` refuses those); it is written as ``field_<name>`` instead.
_TAKEN = frozenset(_ACCESS_FIELDS) | frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

#: The exchange of the request being served, for :func:`add_access_fields`: a value of the
#: OpenTelemetry context the request runs in, which :meth:`Exchange.activate` sets anyway when
#: there is a span or an extracted context (one more key, no cost worth measuring); else a
#: context variable of its own.
_EXCHANGE_KEY = otel_context.create_key("obskit-exchange")
_EXCHANGE: contextvars.ContextVar[Exchange | None] = contextvars.ContextVar("obskit_exchange", default=None)


def add_access_fields(**fields: Any) -> None:
    """Add ``fields`` to the access line of the request being served (the last value of a key wins).

    Call it from the request's handler or anything it runs in the request's context. Outside a
    request it does nothing. A field named like one of the access line's own (``status``,
    ``path``...) is written as ``field_<name>``. The values are redacted as every log field is.
    """
    exchange: Exchange | None = _otel_current().get(_EXCHANGE_KEY) or _EXCHANGE.get()  # type: ignore[assignment]
    if exchange is None or not fields:
        return
    try:
        added = exchange.access_fields
        if added is None:
            added = exchange.access_fields = {}
        for key, value in fields.items():
            added[f"field_{key}" if key in _TAKEN else key] = value
    except Exception as exc:
        report_internal_error("add_access_fields", exc)


def _access_record(level: int, message: str, fields: dict[str, Any], exc_info: Any) -> logging.LogRecord:
    """The record ``ACCESS_LOGGER.log(level, message, extra=fields, exc_info=exc_info)`` would make.

    Without its stack walk (findCaller): the caller is always obskit, so this frame is given.
    """
    frame = sys._getframe()
    return ACCESS_LOGGER.makeRecord(
        ACCESS_LOGGER.name,
        level,
        frame.f_code.co_filename,
        frame.f_lineno,
        message,
        (),
        exc_info,
        "_access_line",
        fields,
    )


def _kept_line(
    created: float, level: int, message: str, values: tuple[Any, ...], exchange: Exchange
) -> tuple[Any, ...]:
    """What an access line is made of, kept to be rendered with its run (:func:`render_kept_line`).

    One flat tuple: the time, level, message and access values, then the line's LoggingContext
    fields and its span. Both are what the line would read now, in a form that holds no object
    made for this request when they are the request's own: the request id (the fields the
    middleware bound, around no outer context) and the span's immutable context. Kept lines then
    add nothing for the garbage collector to track while they wait (docs/performance.md).
    Otherwise the mapping and the OpenTelemetry context themselves are kept (both immutable).
    """
    fields: Any = _FIELDS.get()
    if fields is exchange._fields_value and exchange._own_fields:
        fields = exchange.request_id
    otel = _otel_current()
    span = otel.get(_SPAN_KEY)
    if span is None:
        ids: Any = None
    elif span is exchange.span:
        ids = span.get_span_context()
    else:
        ids = otel
    return (created, level, message, *values, fields, ids)


def render_kept_line(handler: logging.Handler, kept: tuple[Any, ...]) -> str:
    """The line of an access record kept by :func:`_write_direct`, rendered when its run is written.

    ``kept`` (see :func:`_kept_line`) holds what the line is made of and the contexts it was
    logged in, so the line is the one that would have been rendered at once. A line the direct
    rendering cannot make goes through the formatter's general path, inside a context that holds
    the line's own.
    """
    created, level, message = kept[0], kept[1], kept[2]
    values, fields, ids = kept[3:-2], kept[-2], kept[-1]
    if ids is None:
        fragment = ""
    elif isinstance(ids, SpanContext):
        fragment = _span_ids(ids)[2]
    else:
        fragment = _current_ids(ids)[3]
    formatter = handler.formatter
    line: str | None = None
    if type(formatter) is JsonFormatter:
        method, route, path, status, duration_ms, response_bytes, client, user_agent = values
        line = formatter._access_json(
            created,
            logging.getLevelName(level),
            message,
            method,
            route,
            path,
            status,
            duration_ms,
            response_bytes,
            client,
            user_agent,
            context=fields,
            ids=fragment,
        )
    if line is None:
        line = contextvars.copy_context().run(
            _general_line, formatter, created, level, message, values, fields, ids
        )
    return line


def _general_line(
    formatter: Any, created: float, level: int, message: str, values: tuple[Any, ...], fields: Any, ids: Any
) -> str:
    _FIELDS.set(MappingProxyType({"request_id": fields}) if fields.__class__ is str else fields)
    if ids is None:
        otel_context.attach(otel_context.Context())
    elif isinstance(ids, SpanContext):
        otel_context.attach(trace.set_span_in_context(trace.NonRecordingSpan(ids), otel_context.Context()))
    else:
        otel_context.attach(ids)
    record = _access_record(level, message, dict(zip(_ACCESS_FIELDS, values, strict=True)), None)
    record.created = created
    record.msecs = int((created - int(created)) * 1000) + 0.0
    return str(formatter.format(record) if formatter is not None else record.getMessage())


def _direct_handler(level: int) -> Any:
    """Obskit's console handler, when it alone would see an access record at ``level``, as is.

    That is: ``http.access`` and its ancestors below the root have no handler or filter and
    propagate, the root's only handler is obskit's (at or below ``level``, with only its own
    filter, which passes ``http.access``), and its formatter is obskit's ``JsonFormatter``. A
    user's handler or filter anywhere on the way (``caplog`` included) means the LogRecord path.
    """
    logger: logging.Logger | None = ACCESS_LOGGER
    root = logging.root
    while logger is not None and logger is not root:
        if logger.handlers or logger.filters or not logger.propagate or logger.disabled:
            return None
        logger = logger.parent
    handlers = root.handlers
    if len(handlers) != 1:
        return None
    handler = handlers[0]
    if type(handler) is not ObskitHandler or handler.level > level or handler.broken:
        return None
    filters = handler.filters
    if len(filters) != 1 or type(filters[0]) is not RateLimitFilter:
        return None
    formatter = handler.formatter
    if type(formatter) is not JsonFormatter or not formatter._direct:
        return None
    return handler


def _write_direct(level: int, message: str, values: tuple[Any, ...], exchange: Exchange) -> bool:
    """Write an access line straight through obskit's handler; False when the LogRecord path must run.

    ``values`` are the access fields in ``JsonFormatter._access_json``'s order. The line is the
    one the LogRecord path would write (``tests/test_http_direct_access.py``), for a fraction of
    the cost: no LogRecord, no logger and handler dispatch, no generic extra-field loop. Below
    ERROR, when the handler writes access lines in runs, the line is kept for the next run.
    """
    handler = _direct_handler(level)
    if handler is None:
        return False
    if level < logging.ERROR and handler.defers():
        # Kept, with its contexts, and rendered when its run is written (render_kept_line): the
        # rendering code then runs once per run, not once per request (docs/performance.md).
        handler.deferred.add(_kept_line(time.time(), level, message, values, exchange))
        return True
    line = handler.formatter._access_json(time.time(), logging.getLevelName(level), message, *values)
    if line is None:
        return False
    handler.acquire()
    try:
        if handler.deferred is not None and len(handler.deferred):
            handler.deferred.write_locked()  # the lines kept back come first
        handler.stream.write(line + handler.terminator)
        handler.flush()
    except Exception:
        handler.handleError(ACCESS_LOGGER.makeRecord(ACCESS_LOGGER.name, level, "", 0, message, (), None))
    finally:
        handler.release()
    return True


#: The propagators whose extract() returns an empty context when none of their headers is there.
_PLAIN_PROPAGATORS = (TraceContextTextMapPropagator, W3CBaggagePropagator)
#: The last global propagator seen and the header names that make extracting worth it (None:
#: always extract, the propagator is not one of the plain ones).
_textmap: tuple[Any, frozenset[str] | None, frozenset[bytes] | None] = (None, None, None)


#: The context of a request that carries no trace headers (immutable, so one serves them all).
_NO_PARENT = otel_context.Context()


#: The carrier of a request none of whose headers matters to the propagators.
NO_HEADERS: Mapping[str, str] = MappingProxyType({})


def _extract(carrier: Mapping[str, str]) -> otel_context.Context:
    """``propagate.extract(carrier)``, skipped when the request carries none of its headers."""
    if carrier is NO_HEADERS:
        return _NO_PARENT
    fields = _propagation_fields()[0]
    if fields is not None and fields.isdisjoint(carrier):
        return _NO_PARENT
    return propagate.extract(carrier, getter=_HEADERS)


class _HeaderGetter(Getter[Mapping[str, str]]):
    """Reads a request's headers for the propagators: names in any case, as HTTP has them.

    The carrier's names are lowercase (ASGI's spelling; WSGI's are made so), its values the
    header's lines joined with ``,`` as W3C asks.
    """

    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(key) if key.islower() else carrier.get(key.lower())
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier)


_HEADERS = _HeaderGetter()


def _propagation_fields() -> tuple[frozenset[str] | None, frozenset[bytes] | None]:
    """The header names that matter to the global propagators (None: any), as str and as bytes.

    The bytes are ASGI's spelling (lowercase). Decided once per global propagator.
    """
    global _textmap
    textmap = propagate.get_global_textmap()
    cached = _textmap
    if cached[0] is not textmap:
        fields = _plain_fields(textmap)
        names = None if fields is None else frozenset(field.encode("latin-1") for field in fields)
        cached = _textmap = (textmap, fields, names)
    return cached[1], cached[2]


def _plain_fields(textmap: Any) -> frozenset[str] | None:
    propagators = textmap._propagators if isinstance(textmap, CompositePropagator) else [textmap]
    # obskit's request id propagator extracts nothing: its header never makes extracting worth it.
    propagators = [p for p in propagators if type(p).__name__ != "RequestIdPropagator"]
    if not all(type(p) in _PLAIN_PROPAGATORS for p in propagators):
        return None
    return frozenset(field.lower() for p in propagators for field in p.fields)


def server_attributes(
    config: Config,
    method: str,
    path: str,
    scheme: str,
    host: str | None,
    local: tuple[str, int | None] | None,
    client: str | None,
    user_agent: str | None,
    query: str = "",
    version: str = "",
    forwarded: Mapping[bytes, str] | None = None,
) -> dict[str, Any]:
    """The span attributes known when the request arrives (OpenTelemetry HTTP server conventions).

    ``host`` is the request's ``Host`` header (``:authority``), which names the server as the
    client asked for it; ``local`` (the socket's address) stands in only without one. A port that
    is the scheme's default is left out, as the URL leaves it out. ``query`` (raw) is kept with
    the values of sensitive parameters hidden. ``forwarded`` holds a trusted proxy's headers
    (``trust_forwarded_headers``, lowercase names): they then say the scheme, the client and the
    host, and the proxy's own address becomes ``network.peer.address``. Optional attributes are
    computed only when their input is there.
    """
    peer = None
    if forwarded:
        proxy_scheme, proxy_client, proxy_host = proxy_view(forwarded)
        scheme = proxy_scheme or scheme
        host = proxy_host or host
        if proxy_client:
            peer, client = client, proxy_client
    known = method if method in KNOWN_METHODS else _method(method)
    attributes: dict[str, Any] = {"http.request.method": known, "url.path": path, "url.scheme": scheme}
    if known != method:
        attributes["http.request.method_original"] = method
    if query:
        redacted = config._queries.get(query)
        if redacted is None:
            redacted = config.redactor.query(query)
            if len(config._queries) < _PARSED_CAP:
                config._queries[query] = redacted
        attributes["url.query"] = redacted
    if host:
        parsed = config._hosts.get(host) or _parsed_host(config, host)
        attributes["server.address"] = parsed[0]
        port = parsed[1]
    elif local is not None and local[0]:
        attributes["server.address"] = local[0]
        port = local[1]
    else:
        port = None
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        attributes["server.port"] = port
    if version:
        attributes["network.protocol.version"] = version
    if client:
        attributes["client.address"] = client
        if peer:
            attributes["network.peer.address"] = peer
    if user_agent:
        attributes["user_agent.original"] = user_agent
    return attributes


def _parsed_host(config: Config, host: str) -> tuple[str, int | None]:
    parsed = host_and_port(host)
    if len(config._hosts) < _PARSED_CAP:
        config._hosts[host] = parsed
    return parsed


def host_and_port(host: str) -> tuple[str, int | None]:
    """A ``Host`` header's name and port (None when it names none): ``[::1]:8080`` -> ``("::1", 8080)``."""
    if host.startswith("["):  # an IPv6 literal
        end = host.find("]")
        if end < 0:
            return host, None
        name, rest = host[1:end], host[end + 1 :]
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = host.partition(":")
    return name, (int(port) if port.isdigit() else None)


def proxy_view(headers: Mapping[bytes, str]) -> tuple[str | None, str | None, str | None]:
    """The scheme, client address and host a proxy forwarded (RFC 7239 ``Forwarded`` first).

    The first element of each header is the one the client's side of the first proxy wrote.
    """
    scheme = client = host = None
    forwarded = headers.get(b"forwarded")
    if forwarded:
        for pair in forwarded.split(",", 1)[0].split(";"):
            key, _, value = pair.partition("=")
            key, value = key.strip().lower(), value.strip().strip('"')
            if not value:
                continue
            if key == "proto":
                scheme = value.lower()
            elif key == "for":
                client = _node(value)
            elif key == "host":
                host = value
    if scheme is None and b"x-forwarded-proto" in headers:
        scheme = headers[b"x-forwarded-proto"].split(",", 1)[0].strip().lower() or None
    if client is None and b"x-forwarded-for" in headers:
        client = _node(headers[b"x-forwarded-for"].split(",", 1)[0].strip()) or None
    if host is None and b"x-forwarded-host" in headers:
        host = headers[b"x-forwarded-host"].split(",", 1)[0].strip() or None
    return scheme, client, host


def _node(value: str) -> str:
    """A forwarded client address without its port: ``[2001:db8::1]:4711`` -> ``2001:db8::1``."""
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        return value.partition(":")[0]
    return value


def health_module() -> Any:
    """obskit.health, or None while it is not there (the request then goes to the app)."""
    try:
        from obskit import health
    except ImportError:
        return None
    return health
