"""configure(app): recognise the web application and instrument it (ASGI or WSGI)."""

from __future__ import annotations

import logging
import sys
import weakref
from collections.abc import Callable
from typing import Any

from obskit._core.errors import ConfigError
from obskit._core.settings import Settings
from obskit._web.django import is_django_app
from obskit._web.http import SERVER_ERROR_LOGGERS, AlreadyLoggedFilter, Hub, flask_route
from obskit._web.routes import watch

__all__ = ["app_tracer_provider", "check_app", "instrument"]

SUPPORTED = (
    "a FastAPI/Starlette application (ASGI), a Flask application (WSGI) or a Django project's "
    "get_wsgi_application()/get_asgi_application()"
)
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
    if is_django_app(app):
        return "django"
    return None


#: The first Starlette whose router puts the route it matched in the scope (``scope["route"]``).
ROUTE_IN_SCOPE = (1, 7)


def _warn_if_starlette_names_no_route() -> None:
    """Say (once per app, when it is wrapped) why requests get no route on an older Starlette.

    obskit names spans and labels metrics with the matched route's template, which Starlette's
    router leaves in the scope from 1.7 on. The ``fastapi`` extra requires it; an older
    Starlette installed without the extra still serves, with no route on its requests.
    """
    version = getattr(sys.modules.get("starlette"), "__version__", "")
    try:
        found = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:  # a pre-release or a local build: not judged
        return
    if len(found) == 2 and found < ROUTE_IN_SCOPE:
        logging.getLogger("obskit").warning(
            "Starlette %s puts no matched route in the request scope (1.7 does): requests"
            " get no route in their span names, metrics and access lines; pip install"
            ' "obskit[fastapi]" (starlette>=1.7)',
            version,
        )


def check_app(app: object) -> None:
    """Raise ConfigError unless ``app`` is a kind of application obskit can instrument."""
    if _kind(app) is None:
        raise ConfigError(
            "app",
            type(app).__name__,
            SUPPORTED,
            "Wrap other ASGI/WSGI callables with obskit.asgi.middleware(app) / obskit.wsgi.middleware(app);"
            " in a Django project, add 'obskit.django.ObskitMiddleware' first in MIDDLEWARE instead.",
        )


def instrument(app: object, settings: Settings) -> Callable[[float], None]:
    """Instrument ``app`` (once) and return the undo run by shutdown().

    The middleware stays in place for the app's lifetime; the undo switches it to a plain
    pass-through, and the next configure(app) switches the same middleware back on.
    """
    kind = _kind(app)
    hub: Hub | None = getattr(app, MARK, None)
    if hub is None:
        hub = Hub(enabled=False)
        if kind == "starlette":
            _warn_if_starlette_names_no_route()
            _wrap_starlette(app, hub)
        elif kind == "django":
            from obskit._web.django import wrap_handler

            wrap_handler(app, hub)  # not when MIDDLEWARE has obskit's: that one instruments
        else:
            _wrap_flask(app, hub)
        setattr(app, MARK, hub)
    hub.enabled = True
    restore_native = _quiet_fastapi_native_telemetry(app)
    unfilter = _drop_servers_copies_of_logged_errors()
    if kind == "flask":
        release_flask_logger = _keep_flask_logger(app)
    elif kind == "django":
        from obskit._web.django import keep_django_console

        release_flask_logger = keep_django_console()
    else:
        release_flask_logger = lambda: None  # noqa: E731

    def undo(timeout: float) -> None:
        hub.enabled = False
        restore_native()
        unfilter()
        release_flask_logger()

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


#: Set on a Flask app whose logger obskit looks at on its first request (once per app).
_FLASK_LOGGER_WATCHED = "_obskit_flask_logger_watched"


def _keep_flask_logger(app: Any) -> Callable[[], None]:
    """Flask's own handler stays on the app's logger, as it would be without obskit.

    Flask adds ``default_handler`` (to ``wsgi.errors``) to the app's logger on first use of
    ``app.logger`` when no handler would handle its records; obskit's handler on the root must
    not count for that, or the app's errors stop reaching ``wsgi.errors``. obskit makes Flask's
    choice again, without its own handler, when the app serves its first request (the handlers
    are then what the application set up, as late as Flask itself would look). A logger Flask
    made before ``configure()`` is left as it is (the application may have removed the
    handler), and so is an app that serves no request (Flask's ``test_existing_handler``). While obskit's
    console handler writes a record, Flask's copy on the console (``wsgi.errors`` is the process's
    stderr under a real server) is dropped: one JSON line per record. A ``wsgi.errors`` elsewhere
    (a test client's buffer) still gets it.
    """
    from flask import signals
    from flask.logging import default_handler

    from obskit._recording.loghandler import ConsoleCopyFilter, handled_without_obskit

    made = "logger" in vars(app)  # Flask's cached_property, set on first use
    if not made and not getattr(app, _FLASK_LOGGER_WATCHED, False):
        setattr(app, _FLASK_LOGGER_WATCHED, True)
        name = app.name

        def first_request(sender: Any, **extra: Any) -> None:
            signals.request_started.disconnect(first_request, sender)
            logger = logging.getLogger(name)
            if default_handler not in logger.handlers and not handled_without_obskit(logger):
                logger.addHandler(default_handler)  # what Flask does on first use of app.logger

        signals.request_started.connect(first_request, app, weak=False)
    copies = ConsoleCopyFilter(default_handler)
    default_handler.addFilter(copies)
    return lambda: default_handler.removeFilter(copies)


