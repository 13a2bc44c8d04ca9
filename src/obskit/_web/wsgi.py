"""The WSGI middleware: wraps Flask's ``app.wsgi_app`` or any WSGI callable."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

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

__all__ = ["COMPLETE_KEY", "ERROR_KEY", "ROUTE_KEY", "ObskitWSGIMiddleware"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
#: Environ key where a framework hook leaves the matched route template.
ROUTE_KEY = "obskit.route"
#: Environ key where a framework hook leaves an exception it handled itself (Flask's 500 page).
ERROR_KEY = "obskit.error"
#: Set by a framework hook when the response body is complete as the app returns it (Flask: not
#: streamed): the request is finished then, whether or not the client reads the body (a test
#: client that only looks at the status never does).
COMPLETE_KEY = "obskit.complete"

#: What ``next()`` gives for a body's end (a chunk is bytes).
_DONE: Any = object()
_STATUS_TEXT = {200: "200 OK", 503: "503 Service Unavailable"}


@functools.lru_cache(maxsize=256)
def _environ_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


def _carrier(environ: dict[str, Any]) -> Mapping[str, str]:
    """The request headers that matter to the propagators (every header for a custom one).

    A header sent on several lines is the one value the server joined (with commas, PEP 3333);
    the W3C propagators read such lists whole, spaces after the commas included.
    """
    fields = _propagation_fields()[0]
    if fields is None:
        return {
            key[5:].lower().replace("_", "-"): value
            for key, value in environ.items()
            if key.startswith("HTTP_") and isinstance(value, str)
        }
    carrier = {}
    for field in fields:
        key = _environ_key(field)
        if key in environ:
            carrier[field] = environ[key]
    return carrier or NO_HEADERS


def _local(environ: dict[str, Any]) -> tuple[str, int | None]:
    """The server's own name and port, for a request without a ``Host`` header (HTTP/1.0)."""
    port = environ.get("SERVER_PORT", "")
    return environ.get("SERVER_NAME", ""), int(port) if port.isdigit() else None


#: The environ keys of a trusted proxy's headers, and their names as ASGI spells them.
_FORWARDED_KEYS = (
    ("HTTP_FORWARDED", b"forwarded"),
    ("HTTP_X_FORWARDED_PROTO", b"x-forwarded-proto"),
    ("HTTP_X_FORWARDED_FOR", b"x-forwarded-for"),
    ("HTTP_X_FORWARDED_HOST", b"x-forwarded-host"),
)


def _forwarded(environ: dict[str, Any]) -> dict[bytes, str] | None:
    """A trusted proxy's headers in ``environ`` (``trust_forwarded_headers``), or None."""
    found = {name: environ[key] for key, name in _FORWARDED_KEYS if key in environ}
    return found or None


