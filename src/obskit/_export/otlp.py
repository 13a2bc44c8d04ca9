"""The OTLP backend: the stock OpenTelemetry OTLP exporters (gRPC or HTTP/protobuf), all three signals.

Every option is resolved by obskit (keyword > ``OTEL_EXPORTER_OTLP_*`` variable > default, per
signal then generic) and passed to the exporters explicitly, as the OpenTelemetry specification
defines it, so that what is sent never depends on how an exporter version re-reads the
environment (the Python HTTP exporters, for one, read ``*_TIMEOUT`` as seconds, and merge
environment headers into the ones they are given):

- endpoint: over HTTP a generic endpoint gets ``/v1/traces``, ``/v1/metrics`` or ``/v1/logs``
  appended, a per-signal one is used as is; over gRPC it is used as is. Defaults:
  ``http://localhost:4318`` (HTTP) and ``http://localhost:4317`` (gRPC).
- timeout: milliseconds in obskit and the specification, seconds in the Python exporters.
- gRPC transport security: ``https://`` is TLS, ``http://`` plain text, and an endpoint without a
  scheme is plain text only when ``insecure`` is true.

The exporters are built in ``configure()`` (no network call: gRPC channels connect lazily) and
only ever called by the SDK's batch processors and metric reader, on their own threads. A forked
child gets fresh connections (:func:`_after_fork_in_child`).

``jaeger`` is a preset: OTLP over gRPC to ``jaeger_endpoint``, traces only, since Jaeger receives
OTLP natively and its own exporters are deprecated.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import weakref
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from obskit._core.errors import ConfigError, report_internal_error
from obskit._core.settings import Settings

__all__ = [
    "OtlpOptions",
    "endpoint_setting",
    "jaeger_span_exporter",
    "log_exporter",
    "metric_exporter",
    "options",
    "span_exporter",
]

DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"
_PATHS = {"traces": "v1/traces", "metrics": "v1/metrics", "logs": "v1/logs"}
_EXTRA = 'pip install "obskit[otlp]"'

#: Exporters whose connections a forked child must not share with its parent.
_exporters: weakref.WeakSet[Any] = weakref.WeakSet()
_fork_hook_lock = threading.Lock()
_fork_hook_registered = False
#: The parent's channels and sessions, kept (never closed or collected) in a forked child: their
#: sockets are the parent's too, and tearing them down here could disturb the parent's exports.
_inherited: list[Any] = []


@dataclasses.dataclass(frozen=True)
class OtlpOptions:
    """What one signal's exporter is built with, resolved from the settings.

    Attributes:
        signal: ``traces``, ``metrics`` or ``logs``.
        protocol: ``grpc`` or ``http/protobuf``.
        endpoint: the URL (HTTP: with the signal path) or gRPC target exactly as exported to.
        headers: sent with every export (gRPC metadata keys lower-cased, as gRPC requires).
        timeout: seconds per export, as the Python exporters take it.
        compression: ``gzip``, ``deflate`` or ``none``.
        certificate: a PEM file of trusted roots for TLS, or None for the system's.
        insecure: gRPC only: plain text instead of TLS.
    """

    signal: str
    protocol: str
    endpoint: str
    headers: Mapping[str, str] = dataclasses.field(repr=False)
    timeout: float
    compression: str
    certificate: str | None
    insecure: bool


def endpoint_setting(settings: Settings, signal: str) -> str:
    """The name of the setting the endpoint of ``signal`` comes from (for messages)."""
    if getattr(settings, f"otlp_{signal}_endpoint") is not None:
        return f"otlp_{signal}_endpoint"
    return "otlp_endpoint"


def _http_endpoint(settings: Settings, signal: str, insecure: bool | None) -> str:
    specific: str | None = getattr(settings, f"otlp_{signal}_endpoint")
    url = specific if specific is not None else (settings.otlp_endpoint or DEFAULT_HTTP_ENDPOINT)
    if "://" not in url:
        # ``host:port`` is no URL to HTTP; as Go's WithEndpoint/WithInsecure do, ``insecure``
        # picks the scheme (TLS unless it is true).
        url = f"{'http' if insecure else 'https'}://{url}"
    if specific is not None:
        return url
    return f"{url.removesuffix('/')}/{_PATHS[signal]}"


def _grpc_insecure(endpoint: str, insecure: bool | None) -> bool:
    scheme = urlparse(endpoint).scheme if "://" in endpoint else ""
    if scheme == "https":
        return False
    if scheme == "http":
        return True
    return bool(insecure)


def options(settings: Settings, signal: str) -> OtlpOptions:
    """The resolved options of ``signal``'s OTLP exporter."""
    protocol: str = settings.otlp(signal, "protocol")
    insecure: bool | None = settings.otlp(signal, "insecure")
    headers: Mapping[str, str] = settings.otlp(signal, "headers") or {}
    if protocol == "grpc":
        endpoint = settings.otlp(signal, "endpoint") or DEFAULT_GRPC_ENDPOINT
        insecure = _grpc_insecure(endpoint, insecure)
        headers = {key.lower(): value for key, value in headers.items()}
    else:
        endpoint = _http_endpoint(settings, signal, insecure)
        insecure = urlparse(endpoint).scheme == "http"
    return OtlpOptions(
        signal=signal,
        protocol=protocol,
        endpoint=endpoint,
        headers=dict(headers),
        timeout=float(settings.otlp(signal, "timeout")) / 1000.0,
        compression=settings.otlp(signal, "compression"),
        certificate=settings.otlp(signal, "certificate"),
        insecure=insecure,
    )


