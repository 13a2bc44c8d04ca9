"""Spans cleaned once before export: redaction of keys and free text, URLs, values no exporter takes."""

from __future__ import annotations

import io
import os
import signal
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import obskit
from obskit import trace_operation
from obskit._core.redact import REDACTED, Redactor
from obskit._export.console import format_span
from obskit._export.redacting import RedactingSpanExporter, SpanCleaner
from obskit.testing import Capture, capture

SECRET = "hunter2-s3cr3t"


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    __repr__ = __str__


def _spans_through(exporters: Sequence[SpanExporter], *, record: Any) -> None:
    provider = TracerProvider()
    for exporter in exporters:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    record(provider.get_tracer("t"))
    provider.shutdown()


@pytest.fixture
def text_capture() -> Iterator[Capture]:
    """A capture under a configuration that scrubs free text (the default) with a console exporter."""
    obskit.configure(service_name="svc", traces_exporter="none", metrics_exporter="none")
    with capture() as cap:
        yield cap


def _everything(span: ReadableSpan) -> str:
    """Every string a span carries, as an exporter would read them."""
    parts = [span.name, repr(dict(span.attributes or {})), str(span.status.description)]
    for event in span.events:
        parts += [event.name, repr(dict(event.attributes or {}))]
    for link in span.links:
        parts.append(repr(dict(link.attributes or {})))
    return "\n".join(parts)


# -- free text ----------------------------------------------------------------------------------------


def test_exception_message_stacktrace_and_status_description_lose_the_credential(
    text_capture: Capture,
) -> None:
    @trace_operation("login")
    def login() -> None:
        raise ValueError(f"connect failed: postgres://admin:{SECRET}@db/app password={SECRET}")

    with pytest.raises(ValueError, match=SECRET):  # the exception itself is untouched
        login()
    span = text_capture.spans("login")[0]
    (event,) = span.events
    assert event.name == "exception"
    assert SECRET not in (event.attributes or {})["exception.message"]
    assert SECRET not in (event.attributes or {})["exception.stacktrace"]
    assert f"password={REDACTED}" in (event.attributes or {})["exception.message"]
    assert span.status.description == (
        f"ValueError: connect failed: postgres://{REDACTED}@db/app password={REDACTED}"
    )
    assert SECRET not in _everything(span)


def test_attribute_values_events_and_links_lose_credentials_but_keep_the_rest(text_capture: Capture) -> None:
    tracer = obskit._core.state.STATE.tracer
    assert tracer is not None
    other = trace.SpanContext(1, 2, is_remote=True)
    with tracer.start_as_current_span(
        "call", links=[trace.Link(other, {"note": f"Bearer {SECRET}"})]
    ) as span:
        span.set_attribute("db.connection", f"Server=db;Password={SECRET};Database=app")
        span.set_attribute("header", f"Authorization: Bearer {SECRET}")
        span.set_attribute("tags", ["plain", f"token={SECRET}"])
        span.set_attribute("route", "/users/{id}")
        span.add_event("retry", {"detail": f'{{"api_key": "{SECRET}"}}', "attempt": 2})
    (span,) = text_capture.spans("call")
    attributes = dict(span.attributes or {})
    assert attributes["db.connection"] == f"Server=db;Password={REDACTED};Database=app"
    assert attributes["header"] == f"Authorization: {REDACTED}"
    assert attributes["tags"] == ("plain", f"token={REDACTED}")
    assert attributes["route"] == "/users/{id}"
    assert dict(span.events[0].attributes or {}) == {"detail": f'{{"api_key": "{REDACTED}"}}', "attempt": 2}
    assert dict(span.links[0].attributes or {}) == {"note": f"Bearer {REDACTED}"}
    assert SECRET not in _everything(span)


