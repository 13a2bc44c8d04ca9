"""configure(), shutdown(), is_configured(): building and tearing down the runtime."""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from obskit import _state
from obskit._errors import ConfigError, report_internal_error
from obskit._redact import Redactor
from obskit._settings import Settings, log_level_number, resolve_settings

__all__ = ["configure", "is_configured", "shutdown"]

_log = logging.getLogger("obskit")
_lock = threading.RLock()
_atexit_registered = False
#: What the current configure() installed and shutdown() must undo.
_installed: list[Callable[[float], None]] = []


class ObskitHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root-logger handler obskit installs; recognised (and replaced) by type."""

    def flush(self) -> None:
        """Flush, ignoring a stream that is already closed at interpreter exit."""
        with contextlib.suppress(ValueError):
            super().flush()


class _StdoutProxy:
    """Writes to whatever ``sys.stdout`` is at write time (pytest's capture swaps it)."""

    def write(self, text: str) -> int:
        try:
            return sys.stdout.write(text)
        except UnicodeEncodeError:
            # A lone surrogate (an undecodable file name, say) or a narrow stdout encoding:
            # write the same JSON with every non-ASCII character escaped instead of losing it.
            return sys.stdout.write(_ascii_json(text))

    def flush(self) -> None:
        sys.stdout.flush()


def _ascii_json(text: str) -> str:
    try:
        return json.dumps(json.loads(text), ensure_ascii=True, separators=(",", ":")) + "\n"
    except ValueError:  # console format: not JSON
        return text.encode("ascii", "backslashreplace").decode("ascii")


def configure(app: object = None, **settings: Any) -> Settings:
    """Set up traces, metrics and logs for this process. Idempotent; returns the settings used.

    Each setting is resolved as keyword argument > environment variable > default (see
    :mod:`obskit.environment_variables` for every variable). All values are validated first: a
    bad one raises :class:`obskit.ConfigError` before anything is installed. Calling it again
    replaces the previous set-up cleanly (one log handler, one span pipeline). A flush on exit is
    registered once.

    Args:
        app: a web application to instrument (FastAPI/Starlette or Flask support arrives in a
            later version; until then passing one is an error).
        **settings: service_name, service_version, environment, resource_attributes,
            traces_exporter, metrics_exporter, logs_exporter, sampling_ratio, log_level,
            log_format, metric_namespace, redact_keys, series_cap, runtime_metrics, host_metrics,
            metric_export_interval_ms, shutdown_timeout.

    Raises:
        ConfigError: a setting has a value outside what it allows.
    """
    resolved = resolve_settings(settings)
    if app is not None:
        raise ConfigError(
            "app", type(app).__name__, "None (web framework instrumentation is not available yet)"
        )
    if resolved.host_metrics:
        from obskit._sysmetrics import HostCollector

        HostCollector()  # ConfigError without psutil, before the previous set-up is torn down
    with _lock:
        _teardown(resolved.shutdown_timeout)
        try:
            _build(resolved)
        except BaseException:
            _teardown(resolved.shutdown_timeout)
            _set_unconfigured()
            raise
        _register_atexit()
    return resolved


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(_shutdown_at_exit)
        _atexit_registered = True


def _shutdown_at_exit() -> None:
    try:
        shutdown()
    except Exception as exc:
        report_internal_error("shutdown at exit", exc)


def resource_for(settings: Settings) -> Any:
    """The OpenTelemetry resource: service name/version/environment, host, pid, user attributes."""
    from opentelemetry.sdk.resources import Resource

    attributes: dict[str, Any] = {
        "telemetry.sdk.language": "python",
        "host.name": socket.gethostname(),
        "process.pid": os.getpid(),
        **settings.resource_attributes,
        "service.name": settings.service_name,
        "deployment.environment.name": settings.environment,
    }
    if settings.service_version:
        attributes["service.version"] = settings.service_version
    return Resource.create(attributes)


def log_fields(settings: Settings) -> dict[str, str]:
    """The service fields every log line carries."""
    fields = {"service": settings.service_name, "environment": settings.environment}
    if settings.service_version:
        fields["service_version"] = settings.service_version
    return fields


def _build(settings: Settings) -> None:
    redactor = Redactor(settings.redact_keys)
    resource = resource_for(settings)
    store = _state.STATE.store
    store.series_cap = settings.series_cap
    # Installed in this order so that teardown (newest first) flushes spans, then metrics, and
    # removes the log handler last, letting exporters' last words still reach the logs.
    _logging_pipeline(settings)
    _metrics_pipeline(settings, resource, store)
    provider = _tracer_provider(settings, resource, redactor)
    tracer = provider.get_tracer("obskit") if provider is not None else None
    _state.set_state(
        _state.State(
            settings=settings,
            store=store,
            redactor=redactor,
            tracer=tracer,
            tracer_provider=provider,
            configured=True,
            log_fields=log_fields(settings),
        )
    )
    if provider is not None:
        from obskit._proxy import install_global_tracer_provider

        install_global_tracer_provider()


def span_processors(settings: Settings, redactor: Redactor) -> list[Any]:
    """One batch processor per configured span exporter, each behind the redaction pass."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from obskit import _console
    from obskit._redacting import RedactingSpanExporter

    processors = []
    for name in settings.traces_exporter:
        if name == "console":
            processors.append(BatchSpanProcessor(RedactingSpanExporter(_console.span_exporter(), redactor)))
    return processors


def _tracer_provider(settings: Settings, resource: Any, redactor: Redactor) -> Any:
    if not settings.traces_exporter:
        return None
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    # obskit's own exit hook flushes within the shutdown deadline; the SDK's would flush again.
    provider = TracerProvider(
        resource=resource,
        sampler=ParentBased(TraceIdRatioBased(settings.sampling_ratio)),
        shutdown_on_exit=False,
    )
    for processor in span_processors(settings, redactor):
        provider.add_span_processor(processor)
    _installed.append(lambda timeout: _shutdown_provider(provider, timeout))
    return provider


def _shutdown_provider(provider: Any, timeout: float) -> None:
    provider.force_flush(int(timeout * 1000))
    provider.shutdown()


def _metrics_pipeline(settings: Settings, resource: Any, store: Any) -> None:
    from obskit import _sysmetrics

    collectors = _sysmetrics.register(store.registry, settings.runtime_metrics, settings.host_metrics)
    if collectors:

        def unregister(timeout: float) -> None:
            for collector in collectors:
                store.registry.unregister(collector)

        _installed.append(unregister)
    for name in settings.metrics_exporter:
        if name == "console":
            from obskit import _console
            from obskit._bridge import make_reader

            reader = make_reader(
                _console.metric_exporter(), store.registry, resource, settings.metric_export_interval_ms
            )
            _installed.append(partial(_shutdown_reader, reader))


def _internal_logging() -> None:
    """Obskit's own warnings go to stderr directly, never through the exported log pipeline."""
    internal = logging.getLogger("obskit")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("obskit %(levelname)s: %(message)s"))
    previous = internal.propagate
    internal.addHandler(handler)
    internal.propagate = False

    def remove(timeout: float) -> None:
        internal.removeHandler(handler)
        internal.propagate = previous

    _installed.append(remove)


