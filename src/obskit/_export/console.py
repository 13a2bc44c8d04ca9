"""The console backend: spans and metrics as short readable lines on stderr. Needs nothing installed.

The exporters write to ``sys.stderr`` as it is at each export, not the stream of configure()'s
moment: pytest (or a test) swaps that stream and closes it later, and a batch exported after
that would fail on a closed file. A closed stream drops the lines, counted, without an error.
"""

from __future__ import annotations

import math
from typing import IO, TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from obskit._core.redact import safe_text
from obskit._recording.loghandler import ConsoleStream

if TYPE_CHECKING:  # the SDK's metrics modules (about 10 ms) are imported when metrics go to the console
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricsData

__all__ = ["format_metrics", "format_span", "metric_exporter", "span_exporter"]


def _labels(attributes: object) -> str:
    items: dict[str, object] = dict(attributes or {})  # type: ignore[call-overload]
    return "{" + ",".join(f'{k}="{v!s}"' for k, v in items.items()) + "}" if items else ""


def format_span(span: ReadableSpan) -> str:
    """``[obskit span] name 12.345ms OK trace=… span=… parent=… key=value ...``."""
    ctx = span.context
    duration_ms = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
    parent = format(span.parent.span_id, "016x") if span.parent is not None else "-"
    status = span.status.status_code.name
    if span.status.description:
        status = f"{status}({span.status.description})"
    attributes = " ".join(f"{k}={_one_line(v)}" for k, v in (span.attributes or {}).items())
    trace_id = format(ctx.trace_id, "032x") if ctx else "-"
    span_id = format(ctx.span_id, "016x") if ctx else "-"
    line = (
        f"[obskit span] {_one_line(span.name)} {duration_ms:.3f}ms {_one_line(status)} trace={trace_id}"
        f" span={span_id} parent={parent} {attributes}".rstrip()
    )
    return safe_text(line) + "\n"  # valid UTF-8 whatever the values held (spans come cleaned)


def _one_line(value: object) -> str:
    """``value`` as text on one line: line breaks shown escaped, so that a span stays one line."""
    text = str(value)
    if "\n" in text or "\r" in text:
        return text.replace("\r", "\\r").replace("\n", "\\n")
    return text


def format_metrics(data: MetricsData) -> str:
    """One line per data point, in the Prometheus text style."""
    from opentelemetry.sdk.metrics.export import Histogram

    lines = []
    for resource_metrics in data.resource_metrics:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    labels = _labels(point.attributes)
                    if isinstance(metric.data, Histogram):
                        mean = point.sum / point.count if point.count else math.nan  # type: ignore[union-attr]
                        lines.append(
                            f"[obskit metric] {metric.name}{labels} count={point.count}"  # type: ignore[union-attr]
                            f" sum={point.sum:g} mean={mean:g}"  # type: ignore[union-attr]
                        )
                    else:
                        lines.append(f"[obskit metric] {metric.name}{labels} {point.value:g}")  # type: ignore[union-attr]
    return safe_text("\n".join(lines)) + "\n" if lines else ""


def span_exporter(settings: object = None, out: IO[str] | None = None) -> ConsoleSpanExporter:
    """OpenTelemetry's console span exporter with obskit's one-line format, on stderr (or ``out``)."""
    stream: Any = out if out is not None else ConsoleStream("stderr", "traces")
    return ConsoleSpanExporter(out=stream, formatter=format_span)


def metric_exporter(settings: object = None, out: IO[str] | None = None) -> ConsoleMetricExporter:
    """OpenTelemetry's console metric exporter, one line per point, on stderr (or ``out``)."""
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

    stream: Any = out if out is not None else ConsoleStream("stderr", "metrics")
    return ConsoleMetricExporter(out=stream, formatter=format_metrics)
