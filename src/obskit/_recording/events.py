"""``obskit.event()``: a named business event, sent as a log record every backend understands.

An event is an INFO record of the ``events`` logger whose fields are the event's name and
attributes, so it goes wherever logs go, with the trace context and the redaction of any other
log record:

- console: one JSON line with an ``event`` field (the name) and the attributes as fields;
- OTLP: a log record with the ``event.name`` attribute (OpenTelemetry semantic conventions);
- Azure: a ``customEvents`` item named after the event (see obskit._export.azure).

Setting the ``events`` logger's level above INFO silences events.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Final

from obskit._core.errors import report_internal_error

__all__ = ["EVENT_FIELD", "EVENT_LOGGER", "EventFields", "event"]

#: The logger events are recorded on.
EVENT_LOGGER: Final = "events"
#: The field that holds the event's name in the record (``event.name`` once exported).
EVENT_FIELD: Final = "event"

_logger = logging.getLogger(EVENT_LOGGER)


class EventFields(dict[str, Any]):
    """The fields of an event record: tells the exporters that the record is an event."""


def event(name: str, /, **attributes: Any) -> None:
    """Record the event ``name`` with ``attributes``: a custom event on Azure, an event log elsewhere.

    The record carries the current trace context; sensitive attribute names are redacted as in
    any log record. Never raises: a failure is reported once on obskit's internal logger.

    Args:
        name: what happened, for instance ``"order_placed"``; shown as the event's name.
        **attributes: values to go with it (strings, numbers, booleans; other values as text).
    """
    try:
        if not _logger.isEnabledFor(logging.INFO):
            return
        fields = EventFields(attributes)
        fields[EVENT_FIELD] = name if name.__class__ is str else str(name)
        caller = sys._getframe(1)
        code = caller.f_code
        record = _logger.makeRecord(
            EVENT_LOGGER,
            logging.INFO,
            code.co_filename,
            caller.f_lineno,
            fields[EVENT_FIELD],
            (),
            None,
            code.co_name,
        )
        record._obskit_fields = fields
        _logger.handle(record)
    except Exception as exc:
        report_internal_error("event", exc)