class ObskitWSGIMiddleware:
    """Spans, RED metrics, request ids and access logs for WSGI requests.

    The span and the request id are current while the app runs; the request is finished (metrics,
    access line, span end) when the server closes the response body, so streamed bodies count.
    """

    def __init__(self, app: WSGIApp, hub: Hub | None = None, routes: AppRoutes | None = None) -> None:
        self.app = app
        self.hub = hub if hub is not None else Hub()
        self._metrics_app: WSGIApp | None = None
        #: Who serves obskit's paths: the app's routes when they can be read, else the app, asked first.
        self._routes = routes if routes is not None else AppRoutes(app)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Serve one WSGI request."""
        config = self.hub.config()
        if config is None:
            return self.app(environ, start_response)
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        if path == config.metrics_path or path in config.health:
            body = self._serve_own(config, path, environ, start_response)
            if body is not None:
                return body
        if config.excluded(path):
            return self.app(environ, start_response)
        return self._instrumented(config, path, environ, start_response)

    def _instrumented(
        self, config: Config, path: str, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        exchange = Exchange(config, method, path, environ.get(_environ_key(config.request_id_header)))
        protocol = environ.get("SERVER_PROTOCOL", "")
        attributes = server_attributes(
            config,
            method,
            path,
            environ.get("wsgi.url_scheme", "http"),
            environ.get("HTTP_HOST"),
            _local(environ),
            environ.get("REMOTE_ADDR"),
            environ.get("HTTP_USER_AGENT"),
            environ.get("QUERY_STRING", ""),
            protocol[5:] if protocol.startswith("HTTP/") else "",
            _forwarded(environ) if config.forwarded is not None else None,
        )
        exchange.start(_carrier(environ), attributes)
        header = (config.settings.request_id_header, exchange.request_id)

        def start_with_request_id(status: str, headers: list[Any], exc_info: Any = None) -> Any:
            try:
                exchange.status = int(status[:3])
            except ValueError:
                exchange.status = 0
            if environ.get(COMPLETE_KEY):  # sent by the server, not through _Body: its header says
                exchange.response_bytes = _content_length(headers)
            # A response that already carries the header (set by the app) keeps its own.
            if not exchange.echo or any(name.lower() == config.request_id_header for name, _ in headers):
                return start_response(status, headers, exc_info)
            return start_response(status, [*headers, header], exc_info)

        try:
            body = self.app(environ, start_with_request_id)
        except Exception as error:
            exchange.finish(environ.get(ROUTE_KEY), error)
            raise
        exchange.deactivate()
        wrapped = _Body(body, exchange, environ)
        if environ.get(COMPLETE_KEY):
            if isinstance(body, (list, tuple)):
                exchange.response_bytes = sum(map(len, body))
            wrapped._finish(None)  # all made: nothing of the app's runs while it is sent
            return body
        return wrapped

    def _serve_own(
        self, config: Config, path: str, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes] | None:
        """Answer one of obskit's paths where the app has nothing; None: the app serves the request.

        The app's routes decide when they can be read; else the app is asked first and obskit
        answers only its 404 (the 404's body is closed unsent).
        """
        kind = "metrics" if path == config.metrics_path else config.health[path]
        if kind != "metrics" and health_module() is None:
            return None
        endpoint = Endpoint(kind, path)
        owner = self._routes.owner(environ.get("PATH_INFO", ""), environ.get("SCRIPT_NAME", ""))
        if owner == TAKEN:
            self._routes.step_aside(endpoint)
            return None
        if owner == ASK:
            asked = _AskFirst(start_response)
            body = asked.call(self.app, environ)
            if not asked.not_found:
                if asked.answered:
                    self._routes.step_aside(endpoint)
                return body
        if kind == "metrics":
            return self._metrics()(environ, start_response)
        return _serve_health(kind, start_response)

    def _metrics(self) -> WSGIApp:
        if self._metrics_app is None:
            from obskit._export.prometheus import make_wsgi_app

            self._metrics_app = make_wsgi_app()
        return self._metrics_app


def _content_length(headers: list[Any]) -> int:
    for name, value in headers:
        if name.lower() == "content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


class _Body:
    """The app's response body, passed through; the request is finished when it is used up or closed."""

    __slots__ = ("_body", "_environ", "_exchange", "_finished")

    def __init__(self, body: Iterable[bytes], exchange: Exchange, environ: dict[str, Any]) -> None:
        self._body = body
        self._exchange = exchange
        self._environ = environ
        self._finished = False

    def __iter__(self) -> Iterator[bytes]:
        # The request's span and context are current while the app makes each chunk (a streamed
        # body's generator runs then), not while the server sends it.
        exchange = self._exchange
        try:
            if isinstance(self._body, (list, tuple)):  # made already: no app code runs here
                exchange.response_bytes = sum(map(len, self._body))
                yield from self._body
            else:
                chunks = iter(self._body)
                while True:
                    exchange.activate()
                    try:
                        chunk = next(chunks, _DONE)
                    finally:
                        exchange.deactivate()
                    if chunk is _DONE:
                        break
                    exchange.response_bytes += len(chunk)
                    yield chunk
        except Exception as error:
            self._finish(error)
            raise
        # Servers close the body after the last chunk; test clients and some servers never do.
        self._finish(None)

    def close(self) -> None:
        """Close the app's body (as PEP 3333 asks), then finish the request's telemetry."""
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._finish(None)

    def _finish(self, error: BaseException | None) -> None:
        if self._finished:
            return
        self._finished = True
        exchange, environ = self._exchange, self._environ
        handled = environ.get(ERROR_KEY)
        exchange.activate()
        if error is None and isinstance(handled, BaseException):
            # The framework caught it, answered 500 and logged it itself: record, don't log again.
            exchange.finish(environ.get(ROUTE_KEY), handled, log_error=False)
        else:
            exchange.finish(environ.get(ROUTE_KEY), error)


class _AskFirst:
    """The ``start_response`` given to an app asked first: a 404 is held back, any other goes out."""

    __slots__ = ("answered", "not_found", "start_response")

    def __init__(self, start_response: Callable[..., Any]) -> None:
        self.start_response = start_response
        self.answered = False
        self.not_found = False

    def __call__(self, status: str, headers: list[Any], exc_info: Any = None) -> Callable[[bytes], Any]:
        if not self.answered and status[:3] == "404":
            self.not_found = True
            return _discard
        self.answered, self.not_found = True, False
        write: Callable[[bytes], Any] = self.start_response(status, headers, exc_info)
        return write

    def call(self, app: WSGIApp, environ: dict[str, Any]) -> Iterable[bytes]:
        """Run ``app``; when it said 404 its body is closed and an empty one returned.

        An app may call ``start_response`` only when its body yields the first chunk: chunks
        are read until it has, and handed on ahead of the rest.
        """
        body = app(environ, self)
        first: list[bytes] = []
        if not self.answered and not self.not_found:
            chunks = iter(body)
            for chunk in chunks:
                first.append(chunk)
                if self.answered or self.not_found:
                    break
            if not self.not_found:
                return _Prepended(first, chunks, body)
        if self.not_found:
            close = getattr(body, "close", None)
            if close is not None:
                close()
            return []
        return body


def _discard(data: bytes) -> None:
    """The ``write`` of a 404 that obskit answers instead."""


class _Prepended:
    """Chunks already read from an app's body, then the rest; closing closes the app's body."""

    __slots__ = ("_body", "_first", "_rest")

    def __init__(self, first: list[bytes], rest: Iterator[bytes], body: Iterable[bytes]) -> None:
        self._first, self._rest, self._body = first, rest, body

    def __iter__(self) -> Iterator[bytes]:
        yield from self._first
        yield from self._rest

    def close(self) -> None:
        """Close the app's body, as PEP 3333 asks."""
        close = getattr(self._body, "close", None)
        if close is not None:
            close()


def _serve_health(kind: str, start_response: Callable[..., Any]) -> list[bytes] | None:
    """Answer a health request with obskit.health; None when that module is not there."""
    health = health_module()
    if health is None:
        return None
    try:
        status, payload = health.handle(kind)
        body = json.dumps(payload, default=str).encode()
    except Exception as exc:
        report_internal_error("health endpoint", exc)
        status, body = 503, b'{"status": "error"}'
    headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
    start_response(_STATUS_TEXT.get(status, f"{status} Health"), headers)
    return [body]