def test_free_text_is_kept_when_redact_text_is_off_but_keys_and_urls_are_still_redacted() -> None:
    obskit.configure(service_name="svc", traces_exporter="none", metrics_exporter="none", redact_text=False)
    with capture() as cap, trace_operation("plain") as span:
        span.set_attribute("note", f"password={SECRET}")
        span.set_attribute("password", SECRET)
        span.set_attribute("url.full", f"https://api.example/v1?api_key={SECRET}&page=2")
    attributes = dict(cap.spans("plain")[0].attributes or {})
    assert attributes == {
        "note": f"password={SECRET}",
        "password": REDACTED,
        "url.full": f"https://api.example/v1?api_key={REDACTED}&page=2",
    }


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "url.full",
            f"https://u:{SECRET}@h/p?token={SECRET}&x=1#f",
            f"https://{REDACTED}@h/p?token={REDACTED}&x=1#f",
        ),
        ("http.url", f"http://h/p?sig={SECRET}", f"http://h/p?sig={REDACTED}"),
        ("http.target", f"/p?client_secret={SECRET}&q=a", f"/p?client_secret={REDACTED}&q=a"),
        ("url.query", f"api_key={SECRET}&page=2", f"api_key={REDACTED}&page=2"),
        ("url.full", "https://h/p?page=2&size=10", "https://h/p?page=2&size=10"),
    ],
)
def test_url_attributes_lose_userinfo_and_sensitive_query_values(key: str, value: str, expected: str) -> None:
    cleaner = SpanCleaner(Redactor(text=False))
    assert cleaner.attributes({key: value}) == {key: expected}


# -- once per span, cheap when clean -----------------------------------------------------------------


def test_a_span_is_cleaned_once_however_many_exporters_share_the_cleaner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cleaner = SpanCleaner(Redactor())
    calls: list[str] = []
    original = cleaner.span
    monkeypatch.setattr(SpanCleaner, "span", lambda self, span: (calls.append(span.name), original(span)))
    first, second = InMemorySpanExporter(), InMemorySpanExporter()

    def record(tracer: Any) -> None:
        with tracer.start_as_current_span("one") as span:
            span.set_attribute("note", f"password={SECRET}")

    _spans_through(
        [RedactingSpanExporter(first, cleaner), RedactingSpanExporter(second, cleaner)], record=record
    )
    assert calls == ["one"]
    for exporter in (first, second):
        assert dict(exporter.get_finished_spans()[0].attributes or {}) == {"note": f"password={REDACTED}"}


