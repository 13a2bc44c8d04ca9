"""Deterministic captures and plain-dict exports, for snapshot tests (as logfire's capfire gives)."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import pytest

import obskit
from obskit.testing import Capture, capture

metrics = obskit.MetricsCollector()
ORDERS = metrics.counter("snapshot_orders", "Orders placed.", labels=["status"])
LATENCY = metrics.histogram("snapshot_latency_seconds", "Latency.", labels=["op"], buckets=[0.1, 1])


def work() -> None:
    with obskit.trace_operation("checkout", attributes={"cart.items": 3}):
        with obskit.trace_operation("charge"):
            logging.getLogger("shop").info("charged")
        ORDERS.inc(status="ok")
        LATENCY.observe(0.5, op="charge")
    with pytest.raises(ValueError, match="no such order"), obskit.trace_operation("refund"):
        raise ValueError("no such order")


def spans_of_one_run() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    with capture(deterministic=True) as cap:
        work()
        return cap.spans_as_dicts(), cap.metrics_as_dicts(), cap.logs()


def test_a_deterministic_capture_gives_the_same_dicts_on_every_run() -> None:
    first, second = spans_of_one_run(), spans_of_one_run()
    for dicts in (first, second):
        for span in dicts[0]:
            for event in span["events"]:
                event["attributes"].pop("exception.stacktrace", None)  # holds line numbers
        for line in dicts[2]:
            line.pop("timestamp", None)
    assert first == second


def test_spans_as_dicts_shape_ids_and_clock() -> None:
    spans, _, logs = spans_of_one_run()
    charge, checkout, refund = spans
    assert [s["name"] for s in spans] == ["charge", "checkout", "refund"]
    assert checkout["context"] == {"trace_id": 1, "span_id": 1}
    assert checkout["parent"] is None
    assert charge["context"] == {"trace_id": 1, "span_id": 2}
    assert charge["parent"] == {"trace_id": 1, "span_id": 1}
    assert refund["context"] == {"trace_id": 2, "span_id": 3}
    # One tick (1 s) per distinct instant, in order: checkout starts, charge starts and ends...
    assert (checkout["start_time"], charge["start_time"], charge["end_time"]) == (10**9, 2 * 10**9, 3 * 10**9)
    assert checkout["end_time"] == 4 * 10**9
    assert checkout["attributes"]["cart.items"] == 3
    assert checkout["kind"] == "INTERNAL"
    assert refund["status"] == {"code": "ERROR", "description": "ValueError: no such order"}
    (event,) = refund["events"]
    assert event["name"] == "exception"
    assert event["attributes"]["exception.type"] == "ValueError"
    assert refund["start_time"] < event["timestamp"] < refund["end_time"]
    # Log lines carry the same deterministic ids.
    (line,) = [line for line in logs if line["message"] == "charged"]
    assert (line["trace_id"], line["span_id"]) == (f"{1:032x}", f"{2:016x}")


def test_metrics_as_dicts() -> None:
    _, metric_dicts, _ = spans_of_one_run()
    by_name = {m["name"]: m for m in metric_dicts}
    assert by_name["snapshot_orders_total"] == {
        "name": "snapshot_orders_total",
        "type": "counter",
        "unit": "",
        "description": "Orders placed.",
        "series": [{"labels": {"status": "ok"}, "value": 1.0}],
    }
    assert by_name["snapshot_latency_seconds"]["series"] == [
        {
            "labels": {"op": "charge"},
            "buckets": {"0.1": 0.0, "1.0": 1.0, "+Inf": 1.0},
            "count": 1.0,
            "sum": 0.5,
        }
    ]
    assert by_name["snapshot_latency_seconds"]["unit"] == "s"  # as declared (UCUM), inferred from the name
    assert [m["name"] for m in metric_dicts] == sorted(by_name)


def test_without_deterministic_the_ids_are_random_and_times_real() -> None:
    with capture() as cap:
        work()
        spans = cap.spans_as_dicts()
    assert spans[1]["context"]["trace_id"] > 2**64
    assert spans[1]["start_time"] > 10**18  # nanoseconds since the epoch


@pytest.mark.obskit(deterministic=True)
def test_the_fixture_takes_deterministic_from_the_marker(obskit_capture: Capture) -> None:
    work()
    assert obskit_capture.spans_as_dicts()[1]["context"] == {"trace_id": 1, "span_id": 1}


def test_a_server_span_of_a_real_app_is_deterministic_too() -> None:
    fastapi = pytest.importorskip("fastapi")
    with warnings.catch_warnings():  # starlette asks for httpx2, not installed here
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    app = fastapi.FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    obskit.configure(app, traces_exporter="none", metrics_exporter="none", logs_exporter="none")
    with capture(deterministic=True) as cap, TestClient(app) as client:
        client.get("/items/7")
        client.get("/items/8")
        spans = cap.spans_as_dicts()
    assert [(s["name"], s["context"]) for s in spans] == [
        ("GET /items/{item_id}", {"trace_id": 1, "span_id": 1}),
        ("GET /items/{item_id}", {"trace_id": 2, "span_id": 2}),
    ]
