"""The access line written straight through obskit's handler equals the LogRecord path's line.

pytest's logging plugin puts its own handlers on the root logger during every test, which alone
would send each access record down the LogRecord path; the tests that want the direct path leave
obskit's handler alone on the root (the autouse fixture in conftest.py restores the handlers).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from werkzeug.test import Client

import obskit
import obskit.asgi
import obskit.wsgi
from asgicall import asgi_get
from logcapture import Lines, strict_loads
from obskit import LoggingContext
from obskit._core import state as _state
from obskit._export.logexport import ObskitLoggingHandler
from obskit._recording.loghandler import ObskitHandler
from obskit._web import http as _http

TIMESTAMP = re.compile(r'"timestamp":"[^"]*"')
ACCESS = logging.getLogger("http.access")


class Boom(Exception):
    """Raised by the failing apps."""


class Ids(IdGenerator):
    """The same trace and span ids for every run, so two requests' lines can be compared whole."""

    def generate_span_id(self) -> int:
        return 0x00F067AA0BA902B7

    def generate_trace_id(self) -> int:
        return 0x4BF92F3577B34DA6A3CE929D0E0E4736


# -- the apps and how requests are driven ----------------------------------------------------------


def asgi_app(status: int = 200, fail: bool = False) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if fail:
            raise Boom("asgi failure")
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return obskit.asgi.middleware(app)


def wsgi_app(status: int = 200, fail: bool = False) -> Any:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        if fail:
            raise Boom("wsgi failure")
        start_response(f"{status} X", [("Content-Type", "text/plain")])
        return [b"ok"]

    return obskit.wsgi.middleware(app)


HEADERS = {"user-agent": "direct-test/1.0", "x-request-id": "req-1", "x-forwarded-for": "10.0.0.9"}


def asgi_request(app: Any, path: str = "/items/1?q=x") -> None:
    asyncio.run(asgi_get(app, path, HEADERS))


def wsgi_request(app: Any, path: str = "/items/1?q=x") -> None:
    response = Client(app).get(path, headers=HEADERS, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    response.get_data()
    response.close()


PROTOCOLS: dict[str, tuple[Callable[..., Any], Callable[..., None]]] = {
    "asgi": (asgi_app, asgi_request),
    "wsgi": (wsgi_app, wsgi_request),
}


# -- fixtures and helpers ------------------------------------------------------------------------


class Paths:
    """Counts the access records made (the LogRecord path); the direct path makes none."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.records = 0
        make = ACCESS.makeRecord

        def counting(*args: Any, **kwargs: Any) -> logging.LogRecord:
            self.records += 1
            return make(*args, **kwargs)

        monkeypatch.setattr(ACCESS, "makeRecord", counting)


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch) -> Paths:
    # A fixed clock for the duration: two requests then give the same duration_ms.
    monkeypatch.setattr(_http, "time", SimpleNamespace(perf_counter=lambda: 5.0, time=time.time))
    return Paths(monkeypatch)


@pytest.fixture
def logger_state() -> Iterator[None]:
    """Undo what the tests do to the http and http.access loggers and to logging.disable."""
    loggers = [logging.getLogger("http"), ACCESS]
    saved = [(lg.handlers[:], lg.filters[:], lg.propagate, lg.disabled, lg.level) for lg in loggers]
    yield
    logging.disable(logging.NOTSET)
    for lg, (handlers, filters, propagate, disabled, level) in zip(loggers, saved, strict=True):
        lg.handlers[:], lg.filters[:] = handlers, filters
        lg.propagate, lg.disabled = propagate, disabled
        lg.setLevel(level)


def configure(spans: bool = False, **settings: Any) -> None:
    """configure() with console JSON logs, then leave obskit's handlers alone on the root."""
    options: dict[str, Any] = {
        "logs_exporter": "console",
        "log_format": "json",
        "traces_exporter": "none",
        "metrics_exporter": "none",
        **settings,
    }
    obskit.configure(**options)
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if type(h) in (ObskitHandler, ObskitLoggingHandler)]
    if spans:  # an SDK tracer of our own: ids that repeat, nothing written to stdout
        provider = TracerProvider(id_generator=Ids(), shutdown_on_exit=False)
        _state.set_state(dataclasses.replace(_state.STATE, tracer=provider.get_tracer("obskit")))