def _shutdown_reader(reader: Any, timeout: float) -> None:
    reader.shutdown(timeout_millis=timeout * 1000)


def _logging_pipeline(settings: Settings) -> None:
    _internal_logging()
    if "console" not in settings.logs_exporter:
        return
    from obskit.logging import ConsoleFormatter, JsonFormatter

    root = logging.getLogger()
    previous_level = root.level
    handler = ObskitHandler(_StdoutProxy())
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else ConsoleFormatter())
    handler.setLevel(log_level_number(settings))
    root.addHandler(handler)
    root.setLevel(log_level_number(settings))

    def remove(timeout: float) -> None:
        root.removeHandler(handler)
        handler.flush()
        root.setLevel(previous_level)

    _installed.append(remove)


def _teardown(timeout: float) -> None:
    """Undo everything the last configure() installed, newest first, within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while _installed:
        undo = _installed.pop()
        try:
            undo(max(0.001, deadline - time.monotonic()))
        except Exception as exc:
            report_internal_error("shutdown", exc)
    for handler in list(logging.getLogger().handlers):
        if isinstance(handler, ObskitHandler):
            logging.getLogger().removeHandler(handler)


def shutdown(timeout: float | None = None) -> None:
    """Flush every signal and remove everything ``configure()`` installed. Never raises, never hangs.

    Args:
        timeout: overall deadline in seconds; default the ``shutdown_timeout`` setting.
    """
    with _lock:
        current = _state.STATE
        if not current.configured:
            return
        _teardown(timeout if timeout is not None else current.settings.shutdown_timeout)
        _set_unconfigured()


def _set_unconfigured() -> None:
    """Back to the state before any configure(): defaults, the same metric store (values kept)."""
    defaults = Settings()
    store = _state.STATE.store
    store.series_cap = defaults.series_cap
    _state.set_state(_state.State(settings=defaults, store=store, redactor=Redactor()))


def is_configured() -> bool:
    """Whether ``configure()`` has run and ``shutdown()`` has not undone it since."""
    return _state.STATE.configured
