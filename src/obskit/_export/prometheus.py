"""The Prometheus backend: scrape endpoint, push gateway, multi-process mode (gunicorn, uwsgi).

``metrics_exporter=prometheus`` installs, through :func:`install`:

- a standalone scrape server on ``prometheus_host:prometheus_port`` serving
  ``prometheus_path`` in the text format, or OpenMetrics (with exemplars) when the scraper asks
  for it in ``Accept``; :func:`make_wsgi_app` and :func:`make_asgi_app` serve the same exposition
  from inside a web application;
- with ``pushgateway_url``, a pusher thread that PUTs the metrics to a push gateway after
  ``track_job`` runs (``push_on=job``, bursts coalesced) and at shutdown (``push_on=shutdown``);

and, with ``multiprocess_dir``, :func:`multiprocess_store` (called by ``configure()`` for any
exporter) makes prometheus_client write every process's values to files there, which a scrape
merges. prometheus_client chooses its value class once, at import, from the
``PROMETHEUS_MULTIPROC_DIR`` variable; obskit sets that variable and replaces the value class
itself, so the obskit setting alone is enough, and gives the store a fresh set of metrics so that
nothing recorded earlier stays in memory-only values. See docs/backends/prometheus.md.

Nothing here runs on the caller's thread except setting an event when a job finishes. Importing
this module (``obskit.prometheus``, in a gunicorn config file say) loads nothing beyond what
``import obskit`` does: the OpenTelemetry SDK pieces of ``obskit._export.pipeline`` are imported when
first needed.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import gzip
import inspect
import logging
import math
import os
import selectors
import socket
import socketserver
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.metrics_core import Metric

from obskit import environment_variables as env
from obskit._core import state as _state
from obskit._core.errors import report_internal_error
from obskit._core.redact import redactor_for
from obskit._core.settings import Settings
from obskit._recording.store import Store, recreate_at_zero

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "child_exit",
    "install",
    "make_asgi_app",
    "make_wsgi_app",
    "mark_process_dead",
    "multiprocess_directory",
    "multiprocess_store",
    "push",
    "server_address",
]

_log = logging.getLogger("obskit")

#: An ASGI application: ``await app(scope, receive, send)``.
ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]

#: Seconds between two attempts to bind a scrape port that was taken.
BIND_RETRY_SECONDS = 5.0
#: Seconds one background push may take.
PUSH_TIMEOUT_SECONDS = 10.0
#: Least seconds between two pushes after jobs: a burst of jobs makes one push, not one each.
MIN_PUSH_INTERVAL_SECONDS = 1.0
#: Seconds between two warnings about failing pushes.
_WARN_INTERVAL = 60.0
#: The push gateway's name in obskit's backend health (the line when pushes work again).
PUSH_GATEWAY = "the Prometheus push gateway"

#: The multi-process directory in force (set by :func:`multiprocess_store`), or None.
_active_dir: str | None = None
#: The value class made for each multi-process directory: one per directory and process, since
#: two of them would each open the same per-process file and overwrite each other's values.
_value_classes: dict[str, Any] = {}
_endpoint: _Endpoint | None = None
_pusher: _Pusher | None = None
#: When push() last warned that no push gateway is configured.
_not_pushing_warned_at = -math.inf
_fork_hook_registered = False


# -- multi-process mode ---------------------------------------------------------------------------


def multiprocess_store(directory: str, current: Store) -> tuple[Store, Callable[[float], None]]:
    """Switch prometheus_client to per-process files in ``directory``; a store writing there, and its undo.

    The undo restores prometheus_client's value class and ``PROMETHEUS_MULTIPROC_DIR``, and puts
    ``current`` back as obskit's store. Values written to the files stay there: configuring the
    same directory again in this process continues from them.
    """
    from prometheus_client import values

    global _active_dir
    directory = os.path.abspath(directory)
    previous_class, previous_dir = values.ValueClass, _active_dir
    previous_env = os.environ.get(env.PROMETHEUS_MULTIPROC_DIR)
    if getattr(previous_class, "_multiprocess", False) and previous_env:
        # prometheus_client chose multi-process mode at import (PROMETHEUS_MULTIPROC_DIR was set):
        # its value class already writes to that directory, and a second one must not.
        if os.path.abspath(previous_env) != directory:
            _log.warning(
                "obskit: prometheus_client already writes to PROMETHEUS_MULTIPROC_DIR=%s; using it"
                " instead of multiprocess_dir=%s",
                previous_env,
                directory,
            )
        directory = os.path.abspath(previous_env)
        value_class = previous_class
    else:
        value_class = _value_classes.get(directory)
        if value_class is None:
            value_class = _value_classes[directory] = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    os.environ[env.PROMETHEUS_MULTIPROC_DIR] = directory
    values.ValueClass = value_class
    store = Store(series_cap=current.series_cap)
    store.exemplars = False  # prometheus_client's files have no room for them
    recreate_at_zero(store)
    _active_dir = directory

    def undo(timeout: float) -> None:
        global _active_dir
        values.ValueClass = previous_class
        if previous_env is None:
            os.environ.pop(env.PROMETHEUS_MULTIPROC_DIR, None)
        else:
            os.environ[env.PROMETHEUS_MULTIPROC_DIR] = previous_env
        _active_dir = previous_dir
        state = _state.STATE
        if state.store is store:
            _state.set_state(dataclasses.replace(state, store=current))

    return store, undo


def multiprocess_directory() -> str | None:
    """The multi-process directory in force, else the one the environment names, else None."""
    return (
        _active_dir
        or os.environ.get(env.OBSKIT_PROMETHEUS_MULTIPROC_DIR)
        or os.environ.get(env.PROMETHEUS_MULTIPROC_DIR)
        or None
    )


def mark_process_dead(pid: int) -> None:
    """Remove the live-gauge files of process ``pid`` from the multi-process directory.

    Counters and histograms keep the dead process's files, so that sums never go down.
    Never raises.
    """
    try:
        directory = multiprocess_directory()
        if directory:
            from prometheus_client.multiprocess import mark_process_dead as prometheus_mark_dead

            prometheus_mark_dead(pid, directory)  # type: ignore[no-untyped-call]
    except Exception as exc:
        report_internal_error("prometheus mark_process_dead", exc)


def child_exit(server: Any, worker: Any) -> None:
    """A gunicorn ``child_exit`` hook: forget the live gauges of the worker that exited.

    In ``gunicorn.conf.py``: ``from obskit.prometheus import child_exit``. It runs in the
    gunicorn master, which need not have called ``configure()``: the directory then comes from
    ``OBSKIT_PROMETHEUS_MULTIPROC_DIR`` or ``PROMETHEUS_MULTIPROC_DIR``.
    """
    pid = getattr(worker, "pid", None)
    if isinstance(pid, int):
        mark_process_dead(pid)


# -- the exposition -------------------------------------------------------------------------------


class _Exposition:
    """What obskit serves: the current store's registry, or every process's files in multi-process mode.

    Read at each scrape, so it follows ``configure()``, a forked child's own store and
    ``obskit.testing.capture()``. In multi-process mode only the merged files are served: the
    runtime and host collectors describe one process, not the service, and are left out.
    """

    def __init__(self, directory: str | None = None) -> None:
        self._directory = directory

    def describe(self) -> list[Metric]:
        """Nothing: the names change with the store, so none is claimed in the registry."""
        return []

    def collect(self) -> Iterable[Metric]:
        """The metric families to expose now."""
        directory = self._directory or _active_dir
        if directory:
            from prometheus_client.multiprocess import MultiProcessCollector

            families: Iterable[Metric] = MultiProcessCollector(None, directory).collect()  # type: ignore[no-untyped-call]
            return families
        state = _state.STATE
        if state.settings.prometheus_created:
            return state.store.registry.collect()
        from obskit._export.exposition import without_created  # at the first scrape, not at start

        return without_created(state.store.registry.collect())


class _Selection:
    """The samples of ``registry`` named in ``names``: a ``name[]`` scrape of :class:`_SelectingRegistry`."""

    def __init__(self, names: Iterable[str], registry: CollectorRegistry) -> None:
        self._names = set(names)
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        """Each family with only its selected samples; families left with none are dropped."""
        for metric in self._registry.collect():
            samples = [sample for sample in metric.samples if sample.name in self._names]
            if samples:
                selected = copy.copy(metric)
                selected.samples = samples
                yield selected


class _SelectingRegistry(CollectorRegistry):
    """A registry whose ``name[]`` selection reads every collector, named or not.

    For prometheus_client before 0.25, whose selection only reads collectors that describe the
    names they write; :class:`_Exposition` describes none (its names change with the store).
    """

    def restricted_registry(self, names: Iterable[str]) -> Any:
        """The selection of ``names`` (``?name[]=...`` in a scrape)."""
        return _Selection(names, self)


#: Whether CollectorRegistry takes support_collectors_without_names (prometheus_client 0.25 on).
_NAMELESS: bool | None = None


def _registry(collector: Any) -> CollectorRegistry:
    global _NAMELESS
    if _NAMELESS is None:
        _NAMELESS = "support_collectors_without_names" in inspect.signature(CollectorRegistry).parameters
    registry = CollectorRegistry(support_collectors_without_names=True) if _NAMELESS else _SelectingRegistry()
    registry.register(collector)
    return registry


def make_wsgi_app(
    *, multiprocess_dir: str | None = None, disable_compression: bool = False
) -> WSGIApplication:
    """A WSGI app serving obskit's metrics at whatever path it is mounted on.

    The text format by default; OpenMetrics (with exemplars) when ``Accept`` asks for
    ``application/openmetrics-text``; gzip when ``Accept-Encoding`` allows it. In multi-process
    mode it merges every worker's files, so any worker can answer the scrape.

    Args:
        multiprocess_dir: serve the files of this directory (a process that records nothing
            itself, say); by default the directory obskit was configured with, if any.
        disable_compression: never gzip the response.
    """
    from prometheus_client import make_wsgi_app as prometheus_wsgi_app

    app = prometheus_wsgi_app(_registry(_Exposition(multiprocess_dir)), disable_compression)

    def obskit_metrics(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            if environ.get("REQUEST_METHOD") == "GET" and environ.get("PATH_INFO") != "/favicon.ico":
                answer = _text_answer(
                    multiprocess_dir,
                    environ.get("QUERY_STRING", ""),
                    environ.get("HTTP_ACCEPT"),
                    environ.get("HTTP_ACCEPT_ENCODING"),
                    disable_compression,
                )
                if answer is not None:
                    start_response("200 OK", answer[0])
                    return [answer[1]]
            return app(environ, start_response)  # type: ignore[no-any-return]
        except Exception as exc:
            report_internal_error("prometheus exposition", exc)
            start_response("500 Internal Server Error", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"# obskit could not collect the metrics; see the obskit log\n"]

    return obskit_metrics


def _text_answer(
    directory: str | None,
    query: str,
    accept: str | None,
    accept_encoding: str | None,
    disable_compression: bool,
) -> tuple[list[tuple[str, str]], bytes] | None:
    """(headers, body) of a scrape written by obskit; None to let prometheus_client answer.

    obskit writes the text format (0.0.4) and OpenMetrics 1.0.0 of its store, with the bytes
    prometheus_client would write (``_export/exposition.py``). prometheus_client answers the rest:
    other versions and escapings (as ``Accept`` asks), a ``name[]`` selection, multi-process
    files, and the ``_created`` samples (``prometheus_created=True``).
    """
    from prometheus_client.exposition import choose_encoder, gzip_accepted

    from obskit._export.exposition import write, written_format  # at the first scrape, not at start

    if directory or _active_dir or "name" in query:
        return None
    encoder, content_type = choose_encoder(accept)  # type: ignore[arg-type]
    openmetrics = written_format(encoder)
    state = _state.STATE
    if openmetrics is None or state.settings.prometheus_created:
        return None
    try:
        body = write(state.store.registry, openmetrics)
    except Exception as exc:  # prometheus_client writes it instead
        report_internal_error("prometheus exposition", exc)
        return None
    if body is None:
        return None
    headers = [("Content-Type", content_type)]
    if not disable_compression and gzip_accepted(accept_encoding):  # type: ignore[arg-type]
        body = gzip.compress(body)
        headers.append(("Content-Encoding", "gzip"))
    return headers, body


def make_asgi_app(*, multiprocess_dir: str | None = None, disable_compression: bool = False) -> ASGIApp:
    """An ASGI app serving obskit's metrics (see :func:`make_wsgi_app`), for Starlette/FastAPI mounts."""
    from prometheus_client import make_asgi_app as prometheus_asgi_app

    app = prometheus_asgi_app(_registry(_Exposition(multiprocess_dir)), disable_compression)

    async def obskit_metrics(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        started = False

        async def tracking_send(message: Any) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            if scope.get("type") == "http" and await _answer_text(scope, receive, send):
                return
            await app(scope, receive, tracking_send)
        except Exception as exc:
            report_internal_error("prometheus exposition", exc)
            if not started:
                headers = [(b"content-type", b"text/plain; charset=utf-8")]
                await send({"type": "http.response.start", "status": 500, "headers": headers})
                body = b"# obskit could not collect the metrics; see the obskit log\n"
                await send({"type": "http.response.body", "body": body})

    async def _answer_text(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> bool:
        """Answer in the text format, as prometheus_client's ASGI app would; False to leave it to that app."""
        accept: list[str] = []
        accept_encoding: list[str] = []
        for name, value in scope.get("headers") or ():
            lowered = name.lower()
            if lowered == b"accept":
                accept.append(value.decode("utf8"))
            elif lowered == b"accept-encoding":
                accept_encoding.append(value.decode("utf8"))
        query = scope.get("query_string", b"").decode("utf8")
        answer = _text_answer(
            multiprocess_dir, query, ",".join(accept), ",".join(accept_encoding), disable_compression
        )
        if answer is None:
            return False
        headers, body = answer
        payload = await receive()
        if payload.get("type") == "http.request":
            encoded = [(name.encode("utf8"), value.encode("utf8")) for name, value in headers]
            await send({"type": "http.response.start", "status": 200, "headers": encoded})
            await send({"type": "http.response.body", "body": body})
        return True

    return obskit_metrics


# -- the standalone scrape server -----------------------------------------------------------------


def _routed(path: str, app: WSGIApplication) -> WSGIApplication:
    """Serve ``app`` at ``path`` only (a trailing slash tolerated); 404 elsewhere."""
    wanted = path.rstrip("/")

    def route(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").rstrip("/") == wanted:
            return app(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [f"Not found. The metrics are at {path}\n".encode()]

    return route


class _ScrapeHandler(WSGIRequestHandler):
    """Answers one scrape, quietly; counted by its server from the request until the answer is sent."""

    timeout = 10  # a client that stops sending cannot hold a thread for ever
    server: _ScrapeServer
    _counted = False

    def parse_request(self) -> bool:
        # A request has arrived: stopping the server waits for its answer from here. A connection
        # that sent nothing yet is not waited for: it is no different from one made a moment later.
        parsed: bool = super().parse_request()
        if parsed:
            self._counted = True
            self.server.request_started()
        return parsed

    def finish(self) -> None:
        try:
            super().finish()  # flushes the answer
        finally:
            if self._counted:
                self._counted = False
                self.server.request_finished()

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


class _ScrapeServer(ThreadingWSGIServer):
    """prometheus_client's threading server: no DNS lookup, stopped at once (see :func:`_make_server`)."""

    allow_reuse_address = True  # a restarted process rebinds while old connections linger

    def __init__(self, family: int, host: str, port: int) -> None:
        self.address_family = family
        self._host = host
        self._stopping = False
        self._stopped = threading.Event()
        self._busy = 0
        self._idle = threading.Condition(threading.Lock())
        # Written to by wake(): the serving loop waits on the listening socket and this one,
        # so it returns at once when stopped rather than at its next poll.
        self._wake_reader, self._wake_writer = socket.socketpair()
        try:
            super().__init__((host, port), _ScrapeHandler)
        except BaseException:
            self._close_wake()
            raise

    def server_bind(self) -> None:
        # HTTPServer.server_bind would call socket.getfqdn(host): a DNS lookup in configure().
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self._host, self.server_address[1]
        self.setup_environ()

    def serve_until_stopped(self) -> None:
        """Accept connections (each served on its own thread) until :meth:`wake` is called."""
        try:
            # poll() as socketserver uses: no kernel object shared with a forked child (epoll).
            selector_class = getattr(selectors, "PollSelector", selectors.SelectSelector)
            with selector_class() as selector:
                selector.register(self, selectors.EVENT_READ)
                selector.register(self._wake_reader, selectors.EVENT_READ)
                while not self._stopping:
                    ready = selector.select()
                    if self._stopping:
                        break
                    if any(key.fileobj is self for key, _ in ready):
                        self._handle_request_noblock()  # type: ignore[attr-defined]
        finally:
            self._stopped.set()

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """As :meth:`serve_until_stopped`: woken, not polling (``poll_interval`` is not used)."""
        self.serve_until_stopped()

    def wake(self) -> None:
        """Make the serving loop return now (from any thread)."""
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\0")

    def shutdown(self) -> None:
        """Stop the serving loop and wait until it has returned (from another thread)."""
        self.wake()
        self._stopped.wait()

    def request_started(self) -> None:
        with self._idle:
            self._busy += 1

    def request_finished(self) -> None:
        with self._idle:
            self._busy -= 1
            if not self._busy:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every request received is answered, at most ``timeout`` seconds."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._busy, max(0.0, timeout))

    def _close_wake(self) -> None:
        self._wake_reader.close()
        self._wake_writer.close()

    def close_wake_in_child(self) -> None:
        """A forked child holds copies of the wake sockets too: close them (the parent's stay open)."""
        self._close_wake()

    def server_close(self) -> None:
        super().server_close()
        self._close_wake()


def _address_family(host: str, port: int) -> int:
    """IPv4 or IPv6 for ``host``: an address is read as written, a name is resolved.

    ``getaddrinfo`` encodes any host with the ``idna`` codec, whose first use imports it (and
    ``stringprep``, ``unicodedata``: about 1.5 ms of ``configure()``); an address needs none of it.
    """
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return family
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]


def _make_server(host: str, port: int, app: WSGIApplication) -> _ScrapeServer:
    """A threading WSGI server bound to ``host:port`` (IPv4 or IPv6), without any DNS lookup.

    prometheus_client's own server class (``ThreadingWSGIServer``: threads, daemon threads) is
    the base. Its ``start_wsgi_server`` is not used, because it (prometheus_client 0.20 to 0.26):

    - starts serving at once on the address given: a taken port raises, and obskit's workers
      under gunicorn must bind later, when the worker holding the port exits (:class:`_Endpoint`);
    - serves ``make_wsgi_app(registry)`` on every path, where obskit serves one path and 404s
      the rest (:func:`_routed`);
    - serves with ``serve_forever()``, which looks for a shutdown request every 0.5 s: stopping
      it waits for that poll, at every ``shutdown()`` and so at every process exit. obskit's
      server is woken instead (:meth:`_ScrapeServer.serve_until_stopped`);
    - binds through ``HTTPServer.server_bind``, which calls ``socket.getfqdn(host)``: a reverse
      DNS lookup inside ``configure()`` (1 ms here; the resolver's timeout, 5 s or more, where
      DNS does not answer);
    - keeps a connection's thread for as long as the client holds it open without sending
      (no request timeout).
    """
    server = _ScrapeServer(_address_family(host, port), host, port)
    server.set_app(app)
    return server


class _Endpoint:
    """The standalone scrape server; a taken port is retried in the background until it is free.

    Under gunicorn or uwsgi every worker that calls ``configure()`` asks for the same port: the
    first one serves (every worker's files, in multi-process mode) and the others retry, so that
    one of them takes over when it exits.
    """

    def __init__(self, host: str, port: int, path: str, multiprocess: bool) -> None:
        self._host, self._port, self._path = host, port, path
        self._multiprocess = multiprocess
        self._app = _routed(path, make_wsgi_app())
        self._server: _ScrapeServer | None = None
        self._thread: threading.Thread | None = None
        self._owner = os.getpid()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._retrying: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) being served, or None."""
        server = self._server
        return None if server is None else (self._host, server.server_address[1])

    def start(self) -> None:
        """Bind and serve now; if the port is taken, warn once and keep trying in the background."""
        error = self._try_bind()
        if error is None:
            return
        level = logging.INFO if self._multiprocess else logging.WARNING
        _log.log(
            level,
            "obskit: cannot serve Prometheus metrics on %s:%s (%s)%s; retrying every %.0f s",
            self._host,
            self._port,
            error,
            "; another worker probably serves them" if self._multiprocess else "",
            BIND_RETRY_SECONDS,
        )
        self._retrying = threading.Thread(target=self._retry, name="obskit-prometheus-bind", daemon=True)
        self._retrying.start()

    def _try_bind(self) -> OSError | None:
        try:
            server = _make_server(self._host, self._port, self._app)
        except OSError as exc:
            return exc
        with self._lock:
            if self._stop.is_set():
                server.server_close()
                return None
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_until_stopped,
                name="obskit-prometheus-server",
                daemon=True,
            )
            self._thread.start()
        return None

    def _retry(self) -> None:
        while not self._stop.wait(BIND_RETRY_SECONDS):
            if self._try_bind() is None:
                if self._server is not None:
                    _log.info("obskit: now serving Prometheus metrics on %s:%s", self._host, self._port)
                return

    def close(self, timeout: float) -> None:
        """Stop serving and close the socket; wait for the scrapes being answered, within ``timeout`` seconds.

        The serving loop is woken rather than polled, so this takes no longer than the scrapes
        under way: nothing when there are none. The port is free when this returns (the
        connections already accepted keep their own sockets until answered). A connection that
        has sent no request yet is not waited for.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            self._stop.set()
            server, self._server = self._server, None
            thread = self._thread
        if server is None:
            return
        if os.getpid() != self._owner:  # a forked child: the serving thread is the parent's
            server.server_close()
            return
        server.wake()
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))  # returns at once: it was woken
        server.server_close()
        if not server.wait_idle(deadline - time.monotonic()):
            _log.warning("obskit: a Prometheus scrape was still being answered at shutdown; not waited for")

    def after_fork_in_child(self) -> None:
        """Close the child's copy of the listening socket: the parent serves, the child holds no port."""
        self._stop = threading.Event()
        self._stop.set()
        self._lock = threading.Lock()
        server, self._server = self._server, None
        if server is not None:
            server.socket.close()
            server.close_wake_in_child()


