"""The request id on outgoing calls: a propagator beside the global ones (``request_id_propagation``).

Every instrumentation that injects trace headers into an outgoing call (httpx, requests, and any
other OpenTelemetry instrumentation) asks the global propagator; the one installed here
(:mod:`obskit._web.idpropagator`) adds the current request id (of the request being served, or
of a :class:`~obskit.LoggingContext`) under the ``request_id_header`` name, so the downstream
service's obskit takes it up as its own request id and both services' log lines share it. It
extracts nothing: obskit's middleware reads that header itself.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

from obskit._core.settings import Settings

__all__ = ["install"]


class _Installer:
    """Puts a :class:`RequestIdPropagator` after the global propagators, once; takes it off again."""

    def __init__(self, header: str) -> None:
        self._header = header
        self._lock = threading.Lock()
        self._previous: Any = None
        self._ours: Any = None
        self._closed = False

    def ensure(self) -> None:
        """Install it now (idempotent).

        The propagators already there stay first and unchanged: a composite's members are kept
        flat, so the web layer still recognises the plain W3C ones.
        """
        from opentelemetry import propagate
        from opentelemetry.propagators.composite import CompositePropagator

        from obskit._web.idpropagator import RequestIdPropagator

        with self._lock:
            if self._ours is not None or self._closed:
                return
            current = propagate.get_global_textmap()
            members: list[Any] = (
                list(current._propagators) if isinstance(current, CompositePropagator) else [current]
            )
            members = [p for p in members if not isinstance(p, RequestIdPropagator)]
            self._previous = current
            self._ours = CompositePropagator([*members, RequestIdPropagator(self._header)])
            propagate.set_global_textmap(self._ours)

    def undo(self, timeout: float) -> None:
        """Put the previous global propagator back (unless it was replaced since)."""
        with self._lock:
            self._closed = True
            ours, self._ours = self._ours, None
        if ours is None:
            return
        from opentelemetry import propagate

        if propagate.get_global_textmap() is ours:
            propagate.set_global_textmap(self._previous)


def install(settings: Settings) -> tuple[Callable[[float], None], Callable[[], None]]:
    """The undo, and the function that installs the propagator when outgoing calls may need it.

    Installed at once when ``opentelemetry.propagate`` is loaded already (a web app, an
    instrumentation); otherwise by the HTTP client instrumentation when it instruments a library
    (``_web/clients.py``): a process that makes no outgoing call never loads the propagators for it.
    """
    if not settings.request_id_propagation:
        return _nothing, _nothing_yet
    installer = _Installer(settings.request_id_header)
    if "opentelemetry.propagate" in sys.modules:
        installer.ensure()
    return installer.undo, installer.ensure


def _nothing(timeout: float) -> None:
    return None


def _nothing_yet() -> None:
    return None
