"""configure(), shutdown(), is_configured(): building and tearing down the runtime."""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Unpack

from obskit._core import exit as _exit
from obskit._core import state as _state
from obskit._core.errors import report_internal_error, user_location
from obskit._core.redact import Redactor, redactor_for
from obskit._core.resource import log_fields, resource_for
from obskit._core.sampling import sampler_for
from obskit._core.settings import (
    SECRET_SETTINGS,
    Settings,
    ignored_settings,
    log_level_number,
    resolve_settings,
    unknown_variables,
)
from obskit._recording.loghandler import ConsoleHandler, ConsoleStream, ObskitHandler, writes_to_console

if TYPE_CHECKING:  # a TypedDict of every setting: for editors and mypy, not needed at run time
    from obskit._core.options import SettingsKeywords

__all__ = ["configure", "is_configured", "shutdown"]

_log = logging.getLogger("obskit")
_lock = threading.RLock()
_atexit_registered = False
#: The web apps configure() instrumented since the last shutdown(), weakly: each configure()
#: instruments them all again with its settings.
_apps: weakref.WeakSet[Any] = weakref.WeakSet()
#: Where the last configure() was called from, for the warning of the next one that changes something.
_configured_from = "<never>"
#: The misspelled-variable warnings already given: each once per process.
_warned_variables: set[str] = set()
#: What the current configure() installed and shutdown() must undo.
_installed: list[Callable[[float], None]] = []
#: Seconds between two lines of the same class from the exporting libraries (tests shorten it).
_QUIET_INTERVAL = 60.0
#: How to flush each pipeline the current configure() built, without tearing it down (an
#: ASGI lifespan shutdown flushes with these; the process may still have work to do).
_flushers: list[tuple[str, Callable[[float], object]]] = []
#: The providers whose resource carries ``process.pid``: a forked child updates them to its own.
_pid_providers: list[Any] = []


