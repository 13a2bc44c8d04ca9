"""The example FastAPI app of the web benchmark, served by uvicorn in one variant.

    python benchmarks/_web_app.py VARIANT PORT     # VARIANT: bare, instrumentator, obskit, obskit-*

Two JSON routes with a path parameter. ``instrumentator`` adds prometheus-fastapi-instrumentator
(``Instrumentator().instrument(app).expose(app)``); ``obskit`` calls ``obskit.configure(app)`` with
spans, Prometheus metrics and JSON access logs on stdout. Spans go to an exporter that discards
them, so that the figure is the cost of the instrumentation, not of formatting spans to stderr.
uvicorn's own access log is off in every variant.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import uvicorn
from fastapi import FastAPI

VARIANTS = ("bare", "instrumentator", "obskit")
#: obskit with one part left out, to see where its cost goes (OBSKIT_BENCH_WEB_DIAGNOSE=1).
DIAGNOSTIC = {
    "obskit-no-access-log": {"access_log": False},
    "obskit-no-spans": {"traces_exporter": "none"},
    "obskit-metrics-only": {"access_log": False, "traces_exporter": "none"},
}


class DiscardingSpanExporter:
    """Accepts every batch and keeps nothing: the span pipeline's cost without its I/O."""

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def discarding_span_exporter(settings: object = None) -> DiscardingSpanExporter:
    return DiscardingSpanExporter()


def make_app(variant: str) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, "name": f"item {item_id}", "tags": ["a", "b"], "price": 9.5}

    @app.get("/users/{user_id}/orders")
    async def orders(user_id: str) -> dict[str, Any]:
        return {"user": user_id, "orders": [{"id": n, "total": n * 2.5} for n in range(3)]}

    if variant == "instrumentator":
        from prometheus_fastapi_instrumentator import Instrumentator

        Instrumentator().instrument(app).expose(app)
    elif variant == "obskit" or variant in DIAGNOSTIC:
        import obskit
        from obskit._export import backends as _backends

        # The console span exporter, swapped for one that discards (this process only).
        _backends.SPAN_EXPORTERS["console"] = ("_web_app", "discarding_span_exporter")
        settings: dict[str, Any] = {
            "service_name": "bench-web",
            "traces_exporter": "console",
            "metrics_exporter": "prometheus",
            "prometheus_port": 0,
            "logs_exporter": "console",
            "log_format": "json",
        }
        obskit.configure(app, **{**settings, **DIAGNOSTIC.get(variant, {})})
    elif variant != "bare":
        raise SystemExit(f"unknown variant {variant!r}; choose among {VARIANTS + tuple(DIAGNOSTIC)}")
    return app


def main(argv: list[str]) -> None:
    variant, port = argv[1], int(argv[2])
    app = make_app(variant)
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, access_log=False, log_level="warning")


if __name__ == "__main__":
    main(sys.argv)