def test_a_clean_span_keeps_its_attribute_objects() -> None:
    exporter = InMemorySpanExporter()

    def record(tracer: Any) -> None:
        with tracer.start_as_current_span("clean", attributes={"route": "/x", "n": 3}):
            pass

    provider_spans: list[ReadableSpan] = []

    class Keep(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            provider_spans.extend(spans)
            return SpanExportResult.SUCCESS

    keep = Keep()
    _spans_through([keep], record=record)
    before = provider_spans[0]._attributes
    RedactingSpanExporter(exporter, Redactor()).export(provider_spans)
    assert exporter.get_finished_spans()[0]._attributes is before


def test_scrubbing_a_cleaned_text_again_changes_nothing() -> None:
    redactor = Redactor()
    once = redactor.scrub(f"Authorization: Bearer {SECRET} password={SECRET} https://u:p@h/?token={SECRET}")
    assert SECRET not in once
    assert redactor.scrub(once) == once
    assert (
        redactor.url(redactor.url(f"https://u:p@h/?token={SECRET}"))
        == f"https://{REDACTED}@h/?token={REDACTED}"
    )


# -- one bad value loses only itself -------------------------------------------------------------------

BAD_VALUES = [
    ("lone surrogate", "caf\udce9", "caf\\udce9"),
    ("int above int64", 2**70, str(2**70)),
    ("int below int64", -(2**63) - 1, str(-(2**63) - 1)),
    ("surrogate in a list", ["ok", "x\ud800"], ("ok", "x\\ud800")),
]


@pytest.mark.parametrize(("case", "value", "safe"), BAD_VALUES, ids=[c[0] for c in BAD_VALUES])
def test_a_bad_attribute_value_becomes_its_safe_form_and_the_span_encodes(
    text_capture: Capture, case: str, value: Any, safe: Any
) -> None:
    with trace_operation("bad") as span:
        span.set_attribute("bad", value)
        span.set_attribute("good", "kept")
        span.add_event("evt", {"bad": value})
    (exported,) = text_capture.spans("bad")
    assert dict(exported.attributes or {}) == {"bad": safe, "good": "kept"}
    assert dict(exported.events[0].attributes or {}) == {"bad": safe}
    encode_spans([exported]).SerializeToString()  # what the OTLP exporters send: no error
    format_span(exported).encode("utf-8")  # what the console exporter writes


def test_an_exception_whose_message_has_a_lone_surrogate_still_exports(text_capture: Capture) -> None:
    @trace_operation("surrogate-error")
    def fail() -> None:
        raise ValueError("bad byte \udcff here")

    with pytest.raises(ValueError, match="bad byte"):
        fail()
    (exported,) = text_capture.spans("surrogate-error")
    assert exported.status.description == "ValueError: bad byte \\udcff here"
    assert (exported.events[0].attributes or {})["exception.message"] == "bad byte \\udcff here"
    encode_spans([exported]).SerializeToString()


def test_an_unprintable_object_loses_only_itself_where_obskit_takes_the_value(text_capture: Capture) -> None:
    @trace_operation("objects", attributes={"obj": _Unprintable(), "ok": 1}, record_args=True)
    def f(arg: Any) -> None:
        pass

    f(_Unprintable())
    attributes = dict(text_capture.spans("objects")[0].attributes or {})
    assert attributes == {
        "obj": "[unrenderable _Unprintable]",
        "ok": 1,
        "code.args.arg": "[unrenderable _Unprintable]",
    }


def test_a_surrogate_in_a_span_name_or_key_is_escaped() -> None:
    cleaner = SpanCleaner(Redactor())
    assert cleaner.text("GET /caf\udce9") == "GET /caf\\udce9"
    assert cleaner.attributes({"k\udce9": 1}) == {"k\\udce9": 1}
    assert cleaner.attributes({"password\udce9": SECRET}) == {"password\\udce9": REDACTED}


def test_the_console_line_is_valid_utf8_and_redacted() -> None:
    out = io.StringIO()
    from obskit._export.console import span_exporter

    def record(tracer: Any) -> None:
        with tracer.start_as_current_span("caf\udce9") as span:
            span.set_attribute("note", f"password={SECRET}\nsecond line")
            span.set_attribute("bad", "x\ud800")

    _spans_through([RedactingSpanExporter(span_exporter(out=out), Redactor())], record=record)
    line = out.getvalue()
    line.encode("utf-8")
    assert SECRET not in line
    assert line.count("\n") == 1  # one line per span, whatever the values hold
    assert "caf\\udce9" in line


def test_cleaning_keeps_the_counts_of_dropped_attributes_and_events() -> None:
    from opentelemetry.sdk.trace import SpanLimits

    provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=2, max_events=1))
    kept: list[ReadableSpan] = []

    class Keep(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            kept.extend(spans)
            return SpanExportResult.SUCCESS

    provider.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(Keep(), Redactor())))
    with provider.get_tracer("t").start_as_current_span("limited") as span:
        for i in range(3):
            span.set_attribute(f"note{i}", f"password={SECRET}")
            span.add_event(f"e{i}", {"note": f"token={SECRET}"})
    provider.shutdown()
    (exported,) = kept
    assert (exported.dropped_attributes, exported.dropped_events) == (1, 2)
    assert SECRET not in _everything(exported)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_while_a_batch_was_being_cleaned_can_clean() -> None:
    from obskit._export import redacting as _redacting

    cleaner = SpanCleaner(Redactor())
    exporter = InMemorySpanExporter()
    with _redacting._LOCK:  # an export thread cleaning at the moment of the fork
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            signal.alarm(10)  # a deadlock ends the child instead of hanging the suite
            _spans_through(
                [RedactingSpanExporter(exporter, cleaner)],
                record=lambda tracer: tracer.start_span("child", attributes={"n": f"token={SECRET}"}).end(),
            )
            ok = dict(exporter.get_finished_spans()[0].attributes or {}) == {"n": f"token={REDACTED}"}
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


class _UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


def test_an_exception_whose_str_raises_keeps_its_event_and_error_status(text_capture: Capture) -> None:
    error = _UnprintableError()

    @trace_operation("unprintable-error")
    def fail() -> None:
        raise error

    with pytest.raises(_UnprintableError) as raised:
        fail()
    assert raised.value is error
    (span,) = text_capture.spans("unprintable-error")
    assert span.status.description == "_UnprintableError"
    (event,) = span.events
    attributes = dict(event.attributes or {})
    assert attributes["exception.message"] == "[unrenderable _UnprintableError]"
    assert attributes["exception.type"].endswith("_UnprintableError")
    assert "<exception str() failed>" in attributes["exception.stacktrace"]


