"""obskit: traces, metrics and JSON logs for Python services in one ``configure()`` call.

Importing obskit has no side effects: no provider, handler, thread, file or socket is created
until :func:`configure` is called.
"""

from obskit._core.context import LoggingContext
from obskit._core.errors import ConfigError, MetricDeclarationError, MetricUsageError, ObskitError
from obskit._core.settings import Settings
from obskit._recording.events import event
from obskit._recording.jobs import Job, track_job
from obskit._recording.metrics import MetricsCollector
from obskit._recording.store import Counter, Gauge, Histogram
from obskit._recording.tracing import trace_operation
from obskit._runtime.doctor import check_backends
from obskit._runtime.lifecycle import configure, is_configured, shutdown
from obskit.logging import get_logger

__version__ = "0.1.0"

#: Submodules reachable as attributes after a plain ``import obskit`` (``obskit.testing.capture()``),
#: imported on first use so that ``import obskit`` stays cheap.
_LAZY_SUBMODULES = frozenset({"asgi", "health", "prometheus", "testing", "wsgi"})


def __getattr__(name: str) -> object:
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"obskit.{name}")
    raise AttributeError(f"module 'obskit' has no attribute {name!r}")


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
    "check_backends",
    "configure",
    "event",
    "get_logger",
    "is_configured",
    "shutdown",
    "trace_operation",
    "track_job",
]
