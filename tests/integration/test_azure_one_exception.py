"""A failed request in Application Insights: one request item, one exception item, the request's URL.

Against the loopback ingestion endpoint (azure_ingestion.py): the exporter's real envelopes.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
from azure_ingestion import Ingestion
from fastapi import FastAPI

import obskit

with warnings.catch_warnings():  # starlette asks for httpx2, not installed here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.integration


class CheckoutFailed(Exception):
    """Raised by the failing route."""


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/orders/{order_id}")
    async def order(order_id: int) -> None:
        raise CheckoutFailed(f"order {order_id} failed")

    return app


def _configure(ingestion: Ingestion, app: FastAPI, **extra: Any) -> None:
    settings: dict[str, Any] = {
        "service_name": "azure-one",
        "traces_exporter": "azure",
        "metrics_exporter": "none",
        "logs_exporter": "azure",
        "azure_connection_string": ingestion.connection_string,
    }
    obskit.configure(app, **{**settings, **extra})


def _request(app: FastAPI) -> None:
    client = TestClient(app, raise_server_exceptions=False)
    response = client.get("/orders/7?page=2&api_key=s3cret-value", headers={"host": "shop.example:8443"})
    assert response.status_code == 500


def test_a_failed_request_is_one_request_item_and_one_exception_item(ingestion: Ingestion) -> None:
    app = _app()
    _configure(ingestion, app)
    _request(app)
    obskit.shutdown(timeout=5)

    [request] = [e for e in ingestion.named("Request") if "orders" in e["data"]["baseData"]["name"]]
    data = request["data"]["baseData"]
    assert data["name"] == "GET /orders/{order_id}"
    assert data["responseCode"] == "500"
    assert data["success"] is False
    # The URL the client asked for: its Host header and its query, the secret hidden.
    assert data["url"] == "http://shop.example:8443/orders/7?page=2&api_key=[REDACTED]"
    exceptions = [e for e in ingestion.named("Exception") if "CheckoutFailed" in json.dumps(e)]
    assert len(exceptions) == 1, [e["data"]["baseData"] for e in exceptions]
    [exception] = exceptions
    assert exception["tags"]["ai.operation.id"] == request["tags"]["ai.operation.id"]
    assert exception["tags"]["ai.operation.parentId"] == data["id"]
    details = exception["data"]["baseData"]["exceptions"][0]
    assert details["typeName"].endswith("CheckoutFailed")
    assert "order 7 failed" in details["stack"]
    # The access line is still there, as a trace item at error level, in the same operation.
    [line] = [
        e for e in ingestion.named("Message") if e["data"]["baseData"]["message"].startswith("GET /orders/7")
    ]
    assert line["data"]["baseData"]["severityLevel"] == 3
    assert line["tags"]["ai.operation.id"] == request["tags"]["ai.operation.id"]
    assert "s3cret-value" not in json.dumps(ingestion.envelopes)


def test_without_azure_traces_the_access_line_keeps_the_exception(ingestion: Ingestion) -> None:
    app = _app()
    _configure(ingestion, app, traces_exporter="none")
    _request(app)
    obskit.shutdown(timeout=5)

    assert ingestion.named("Request") == []
    exceptions = [e for e in ingestion.named("Exception") if "CheckoutFailed" in json.dumps(e)]
    assert len(exceptions) == 1


def test_a_request_whose_span_is_not_sampled_keeps_the_exception_on_its_line(
    ingestion: Ingestion,
) -> None:
    app = _app()
    _configure(ingestion, app, sampling_ratio=0.0)
    _request(app)
    obskit.shutdown(timeout=5)

    assert [e for e in ingestion.named("Request") if "orders" in e["data"]["baseData"]["name"]] == []
    exceptions = [e for e in ingestion.named("Exception") if "CheckoutFailed" in json.dumps(e)]
    assert len(exceptions) == 1
