"""Outgoing HTTP calls: trace context and a CLIENT span for ``httpx`` and ``requests``.

Through the OpenTelemetry contrib instrumentations (the ``http-clients`` extra). They are
optional: when a client library or its instrumentation is not installed, it is skipped without a
word, since an application that does not use ``requests`` has nothing to instrument. The
instrumentations record into obskit's proxy provider, so a later ``configure()`` or the test
capture is followed without instrumenting again. A library the application instrumented itself
is left alone, and so is its uninstrumentation.

A library is instrumented when it is imported, not in ``configure()``: importing ``httpx``,
``requests`` and their instrumentations costs more than the rest of ``configure()`` (about
150 ms), which a process that never imports them should not pay. One already imported is
instrumented at once; for the others a finder on ``sys.meta_path`` (:class:`_PostImportFinder`)
instruments the library right after its own import finishes, before the importer gets it back.

The client spans follow the stable HTTP semantic conventions (``http.request.method``,
``url.full``, ``http.response.status_code``), as obskit's server spans do, unless the user set
``OTEL_SEMCONV_STABILITY_OPT_IN`` (then its value decides, ``http/dup`` included). The choice is
made for obskit's instrumentations only (:func:`_semconv_mode`): other instrumentations the
application turns on read the environment as usual.

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
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any

from obskit._core.settings import Settings

__all__ = ["CLIENTS", "instrument", "missing"]

_log = logging.getLogger("obskit")

#: client library -> (instrumentation module, instrumentor class).
CLIENTS = {
    "httpx": ("opentelemetry.instrumentation.httpx", "HTTPXClientInstrumentor"),
    "requests": ("opentelemetry.instrumentation.requests", "RequestsInstrumentor"),
}
#: The variable the instrumentations read their semantic conventions from.
SEMCONV_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"


def _installed(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing() -> list[str]:
    """Installed client libraries whose instrumentation is not: ``pip install "obskit[http-clients]"``."""
    return [lib for lib, (module, _) in CLIENTS.items() if _installed(lib) and not _installed(module)]


def _nothing(timeout: float) -> None:
    """Nothing was instrumented, so there is nothing to undo."""


@contextlib.contextmanager
def _semconv_mode() -> Iterator[None]:
    """Have the instrumentations started inside read the stable HTTP conventions (or the user's choice).

    The instrumentations read ``OTEL_SEMCONV_STABILITY_OPT_IN`` once per process, the first time
    any of them is instrumented (``_OpenTelemetrySemanticConventionStability._initialize``), and
    each one keeps the mode it found when instrumented. obskit therefore sets the HTTP mode in that
    shared table around its own ``instrument()`` calls only, and puts the previous mode back:
    the environment is left untouched, and whatever read the table earlier or reads it later
    gets what the environment says.
    """
    try:
        from opentelemetry.instrumentation import _semconv

        stability: Any = _semconv._OpenTelemetrySemanticConventionStability  # untyped
        signal, mode = _semconv._OpenTelemetryStabilitySignalType, _semconv._StabilityMode
        stability._initialize()  # from the environment, as it would be without obskit
        table = stability._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING
        before = table.get(signal.HTTP)
        chosen = os.environ.get(SEMCONV_OPT_IN)
        if chosen:  # the user's value, even when something read the table before it was set
            words = [word.strip() for word in chosen.split(",")]
            table[signal.HTTP] = stability._filter_mode(words, mode.HTTP, mode.HTTP_DUP)
        else:
            table[signal.HTTP] = mode.HTTP
    except Exception as exc:  # another version of the private table: its own default applies
        _log.debug("obskit: cannot choose the HTTP semantic conventions of client spans: %r", exc)
        yield
        return
    try:
        yield
    finally:
        if before is None:
            table.pop(signal.HTTP, None)
        else:
            table[signal.HTTP] = before


class _Clients:
    """The instrumentations obskit turned on, and the imports it waits for."""

    def __init__(self, provider: Any, instrumented: Callable[[], None]) -> None:
        self._provider = provider
        #: Called after a library is instrumented (the request id propagator goes in then).
        self._instrumented = instrumented
        self._lock = threading.Lock()
        self._ours: list[Any] = []
        self._waiting: set[str] = set()
        self._finder: _PostImportFinder | None = None
        self._closed = False

    def start(self, libraries: Sequence[str]) -> None:
        """Instrument the libraries already imported; wait for the import of the others.

        Whether a library and its instrumentation are installed is looked up when it is imported,
        not here: the look-up reads directories on ``sys.path``, for libraries perhaps never used.
        """
        for library in libraries:
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
            _log.warning("obskit: cannot instrument %s for client spans: %r", library, exc)

    def instrument(self, library: str) -> None:
        """Instrument ``library`` (imported by now) unless the application did."""
        module, cls = CLIENTS[library]
        if not _installed(module):
            return
        instrumentor = getattr(importlib.import_module(module), cls)()
        if instrumentor.is_instrumented_by_opentelemetry:
            return  # instrumented by the application: not ours to undo
        with _semconv_mode():
            instrumentor.instrument(tracer_provider=self._provider)
        if not instrumentor.is_instrumented_by_opentelemetry:  # a version conflict (logged)
            return
        with self._lock:
            closed = self._closed
            if not closed:
                self._ours.append(instrumentor)
        if closed:  # shutdown() ran while the import was instrumenting it
            instrumentor.uninstrument()
            return
        self._instrumented()

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
        for instrumentor in ours:
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()


class _PostImportFinder:
    """Finds nothing itself: hands a waited-for module's loader a call back once it is executed.

    A ``sys.meta_path`` finder by protocol (``importlib.abc`` is not imported: it costs 2 ms).
    """

    def __init__(self, clients: _Clients) -> None:
        self._clients = clients

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not self._clients.waits_for(fullname):
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
        spec.loader = _CallingBackLoader(loader, self._clients)  # type: ignore[assignment]
        return spec


class _CallingBackLoader:
    """Loads with the real loader, then calls back; the module keeps the real loader as its own."""

    def __init__(self, loader: Any, clients: _Clients) -> None:
        self._loader = loader
        self._clients = clients

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
        self._clients.imported(module.__name__)


def instrument(
    settings: Settings, instrumented: Callable[[], None] = lambda: None
) -> Callable[[float], None]:
    """Instrument the HTTP clients (unless turned off), now or once imported; return the undo.

    ``instrumented`` is called after each library is instrumented.
    """
    if not settings.instrument_http_clients:
        return _nothing
    from obskit._recording.proxy import ObskitTracerProvider

    clients = _Clients(ObskitTracerProvider(), instrumented)
    clients.start(list(CLIENTS))
    return clients.close
