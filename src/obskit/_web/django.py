"""Django: request telemetry as the outermost Django middleware, for WSGI and ASGI alike.

One middleware class serves both ways in: ``configure(app)`` with the project's WSGI or ASGI
handler (``get_wsgi_application()``, ``get_asgi_application()``) puts it around the handler's
middleware chain, and ``obskit.django.ObskitMiddleware`` in ``MIDDLEWARE`` is the same class
loaded by Django. It works on Django's request and response, so the same code reads WSGI
environs and ASGI scopes (``request.META``), and runs sync or async as the handler does.

The request is finished when Django closes the response (after the last byte of a streamed
body went out) or when a streamed body raises; the route is the resolver's match, read once the
view has answered; an exception Django turned into a 500 page is taken from its
``got_request_exception`` signal.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from opentelemetry import propagate

from obskit._core.errors import report_internal_error
from obskit._recording.loghandler import ConsoleCopyFilter, ObskitHandler
from obskit._web.http import Config, Exchange, Hub, health_module, server_attributes
from obskit._web.routes import ASK, TAKEN, AppRoutes, DjangoURLs, Endpoint, watch

__all__ = [
    "ACTIVE_KEY",
    "ERROR_KEY",
    "ObskitDjangoMiddleware",
    "django_route",
    "in_chain",
    "is_django_app",
    "keep_django_console",
    "official_middleware",
    "wrap_handler",
]

#: ``request.META`` key marking a request obskit instruments (a second instrumentation passes it on).
ACTIVE_KEY = "obskit.django"
#: ``request.META`` key where the ``got_request_exception`` receiver leaves the exception.
ERROR_KEY = "obskit.django.error"
#: The dotted path of the public middleware, as written in ``MIDDLEWARE``.
MIDDLEWARE_PATH = "obskit.django.ObskitMiddleware"
#: The package of OpenTelemetry's own Django instrumentation (its middleware makes the server span).
_OFFICIAL = "opentelemetry.instrumentation.django"

_NAMED_GROUP = re.compile(r"\(\?P<([^>]+)>")
_CONVERTER = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


def is_django_app(app: object) -> bool:
    """Whether ``app`` is a Django WSGI or ASGI handler (only looked up if Django is imported)."""
    base = sys.modules.get("django.core.handlers.base")
    return base is not None and isinstance(app, base.BaseHandler)


@functools.lru_cache(maxsize=512)
def django_route(route: str) -> str:
    """A resolver's ``route`` as an URL template: ``polls/<int:pk>/`` -> ``/polls/{pk}/``.

    ``re_path()`` patterns keep their text with named groups as ``{name}`` and without their
    anchors: ``^archive/(?P<year>[0-9]{4})/$`` -> ``/archive/{year}/``. ``include()`` prefixes
    are already joined by Django.
    """
    text = route[1:] if route.startswith("^") else route
    if text.endswith("\\Z"):
        text = text[:-2]
    elif text.endswith("$") and not text.endswith("\\$"):
        text = text[:-1]
    if "(?P<" in text:
        text = _named_groups(text)
    if "<" in text:
        text = _CONVERTER.sub(r"{\1}", text)
    return text if text.startswith("/") else "/" + text


def _named_groups(text: str) -> str:
    """Each ``(?P<name>...)`` group (nested parentheses and escapes included) as ``{name}``."""
    out: list[str] = []
    at = 0
    for found in _NAMED_GROUP.finditer(text):
        if found.start() < at:
            continue  # inside a group already replaced
        out.append(text[at : found.start()])
        depth, index = 1, found.end()
        while index < len(text) and depth:
            char = text[index]
            if char == "\\":
                index += 1
            elif char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
            index += 1
        out.append("{" + found.group(1) + "}")
        at = index
    out.append(text[at:])
    return "".join(out)


def _route_of(request: Any) -> str | None:
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    return django_route(route) if isinstance(route, str) else None


def _note_error(sender: Any, request: Any = None, **extra: Any) -> None:
    """``got_request_exception``: keep the exception Django turns into a 500 page on the request.

    Django sends the signal inside its ``except`` block (asgiref re-raises it in the thread of
    an async handler's call), so the exception is the one being handled.
    """
    try:
        error = sys.exc_info()[1]
        meta = getattr(request, "META", None)
        if error is not None and isinstance(meta, dict) and ACTIVE_KEY in meta:
            meta[ERROR_KEY] = error
    except Exception as exc:
        report_internal_error("django got_request_exception", exc)


_receiver_connected = False


def _connect_receiver() -> None:
    global _receiver_connected
    if not _receiver_connected:
        from django.core.signals import got_request_exception

        got_request_exception.connect(_note_error, dispatch_uid="obskit.django.note_error", weak=False)
        _receiver_connected = True


@functools.lru_cache(maxsize=64)
def _meta_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


#: The environ keys of a trusted proxy's headers, and their names as ASGI spells them.
_FORWARDED_KEYS = (
    ("HTTP_FORWARDED", b"forwarded"),
    ("HTTP_X_FORWARDED_PROTO", b"x-forwarded-proto"),
    ("HTTP_X_FORWARDED_FOR", b"x-forwarded-for"),
    ("HTTP_X_FORWARDED_HOST", b"x-forwarded-host"),
)


def _start(config: Config, request: Any) -> Exchange:
    """Make the request's exchange and start it, reading ``request.META`` (WSGI or ASGI)."""
    meta = request.META
    method = request.method or "GET"
    path = request.path
    exchange = Exchange(config, method, path, meta.get(_meta_key(config.request_id_header)))
    scope = getattr(request, "scope", None)  # an ASGI request
    if isinstance(scope, dict):
        scheme = scope.get("scheme") or "http"
        version = str(scope.get("http_version", ""))
        server = scope.get("server")
        local = (str(server[0]), server[1]) if server else None
    else:
        scheme = meta.get("wsgi.url_scheme", "http")
        protocol = meta.get("SERVER_PROTOCOL", "")
        version = protocol[5:] if protocol.startswith("HTTP/") else ""
        port = meta.get("SERVER_PORT", "")
        local = (meta.get("SERVER_NAME", ""), int(port) if port.isdigit() else None)
    forwarded = None
    if config.forwarded is not None:
        forwarded = {name: meta[key] for key, name in _FORWARDED_KEYS if key in meta} or None
    attributes = server_attributes(
        config,
        method,
        path,
        scheme,
        meta.get("HTTP_HOST"),
        local,
        meta.get("REMOTE_ADDR") or None,
        meta.get("HTTP_USER_AGENT"),
        meta.get("QUERY_STRING", ""),
        version,
        forwarded,
    )
    carrier = {}
    for field in propagate.get_global_textmap().fields:
        key = _meta_key(field)
        if key in meta:
            carrier[field] = meta[key]
    meta[ACTIVE_KEY] = True
    exchange.start(carrier, attributes)
    return exchange


def _begin(config: Config, request: Any) -> Exchange | None:
    """:func:`_start`, or None (reported) when the request cannot be read: it is served untouched."""
    try:
        return _start(config, request)
    except Exception as exc:
        report_internal_error("django request start", exc)
        return None


class ObskitDjangoMiddleware:
    """Spans, RED metrics, request ids and access lines for a Django project's requests.

    A Django middleware (new style, sync and async capable), outermost: in ``MIDDLEWARE`` first,
    or put around the handler's chain by ``configure(app)``. ``hub`` switches it; without one it
    follows whatever obskit is configured with.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any], hub: Hub | None = None) -> None:
        self.get_response = get_response
        self.hub = hub if hub is not None else Hub()
        self._async = _is_async(get_response)
        if self._async:
            from asgiref.sync import markcoroutinefunction

            markcoroutinefunction(self)
        #: Who serves obskit's paths: Django's URL resolver decides.
        self.urls = DjangoURLs()
        self._routes: AppRoutes = watch(self.urls, lambda: self.hub.enabled)
        # OpenTelemetry's Django middleware, when the project has it, makes the server span:
        # beside obskit's in MIDDLEWARE (loaded with it), or inside the chain configure(app) wraps.
        official = official_middleware() if hub is None else _official_in(get_response)
        self.hub.server_span = not official
        self.hub._config = None  # a config made before may say otherwise
        _connect_receiver()

    def __call__(self, request: Any) -> Any:
        if self._async:
            return self.__acall__(request)
        config = self.hub.config()
        if config is None or ACTIVE_KEY in request.META:
            return self.get_response(request)
        path = request.path
        if path == config.metrics_path or path in config.health:
            own = self._serve_own(config, request)
            if own is not None:
                return own
        if config.excluded(path):
            return self.get_response(request)
        exchange = _begin(config, request)
        if exchange is None:
            return self.get_response(request)
        try:
            response = self.get_response(request)
        except Exception as error:  # DEBUG_PROPAGATE_EXCEPTIONS: the server sees it
            exchange.finish(_route_of(request), error)
            raise
        return self._answered(exchange, request, response)

    async def __acall__(self, request: Any) -> Any:
        config = self.hub.config()
        if config is None or ACTIVE_KEY in request.META:
            return await self.get_response(request)
        path = request.path
        if path == config.metrics_path or path in config.health:
            own = await self._aserve_own(config, request)
            if own is not None:
                return own
        if config.excluded(path):
            return await self.get_response(request)
        exchange = _begin(config, request)
        if exchange is None:
            return await self.get_response(request)
        try:
            response = await self.get_response(request)
        except Exception as error:
            exchange.finish(_route_of(request), error)
            raise
        except BaseException:  # cancelled: Django's ASGI handler saw the client go
            exchange.status = exchange.status or 499  # nginx's "client closed request"
            exchange.finish(_route_of(request), None)
            raise
        return self._answered(exchange, request, response)

    def _answered(self, exchange: Exchange, request: Any, response: Any) -> Any:
        """Note the status and request id; the request is finished when Django closes the response."""
        try:
            exchange.status = int(response.status_code)
            name = exchange.config.settings.request_id_header
            if exchange.echo and not response.has_header(name):  # one the app set keeps its own
                response[name] = exchange.request_id
            closer = _Closer(response.close, exchange, request)
            if response.streaming:
                iterate = _acurrent if response.is_async else _current
                response.streaming_content = iterate(response.streaming_content, exchange, closer)
            else:
                exchange.response_bytes = len(response.content)
            response.close = closer
        except Exception as exc:
            report_internal_error("django response", exc)
            exchange.finish(_route_of(request), None)
            return response
        exchange.deactivate()
        return response

    # -- obskit's own paths ------------------------------------------------------------------

    def _owner(self, config: Config, request: Any) -> tuple[str, Endpoint] | None:
        path = request.path
        kind = "metrics" if path == config.metrics_path else config.health[path]
        if kind != "metrics" and health_module() is None:
            return None
        endpoint = Endpoint(kind, path)
        owner = self._routes.owner(request.path_info, request.META.get("SCRIPT_NAME", ""))
        if owner == TAKEN:
            self._routes.step_aside(endpoint)
            return None
        return owner, endpoint

    def _serve_own(self, config: Config, request: Any) -> Any:
        """Answer one of obskit's paths where the project has none; None: Django serves it."""
        found = self._owner(config, request)
        if found is None:
            return None
        owner, endpoint = found
        if owner == ASK:  # the resolver could not be read: Django answers first
            response = self.get_response(request)
            if response.status_code != 404:
                self._routes.step_aside(endpoint)
                return response
            response.close()
        if endpoint.kind == "metrics":
            return _metrics_response(request)
        health = health_module()
        try:
            status, payload = health.handle(endpoint.kind)
        except Exception as exc:
            report_internal_error("health endpoint", exc)
            status, payload = 503, {"status": "error"}
        return _json_response(status, payload)

    async def _aserve_own(self, config: Config, request: Any) -> Any:
        found = self._owner(config, request)
        if found is None:
            return None
        owner, endpoint = found
        if owner == ASK:
            response = await self.get_response(request)
            if response.status_code != 404:
                self._routes.step_aside(endpoint)
                return response
            response.close()
        if endpoint.kind == "metrics":
            return _metrics_response(request)
        health = health_module()
        try:
            status, payload = await health.ahandle(endpoint.kind)
        except Exception as exc:
            report_internal_error("health endpoint", exc)
            status, payload = 503, {"status": "error"}
        return _json_response(status, payload)


def _current(chunks: Iterable[Any], exchange: Exchange, closer: _Closer) -> Iterator[Any]:
    """A streamed body whose chunks are made with the request's span and id current (only then).

    An exception from the body finishes the request at once, logged with its stack: Django never
    sees it, and under ASGI the response is then not closed.
    """
    iterator = iter(chunks)
    while True:
        exchange.activate()
        try:
            chunk = next(iterator)
        except StopIteration:
            exchange.deactivate()
            return
        except Exception as error:
            exchange.deactivate()
            closer.finish(error)
            raise
        exchange.deactivate()
        exchange.response_bytes += len(chunk)
        yield chunk


async def _acurrent(chunks: AsyncIterable[Any], exchange: Exchange, closer: _Closer) -> AsyncIterator[Any]:
    """:func:`_current` for an async streamed body."""
    iterator = aiter(chunks)
    while True:
        exchange.activate()
        try:
            chunk = await anext(iterator)
        except StopAsyncIteration:
            exchange.deactivate()
            return
        except Exception as error:
            exchange.deactivate()
            closer.finish(error)
            raise
        exchange.deactivate()
        exchange.response_bytes += len(chunk)
        yield chunk


class _Closer:
    """The response's ``close``: Django's own first, then the request's telemetry is finished.

    Servers close a WSGI response after its last chunk; Django's ASGI handler after sending
    the body; the test client at once (a streamed body: once read).
    """

    __slots__ = ("_close", "_exchange", "_request")

    def __init__(self, close: Callable[[], None], exchange: Exchange, request: Any) -> None:
        self._close = close
        self._exchange: Exchange | None = exchange
        self._request = request

    def __call__(self) -> None:
        try:
            self._close()
        finally:
            error = self._request.META.get(ERROR_KEY)
            # Django answered 500 and logged it (django.request): record it, don't log it again.
            self.finish(error if isinstance(error, BaseException) else None, log_error=False)

    def finish(self, error: BaseException | None, log_error: bool = True) -> None:
        """Finish the request's telemetry (once), with the exception that ended it, if any."""
        exchange, self._exchange = self._exchange, None
        if exchange is not None:
            exchange.activate()
            exchange.finish(_route_of(self._request), error, log_error=log_error)


def _is_async(get_response: Callable[[Any], Any]) -> bool:
    from asgiref.sync import iscoroutinefunction

    return bool(iscoroutinefunction(get_response))


def _json_response(status: int, payload: Any) -> Any:
    from django.http import HttpResponse

    try:
        body = json.dumps(payload, default=str)
    except Exception as exc:
        report_internal_error("health endpoint", exc)
        status, body = 503, '{"status": "error"}'
    response = HttpResponse(body, status=status, content_type="application/json")
    response["Cache-Control"] = "no-store"
    return response


_metrics_app: Any = None


def _metrics_response(request: Any) -> Any:
    """The scrape answer of obskit's metrics app (text or OpenMetrics, gzip) as a Django response."""
    from django.http import HttpResponse

    try:
        return _scrape(request)
    except Exception as exc:
        report_internal_error("prometheus exposition", exc)
        return HttpResponse(
            b"# obskit could not collect the metrics; see the obskit log\n",
            status=500,
            content_type="text/plain; charset=utf-8",
        )


def _scrape(request: Any) -> Any:
    global _metrics_app
    from django.http import HttpResponse

    from obskit._export.prometheus import make_wsgi_app

    if _metrics_app is None:
        _metrics_app = make_wsgi_app()
    meta = request.META
    environ = {
        key: meta[key]
        for key in ("REQUEST_METHOD", "QUERY_STRING", "HTTP_ACCEPT", "HTTP_ACCEPT_ENCODING")
        if key in meta
    }
    environ["PATH_INFO"] = request.path_info
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        started[:] = [status, headers]

    body: Iterable[bytes] = _metrics_app(environ, start_response)
    response = HttpResponse(b"".join(body), status=int(started[0][:3]))
    for name, value in started[1]:
        response[name] = value
    return response


# -- configure(app) -------------------------------------------------------------------------------


def in_chain(handler: Any) -> bool:
    """Whether the handler's middleware already holds obskit's (``MIDDLEWARE`` or a wrap before)."""
    from django.conf import settings

    if MIDDLEWARE_PATH in (getattr(settings, "MIDDLEWARE", None) or ()):
        return True
    return isinstance(getattr(handler, "_middleware_chain", None), ObskitDjangoMiddleware)


def _official_in(chain: Any) -> bool:
    """Whether OpenTelemetry's Django middleware is in a handler's loaded middleware chain.

    Each middleware Django loaded is wrapped (``functools.wraps``: ``__wrapped__``) and holds the
    next as ``get_response``.
    """
    seen: set[int] = set()
    while chain is not None and id(chain) not in seen:
        seen.add(id(chain))
        chain = getattr(chain, "__wrapped__", chain)
        if type(chain).__module__.startswith(_OFFICIAL):
            return True
        chain = getattr(chain, "get_response", None)
    return False


def official_middleware() -> bool:
    """Whether OpenTelemetry's Django middleware is in ``MIDDLEWARE`` (it then makes the server span)."""
    from django.conf import settings

    return any(str(entry).startswith(_OFFICIAL) for entry in getattr(settings, "MIDDLEWARE", None) or ())


def wrap_handler(handler: Any, hub: Hub) -> bool:
    """Put obskit's middleware around a WSGI/ASGI handler's chain; False when one is there already.

    ``MIDDLEWARE`` holding ``obskit.django.ObskitMiddleware`` means the project instruments
    itself: one server span per request, so ``configure(app)`` adds nothing then.
    """
    if in_chain(handler):
        logging.getLogger("obskit").info(
            "obskit: %s is in MIDDLEWARE; configure(app) adds no second instrumentation", MIDDLEWARE_PATH
        )
        return False
    chain = handler._middleware_chain
    if chain is None:  # load_middleware() not run: nothing to wrap yet
        handler.load_middleware(is_async=_handler_is_async(handler))
        chain = handler._middleware_chain
    handler._middleware_chain = ObskitDjangoMiddleware(chain, hub)
    return True


def _handler_is_async(handler: Any) -> bool:
    """An ASGI handler (or the test ``AsyncClient``'s) runs its chain async."""
    asgi = sys.modules.get("django.core.handlers.asgi")
    client = sys.modules.get("django.test.client")
    return (asgi is not None and isinstance(handler, asgi.ASGIHandler)) or (
        client is not None and isinstance(handler, client.AsyncClientHandler)
    )


def keep_django_console() -> Callable[[], None]:
    """Django's ``LOGGING`` and obskit's JSON lines coexist: one line per record on the console.

    Django's default ``LOGGING`` puts a console handler on the ``django`` logger (shown with
    ``DEBUG``), and a project's ``LOGGING`` may put console handlers on its own loggers. Their
    records propagate to the root, where obskit's handler writes them as JSON: while it does,
    those handlers' copies on the console are dropped (handlers to files, mail or elsewhere
    keep theirs; a logger that does not propagate, as ``django.server``, keeps its own). The
    loggers' levels are left as they are. ``LOGGING`` without ``disable_existing_loggers:
    False`` disables the loggers that existed when Django set it up: obskit's own is enabled
    again, so that its warnings are not lost.
    """
    from django.conf import settings
    from django.utils.log import DEFAULT_LOGGING

    configured = getattr(settings, "LOGGING", None)
    names = {"django", *DEFAULT_LOGGING.get("loggers", {})}
    if isinstance(configured, dict):
        names.update(str(name) for name in configured.get("loggers", {}) if name)
    own = logging.getLogger("obskit")
    if own.disabled:
        own.disabled = False
    filters: list[tuple[logging.Handler, logging.Filter]] = []
    for name in sorted(names):
        for handler in logging.getLogger(name).handlers:
            if (
                isinstance(handler, logging.StreamHandler)
                and not isinstance(handler, ObskitHandler)
                and not any(isinstance(f, ConsoleCopyFilter) for f in handler.filters)
            ):
                copies = ConsoleCopyFilter(handler)
                handler.addFilter(copies)
                filters.append((handler, copies))

    def remove() -> None:
        for handler, copies in filters:
            handler.removeFilter(copies)

    return remove