def test_a_server_span_records_an_exception_whose_str_raises() -> None:
    from obskit._web.serverspan import ServerSpan, start_server_span

    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = start_server_span(provider.get_tracer("t"), "GET /x", None, {"http.request.method": "GET"})
    assert isinstance(span, ServerSpan)
    with pytest.raises(_UnprintableError), span:
        raise _UnprintableError
    (exported,) = exporter.get_finished_spans()
    assert exported.status.description == "_UnprintableError"
    assert (
        dict(exported.events[0].attributes or {})["exception.message"] == "[unrenderable _UnprintableError]"
    )


def test_nested_and_unusual_values_are_cleaned_where_they_sit() -> None:
    cleaner = SpanCleaner(Redactor())
    nested = {
        "db": {"password": SECRET, "host": "db", "note": f"token={SECRET}"},
        "raw": b"\xff",
        "none": None,
    }
    assert cleaner.attributes(nested) == {
        "db": {"password": REDACTED, "host": "db", "note": f"token={REDACTED}"},
        "raw": b"\xff",
        "none": None,
    }
    assert cleaner.attributes({"obj": _Unprintable(), "x\udce9": (True, 1.5, 2**64)}) == {
        "obj": "[unrenderable _Unprintable]",
        "x\\udce9": (True, 1.5, str(2**64)),
    }
    deep: dict[str, Any] = {"leaf": "v"}
    for _ in range(40):
        deep = {"level": deep}
    cleaned: Any = cleaner.attributes(deep)
    levels = 0
    while isinstance(cleaned, dict):
        cleaned, levels = cleaned["level"], levels + 1
    assert (cleaned, levels) == (REDACTED, 34)  # past 32 levels the rest is hidden, not walked


def test_url_and_text_caches_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from obskit._export import redacting as _redacting

    monkeypatch.setattr(_redacting, "_CACHE_LIMIT", 2)
    cleaner = SpanCleaner(Redactor())
    for i in range(5):
        assert cleaner.attributes({"url.full": f"http://h/{i}?token=t"}) == {
            "url.full": f"http://h/{i}?token={REDACTED}"
        }
        assert cleaner.attributes({"url.full": f"http://h/{i}?token=t"}) == {
            "url.full": f"http://h/{i}?token={REDACTED}"
        }
        cleaner.text(f"text {i}")
    assert len(cleaner._urls) <= 2
    assert len(cleaner._texts) <= 2


def test_events_and_links_given_as_tuples_stay_tuples() -> None:
    from opentelemetry.sdk.trace import Event

    span = ReadableSpan(
        name="plain",
        events=(Event("e", {"note": f"password={SECRET}"}),),
        links=(trace.Link(trace.SpanContext(1, 2, is_remote=True), {"note": f"token={SECRET}"}),),
    )
    SpanCleaner(Redactor()).clean([span])
    assert isinstance(span._events, tuple)
    assert isinstance(span._links, tuple)
    assert SECRET not in _everything(span)


def test_the_wrapper_hands_flush_and_shutdown_on() -> None:
    inner = InMemorySpanExporter()
    wrapper = RedactingSpanExporter(inner, Redactor())
    assert wrapper.force_flush(10)
    wrapper.shutdown()
    assert inner._stopped


def test_a_console_line_shows_the_error_status_with_its_cleaned_description() -> None:
    out = io.StringIO()
    from obskit._export.console import span_exporter

    def record(tracer: Any) -> None:
        with tracer.start_as_current_span("fails") as span:
            span.set_status(trace.Status(trace.StatusCode.ERROR, f"login failed\npassword={SECRET}"))

    _spans_through([RedactingSpanExporter(span_exporter(out=out), Redactor())], record=record)
    assert f"ERROR(login failed\\npassword={REDACTED})" in out.getvalue()


# -- a span that needs nothing is passed over; everything else is still cleaned ------------------------


def _clean_spans(tracer: Any, count: int = 3) -> None:
    """Spans of the usual shape with nothing to hide: their attribute pairs are remembered."""
    for _ in range(count):
        with tracer.start_as_current_span(
            "GET /items/{id}", attributes={"route": "/items/{id}", "n": 3}
        ) as span:
            span.set_attribute("note", "plain")


