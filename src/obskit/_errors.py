"""Errors obskit raises, and the boundary that keeps telemetry failures out of user code."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable

__all__ = ["ConfigError", "MetricDeclarationError", "ObskitError", "report_internal_error"]

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

    def __init__(self, setting: str, value: object, allowed: str | Iterable[str], hint: str = "") -> None:
        self.setting = setting
        self.value = value
        self.allowed = allowed if isinstance(allowed, str) else ", ".join(allowed)
        self.hint = hint
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
        _log.warning("obskit internal error in %s (telemetry skipped): %r", where, exc, exc_info=exc)
