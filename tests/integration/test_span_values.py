"""Nothing lost, nothing leaked, on the wire: spans against the real OTLP receiver and Azure ingestion.

A batch of 100 good spans and one span carrying every kind of bad value arrives whole (101 spans,
``obskit_telemetry_dropped_total`` unchanged), the bad values in their safe forms; credentials in
exception messages, attribute values and outgoing-call URLs (real ``httpx`` and ``requests`` calls
to a loopback server) never reach a peer.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
from opentelemetry import trace

import obskit
from obskit import trace_operation
from obskit._core import state as _state
from obskit._recording.store import Store

try:  # a package if tests/integration gets an __init__.py, a rootdir module otherwise
    from . import otlp_receiver as rx
    from .azure_ingestion import Ingestion
    from .peers import Ok, http_server
except ImportError:
    import otlp_receiver as rx  # type: ignore[no-redef]
    from azure_ingestion import Ingestion  # type: ignore[no-redef]
    from peers import Ok, http_server  # type: ignore[no-redef]

pytestmark = pytest.mark.integration

SECRET = "hunter2-s3cr3t"
BIG = 2**70
ESCAPED = "caf\\udce9"  # what "caf\udce9" (a lone surrogate) becomes


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__


@pytest.fixture(autouse=True)
def _own_metric_store() -> None:
    """A fresh metric store, so that the dropped counter starts at zero for this test."""
    _state.set_state(dataclasses.replace(_state.STATE, store=Store()))


def _dropped_spans() -> float:
    registry = _state.STATE.store.registry
    return sum(
        sample.value
        for metric in registry.collect()
        if metric.name == "obskit_telemetry_dropped"
        for sample in metric.samples
        if sample.name == "obskit_telemetry_dropped_total" and sample.labels.get("signal") == "traces"
    )


def _flush() -> None:
    provider = _state.STATE.tracer_provider
    assert provider is not None
    assert provider.force_flush(10_000)


class _Failure(Exception):
    pass


def _good_and_bad_batch(run: str) -> None:
    """100 good spans, then one with a lone surrogate, an int beyond int64, an unprintable object
    and credentials in an attribute and an exception message, all in one export batch."""
    tracer = _state.STATE.tracer
    assert tracer is not None
    for i in range(100):
        with tracer.start_as_current_span(f"good-{run}", attributes={"i": i}):
            pass

    @trace_operation(f"bad-{run}", attributes={"object": _Unprintable()})
    def bad() -> None:
        span = trace.get_current_span()
        span.set_attribute("surrogate", "caf\udce9")
        span.set_attribute("big", BIG)
        span.set_attribute("conn", f"Server=db;Password={SECRET};")
        span.add_event("note", {"surrogate": "caf\udce9", "big": BIG})
        raise _Failure(f"login failed for https://bob:{SECRET}@db/ password={SECRET} caf\udce9")

    with pytest.raises(_Failure):
        bad()


# -- OTLP -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_one_bad_span_costs_only_its_values_over_otlp(protocol: str) -> None:
    run = protocol.replace("/", "-")
    with rx.receiver(protocol) as receiver:
        obskit.configure(
            service_name="values-it",
            traces_exporter="otlp",
            metrics_exporter="none",
            logs_exporter="none",
            otlp_protocol=protocol,
            otlp_endpoint=receiver.endpoint,
            shutdown_timeout=5,
        )
        _good_and_bad_batch(run)
        _flush()
        assert receiver.store.wait_for(lambda: len(receiver.store.spans()) >= 101)
        assert _dropped_spans() == 0
        obskit.shutdown(timeout=5)
        spans = receiver.store.spans()
    assert len(spans) == 101
    assert len(receiver.store.items("traces")) == 1  # one batch, delivered whole
    (bad,) = [s for s in spans if s.name == f"bad-{run}"]
    attributes = rx.attributes(bad.attributes)
    assert attributes["surrogate"] == ESCAPED
    assert attributes["big"] == str(BIG)
    assert attributes["object"] == "[unrenderable _Unprintable]"
    assert attributes["conn"] == "Server=db;Password=[REDACTED];"
    events = {e.name: rx.attributes(e.attributes) for e in bad.events}
    assert events["note"] == {"surrogate": ESCAPED, "big": str(BIG)}
    message = events["exception"]["exception.message"]
    assert message == f"login failed for https://[REDACTED]@db/ password=[REDACTED] {ESCAPED}"
    assert bad.status.message == f"_Failure: {message}"
    everything = b"".join(item.request.SerializeToString() for item in receiver.store.items())
    assert SECRET.encode() not in everything


# -- Azure ----------------------------------------------------------------------------------------


def _configure_azure(ingestion: Ingestion, **extra: Any) -> None:
    obskit.configure(
        service_name="values-azure",
        traces_exporter="azure",
        metrics_exporter="none",
        logs_exporter="none",
        azure_connection_string=ingestion.connection_string,
        **extra,
    )


def test_one_bad_span_costs_only_its_values_on_azure(ingestion: Ingestion) -> None:
    _configure_azure(ingestion)
    _good_and_bad_batch("azure")
    _flush()
    assert ingestion.wait_for(lambda: len(ingestion.named("RemoteDependency")) >= 101)
    assert _dropped_spans() == 0
    dependencies = ingestion.named("RemoteDependency")
    assert len(dependencies) == 101
    (bad,) = [e for e in dependencies if e["data"]["baseData"]["name"] == "bad-azure"]
    properties = bad["data"]["baseData"]["properties"]
    assert properties["surrogate"] == ESCAPED
    assert properties["big"] == str(BIG)
    assert properties["object"] == "[unrenderable _Unprintable]"
    assert properties["conn"] == "Server=db;Password=[REDACTED];"
    assert SECRET not in json.dumps(ingestion.envelopes)  # dependencies, exceptions, everything


# -- outgoing calls --------------------------------------------------------------------------------


@pytest.fixture
def loopback() -> Iterator[str]:
    with http_server(Ok) as url:
        yield url.removeprefix("http://")


def _call(host: str) -> None:
    query = f"api_key={SECRET}&token={SECRET}&page=2"
    with httpx.Client() as client:
        assert client.get(f"http://bob:{SECRET}@{host}/httpx?{query}").text == "ok"
    assert requests.get(f"http://bob:{SECRET}@{host}/requests?{query}", timeout=5).text == "ok"


def _url(attributes: dict[str, Any]) -> str:
    return str(attributes.get("url.full") or attributes.get("http.url"))


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_outgoing_call_urls_lose_query_secrets_at_the_otlp_receiver(
    protocol: str, loopback: str, ingestion: Ingestion
) -> None:
    with rx.receiver(protocol) as receiver:
        obskit.configure(  # two exporters: each span is cleaned once, both get the clean span
            service_name="urls-it",
            traces_exporter="otlp,azure",
            metrics_exporter="none",
            logs_exporter="none",
            otlp_protocol=protocol,
            otlp_endpoint=receiver.endpoint,
            azure_connection_string=ingestion.connection_string,
            shutdown_timeout=5,
        )
        with trace_operation("calls"):
            _call(loopback)
        _flush()
        assert receiver.store.wait_for(lambda: len(receiver.store.spans()) >= 3)
        assert ingestion.wait_for(lambda: len(ingestion.named("RemoteDependency")) >= 3)
        obskit.shutdown(timeout=5)
        clients = [rx.attributes(s.attributes) for s in receiver.store.spans() if s.kind == 3]  # CLIENT
        everything = b"".join(item.request.SerializeToString() for item in receiver.store.items())
    assert sorted(_url(a) for a in clients) == [
        f"http://[REDACTED]@{loopback}/httpx?api_key=[REDACTED]&token=[REDACTED]&page=2",
        f"http://[REDACTED]@{loopback}/requests?api_key=[REDACTED]&token=[REDACTED]&page=2",
    ]
    assert SECRET.encode() not in everything
    urls = sorted(
        e["data"]["baseData"].get("data", "")
        for e in ingestion.named("RemoteDependency")
        if e["data"]["baseData"]["name"] != "calls"
    )
    assert all("[REDACTED]" in url and "page=2" in url for url in urls), urls
    assert SECRET not in json.dumps(ingestion.envelopes)