def obskit_handler() -> ObskitHandler:
    (handler,) = [h for h in logging.getLogger().handlers if type(h) is ObskitHandler]
    return handler


def access_lines(capsys: pytest.CaptureFixture[str], flush: bool = True) -> list[str]:
    """The access lines on stdout since the last read; ``flush`` first writes those kept back."""
    if flush:
        for handler in logging.getLogger().handlers:
            handler.flush()
    out = capsys.readouterr().out
    # split("\n"), not splitlines(): a JSON line may hold U+2028, which splitlines() splits on
    return [line for line in out.split("\n") if "http.access" in line]


def masked(line: str) -> str:
    return TIMESTAMP.sub('"timestamp":"-"', line)


def force_record_path(record: logging.LogRecord) -> bool:
    """A filter that lets everything through: its mere presence means the LogRecord path."""
    return True


def direct_and_record_lines(
    capsys: pytest.CaptureFixture[str],
    paths: Paths,
    protocol: str,
    status: int = 200,
    direct: bool = True,
    kept: bool = False,
) -> tuple[str, str]:
    """The same request's access line, once through the direct path and once through a LogRecord.

    ``kept``: the direct line is expected to wait for the next run (written by the flush).
    """
    make_app, request = PROTOCOLS[protocol]
    app = make_app(status)
    capsys.readouterr()
    request(app)
    unflushed = access_lines(capsys, flush=False)
    assert len(unflushed) == (0 if kept else 1)
    first = unflushed + access_lines(capsys)
    made = 0 if direct else 1  # direct=False: the formatter itself declines the direct line
    assert paths.records == made
    ACCESS.addFilter(force_record_path)
    try:
        request(app)
    finally:
        ACCESS.removeFilter(force_record_path)
    recorded = access_lines(capsys)
    assert paths.records == made + 1
    assert len(first) == len(recorded) == 1
    return first[0], recorded[0]


# -- (1) the direct line is the LogRecord path's line ---------------------------------------------

VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "service-fields": {
        "service_name": "shop",
        "service_version": "1.2.3",
        "environment": "prod",
        "resource_attributes": {"team": "core", "region": "eu"},
    },
    "redacted-context-keys": {"redact_keys": ["api_token", "password"]},
    # the request id's own key redacted: both paths write [REDACTED] for it
    "redacted-request-id": {"redact_keys": ["request_id"]},
    # a sensitive access field: JsonFormatter's direct line declines, the LogRecord path redacts
    "redacted-access-fields": {"redact_keys": ["user_agent", "api_token", "client"]},
}
CONTEXTS: dict[str, dict[str, Any]] = {
    "no-context": {},
    "string-context": {"user_id": "u1", "tenant": "t7"},
    # a non-string context value: JsonFormatter's direct line declines
    "int-context": {"user_id": "u1", "tenant": 7},
    "sensitive-context": {"api_token": "secret", "password": "hunter2", "user_id": "u1"},
    "unicode-context": {"note": 'quote " \\ ünï 😀 \u2028'},
}


#: access_log_flush_interval: each line written at once, or kept and written in a run.
WRITES = {"at-once": 0.0, "in-runs": 30.0}


