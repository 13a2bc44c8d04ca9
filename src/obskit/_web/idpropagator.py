"""The propagator that adds the request id to outgoing calls (see :mod:`obskit._web.propagation`).

A module of its own so that OpenTelemetry's ``propagators.textmap`` is imported only when the
propagator is installed, not by every ``configure()``.
"""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)

from obskit._core.context import current_fields

__all__ = ["RequestIdPropagator"]


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
