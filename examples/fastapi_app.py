"""A FastAPI service instrumented by one ``obskit.configure(app)`` call.

Run it (see docs/web.md)::

    uvicorn --app-dir examples fastapi_app:app --no-access-log

Every request gets a server span (``GET /items/{item_id}``), RED metrics labelled by route
template, a request id (echoed in ``X-Request-ID``) on every log line, and one JSON access line.
``/health/live``, ``/health/ready`` and ``/health`` are answered by obskit's health checks; with
``OTEL_METRICS_EXPORTER=prometheus`` ``/metrics`` serves the scrape.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import StreamingResponse

import obskit
from obskit import health

app = FastAPI(title="obskit FastAPI example")
log = logging.getLogger("example.fastapi")


@app.get("/items/{item_id}")
async def get_item(item_id: int) -> dict[str, object]:
    log.info("item requested", extra={"item_id": item_id})
    return {"id": item_id, "name": f"item {item_id}"}


@app.get("/reports/daily")
def daily_report() -> dict[str, int]:
    # A sync handler: FastAPI runs it in a worker thread, and its log line still has the request id.
    log.info("report built")
    return {"rows": 3}


@app.get("/fail")
async def fail() -> None:
    raise RuntimeError("example failure")


@app.get("/stream")
async def stream() -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for number in range(3):
            yield f"chunk {number}\n".encode()
            await asyncio.sleep(0.01)

    return StreamingResponse(chunks(), media_type="text/plain")


@health.check("cache", critical=False)
def cache_reachable() -> bool:
    return False  # degraded, not unready: the cache is optional


@health.check("payments-api", timeout=0.2)
async def payments_api() -> bool:
    await asyncio.sleep(5)  # times out: a critical dependency that does not answer
    return True


obskit.configure(app, service_name="fastapi-example")
