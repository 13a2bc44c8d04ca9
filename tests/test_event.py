"""obskit.event(): an event log record everywhere, a custom event on Azure (integration tests)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

import obskit
from obskit.testing import capture

sys.path.insert(0, str(Path(__file__).parent / "integration"))
import otlp_receiver as rx


def _console_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    obskit.shutdown()
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_event_is_a_console_json_line_with_the_event_field_and_trace_context(
    capsys: pytest.CaptureFixture[str],
) -> None:
    obskit.configure(
        service_name="events", traces_exporter="console", metrics_exporter="none", logs_exporter="console"
    )
    with capture() as cap:
        with obskit.trace_operation("checkout"):
            obskit.event("order_placed", order_id=42, total=19.5, password="hunter2", name="n", message="m")
        (span,) = cap.spans("checkout")
    lines = [line for line in _console_lines(capsys) if line.get("logger") == "events"]
    assert len(lines) == 1
    line = lines[0]
    assert line["event"] == "order_placed"
    assert line["message"] == "order_placed"
    assert line["level"] == "INFO"
    assert (line["order_id"], line["total"], line["name"]) == (42, 19.5, "n")
    assert line["password"] == "[REDACTED]"  # as any log field with a sensitive name
    assert line["trace_id"] == format(span.context.trace_id, "032x")
    assert line["span_id"] == format(span.context.span_id, "016x")


def test_event_is_captured_like_any_log_record() -> None:
    obskit.configure(service_name="events", traces_exporter="none", metrics_exporter="none")
    with capture() as cap:
        obskit.event("signup", plan="pro")
    (record,) = cap.logs(event="signup")
    assert record["plan"] == "pro"


def test_event_never_raises_into_user_code(swallow_internal_errors: None) -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no text")

    obskit.configure(service_name="events", traces_exporter="none", metrics_exporter="none")
    obskit.event(Unprintable())  # type: ignore[arg-type]
    obskit.event("odd", value=Unprintable(), nested={"token": "abc", "n": [1, 2]})


def test_events_logger_level_silences_events(capsys: pytest.CaptureFixture[str]) -> None:
    obskit.configure(service_name="events", traces_exporter="none", metrics_exporter="none")
    logging.getLogger("events").setLevel(logging.WARNING)
    try:
        obskit.event("quiet")
    finally:
        logging.getLogger("events").setLevel(logging.NOTSET)
    assert not [line for line in _console_lines(capsys) if line.get("event") == "quiet"]


@pytest.mark.integration
def test_event_is_an_otlp_log_record_with_event_name() -> None:
    with rx.receiver("http/protobuf") as receiver:
        obskit.configure(
            service_name="events",
            traces_exporter="otlp",
            metrics_exporter="none",
            logs_exporter="otlp",
            otlp_protocol="http/protobuf",
            otlp_endpoint=receiver.endpoint,
            shutdown_timeout=5,
        )
        with obskit.trace_operation("checkout"):
            obskit.event("order_placed", order_id=42, api_key="secret-value")
        obskit.shutdown()
        records = [r for r in receiver.store.log_records() if r.body.string_value == "order_placed"]
        spans = [s for s in receiver.store.spans() if s.name == "checkout"]
    assert len(records) == 1
    assert len(spans) == 1
    attributes = rx.attributes(records[0].attributes)
    assert attributes["event.name"] == "order_placed"
    assert "event" not in attributes
    assert attributes["order_id"] == 42
    assert attributes["api_key"] == "[REDACTED]"
    assert attributes["logger.name"] == "events"
    assert (records[0].trace_id, records[0].span_id) == (spans[0].trace_id, spans[0].span_id)
