"""Which module provides each exporter, what it needs installed, and the checks made before installing.

Backend modules are imported only when chosen, so a missing optional dependency costs nothing
until asked for, and then fails in ``configure()`` with the ``pip install`` line that fixes it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from obskit._core.settings import Settings

__all__ = ["check", "factory"]

#: signal -> exporter name -> (module, function). Each function takes the settings.
SPAN_EXPORTERS = {
    "console": ("obskit._export.console", "span_exporter"),
    "otlp": ("obskit._export.otlp", "span_exporter"),
    "jaeger": ("obskit._export.otlp", "jaeger_span_exporter"),
    "azure": ("obskit._export.azure", "span_exporter"),
}
#: Push exporters, fed from the metric store by obskit._export.bridge.
METRIC_EXPORTERS = {
    "console": ("obskit._export.console", "metric_exporter"),
    "otlp": ("obskit._export.otlp", "metric_exporter"),
    "azure": ("obskit._export.azure", "metric_exporter"),
}
#: Backends that serve or push the store themselves: function(settings, store) -> undo(timeout).
METRIC_INSTALLERS = {"prometheus": ("obskit._export.prometheus", "install")}
LOG_EXPORTERS = {
    "otlp": ("obskit._export.otlp", "log_exporter"),
    "azure": ("obskit._export.azure", "log_exporter"),
}


def factory(table: dict[str, tuple[str, str]], name: str) -> Callable[..., Any]:
    """The function that builds exporter ``name`` from ``table``."""
    module, function = table[name]
    return getattr(importlib.import_module(module), function)  # type: ignore[no-any-return]


#: The exporters that need an extra installed (or settings of their own) checked.
_WITH_EXTRAS = frozenset({"otlp", "jaeger", "azure"})


def check(settings: Settings) -> None:
    """Raise ConfigError for a chosen backend that cannot work: missing extra or missing setting."""
    chosen = {*settings.traces_exporter, *settings.metrics_exporter, *settings.logs_exporter}
    if chosen.isdisjoint(_WITH_EXTRAS):
        return  # console and prometheus need nothing beyond obskit's own dependencies
    from obskit._export.requirements import GRPC, HTTP, require, require_azure

    for setting, signal in (
        ("traces_exporter", "traces"),
        ("metrics_exporter", "metrics"),
        ("logs_exporter", "logs"),
    ):
        names: tuple[str, ...] = getattr(settings, setting)
        for name in names:
            if name == "otlp":
                grpc = settings.otlp(signal, "protocol") == "grpc"
                require(setting, name, GRPC if grpc else HTTP, "otlp")
            elif name == "jaeger":
                require(setting, name, GRPC, "otlp")
            elif name == "azure":
                require_azure(settings, setting)
