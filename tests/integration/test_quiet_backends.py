"""Issue 11, quiet: a broken backend writes one line a minute at most, and one when it recovers.

A real OTLP receiver (``mode="unavailable"``: gRPC ``UNAVAILABLE`` / HTTP 503), a port that
refuses connections and a black hole stand for a collector that is down, for longer than ten
export intervals, while the application logs to the console and records spans. Everything that
reaches the file descriptors 1 and 2 (the console log lines, obskit's own stderr handler, gRPC's
C core) and the application's own handler on the root logger is counted.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

import obskit
from obskit import trace_operation
from obskit._export.pipeline import message_class
from obskit._runtime import lifecycle as _runtime

try:
    from . import otlp_receiver as rx
except ImportError:  # run as a top-level module (rootdir on sys.path)
    import otlp_receiver as rx  # type: ignore[no-redef]

pytestmark = pytest.mark.integration

#: How long the collector stays down: many export intervals, every signal failing again and again.
DOWN_SECONDS = 10.0
app_log = logging.getLogger("tests.quiet")


class RootRecords(logging.Handler):
    """The application's own handler on the root logger: what it would have written."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def _fresh_exporter_dedup() -> None:
    """OpenTelemetry's exporters drop a message repeated within a 20 s window (their DuplicateFilter,
    state kept on the logger): one logged by an earlier test in this process would hide this test's
    first line, so each test starts with none remembered."""
    for logger in list(logging.root.manager.loggerDict.values()):
        for found in getattr(logger, "filters", ()):
            if type(found).__name__ == "DuplicateFilter" and hasattr(found, "last_log"):
                del found.last_log


@pytest.fixture
def root_records() -> RootRecords:
    handler = RootRecords()
    logging.getLogger().addHandler(handler)  # conftest restores the root's handlers
    return handler


@contextlib.contextmanager
def refusing() -> Iterator[Any]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield type("Refusing", (), {"endpoint": f"http://127.0.0.1:{sock.getsockname()[1]}"})()


def down_peer(mode: str, protocol: str) -> Any:
    if mode == "unavailable":
        return rx.receiver(protocol, mode="unavailable")
    if mode == "black_hole":
        return rx.BlackHole()
    return refusing()


def configure(endpoint: str, protocol: str) -> None:
    obskit.configure(
        service_name="quiet",
        traces_exporter="otlp",
        metrics_exporter="otlp",
        logs_exporter="console,otlp",
        log_format="json",
        otlp_protocol=protocol,
        otlp_endpoint=endpoint,
        otlp_timeout=500,
        metric_export_interval_ms=200,
        shutdown_timeout=2.0,
    )


def keep_busy(seconds: float) -> None:
    """Spans and log lines for ``seconds``: every signal has something to export all along."""
    deadline = time.monotonic() + seconds
    number = 0
    while time.monotonic() < deadline:
        with trace_operation("quiet_step"):
            app_log.warning("step %d", number)
        number += 1
        time.sleep(0.05)


def library_lines(out: str) -> list[dict[str, Any]]:
    """The console log lines (JSON) of the exporting libraries' loggers."""
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [line for line in lines if message_class(str(line.get("logger", "")))]


def per_class(names: list[str]) -> dict[str, int]:
    return dict(collections.Counter(message_class(name) for name in names))


def foreign_stderr(err: str) -> list[str]:
    """Lines on fd 2 that are not obskit's own (gRPC's C core, a library's print)."""
    return [line for line in err.splitlines() if line.strip() and not line.startswith("obskit ")]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
@pytest.mark.parametrize("mode", ["unavailable", "refused", "black_hole"])
def test_a_collector_down_for_many_exports_writes_at_most_one_line_per_backend(
    protocol: str, mode: str, capfd: pytest.CaptureFixture[str], root_records: RootRecords
) -> None:
    with down_peer(mode, protocol) as peer:
        configure(peer.endpoint, protocol)
        keep_busy(DOWN_SECONDS)
        out, err = capfd.readouterr()
        records = list(root_records.records)
        obskit.shutdown()
    lines = library_lines(out)
    library_records = [r for r in records if message_class(r.name)]
    # Something said the collector is down, once: not once per export (about 50 metric exports,
    # 10 span and log batches each, retries besides).
    assert 1 <= len(lines) <= 3, lines
    assert all(count == 1 for count in per_class([line["logger"] for line in lines]).values()), lines
    assert per_class([r.name for r in library_records]) == per_class([line["logger"] for line in lines])
    assert all(r.levelno >= logging.WARNING for r in library_records), "library chatter below WARNING"
    assert foreign_stderr(err) == []
    assert [line for line in err.splitlines() if "work again" in line] == []


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_collector_that_recovers_is_said_to_work_again_once(
    protocol: str, capfd: pytest.CaptureFixture[str], root_records: RootRecords
) -> None:
    with rx.receiver(protocol, mode="unavailable") as receiver:
        configure(receiver.endpoint, protocol)
        keep_busy(DOWN_SECONDS)
        assert receiver.store.refused > 10
        receiver.set_mode("ok")
        deadline = time.monotonic() + 20
        while not all(receiver.store.items(signal) for signal in ("traces", "metrics", "logs")):
            assert time.monotonic() < deadline, "the receiver got not every signal once it was back"
            keep_busy(0.2)
        keep_busy(2.0)  # exports keep succeeding: no second recovery line, no new warning
        out, err = capfd.readouterr()
        obskit.shutdown()
    lines = library_lines(out)
    assert 1 <= len(lines) <= 3, lines
    assert all(count == 1 for count in per_class([line["logger"] for line in lines]).values()), lines
    recovered = [line for line in err.splitlines() if "work again" in line]
    assert len(recovered) == 1, err
    assert recovered[0].startswith(
        "obskit WARNING: obskit: exports to otlp work again (logs, metrics, traces)"
    )
    assert "counted in obskit_telemetry_dropped_total" in recovered[0]
    assert foreign_stderr(err) == []


def test_a_shorter_interval_lets_the_next_line_say_how_many_were_suppressed(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_runtime, "_QUIET_INTERVAL", 3.0)
    with rx.receiver("http/protobuf", mode="unavailable") as receiver:
        configure(receiver.endpoint, "http/protobuf")
        keep_busy(7.0)
        out, _ = capfd.readouterr()
        obskit.shutdown()
    lines = [line for line in library_lines(out) if message_class(line["logger"]) == "otlp"]
    assert 2 <= len(lines) <= 3, lines
    assert "similar message" not in lines[0]["message"]
    assert all("similar messages suppressed)" in line["message"] for line in lines[1:]), lines
