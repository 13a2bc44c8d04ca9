"""What keeps start and exit cheap still does its job (speed itself is in benchmarks/bench_startup.py).

- The HTTP client libraries are instrumented when the application imports them, not in
  ``configure()``: checked in fresh interpreters, since this test process imported both already.
- A process whose settings need no web layer, no job metrics and no doctor does not import
  them, nor what only an error message needs, nor the metric handles before a metric is
  declared; ``obskit``'s names for them still work.
- ``instrument_libraries=auto`` searches no path for the libraries in ``configure()``.
- The scrape server stops without waiting for a poll, yet answers the scrape it is serving and
  frees the port.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import threading
import urllib.request
from collections.abc import Iterable

import pytest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

import obskit
import obskit.prometheus
from obskit._core import state as _state

IMPORTED_LATER = textwrap.dedent(
    """
    import http.server, importlib.resources, importlib.util, json, sys, threading
    import obskit
    from obskit.testing import capture

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    peer = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=peer.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{peer.server_address[1]}/later"
    # The two clients only: with auto, any other installed library (redis, celery) is waited for too.
    obskit.configure(
        traces_exporter="console", metrics_exporter="none", logs_exporter="none",
        instrument_libraries="httpx,requests",
    )
    heavy = ("httpx", "requests", "opentelemetry.instrumentation.httpx", "wrapt")
    report = {"loaded_by_configure": [m for m in heavy if m in sys.modules]}
    found = importlib.util.find_spec("httpx")  # found, not loaded: its loader answers as the real one
    report["found_is_package"] = found.loader.is_package("httpx")
    import httpx
    report["after_one"] = [type(f).__name__ for f in sys.meta_path if "obskit" in type(f).__module__]
    import requests
    report["after_both"] = [type(f).__name__ for f in sys.meta_path if "obskit" in type(f).__module__]
    report["loaders"] = [type(m.__loader__).__name__ for m in (httpx, requests)]
    report["spec_loaders_same"] = all(m.__spec__.loader is m.__loader__ for m in (httpx, requests))
    report["resources"] = importlib.resources.files("httpx").joinpath("__init__.py").is_file()
    with capture() as cap, obskit.trace_operation("outer"):
        httpx.get(url)
        requests.get(url, timeout=5)
    report["client_spans"] = [
        sorted(span.attributes) for span in cap.spans() if span.kind.name == "CLIENT"
    ]
    print(json.dumps(report))
    """
)

SHUT_DOWN_FIRST = textwrap.dedent(
    """
    import json, sys
    import obskit
    obskit.configure(traces_exporter="console", metrics_exporter="none", logs_exporter="none")
    obskit.shutdown()
    import requests
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    print(json.dumps({
        "finders": [type(f).__name__ for f in sys.meta_path if "obskit" in type(f).__module__],
        "instrumented": RequestsInstrumentor().is_instrumented_by_opentelemetry,
    }))
    """
)


CONSOLE_PROCESS = textwrap.dedent(
    """
    import json, logging, sys
    import obskit
    obskit.configure(
        traces_exporter="console", metrics_exporter="prometheus", logs_exporter="console", prometheus_port=0
    )
    with obskit.trace_operation("startup"):
        logging.getLogger("app").info("started password=hunter2")
    obskit.shutdown()
    unused = (
        "obskit._web.http",  # the access line's renderer: no web app here
        "opentelemetry.propagate",  # with it
        "obskit._core.options",  # configure()'s keywords as a TypedDict: for mypy only
        "obskit._recording.jobs",
        "obskit._recording.metrics",
        "obskit._runtime.doctor",
        "obskit._recording.sysmetrics",  # runtime_metrics and host_metrics are off
        "difflib",  # for the "did you mean" of a misspelled setting
        "obskit._recording.handles",  # Counter, Histogram, Gauge: no metric declared here
        "obskit._recording.exemplars",  # with them
        "numbers",  # only a failed recording checks for a number
        "obskit._recording.events",  # obskit.event()
        "obskit._recording.logbuffer",  # access lines kept for runs: made at the first one
        "obskit._export.requirements",  # the extras of otlp and azure
        "obskit._web.idpropagator",  # the request id on outgoing calls: none made here
        "opentelemetry.propagators.textmap",  # with it
        "obskit._export.exposition",  # obskit's /metrics writer: at the first scrape
    )
    print(json.dumps({"imported": [name for name in unused if name in sys.modules]}))
    """
)


def _run(script: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def test_a_client_library_imported_after_configure_gets_client_spans() -> None:
    report = _run(IMPORTED_LATER)
    assert report["loaded_by_configure"] == []  # nothing paid for a library not imported
    assert report["found_is_package"] is True
    assert report["after_one"] == ["_PostImportFinder"]  # still waiting for requests
    assert report["after_both"] == []  # nothing left to wait for: out of every later import
    assert report["loaders"] == ["SourceFileLoader", "SourceFileLoader"]
    assert report["spec_loaders_same"] is True
    assert report["resources"] is True
    spans = report["client_spans"]
    assert isinstance(spans, list)
    assert len(spans) == 2  # one httpx call, one requests call
    for attributes in spans:
        assert {"http.request.method", "url.full", "http.response.status_code"} <= set(attributes)


def test_a_client_library_imported_after_shutdown_is_left_alone() -> None:
    report = _run(SHUT_DOWN_FIRST)
    assert report == {"finders": [], "instrumented": False}


def test_a_console_process_imports_nothing_its_settings_do_not_use() -> None:
    done = subprocess.run([sys.executable, "-c", CONSOLE_PROCESS], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "hunter2" not in done.stdout  # the credential patterns, compiled when first needed, work
    assert '"message":"started password=[REDACTED]"' in done.stdout
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"imported": []}


def test_names_imported_on_first_use_are_the_real_ones() -> None:
    script = (
        "import obskit, sys; assert 'obskit._recording.jobs' not in sys.modules;"
        "from obskit import track_job; from obskit._recording.jobs import track_job as real;"
        "assert track_job is real and obskit.Job.__module__ == 'obskit._recording.jobs';"
        "assert {'Job', 'track_job', 'check_backends', 'MetricsCollector'} <= set(dir(obskit));"
        "assert 'obskit._recording.handles' not in sys.modules;"
        "assert 'obskit._recording.events' not in sys.modules;"
        "from obskit import Counter, event;"
        "import obskit._recording.handles as h, obskit._recording.events as e;"
        "assert (Counter, obskit.Gauge, obskit.Histogram) == (h.Counter, h.Gauge, h.Histogram);"
        "assert event is e.event;"
        "assert {'Counter', 'Gauge', 'Histogram', 'event'} <= set(dir(obskit))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# -- the scrape server ----------------------------------------------------------------------------


class _HeldCollection:
    """A collector whose collection waits until released: a scrape caught being answered."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def describe(self) -> list[Metric]:
        return []  # registering must not collect (and wait)

    def collect(self) -> Iterable[Metric]:
        self.entered.set()
        self.release.wait(10)
        yield GaugeMetricFamily("held_scrape_marker", "answered after the release", value=1)


