"""Stdlib log records to OpenTelemetry log records, for the exported log backends (OTLP, Azure).

obskit's own handler rather than the SDK's deprecated ``LoggingHandler``: it adds the
LoggingContext fields, redacts with the shared list (keys at any depth, credentials in the
body, exception and string fields), and never exports obskit's or the exporting libraries' own
records (no feedback loops). Every value is made safe where the record is made: a value the
exporters cannot encode (a lone surrogate, an int past 64 bits, an object whose ``str()``
raises) would otherwise fail the whole batch it is exported in, losing every record with it.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.context import get_current
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from obskit._core.context import current_fields
from obskit._core.errors import report_internal_error
from obskit._core.redact import REDACTED, Redactor, safe_json, safe_text, safe_value, unrenderable
from obskit._export.pipeline import ExcludeInternalFilter, backend_of, record_export
from obskit._recording.events import EVENT_FIELD, EventFields
from obskit._recording.store import count_dropped

__all__ = ["CountingLogExporter", "ObskitLoggingHandler"]

_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "_obskit_fields",
}
#: The attribute naming an event (OpenTelemetry semantic conventions).
EVENT_NAME = "event.name"
_PRIMITIVES = frozenset({str, bool, int, float})
#: Nested fields as compact JSON text (their leaves already made safe, so nothing here can fail).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=True)
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
            self._provider.get_logger(safe_text(record.name)).emit(
                LogRecord(
                    timestamp=int(record.created * 1e9),
                    observed_timestamp=time.time_ns(),
                    context=get_current(),
                    severity_text=text,
                    severity_number=number,
                    body=self._text(_message(record)),
                    attributes=self._attributes(record),
                )
            )
        except Exception as exc:
            report_internal_error("log export handler", exc)

    def _text(self, text: str) -> str:
        """Free text as it may leave: credentials hidden, valid UTF-8."""
        return safe_text(self._redactor.scrub(text))

    def _attributes(self, record: logging.LogRecord) -> dict[str, Any]:
        """The record's fields as OpenTelemetry attributes; a field that cannot be made loses itself."""
        fields: dict[str, Any] = dict(current_fields())
        structured = getattr(record, "_obskit_fields", None)
        if structured:
            fields.update(structured)
        fields.update((k, v) for k, v in record.__dict__.items() if k not in _RESERVED)
        if isinstance(structured, EventFields):  # obskit.event(): the name as semconv's event.name
            fields[EVENT_NAME] = fields.pop(EVENT_FIELD, structured.get(EVENT_FIELD))
        attributes: dict[str, Any] = {}
        for key, value in fields.items():
            name = safe_text(key) if key.__class__ is str else _safe_str(key)
            try:
                exported = self._attribute(name, value)
            except Exception:  # a value no rule foresaw: its field only is lost
                exported = unrenderable(value)
            if exported is not None:
                attributes[name] = exported
        attributes["code.file.path"] = safe_text(record.pathname)
        attributes["code.function.name"] = safe_text(record.funcName)
        attributes["code.line.number"] = record.lineno
        attributes["logger.name"] = safe_text(record.name)
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc, tb = record.exc_info
            attributes["exception.type"] = safe_text(exc_type.__name__)
            attributes["exception.message"] = self._text(_safe_str(exc))
            attributes["exception.stacktrace"] = self._text(
                "".join(traceback.format_exception(exc_type, exc, tb))
            )
        return attributes

    def _attribute(self, key: str, value: Any) -> Any:
        """One field as an attribute value OpenTelemetry and every exporter take (None: left out).

        Strings have credentials hidden; ints beyond 64 bits become text; a mapping, or a list
        that is not all of one primitive type, becomes JSON text with sensitive keys redacted at
        any depth; any other object becomes its ``str()``, or a marker when that raises.
        """
        redactor = self._redactor
        if redactor.is_sensitive(key):
            return REDACTED
        cls = value.__class__
        if cls is str:
            return self._text(value)
        if cls is bool or cls is float or cls is int or value is None:
            return safe_value(value)
        if isinstance(value, Mapping | list | tuple):
            walked = redactor.walk(key, value, self._leaf)
            if isinstance(walked, list) and _homogeneous(walked):
                return tuple(walked)
            return safe_json(_ENCODER.encode(walked))
        return self._leaf(value)

    def _leaf(self, value: Any) -> Any:
        value = safe_value(value)
        return self._text(value) if value.__class__ is str else value

    def flush(self) -> None:
        """Nothing to do here: the provider's batch processor flushes on its own thread."""


def _message(record: logging.LogRecord) -> str:
    """The record's message; one whose arguments do not fit its format is sent as its format."""
    try:
        return record.getMessage()
    except Exception:
        return _safe_str(record.msg)


def _homogeneous(values: list[Any]) -> bool:
    """Whether OpenTelemetry takes ``values`` as an array: non-empty, all of one primitive type."""
    if not values:
        return False
    cls = values[0].__class__
    return cls in _PRIMITIVES and all(v.__class__ is cls for v in values)


def _safe_str(value: object) -> str:
    try:
        return safe_text(str(value))
    except Exception:
        return unrenderable(value)


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
