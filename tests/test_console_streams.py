"""Console output goes to ``sys.stdout``/``sys.stderr`` as they are when written, and a closed one is quiet.

pytest swaps both streams for its capture and closes its own at the end of a run; a test may do
the same. Exporters and handlers that kept the stream of configure()'s moment then wrote to a
closed file, and each line became a "--- Logging error ---" traceback.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import obskit
from obskit._core import state as _state
from obskit._export.console import metric_exporter, span_exporter
from obskit._recording.loghandler import ConsoleStream

SRC = str(Path(obskit.__file__).resolve().parents[1])


def run_script(code: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OBSKIT_", "OTEL_"))}
    environment["PYTHONPATH"] = SRC
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )


def _dropped(signal: str) -> float:
    value = _state.STATE.store.registry.get_sample_value(
        "obskit_telemetry_dropped_total", {"signal": signal, "reason": "export_failed"}
    )
    return value or 0.0


SWAPPED_THEN_CLOSED = """
    import io, logging, sys
    import obskit

    real_out, real_err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = io.StringIO(), io.StringIO()  # a capture, as pytest's
    obskit.configure(traces_exporter="console", metrics_exporter="console", service_name="swapped")
    obskit.MetricsCollector().counter("late_events").inc()
    with obskit.trace_operation("late-span"):
        logging.getLogger("shop").warning("late record")
    logging.getLogger("obskit").warning("obskit's own warning")
    captured_out, captured_err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = real_out, real_err  # the capture ends: restored, then closed
    captured_out.close()
    captured_err.close()
    obskit.shutdown()
"""


def test_exports_after_the_configure_time_stream_closed_go_to_the_current_one() -> None:
    result = run_script(SWAPPED_THEN_CLOSED)
    assert result.returncode == 0, result.stderr
    assert "Logging error" not in result.stderr
    assert "closed file" not in result.stderr
    assert "[obskit span] late-span " in result.stderr  # exported at shutdown, to the stderr of then
    assert "[obskit metric] late_events_total " in result.stderr


CURRENT_STREAMS_CLOSED = """
    import io, logging, sys
    import obskit
    from obskit._core import state

    real_out, real_err = sys.stdout, sys.stderr
    obskit.configure(traces_exporter="console", metrics_exporter="console", service_name="closed")
    closed_out, closed_err = io.StringIO(), io.StringIO()
    closed_out.close()
    closed_err.close()
    sys.stdout, sys.stderr = closed_out, closed_err  # current, and closed
    with obskit.trace_operation("lost-span"):
        logging.getLogger("shop").warning("lost record")
    logging.getLogger("obskit").warning("obskit's own warning")
    obskit.shutdown()
    sys.stdout, sys.stderr = real_out, real_err
    registry = state.STATE.store.registry
    for signal in ("traces", "metrics", "logs"):
        value = registry.get_sample_value(
            "obskit_telemetry_dropped_total", {"signal": signal, "reason": "export_failed"}
        )
        print(signal, value or 0.0)
"""


def test_a_closed_current_stream_drops_the_lines_quietly_and_counts_them() -> None:
    result = run_script(CURRENT_STREAMS_CLOSED)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no "Logging error", no traceback, no "lost sys.stderr"
    dropped = dict(line.split() for line in result.stdout.splitlines())
    assert float(dropped["traces"]) >= 1
    assert float(dropped["metrics"]) >= 1
    assert float(dropped["logs"]) >= 1


def test_the_span_exporter_writes_to_the_stderr_of_the_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = span_exporter()
    obskit.configure(traces_exporter="none", metrics_exporter="none", logs_exporter="none")
    later = io.StringIO()
    monkeypatch.setattr(sys, "stderr", later)
    with obskit.testing.capture() as cap:
        with obskit.trace_operation("moment"):
            pass
        exporter.export(cap.spans())
    assert later.getvalue().startswith("[obskit span] moment ")


def test_the_metric_exporter_survives_a_closed_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.metrics.export import MetricExportResult, MetricsData

    exporter = metric_exporter()
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stderr", closed)
    assert exporter.export(MetricsData(resource_metrics=[])) is MetricExportResult.SUCCESS


def test_obskits_own_warnings_follow_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    obskit.configure(traces_exporter="none", metrics_exporter="none", logs_exporter="none")
    later = io.StringIO()
    monkeypatch.setattr(sys, "stderr", later)
    logging.getLogger("obskit").warning("to the stream of now")
    assert later.getvalue() == "obskit WARNING: to the stream of now\n"
    later.close()
    logging.getLogger("obskit").warning("to a closed stream")  # dropped, no "Logging error"


def test_a_stream_that_fails_while_open_still_reports_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a closed stream is quiet: any other failure is not hidden."""

    class Refusing(io.StringIO):
        def write(self, text: str) -> int:
            raise ValueError("refused")

    monkeypatch.setattr(sys, "stdout", Refusing())
    with pytest.raises(ValueError, match="refused"):
        ConsoleStream("stdout").write("line\n")


def test_a_closed_stream_counts_the_lines_it_drops(monkeypatch: pytest.MonkeyPatch) -> None:
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stdout", closed)
    before = _dropped("logs")
    stream = ConsoleStream("stdout", "logs")
    assert stream.write("one\ntwo\n") == 0
    stream.flush()
    assert _dropped("logs") == before + 2
