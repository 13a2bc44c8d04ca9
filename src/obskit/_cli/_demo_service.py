"""The service ``obskit demo`` runs: a small shop API on stdlib wsgiref, and the traffic that drives it.

Everything here uses obskit's public surface the way an application would: a plain WSGI app
wrapped by ``obskit.wsgi.middleware``, route templates left in ``environ["obskit.route"]``,
``trace_operation``, ``track_job``, ``LoggingContext``, a ``MetricsCollector`` and health checks.
The client side makes its own CLIENT spans and sends ``traceparent``, so one request's trace
runs from the caller through the server span into the handler's spans.
"""

from __future__ import annotations

import json
import logging
import random
import re
import socketserver
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from obskit import LoggingContext, MetricsCollector, trace_operation, track_job
from obskit._web.wsgi import ROUTE_KEY

__all__ = ["Traffic", "make_app", "make_server"]

log = logging.getLogger("demo.shop")
_tracer = trace.get_tracer("obskit.demo")
_metrics = MetricsCollector(namespace="demo")
_ORDERS = {"1001": 42.50, "1002": 17.00, "1003": 99.90, "1004": 5.25, "1005": 230.00}
_seen: set[str] = set()
_seen_lock = threading.Lock()

StartResponse = Callable[..., Any]
Handler = Callable[[dict[str, Any], dict[str, str]], tuple[int, dict[str, Any]]]


class PaymentDeclined(Exception):
    """The card was declined: the checkout answers 402."""


# -- the handlers ---------------------------------------------------------------------------------


@trace_operation("load_order", attributes={"db.system": "sqlite"})
def load_order(order_id: str) -> float | None:
    with _seen_lock:
        hit = order_id in _seen
        _seen.add(order_id)
    _metrics.cache_access("orders", hit=hit)
    time.sleep(0.001 if hit else 0.004)
    return _ORDERS.get(order_id)


@trace_operation("reserve_stock")
def reserve_stock(order_id: str) -> None:
    time.sleep(0.002)


@track_job("charge_payment")
def charge_payment(order_id: str, amount: float) -> str:
    time.sleep(0.003)
    if int(order_id) % 5 == 0:
        raise PaymentDeclined(f"card declined for order {order_id}")
    return f"pay-{order_id}"


def get_order(environ: dict[str, Any], params: dict[str, str]) -> tuple[int, dict[str, Any]]:
    amount = load_order(params["order_id"])
    if amount is None:
        log.warning("order not found", extra={"order_id": params["order_id"]})
        return 404, {"error": "no such order"}
    log.info("order loaded", extra={"order_id": params["order_id"], "amount": amount})
    return 200, {"order_id": params["order_id"], "amount": amount}


def checkout(environ: dict[str, Any], params: dict[str, str]) -> tuple[int, dict[str, Any]]:
    order_id = params["order_id"]
    amount = load_order(order_id)
    if amount is None:
        return 404, {"error": "no such order"}
    reserve_stock(order_id)
    try:
        payment = charge_payment(order_id, amount)
    except PaymentDeclined as error:
        log.warning("payment declined", extra={"order_id": order_id, "reason": str(error)})
        return 402, {"error": str(error)}
    _metrics.counter("orders_paid", "Orders paid", labels=["currency"]).inc(currency="EUR")
    _metrics.histogram(
        "order_value",
        "Value of paid orders, in the currency's units",
        labels=["currency"],
        buckets=[10, 50, 100, 250],
    ).observe(amount, currency="EUR")
    log.info("order paid", extra={"order_id": order_id, "payment_id": payment, "amount": amount})
    return 200, {"order_id": order_id, "payment_id": payment}


@trace_operation("render_report")
def report(environ: dict[str, Any], params: dict[str, str]) -> tuple[int, dict[str, Any]]:
    if params["name"] == "broken":
        raise RuntimeError("report template 'broken' is missing")  # escapes: obskit records a 500
    time.sleep(0.002)
    return 200, {"report": params["name"], "rows": 3}


_ROUTES: list[tuple[str, re.Pattern[str], str, Handler]] = [
    ("GET", re.compile(r"/orders/(?P<order_id>\d+)"), "/orders/{order_id}", get_order),
    ("POST", re.compile(r"/orders/(?P<order_id>\d+)/checkout"), "/orders/{order_id}/checkout", checkout),
    ("GET", re.compile(r"/reports/(?P<name>[\w-]+)"), "/reports/{name}", report),
]


def _answer(start_response: StartResponse, status: int, payload: dict[str, Any]) -> list[bytes]:
    reason = {200: "OK", 402: "Payment Required", 404: "Not Found", 405: "Method Not Allowed"}
    start_response(f"{status} {reason.get(status, 'Status')}", [("Content-Type", "application/json")])
    return [json.dumps(payload).encode()]


