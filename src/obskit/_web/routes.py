"""Whether the application serves one of obskit's paths itself: obskit never shadows an app's route.

obskit answers its scrape and health paths only where the app has nothing. For apps whose
routes can be read (a Starlette/FastAPI router, a Flask ``url_map``, a Django URLconf) the
routes decide: a route (path parameters and converters included), a mount holding such a
route, a redirect the router would send (a trailing slash added or removed) or a method the
route refuses all mean the app serves the path. What cannot be read (a plain ASGI/WSGI
callable, a mounted app that is not a router, a Starlette ``Host``, a router with its own
default app, Flask host or subdomain matching) is asked first: the request goes to the app
and obskit answers only if the app answers 404.

The routes are read only for requests to obskit's own paths, and the answer is cached per app
and path until the route list changes (routes added after ``configure()`` count).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import weakref
from collections.abc import Iterator
from typing import Any, Final

from obskit import environment_variables as env
from obskit._core.errors import report_internal_error

__all__ = [
    "ASK",
    "FREE",
    "TAKEN",
    "AppRoutes",
    "DjangoURLs",
    "Endpoint",
    "endpoints",
    "shadowed",
    "shadowed_message",
    "watch",
]

_log = logging.getLogger("obskit")

#: The app serves the path: obskit steps aside.
TAKEN: Final = "taken"
#: The app has no route there: obskit answers.
FREE: Final = "free"
#: The routes cannot be read: the app is asked first, obskit answers its 404s.
ASK: Final = "ask"

#: Each endpoint kind: what it is, the setting that moves it and that setting's variable.
_ENDPOINTS: Final = {
    "metrics": ("Prometheus scrape endpoint", "prometheus_path", env.OBSKIT_PROMETHEUS_PATH),
    "full": ("health report", "health_path", env.OBSKIT_HEALTH_PATH),
    "live": ("liveness probe", "liveness_path", env.OBSKIT_LIVENESS_PATH),
    "ready": ("readiness probe", "readiness_path", env.OBSKIT_READINESS_PATH),
}


class Endpoint:
    """One of obskit's endpoints: its kind (``metrics``, ``full``, ``live``, ``ready``) and path."""

    __slots__ = ("kind", "path")

    def __init__(self, kind: str, path: str) -> None:
        self.kind = kind
        self.path = path

    def describe(self) -> str:
        """What this endpoint is, in words."""
        return _ENDPOINTS[self.kind][0]

    def setting(self) -> str:
        """``setting (VARIABLE)``: how to move this endpoint."""
        _, setting, variable = _ENDPOINTS[self.kind]
        return f"{setting} (or {variable})"


def endpoints(metrics_path: str | None, health: dict[str, str]) -> list[Endpoint]:
    """The endpoints obskit serves for a web config: the scrape path (with Prometheus), the health paths."""
    found = [Endpoint(kind, path) for path, kind in health.items()]
    if metrics_path is not None:
        found.insert(0, Endpoint("metrics", metrics_path))
    return found


class AppRoutes:
    """Who serves obskit's paths in one app; caches the answer and warns once per path it gives up.

    ``app`` is the application whose routes are read: a Starlette/FastAPI app or router, a
    Flask app; anything else (or None) is asked first (:data:`ASK`).
    """

    def __init__(self, app: object | None) -> None:
        self._reader = _reader_for(app)
        self._cache: dict[tuple[str, str], str] = {}
        self._signature: object = None
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    @property
    def readable(self) -> bool:
        """Whether the app's routes can be read (else every decision is :data:`ASK`)."""
        return self._reader is not None

    def owner(self, path: str, root_path: str = "") -> str:
        """:data:`TAKEN`, :data:`FREE` or :data:`ASK` for a request to ``path`` under ``root_path``."""
        reader = self._reader
        if reader is None:
            return ASK
        try:
            signature = reader.signature()
            if signature != self._signature:
                self._cache = {}
                self._signature = signature
            key = (path, root_path)
            decision = self._cache.get(key)
            if decision is None:
                decision = self._cache[key] = reader.owner(path, root_path)
            return decision
        except Exception as exc:  # an app whose routes obskit cannot read is asked instead
            report_internal_error("reading the application's routes", exc)
            return ASK

    def step_aside(self, endpoint: Endpoint) -> None:
        """Log, once per path, that the app serves ``endpoint``'s path and obskit does not answer there."""
        with self._lock:
            if endpoint.path in self._warned:
                return
            self._warned.add(endpoint.path)
        _log.warning(
            "The application serves %s itself; obskit's %s is not served there. Set %s to serve it "
            "at a free path.",
            endpoint.path,
            endpoint.describe(),
            endpoint.setting(),
        )


