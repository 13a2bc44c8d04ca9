"""Calls to other services, databases, caches and task queues: CLIENT spans through the libraries.

Each library of :data:`LIBRARIES` is instrumented by its official OpenTelemetry contrib
instrumentation (one extra each: ``pip install "obskit[redis]"``; ``libraries`` for all), as the
``instrument_libraries`` setting says: ``auto`` (every library whose instrumentation is installed;
the others are skipped without a word, since an application that does not use ``redis`` has
nothing to instrument), ``none``, or names (a named library without its instrumentation gets one
warning naming the extra). The instrumentations record into obskit's proxy provider, so a later
``configure()`` or the test capture is followed without instrumenting again. A library the
application instrumented itself is left alone, and so is its uninstrumentation.

A library is instrumented when it is imported, not in ``configure()``: importing ``httpx``,
``requests`` and their instrumentations costs more than the rest of ``configure()`` (about
150 ms), which a process that never imports them should not pay. One already imported is
instrumented at once; for the others a finder on ``sys.meta_path`` (:class:`_PostImportFinder`)
instruments the library right after its own import finishes, before the importer gets it back.

The spans follow the stable semantic conventions (HTTP: ``http.request.method``, ``url.full``;
databases: ``db.system.name``, ``db.operation.name``, ``db.query.text``), as obskit's server
spans do, unless the user set ``OTEL_SEMCONV_STABILITY_OPT_IN`` (then its value decides, the
``/dup`` modes included). The choice is made for obskit's instrumentations only
(:func:`_semconv_mode`): other instrumentations the application turns on read the environment
as usual. psycopg's and psycopg2's read it per connection: :func:`_modes_per_connection` hands
them the choice made when they are instrumented.

Database and cache calls feed the ready-made metrics, so that "slow queries" and "cache hit
rate" panels need no code: a span processor (:class:`_DatabaseMetrics`) observes every finished
CLIENT span naming a database system in ``<ns>_db_query_duration_seconds{db, operation, status}``
(``db`` is the system: ``postgresql``, ``sqlite``, ``redis``), and Redis reads (``GET`` and
its kin) count in ``<ns>_cache_requests_total{cache="redis", result}`` (a hit when the reply is
not empty). Both see the spans the sampler keeps: with a ratio sampler they hold a sample.

The SDK's export threads suppress instrumentation while exporting, so obskit's own OTLP and
Azure exports (which use ``requests``) never produce spans of their own.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import ModuleType
from typing import Any

from opentelemetry.sdk.trace import SpanProcessor

from obskit._core import state as _state
from obskit._core.errors import report_internal_error
from obskit._core.settings import INSTRUMENTABLE_LIBRARIES, Settings

__all__ = [
    "HTTP_CLIENTS",
    "LIBRARIES",
    "Library",
    "attach_metrics",
    "instrument",
    "missing_instrumentations",
    "selected",
]

_log = logging.getLogger("obskit")


class Library:
    """How one library is instrumented (a plain class: a ``NamedTuple`` costs 0.1 ms of start-up)."""

    __slots__ = ("extra", "instrumentor", "kind", "module")

    def __init__(self, module: str, instrumentor: str, extra: str, kind: str) -> None:
        #: The instrumentation's module and its instrumentor class.
        self.module = module
        self.instrumentor = instrumentor
        #: The obskit extra that installs the instrumentation.
        self.extra = extra
        #: ``http``, ``database`` or ``tasks``: which semantic conventions and metrics apply.
        self.kind = kind


_OTEL = "opentelemetry.instrumentation."
#: import name -> how it is instrumented; the names are those ``instrument_libraries`` takes.
LIBRARIES: dict[str, Library] = {
    "aiohttp": Library(_OTEL + "aiohttp_client", "AioHttpClientInstrumentor", "aiohttp", "http"),
    "celery": Library(_OTEL + "celery", "CeleryInstrumentor", "celery", "tasks"),
    "httpx": Library(_OTEL + "httpx", "HTTPXClientInstrumentor", "http-clients", "http"),
    "psycopg": Library(_OTEL + "psycopg", "PsycopgInstrumentor", "psycopg", "database"),
    "psycopg2": Library(_OTEL + "psycopg2", "Psycopg2Instrumentor", "psycopg", "database"),
    "redis": Library(_OTEL + "redis", "RedisInstrumentor", "redis", "database"),
    "requests": Library(_OTEL + "requests", "RequestsInstrumentor", "http-clients", "http"),
    "sqlalchemy": Library(_OTEL + "sqlalchemy", "SQLAlchemyInstrumentor", "sqlalchemy", "database"),
}
assert tuple(sorted(LIBRARIES)) == INSTRUMENTABLE_LIBRARIES
#: The libraries ``instrument_http_clients=False`` leaves alone.
HTTP_CLIENTS = ("httpx", "requests")
#: The variable the instrumentations read their semantic conventions from.
SEMCONV_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"


def _installed(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _top_level_installed(name: str) -> bool:
    """Whether the top-level module ``name`` can be found (nothing is imported to find it)."""
    import importlib.machinery

    try:
        return importlib.machinery.PathFinder.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def selected(settings: Settings) -> tuple[list[str], bool]:
    """The libraries to instrument, and whether they were named (not ``auto``)."""
    chosen = settings.instrument_libraries
    named = chosen != ("auto",)
    names = list(chosen) if named else list(LIBRARIES)
    if not settings.instrument_http_clients:
        names = [name for name in names if name not in HTTP_CLIENTS]
    return names, named


def missing_instrumentations(settings: Settings) -> list[str]:
    """The doctor's check: each library to instrument whose instrumentation is not installed.

    With ``auto``, only the libraries installed; a named one always. Nothing without tracing,
    since nothing is instrumented then.
    """
    if not settings.traces_exporter:
        return []
    names, named = selected(settings)
    problems = []
    for name in names:
        library = LIBRARIES[name]
        if (named or _top_level_installed(name)) and not _installed(library.module):
            problems.append(
                f"instrument_libraries: {name} gets no spans, its instrumentation is not installed: "
                f'pip install "obskit[{library.extra}]"'
            )
    return problems


def _nothing(timeout: float) -> None:
    """Nothing was instrumented, so there is nothing to undo."""


@contextlib.contextmanager
def _semconv_mode() -> Iterator[None]:
    """Have the instrumentations started inside read the stable conventions (or the user's choice).

    The instrumentations read ``OTEL_SEMCONV_STABILITY_OPT_IN`` once per process, the first time
    any of them is instrumented (``_OpenTelemetrySemanticConventionStability._initialize``), and
    each one keeps the mode it found when instrumented. obskit therefore sets the HTTP and database
    modes in that shared table around its own ``instrument()`` calls only, and puts the previous
    modes back: the environment is left untouched, and whatever read the table earlier or reads it
    later gets what the environment says.
    """
    try:
        from opentelemetry.instrumentation import _semconv

        stability: Any = _semconv._OpenTelemetrySemanticConventionStability  # untyped
        signal, mode = _semconv._OpenTelemetryStabilitySignalType, _semconv._StabilityMode
        stability._initialize()  # from the environment, as it would be without obskit
        table = stability._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING
        signals = [(signal.HTTP, mode.HTTP, mode.HTTP_DUP)]
        if hasattr(signal, "DATABASE") and hasattr(mode, "DATABASE_DUP"):
            signals.append((signal.DATABASE, mode.DATABASE, mode.DATABASE_DUP))
        before = {kind: table.get(kind) for kind, _, _ in signals}
        chosen = os.environ.get(SEMCONV_OPT_IN)
        for kind, stable, dup in signals:
            if chosen:  # the user's value, even when something read the table before it was set
                words = [word.strip() for word in chosen.split(",")]
                table[kind] = stability._filter_mode(words, stable, dup)
            else:
                table[kind] = stable
    except Exception as exc:  # another version of the private table: its own default applies
        _log.debug("obskit: cannot choose the semantic conventions of client spans: %r", exc)
        yield
        return
    try:
        yield
    finally:
        for kind, previous in before.items():
            if previous is None:
                table.pop(kind, None)
            else:
                table[kind] = previous


#: The DB-API instrumentations read the conventions when a connection is made, not when they are
#: turned on: their integration classes (in the instrumentation's module), one made per connection.
_PER_CONNECTION: dict[str, tuple[str, ...]] = {
    "psycopg": ("DatabaseApiIntegration", "DatabaseApiAsyncIntegration"),
    "psycopg2": ("DatabaseApiIntegration",),
}


@contextlib.contextmanager
def _modes_per_connection(library: str, module_name: str) -> Iterator[None]:
    """Have the connections of a DB-API instrumentation keep the conventions chosen now.

    Inside :func:`_semconv_mode`, around ``instrument()``: the instrumentation hands its
    integration class to ``dbapi.wrap_connect`` then, and makes one per connection later, which
    reads the shared table again (the environment's modes by then). The class it is handed is
    a subclass whose modes are those of this moment, and whose tracer carries their schema URL;
    the module keeps its own class once ``instrument()`` returns.
    """
    names = _PER_CONNECTION.get(library, ())
    swapped: list[tuple[str, Any]] = []
    module: Any = None
    try:
        if names:
            from opentelemetry.instrumentation import _semconv

            stability: Any = _semconv._OpenTelemetrySemanticConventionStability  # untyped
            signal = _semconv._OpenTelemetryStabilitySignalType
            database = stability._get_opentelemetry_stability_opt_in_mode(signal.DATABASE)
            http = stability._get_opentelemetry_stability_opt_in_mode(signal.HTTP)
            schema = _semconv._get_schema_url_for_signal_types([signal.DATABASE, signal.HTTP])
            module = importlib.import_module(module_name)
            for name in names:
                base = getattr(module, name, None)
                if isinstance(base, type):
                    swapped.append((name, base))
                    setattr(module, name, _with_modes(base, database, http, schema))
    except Exception as exc:  # another version of the private parts: the connections read the table
        _log.debug("obskit: cannot fix the semantic conventions of %s's spans: %r", library, exc)
    try:
        yield
    finally:
        for name, base in swapped:
            setattr(module, name, base)


def _with_modes(base: type, database: Any, http: Any, schema: str) -> type:
    """A subclass of a DB-API integration class whose instances use these modes, whatever the table says.

    The base's ``__init__`` assigns both modes from the table: the properties ignore it, so the
    rest of ``__init__`` (the stable conventions' duration histogram) sees the modes given here.
    """

    def ignore(self: Any, value: Any) -> None:
        """The table's mode, assigned by the base's ``__init__``: these modes stay."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        base.__init__(self, *args, **kwargs)  # type: ignore[misc]
        from opentelemetry.trace import get_tracer

        self._tracer = get_tracer(
            self._name,
            instrumenting_library_version=self._version,
            tracer_provider=kwargs.get("tracer_provider"),
            schema_url=schema,
        )

    namespace = {
        "__init__": __init__,
        "__module__": base.__module__,
        "__qualname__": base.__qualname__,
        "_sem_conv_opt_in_mode_db": property(lambda self: database, ignore),
        "_sem_conv_opt_in_mode_http": property(lambda self: http, ignore),
    }
    return type(base.__name__, (base,), namespace)


#: Redis commands whose reply says whether the key was there: one cache lookup each.
_CACHE_READS = frozenset({"GET", "GETEX", "GETDEL", "HGET", "JSON.GET"})
_CACHE_MANY = frozenset({"MGET", "HMGET"})


def _redis_response(span: Any, instance: Any, response: Any) -> None:
    """The Redis instrumentation's response hook: a read counts as a cache hit or miss."""
    try:
        name = getattr(span, "name", "")
        command = name.split(" ", 1)[0].upper() if isinstance(name, str) else ""
        if command in _CACHE_READS:
            _cache_access([response])
        elif command in _CACHE_MANY and isinstance(response, list | tuple):
            _cache_access(response)
    except Exception as exc:
        report_internal_error("redis cache metrics", exc)


def _cache_access(replies: Iterable[Any]) -> None:
    from obskit._recording.metrics import MetricsCollector

    collector = MetricsCollector()
    for reply in replies:
        collector.cache_access("redis", reply is not None)


#: Options obskit passes to an instrumentor, by library.
_OPTIONS: dict[str, dict[str, Any]] = {"redis": {"response_hook": _redis_response}}


class _Libraries:
    """The instrumentations obskit turned on, and the imports it waits for."""

    def __init__(self, provider: Any, instrumented: Callable[[], None], named: bool) -> None:
        self._provider = provider
        #: Called after a library is instrumented (the request id propagator goes in then).
        self._instrumented = instrumented
        #: Whether the libraries were named: a missing instrumentation is then worth a warning.
        self._named = named
        self._lock = threading.Lock()
        self._ours: list[Any] = []
        self._waiting: set[str] = set()
        self._finder: _PostImportFinder | None = None
        self._metrics: Any = None
        self._closed = False

    def start(self, libraries: Sequence[str]) -> None:
        """Instrument the libraries already imported; wait for the import of the others.

        Whether an instrumentation is installed is looked up when its library is imported, not
        here: finding ``opentelemetry.instrumentation.redis`` imports its parent packages, for
        libraries perhaps never used. With ``auto``, whether the library itself is installed is
        not looked up either (a path search per library: 0.3 ms of every start for eight): the
        finder waits for every one, and answers an import of any other name with one set look-up.
        Libraries named in the setting are looked up now: the user asked for them, so a missing
        instrumentation is reported at once.
        """
        for library in libraries:
            if self._named and not _installed(LIBRARIES[library].module):
                extra = LIBRARIES[library].extra
                _log.warning(
                    "obskit: instrument_libraries names %s but its instrumentation is not installed: "
                    'pip install "obskit[%s]"',
                    library,
                    extra,
                )
                continue
            if library in sys.modules:
                self._instrument_quietly(library)
            else:
                self._waiting.add(library)
        if self._waiting:
            self._finder = _PostImportFinder(self)
            sys.meta_path.insert(0, self._finder)

    def waits_for(self, name: str) -> bool:
        return name in self._waiting

    def imported(self, name: str) -> None:
        """``name`` has just been imported (the finder calls this): instrument it. Never raises."""
        with self._lock:
            if self._closed or name not in self._waiting:
                return
            self._waiting.discard(name)
            if not self._waiting:
                self._remove_finder()
        self._instrument_quietly(name)

    def _instrument_quietly(self, library: str) -> None:
        try:
            self.instrument(library)
        except Exception as exc:  # the application's import or configure() goes on without it
            _log.warning("obskit: cannot instrument %s: %r", library, exc)

    def instrument(self, library: str) -> None:
        """Instrument ``library`` (imported by now) unless the application did."""
        spec = LIBRARIES[library]
        if not _installed(spec.module):
            return
        instrumentor = getattr(importlib.import_module(spec.module), spec.instrumentor)()
        if instrumentor.is_instrumented_by_opentelemetry:
            return  # instrumented by the application: not ours to undo
        with _semconv_mode(), _modes_per_connection(library, spec.module):
            instrumentor.instrument(tracer_provider=self._provider, **_OPTIONS.get(library, {}))
        if not instrumentor.is_instrumented_by_opentelemetry:  # a version conflict (logged)
            return
        with self._lock:
            closed = self._closed
            if not closed:
                self._ours.append(instrumentor)
        if closed:  # shutdown() ran while the import was instrumenting it
            instrumentor.uninstrument()
            return
        if spec.kind == "database":
            self._feed_database_metrics()
        elif spec.kind == "tasks":
            from obskit._web import tasks

            tasks.connect()
        self._instrumented()

    def _feed_database_metrics(self) -> None:
        """Add the processor that turns database spans into metrics, once, to the current provider."""
        global _ACTIVE
        provider: Any = _state.STATE.tracer_provider  # the SDK's (or the adopted) provider
        with self._lock:
            if self._metrics is not None or self._closed or provider is None:
                return
            self._metrics = _ACTIVE = _DatabaseMetrics()
        if hasattr(provider, "add_span_processor"):
            from obskit._recording.proxy import add_processor

            add_processor(provider, self._metrics)

    def _remove_finder(self) -> None:
        finder, self._finder = self._finder, None
        if finder is not None:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(finder)

    def close(self, timeout: float) -> None:
        with self._lock:
            self._closed = True
            self._waiting.clear()
            self._remove_finder()
            ours, self._ours = self._ours, []
            if self._metrics is not None:
                self._metrics.active = False  # the SDK cannot remove a processor: it goes quiet
                _forget(self._metrics)
        for instrumentor in ours:
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()
        tasks = sys.modules.get("obskit._web.tasks")
        if tasks is not None:
            tasks.disconnect()


class _DatabaseMetrics(SpanProcessor):
    """A span processor: each finished database CLIENT span is observed as one database call.

    ``operation`` is the span's ``db.operation.name`` (``db.operation`` in the old conventions)
    or the first word of its query, upper-case, and ``other`` when that is not a plain word, so
    that a query's text never becomes a label value.
    """

    #: It ends nothing but CLIENT spans: a server span may skip it (``_web/serverspan.py``).
    client_spans_only = True

    def __init__(self) -> None:
        self.active = True
        from opentelemetry.trace import SpanKind, StatusCode

        self._client, self._error = SpanKind.CLIENT, StatusCode.ERROR

    def on_end(self, span: Any) -> None:
        if not self.active or span.kind is not self._client:
            return
        attributes = span.attributes or {}
        system = attributes.get("db.system.name") or attributes.get("db.system")
        if not system or span.end_time is None or span.start_time is None:
            return
        try:
            operation = _operation(attributes, span.name)
            duration = (span.end_time - span.start_time) / 1e9
            error = span.status.status_code is self._error
            from obskit._recording.metrics import MetricsCollector

            MetricsCollector().db_call(operation, duration, db=str(system), error=error)
        except Exception as exc:
            report_internal_error("database metrics", exc)

    def shutdown(self) -> None:
        self.active = False


#: The processor of the libraries instrumented now, if a database library is among them.
_ACTIVE: _DatabaseMetrics | None = None


def _forget(metrics: _DatabaseMetrics) -> None:
    global _ACTIVE
    if _ACTIVE is metrics:
        _ACTIVE = None


def attach_metrics(provider: Any) -> None:
    """Have ``provider`` (the test capture's) feed the database metrics too, if they are fed now."""
    if _ACTIVE is not None and hasattr(provider, "add_span_processor"):
        provider.add_span_processor(_ACTIVE)


def _operation(attributes: Any, name: str) -> str:
    operation = attributes.get("db.operation.name") or attributes.get("db.operation")
    if not operation:
        text = attributes.get("db.query.text") or attributes.get("db.statement") or name or ""
        operation = str(text).split(None, 1)[0] if str(text).strip() else ""
    word = str(operation).upper()
    if not word or len(word) > 32 or not word.replace("_", "").replace(".", "").isalpha():
        return "other"
    return word


class _PostImportFinder:
    """Finds nothing itself: hands a waited-for module's loader a call back once it is executed.

    A ``sys.meta_path`` finder by protocol (``importlib.abc`` is not imported: it costs 2 ms).
    """

    def __init__(self, libraries: _Libraries) -> None:
        self._libraries = libraries

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not self._libraries.waits_for(fullname):
            return None
        for finder in list(sys.meta_path):
            if finder is self or isinstance(finder, _PostImportFinder):
                continue
            find = getattr(finder, "find_spec", None)
            spec: importlib.machinery.ModuleSpec | None = None
            if find is not None:
                spec = find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        spec.loader = _CallingBackLoader(loader, self._libraries)  # type: ignore[assignment]
        return spec


class _CallingBackLoader:
    """Loads with the real loader, then calls back; the module keeps the real loader as its own."""

    def __init__(self, loader: Any, libraries: _Libraries) -> None:
        self._loader = loader
        self._libraries = libraries

    def __getattr__(self, name: str) -> Any:
        # get_code, get_resource_reader, is_package...: a spec found but not loaded (find_spec,
        # pkgutil) still answers as the real loader would.
        return getattr(self._loader, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        # importlib.resources and reload() read the module's loader: it is the real one from here on.
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        self._libraries.imported(module.__name__)


def instrument(
    settings: Settings, instrumented: Callable[[], None] = lambda: None
) -> Callable[[float], None]:
    """Instrument the chosen libraries, now or once imported; return the undo.

    ``instrumented`` is called after each library is instrumented.
    """
    names, named = selected(settings)
    if not names:
        return _nothing
    from obskit._recording.proxy import ObskitTracerProvider

    libraries = _Libraries(ObskitTracerProvider(), instrumented, named)
    libraries.start(names)
    return libraries.close