def _serve() -> tuple[str, int]:
    obskit.configure(
        traces_exporter="none", logs_exporter="none", metrics_exporter="prometheus", prometheus_port=0
    )
    address = obskit.prometheus.server_address()
    assert address is not None
    return address


def _refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_shutdown_answers_the_scrape_being_served_and_refuses_new_ones() -> None:
    host, port = _serve()
    held = _HeldCollection()
    registry = _state.STATE.store.registry
    registry.register(held)  # type: ignore[arg-type]
    answers: list[str] = []

    def scrape() -> None:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
            answers.append(response.read().decode())

    scraper = threading.Thread(target=scrape)
    scraper.start()
    try:
        assert held.entered.wait(10)
        stopper = threading.Thread(target=obskit.shutdown, kwargs={"timeout": 10})
        stopper.start()
        stopper.join(0.5)
        assert stopper.is_alive()  # shutdown() waits for the scrape under way...
        assert _refused(host, port)  # ...with the port already closed to new ones
    finally:
        held.release.set()
        scraper.join(10)
        registry.unregister(held)  # type: ignore[arg-type]
    stopper.join(10)
    assert not stopper.is_alive()
    assert len(answers) == 1
    assert "held_scrape_marker 1.0" in answers[0]


def test_shutdown_with_a_silent_connection_open_frees_the_port(capfd: pytest.CaptureFixture[str]) -> None:
    host, port = _serve()
    with socket.create_connection((host, port), timeout=5):  # connected, sends nothing
        obskit.shutdown(timeout=10)
        assert obskit.prometheus.server_address() is None
        assert _refused(host, port)
        # The port can be served again at once (as by the next configure()).
        again = obskit.configure(
            traces_exporter="none", logs_exporter="none", metrics_exporter="prometheus", prometheus_port=port
        )
        assert again.prometheus_port == port
        assert obskit.prometheus.server_address() == (host, port)
    assert "still being answered" not in capfd.readouterr().err
    assert not [t for t in threading.enumerate() if t.name == "obskit-prometheus-server" and not t.daemon]


def test_auto_looks_for_no_library_on_the_path_in_configure(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight path searches (0.3 ms) at every start: the finder waits for every library instead."""
    from obskit._web import libraries as _libraries

    looked_up: list[str] = []
    monkeypatch.setattr(_libraries, "_top_level_installed", lambda name: bool(looked_up.append(name)))
    # At least one library not imported yet (earlier tests in this process may have imported all
    # eight): the finder is there to wait for it.
    monkeypatch.delitem(sys.modules, "celery", raising=False)
    obskit.configure(traces_exporter="console", metrics_exporter="none", logs_exporter="none")
    assert looked_up == []
    finders = [f for f in sys.meta_path if type(f).__name__ == "_PostImportFinder"]
    assert len(finders) == 1
    waiting = {name for name in _libraries.LIBRARIES if name not in sys.modules}
    assert all(finders[0]._libraries.waits_for(name) for name in waiting)


# -- the settings table ----------------------------------------------------------------------------


def test_settings_are_parsed_by_shared_parsers_not_a_closure_each() -> None:
    """Every process makes the settings table at import and frees it at exit: data, not 146 closures.

    Each setting names a parser of ``obskit._core.settings`` (one per kind of value) and its
    arguments; the table holds no function made for one setting.
    """
    from obskit._core import settings as _settings

    parsers = {spec[0] for _, spec in _settings._FIELDS.values()}
    assert all(parser.__closure__ is None for parser in parsers)
    assert all(vars(_settings).get(parser.__name__) is parser for parser in parsers)
    assert len(parsers) < 25  # one per kind, shared by the 80 settings
    # Which backend uses a setting is data too: (exporter, signal) pairs, no predicate each.
    assert all(
        isinstance(choices, tuple) and all(isinstance(pair, tuple) for pair in choices)
        for _, choices in _settings.BACKEND_SETTINGS.values()
    )