def _jaeger_options(settings: Settings) -> OtlpOptions:
    endpoint = settings.jaeger_endpoint
    scheme = urlparse(endpoint).scheme if "://" in endpoint else ""
    return OtlpOptions(
        signal="traces",
        protocol="grpc",
        endpoint=endpoint,
        # Never the OTLP headers: they may hold a vendor's credentials, not Jaeger's.
        headers={},
        timeout=float(settings.otlp("traces", "timeout")) / 1000.0,
        compression="none",
        certificate=None,
        # A local Jaeger listens in plain text; only ``https://`` asks for TLS.
        insecure=scheme != "https",
    )


def _import(module: str, signal: str) -> Any:
    """Import an exporter dependency; a missing one is the ConfigError naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"{signal}_exporter",
            "otlp",
            "an exporter whose dependencies are installed",
            f"{(exc.name or module)!r} is not installed: {_EXTRA}",
        ) from exc


_PACKAGES = {
    "grpc": "opentelemetry.exporter.otlp.proto.grpc",
    "http/protobuf": "opentelemetry.exporter.otlp.proto.http",
}
#: The same module and class names in both packages.
_CLASSES = {
    "traces": ("trace_exporter", "OTLPSpanExporter"),
    "metrics": ("metric_exporter", "OTLPMetricExporter"),
    "logs": ("_log_exporter", "OTLPLogExporter"),
}


def _cumulative() -> dict[type, Any]:
    """Every instrument kind cumulative, as recorded: pins what the bridge sends."""
    from opentelemetry.sdk import metrics as sdk_metrics
    from opentelemetry.sdk.metrics.export import AggregationTemporality

    kinds = (
        sdk_metrics.Counter,
        sdk_metrics.UpDownCounter,
        sdk_metrics.Histogram,
        sdk_metrics.ObservableCounter,
        sdk_metrics.ObservableUpDownCounter,
        sdk_metrics.ObservableGauge,
    )
    return dict.fromkeys(kinds, AggregationTemporality.CUMULATIVE)


def _grpc_kwargs(opts: OtlpOptions) -> dict[str, Any]:
    grpc = _import("grpc", opts.signal)
    kwargs: dict[str, Any] = {
        "endpoint": opts.endpoint,
        "insecure": opts.insecure,
        "headers": dict(opts.headers),
        "timeout": opts.timeout,
        "compression": {"gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate}.get(
            opts.compression, grpc.Compression.NoCompression
        ),
    }
    if not opts.insecure:
        roots = _read_certificate(opts) if opts.certificate else None
        kwargs["credentials"] = grpc.ssl_channel_credentials(root_certificates=roots)
    return kwargs


def _read_certificate(opts: OtlpOptions) -> bytes:
    assert opts.certificate is not None
    try:
        with open(opts.certificate, "rb") as pem:
            return pem.read()
    except OSError as exc:
        raise ConfigError(
            f"otlp_{opts.signal}_certificate or otlp_certificate", opts.certificate, "a readable PEM file"
        ) from exc


def _http_kwargs(opts: OtlpOptions) -> dict[str, Any]:
    compression = _import("opentelemetry.exporter.otlp.proto.http", opts.signal).Compression
    return {
        "endpoint": opts.endpoint,
        "headers": dict(opts.headers),
        "timeout": opts.timeout,
        "compression": {"gzip": compression.Gzip, "deflate": compression.Deflate}.get(
            opts.compression, compression.NoCompression
        ),
        "certificate_file": opts.certificate,
    }


def _pin_headers(exporter: Any, opts: OtlpOptions) -> None:
    """Drop headers an exporter added from the environment on top of the ones it was given.

    The exporters merge ``OTEL_EXPORTER_OTLP_*HEADERS`` into explicit headers (HTTP) or read it
    when given none (gRPC); obskit has resolved that variable already, and a keyword argument
    must replace it, not add to it.
    """
    if opts.protocol == "grpc":
        if hasattr(exporter, "_headers"):
            exporter._headers = tuple(opts.headers.items())
        return
    current = getattr(getattr(exporter, "_client", None), "_headers", None)
    if isinstance(current, dict):
        from opentelemetry.exporter.otlp.proto.http import _OTLP_HTTP_HEADERS

        keep = {key.lower() for key in (*opts.headers, *_OTLP_HTTP_HEADERS, "content-encoding")}
        for key in [key for key in current if key.lower() not in keep]:
            del current[key]


def build(opts: OtlpOptions) -> Any:
    """The stock OTLP exporter for ``opts``, registered for a reset in a forked child."""
    module, name = _CLASSES[opts.signal]
    kwargs = _grpc_kwargs(opts) if opts.protocol == "grpc" else _http_kwargs(opts)
    if opts.signal == "metrics":
        kwargs["preferred_temporality"] = _cumulative()
    exporter = getattr(_import(f"{_PACKAGES[opts.protocol]}.{module}", opts.signal), name)(**kwargs)
    _pin_headers(exporter, opts)
    _track_for_fork(exporter)
    return exporter


def span_exporter(settings: Settings) -> Any:
    """The OTLP span exporter (gRPC or HTTP/protobuf by ``otlp_traces_protocol``)."""
    return build(options(settings, "traces"))


def metric_exporter(settings: Settings) -> Any:
    """The OTLP metric exporter, cumulative temporality, fed by obskit's bridge."""
    return build(options(settings, "metrics"))


