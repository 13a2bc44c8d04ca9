"""Access lines written in runs (obskit._recording.logbuffer): when, in what order, how many.

Each line is rendered when its request ends, so it is the immediate path's line byte for byte
(tests/test_http_direct_access.py compares every variant both ways); here: what triggers a write,
that order, ids and times are kept, that nothing is lost or written twice (threads, shutdown,
reconfiguring, exit, fork), and when lines are not kept at all (a terminal, an interval of 0,
ERROR lines, the console format).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from werkzeug.test import Client

import obskit
import obskit.asgi
import obskit.wsgi
from asgicall import asgi_get
from obskit._core import state as _state
from obskit._export.logexport import ObskitLoggingHandler
from obskit._recording import logbuffer as _accessbuffer
from obskit._recording.loghandler import ObskitHandler


class Stdout:
    """A stdout that records each write; ``tty`` makes it a terminal.

    Installed by :func:`configure` in the test's body: pytest's capture puts its own stdout back
    at the start of each test phase, so a fixture's replacement would not last.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tty: bool = False) -> None:
        self.writes: list[str] = []
        self.tty = tty
        self._monkeypatch = monkeypatch

    def install(self) -> None:
        self._monkeypatch.setattr(sys, "stdout", self)

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return self.tty

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in "".join(self.writes).split("\n") if line]

    def access(self) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["logger"] == "http.access"]


@pytest.fixture
def stdout(monkeypatch: pytest.MonkeyPatch) -> Stdout:
    return Stdout(monkeypatch)


def configure(out: Stdout, **settings: Any) -> ObskitHandler:
    """Console JSON logs to ``out``, obskit's handler alone on the root (pytest's would force records)."""
    out.install()
    obskit.configure(
        **{"logs_exporter": "console", "traces_exporter": "none", "metrics_exporter": "none", **settings}
    )
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if type(h) in (ObskitHandler, ObskitLoggingHandler)]
    (handler,) = root.handlers
    assert isinstance(handler, ObskitHandler)
    return handler


def asgi_app(status: int = 200) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        logging.getLogger("shop").info("handling %s", scope["path"])
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return obskit.asgi.middleware(app)


def get(app: Any, path: str = "/items/1", request_id: str | None = None) -> None:
    headers = {"x-request-id": request_id} if request_id else {}
    asyncio.run(asgi_get(app, path, headers))


