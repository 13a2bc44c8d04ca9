"""What ``obskit demo`` prints about its own telemetry: the banner, and the final "where to look".

Both go to stderr, so that stdout carries nothing but the JSON log lines (``obskit demo | jq``).
The span tree is rendered from finished spans teed off the configured tracer provider by one
extra span processor; the sample log line is rendered by obskit's ``JsonFormatter`` when the
record is emitted (inside its span, so with its ids).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import urllib.request
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any
from wsgiref.util import setup_testing_defaults

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from obskit._core import state as _state
from obskit.logging import JsonFormatter

__all__ = ["LogSample", "SpanTee", "banner", "key_metric_lines", "span_tree", "summary"]

#: Traces whose spans are kept until the one to show is known.
_RECENT_TRACES = 64


class SpanTee(SpanProcessor):
    """Keeps the finished spans of the last few traces, then only those of the trace to show."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._traces: OrderedDict[int, list[ReadableSpan]] = OrderedDict()
        self._kept: int | None = None

    @classmethod
    def attach(cls) -> SpanTee:
        """A tee added to the tracer provider obskit was configured with (none: spans are off)."""
        tee = cls()
        provider = _state.STATE.tracer_provider
        if provider is not None and hasattr(provider, "add_span_processor"):
            provider.add_span_processor(tee)
        return tee

    def keep(self, trace_id: int) -> None:
        """Keep (only) the spans of ``trace_id`` from now on."""
        with self._lock:
            self._kept = trace_id
            spans = self._traces.get(trace_id, [])
            self._traces = OrderedDict({trace_id: spans})

    def on_end(self, span: ReadableSpan) -> None:
        """Remember ``span`` if its trace may be the one shown."""
        trace_id = span.context.trace_id if span.context is not None else 0
        with self._lock:
            if self._kept is not None and trace_id != self._kept:
                return
            self._traces.setdefault(trace_id, []).append(span)
            self._traces.move_to_end(trace_id)
            while len(self._traces) > _RECENT_TRACES:
                self._traces.popitem(last=False)

    def kept(self) -> tuple[int | None, list[ReadableSpan]]:
        """The trace id chosen and its finished spans."""
        with self._lock:
            if self._kept is None:
                return None, []
            return self._kept, list(self._traces.get(self._kept, []))


class LogSample(logging.Handler):
    """Renders the first ``message`` record of a logger as obskit's JSON line, at emit time."""

    def __init__(self, logger: logging.Logger, message: str) -> None:
        super().__init__(logging.INFO)
        self.line: str | None = None
        self._logger = logger
        self._message = message
        self._json = JsonFormatter()

    @classmethod
    def attach(cls, logger_name: str, message: str = "order paid") -> LogSample:
        """A sample handler added to ``logger_name``; :meth:`detach` removes it."""
        logger = logging.getLogger(logger_name)
        sample = cls(logger, message)
        logger.addHandler(sample)
        return sample

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the first matching record, rendered while its span and context are current."""
        if self.line is None and record.getMessage() == self._message:
            self.line = self._json.format(record)

    def detach(self) -> None:
        """Remove the handler from its logger."""
        self._logger.removeHandler(self)


# -- rendering ------------------------------------------------------------------------------------


def _out(text: str = "") -> None:
    print(text, file=sys.stderr)


def _exporters(settings: Any) -> str:
    return "  ".join(
        f"{signal}: {','.join(getattr(settings, f'{signal}_exporter')) or 'none'}"
        for signal in ("traces", "metrics", "logs")
    )


def _metrics_urls(settings: Any, base_url: str) -> list[str]:
    from obskit.prometheus import server_address

    if "prometheus" not in settings.metrics_exporter:
        return []
    urls = [f"{base_url}{settings.prometheus_path}  (mounted in the app by obskit.wsgi.middleware)"]
    address = server_address()
    if address is not None:
        host, port = address
        host = f"[{host}]" if ":" in host else host
        urls.append(
            f"http://{host}:{port}{settings.prometheus_path}  (standalone scrape server, "
            "obskit.prometheus.server_address())"
        )
    return urls


def banner(settings: Any, base_url: str, args: Any) -> None:
    """Where the demo serves and where each signal goes, printed before the traffic starts."""
    until = f"{args.requests} requests or {args.duration:g} s" if args.requests else f"{args.duration:g} s"
    _out(f"obskit demo: service {settings.service_name!r} at {base_url}; traffic for {until} (Ctrl-C stops)")
    _out(f"obskit demo: exporters  {_exporters(settings)}")
    _out("obskit demo: JSON log lines go to stdout, [obskit span] lines to stderr; summary at the end")
    sys.stderr.flush()


def scrape(settings: Any, base_url: str) -> tuple[str, str]:
    """(where from, exposition text): the real scrape endpoint, else obskit's exposition in-process."""
    if "prometheus" in settings.metrics_exporter:
        url = f"{base_url}{settings.prometheus_path}"
        with urllib.request.urlopen(url, timeout=5) as reply:
            return f"scraped from {url}", str(reply.read().decode())
    from obskit.prometheus import make_wsgi_app

    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    body: Iterable[bytes] = make_wsgi_app()(environ, lambda *a: lambda data: None)
    return "read in-process (prometheus is not among metrics_exporter)", b"".join(body).decode()