def log_exporter(settings: Settings) -> Any:
    """The OTLP log record exporter."""
    return build(options(settings, "logs"))


def jaeger_span_exporter(settings: Settings) -> Any:
    """OTLP over gRPC to ``jaeger_endpoint``: Jaeger's native OTLP receiver, traces only."""
    return build(_jaeger_options(settings))


def _track_for_fork(exporter: Any) -> None:
    global _fork_hook_registered
    _exporters.add(exporter)
    with _fork_hook_lock:
        if not _fork_hook_registered and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork_in_child)
            _fork_hook_registered = True


def _after_fork_in_child() -> None:
    """Give each live exporter connections of the child's own.

    A gRPC channel is bound to the parent's gRPC threads, and a pooled HTTP connection would be
    written to by both processes. The SDK restarts its batch and reader threads by itself.
    """
    for exporter in list(_exporters):
        try:
            _reconnect(exporter)
        except Exception as exc:
            report_internal_error("OTLP exporter after fork", exc)


def _reconnect(exporter: Any) -> None:
    if getattr(exporter, "_shutdown", False):
        return
    if hasattr(exporter, "_initialize_channel_and_stub"):  # gRPC: a new channel, connected lazily
        _inherited.append(exporter._channel)
        exporter._initialize_channel_and_stub()
        return
    # HTTP (requests): a new session, so that no connection pooled in the parent is reused.
    transport = getattr(getattr(exporter, "_client", None), "_transport", None)
    session = getattr(transport, "_session", None)
    if transport is not None and session is not None:
        import requests

        _inherited.append(session)
        fresh = requests.Session()
        fresh.verify = session.verify
        fresh.cert = session.cert
        transport._session = fresh
