"""ASGI middleware for applications ``configure(app)`` does not recognise.

FastAPI and Starlette apps need nothing from here: ``obskit.configure(app)`` instruments them.
Any other ASGI callable can be wrapped::

    app = obskit.asgi.middleware(app)

Each HTTP request then gets a SERVER span, RED metrics, a request id (echoed in the response
header and bound to every log line) and an access-log line; the scrape and health endpoints are
answered where the app has nothing: a request to one of those paths goes to the app first, and
obskit answers only if the app answers 404 (that 404 is dropped unsent; any other answer goes out
as the app streams it). A Starlette/FastAPI app or router has its routes read instead. Websocket
and lifespan traffic passes through. The middleware follows whatever obskit
is configured with at request time (nothing before ``configure()``: then no spans are made).
The route label is the ``route`` a router left in the scope, else ``__unmatched__``.
"""

from __future__ import annotations

from obskit._web.asgi import ASGIApp, ObskitASGIMiddleware

__all__ = ["middleware"]


def middleware(app: ASGIApp) -> ObskitASGIMiddleware:
    """Wrap the ASGI callable ``app`` in obskit's request telemetry; returns the new ASGI app."""
    return ObskitASGIMiddleware(app)