def server_address() -> tuple[str, int] | None:
    """(host, port) of the standalone scrape server, or None when it is not serving.

    With ``prometheus_port=0`` this is how to learn the port that was picked.
    """
    endpoint = _endpoint
    return None if endpoint is None else endpoint.address


# -- the push gateway -----------------------------------------------------------------------------


def _relabelled(family: Metric, names: frozenset[str]) -> Metric:
    """``family`` with each label in ``names`` renamed ``exported_<name>``.

    The push gateway overwrites a pushed label that is also in the grouping key (``job`` at
    least), which would fold ``my_jobs_total{job=...}`` of different jobs into one series.
    Prometheus itself renames such a label ``exported_job`` when it scrapes a target, so a
    PromQL query reads the same whichever way the metrics travelled.
    """
    if not any(name in sample.labels for sample in family.samples for name in names):
        return family
    renamed = copy.copy(family)
    renamed.samples = [
        sample._replace(labels={(f"exported_{k}" if k in names else k): v for k, v in sample.labels.items()})
        for sample in family.samples
    ]
    return renamed


def _series(families: Iterable[Metric]) -> int:
    """How many series ``families`` hold (a histogram series counts once)."""
    return sum(
        1
        for family in families
        for sample in family.samples
        if sample.name in (family.name, f"{family.name}_total", f"{family.name}_count")
    )


