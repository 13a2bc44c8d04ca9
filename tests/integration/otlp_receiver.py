"""A real OTLP receiver for the tests: the official opentelemetry-proto gRPC services and HTTP endpoints.

Everything binds 127.0.0.1 on a free port, decodes real protobuf, and keeps what arrived (with the
gRPC metadata or HTTP headers and path) until the test asks. ``mode="unavailable"`` answers
gRPC ``UNAVAILABLE`` / HTTP 503 instead. :class:`BlackHole` accepts connections and never reads
or answers.
"""

from __future__ import annotations

import dataclasses
import gzip
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

REQUESTS = {
    "traces": (trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse),
    "metrics": (
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
    ),
    "logs": (logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse),
}


@dataclasses.dataclass
class Received:
    """One export request as it arrived."""

    signal: str
    request: Any
    headers: dict[str, str]  # lower-cased names: HTTP headers or gRPC metadata
    path: str = ""  # HTTP only
    encoding: str = ""  # HTTP Content-Encoding
    peer: str = ""  # the client's address and port: which connection it came over


class Store:
    """What a receiver got, with a bounded wait for a condition on it."""

    def __init__(self, first_metrics_delay: float = 0.0) -> None:
        self._items: list[Received] = []
        self._cond = threading.Condition()
        self.refused = 0  # requests answered with an error (unavailable mode)
        self._first_metrics_delay = first_metrics_delay

    def maybe_stall(self, signal: str) -> None:
        """Hold the first metrics request for a while: an export in flight, on demand."""
        if signal == "metrics" and self._first_metrics_delay:
            delay, self._first_metrics_delay = self._first_metrics_delay, 0.0
            time.sleep(delay)

    def add(self, item: Received) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def items(self, signal: str | None = None) -> list[Received]:
        with self._cond:
            return [i for i in self._items if signal is None or i.signal == signal]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.1))
            return True

    # Flattened views of the decoded data.
    def resource_spans(self) -> Iterator[tuple[dict[str, Any], Any]]:
        for item in self.items("traces"):
            for rs in item.request.resource_spans:
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        yield attributes(rs.resource.attributes), span

    def spans(self) -> list[Any]:
        return [span for _, span in self.resource_spans()]

    def metrics(self) -> dict[str, Any]:
        """Metric name -> the last metric of that name received (cumulative: the latest wins)."""
        found: dict[str, Any] = {}
        for item in self.items("metrics"):
            for rm in item.request.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        found[metric.name] = metric
        return found

    def log_records(self) -> list[Any]:
        return [
            record
            for item in self.items("logs")
            for rl in item.request.resource_logs
            for sl in rl.scope_logs
            for record in sl.log_records
        ]

    def resources(self, signal: str) -> list[dict[str, Any]]:
        field = {"traces": "resource_spans", "metrics": "resource_metrics", "logs": "resource_logs"}[signal]
        return [
            attributes(r.resource.attributes) for i in self.items(signal) for r in getattr(i.request, field)
        ]


def value(any_value: Any) -> Any:
    """A Python value from an OTLP ``AnyValue``."""
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return attributes(any_value.kvlist_value.values)
    return getattr(any_value, kind) if kind else None


def attributes(key_values: Any) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in key_values}


def _free_port_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    sock = _free_port_socket()
    port: int = sock.getsockname()[1]
    sock.close()
    return port


class _Servicer:
    def __init__(self, store: Store, signal: str, mode: str) -> None:
        self._store, self._signal, self._mode = store, signal, mode

    def Export(self, request: Any, context: Any) -> Any:
        if self._mode == "unavailable":
            self._store.refused += 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "receiver says: try later")
        metadata = {k.lower(): v for k, v in context.invocation_metadata()}
        self._store.add(Received(self._signal, request, metadata, peer=context.peer()))
        return REQUESTS[self._signal][1]()


class _TraceServicer(_Servicer, trace_service_pb2_grpc.TraceServiceServicer):
    pass


class _MetricsServicer(_Servicer, metrics_service_pb2_grpc.MetricsServiceServicer):
    pass


class _LogsServicer(_Servicer, logs_service_pb2_grpc.LogsServiceServicer):
    pass


class GrpcReceiver:
    """The three OTLP collector services on a gRPC server at 127.0.0.1:<free port>."""

    def __init__(self, mode: str = "ok", accept_gzip: bool = True, first_metrics_delay: float = 0.0) -> None:
        self.store = Store(first_metrics_delay)
        # Without gzip among its algorithms the server rejects a gzip-compressed request
        # (UNIMPLEMENTED): the way to see that a client really compresses.
        algorithms = 0b111 if accept_gzip else 0b011  # bits: identity, deflate, gzip
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8),
            options=[("grpc.compression_enabled_algorithms_bitset", algorithms)],
        )
        self._servicers = [
            _TraceServicer(self.store, "traces", mode),
            _MetricsServicer(self.store, "metrics", mode),
            _LogsServicer(self.store, "logs", mode),
        ]
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self._servicers[0], self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(self._servicers[1], self._server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(self._servicers[2], self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> GrpcReceiver:
        self._server.start()
        return self

    def set_mode(self, mode: str) -> None:
        """Answer from now on as ``mode`` says (``ok`` or ``unavailable``): a collector recovering."""
        for servicer in self._servicers:
            servicer._mode = mode

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None).wait(5)


def _signal_of(path: str) -> str | None:
    return next((s for s in REQUESTS if path.rstrip("/").endswith(s)), None)


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    protocol_version = "HTTP/1.1"  # keep-alive, as a collector does: the exporters pool connections

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        signal = _signal_of(self.path)
        if signal is None:
            self._answer(404, b"")
            return
        self.server.store.maybe_stall(signal)
        if self.server.mode == "unavailable":
            self.server.store.refused += 1
            self._answer(503, b"")
            return
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        if self.headers.get("Content-Type") != "application/x-protobuf":
            self._answer(415, b"")
            return
        request = REQUESTS[signal][0]()
        request.ParseFromString(body)
        headers = {k.lower(): v for k, v in self.headers.items()}
        peer = "{}:{}".format(*self.client_address[:2])
        self.server.store.add(Received(signal, request, headers, self.path, encoding, peer))
        self._answer(200, REQUESTS[signal][1]().SerializeToString())

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    store: Store
    mode: str


class HttpReceiver:
    """OTLP/HTTP (``POST .../v1/<signal>``, application/x-protobuf, gzip or deflate) at 127.0.0.1."""

    def __init__(self, mode: str = "ok", first_metrics_delay: float = 0.0) -> None:
        self.store = Store(first_metrics_delay)
        self._server = _HttpServer(("127.0.0.1", 0), _Handler)
        self._server.store, self._server.mode = self.store, mode
        self.port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})

    def __enter__(self) -> HttpReceiver:
        self._thread.start()
        return self

    def set_mode(self, mode: str) -> None:
        """Answer from now on as ``mode`` says (``ok`` or ``unavailable``): a collector recovering."""
        self._server.mode = mode

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def receiver(protocol: str, mode: str = "ok", first_metrics_delay: float = 0.0) -> Any:
    """A gRPC or HTTP receiver, by OTLP protocol name."""
    if protocol == "grpc":
        return GrpcReceiver(mode, first_metrics_delay=first_metrics_delay)
    return HttpReceiver(mode, first_metrics_delay)


class BlackHole:
    """A listening socket that accepts every connection and never reads from or answers it."""

    def __init__(self) -> None:
        self._sock = _free_port_socket()
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self._held.append(conn)

    def __enter__(self) -> BlackHole:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._held:
            conn.close()
        self._sock.close()
