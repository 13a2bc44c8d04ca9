"""One HTTP request straight through an ASGI app's interface, for tests that need no client."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


async def asgi_get(app: Any, path: str, headers: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """GET ``path`` (a query string after ``?`` is split off) and return the messages the app sent.

    The scope is what uvicorn gives: client 127.0.0.1:5000, server testserver:80, a Host header
    plus ``headers``. An exception the app raises propagates.
    """
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    raw, _, query = path.partition("?")
    extra = [(name.encode(), value.encode()) for name, value in (headers or {}).items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": raw,
        "raw_path": raw.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver"), *extra],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    return sent
