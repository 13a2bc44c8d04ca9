"""Isolation for obskit's own tests: every test starts unconfigured and leaves nothing behind."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

from obskit._core import errors as _errors
from obskit._core import exit as _exit
from obskit._core import state as _state
from obskit._runtime import lifecycle as _runtime
from obskit._web.http import SERVER_ERROR_LOGGERS


@pytest.fixture(autouse=True)
def _raise_internal_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """obskit's own suite sees internal errors instead of having them swallowed."""
    monkeypatch.setattr(_errors, "RAISE_INTERNAL_ERRORS", True)


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OBSKIT_* / OTEL_* variable from the outside leaks into a test."""
    for name in list(os.environ):
        if name.startswith(("OBSKIT_", "OTEL_", "APPLICATIONINSIGHTS_")):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _restore_global_state() -> Iterator[None]:
    """Restore obskit's state, root logger handlers and level after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    logger_class = logging.getLoggerClass()  # structlog's LoggerFactory replaces it, for good
    servers = [logging.getLogger(name) for name in SERVER_ERROR_LOGGERS]
    server_filters = [list(logger.filters) for logger in servers]
    state = _state.STATE
    yield
    logging.setLoggerClass(logger_class)
    for logger, filters in zip(servers, server_filters, strict=True):
        logger.filters[:] = filters
    _runtime.shutdown(timeout=2)
    _exit.reset()
    _state.set_state(state)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _restore_cwd() -> Iterator[None]:
    """The current directory as it was: a test (or a library it drives) that moves it, into a
    directory removed later, would leave the next tests of the worker without one."""
    cwd = os.getcwd()
    yield
    try:
        moved = os.getcwd() != cwd
    except FileNotFoundError:
        moved = True
    if moved:
        os.chdir(cwd)


@pytest.fixture
def swallow_internal_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """For tests of the promise that telemetry failures never reach user code."""
    monkeypatch.setattr(_errors, "RAISE_INTERNAL_ERRORS", False)
    _errors._last_report.clear()
