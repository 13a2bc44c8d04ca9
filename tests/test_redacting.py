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
