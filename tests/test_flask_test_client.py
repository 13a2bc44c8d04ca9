"""A Flask test that reads only the status still records the request (the client never reads the body)."""

from __future__ import annotations

from collections.abc import Iterator

import flask
import pytest

import obskit
from obskit.testing import Capture, capture

QUIET = {"traces_exporter": "none", "metrics_exporter": "none", "logs_exporter": "none"}


@pytest.fixture
def app() -> flask.Flask:
    app = flask.Flask(__name__)

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/fails")
    def fails() -> str:
        raise RuntimeError("broken view")

    @app.get("/stream")
    def stream() -> flask.Response:
        def chunks() -> Iterator[str]:
            yield "a"
            yield "b"

        return flask.Response(flask.stream_with_context(chunks()))

    obskit.configure(app, **QUIET)
    return app


def requests(cap: Capture, route: str) -> float:
    return cap.counter_value("http_server_requests", route=route)


def test_reading_only_the_status_records_the_request(app: flask.Flask) -> None:
    with capture() as cap:
        response = app.test_client().get("/items/7")
        assert response.status_code == 200
        assert requests(cap, "/items/{item_id}") == 1
        assert cap.assert_span("GET /items/{item_id}").attributes["http.response.status_code"] == 200
        assert [line["status"] for line in cap.logs() if line["logger"] == "http.access"] == [200]
        response.get_data()
        response.close()
        assert requests(cap, "/items/{item_id}") == 1  # once, however the response is used


def test_a_view_error_is_recorded_once_without_reading_the_body(app: flask.Flask) -> None:
    with capture() as cap:
        assert app.test_client().get("/fails").status_code == 500
        assert cap.counter_value("http_server_requests", route="/fails", status_code="500") == 1
        span = cap.assert_span("GET /fails", status="ERROR")
        assert span.attributes["error.type"] == "RuntimeError"


def test_a_streamed_response_is_recorded_when_it_has_been_sent(app: flask.Flask) -> None:
    with capture() as cap:
        response = app.test_client().get("/stream")
        assert requests(cap, "/stream") == 0  # the body is still to be made
        assert response.get_data() == b"ab"
        response.close()
        assert requests(cap, "/stream") == 1