@pytest.mark.parametrize("interval", list(WRITES.values()), ids=list(WRITES))
@pytest.mark.parametrize("context", list(CONTEXTS.values()), ids=list(CONTEXTS))
@pytest.mark.parametrize("settings", list(VARIANTS.values()), ids=list(VARIANTS))
@pytest.mark.parametrize("spans", [False, True], ids=["spans-off", "spans-on"])
@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_direct_line_equals_the_logrecord_line(
    capsys: pytest.CaptureFixture[str],
    paths: Paths,
    logger_state: None,
    protocol: str,
    spans: bool,
    settings: dict[str, Any],
    context: dict[str, Any],
    interval: float,
) -> None:
    configure(spans=spans, access_log_flush_interval=interval, **settings)
    assert _http._direct_handler(logging.INFO) is obskit_handler()
    declines = settings is VARIANTS["redacted-access-fields"] or context is CONTEXTS["int-context"]
    with LoggingContext(**context):
        direct, recorded = direct_and_record_lines(
            # kept either way: a line the direct rendering declines is rendered, in its own
            # contexts, through the general path when its run is written (render_kept_line)
            capsys,
            paths,
            protocol,
            direct=not declines,
            kept=interval > 0,
        )
    assert masked(direct) == masked(recorded)
    parsed = strict_loads(direct)
    assert parsed["logger"] == "http.access"
    assert parsed["level"] == "INFO"
    assert parsed["message"] == "GET /items/1 200"
    redacts_request_id = settings is VARIANTS["redacted-request-id"]
    assert parsed["request_id"] == ("[REDACTED]" if redacts_request_id else "req-1")
    assert parsed["duration_ms"] == 0.0
    assert ("trace_id" in parsed) is spans
    if settings is VARIANTS["redacted-access-fields"]:
        assert parsed["user_agent"] != "direct-test/1.0"
    if settings in (VARIANTS["redacted-context-keys"], VARIANTS["redacted-access-fields"]):
        assert "secret" not in direct
        assert "hunter2" not in direct
    if settings is VARIANTS["service-fields"]:
        assert parsed["service_version"] == "1.2.3"


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_5xx_without_exception_is_written_direct_as_the_logrecord_line(
    capsys: pytest.CaptureFixture[str], paths: Paths, logger_state: None, protocol: str
) -> None:
    configure(spans=True)
    direct, recorded = direct_and_record_lines(capsys, paths, protocol, status=503)
    assert masked(direct) == masked(recorded)
    assert strict_loads(direct)["level"] == "ERROR"


#: (request path, settings, the line's message and path): a credential in the path; a path
#: ending where a key's value begins, so that the status in the message becomes the value; the
#: user's own pattern, which may match the method and status too.
SCRUBBED_PATHS = {
    "credential": ("/reset/token=abc123/x", {}, "GET /reset/token=[REDACTED] 200", "/reset/token=[REDACTED]"),
    "open-end": ("/token:", {}, "GET /token: [REDACTED]", "/token:"),
    "user-pattern": ("/items/1", {"redact_patterns": [r"GET /items"]}, "[REDACTED]/1 200", "/items/1"),
}


@pytest.mark.parametrize("case", list(SCRUBBED_PATHS.values()), ids=list(SCRUBBED_PATHS))
@pytest.mark.parametrize("interval", list(WRITES.values()), ids=list(WRITES))
@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_credentials_in_the_path_and_user_agent_are_scrubbed_alike_on_both_paths(
    capsys: pytest.CaptureFixture[str],
    paths: Paths,
    logger_state: None,
    monkeypatch: pytest.MonkeyPatch,
    protocol: str,
    interval: float,
    case: tuple[str, dict[str, Any], str, str],
) -> None:
    path, settings, message, logged_path = case
    make_app, request = PROTOCOLS[protocol]
    monkeypatch.setitem(PROTOCOLS, protocol, (make_app, partial(request, path=path)))
    monkeypatch.setitem(HEADERS, "user-agent", "probe Authorization: Bearer eyJsecretvalue")
    configure(access_log_flush_interval=interval, **settings)
    direct, recorded = direct_and_record_lines(capsys, paths, protocol, kept=interval > 0)
    assert masked(direct) == masked(recorded)
    parsed = strict_loads(direct)
    assert parsed["message"] == message
    assert parsed["path"] == logged_path
    assert parsed["user_agent"] == "probe Authorization: [REDACTED]"
    assert "abc123" not in direct
    assert "eyJsecretvalue" not in direct


