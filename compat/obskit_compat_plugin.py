"""pytest plugin: every FastAPI, Starlette and Flask app a test suite builds is served through obskit.

Loaded into a framework's own test suite with ``-p obskit_compat_plugin`` (this folder on
``PYTHONPATH``). At start-up it runs ``obskit.configure()`` once with every exporter set to
``OBSKIT_COMPAT_EXPORTER`` (``none`` or ``console``), then instruments each application the
moment its constructor returns, through the install path ``configure(app)`` uses.

Why not ``configure(app)`` per app: configure() is process-wide, and a second ``configure(app2)``
tears down the first set-up, which switches ``app1``'s middleware back to a pass-through. Test
suites build hundreds of apps at import time and then use any of them, so every app is instrumented
with ``obskit._web.install.instrument`` (what ``configure(app)`` calls) and stays on for the session.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

EXPORTER = os.environ.get("OBSKIT_COMPAT_EXPORTER", "none")
_undos: list[Callable[[float], None]] = []
_depth = threading.local()
#: What went wrong quietly, test by test: obskit's own warnings and logging's "--- Logging error ---"
#: (a handler that raised), which pytest shows only for failing tests. run.py prints them.
_problems: list[dict[str, str]] = []
_current_test = "(collection)"


class _ObskitWarnings(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        _note("obskit warning", record.getMessage())


def _note(kind: str, text: str) -> None:
    first_line = text.splitlines()[0][:300] if text else ""
    _problems.append({"test": _current_test, "kind": kind, "text": first_line})


def _watch_logging_errors() -> None:
    original = logging.Handler.handleError

    def handleError(self: logging.Handler, record: logging.LogRecord) -> None:
        _note("logging error", f"{type(self).__name__}: {sys.exc_info()[1]!r}")
        original(self, record)

    logging.Handler.handleError = handleError  # type: ignore[method-assign]


def _settings() -> dict[str, Any]:
    return {
        "service_name": "obskit-compat",
        "traces_exporter": EXPORTER,
        "metrics_exporter": EXPORTER,
        "logs_exporter": EXPORTER,
    }


def _instrument(app: object) -> None:
    import obskit
    from obskit._core import state
    from obskit._web.install import check_app, instrument

    if not obskit.is_configured():  # a test called obskit.shutdown(): configure again
        obskit.configure(**_settings())
    check_app(app)
    _undos.append(instrument(app, state.STATE.settings))


def _patch(cls: type) -> None:
    original = cls.__init__  # type: ignore[misc]

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        # FastAPI's and Flask's subclasses may call a patched base __init__: instrument once,
        # when the outermost constructor has finished.
        _depth.n = getattr(_depth, "n", 0) + 1
        try:
            original(self, *args, **kwargs)
        finally:
            _depth.n -= 1
        if _depth.n == 0:
            _instrument(self)

    cls.__init__ = __init__  # type: ignore[misc]


def pytest_configure(config: pytest.Config) -> None:
    """Configure obskit once, then have every app constructor instrument its app."""
    if EXPORTER not in ("none", "console"):
        raise pytest.UsageError(f"OBSKIT_COMPAT_EXPORTER must be none or console, not {EXPORTER!r}")
    import obskit

    obskit.configure(**_settings())
    logging.getLogger("obskit").addHandler(_ObskitWarnings(logging.WARNING))
    _watch_logging_errors()
    for module, name in (("starlette.applications", "Starlette"), ("fastapi", "FastAPI"), ("flask", "Flask")):
        try:
            imported = __import__(module, fromlist=[name])
        except ImportError:
            continue
        _patch(getattr(imported, name))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Remember the running test, to name it with any problem noted."""
    global _current_test
    _current_test = item.nodeid


def pytest_unconfigure(config: pytest.Config) -> None:
    """Write the problems noted, switch every app's middleware off, shut obskit down."""
    import obskit

    report = os.environ.get("OBSKIT_COMPAT_PROBLEMS")
    if report and os.environ.get("PYTEST_XDIST_WORKER"):  # one file per xdist worker
        report = f"{report}.{os.environ['PYTEST_XDIST_WORKER']}"
    if report:
        with open(report, "w") as out:
            json.dump(_problems, out)

    for undo in reversed(_undos):
        undo(1.0)
    _undos.clear()
    obskit.shutdown()