def shadowed_message(endpoint: Endpoint) -> str:
    """The doctor's line for an endpoint the app serves itself."""
    _, setting, variable = _ENDPOINTS[endpoint.kind]
    return (
        f"{setting}: the application serves {endpoint.path} itself, so obskit's {endpoint.describe()} "
        f"is not served; set {setting} (or {variable}) to a path the application does not use"
    )


# -- the apps configure() instruments, for the doctor ---------------------------------------------

#: app -> (its AppRoutes, a function telling whether obskit is on for it).
_WATCHED: weakref.WeakKeyDictionary[Any, tuple[AppRoutes, Any]] = weakref.WeakKeyDictionary()


def watch(app: object, active: Any) -> AppRoutes:
    """The :class:`AppRoutes` of an app handed to ``configure()``; ``active()`` says whether obskit is on."""
    routes = AppRoutes(app)
    with contextlib.suppress(TypeError):  # not weakly referable: the doctor cannot see it
        _WATCHED[app] = (routes, active)
    return routes


def shadowed(metrics_path: str | None, health: dict[str, str], app: object | None = None) -> list[str]:
    """One line per endpoint of obskit that an app serves itself (for the doctor).

    ``app`` is checked when given; else every app ``configure()`` instruments now.
    """
    if app is not None:
        apps = [AppRoutes(app)]
    else:
        apps = [routes for routes, active in list(_WATCHED.values()) if active()]
    lines = [
        shadowed_message(endpoint)
        for routes in apps
        if routes.readable
        for endpoint in endpoints(metrics_path, health)
        if routes.owner(endpoint.path) == TAKEN
    ]
    return list(dict.fromkeys(lines))  # once each: Django's middlewares in a process share one URLconf


# -- reading routes -------------------------------------------------------------------------------


class _Reader:
    def signature(self) -> object:
        raise NotImplementedError

    def owner(self, path: str, root_path: str) -> str:
        raise NotImplementedError


class DjangoURLs:
    """Stands for a Django project's URLconf where there is no app object (the ``MIDDLEWARE`` entry)."""

    __slots__ = ("__weakref__",)


def _reader_for(app: object | None) -> _Reader | None:
    if app is None:
        return None
    base = sys.modules.get("django.core.handlers.base")
    if isinstance(app, DjangoURLs) or (base is not None and isinstance(app, base.BaseHandler)):
        return _DjangoReader()
    applications = sys.modules.get("starlette.applications")
    routing = sys.modules.get("starlette.routing")
    if (applications is not None and isinstance(app, applications.Starlette)) or (
        routing is not None and isinstance(app, routing.Router)
    ):
        return _StarletteReader(app)
    flask = sys.modules.get("flask")
    if flask is not None and isinstance(app, flask.Flask):
        return _FlaskReader(app)
    return None


class _StarletteReader(_Reader):
    """A Starlette router read as Starlette's ``Router.app`` would dispatch a GET to the path."""

    def __init__(self, app: Any) -> None:
        # Weakly: a FastAPI app's routes hold the app (its openapi endpoint), and the doctor's
        # registry must not keep apps alive.
        self._app = weakref.ref(app)

    def _router(self) -> Any:
        app = self._app()
        return getattr(app, "router", app)

    def signature(self) -> object:
        router = self._router()
        return None if router is None else tuple(_route_lists(router))

    def owner(self, path: str, root_path: str) -> str:
        router = self._router()
        if router is None:
            return ASK
        scope = {"type": "http", "method": "GET", "path": path, "root_path": root_path, "headers": []}
        return _router_owner(router, scope)


