"""Django support, for projects that prefer settings to ``configure(app)``.

Either hand the project's handler to ``configure()`` (in ``wsgi.py`` or ``asgi.py``)::

    application = get_wsgi_application()
    obskit.configure(application)

or put obskit's middleware first in ``MIDDLEWARE``::

    MIDDLEWARE = ["obskit.django.ObskitMiddleware", ...]

One of the two: with the middleware in ``MIDDLEWARE``, ``configure(app)`` adds nothing (one
server span per request). The middleware configures obskit when Django loads it (in the
serving process, once Django's ``LOGGING`` is set up), from the environment and the optional
``OBSKIT`` setting (a dict of ``configure()`` keywords), unless ``configure()`` ran already.
Each request then gets a SERVER span named ``METHOD <route>`` (the URL resolver's route),
RED metrics, a request id (echoed and bound to every log line) and an access line; the scrape
and health endpoints are answered where the project has no such URL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from obskit._web.django import ObskitDjangoMiddleware, keep_django_console

__all__ = ["ObskitMiddleware"]


class ObskitMiddleware(ObskitDjangoMiddleware):
    """obskit's request telemetry as a Django middleware; put it first in ``MIDDLEWARE``."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        super().__init__(get_response)
        _configure_once()


_console_kept = False


def _configure_once() -> None:
    """Configure obskit from ``settings.OBSKIT`` unless the project configured it already."""
    global _console_kept
    from django.conf import settings

    import obskit

    if not obskit.is_configured():
        keywords = getattr(settings, "OBSKIT", None) or {}
        obskit.configure(**keywords)
    if not _console_kept:
        keep_django_console()
        _console_kept = True
    from obskit._runtime import lifecycle
    from obskit._web.install import _drop_servers_copies_of_logged_errors

    # gunicorn's copy of an error obskit logged is dropped until shutdown(), as with configure(app)
    remove = _drop_servers_copies_of_logged_errors()
    lifecycle._installed.append(lambda timeout: remove())