def configure(app: object = None, **settings: Unpack[SettingsKeywords]) -> Settings:
    """Set up traces, metrics and logs for this process. Idempotent; returns the settings used.

    Each setting is resolved as keyword argument > environment variable > default (see
    :mod:`obskit.environment_variables` for every variable). All values are validated first: a
    bad one raises :class:`obskit.ConfigError` before anything is installed. Calling it again
    replaces the previous set-up cleanly (one log handler, one span pipeline). A flush on exit is
    registered once. A setting that no chosen backend uses (``pushgateway_url`` without
    ``metrics_exporter=prometheus``, an ``OTEL_EXPORTER_OTLP_*`` variable without an otlp
    exporter) is logged as a warning on the ``obskit`` logger, naming it but not its value, and
    is ignored: even an invalid value there is not an error until its backend is chosen.

    Args:
        app: a web application to instrument: FastAPI/Starlette (ASGI) or Flask (WSGI). Requests
            get spans, RED metrics, a request id and an access log line; the scrape and health
            endpoints are mounted. Instrumented once however often configure() runs; an app
            given to an earlier configure() stays served (with the new settings) until
            shutdown(), so several apps in one process are all instrumented.
        **settings: service_name, service_version, environment, resource_attributes,
            traces_exporter, metrics_exporter, logs_exporter, sampling_ratio, sampler,
            sdk_disabled, log_level, log_format, log_source, metric_namespace, redact_keys,
            redact_text, redact_patterns, series_cap, histogram_buckets, exponential_histograms,
            runtime_metrics, host_metrics, metric_export_interval_ms, shutdown_timeout,
            export_queue_size, export_batch_size;
            Prometheus: prometheus_host, prometheus_port, prometheus_path, prometheus_created,
            multiprocess_dir, pushgateway_url,
            pushgateway_job, pushgateway_grouping, push_on; OTLP: otlp_endpoint, otlp_protocol,
            otlp_headers, otlp_timeout (ms), otlp_compression, otlp_certificate, otlp_insecure,
            each also per signal as otlp_traces_*, otlp_metrics_*, otlp_logs_* (e.g.
            otlp_traces_endpoint, otlp_metrics_protocol, otlp_logs_headers, otlp_traces_timeout,
            otlp_metrics_compression, otlp_logs_certificate, otlp_traces_insecure,
            otlp_traces_protocol, otlp_traces_headers, otlp_traces_compression,
            otlp_traces_certificate, otlp_metrics_endpoint, otlp_metrics_headers,
            otlp_metrics_timeout, otlp_metrics_certificate, otlp_metrics_insecure,
            otlp_logs_endpoint, otlp_logs_protocol, otlp_logs_timeout, otlp_logs_compression,
            otlp_logs_insecure); jaeger_endpoint; web apps: excluded_urls, health_path,
            liveness_path, readiness_path, request_id_header, request_id_echo, access_log,
            access_log_flush_interval, trust_forwarded_headers; outgoing calls:
            instrument_http_clients, instrument_libraries, request_id_propagation; Azure:
            azure_connection_string, azure_live_metrics, azure_offline_storage, azure_statsbeat. See
            :mod:`obskit.environment_variables` for what each does.

    Raises:
        ConfigError: a setting has a value outside what it allows.
    """
    resolved = resolve_settings(settings)
    caller = ":".join(map(str, user_location()))
    from obskit._export.backends import check

    check(resolved)
    if app is not None:
        from obskit._web.install import check_app

        check_app(app)
    if resolved.host_metrics:
        from obskit._recording.sysmetrics import HostCollector

        HostCollector()  # ConfigError without psutil, before the previous set-up is torn down
    with _lock:
        previous = _state.STATE.settings if _state.STATE.configured else None
        _teardown(resolved.shutdown_timeout)
        # Every app instrumented since the last shutdown() stays served, with these settings: a
        # second app (a test suite builds hundreds), or configure() again without the app.
        apps = list(_apps)
        if app is not None and app not in _apps:
            apps.append(app)
        try:
            _build(resolved, app)
            if apps:
                from obskit._web.install import instrument

                for each in apps:
                    _installed.append(instrument(each, resolved))
        except BaseException:
            _teardown(resolved.shutdown_timeout)
            _set_unconfigured()
            raise
        _apps.update(apps)
        _report_settings(resolved, previous, caller)
        _register_atexit()
        _exit.watch(resolved.shutdown_timeout, _shutdown_on_signal, _flush_all)
        _installed.append(lambda timeout: _exit.stop_watching())
    return resolved


def _report_settings(settings: Settings, previous: Settings | None, caller: str) -> None:
    """Warn about misspelled variables (once each per process) and what a second configure() changed."""
    global _configured_from
    for line in unknown_variables(settings):
        if line not in _warned_variables:
            _warned_variables.add(line)
            _log.warning("obskit: %s", line)
    if previous is not None and previous != settings:
        changes = [
            f"{field.name} (values not shown)"
            if field.name in SECRET_SETTINGS
            else f"{field.name}: {getattr(previous, field.name)!r} -> {getattr(settings, field.name)!r}"
            for field in dataclasses.fields(Settings)
            if getattr(previous, field.name) != getattr(settings, field.name)
        ]
        _log.warning(
            "obskit: configure() called again at %s (before: %s) changed %d setting(s): %s",
            caller,
            _configured_from,
            len(changes),
            "; ".join(changes),
        )
    _configured_from = caller


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(_shutdown_at_exit)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork_in_child)
        _atexit_registered = True


def _current_registry() -> Any:
    return _state.STATE.store.registry


