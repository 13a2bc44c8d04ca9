"""Views: each log line carries the request's id and trace id."""

import asyncio
import logging
from collections.abc import Iterator

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

import obskit

log = logging.getLogger("shop")


def item(request: HttpRequest, item_id: int) -> JsonResponse:
    log.info("item requested", extra={"item_id": item_id})
    return JsonResponse({"id": item_id, "name": f"item {item_id}"})


def by_sku(request: HttpRequest, sku: str) -> JsonResponse:
    return JsonResponse({"sku": sku})


async def prices(request: HttpRequest, currency: str) -> JsonResponse:
    with obskit.trace_operation("fetch_rates"):  # a child span of the request's
        await asyncio.sleep(0.01)
    return JsonResponse({"currency": currency, "rate": 1.0})


def export(request: HttpRequest) -> StreamingHttpResponse:
    def rows() -> Iterator[str]:
        for number in range(3):
            log.info("row written", extra={"row": number})
            yield f"row {number}\n"

    return StreamingHttpResponse(rows(), content_type="text/csv")


def fail(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("example failure")  # Django answers 500; error.type is RuntimeError