class _Families:
    """A collector returning families collected beforehand (what one push sends)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        """The families given."""
        return self._families


class _Pusher:
    """PUTs the metrics to a push gateway from its own thread, after jobs and at shutdown."""

    def __init__(self, settings: Settings) -> None:
        assert settings.pushgateway_url is not None
        #: As it may be shown: no password, no sensitive query value. Hidden here, where the line is
        #: made, not only by the filter on obskit's handler: a push that times out after shutdown()
        #: removed that handler warns through whatever handlers the application has.
        self.url = redactor_for(settings).url(settings.pushgateway_url)
        self._target, self._handler = _basic_auth(settings.pushgateway_url)
        self.job = settings.pushgateway_job or settings.service_name
        self.grouping = dict(settings.pushgateway_grouping)
        self.on_job = "job" in settings.push_on
        self.on_shutdown = "shutdown" in settings.push_on
        self._conflicting = frozenset({"job", *self.grouping})
        self._warned_at = -math.inf
        self._last_push = -math.inf
        self._reset_threading()

    def _reset_threading(self) -> None:
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._push_lock = threading.Lock()  # one push at a time
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def signal(self, job: str) -> None:
        """A job finished (on the caller's thread): wake the pusher, starting it if need be."""
        try:
            if self._thread is None:
                self._start()
            self._wake.set()
        except Exception as exc:
            report_internal_error("prometheus push", exc)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._stop.is_set():
                thread = threading.Thread(target=self._run, name="obskit-prometheus-push", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if self._stop.is_set():
                return
            pause = self._last_push + MIN_PUSH_INTERVAL_SECONDS - time.monotonic()
            if pause > 0 and self._stop.wait(pause):
                return  # close() pushes what is pending
            self._wake.clear()  # jobs finishing from here on ask for the next push
            self.push(PUSH_TIMEOUT_SECONDS)
            self._last_push = time.monotonic()

    def push(self, timeout: float) -> bool:
        """Push the metrics now (on the calling thread); True when the gateway took them. Never raises."""
        with self._push_lock:
            families: list[Metric] = []
            try:
                families = [_relabelled(f, self._conflicting) for f in _Exposition().collect()]
                from prometheus_client import push_to_gateway

                push_to_gateway(
                    self._target,
                    job=self.job,
                    registry=_Families(families),
                    grouping_key=self.grouping,
                    timeout=max(timeout, 0.001),
                    handler=self._handler,
                )
                if self._warned_at != -math.inf:
                    self._warned_at = -math.inf  # the next failure, if any, is a new outage: said at once
                from obskit._export.pipeline import record_export

                record_export(PUSH_GATEWAY, "metrics", True)
                return True
            except Exception as exc:
                close = getattr(exc, "close", None)  # an HTTPError holds the gateway's response open
                if callable(close):
                    with contextlib.suppress(Exception):
                        close()
                from obskit._export.pipeline import record_export
                from obskit._recording.store import count_dropped

                count_dropped("metrics", "export_failed", max(1, _series(families)))
                record_export(PUSH_GATEWAY, "metrics", False)
                self._warn(exc)
                return False

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= _WARN_INTERVAL:
            self._warned_at = now
            _log.warning(
                "obskit: pushing metrics to the Prometheus push gateway %s failed: %r (counted in"
                " obskit_telemetry_dropped_total; next warning in a minute at the earliest)",
                self.url,
                exc,
            )

    def close(self, timeout: float) -> None:
        """Stop the thread (finishing a push under way), then push once more if asked, within ``timeout``."""
        deadline = time.monotonic() + timeout
        pending = self._wake.is_set()
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread.is_alive():
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.on_shutdown or pending:
            remaining = max(0.001, deadline - time.monotonic())
            from obskit._export.pipeline import run_with_deadline

            run_with_deadline("prometheus push", lambda: self.push(remaining), remaining)

    def after_fork_in_child(self) -> None:
        """The parent's thread and locks do not exist in a forked child: start afresh on the next job."""
        stopped = self._stop.is_set()
        self._reset_threading()
        if stopped:
            self._stop.set()


def _basic_auth(url: str) -> tuple[str, Callable[..., Any]]:
    """``url`` without its user information, and the handler that sends it as HTTP basic auth.

    urllib cannot use ``http://user:password@host`` itself (it would look the whole of it up as a
    host name), while a push gateway behind basic auth is configured exactly so.
    """
    from urllib.parse import unquote, urlsplit, urlunsplit

    from prometheus_client.exposition import default_handler

    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, default_handler
    userinfo, _, host = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    from functools import partial

    from prometheus_client.exposition import basic_auth_handler

    handler = partial(basic_auth_handler, username=unquote(username), password=unquote(password))
    return urlunsplit(parts._replace(netloc=host)), handler


def _no_pusher_reason() -> str:
    state = _state.STATE
    if not state.configured:
        return "obskit is not configured"
    if not state.settings.pushgateway_url:
        return "pushgateway_url is not set"
    from obskit._core.settings import ignored_settings

    reasons = ignored_settings(state.settings)
    return reasons[0] if reasons else "no push gateway is configured"


def _warn_not_pushing() -> None:
    global _not_pushing_warned_at
    now = time.monotonic()
    if now - _not_pushing_warned_at < _WARN_INTERVAL:
        return
    _not_pushing_warned_at = now
    _log.warning(
        "obskit: obskit.prometheus.push() pushed nothing: %s (next warning in a minute at the earliest)",
        _no_pusher_reason(),
    )


def push(timeout: float = PUSH_TIMEOUT_SECONDS) -> bool:
    """Push the metrics to the push gateway now and wait at most ``timeout`` seconds for it.

    For batch jobs that want their numbers at the gateway before going on. The push runs on a
    thread of its own; a failure is counted and warned about like any other, never raised.

    Returns:
        True when the gateway accepted them; False on failure, on timeout, or when no push
        gateway is configured (``metrics_exporter=prometheus`` with ``pushgateway_url``). Why
        nothing was pushed is logged as a warning, at most once a minute.
    """
    pusher = _pusher
    if pusher is None:
        _warn_not_pushing()
        return False
    done: list[bool] = []
    thread = threading.Thread(
        target=lambda: done.append(pusher.push(timeout)), name="obskit-prometheus-push-now", daemon=True
    )
    thread.start()
    thread.join(max(0.0, timeout))
    return bool(done and done[0])


# -- installation ---------------------------------------------------------------------------------


def _after_fork_in_child() -> None:
    try:
        if _endpoint is not None:
            _endpoint.after_fork_in_child()
        if _pusher is not None:
            _pusher.after_fork_in_child()
    except Exception as exc:
        report_internal_error("prometheus after fork", exc)


def install(settings: Settings, store: Store) -> Callable[[float], None]:
    """Start the scrape server and, with ``pushgateway_url``, the pusher; return their undo.

    The undo (``shutdown()``, or the next ``configure()``) stops the server and closes its socket,
    stops the pusher and makes the shutdown push, all within the deadline it is given.
    """
    global _endpoint, _pusher, _fork_hook_registered
    if not _fork_hook_registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _fork_hook_registered = True
    exemplars_before = store.exemplars
    store.exemplars = _active_dir is None  # served through OpenMetrics; multi-process files have no room
    endpoint = _Endpoint(
        settings.prometheus_host,
        settings.prometheus_port,
        settings.prometheus_path,
        multiprocess=_active_dir is not None,
    )
    endpoint.start()
    _endpoint = endpoint
    pusher = _Pusher(settings) if settings.pushgateway_url else None
    _pusher = pusher
    if pusher is not None and pusher.on_job:
        _state.JOB_LISTENERS.append(pusher.signal)

    def undo(timeout: float) -> None:
        global _endpoint, _pusher
        deadline = time.monotonic() + timeout
        store.exemplars = exemplars_before
        if _endpoint is endpoint:
            _endpoint = None
        endpoint.close(min(timeout, 2.0))
        if pusher is not None:
            if pusher.signal in _state.JOB_LISTENERS:
                _state.JOB_LISTENERS.remove(pusher.signal)
            if _pusher is pusher:
                _pusher = None
            pusher.close(max(0.001, deadline - time.monotonic()))

    return undo
