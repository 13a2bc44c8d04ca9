"""Redaction of span attributes on the export thread, so user-set attributes are covered too."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.attributes import BoundedAttributes

from obskit._redact import REDACTED, Redactor

__all__ = ["RedactingSpanExporter", "redact_span"]


def redact_span(span: ReadableSpan, redactor: Redactor) -> None:
    """Replace the values of sensitive attribute keys of an ended span, in place."""
    attributes = span.attributes
    if attributes and redactor.needs_work(attributes):
        redacted = {k: REDACTED if redactor.is_sensitive(k) else v for k, v in attributes.items()}
        span._attributes = BoundedAttributes(attributes=redacted, immutable=True)


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