def _wrap_starlette(app: Any, hub: Hub) -> None:
    """Outermost: around the stack Starlette builds (ServerErrorMiddleware and user middleware inside)."""
    from obskit._web.asgi import ObskitASGIMiddleware

    build = _weakly_bound(app, "build_middleware_stack")
    routes = watch(app, lambda: hub.enabled)  # obskit's paths are served only where the app has no route

    def build_instrumented_stack() -> Any:
        stack = build()
        official = _official_asgi_middleware(stack)
        hub.server_span = official is None
        hub._config = None  # a config made before this stack was built may say otherwise
        if official is not None:  # its server span is the request's; obskit works inside it
            official.app = ObskitASGIMiddleware(official.app, hub, routes)
            return stack
        return ObskitASGIMiddleware(stack, hub, routes)

    app.build_middleware_stack = build_instrumented_stack
    app.middleware_stack = None  # an app already serving rebuilds its stack with the middleware


def _weakly_bound(app: Any, name: str) -> Callable[..., Any]:
    """``app.<name>``, for a wrapper kept on the app itself, without a reference cycle.

    The app's bound method, held by a wrapper the app holds, would keep the app alive until the
    garbage collector finds the cycle (Flask's ``test_app_freed_on_zero_refcount``): the class's
    method is called through a weak reference instead. A method the instance holds itself (an
    application that wrapped ``wsgi_app`` before) is kept as it is.
    """
    own: Callable[..., Any] | None = vars(app).get(name)
    if own is not None:
        return own
    method = getattr(type(app), name)
    ref = weakref.ref(app)

    def call(*args: Any) -> Any:
        return method(ref(), *args)

    return call


#: The package of OpenTelemetry's own instrumentations (opentelemetry-python-contrib).
_OFFICIAL = "opentelemetry.instrumentation"


def _official_asgi_middleware(stack: Any) -> Any:
    """OpenTelemetry's ASGI server middleware in a built stack, or None.

    ``opentelemetry-instrument`` (its FastAPI instrumentor) or ``instrument_app()`` put it there.
    obskit then starts no SERVER span of its own: it runs just inside that middleware, so that
    the request has one server span, the one the application chose (with its hooks, excluded
    URLs and semantic conventions), and obskit's access line, logs and exemplars carry its ids.
    """
    seen: set[int] = set()
    while stack is not None and id(stack) not in seen:
        seen.add(id(stack))
        kind = type(stack)
        if kind.__name__ == "OpenTelemetryMiddleware" and kind.__module__.startswith(_OFFICIAL):
            return stack
        stack = getattr(stack, "app", None)
    return None


def app_tracer_provider(app: object) -> Any:
    """The tracer provider an application was given for its own telemetry (FastAPI >= 0.165), or None."""
    config = getattr(app, "_telemetry", None)
    return config.get("tracer_provider") if isinstance(config, dict) else None


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

    from obskit._web.wsgi import COMPLETE_KEY, ERROR_KEY, ROUTE_KEY, ObskitWSGIMiddleware

    def note_route(sender: Any, **extra: Any) -> None:
        rule = request.url_rule
        if rule is not None:
            request.environ[ROUTE_KEY] = flask_route(rule.rule)

    def note_error(sender: Any, exception: BaseException, **extra: Any) -> None:
        request.environ[ERROR_KEY] = exception

    def note_complete(sender: Any, response: Any, **extra: Any) -> None:
        # Not streamed: the body is all made. Flask's answer to an exception it caught (its
        # error page, or the app's error handler) counts as made too: werkzeug wraps an HTTP
        # error's page in an iterator, so it looks streamed.
        environ = request.environ
        environ[COMPLETE_KEY] = not response.is_streamed or ERROR_KEY in environ

    signals.request_started.connect(note_route, app, weak=False)
    signals.got_request_exception.connect(note_error, app, weak=False)
    signals.request_finished.connect(note_complete, app, weak=False)
    app.wsgi_app = ObskitWSGIMiddleware(_weakly_bound(app, "wsgi_app"), hub, watch(app, lambda: hub.enabled))
