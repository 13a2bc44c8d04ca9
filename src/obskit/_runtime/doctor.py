"""``obskit.check_backends()``: what would stop the chosen backends from working, found on demand.

``configure()`` makes no network call, so an exporter pointed at the wrong port only shows up as
dropped telemetry later. These checks do connect, when asked: in a deployment's start-up probe,
a CLI, or a test. Each check is a function ``(settings) -> list of problems``; a backend adds
its own to :data:`CHECKS`.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from obskit._core.errors import ConfigError, report_internal_error
from obskit._core.settings import (
    OTLP_SIGNALS,
    Settings,
    ignored_settings,
    resolve_settings,
    unknown_variables,
)

__all__ = [
    "CHECKS",
    "azure_ingestion_reachable",
    "check_backends",
    "endpoints_not_shadowed",
    "extras_installed",
    "instrumentations_installed",
    "otlp_endpoints_reachable",
    "prometheus_port_free",
    "pushgateway_reachable",
]

#: Seconds a TCP connect to an endpoint may take before it counts as unreachable.
CONNECT_TIMEOUT = 1.0
_EXPORTER_SETTINGS = ("traces_exporter", "metrics_exporter", "logs_exporter")

Check = Callable[[Settings], list[str]]


def extras_installed(settings: Settings) -> list[str]:
    """Every chosen exporter whose extra is missing (or whose required setting is), one line each."""
    from obskit._export.backends import check

    problems = []
    for setting in _EXPORTER_SETTINGS:
        for name in getattr(settings, setting):
            only: dict[str, Any] = {s: ((name,) if s == setting else ()) for s in _EXPORTER_SETTINGS}
            alone = dataclasses.replace(settings, **only)
            try:
                check(alone)
            except ConfigError as error:
                problems.append(str(error))
    return problems


def instrumentations_installed(settings: Settings) -> list[str]:
    """Every library to instrument (``instrument_libraries``) whose instrumentation is missing."""
    from obskit._web.libraries import missing_instrumentations

    return missing_instrumentations(settings)


def _host_port(endpoint: str) -> tuple[str, int]:
    parsed = urlparse(endpoint if "://" in endpoint else f"//{endpoint}")
    default = 443 if parsed.scheme == "https" else 80
    return parsed.hostname or "", parsed.port or default


def _endpoints(settings: Settings) -> dict[tuple[str, str], list[str]]:
    """(setting, endpoint) -> what is exported there, e.g. ``["traces (grpc)", "logs (grpc)"]``."""
    from obskit._export import otlp as _otlp

    targets: dict[tuple[str, str], list[str]] = {}
    for signal in OTLP_SIGNALS:
        if "otlp" in getattr(settings, f"{signal}_exporter"):
            opts = _otlp.options(settings, signal)
            key = (_otlp.endpoint_setting(settings, signal), opts.endpoint)
            targets.setdefault(key, []).append(f"{signal} ({opts.protocol})")
    if "jaeger" in settings.traces_exporter:
        targets.setdefault(("jaeger_endpoint", settings.jaeger_endpoint), []).append("traces (jaeger)")
    return targets


def _connect_error(host: str, port: int) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            return None
    except OSError as error:
        return str(error) or type(error).__name__


def otlp_endpoints_reachable(settings: Settings) -> list[str]:
    """A TCP connection to each OTLP (and Jaeger) endpoint in use; one problem per unreachable one."""
    problems = []
    tried: dict[tuple[str, int], str | None] = {}
    for (setting, endpoint), uses in _endpoints(settings).items():
        host, port = _host_port(endpoint)
        if (host, port) not in tried:
            tried[host, port] = _connect_error(host, port)
        error = tried[host, port]
        if error is not None:
            problems.append(
                f"{setting}: cannot connect to {endpoint} ({host}:{port}) for {', '.join(uses)}: {error}"
            )
    return problems


def _reachable(setting: str, endpoint: str, what: str) -> list[str]:
    host, port = _host_port(endpoint)
    error = _connect_error(host, port)
    return (
        []
        if error is None
        else [f"{setting}: cannot connect to {endpoint} ({host}:{port}) for {what}: {error}"]
    )


def pushgateway_reachable(settings: Settings) -> list[str]:
    """A TCP connection to the push gateway, when one is set and Prometheus is chosen."""
    if "prometheus" not in settings.metrics_exporter or not settings.pushgateway_url:
        return []
    return _reachable("pushgateway_url", settings.pushgateway_url, "pushing metrics")


def prometheus_port_free(settings: Settings) -> list[str]:
    """The standalone scrape server's address can be bound (a fixed port already taken is a problem)."""
    if "prometheus" not in settings.metrics_exporter or settings.prometheus_port == 0:
        return []
    try:
        family = socket.AF_INET6 if ":" in settings.prometheus_host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((settings.prometheus_host, settings.prometheus_port))
    except OSError as error:
        address = f"{settings.prometheus_host}:{settings.prometheus_port}"
        return [f"prometheus_port: cannot listen on {address} for the scrape endpoint: {error}"]
    return []


