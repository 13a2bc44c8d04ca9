"""Stdlib log records to OpenTelemetry log records, for the exported log backends (OTLP, Azure).

obskit's own handler rather than the SDK's deprecated ``LoggingHandler``: it adds the
LoggingContext fields, redacts with the shared list, and never exports obskit's or the
exporting libraries' own records (no feedback loops).
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Sequence
from typing import Any

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.context import get_current
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from obskit._context import current_fields
from obskit._errors import report_internal_error
from obskit._pipeline import ExcludeInternalFilter, backend_of, count_dropped, record_export
from obskit._redact import Redactor
from obskit._tracing import clean_attributes

__all__ = ["CountingLogExporter", "ObskitLoggingHandler"]

_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "_obskit_fields",
}
_SEVERITY = (
    (50, SeverityNumber.FATAL, "FATAL"),
    (40, SeverityNumber.ERROR, "ERROR"),
    (30, SeverityNumber.WARN, "WARN"),
    (20, SeverityNumber.INFO, "INFO"),
    (10, SeverityNumber.DEBUG, "DEBUG"),
)


def severity(levelno: int) -> tuple[SeverityNumber, str]:
    """OpenTelemetry severity number and text of a stdlib level (custom levels round down)."""
    for floor, number, text in _SEVERITY:
        if levelno >= floor:
            return number, text
    return SeverityNumber.TRACE, "TRACE"


class ObskitLoggingHandler(logging.Handler):
    """Emits each stdlib record into a LoggerProvider, with context fields and redaction."""

    def __init__(self, level: int, provider: LoggerProvider, redactor: Redactor) -> None:
        super().__init__(level)
        self._provider = provider
        self._redactor = redactor
        self.addFilter(ExcludeInternalFilter())

    def emit(self, record: logging.LogRecord) -> None:
        """Translate and hand over; the batch processor exports off this thread."""
        try:
            number, text = severity(record.levelno)
            self._provider.get_logger(record.name).emit(
                LogRecord(
                    timestamp=int(record.created * 1e9),
                    observed_timestamp=time.time_ns(),
                    context=get_current(),
                    severity_text=text,
                    severity_number=number,
                    body=record.getMessage(),
                    attributes=self._attributes(record),
                )
            )
        except Exception as exc:
            report_internal_error("log export handler", exc)

    def _attributes(self, record: logging.LogRecord) -> dict[str, Any]:
        fields: dict[str, Any] = dict(current_fields())
        structured = getattr(record, "_obskit_fields", None)
        if structured:
            fields.update(structured)
        fields.update((k, v) for k, v in record.__dict__.items() if k not in _RESERVED)
        fields["code.file.path"] = record.pathname
        fields["code.function.name"] = record.funcName
        fields["code.line.number"] = record.lineno
        fields["logger.name"] = record.name
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc, tb = record.exc_info
            fields["exception.type"] = exc_type.__name__
            fields["exception.message"] = _safe_str(exc)
            fields["exception.stacktrace"] = "".join(traceback.format_exception(exc_type, exc, tb))
        return clean_attributes(fields, self._redactor)

    def flush(self) -> None:
        """Nothing to do here: the provider's batch processor flushes on its own thread."""


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return type(value).__name__


class CountingLogExporter(LogRecordExporter):
    """Counts log records an exporter failed to deliver; never raises."""

    def __init__(self, inner: LogRecordExporter) -> None:
        self.inner = inner

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        """Export through the wrapped exporter, counting a failed batch."""
        try:
            result = self.inner.export(batch)
        except Exception as exc:
            report_internal_error(f"log export ({type(self.inner).__name__})", exc)
            result = LogRecordExportResult.FAILURE
        ok = result is LogRecordExportResult.SUCCESS or getattr(result, "name", "") == "SUCCESS"
        if not ok:
            count_dropped("logs", "export_failed", len(batch))
        record_export(backend_of(self.inner), "logs", ok)
        return result

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self.inner.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        return bool(self.inner.force_flush(timeout_millis))
