"""Errors obskit raises, and the boundary that keeps telemetry failures out of user code."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable

__all__ = [
    "ConfigError",
    "MetricDeclarationError",
    "MetricUsageError",
    "ObskitError",
    "ScrubFilter",
    "report_internal_error",
    "report_usage_error",
    "scrub_record",
    "user_location",
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


class MetricUsageError(ObskitError, ValueError):
    """A metric was recorded wrongly: an undeclared or missing label, an amount that is no number.

    Raised at the faulty call only in strict mode (:func:`obskit.testing.capture`, the
    ``obskit_capture`` fixture); otherwise the mistake is logged once per call site.
    """


#: The directories whose frames are obskit's (or the standard library's context managers), not the caller's.
_OWN_DIRS = (
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,
    os.path.abspath(contextlib.__file__),
)
#: Call sites already told about a usage mistake: (file, line, message); bounded.
_usage_sites: set[tuple[str, int, str]] = set()
_USAGE_SITES_MAX = 10_000


def user_location() -> tuple[str, int]:
    """``(file, line)`` of the innermost frame outside obskit: the code that called into it."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_OWN_DIRS):
        frame = frame.f_back  # type: ignore[assignment]
    return (frame.f_code.co_filename, frame.f_lineno) if frame is not None else ("<unknown>", 0)


def report_usage_error(message: str) -> None:
    """A mistake in the calling code (not obskit's): once per call site, with its ``file:line``.

    In strict mode (``obskit.testing.capture()``) it raises :class:`MetricUsageError` at the
    faulty call instead, so that a test catches the mistake the day it is written.
    """
    from obskit._core import state as _state

    if _state.STATE.strict:
        raise MetricUsageError(message)
    filename, line = user_location()
    key = (filename, line, message)
    with _lock:
        if key in _usage_sites or len(_usage_sites) >= _USAGE_SITES_MAX:
            return
        _usage_sites.add(key)
    with contextlib.suppress(Exception):
        _log.warning("obskit: %s:%d: %s", filename, line, message)


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
