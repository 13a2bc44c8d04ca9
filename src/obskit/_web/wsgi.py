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

__all__ = ["ERROR_KEY", "ROUTE_KEY", "ObskitWSGIMiddleware"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
#: Environ key where a framework hook leaves the matched route template.
ROUTE_KEY = "obskit.route"
#: Environ key where a framework hook leaves an exception it handled itself (Flask's 500 page).
ERROR_KEY = "obskit.error"

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


def _server(environ: dict[str, Any]) -> tuple[str, int | None]:
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    name, _, port = host.rpartition(":") if ":" in host and not host.endswith("]") else (host, "", "")
    if not port:
        port = environ.get("SERVER_PORT", "")
    return name, int(port) if port.isdigit() else None


class ObskitWSGIMiddleware:
    """Spans, RED metrics, request ids and access logs for WSGI requests.

    The span and the request id are current while the app runs; the request is finished (metrics,
    access line, span end) when the server closes the response body, so streamed bodies count.
    """

    def __init__(self, app: WSGIApp, hub: Hub | None = None) -> None:
        self.app = app
        self.hub = hub if hub is not None else Hub()
        self._metrics_app: WSGIApp | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Serve one WSGI request."""
        config = self.hub.config()
        if config is None:
            return self.app(environ, start_response)
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        if path == config.metrics_path:
            return self._metrics()(environ, start_response)
        kind = config.health.get(path)
        if kind is not None:
            body = _serve_health(kind, start_response)
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
        attributes = server_attributes(
            method,
            path,
            environ.get("wsgi.url_scheme", "http"),
            _server(environ),
            environ.get("REMOTE_ADDR"),
            environ.get("HTTP_USER_AGENT"),
        )
        exchange.start(_carrier(environ), attributes)
        header = (config.settings.request_id_header, exchange.request_id)

        def start_with_request_id(status: str, headers: list[Any], exc_info: Any = None) -> Any:
            try:
                exchange.status = int(status[:3])
            except ValueError:
                exchange.status = 0
            # A response that already carries the header (set by the app) keeps its own.
            if any(name.lower() == config.request_id_header for name, _ in headers):
                return start_response(status, headers, exc_info)
            return start_response(status, [*headers, header], exc_info)

        try:
            body = self.app(environ, start_with_request_id)
        except Exception as error:
            exchange.finish(environ.get(ROUTE_KEY), error)
            raise
        exchange.deactivate()
        return _Body(body, exchange, environ)

    def _metrics(self) -> WSGIApp:
        if self._metrics_app is None:
            from obskit._export.prometheus import make_wsgi_app

            self._metrics_app = make_wsgi_app()
        return self._metrics_app


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