def _after_fork_in_child() -> None:
    """A forked child (gunicorn --preload, multiprocessing) records into a store of its own.

    Without this its cumulative values would start from the parent's and be exported a second
    time. The series created at 0 in the parent (bound handles, unlabelled metrics) are created
    at 0 in it again. The SDK's batch processors and metric reader restart their threads by
    themselves. In Prometheus multi-process mode prometheus_client keeps per-process files, so no
    new store is made. In every mode the child's spans and exported logs carry its own ``process.pid``.
    """
    _exit.after_fork_in_child()
    _own_pid_in_child()
    try:
        state = _state.STATE
        if not state.configured or state.settings.multiprocess_dir:
            return
        from obskit._recording.store import Store, recreate_at_zero

        store = Store(series_cap=state.settings.series_cap)
        recreate_at_zero(store)
        _system_collectors(store, state.settings)
        _state.set_state(dataclasses.replace(state, store=store))
    except Exception as exc:
        report_internal_error("after fork", exc)


def _own_pid_in_child() -> None:
    """Spans and exported logs of a forked child name the child's ``process.pid``, not the parent's.

    The same update the SDK's providers make at a fork for their process-dependent resource
    detectors (``_update_resource``: the provider's resource and every tracer or logger it made).
    """
    try:
        if not _pid_providers:
            return
        from opentelemetry.sdk.resources import Resource

        own = Resource({"process.pid": os.getpid()})
        for provider in _pid_providers:
            update = getattr(provider, "_update_resource", None)
            if update is not None:
                update(own)
    except Exception as exc:
        report_internal_error("after fork (process.pid)", exc)


def _shutdown_at_exit() -> None:
    """The interpreter's exit hook: shut down within what is left of the exit's budget."""
    try:
        _exit.begin_exit()
        shutdown()
    except Exception as exc:
        report_internal_error("shutdown at exit", exc)
    finally:
        _exit.end_exit()


def _shutdown_on_signal() -> None:
    shutdown()