def azure_ingestion_reachable(settings: Settings) -> list[str]:
    """A TCP connection to the connection string's ``IngestionEndpoint``, when Azure is chosen."""
    chosen = any("azure" in getattr(settings, s) for s in _EXPORTER_SETTINGS)
    if not chosen or not settings.azure_connection_string:
        return []
    parts = dict(
        (key.strip().lower(), value.strip())
        for key, _, value in (p.partition("=") for p in settings.azure_connection_string.split(";"))
        if key.strip()
    )
    endpoint = parts.get("ingestionendpoint", "https://dc.services.visualstudio.com")
    return _reachable("azure_connection_string (IngestionEndpoint)", endpoint, "Application Insights")


def endpoints_not_shadowed(settings: Settings, app: object | None = None) -> list[str]:
    """The scrape and health paths that ``app``, else an app handed to ``configure()``, serves itself.

    obskit steps aside there (it never answers a path the app serves), so its endpoint is
    missing; one line per such path, naming the setting that moves it. Apps whose routes cannot
    be read (plain ASGI/WSGI callables) are not checked.
    """
    from obskit._web.http import Config
    from obskit._web.routes import shadowed

    config = Config(settings)
    return shadowed(config.metrics_path, config.health, app)


#: The checks :func:`check_backends` runs, in order. Each takes the resolved settings and returns
#: its problems (empty when all is well); it looks only at the backends the settings choose
#: (:func:`ignored_settings` at the settings given for backends they do not).
CHECKS: list[Check] = [
    extras_installed,
    instrumentations_installed,
    unknown_variables,
    ignored_settings,
    otlp_endpoints_reachable,
    pushgateway_reachable,
    prometheus_port_free,
    azure_ingestion_reachable,
    endpoints_not_shadowed,
]


def check_backends(settings: Settings | None = None, /, **overrides: Any) -> list[str]:
    """Check that the chosen backends can work: extras installed, endpoints reachable.

    Settings that only a backend which is not chosen would use (``pushgateway_url`` without
    ``metrics_exporter=prometheus``, say) are reported too, since they are silently ignored.

    Settings are resolved as :func:`obskit.configure` resolves them (keyword > environment
    variable > default), or taken from the :class:`obskit.Settings` that ``configure()``
    returned. Unlike ``configure()`` this does connect: a TCP connection to each OTLP and Jaeger
    endpoint, the push gateway and Azure's ingestion endpoint in use, each given at most one
    second; it checks that a fixed Prometheus scrape port is free, and that no app handed to
    ``configure()`` serves obskit's scrape or health paths itself (obskit then steps aside
    there). Nothing is installed or exported.

    Args:
        settings: already resolved settings (positional only); omit it to resolve ``overrides``.
        **overrides: the same keywords as :func:`obskit.configure`.

    Returns:
        One line per problem, naming the setting and the value at fault; empty when all is well.

    Raises:
        ConfigError: a setting has a value outside what it allows.
    """
    if settings is None:
        settings = resolve_settings(overrides)
    elif overrides:
        name = sorted(overrides)[0]
        raise ConfigError(name, overrides[name], "no keyword when a Settings object is given")
    problems: list[str] = []
    for check in CHECKS:
        try:
            problems.extend(check(settings))
        except Exception as exc:
            report_internal_error(f"check_backends ({check.__name__})", exc)
            problems.append(f"{check.__name__} could not run: {exc!r}")
    return problems