def test_a_span_that_needs_nothing_is_passed_over_without_a_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    cleaner = SpanCleaner(Redactor())
    walked: list[str] = []
    original = SpanCleaner.span
    monkeypatch.setattr(
        SpanCleaner, "span", lambda self, span: (walked.append(span.name), original(self, span))
    )
    exporter = InMemorySpanExporter()
    _spans_through([RedactingSpanExporter(exporter, cleaner)], record=lambda tracer: _clean_spans(tracer, 5))
    assert walked == ["GET /items/{id}"]  # the first: its name and values were new
    spans = exporter.get_finished_spans()
    assert [dict(span.attributes or {}) for span in spans] == [
        {"route": "/items/{id}", "n": 3, "note": "plain"}
    ] * 5
    assert not any(hasattr(span, "_obskit_clean") for span in spans[1:])


def test_the_quick_check_finds_the_private_fields_it_reads() -> None:
    from obskit._export import redacting as _redacting

    assert _redacting._QUICK  # else every span takes the full walk (slower, as safe)


def _secret_on_start(tracer: Any) -> None:
    with tracer.start_as_current_span("GET /items/{id}", attributes={"route": "/items/{id}", "n": 3}) as span:
        span.set_attribute("note", f"password={SECRET}")


def _secret_at_start(tracer: Any) -> None:
    attributes = {"route": "/items/{id}", "n": 3, "note": f"token={SECRET}"}
    with tracer.start_as_current_span("GET /items/{id}", attributes=attributes):
        pass


def _secret_under_a_sensitive_key(tracer: Any) -> None:
    with tracer.start_as_current_span("GET /items/{id}", attributes={"route": "/items/{id}", "n": 3}) as span:
        span.set_attribute("password", "plain")  # "plain" was seen clean under "note": not here


def _secret_in_a_url(tracer: Any) -> None:
    with tracer.start_as_current_span("GET /items/{id}", attributes={"route": "/items/{id}", "n": 3}) as span:
        span.set_attribute("url.full", f"https://h/items/3?api_key={SECRET}")


def _secret_in_an_event(tracer: Any) -> None:
    with tracer.start_as_current_span("GET /items/{id}", attributes={"route": "/items/{id}", "n": 3}) as span:
        span.add_event("retry", {"note": f"Bearer {SECRET}"})


def _secret_in_an_exception(tracer: Any) -> None:
    with tracer.start_as_current_span("GET /items/{id}", attributes={"route": "/items/{id}", "n": 3}) as span:
        span.record_exception(ValueError(f"login failed password={SECRET}"))


def _secret_in_the_status(tracer: Any) -> None:
    with tracer.start_as_current_span("GET /items/{id}", attributes={"route": "/items/{id}", "n": 3}) as span:
        span.set_status(trace.Status(trace.StatusCode.ERROR, f"token={SECRET}"))


def _secret_in_the_name(tracer: Any) -> None:
    with tracer.start_as_current_span("GET /items/{id}", attributes={"route": "/items/{id}", "n": 3}) as span:
        span.update_name(f"GET /items?token={SECRET}")


def _secret_in_a_link(tracer: Any) -> None:
    link = trace.Link(trace.SpanContext(1, 2, is_remote=True), {"note": f"password={SECRET}"})
    with tracer.start_as_current_span(
        "GET /items/{id}", attributes={"route": "/items/{id}", "n": 3}, links=[link]
    ):
        pass


SECRET_PATHS = {
    "set_attribute after start": _secret_on_start,
    "start attributes": _secret_at_start,
    "a clean value under a sensitive key": _secret_under_a_sensitive_key,
    "url.full": _secret_in_a_url,
    "add_event": _secret_in_an_event,
    "record_exception": _secret_in_an_exception,
    "status description": _secret_in_the_status,
    "update_name": _secret_in_the_name,
    "link": _secret_in_a_link,
}


@pytest.mark.parametrize("record", list(SECRET_PATHS.values()), ids=list(SECRET_PATHS))
def test_a_secret_after_spans_that_needed_nothing_is_still_hidden(text_capture: Capture, record: Any) -> None:
    """A library's spans through the SDK tracer (not obskit's decorators), after clean ones of its shape."""
    tracer = trace.get_tracer("some.instrumentation")
    _clean_spans(tracer)
    record(tracer)
    *clean, last = text_capture.spans()
    assert all(
        dict(span.attributes or {}) == {"route": "/items/{id}", "n": 3, "note": "plain"} for span in clean
    )
    assert SECRET not in _everything(last)
    if record is _secret_under_a_sensitive_key:
        assert (last.attributes or {})["password"] == REDACTED