def _flush_all(timeout: float) -> None:
    """Flush every pipeline at once, each waited for in its own thread, all within ``timeout`` seconds.

    At once, so that one pipeline stuck on an unreachable peer does not leave the others no time.
    """
    from obskit._export.pipeline import run_with_deadline

    deadline = time.monotonic() + timeout
    threads = [
        threading.Thread(target=run_with_deadline, args=(what, partial(flush, timeout), timeout), daemon=True)
        for what, flush in list(_flushers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def _build(settings: Settings, app: object = None) -> None:
    first_undo = len(_installed)
    redactor = redactor_for(settings)
    resource = resource_for(settings)
    store = _state.STATE.store
    if settings.multiprocess_dir:  # a store whose values live in prometheus_client's per-process files
        from obskit._export.prometheus import multiprocess_store

        store, undo = multiprocess_store(settings.multiprocess_dir, store)
        _installed.append(undo)
    store.series_cap = settings.series_cap
    # Installed in this order so that teardown (newest first) flushes spans, then metrics, and
    # removes the log handler last, letting exporters' last words still reach the logs.
    _logging_pipeline(settings, resource, redactor)
    _metrics_pipeline(settings, resource, store)
    provider = _tracer_provider(settings, resource, redactor, app)
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
        from obskit._recording.proxy import install_global_tracer_provider

        install_global_tracer_provider()
        from obskit._web import libraries as _libraries
        from obskit._web import propagation as _propagation

        undo_propagation, ensure_propagation = _propagation.install(settings)
        _installed.append(undo_propagation)
        _installed.append(_libraries.instrument(settings, ensure_propagation))
    _quiet_exporting_libraries(first_undo)


def _quiet_exporting_libraries(undo_at: int) -> None:
    """Quiet the exporting libraries: one warning a minute per backend, none of their chatter.

    A peer that is down makes the SDK and exporter modules log on every batch, each message
    different; the Azure SDK logs every HTTP request at INFO. Whatever handler the application
    has would get all of them. The filter (:class:`obskit._export.pipeline.RateLimitFilter`) sits on
    those libraries' loggers (created by now, since configure() imported the exporters), and
    shutdown() removes it after every pipeline has flushed: its undo goes in at ``undo_at``,
    before theirs, so that the last flush's retries and the exports it abandons stay quiet too.
    """
    from obskit._export.pipeline import HEALTH, INTERNAL_LOGGERS, RateLimitFilter, is_library_logger

    HEALTH.reset()
    limit = RateLimitFilter(_QUIET_INTERVAL)
    prefixes = tuple(p for p in INTERNAL_LOGGERS if p != "obskit")
    loggers = [
        logger
        for name, logger in list(logging.root.manager.loggerDict.items())
        if isinstance(logger, logging.Logger) and is_library_logger(name, prefixes)
    ]
    for logger in loggers:
        logger.addFilter(limit)

    def remove(timeout: float) -> None:
        for logger in loggers:
            logger.removeFilter(limit)

    _installed.insert(undo_at, remove)


def span_processors(settings: Settings, redactor: Redactor) -> list[Any]:
    """One bounded batch processor per span exporter: cleaning (once per span), then drop counting."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from obskit._export.backends import SPAN_EXPORTERS, factory
    from obskit._export.pipeline import CountingSpanExporter, CountingSpanProcessor
    from obskit._export.redacting import RedactingSpanExporter, SpanCleaner

    cleaner = SpanCleaner(redactor)  # shared: a span is cleaned once, by the first exporter to see it
    processors = []
    for name in settings.traces_exporter:
        exporter = factory(SPAN_EXPORTERS, name)(settings)
        batch = BatchSpanProcessor(
            RedactingSpanExporter(CountingSpanExporter(exporter), cleaner),
            max_queue_size=settings.export_queue_size,
            max_export_batch_size=min(settings.export_batch_size, settings.export_queue_size),
        )
        processors.append(CountingSpanProcessor(batch, settings.export_queue_size))
    return processors


def _tracer_provider(settings: Settings, resource: Any, redactor: Redactor, app: object = None) -> Any:
    """The provider obskit's spans go to: one set up before obskit (adopted), else obskit's own.

    Adopted: the global SDK provider (the application's, or ``opentelemetry-instrument``'s), or
    the one a FastAPI app was given for its own telemetry. obskit adds its processors to it and
    keeps its resource and sampler (docs/deployment.md, "Beside other OpenTelemetry set-ups").
    """
    from obskit._recording import proxy as _proxy

    existing = _proxy.foreign_tracer_provider()
    if existing is None and app is not None:
        from obskit._web.install import app_tracer_provider

        existing = app_tracer_provider(app)
    if existing is not None and _proxy.is_sdk_provider(existing):
        return _adopt_tracer_provider(settings, redactor, existing)
    if not settings.traces_exporter:
        return None
    if existing is not None:
        _warn_foreign_provider(existing)
    from opentelemetry.sdk.trace import TracerProvider

    # obskit's own exit hook flushes within the shutdown deadline; the SDK's would flush again.
    provider = TracerProvider(
        resource=resource,
        sampler=sampler_for(settings),
        shutdown_on_exit=False,
    )
    _track_pid(provider)
    for processor in span_processors(settings, redactor):
        provider.add_span_processor(processor)
    _installed.append(partial(_shutdown_provider, "span pipeline", provider))
    _flushers.append(("span pipeline flush", partial(_flush_provider, provider)))
    return provider


def _adopt_tracer_provider(settings: Settings, redactor: Redactor, provider: Any) -> Any:
    """Add obskit's span processors to ``provider``; shutdown() takes them out and leaves it running.

    Under ``opentelemetry-instrument`` the exporters ``OTEL_TRACES_EXPORTER`` names are already
    the provider's (the launcher built them from the same variable): obskit adds them only when
    its setting says something else, so no span is exported twice to the same place.
    """
    from obskit._recording.proxy import adopt

    exporters = settings.traces_exporter
    if _launched_by_opentelemetry_instrument() and exporters == _exporters_in_environment():
        exporters = ()
    _warn_other_service_name(settings, provider)
    processors = span_processors(dataclasses.replace(settings, traces_exporter=exporters), redactor)
    holder = adopt(provider, processors)
    _installed.append(partial(_release_adopted, holder, processors))
    _flushers.append(("span pipeline flush", partial(_flush_provider, holder)))
    return provider


def _launched_by_opentelemetry_instrument() -> bool:
    """Whether ``opentelemetry-instrument`` set this process up (its sitecustomize imports this module)."""
    return "opentelemetry.instrumentation.auto_instrumentation" in sys.modules


def _exporters_in_environment() -> tuple[str, ...]:
    names = (part.strip().lower() for part in os.environ.get("OTEL_TRACES_EXPORTER", "").split(","))
    return tuple(name for name in names if name and name != "none")


def _release_adopted(holder: Any, processors: list[Any], timeout: float) -> None:
    """Take obskit's processors out of an adopted provider, then flush and shut down only those."""
    from obskit._export.pipeline import run_with_deadline

    if holder.processors == tuple(processors):
        holder.processors = ()

    def flush_and_stop() -> None:
        for processor in processors:
            processor.force_flush(int(timeout * 1000))
            processor.shutdown()

    run_with_deadline("span pipeline", flush_and_stop, timeout)


_warned_providers: list[Any] = []


def _warn_other_service_name(settings: Settings, provider: Any) -> None:
    """Say once per provider when its spans name another service than the one obskit was given."""
    resource = getattr(provider, "resource", None)
    theirs = resource.attributes.get("service.name") if resource is not None else None
    ours = settings.service_name
    if theirs == ours or ours == Settings.service_name or any(seen is provider for seen in _warned_providers):
        return
    _warned_providers.append(provider)
    _log.warning(
        "the TracerProvider set up before obskit names the service %r in its resource; its spans "
        "(obskit's included) keep that name, while obskit's metrics and logs say %r: set "
        "OTEL_SERVICE_NAME, which both read",
        theirs,
        ours,
    )


def _warn_foreign_provider(provider: Any) -> None:
    """Say once per provider why obskit cannot adopt it and what it does instead."""
    if any(seen is provider for seen in _warned_providers):
        return
    _warned_providers.append(provider)
    kind = type(provider)
    _log.warning(
        "the TracerProvider set up before obskit is a %s.%s, not the OpenTelemetry SDK's, so obskit "
        "cannot add its span processors to it: obskit's own spans (its decorators, server spans, HTTP "
        "client spans) go to a pipeline of obskit's, and whatever was given the %s keeps using it",
        kind.__module__,
        kind.__qualname__,
        kind.__qualname__,
    )


def _track_pid(provider: Any) -> None:
    """Have a forked child update ``provider``'s ``process.pid`` (until shutdown removes it)."""
    _pid_providers.append(provider)
    _installed.append(lambda timeout: _pid_providers.remove(provider) if provider in _pid_providers else None)


def _flush_provider(provider: Any, timeout: float) -> None:
    provider.force_flush(int(timeout * 1000))


def _shutdown_provider(what: str, provider: Any, timeout: float) -> None:
    """Flush and shut down a tracer or logger provider, abandoning it at the deadline."""
    from obskit._export.pipeline import run_with_deadline

    def flush_and_stop() -> None:
        provider.force_flush(int(timeout * 1000))
        provider.shutdown()

    run_with_deadline(what, flush_and_stop, timeout)


def _metrics_pipeline(settings: Settings, resource: Any, store: Any) -> None:
    from obskit._export.backends import METRIC_EXPORTERS, METRIC_INSTALLERS, factory
    from obskit._export.pipeline import counting_metric_exporter

    for problem in ignored_settings(settings):  # after _internal_logging(): reaches stderr
        _log.warning("obskit: %s", problem)
    collectors = _system_collectors(store, settings)
    if collectors:

        def unregister(timeout: float) -> None:
            for collector in collectors:
                store.registry.unregister(collector)

        _installed.append(unregister)
    for name in settings.metrics_exporter:
        if name in METRIC_INSTALLERS:
            _installed.append(factory(METRIC_INSTALLERS, name)(settings, store))
            continue
        from obskit._export.bridge import make_reader  # the SDK's metrics: only for push exporters

        exporter = counting_metric_exporter(factory(METRIC_EXPORTERS, name)(settings))
        exponential = name == "otlp" and settings.exponential_histograms
        interval = settings.metric_export_interval_ms
        reader = make_reader(exporter, _current_registry, resource, interval, exponential)
        _installed.append(partial(_shutdown_reader, name, reader))
        _flushers.append((f"{name} metrics flush", partial(_flush_reader, reader)))


def _system_collectors(store: Any, settings: Settings) -> list[Any]:
    """Register the process and host collectors the settings ask for (their module only then)."""
    if not (settings.runtime_metrics or settings.host_metrics):
        return []
    from obskit._recording import sysmetrics as _sysmetrics

    return _sysmetrics.register(store.registry, settings.runtime_metrics, settings.host_metrics)


def _flush_reader(reader: Any, timeout: float) -> None:
    reader.force_flush(timeout_millis=timeout * 1000)


def _shutdown_reader(name: str, reader: Any, timeout: float) -> None:
    from obskit._export.pipeline import run_with_deadline

    run_with_deadline(f"{name} metrics", lambda: reader.shutdown(timeout_millis=timeout * 1000), timeout)


def _internal_logging(settings: Settings) -> None:
    """Obskit's own warnings go to stderr directly, never through the exported log pipeline.

    Each line has credentials hidden first (a push gateway URL with its password, an exception
    whose text quotes one, its traceback), with the shared patterns, even when ``redact_text``
    is off for the application's own lines: on the logger, for every handler it has, and on the
    handler, for records of loggers below it. The handler writes to ``sys.stderr`` as it is at
    each write (pytest swaps and closes its capture streams), and drops a line quietly when that
    stream is closed.
    """
    from obskit._core.errors import ScrubFilter

    internal = logging.getLogger("obskit")
    scrub = ScrubFilter(redactor_for(dataclasses.replace(settings, redact_text=True)).scrub)
    handler = ConsoleHandler("stderr")
    handler.setFormatter(logging.Formatter("obskit %(levelname)s: %(message)s"))
    handler.addFilter(scrub)
    previous = internal.propagate
    internal.addFilter(scrub)
    internal.addHandler(handler)
    internal.propagate = False

    def remove(timeout: float) -> None:
        internal.removeHandler(handler)
        internal.removeFilter(scrub)
        internal.propagate = previous

    _installed.append(remove)


def _level_given(settings: Settings) -> bool:
    """Whether ``log_level`` was asked for (keyword or ``OBSKIT_LOG_LEVEL``), not the default."""
    from obskit._core.settings import given_settings

    return "log_level" in given_settings(settings)


def _logging_pipeline(settings: Settings, resource: Any, redactor: Redactor) -> None:
    """Obskit's own warnings, the root level, the console handler and the exported logs' handler.

    The root level is the application's when it set one before configure() (anything but
    Python's default, WARNING: ``basicConfig(level=logging.DEBUG)``, ``setLevel``); a
    ``log_level`` given (keyword or ``OBSKIT_LOG_LEVEL``) is set whatever the root had, and so is
    the default, INFO, on a root nobody set. shutdown() puts the previous level back.
    """
    _internal_logging(settings)
    root = logging.getLogger()
    previous_level = root.level
    if _level_given(settings) or previous_level == logging.WARNING:
        root.setLevel(log_level_number(settings))
        _installed.append(lambda timeout: root.setLevel(previous_level))
    from obskit.logging import adopt_structlog

    # The application's structlog set-up gains obskit's fields; its console handler stays its own.
    structlog_owns_console = adopt_structlog(_installed)
    if "console" in settings.logs_exporter and not structlog_owns_console:
        _console_logs(settings)
    exported = [name for name in settings.logs_exporter if name != "console"]
    if exported:
        _exported_logs(settings, resource, redactor, exported)


def _console_logs(settings: Settings) -> None:
    """Obskit's handler on the root, in place of the stream handlers there writing to the console.

    A handler ``basicConfig()`` (or the application) put on the root writing to stdout or stderr
    would print every record a second time, as plain text beside the JSON line; it is taken off
    while obskit runs and put back by shutdown(). Handlers writing elsewhere (files, sockets,
    a test's buffer) stay, and so does every handler on other loggers. Without a ``log_level``
    given, obskit's handler passes what the handlers it replaced passed (their lowest level; all,
    when it replaced none): the loggers' levels decide, as before.
    """
    from obskit._export.pipeline import RateLimitFilter
    from obskit.logging import ConsoleFormatter, JsonFormatter

    root = logging.getLogger()
    replaced = [handler for handler in root.handlers if writes_to_console(handler)]
    handler = ObskitHandler(ConsoleStream("stdout", "logs"))
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else ConsoleFormatter())
    if _level_given(settings):
        handler.setLevel(log_level_number(settings))
    elif replaced:
        handler.setLevel(min(each.level for each in replaced))
    handler.addFilter(RateLimitFilter())
    if settings.log_format == "json" and settings.access_log_flush_interval > 0:
        # JSON is the only format access lines are written direct in, kept for runs.
        handler.defer_access_lines(settings.access_log_flush_interval, _render_kept_line)
    for each in replaced:
        root.removeHandler(each)
    root.addHandler(handler)

    def remove(timeout: float) -> None:
        root.removeHandler(handler)
        handler.flush()
        handler.close()
        for each in replaced:
            if each not in root.handlers:
                root.addHandler(each)

    _installed.append(remove)
    _flushers.append(("console log flush", lambda timeout: handler.flush()))


#: The web layer's ``render_kept_line``, once :func:`_render_kept_line` has imported it.
_web_renderer: Callable[[logging.Handler, tuple[Any, ...]], str] | None = None


def _render_kept_line(handler: logging.Handler, kept: tuple[Any, ...]) -> str:
    """The web layer's ``render_kept_line``, imported when the first kept access line is written.

    Only the web layer keeps lines, so a process that serves no web app never imports it (nor
    OpenTelemetry's propagators with it: about 2.5 ms of start-up).
    """
    global _web_renderer
    render = _web_renderer
    if render is None:
        from obskit._web.http import render_kept_line

        render = _web_renderer = render_kept_line
    return render(handler, kept)


def _exported_logs(settings: Settings, resource: Any, redactor: Redactor, names: list[str]) -> None:
    """One LoggerProvider with a bounded batch processor per exporter, one handler on the root.

    OpenTelemetry's own ``LoggingHandler`` on the root (``opentelemetry-instrument`` puts the
    SDK's there with ``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true``, and
    opentelemetry-instrumentation-logging's by default) would export every record a second time,
    unredacted: it is taken off while obskit runs (:func:`_set_aside`).
    """
    set_aside = _otel_logging_handlers()
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    from obskit._export.backends import LOG_EXPORTERS, factory
    from obskit._export.logexport import CountingLogExporter, ObskitLoggingHandler
    from obskit._export.pipeline import counting_log_processor

    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    _track_pid(provider)
    for name in names:
        exporter = CountingLogExporter(factory(LOG_EXPORTERS, name)(settings))
        batch = BatchLogRecordProcessor(
            exporter,
            max_queue_size=settings.export_queue_size,
            max_export_batch_size=min(512, settings.export_queue_size),
        )
        provider.add_log_record_processor(counting_log_processor(batch, settings.export_queue_size))
    handler = ObskitLoggingHandler(log_level_number(settings), provider, redactor)
    root = logging.getLogger()

    def remove(timeout: float) -> None:
        root.removeHandler(handler)

    _installed.append(partial(_shutdown_provider, "log pipeline", provider))
    # Undone newest first: obskit's handler comes off, then OpenTelemetry's go back on.
    _installed.append(_set_aside(set_aside))
    root.addHandler(handler)
    _installed.append(remove)
    _flushers.append(("log pipeline flush", partial(_flush_provider, provider)))


#: The OpenTelemetry logging handlers already reported as taken off, each said once per process.
_reported_handlers: weakref.WeakSet[logging.Handler] = weakref.WeakSet()


#: The modules of OpenTelemetry's logging handlers that export the root's records: the SDK's
#: (``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true``) and, replacing it,
#: opentelemetry-instrumentation-logging's (on by default under ``opentelemetry-instrument``).
_OTEL_LOGGING_HANDLER_MODULES = ("opentelemetry.sdk._logs", "opentelemetry.instrumentation.logging.handler")


def _otel_logging_handlers() -> list[logging.Handler]:
    """The root logger's OpenTelemetry ``LoggingHandler`` instances (subclasses too).

    Read from ``sys.modules``: when neither module is imported, none can be there.
    """
    kinds = tuple(
        kind
        for name in _OTEL_LOGGING_HANDLER_MODULES
        if isinstance(kind := getattr(sys.modules.get(name), "LoggingHandler", None), type)
    )
    if not kinds:
        return []
    return [handler for handler in logging.getLogger().handlers if isinstance(handler, kinds)]


def _set_aside(handlers: list[logging.Handler]) -> Callable[[float], None]:
    """Take ``handlers`` off the root logger; the undo returned puts them back on it."""
    root = logging.getLogger()
    for handler in handlers:
        root.removeHandler(handler)
        if handler not in _reported_handlers:
            _reported_handlers.add(handler)
            kind = type(handler)
            # Named by the module it is imported from (the SDK's lives in a private submodule).
            module = next(
                (m for m in _OTEL_LOGGING_HANDLER_MODULES if kind.__module__.startswith(m)), kind.__module__
            )
            _log.info(
                "took %s.%s off the root logger while obskit exports logs itself: it would export "
                "each record again, unredacted; shutdown() puts it back",
                module,
                kind.__qualname__,
            )

    def put_back(timeout: float) -> None:
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)

    return put_back


