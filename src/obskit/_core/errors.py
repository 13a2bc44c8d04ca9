"""Errors obskit raises, and the boundary that keeps telemetry failures out of user code."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable

__all__ = [
    "ConfigError",
    "MetricDeclarationError",
    "ObskitError",
    "ScrubFilter",
    "report_internal_error",
    "scrub_record",
]

_log = logging.getLogger("obskit")

#: Seconds between two reports of the same internal error.
_REPORT_INTERVAL = 60.0

#: Set by obskit's own test suite so that internal errors are seen instead of swallowed.
RAISE_INTERNAL_ERRORS = False

_last_report: dict[str, float] = {}
_lock = threading.Lock()


class ObskitError(Exception):
    """Base class of the errors obskit raises on purpose."""


class ConfigError(ObskitError, ValueError):
    """A setting has a value obskit cannot use.

    The message names the setting, the value given and the values allowed. Raised by
    :func:`obskit.configure` before anything is installed.
    """

    def __init__(
        self,
        setting: str,
        value: object,
        allowed: str | Iterable[str],
        hint: str = "",
        *,
        message: str | None = None,
    ) -> None:
        self.setting = setting
        self.value = value
        self.allowed = allowed if isinstance(allowed, str) else ", ".join(allowed)
        self.hint = hint
        if message is None:
            message = f"invalid value for {setting}: {value!r}; allowed: {self.allowed}"
            if hint:
                message = f"{message}. {hint}"
        super().__init__(message)


class MetricDeclarationError(ObskitError, ValueError):
    """A metric was declared again with a different type, label names or buckets."""


def report_internal_error(where: str, exc: BaseException) -> None:
    """Log an internal telemetry failure once a minute per place; never raise it.

    Under obskit's own test suite (``RAISE_INTERNAL_ERRORS``) the exception is re-raised so
    that bugs are seen instead of hidden.
    """
    if RAISE_INTERNAL_ERRORS:
        raise exc
    now = time.monotonic()
    key = f"{where}:{type(exc).__name__}"
    with _lock:
        last = _last_report.get(key)
        if last is not None and now - last < _REPORT_INTERVAL:
            return
        _last_report[key] = now
    with contextlib.suppress(Exception):
        from obskit._core import state as _state

        # Built here and scrubbed before any handler sees it: configured or not (the ``obskit``
        # logger then propagates to the application's handlers), an exception's text may hold a
        # URL with its password.
        record = _log.makeRecord(
            _log.name,
            logging.WARNING,
            __file__,
            0,
            "obskit internal error in %s (telemetry skipped): %r",
            (where, exc),
            (type(exc), exc, exc.__traceback__),
        )
        scrub_record(record, _state.STATE.redactor.scrub)
        if _log.isEnabledFor(logging.WARNING):
            _log.handle(record)


#: What stands for a message that could not be rendered (its arguments may hold a secret).
UNRENDERED = "obskit: a message could not be rendered (not shown)"


def scrub_record(record: logging.LogRecord, scrub: Callable[[str], str]) -> None:
    """Render ``record``'s message, exception and stack once, with credentials hidden by ``scrub``.

    Handlers that format with :class:`logging.Formatter` use the rendered exception text as it
    is, so that a password in a URL inside an exception's message appears in no traceback.
    Scrubbing a record twice changes nothing more.
    """
    try:
        record.msg = scrub(record.getMessage())
    except Exception:
        record.msg = UNRENDERED
    record.args = None
    if record.exc_info and not record.exc_text:
        try:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        except Exception:
            record.exc_text = f"{record.exc_info[0]!r} (traceback could not be rendered)"
    if record.exc_text:
        record.exc_text = scrub(record.exc_text)
    if record.stack_info:
        record.stack_info = scrub(record.stack_info)


class ScrubFilter(logging.Filter):
    """On obskit's own logger: every line it writes has credentials hidden, traceback included."""

    def __init__(self, scrub: Callable[[str], str]) -> None:
        super().__init__()
        self._scrub = scrub

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub ``record`` in place; always True."""
        scrub_record(record, self._scrub)
        return True
