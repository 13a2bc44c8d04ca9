"""Outgoing HTTP calls: trace context and a CLIENT span for ``httpx`` and ``requests``.

Through the OpenTelemetry contrib instrumentations (the ``http-clients`` extra). They are
optional: when a client library or its instrumentation is not installed, it is skipped without a
word, since an application that does not use ``requests`` has nothing to instrument. The
instrumentations record into obskit's proxy provider, so a later ``configure()`` or the test
capture is followed without instrumenting again. A library the application instrumented itself
before ``configure()`` is left alone, and so is its uninstrumentation.

The SDK's export threads suppress instrumentation while exporting, so obskit's own OTLP and
Azure exports (which use ``requests``) never produce spans of their own.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable
from typing import Any

from obskit._core.settings import Settings

__all__ = ["CLIENTS", "instrument", "missing"]

_log = logging.getLogger("obskit")

#: client library -> (instrumentation module, instrumentor class).
CLIENTS = {
    "httpx": ("opentelemetry.instrumentation.httpx", "HTTPXClientInstrumentor"),
    "requests": ("opentelemetry.instrumentation.requests", "RequestsInstrumentor"),
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing() -> list[str]:
    """Installed client libraries whose instrumentation is not: ``pip install "obskit[http-clients]"``."""
    return [lib for lib, (module, _) in CLIENTS.items() if _installed(lib) and not _installed(module)]


def _instrumentor(library: str) -> Any:
    module, cls = CLIENTS[library]
    if not (_installed(library) and _installed(module)):
        return None
    return getattr(importlib.import_module(module), cls)()


def _nothing(timeout: float) -> None:
    """Nothing was instrumented, so there is nothing to undo."""


def instrument(settings: Settings) -> Callable[[float], None]:
    """Instrument the installed HTTP clients (unless turned off) and return the undo for shutdown()."""
    if not settings.instrument_http_clients:
        return _nothing
    from obskit._recording.proxy import ObskitTracerProvider

    provider = ObskitTracerProvider()
    ours = []
    for library in CLIENTS:
        instrumentor = _instrumentor(library)
        if instrumentor is None or instrumentor.is_instrumented_by_opentelemetry:
            continue  # not installed, or instrumented by the application: not ours to undo
        instrumentor.instrument(tracer_provider=provider)
        if instrumentor.is_instrumented_by_opentelemetry:  # False on a version conflict (logged)
            ours.append(instrumentor)
    if not ours:
        return _nothing

    def uninstrument(timeout: float) -> None:
        for instrumentor in ours:
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()

    return uninstrument