# -- (2) each condition falls back to the LogRecord path -------------------------------------------


def user_handler_on_root() -> list[Lines]:
    handler = Lines()
    logging.getLogger().addHandler(handler)
    return [handler]


def filter_on(name: str) -> Callable[[], list[Lines]]:
    def setup() -> list[Lines]:
        logging.getLogger(name).addFilter(force_record_path)
        return []

    return setup


def handler_on_http() -> list[Lines]:
    handler = Lines()
    logging.getLogger("http").addHandler(handler)
    return [handler]


def handler_on_access_without_propagation() -> list[Lines]:
    handler = Lines()
    ACCESS.addHandler(handler)
    ACCESS.propagate = False
    return [handler]


def no_propagation() -> list[Lines]:
    ACCESS.propagate = False
    return []


def http_without_propagation() -> list[Lines]:
    logging.getLogger("http").propagate = False
    return []


def handler_level_above_info() -> list[Lines]:
    obskit_handler().setLevel(logging.WARNING)
    return []


def already_broken() -> list[Lines]:
    obskit_handler().broken = True
    return []


def access_level_above_info() -> list[Lines]:
    ACCESS.setLevel(logging.WARNING)
    return []


def disabled_logger() -> list[Lines]:
    ACCESS.disabled = True
    return []


def logging_disabled() -> list[Lines]:
    logging.disable(logging.INFO)
    return []


FALLBACKS: dict[str, tuple[Callable[[], list[Lines]], int, int]] = {
    # name: (setup, access lines on stdout, LogRecords made); with 0 records made the logger is
    # not enabled and neither path runs
    "user-handler-on-root": (user_handler_on_root, 1, 1),
    "filter-on-http.access": (filter_on("http.access"), 1, 1),
    "filter-on-http": (filter_on("http"), 1, 1),
    "handler-on-http": (handler_on_http, 1, 1),
    "handler-on-http.access-no-propagation": (handler_on_access_without_propagation, 0, 1),
    "http.access-no-propagation": (no_propagation, 0, 1),
    "http-no-propagation": (http_without_propagation, 0, 1),
    "handler-level-above-info": (handler_level_above_info, 0, 1),
    "handler-broken": (already_broken, 0, 1),
    "access-logger-level-above-info": (access_level_above_info, 0, 0),
    "access-logger-disabled": (disabled_logger, 0, 0),
    "logging-disable-info": (logging_disabled, 0, 0),
}


