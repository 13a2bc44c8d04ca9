"""Redaction of span attributes on the export thread, so user-set attributes are covered too."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from obskit._redact import REDACTED, Redactor

__all__ = ["RedactingSpanExporter", "redact_span"]


def _redacted(attributes: Mapping[str, Any], redactor: Redactor) -> BoundedAttributes:
    values = {k: REDACTED if redactor.is_sensitive(k) else v for k, v in attributes.items()}
    return BoundedAttributes(attributes=values, immutable=True)


def redact_span(span: ReadableSpan, redactor: Redactor) -> None:
    """Replace the values of sensitive attribute keys of an ended span and its events, in place."""
    attributes = span.attributes
    if attributes and redactor.needs_work(attributes):
        span._attributes = _redacted(attributes, redactor)
    events = span.events
    if events and any(e.attributes and redactor.needs_work(e.attributes) for e in events):
        span._events = tuple(
            Event(e.name, _redacted(e.attributes, redactor), e.timestamp)
            if e.attributes and redactor.needs_work(e.attributes)
            else e
            for e in events
        )


class RedactingSpanExporter(SpanExporter):
    """Wraps an exporter; redacts each batch before handing it on (off the request path)."""

    def __init__(self, inner: SpanExporter, redactor: Redactor) -> None:
        self.inner = inner
        self._redactor = redactor

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Redact, then export through the wrapped exporter."""
        for span in spans:
            redact_span(span, self._redactor)
        return self.inner.export(spans)

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        return self.inner.force_flush(timeout_millis)
