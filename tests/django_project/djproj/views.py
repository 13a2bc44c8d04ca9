"""Sync, async, streaming and failing views; each logs a line."""

import asyncio
import logging

from django.db import connection
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse

log = logging.getLogger("djproj")


class Boom(Exception):
    """Raised by the failing views."""


def index(request):
    return HttpResponse("index")


def item(request, item_id):
    log.info("looking up item %s", item_id)
    return JsonResponse({"id": item_id})


def fields(request):
    import obskit

    obskit.add_access_fields(tenant="t-1", status="not the status")
    return HttpResponse("0123456789")


def archive(request, year, month):
    return JsonResponse({"year": year, "month": month})


def legacy(request, slug):
    return HttpResponse(slug)


async def async_view(request, name):
    await asyncio.sleep(0)
    log.info("async view for %s", name)
    return JsonResponse({"name": name})


async def slow(request):
    await asyncio.sleep(30)
    return HttpResponse("too late")


def stream(request):
    def chunks():
        for i in range(3):
            log.info("chunk %s", i)
            yield f"chunk {i}\n"

    return StreamingHttpResponse(chunks(), content_type="text/plain")


async def astream(request):
    async def chunks():
        for i in range(3):
            await asyncio.sleep(0)
            log.info("async chunk %s", i)
            yield f"chunk {i}\n"

    return StreamingHttpResponse(chunks(), content_type="text/plain")


def stream_fail(request):
    def chunks():
        yield "first\n"
        raise Boom("broken stream")

    return StreamingHttpResponse(chunks(), content_type="text/plain")


def fail(request):
    raise Boom("boom")


async def async_fail(request):
    raise Boom("async boom")


def query(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        (value,) = cursor.fetchone()
    return JsonResponse({"value": value})


def outgoing(request):
    """The headers an outgoing call made here carries (what obskit's httpx/requests instrumentation sends)."""
    from opentelemetry import propagate

    headers = {}
    propagate.inject(headers)
    return JsonResponse(headers)


def own_metrics(request):
    return HttpResponse("the project's own metrics")