@pytest.mark.parametrize("fallback", list(FALLBACKS.values()), ids=list(FALLBACKS))
@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_each_condition_takes_the_logrecord_path(
    capsys: pytest.CaptureFixture[str],
    paths: Paths,
    logger_state: None,
    protocol: str,
    fallback: tuple[Callable[[], list[Lines]], int, int],
) -> None:
    setup, lines, records = fallback
    configure()
    make_app, request = PROTOCOLS[protocol]
    app = make_app()
    request(app)  # direct, for the line to compare with
    (expected,) = access_lines(capsys)
    assert paths.records == 0
    users = setup()
    if records:
        assert _http._direct_handler(logging.INFO) is None
    else:
        assert not ACCESS.isEnabledFor(logging.INFO)
    request(app)
    written = access_lines(capsys)
    assert paths.records == records
    assert [masked(line) for line in written] == [masked(expected)] * lines
    for user in users:
        assert [r.name for r in user.records] == ["http.access"]
        assert user.last()["message"] == "GET /items/1 200"


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_caplog_sees_the_access_record(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str], paths: Paths, protocol: str
) -> None:
    obskit.configure(
        logs_exporter="console", log_format="json", traces_exporter="none", metrics_exporter="none"
    )
    assert _http._direct_handler(logging.INFO) is None  # pytest's handlers are on the root
    make_app, request = PROTOCOLS[protocol]
    with caplog.at_level(logging.INFO, logger="http.access"):
        request(make_app())
    assert [r.getMessage() for r in caplog.records if r.name == "http.access"] == ["GET /items/1 200"]
    assert len(access_lines(capsys)) == 1
    assert paths.records == 1


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_console_format_takes_the_logrecord_path(
    capsys: pytest.CaptureFixture[str], paths: Paths, protocol: str
) -> None:
    configure(log_format="console")
    assert _http._direct_handler(logging.INFO) is None
    make_app, request = PROTOCOLS[protocol]
    request(make_app())
    (line,) = access_lines(capsys)
    assert "GET /items/1 200" in line
    assert paths.records == 1


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_no_console_handler_writes_nothing_to_stdout(
    capsys: pytest.CaptureFixture[str], paths: Paths, protocol: str
) -> None:
    configure(logs_exporter="none")
    assert _http._direct_handler(logging.INFO) is None
    make_app, request = PROTOCOLS[protocol]
    request(make_app())
    assert access_lines(capsys) == []


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_a_second_exporting_handler_gets_the_record_too(
    capsys: pytest.CaptureFixture[str], paths: Paths, protocol: str
) -> None:
    configure()
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    second = ObskitLoggingHandler(logging.INFO, provider, _state.STATE.redactor)
    logging.getLogger().addHandler(second)
    try:
        assert _http._direct_handler(logging.INFO) is None
        make_app, request = PROTOCOLS[protocol]
        request(make_app())
    finally:
        logging.getLogger().removeHandler(second)
        provider.shutdown()
    assert len(access_lines(capsys)) == 1
    exported = [d.log_record.body for d in exporter.get_finished_logs()]
    assert exported == ["GET /items/1 200"]
    assert paths.records == 1


class BrokenPipe:
    """A stdout whose reader went away."""

    def __init__(self) -> None:
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("interval", list(WRITES.values()), ids=list(WRITES))
@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_broken_pipe_on_the_direct_path_stops_writing_quietly(
    monkeypatch: pytest.MonkeyPatch, paths: Paths, protocol: str, interval: float
) -> None:
    configure(access_log_flush_interval=interval)
    handler = obskit_handler()
    make_app, request = PROTOCOLS[protocol]
    app = make_app()
    pipe = BrokenPipe()
    monkeypatch.setattr(sys, "stdout", pipe)
    request(app)  # the direct write meets the broken pipe: no error reaches the request
    if interval:
        assert pipe.writes == 0  # kept for the run, whose write meets it
        handler.flush()
    assert handler.broken
    assert pipe.writes == 1
    before = _state.STATE.store.dropped.labels("logs", "export_failed")._value.get()
    request(app)  # now the LogRecord path, which drops the line and counts it
    monkeypatch.undo()
    assert pipe.writes == 1
    assert paths.records >= 1
    assert _state.STATE.store.dropped.labels("logs", "export_failed")._value.get() == before + 1


# -- (3) an exception takes the LogRecord path, with its stack, once ------------------------------


@pytest.mark.parametrize("spans", [False, True], ids=["spans-off", "spans-on"])
@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_exception_request_takes_the_logrecord_path_with_the_stack_once(
    capsys: pytest.CaptureFixture[str], paths: Paths, protocol: str, spans: bool
) -> None:
    configure(spans=spans)
    assert _http._direct_handler(logging.ERROR) is obskit_handler()
    make_app, request = PROTOCOLS[protocol]
    with pytest.raises(Boom):
        request(make_app(fail=True))
    (line,) = access_lines(capsys)
    parsed = strict_loads(line)
    assert paths.records == 1
    assert parsed["level"] == "ERROR"
    assert parsed["status"] == 500
    assert parsed["exception"]["type"].endswith("Boom")
    assert f"Boom: {protocol} failure" in parsed["exception"]["stack"]
    assert line.count('"exception"') == 1
