"""obskit: traces, metrics and JSON logs for Python services in one ``configure()`` call.

Importing obskit has no side effects: no provider, handler, thread, file or socket is created
until :func:`configure` is called.
"""

import typing as _typing

from obskit._core.context import LoggingContext
from obskit._core.errors import ConfigError, MetricDeclarationError, MetricUsageError, ObskitError
from obskit._core.settings import Settings
from obskit._recording.tracing import trace_operation
from obskit._runtime.lifecycle import configure, is_configured, shutdown
from obskit.logging import get_logger

if _typing.TYPE_CHECKING:  # imported on first use (below); typed here for editors and mypy
    from obskit._recording.events import event
    from obskit._recording.handles import Counter, Gauge, Histogram
    from obskit._recording.jobs import Job, track_job
    from obskit._recording.metrics import MetricsCollector
    from obskit._recording.slo import slo
    from obskit._runtime.doctor import check_backends
    from obskit._web.http import add_access_fields

__version__ = "0.1.0"

#: Submodules reachable as attributes after a plain ``import obskit`` (``obskit.testing.capture()``),
#: imported on first use so that ``import obskit`` stays cheap.
_LAZY_SUBMODULES = frozenset({"asgi", "health", "prometheus", "testing", "wsgi"})
#: Public names a process that does not use them need not import (with their modules: about
#: 1 ms of start-up, and as much again at exit): name -> the module that defines it.
_LAZY_NAMES = {
    "Counter": "obskit._recording.handles",
    "Gauge": "obskit._recording.handles",
    "Histogram": "obskit._recording.handles",
    "Job": "obskit._recording.jobs",
    "MetricsCollector": "obskit._recording.metrics",
    "add_access_fields": "obskit._web.http",
    "check_backends": "obskit._runtime.doctor",
    "event": "obskit._recording.events",
    "slo": "obskit._recording.slo",
    "track_job": "obskit._recording.jobs",
}


def __getattr__(name: str) -> object:
    import importlib

    if name in _LAZY_NAMES:
        value = getattr(importlib.import_module(_LAZY_NAMES[name]), name)
        globals()[name] = value  # found directly from now on
        return value
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"obskit.{name}")
    raise AttributeError(f"module 'obskit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_NAMES, *_LAZY_SUBMODULES})


__all__ = [
    "ConfigError",
    "Counter",
    "Gauge",
    "Histogram",
    "Job",
    "LoggingContext",
    "MetricDeclarationError",
    "MetricUsageError",
    "MetricsCollector",
    "ObskitError",
    "Settings",
    "add_access_fields",
    "check_backends",
    "configure",
    "event",
    "get_logger",
    "is_configured",
    "shutdown",
    "slo",
    "trace_operation",
    "track_job",
]