def key_metric_lines(text: str, namespace: str) -> list[str]:
    """The exposition lines worth showing: requests by route, jobs by status, cache, the custom ones."""
    wanted = (
        "http_server_requests_total",
        f"{namespace}_jobs_total",
        f"{namespace}_cache_requests_total",
        "demo_orders_paid_total",
        "demo_order_value_count",
        "demo_order_value_sum",
    )
    lines = [
        line
        for line in text.splitlines()
        if line and not line.startswith("#") and re.split(r"[{ ]", line, maxsplit=1)[0] in wanted
    ]
    return sorted(lines, key=lambda line: (wanted.index(re.split(r"[{ ]", line, maxsplit=1)[0]), line))


def _tree_glyphs() -> tuple[str, str, str]:
    try:
        "└├│".encode(sys.stderr.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return "`- ", "|- ", "|  "
    return "└─ ", "├─ ", "│  "


def _span_label(span: ReadableSpan) -> str:
    duration = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
    parts = [span.name, span.kind.name, f"{duration:.1f} ms"]
    status = (span.attributes or {}).get("http.response.status_code")
    if status is not None:
        parts.append(str(status))
    if span.status.status_code.name == "ERROR":
        parts.append(f"ERROR {span.status.description or ''}".rstrip())
    return "  ".join(parts)


def span_tree(spans: list[ReadableSpan]) -> list[str]:
    """One line per span, children indented under their parent, in start order."""
    last, middle, pipe = _tree_glyphs()
    ids = {s.context.span_id for s in spans if s.context is not None}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        parent = span.parent.span_id if span.parent is not None else None
        children.setdefault(parent if parent in ids else None, []).append(span)
    lines: list[str] = []

    def walk(span: ReadableSpan, prefix: str, connector: str, below: str) -> None:
        lines.append(prefix + connector + _span_label(span))
        kids = children.get(span.context.span_id if span.context is not None else None, [])
        for index, kid in enumerate(kids):
            end = index == len(kids) - 1
            walk(kid, prefix + below, last if end else middle, "   " if end else pipe)

    for root in children.get(None, []):
        walk(root, "", "", "")
    return lines


def summary(
    settings: Any, base_url: str, traffic: Any, elapsed: float, tee: SpanTee, sample: LogSample
) -> None:
    """Print the "where to look" block on stderr, after the spans so far are flushed."""
    source, text = scrape(settings, base_url)
    provider = _state.STATE.tracer_provider
    if provider is not None and hasattr(provider, "force_flush"):
        provider.force_flush(2000)  # the [obskit span] lines come out before the summary
    sys.stdout.flush()
    statuses = ", ".join(f"{code} x{count}" for code, count in sorted(traffic.statuses.items()))
    _out()
    _out(" obskit demo: where to look ".center(78, "="))
    jobs = f"{traffic.jobs} batch jobs"
    _out(f"Traffic    {traffic.requests} requests ({statuses}) and {jobs} in {elapsed:.1f} s")
    _out(f"Service    {base_url}  (try /orders/1001, /health, {settings.readiness_path})")
    for index, url in enumerate(_metrics_urls(settings, base_url)):
        _out(f"{'Metrics' if index == 0 else '':<11}{url}")
    _out(f"Exporters  {_exporters(settings)}")
    if "otlp" in settings.traces_exporter + settings.metrics_exporter + settings.logs_exporter:
        _out(f"OTLP       {settings.otlp_endpoint or 'the default endpoint'} ({settings.otlp_protocol})")
    _out()
    _out(f"Key metrics, {source}:")
    for line in key_metric_lines(text, settings.metric_namespace) or ["(none recorded)"]:
        _out(f"  {line}")
    _out()
    _out("Sample log line (stdout has one JSON line per record):")
    _out(f"  {sample.line or '(none: the log level or logs_exporter hides it)'}")
    _out()
    trace_id, spans = tee.kept()
    if trace_id is None or not spans:
        _out("Span tree: none recorded (traces_exporter is none, or the trace was not sampled)")
    else:
        _out(f"Span tree of one request (trace_id {trace_id:032x}):")
        for line in span_tree(spans):
            _out(f"  {line}")
    _out("=" * 78)
    sys.stderr.flush()