def _route_lists(router: Any) -> Iterator[tuple[int, int]]:
    """(id, length) of the router's route list and of every router mounted in it."""
    routes = router.routes
    yield id(routes), len(routes)
    routing = sys.modules["starlette.routing"]
    for route in routes:
        if isinstance(route, routing.Mount):
            inner = _inner_router(route)
            if inner is not None:
                yield from _route_lists(inner)


def _inner_router(mount: Any) -> Any:
    """The router a Mount dispatches to, when it is one obskit can read; else None."""
    app = getattr(mount, "_base_app", None)
    applications = sys.modules.get("starlette.applications")
    if applications is not None and isinstance(app, applications.Starlette):
        return app.router
    return app if isinstance(app, sys.modules["starlette.routing"].Router) else None


def _router_owner(router: Any, scope: dict[str, Any]) -> str:
    routing = sys.modules["starlette.routing"]
    partial = False
    for route in router.routes:
        if isinstance(route, routing.Host):
            return ASK  # matches on the Host header, which varies per request
        match, child = route.matches(scope)
        if match is routing.Match.FULL:
            return _route_owner(route, {**scope, **child}, routing)  # the router hands it over
        partial = partial or match is routing.Match.PARTIAL
    if partial:
        return TAKEN  # a route refusing the method: the app answers 405
    route_path = _route_path(scope)
    if router.redirect_slashes and route_path != "/":
        path = scope["path"]
        toggled = {**scope, "path": path.rstrip("/") if route_path.endswith("/") else path + "/"}
        if any(route.matches(toggled)[0] is not routing.Match.NONE for route in router.routes):
            return TAKEN  # the router redirects there
    if router.default != router.not_found:
        return ASK  # a router with its own default app may answer anything
    return FREE


def _route_owner(route: Any, child_scope: dict[str, Any], routing: Any) -> str:
    """Who answers a request the router hands to ``route`` (a mount's router may answer 404: FREE)."""
    if isinstance(route, routing.Mount):
        inner = _inner_router(route)
        if inner is None:
            return ASK  # a mounted app obskit cannot read: it may or may not serve the path
        return _router_owner(inner, child_scope)
    return TAKEN


def _route_path(scope: dict[str, Any]) -> str:
    # As starlette's get_route_path: the path below the root path.
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :]
    return path


class _FlaskReader(_Reader):
    """A Flask app's ``url_map``, matched as Flask would match a GET to the path."""

    def __init__(self, app: Any) -> None:
        self._app = weakref.ref(app)

    def signature(self) -> object:
        app = self._app()
        if app is None:
            return None
        url_map = app.url_map
        return id(url_map), sum(1 for _ in url_map.iter_rules())

    def owner(self, path: str, root_path: str) -> str:
        app = self._app()
        if app is None or app.url_map.host_matching or app.subdomain_matching:
            return ASK
        from werkzeug.exceptions import HTTPException, NotFound
        from werkzeug.routing import RoutingException

        adapter = app.url_map.bind("localhost", script_name=root_path or None)
        try:
            adapter.match(path, method="GET")
        except NotFound:
            return FREE
        except (HTTPException, RoutingException):  # MethodNotAllowed, RequestRedirect: the app answers
            return TAKEN
        return TAKEN


class _DjangoReader(_Reader):
    """The project's root URLconf, resolved as Django resolves a request's ``path_info``.

    A path that resolves, or that ``APPEND_SLASH`` would redirect to one that does, is served by
    the project.
    """

    def signature(self) -> object:
        from django.urls import get_resolver

        return id(get_resolver())  # a new resolver when the URL caches are cleared

    def owner(self, path: str, root_path: str) -> str:
        from django.conf import settings
        from django.urls import Resolver404, get_resolver

        resolver = get_resolver()
        try:
            resolver.resolve(path)
        except Resolver404:
            if getattr(settings, "APPEND_SLASH", False) and not path.endswith("/"):
                try:
                    resolver.resolve(path + "/")
                except Resolver404:
                    return FREE
                return TAKEN  # CommonMiddleware redirects there
            return FREE
        return TAKEN
