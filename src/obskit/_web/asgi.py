"""The ASGI middleware: a pure ASGI wrapper (no BaseHTTPMiddleware), outermost in Starlette apps."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from functools import partial
from typing import Any

from obskit._core import exit as _exit
from obskit._core.errors import report_internal_error
from obskit._web.http import (
    NO_HEADERS,
    Config,
    Exchange,
    Hub,
    _propagation_fields,
    health_module,
    server_attributes,
)
from obskit._web.routes import ASK, TAKEN, AppRoutes, Endpoint

__all__ = ["REQUEST_KEY", "WEBSOCKET_METHOD", "ObskitASGIMiddleware", "route_template"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_CONVERTOR = re.compile(r"\{([^{}:]+):[^{}]*\}")


def route_template(scope: Scope, root_path: str = "") -> str | None:
    """The template of the route that handled the request (``scope["route"]``, set by Starlette's router).

    Inside a ``Mount`` the inner router leaves its own route there; the mount's prefix is what
    the mounts added to ``root_path`` (a concrete path: mounts are rarely parametrised). A
    ``Mount`` left there itself (an app without routes: static files) already added its path;
    FastAPI's router leaves no route for one, and the mounts' prefix is the route then.
    """
    route = scope.get("route")
    path = getattr(route, "path", None)
    # ``app_root_path`` is the root path the server gave, kept by the first Mount: the base also
    # when obskit instruments only an app mounted in another one.
    base = scope.get("app_root_path", root_path)
    mounted = scope.get("root_path", "")
    if not (isinstance(mounted, str) and isinstance(base, str) and mounted.startswith(base)):
        mounted = base = ""
    if not isinstance(path, str):
        if len(mounted) == len(base):
            return None
        path = mounted[len(base) :]
    elif not _is_mount(route):
        path = mounted[len(base) :] + path
    elif "{" not in path and mounted.endswith(path):
        path = mounted[len(base) :]
    return _CONVERTOR.sub(r"{\1}", path) if ":" in path else path


#: The scope key marking a request an obskit middleware serves (its value is True).
REQUEST_KEY = "obskit.served"
#: The scope key FastAPI (0.165 on) reads to know that its telemetry is not to serve a request.
_FASTAPI_KEY = "fastapi.telemetry"


def _claim(scope: Scope) -> None:
    """Mark the request as served by this middleware, for the apps mounted inside.

    An obskit middleware around a mounted app then passes the request through, and so does
    FastAPI's own telemetry in a mounted FastAPI app (FastAPI marks the scope the same way for
    the apps mounted in one it serves). A FastAPI app further out that serves the request
    itself has left its own value there, which stays.
    """
    scope[REQUEST_KEY] = True  # not the exchange: the scope may outlive the request
    _quiet_fastapi(scope)


def _quiet_fastapi(scope: Scope) -> None:
    """Have the FastAPI apps mounted inside skip their own telemetry for this request."""
    if _FASTAPI_KEY not in scope:
        scope[_FASTAPI_KEY] = None


def _read_headers(
    config: Any, headers: Any
) -> tuple[str | None, str | None, str | None, dict[bytes, str] | None, Mapping[str, str]]:
    """What a request's or websocket's headers say, read in one pass.

    Its request id, host, user agent, a trusted proxy's headers (only when trusted) and the
    propagators' carrier (built only when a header matters to them).
    """
    request_id = user_agent = host = None
    wanted = _propagation_fields()[1]
    carrier: Mapping[str, str] = NO_HEADERS
    trusted = config.forwarded  # a trusted proxy's headers, or None: not read
    forwarded: dict[bytes, str] | None = None
    for name, value in headers:
        if name == config.request_id_name:
            request_id = value.decode("latin-1")
        elif name == b"host":
            host = value.decode("latin-1")
        elif name == b"user-agent":
            user_agent = value.decode("latin-1")
        elif trusted is not None and name in trusted:
            if forwarded is None:
                forwarded = {}
            forwarded.setdefault(name, value.decode("latin-1"))
        if carrier is NO_HEADERS and (wanted is None or name in wanted):
            carrier = _carrier(headers)
    return request_id, host, user_agent, forwarded, carrier


def _carrier(headers: Any) -> dict[str, str]:
    """The request headers for the propagators, a header sent on several lines joined by commas.

    As RFC 9110 (section 5.3) combines them: two ``tracestate`` or ``baggage`` lines are one
    list, in order; two ``traceparent`` lines make an invalid one, which W3C Trace Context
    has the receiver ignore.
    """
    carrier: dict[str, str] = {}
    for key, item in headers:
        name = key.decode("latin-1")
        value = item.decode("latin-1")
        if name in carrier:
            carrier[name] = f"{carrier[name]},{value}"
        else:
            carrier[name] = value
    return carrier


def _is_mount(route: object) -> bool:
    routing = sys.modules.get("starlette.routing")
    return routing is not None and isinstance(route, routing.Mount)


class ObskitASGIMiddleware:
    """Spans, RED metrics, request ids and access logs for HTTP requests and websocket connections.

    Everything while the hub is off goes to the app untouched; the lifespan too, with obskit
    listening: it flushes every pipeline when the app has shut down. Response bodies (streaming
    included) are passed on as they come; only the start message (a websocket's accept)
    gains the request-id header. The app runs in the context extracted from the request's
    headers, with the request's span and request id.
    """

    def __init__(self, app: ASGIApp, hub: Hub | None = None, routes: AppRoutes | None = None) -> None:
        self.app = app
        self.hub = hub if hub is not None else Hub()
        self._metrics_app: ASGIApp | None = None
        #: Who serves obskit's paths: the app's routes when they can be read, else the app, asked first.
        self._routes = routes if routes is not None else AppRoutes(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection."""
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await self._websocket(scope, receive, send)
                return
            if scope["type"] == "lifespan" and self.hub.config() is not None:
                await self.app(scope, *_exit_aware(receive, send))
                return
            await self.app(scope, receive, send)
            return
        config = self.hub.config()
        if config is None:
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if (path == config.metrics_path or path in config.health) and await self._serve_own(
            config, path, scope, receive, send
        ):
            return
        excluded = config._excluded
        if excluded is not None and excluded.search(path) is not None:
            _quiet_fastapi(scope)  # excluded: no telemetry from the apps mounted inside either
            await self.app(scope, receive, send)
            return
        if REQUEST_KEY in scope:
            # An obskit middleware further out (around the app this one is mounted in) serves
            # this request: one request, one span.
            await self.app(scope, receive, send)
            return
        # Instrumented, in this coroutine (not one more per request); the headers are read once.
        request_id, host, user_agent, forwarded, carrier = _read_headers(config, scope.get("headers") or ())
        root_path = scope.get("root_path", "")
        method = scope.get("method", "GET")
        client = scope.get("client")
        exchange = _ASGIExchange(config, method, path, request_id)
        exchange._send = send
        _claim(scope)
        exchange.start(
            carrier,
            server_attributes(
                config,
                method,
                path,
                scope.get("scheme", "http"),
                host,
                scope.get("server"),
                str(client[0]) if client else None,
                user_agent,
                query.decode("latin-1") if (query := scope.get("query_string")) else "",
                scope.get("http_version", ""),
                forwarded,
            ),
        )
        try:
            await self.app(scope, receive, exchange)
        except Exception as error:
            exchange.finish(route_template(scope, root_path), error)
            raise
        except BaseException:  # cancelled (client gone, server stopping): not the app's error
            exchange.status = exchange.status or 499  # nginx's "client closed request"
            exchange.finish(route_template(scope, root_path), None)
            raise
        exchange.finish(route_template(scope, root_path), None)

    async def _serve_own(self, config: Config, path: str, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer one of obskit's paths where the app has nothing; False: the app serves the request.

        The app's routes decide when they can be read; else the app is asked first and obskit
        answers only its 404 (its 404 response, streamed or not, is dropped unsent).
        """
        kind = "metrics" if path == config.metrics_path else config.health[path]
        if kind != "metrics" and health_module() is None:
            return False
        endpoint = Endpoint(kind, path)
        owner = self._routes.owner(path, scope.get("root_path", ""))
        if owner == TAKEN:
            self._routes.step_aside(endpoint)
            return False
        if owner == ASK:
            asked = _AskFirst(send)
            await self.app(scope, receive, asked)
            if not asked.not_found:
                if asked.answered:
                    self._routes.step_aside(endpoint)
                return True
        if kind == "metrics":
            await self._metrics()(scope, receive, send)
        else:
            await _serve_health(kind, send)
        return True

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one websocket connection: a SERVER span for it, RED metrics, request id, access line.

        The method is ``WS``; the status is what the connection came to: 101 accepted, 403
        closed by the app before accepting (what the server answers then), the status of a
        denial response the app sent, 500 when the app raised, closed with 1011 (internal
        error) or returned without answering the handshake. A client going away is not the
        app's error (499 when it left before the handshake was answered, as for requests).
        The duration is the connection's lifetime (docs/web.md, "Websockets").
        """
        config = self.hub.config()
        path: str = scope.get("path", "")
        if config is None or REQUEST_KEY in scope:
            await self.app(scope, receive, send)
            return
        if config.excluded(path):
            _quiet_fastapi(scope)
            await self.app(scope, receive, send)
            return
        request_id, host, user_agent, forwarded, carrier = _read_headers(config, scope.get("headers") or ())
        root_path = scope.get("root_path", "")
        client = scope.get("client")
        exchange = _WebSocketExchange(config, "GET", path, request_id)
        exchange.method = WEBSOCKET_METHOD
        exchange._send = send
        _claim(scope)
        attributes = server_attributes(
            config,
            "GET",
            path,
            scope.get("scheme", "ws"),
            host,
            scope.get("server"),
            str(client[0]) if client else None,
            user_agent,
            query.decode("latin-1") if (query := scope.get("query_string")) else "",
            scope.get("http_version", ""),
            forwarded,
        )
        attributes.pop("http.request.method", None)  # the handshake's GET; the span is the connection
        attributes["network.protocol.name"] = "websocket"
        exchange.start(carrier, attributes)
        try:
            await self.app(scope, receive, exchange)
        except Exception as error:
            if _client_went_away(error):
                exchange.status = exchange.status or 499  # gone before the handshake was answered
                exchange.finish(route_template(scope, root_path), None)
            else:
                exchange.status = 500
                exchange.finish(route_template(scope, root_path), error)
            raise
        except BaseException:  # cancelled (server stopping): not the app's error
            exchange.status = exchange.status or 499
            exchange.finish(route_template(scope, root_path), None)
            raise
        if exchange.status == 0:  # the server answers 500 to a handshake the app left unanswered
            exchange.status = 500
        exchange.finish(route_template(scope, root_path), None)

    def _metrics(self) -> ASGIApp:
        if self._metrics_app is None:
            from obskit._export.prometheus import make_asgi_app

            self._metrics_app = make_asgi_app()
        return self._metrics_app


class _ASGIExchange(Exchange):
    """A request's :class:`Exchange` that is also the ``send`` the app is given.

    It notes the response status and adds the request-id header to the response. One object per
    request rather than an exchange, a closure and its cells: fewer objects alive while the
    request runs, for the garbage collector to count (docs/performance.md).
    """

    __slots__ = ("_send", "_start")
    _send: Send  # set by the middleware right after it makes the exchange
    _start: Any  # the response's start message, for the length of a file the server sends

    async def __call__(self, message: Any) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            self._start = message
            if self.echo:
                headers = message.get("headers", ())
                name = self.config.request_id_name
                for key, _ in headers:
                    if key.lower() == name:
                        break  # a response that already carries the header (set by the app) keeps its own
                else:
                    message = {**message, "headers": [*headers, (name, self.request_id.encode("latin-1"))]}
        elif kind == "http.response.body":
            self.response_bytes += len(message.get("body", b""))
            if not message.get("more_body", False) and self.suspend():
                # The last message: the server may now schedule work of its own that copies the
                # current context (uvicorn's keep-alive timer, which stays in the event loop's heap
                # for seconds once cancelled). Sent from the context the request started in, so such
                # copies do not keep this request's span and fields alive: the garbage collector
                # would then see them survive into its older generations (docs/performance.md).
                # The request's context is back for whatever the app does after the response
                # (background tasks) and for obskit's access line. (From a task of the app's, which
                # runs in a copy of the request's context, suspend() changes nothing.)
                try:
                    await self._send(message)
                finally:
                    self.activate()
                return
        elif kind == "http.response.pathsend":  # a file the server sends whole (ASGI extension)
            # Its size as the response says it (no stat of the file in the event loop).
            self.response_bytes += _content_length(getattr(self, "_start", None))
        await self._send(message)


def _content_length(start: Any) -> int:
    """The ``content-length`` of a response start message; 0 when it has none (or no start)."""
    for key, value in (start or {}).get("headers") or ():
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


#: The ``method`` of websocket connections in span names, metrics and access lines.
WEBSOCKET_METHOD = "WS"
#: The close code of a server that failed (RFC 6455, section 7.4.1): counted as a 500.
_INTERNAL_ERROR = 1011


class _WebSocketExchange(_ASGIExchange):
    """A websocket connection's exchange, which is also the ``send`` the app is given.

    It notes how the handshake and the connection end (see
    :meth:`ObskitASGIMiddleware._websocket`) and adds the request-id header to the accept.
    ``response_bytes`` is what the app sent: the size of each message (a text one encoded as
    UTF-8, as it goes on the wire, frame headers aside), or of a denial response's body.
    """

    __slots__ = ()

    async def __call__(self, message: Any) -> None:
        kind = message["type"]
        if kind == "websocket.send":  # the bytes of each message the app sends, text as UTF-8
            text = message.get("text")
            if text is None:
                self.response_bytes += len(message.get("bytes") or b"")
            else:  # one byte a character when ASCII, without encoding it
                self.response_bytes += len(text) if text.isascii() else len(text.encode("utf-8", "replace"))
        elif kind == "websocket.accept" or kind == "websocket.http.response.start":
            self.status = 101 if kind == "websocket.accept" else message["status"]
            headers = message.get("headers") or ()
            name = self.config.request_id_name
            if self.echo and not any(key.lower() == name for key, _ in headers):
                message = {**message, "headers": [*headers, (name, self.request_id.encode("latin-1"))]}
        elif kind == "websocket.http.response.body":  # a denial response's body
            self.response_bytes += len(message.get("body", b""))
        elif kind == "websocket.close":
            if self.status == 0:
                self.status = 403  # closed before accepting: the server answers 403
            elif message.get("code") == _INTERNAL_ERROR:
                self.status = 500
        await self._send(message)


def _client_went_away(error: BaseException) -> bool:
    """Whether ``error`` is Starlette's report that the client closed the connection."""
    websockets = sys.modules.get("starlette.websockets")
    return websockets is not None and isinstance(error, websockets.WebSocketDisconnect)


def _exit_aware(receive: Receive, send: Send) -> tuple[Receive, Send]:
    """The lifespan's receive and send, seeing the server start and stop (docs/deployment.md).

    Once the app has started, obskit's signal handlers go in front of the server's (installed
    by now): the exit budget then starts at the signal. ``lifespan.shutdown`` starts it too
    (the server has drained its connections); when the app has finished shutting down, every
    pipeline is flushed, within the budget, before the server hears that it may exit.
    """

    async def receive_noting() -> Any:
        message = await receive()
        if message.get("type") == "lifespan.shutdown":
            _guarded(partial(_exit.begin_exit, certain=False))
        return message

    async def send_flushing(message: Any) -> None:
        kind = message.get("type")
        if kind == "lifespan.startup.complete":
            _guarded(_exit.lifespan_started)
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            await _flush_before_exit()
        await send(message)

    return receive_noting, send_flushing


def _guarded(func: Callable[[], object]) -> None:
    try:
        func()
    except Exception as exc:
        report_internal_error("lifespan", exc)


async def _flush_before_exit() -> None:
    """Flush every pipeline off the event loop's thread, waiting at most the exit budget left."""
    try:
        started = _exit.flush_for_exit()
        if started is None:
            return
        done, timeout = started
        deadline = time.monotonic() + timeout + 0.05
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # another event loop (trio): wait here, bounded
            done.wait(timeout + 0.05)
            return
        while not done.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
    except Exception as exc:
        report_internal_error("flush at lifespan shutdown", exc)


class _AskFirst:
    """The ``send`` given to an app asked first: its 404 is held back, any other answer goes out as sent."""

    __slots__ = ("answered", "not_found", "send")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.answered = False  # the app's response started (not a 404): everything passes through
        self.not_found = False  # the app answered 404: its messages are dropped

    async def __call__(self, message: Any) -> None:
        if self.not_found:
            return
        if not self.answered and message.get("type") == "http.response.start":
            if message.get("status") == 404:
                self.not_found = True
                return
            self.answered = True
        await self.send(message)


async def _serve_health(kind: str, send: Send) -> bool:
    """Answer a health request with obskit.health; False when that module is not there."""
    health = health_module()
    if health is None:
        return False
    try:
        status, payload = await health.ahandle(kind)
        body = json.dumps(payload, default=str).encode()
    except Exception as exc:
        report_internal_error("health endpoint", exc)
        status, body = 503, b'{"status": "error"}'
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return True