def wait_until(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture
def quiet_shop() -> Iterator[None]:
    """The apps' own logger, off unless a test turns it on."""
    shop = logging.getLogger("shop")
    shop.disabled = True
    yield
    shop.disabled = False


# -- what triggers a write ---------------------------------------------------------------------------


def test_lines_wait_until_a_full_run_then_go_in_one_write(stdout: Stdout, quiet_shop: None) -> None:
    configure(stdout, access_log_flush_interval=30)
    app = asgi_app()
    for n in range(_accessbuffer.BATCH - 1):
        get(app, f"/items/{n}")
    assert stdout.writes == []
    get(app, f"/items/{_accessbuffer.BATCH - 1}")
    assert len(stdout.writes) == 1
    assert [line["path"] for line in stdout.access()] == [f"/items/{n}" for n in range(_accessbuffer.BATCH)]


def test_a_line_is_written_by_the_thread_once_the_interval_has_passed(
    stdout: Stdout, quiet_shop: None
) -> None:
    configure(stdout, access_log_flush_interval=0.05)
    get(asgi_app())
    assert wait_until(lambda: len(stdout.access()) == 1), "the waiting line was never written"
    assert "obskit-access-log" in [t.name for t in threading.enumerate()]
    get(asgi_app(), "/items/2")  # and again after the buffer emptied: the thread wakes once more
    assert wait_until(lambda: len(stdout.access()) == 2)


def test_any_other_line_writes_the_waiting_ones_first(stdout: Stdout) -> None:
    configure(stdout, access_log_flush_interval=30)
    app = asgi_app()
    get(app, "/items/1")
    get(app, "/items/2")
    logging.getLogger("shop").warning("after two requests")
    messages = [line["message"] for line in stdout.lines()]
    # each request's own "handling" line came first and wrote what waited before it
    assert messages == [
        "handling /items/1",
        "GET /items/1 200",
        "handling /items/2",
        "GET /items/2 200",
        "after two requests",
    ]


def test_an_error_line_is_written_at_once_after_the_waiting_ones(stdout: Stdout, quiet_shop: None) -> None:
    configure(stdout, access_log_flush_interval=30)
    get(asgi_app(200), "/ok")
    get(asgi_app(503), "/down")
    assert [(line["path"], line["level"]) for line in stdout.access()] == [
        ("/ok", "INFO"),
        ("/down", "ERROR"),
    ]


@pytest.mark.parametrize("settings", [{"access_log_flush_interval": 0}, {}], ids=["interval-0", "terminal"])
def test_each_line_is_written_at_once_on_a_terminal_or_with_interval_0(
    monkeypatch: pytest.MonkeyPatch, quiet_shop: None, settings: dict[str, Any]
) -> None:
    out = Stdout(monkeypatch, tty=not settings)
    configure(out, **settings)
    get(asgi_app())
    assert len(out.access()) == 1
    assert len(out.writes) == 1


def test_a_stream_that_stops_being_a_terminal_is_noticed(
    monkeypatch: pytest.MonkeyPatch, quiet_shop: None
) -> None:
    terminal, piped = Stdout(monkeypatch, tty=True), Stdout(monkeypatch)
    handler = configure(terminal, access_log_flush_interval=30)
    get(asgi_app())
    assert len(terminal.access()) == 1
    piped.install()
    get(asgi_app())
    assert piped.writes == []
    handler.flush()
    assert len(piped.access()) == 1


def test_console_format_writes_at_once(stdout: Stdout, quiet_shop: None) -> None:
    handler = configure(stdout, log_format="console", access_log_flush_interval=30)
    assert handler.deferred is None
    get(asgi_app())
    assert "GET /items/1 200" in "".join(stdout.writes)


# -- nothing lost, nothing twice, ids and times kept ------------------------------------------------


def test_each_line_keeps_its_own_request_id_trace_id_and_time(stdout: Stdout, quiet_shop: None) -> None:
    configure(stdout, access_log_flush_interval=30, traces_exporter="console")
    app = asgi_app()
    before = time.time()
    for n in range(3):
        get(app, f"/items/{n}", request_id=f"req-{n}")
    ended = time.time()
    time.sleep(0.2)
    obskit.shutdown()  # written now, 200 ms after the last request ended
    lines = stdout.access()
    assert [line["request_id"] for line in lines] == ["req-0", "req-1", "req-2"]
    assert len({line["trace_id"] for line in lines}) == 3
    stamps = [datetime.fromisoformat(line["timestamp"]).timestamp() for line in lines]
    assert stamps == sorted(stamps)
    # each line has the time its request ended (millisecond precision), not the time of writing
    assert before - 0.001 <= stamps[0]
    assert stamps[-1] <= ended + 0.001


def test_shutdown_writes_what_waits(stdout: Stdout, quiet_shop: None) -> None:
    configure(stdout, access_log_flush_interval=30)
    get(asgi_app())
    assert stdout.writes == []
    obskit.shutdown()
    assert len(stdout.access()) == 1


def test_reconfiguring_writes_what_waits_with_the_settings_it_was_logged_under(
    stdout: Stdout, quiet_shop: None
) -> None:
    configure(stdout, access_log_flush_interval=30, service_name="before")
    get(asgi_app())
    configure(stdout, access_log_flush_interval=30, service_name="after")
    get(asgi_app())
    obskit.shutdown()
    assert [line["service"] for line in stdout.access()] == ["before", "after"]


def test_threads_lose_no_line_and_write_none_twice(stdout: Stdout) -> None:
    configure(stdout, access_log_flush_interval=30)

    def wsgi(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    app = obskit.wsgi.middleware(wsgi)

    def client(worker: int) -> None:
        c = Client(app)
        for n in range(150):
            c.get(f"/w{worker}/{n}").close()

    threads = [threading.Thread(target=client, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    obskit.shutdown()
    paths = [line["path"] for line in stdout.access()]
    assert sorted(paths) == sorted(f"/w{w}/{n}" for w in range(6) for n in range(150))
    for w in range(6):  # one client's requests are in its order
        mine = [p for p in paths if p.startswith(f"/w{w}/")]
        assert mine == [f"/w{w}/{n}" for n in range(150)]


def test_a_broken_pipe_drops_and_counts_every_waiting_line(
    monkeypatch: pytest.MonkeyPatch, quiet_shop: None
) -> None:
    class Broken(Stdout):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    handler = configure(Broken(monkeypatch), access_log_flush_interval=30)
    dropped = _state.STATE.store.dropped.labels("logs", "export_failed")
    before = dropped._value.get()
    app = asgi_app()
    for n in range(5):
        get(app, f"/items/{n}")
    handler.flush()
    assert handler.broken
    assert dropped._value.get() == before + 5


SCRIPT = textwrap.dedent(
    """
    import asyncio, os, sys
    import obskit, obskit.asgi

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def get(path):
        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}
        async def send(message):
            pass
        scope = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b"",
                 "client": ("127.0.0.1", 1), "server": ("s", 80), "scheme": "http", "root_path": ""}
        await obskit.asgi.middleware(app)(scope, receive, send)

    obskit.configure(logs_exporter="console", traces_exporter="none", metrics_exporter="none",
                     access_log_flush_interval=30)
    asyncio.run(get("/parent-before-fork"))
    if sys.argv[1] == "fork":
        pid = os.fork()
        if pid == 0:
            asyncio.run(get("/child"))
            obskit.shutdown()
            os._exit(0)
        os.waitpid(pid, 0)
    asyncio.run(get("/parent-at-exit"))
    """
)


@pytest.mark.parametrize(
    "mode",
    ["exit", pytest.param("fork", marks=pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"))],
)
def test_exit_writes_what_waits_and_a_fork_writes_nothing_twice(mode: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60, check=True
    )
    paths = [json.loads(line)["path"] for line in result.stdout.splitlines() if "http.access" in line]
    expected = ["/parent-before-fork", "/child", "/parent-at-exit"] if mode == "fork" else None
    if expected is None:
        assert paths == ["/parent-before-fork", "/parent-at-exit"], result
    else:
        assert sorted(paths) == sorted(expected), result
        assert paths.index("/parent-before-fork") < paths.index("/child"), result


def test_a_server_configuring_logging_afterwards_keeps_the_runs(stdout: Stdout, quiet_shop: None) -> None:
    """uvicorn and gunicorn run dictConfig after the app is built: it closes every handler."""
    import logging.config

    handler = configure(stdout, access_log_flush_interval=2)
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    assert logging.getLogger().handlers == [handler]  # closed, but still the root's handler
    logging.getLogger("shop").disabled = True  # dictConfig enabled every existing logger again
    app = asgi_app()
    get(app, "/items/1")
    get(app, "/items/2")
    assert stdout.writes == []  # still kept for a run
    assert wait_until(lambda: len(stdout.access()) == 2), "the thread did not start again"
    assert len(stdout.writes) == 1


# -- what a kept line holds ---------------------------------------------------------------------------


def test_a_kept_line_holds_only_plain_values_and_the_spans_context(stdout: Stdout, quiet_shop: None) -> None:
    """No object made for the request waits with the line (the garbage collector would track it):
    the request id stands for the fields the middleware bound, the span's context for its ids."""
    from opentelemetry.trace import SpanContext

    handler = configure(stdout, access_log_flush_interval=30, traces_exporter="console")
    get(asgi_app(), request_id="req-1")
    assert handler.deferred is not None
    (kept,) = list(handler.deferred._pending)
    *values, fields, ids = kept
    assert fields == "req-1"
    assert isinstance(ids, SpanContext)
    assert ids.is_valid
    assert all(type(value) in (str, int, float) for value in values)
    obskit.shutdown()
    (line,) = stdout.access()
    assert line["request_id"] == "req-1"
    assert line["trace_id"] == f"{ids.trace_id:032x}"
    assert line["span_id"] == f"{ids.span_id:016x}"


def test_a_line_inside_an_outer_context_keeps_that_context(stdout: Stdout, quiet_shop: None) -> None:
    handler = configure(stdout, access_log_flush_interval=30)
    with obskit.LoggingContext(tenant="t7"):
        get(asgi_app(), request_id="req-2")
    assert handler.deferred is not None
    (kept,) = list(handler.deferred._pending)
    assert dict(kept[-2]) == {"tenant": "t7", "request_id": "req-2"}  # the mapping itself
    assert kept[-1] is None  # no span: no ids
    obskit.shutdown()
    (line,) = stdout.access()
    assert (line["tenant"], line["request_id"]) == ("t7", "req-2")
    assert "trace_id" not in line


def test_a_line_that_cannot_be_rendered_is_lost_alone_and_reported(
    swallow_internal_errors: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Rendering happens on whichever thread writes the run: a failure there costs that one
    line, never the others, and never reaches the request that logged it."""
    written: list[list[str]] = []

    def render(kept: Any) -> str:  # kept lines are tuples (a str is a line already rendered)
        if kept == ("bad",):
            raise ValueError("unrenderable")
        return f"line {kept[0]}"

    lines = _accessbuffer.DeferredLines(threading.RLock(), 30.0, written.append, render)
    for kept in ((1,), ("bad",), (2,)):
        lines.add(kept)
    with caplog.at_level(logging.WARNING, logger="obskit"):
        lines.write()
    lines.close()
    assert written == [["line 1", "line 2"]]
    assert any("access log rendering" in record.getMessage() for record in caplog.records)
