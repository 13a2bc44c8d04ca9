"""The request id on outgoing calls: a propagator beside the global ones (``request_id_propagation``).

Every instrumentation that injects trace headers into an outgoing call (httpx, requests, and any
other OpenTelemetry instrumentation) asks the global propagator; the one here adds the current
request id (of the request being served, or of a :class:`~obskit.LoggingContext`) under the
``request_id_header`` name, so the downstream service's obskit takes it up as its own request id
and both services' log lines share it. It extracts nothing: obskit's middleware reads that
header itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)

from obskit._core.context import current_fields
from obskit._core.settings import Settings

__all__ = ["RequestIdPropagator", "install"]


class RequestIdPropagator(TextMapPropagator):
    """Injects the current request id under ``header``; extracts nothing."""

    def __init__(self, header: str) -> None:
        self.header = header.lower()

    def inject(
        self, carrier: CarrierT, context: Context | None = None, setter: Setter[CarrierT] = default_setter
    ) -> None:
        """Add the current request id to ``carrier`` (when one is current and the carrier has none)."""
        request_id = current_fields().get("request_id")
        if request_id:
            setter.set(carrier, self.header, str(request_id))

    def extract(
        self, carrier: CarrierT, context: Context | None = None, getter: Getter[CarrierT] = default_getter
    ) -> Context:
        """Nothing: the middleware reads the request id header itself."""
        return context if context is not None else Context()

    @property
    def fields(self) -> set[str]:
        """The header it sets."""
        return {self.header}


def install(settings: Settings) -> Callable[[float], None]:
    """Add a :class:`RequestIdPropagator` to the global propagator; return the undo.

    The propagators already there stay first and unchanged (a composite's members are kept flat,
    so the web layer still recognises the plain W3C ones).
    """
    if not settings.request_id_propagation:
        return _nothing
    current = propagate.get_global_textmap()
    members: list[Any] = list(current._propagators) if isinstance(current, CompositePropagator) else [current]
    members = [p for p in members if not isinstance(p, RequestIdPropagator)]
    ours = CompositePropagator([*members, RequestIdPropagator(settings.request_id_header)])
    propagate.set_global_textmap(ours)

    def undo(timeout: float) -> None:
        if propagate.get_global_textmap() is ours:  # not replaced since: put the previous one back
            propagate.set_global_textmap(current)

    return undo


def _nothing(timeout: float) -> None:
    return None