def shop_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The plain WSGI app: a regex router that leaves the matched route template for obskit."""
    path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
    for route_method, pattern, template, handler in _ROUTES:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        environ[ROUTE_KEY] = template  # what obskit labels the metrics and names the span with
        if method != route_method:
            return _answer(start_response, 405, {"error": "method not allowed"})
        status, payload = handler(environ, match.groupdict())
        return _answer(start_response, status, payload)
    return _answer(start_response, 404, {"error": "not found"})


def make_app() -> Any:
    """The shop app wrapped in obskit's WSGI middleware, health checks registered."""
    import obskit.wsgi
    from obskit import health

    health.register("inventory_db", lambda: True, timeout=1.0)
    health.register("payment_gateway", lambda: True, timeout=1.0, critical=False)
    return obskit.wsgi.middleware(shop_app)


# -- the server -----------------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    """No stderr access line (obskit writes the JSON one), no second traceback for a 500."""

    def log_message(self, format: str, *args: Any) -> None:
        """Obskit's access log replaces wsgiref's."""

    def get_stderr(self) -> Any:
        """Wsgiref prints an escaped exception's traceback here; obskit already logged it once."""
        return _Discard()


class _Discard:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        """Nothing to flush."""


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look the host up in DNS (socket.getfqdn): not on loopback.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]
        self.setup_environ()


def make_server(port: int, app: Any) -> WSGIServer:
    """A threaded wsgiref server on 127.0.0.1:``port`` (0: a free one) serving ``app``."""
    server = _ThreadingServer(("127.0.0.1", port), _QuietHandler)
    server.set_app(app)
    return server


# -- the traffic ----------------------------------------------------------------------------------

#: (method, path, route template) of the requests the traffic cycles through; None: a batch job.
_PLAN: list[tuple[str, str, str] | None] = [
    ("GET", "/orders/1001", "/orders/{order_id}"),
    ("POST", "/orders/1002/checkout", "/orders/{order_id}/checkout"),
    ("GET", "/orders/1003", "/orders/{order_id}"),
    ("GET", "/reports/daily-sales", "/reports/{name}"),
    ("GET", "/orders/9999", "/orders/{order_id}"),
    None,
    ("POST", "/orders/1005/checkout", "/orders/{order_id}/checkout"),
    ("GET", "/reports/broken", "/reports/{name}"),
    ("GET", "/wp-login.php", "__unmatched__"),
    ("GET", "/health/ready", "/health/ready"),
    ("POST", "/orders/1004/checkout", "/orders/{order_id}/checkout"),
    ("GET", "/orders/1002", "/orders/{order_id}"),
    None,
]


@track_job("nightly_export", results=lambda rows: {"rows": rows})
def export_batch(batch: int) -> int:
    """A batch job: every third batch fails."""
    time.sleep(0.005)
    if batch % 3 == 2:
        raise ValueError(f"batch {batch}: warehouse rejected 3 rows")
    log.info("batch exported", extra={"batch": batch, "rows": 100 + batch})
    return 100 + batch


@dataclass
class Traffic:
    """Drives the service from a thread: requests with CLIENT spans, and batch jobs, until stopped."""

    base_url: str
    stop: threading.Event
    max_requests: int | None = None
    pause: float = 0.05
    requests: int = 0
    jobs: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    #: Called with the trace id of the first successful checkout: the request to show as a tree.
    on_showcase: Callable[[int], None] | None = None
    _showcase: bool = False

    def run(self) -> None:
        """Cycle through the plan until ``stop`` is set or ``max_requests`` were made."""
        rng = random.Random(7)
        step = 0
        while not self.stop.is_set():
            if self.max_requests is not None and self.requests >= self.max_requests:
                return
            item = _PLAN[step % len(_PLAN)]
            step += 1
            if item is None:
                self._job()
            else:
                self._request(*item)
            self.stop.wait(self.pause * rng.uniform(0.5, 1.5))

    def _job(self) -> None:
        batch = self.jobs
        self.jobs += 1
        with LoggingContext(user_id="scheduler", job_id=f"export-{batch}"):
            try:
                export_batch(batch)
            except ValueError:
                log.exception("batch export failed", extra={"batch": batch})

    def _request(self, method: str, path: str, template: str) -> None:
        self.requests += 1
        name = f"{method} {template}"
        with (
            LoggingContext(user_id=f"user-{self.requests % 4}"),
            _tracer.start_as_current_span(name, kind=SpanKind.CLIENT) as span,
        ):
            span.set_attributes({"http.request.method": method, "url.full": self.base_url + path})
            headers = {"X-Request-ID": LoggingContext.current()["request_id"]}
            propagate.inject(headers)
            status = self._send(method, path, headers)
            span.set_attribute("http.response.status_code", status)
            if status >= 400:
                span.set_status(Status(StatusCode.ERROR))
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if not self._showcase and template.endswith("/checkout") and status == 200:
                self._showcase = True
                if self.on_showcase is not None:
                    self.on_showcase(span.get_span_context().trace_id)

    def _send(self, method: str, path: str, headers: dict[str, str]) -> int:
        request = urllib.request.Request(self.base_url + path, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, data=b"" if method == "POST" else None, timeout=5) as reply:
                reply.read()
                return int(reply.status)
        except urllib.error.HTTPError as error:
            with error:
                error.read()
                return error.code
        except OSError as error:
            log.warning("request failed", extra={"path": path, "error": repr(error)})
            return 0