def _teardown(timeout: float) -> None:
    """Undo everything the last configure() installed, newest first, within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    _flushers.clear()
    while _installed:
        undo = _installed.pop()
        try:
            undo(max(0.001, deadline - time.monotonic()))
        except Exception as exc:
            report_internal_error("shutdown", exc)
    # Only a configure() that exported logs imported logexport (and the SDK's log modules).
    logexport = sys.modules.get("obskit._export.logexport")
    ours = (ObskitHandler, logexport.ObskitLoggingHandler) if logexport is not None else (ObskitHandler,)
    for handler in list(logging.getLogger().handlers):
        if isinstance(handler, ours):
            logging.getLogger().removeHandler(handler)


def shutdown(timeout: float | None = None) -> None:
    """Flush every signal and remove everything ``configure()`` installed. Never raises, never hangs.

    While the process exits (a signal was seen, or the exit hook runs) it takes at most what is
    left of the exit's one ``shutdown_timeout`` budget (docs/deployment.md, "What happens at exit").

    Args:
        timeout: overall deadline in seconds; default the ``shutdown_timeout`` setting.
    """
    with _lock:
        current = _state.STATE
        if not current.configured:
            return
        budget = timeout if timeout is not None else current.settings.shutdown_timeout
        _teardown(_exit.remaining(budget) if _exit.exiting() else budget)
        _set_unconfigured()


def _set_unconfigured() -> None:
    """Back to the state before any configure(): defaults, the same metric store (values kept)."""
    _apps.clear()
    defaults = Settings()
    store = _state.STATE.store
    store.series_cap = defaults.series_cap
    _state.set_state(_state.State(settings=defaults, store=store, redactor=Redactor()))


def is_configured() -> bool:
    """Whether ``configure()`` has run and ``shutdown()`` has not undone it since."""
    return _state.STATE.configured