def test_a_span_with_a_secret_is_cleaned_once_however_many_exporters_share_the_cleaner() -> None:
    cleaner = SpanCleaner(Redactor())
    first, second = InMemorySpanExporter(), InMemorySpanExporter()

    def record(tracer: Any) -> None:
        _clean_spans(tracer)
        _secret_on_start(tracer)

    _spans_through(
        [RedactingSpanExporter(first, cleaner), RedactingSpanExporter(second, cleaner)], record=record
    )
    for exporter in (first, second):
        assert SECRET not in _everything(exporter.get_finished_spans()[-1])


def test_a_str_subclass_equal_to_a_remembered_value_is_cleaned_as_any_other_object(
    text_capture: Capture,
) -> None:
    """A value equal to a clean one but of another class is not taken for it (its str() is exported)."""

    class Method(str):
        def __str__(self) -> str:
            return f"Method.{str.__str__(self)}"

        GET: Method

    tracer = trace.get_tracer("some.instrumentation")
    Method.GET = Method("GET")
    for value in ("GET", "GET", Method.GET):
        with tracer.start_as_current_span("op") as span:
            span.set_attribute("method", value)
    exported = [(span.attributes or {})["method"] for span in text_capture.spans("op")]
    assert exported == ["GET", "GET", "Method.GET"]
    assert type(exported[2]) is str


def test_the_remembered_attributes_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from obskit._export import redacting as _redacting

    monkeypatch.setattr(_redacting, "_CACHE_LIMIT", 2)
    cleaner = SpanCleaner(Redactor())
    exporter = InMemorySpanExporter()

    def record(tracer: Any) -> None:
        for i in range(5):
            with tracer.start_as_current_span("op", attributes={"n": i, "path": f"/p/{i}"}):
                pass
        with tracer.start_as_current_span("op", attributes={"n": 0, "path": f"/p/0?token={SECRET}"}):
            pass

    _spans_through([RedactingSpanExporter(exporter, cleaner)], record=record)
    assert len(cleaner._clean) <= 2
    spans = exporter.get_finished_spans()
    assert [dict(span.attributes or {}) for span in spans[:5]] == [
        {"n": i, "path": f"/p/{i}"} for i in range(5)
    ]
    assert SECRET not in _everything(spans[5])


def test_an_official_instrumentation_s_url_loses_its_credential_after_clean_requests() -> None:
    """The requests instrumentation (a real peer) against a local server: url.full is cleaned."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import requests

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        obskit.configure(
            service_name="svc",
            traces_exporter="console",  # the spans go to the capture below
            metrics_exporter="none",
            instrument_libraries="requests",
        )
        base = f"http://127.0.0.1:{server.server_address[1]}/items"
        with capture() as cap:
            for _ in range(3):
                requests.get(f"{base}?page=2", timeout=5)
            requests.get(f"{base}?page=2&api_key={SECRET}", timeout=5)
        spans = [span for span in cap.spans() if "url.full" in (span.attributes or {})]
        assert len(spans) == 4
        assert (spans[0].attributes or {})["url.full"] == f"{base}?page=2"
        assert (spans[3].attributes or {})["url.full"] == f"{base}?page=2&api_key={REDACTED}"
        assert SECRET not in _everything(spans[3])
    finally:
        server.shutdown()
        server.server_close()


async def test_a_server_span_s_query_loses_its_credential_after_clean_requests(text_capture: Capture) -> None:
    """obskit's own light server span (plain attributes) through a real Starlette app."""
    import httpx
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def item(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/items/{n}", item)])
    obskit.configure(app, service_name="svc", traces_exporter="none", metrics_exporter="none")
    with capture() as cap:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            for _ in range(3):
                await client.get("/items/1?page=2")
            await client.get(f"/items/1?page=2&token={SECRET}")
    spans = cap.spans("GET /items/{n}")
    assert len(spans) == 4
    assert (spans[0].attributes or {})["url.query"] == "page=2"
    assert (spans[3].attributes or {})["url.query"] == f"page=2&token={REDACTED}"
    assert SECRET not in _everything(spans[3])
