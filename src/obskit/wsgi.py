"""WSGI middleware for applications ``configure(app)`` does not recognise.

Flask apps need nothing from here: ``obskit.configure(app)`` instruments them. Any other WSGI
callable can be wrapped::

    application = obskit.wsgi.middleware(application)

Each request then gets a SERVER span, RED metrics, a request id (echoed in the response header
and bound to every log line) and an access-log line; the scrape and health endpoints are
answered where the app has nothing: a request to one of those paths goes to the app first, and
obskit answers only if the app answers 404 (that response's body is closed unsent; any other
answer goes out as the app gives it). A Flask app has its ``url_map`` read instead. The
middleware follows whatever obskit is configured with at request time. The route label is
whatever a framework hook left in ``environ["obskit.route"]``, else ``__unmatched__``.
"""

from __future__ import annotations

from obskit._web.wsgi import ObskitWSGIMiddleware, WSGIApp

__all__ = ["middleware"]


def middleware(app: WSGIApp) -> ObskitWSGIMiddleware:
    """Wrap the WSGI callable ``app`` in obskit's request telemetry; returns the new WSGI app."""
    return ObskitWSGIMiddleware(app)
