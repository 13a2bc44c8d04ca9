"""configure(app): recognise the web application and instrument it (ASGI or WSGI)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from obskit._core.errors import ConfigError
from obskit._core.settings import Settings
from obskit._web.http import SERVER_ERROR_LOGGERS, AlreadyLoggedFilter, Hub, flask_route

__all__ = ["check_app", "instrument"]

SUPPORTED = "a FastAPI/Starlette application (ASGI) or a Flask application (WSGI)"
#: The attribute marking an instrumented app; its value is the app's :class:`Hub`.
MARK = "_obskit_hub"


def _kind(app: object) -> str | None:
    # Frameworks are only looked up if the application already imported them.
    starlette = sys.modules.get("starlette.applications")
    if starlette is not None and isinstance(app, starlette.Starlette):
        return "starlette"
    flask = sys.modules.get("flask")
    if flask is not None and isinstance(app, flask.Flask):
        return "flask"
    return None


def check_app(app: object) -> None:
    """Raise ConfigError unless ``app`` is a kind of application obskit can instrument."""
    if _kind(app) is None:
        raise ConfigError(
            "app",
            type(app).__name__,
            SUPPORTED,
            "Wrap other ASGI/WSGI callables with obskit.asgi.middleware(app) / obskit.wsgi.middleware(app).",
        )


def instrument(app: object, settings: Settings) -> Callable[[float], None]:
    """Instrument ``app`` (once) and return the undo run by shutdown().

    The middleware stays in place for the app's lifetime; the undo switches it to a plain
    pass-through, and the next configure(app) switches the same middleware back on.
    """
    hub: Hub | None = getattr(app, MARK, None)
    if hub is None:
        hub = Hub(enabled=False)
        if _kind(app) == "starlette":
            _wrap_starlette(app, hub)
        else:
            _wrap_flask(app, hub)
        setattr(app, MARK, hub)
    hub.enabled = True
    restore_native = _quiet_fastapi_native_telemetry(app)
    unfilter = _drop_servers_copies_of_logged_errors()

    def undo(timeout: float) -> None:
        hub.enabled = False
        restore_native()
        unfilter()

    return undo


def _drop_servers_copies_of_logged_errors() -> Callable[[], None]:
    """Uvicorn's and gunicorn's own log of an exception obskit logged is dropped (see _http)."""
    loggers = [logging.getLogger(name) for name in SERVER_ERROR_LOGGERS]
    already = AlreadyLoggedFilter()
    for logger in loggers:
        if not any(isinstance(f, AlreadyLoggedFilter) for f in logger.filters):
            logger.addFilter(already)

    def remove() -> None:
        for logger in loggers:
            logger.removeFilter(already)

    return remove


def _wrap_starlette(app: Any, hub: Hub) -> None:
    """Outermost: around the stack Starlette builds (ServerErrorMiddleware and user middleware inside)."""
    from obskit._web.asgi import ObskitASGIMiddleware

    build = app.build_middleware_stack

    def build_instrumented_stack() -> Any:
        return ObskitASGIMiddleware(build(), hub)

    app.build_middleware_stack = build_instrumented_stack
    app.middleware_stack = None  # an app already serving rebuilds its stack with the middleware


def _quiet_fastapi_native_telemetry(app: Any) -> Callable[[], None]:
    """Turn off FastAPI's own server span, HTTP metrics and error logs (FastAPI >= 0.165) while obskit serves.

    FastAPI.__call__ wraps its whole stack, obskit's middleware included, in a second SERVER span
    once a global tracer provider exists, and logs validation failures and unhandled exceptions
    through an OpenTelemetry logger provider when one exists: one server span per request, and
    one log line per error, are obskit's promises. With all three off FastAPI also skips its
    per-request telemetry bookkeeping. FastAPI apps mounted inside, which configure() does not
    see, skip theirs for each request obskit serves: the middleware marks the scope as FastAPI
    does for the apps mounted in one it serves (``obskit._web.asgi._claim``).
    """
    config = getattr(app, "_telemetry", None)
    if not isinstance(config, dict):
        return lambda: None
    previous = {key: config.get(key) for key in ("tracing", "metrics", "logs")}
    config.update(tracing=False, metrics=False, logs=False)
    return lambda: config.update(previous)


def _wrap_flask(app: Any, hub: Hub) -> None:
    from flask import request, signals

    from obskit._web.wsgi import ERROR_KEY, ROUTE_KEY, ObskitWSGIMiddleware

    def note_route(sender: Any, **extra: Any) -> None:
        rule = request.url_rule
        if rule is not None:
            request.environ[ROUTE_KEY] = flask_route(rule.rule)

    def note_error(sender: Any, exception: BaseException, **extra: Any) -> None:
        request.environ[ERROR_KEY] = exception

    signals.request_started.connect(note_route, app, weak=False)
    signals.got_request_exception.connect(note_error, app, weak=False)
    app.wsgi_app = ObskitWSGIMiddleware(app.wsgi_app, hub)
