"""Which module provides each exporter, what it needs installed, and the checks made before installing.

Backend modules are imported only when chosen, so a missing optional dependency costs nothing
until asked for, and then fails in ``configure()`` with the ``pip install`` line that fixes it.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import Any

from obskit._core.errors import ConfigError
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

_GRPC = ("grpc", "opentelemetry.exporter.otlp.proto.grpc")
_HTTP = ("requests", "opentelemetry.exporter.otlp.proto.http")
_AZURE = ("azure.monitor.opentelemetry.exporter",)


def factory(table: dict[str, tuple[str, str]], name: str) -> Callable[..., Any]:
    """The function that builds exporter ``name`` from ``table``."""
    module, function = table[name]
    return getattr(importlib.import_module(module), function)  # type: ignore[no-any-return]


def _missing(modules: tuple[str, ...]) -> str | None:
    for module in modules:
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except (ImportError, ValueError):
            return module
    return None


def _require(setting: str, name: str, modules: tuple[str, ...], extra: str) -> None:
    missing = _missing(modules)
    if missing is not None:
        raise ConfigError(
            setting,
            name,
            "an exporter whose dependencies are installed",
            f'{missing!r} is not installed: pip install "obskit[{extra}]"',
        )


def check(settings: Settings) -> None:
    """Raise ConfigError for a chosen backend that cannot work: missing extra or missing setting."""
    for setting, signal in (
        ("traces_exporter", "traces"),
        ("metrics_exporter", "metrics"),
        ("logs_exporter", "logs"),
    ):
        names: tuple[str, ...] = getattr(settings, setting)
        for name in names:
            if name == "otlp":
                grpc = settings.otlp(signal, "protocol") == "grpc"
                _require(setting, name, _GRPC if grpc else _HTTP, "otlp")
            elif name == "jaeger":
                _require(setting, name, _GRPC, "otlp")
            elif name == "azure":
                require_azure(settings, setting)


def require_azure(settings: Settings, setting: str) -> None:
    """Raise ConfigError unless the Azure extra is installed and a connection string is set."""
    _require(setting, "azure", _AZURE, "azure")
    if not settings.azure_connection_string:
        raise ConfigError(
            "azure_connection_string",
            None,
            "an Application Insights connection string",
            f"{setting}=azure needs it (or APPLICATIONINSIGHTS_CONNECTION_STRING)",
        )
