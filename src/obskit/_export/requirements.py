"""What each backend needs installed (its extra) and set, checked before it is installed.

Below the backend modules and their registry (``obskit._export.backends``), so that both ask it
without importing each other.
"""

from __future__ import annotations

from obskit._core.errors import ConfigError
from obskit._core.settings import Settings

__all__ = ["AZURE", "GRPC", "HTTP", "missing_module", "require", "require_azure"]

GRPC = ("grpc", "opentelemetry.exporter.otlp.proto.grpc")
HTTP = ("requests", "opentelemetry.exporter.otlp.proto.http")
AZURE = ("azure.monitor.opentelemetry.exporter",)


def missing_module(modules: tuple[str, ...]) -> str | None:
    """The first of ``modules`` that cannot be imported, or None."""
    import importlib.util  # only when a backend with an extra is chosen or checked

    for module in modules:
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except (ImportError, ValueError):
            return module
    return None


def require(setting: str, name: str, modules: tuple[str, ...], extra: str) -> None:
    """Raise ConfigError naming the ``pip install`` line when one of ``modules`` is missing."""
    missing = missing_module(modules)
    if missing is not None:
        raise ConfigError(
            setting,
            name,
            "an exporter whose dependencies are installed",
            f'{missing!r} is not installed: pip install "obskit[{extra}]"',
        )


def require_azure(settings: Settings, setting: str) -> None:
    """Raise ConfigError unless the Azure extra is installed and a connection string is set."""
    require(setting, "azure", AZURE, "azure")
    if not settings.azure_connection_string:
        raise ConfigError(
            "azure_connection_string",
            None,
            "an Application Insights connection string",
            f"{setting}=azure needs it (or APPLICATIONINSIGHTS_CONNECTION_STRING)",
        )
