"""Memory of 10,000 ``@track_job`` calls (reported, no target).

Measured with ``tracemalloc`` around 1,500 calls of each variant, after ``configure()`` and with
the same hand-written set-up as benchmark 1: the peak of traced memory above the starting point
while the calls run (spans wait in the BatchSpanProcessor queue until its worker exports them,
so the peak mostly measures spans in flight) and what is still held after the queue is flushed and garbage is
collected (what the calls leave behind: should be close to zero). The hand-written equivalents of
benchmarks 1 and 3 are measured the same way beside them.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from typing import Any

from _harness import Config, Row, info
from _setup import MAX_SPANS_PER_SAMPLE, PromJob, configured, hand_written_provider
from bench_tracing import JOB, _hand_written, _hand_written_metrics, work

import obskit

#: Fewer than a span queue holds: the peak is then every span in flight, none dropped.
CALLS = MAX_SPANS_PER_SAMPLE


def _measure(call: Callable[[], Any], flush: Callable[[], Any]) -> tuple[float, float]:
    """(peak KiB above start while calling, KiB still held after flushing and collecting)."""
    call()  # first call resolves children and caches outside the measurement
    flush()
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        for _ in range(CALLS):
            call()
        _, peak = tracemalloc.get_traced_memory()
        flush()
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return (peak - start) / 1024, (end - start) / 1024


def _obskit_job() -> Callable[[], int]:
    @obskit.track_job(JOB)
    def job() -> int:
        return work()

    return job


def run(config: Config) -> list[Row]:
    rows: list[Row] = []
    with configured() as state:
        provider, _ = hand_written_provider(state.settings)
        hand, _ = _hand_written(provider.get_tracer("bench"), PromJob(JOB))
        base = _measure(hand, provider.force_flush)
        ours = _measure(_obskit_job(), state.tracer_provider.force_flush)
        rows.append(_row("track_job traced, peak", base[0], ours[0], "spans queued for export"))
        rows.append(_row("track_job traced, held after", base[1], ours[1], "after flush + gc"))
        provider.shutdown()
    with configured(traces_exporter="none"):
        hand, _ = _hand_written_metrics(PromJob(JOB))
        base = _measure(hand, lambda: None)
        ours = _measure(_obskit_job(), lambda: None)
        rows.append(_row("track_job tracing off, peak", base[0], ours[0], ""))
        rows.append(_row("track_job tracing off, held after", base[1], ours[1], "after gc"))
    return rows


def _row(name: str, base: float, ours: float, note: str) -> Row:
    row = info("M", f"memory: {name} ({CALLS:,} calls)", "hand-written", base, ours, note=note, unit="KiB")
    if abs(base) < 1:  # a ratio of two near-zero numbers says nothing
        row.ratio = None
    return row


if __name__ == "__main__":
    import sys

    from _harness import table

    print(table(run(Config.make("--quick" in sys.argv))))
