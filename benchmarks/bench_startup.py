"""Benchmark S: what a process pays, from spawn to exit, for setting obskit up instead of by hand.

Fresh interpreters run, alternately, the hand-written set-up (a ``TracerProvider`` with a
``BatchSpanProcessor(ConsoleSpanExporter())``, prometheus_client's ``start_http_server`` and
``logging.basicConfig``) and ``obskit.configure()`` doing the same (console spans, the
Prometheus scrape server, console logs); each then makes one span around one log line and
exits, flushing the span on the way out. Each run is timed from spawn to exit, so the figure
includes the imports, the set-up and the exit hooks (where a scrape server that polls for its
shutdown, or a span pipeline that waits, shows). The judged ratio is the median over the rounds
of obskit / hand-written within the round. The CPU time the same children used (user + system,
from ``getrusage``) is reported beside it: on a shared machine it moves less than wall time.

Two more pairs are reported without a target: the imports alone (``import obskit`` against the
hand-written script's imports) and, except with ``--quick``, both set-ups in a process that also
imports ``httpx`` and ``requests`` (obskit instruments them for client spans; the hand-written
one does not).

As in benchmark 6, every child reads and writes bytecode under one temporary
``PYTHONPYCACHEPREFIX``, warmed before timing, and the scrape servers bind a free port (0).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from _harness import Config, Row, info

HAND_IMPORTS = """\
import logging
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from prometheus_client import start_http_server
"""
HAND = (
    HAND_IMPORTS
    + """\
provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
trace.set_tracer_provider(provider)
start_http_server(0, addr="127.0.0.1")
logging.basicConfig(level=logging.INFO)
with trace.get_tracer("app").start_as_current_span("startup"):
    logging.getLogger("app").info("started")
"""
)
OBSKIT_IMPORTS = "import logging\nimport obskit\n"
OBSKIT = (
    OBSKIT_IMPORTS
    + """\
obskit.configure(
    traces_exporter="console", metrics_exporter="prometheus", logs_exporter="console", prometheus_port=0
)
with obskit.trace_operation("startup"):
    logging.getLogger("app").info("started")
"""
)
CLIENTS = "import httpx, requests\n"


def _children_cpu_ms() -> float:
    """User + system CPU milliseconds of the children that have exited so far (0 without ``resource``)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return 0.0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def _spawn(code: str, env: dict[str, str]) -> tuple[float, float]:
    """Milliseconds from spawning a fresh interpreter running ``code`` to its exit; and its CPU time."""
    cpu = _children_cpu_ms()
    start = time.perf_counter_ns()
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return (time.perf_counter_ns() - start) / 1e6, _children_cpu_ms() - cpu


def _check(code: str, env: dict[str, str]) -> None:
    """Both scripts must really export the span and write the log line (else the race is unfair)."""
    done = subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True, text=True)
    out = done.stdout + done.stderr
    if "startup" not in out or "started" not in out:
        raise RuntimeError(f"the start-up script did not export its span and log line:\n{code}\n{out}")


def _rounds(
    pairs: list[tuple[str, str]], rounds: int, env: dict[str, str]
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Spawn every script once per round, the order alternating; (wall ms, CPU ms) per script."""
    codes = [code for pair in pairs for code in pair]
    wall: dict[str, list[float]] = {code: [] for code in codes}
    cpu: dict[str, list[float]] = {code: [] for code in codes}
    for code in codes:  # compile into the cache, warm the OS caches
        _spawn(code, env)
    for index in range(rounds):
        for code in codes if index % 2 == 0 else reversed(codes):
            elapsed, used = _spawn(code, env)
            wall[code].append(elapsed)
            cpu[code].append(used)
    return wall, cpu


def _ratio(base: list[float], cand: list[float]) -> float:
    return statistics.median(c / b for b, c in zip(base, cand, strict=True))


def run(config: Config) -> list[Row]:
    cache = tempfile.mkdtemp(prefix="obskit-bench-pycache-")
    try:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        return _run(config, {**env, "PYTHONPYCACHEPREFIX": cache})
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _run(config: Config, env: dict[str, str]) -> list[Row]:
    _check(HAND, env)
    _check(OBSKIT, env)
    imports = (HAND_IMPORTS, OBSKIT_IMPORTS)
    whole = (HAND, OBSKIT)
    clients = (CLIENTS + HAND, CLIENTS + OBSKIT)
    pairs = [whole, imports] if config.quick else [whole, imports, clients]  # --quick: a CI smoke run
    times, cpu = _rounds(pairs, config.import_rounds, env)
    rows = []
    base, cand = times[HAND], times[OBSKIT]
    ratio = _ratio(base, cand)
    rows.append(
        Row(
            "S",
            "start and exit: configure() (console spans, scrape server, console logs), one span",
            "hand-written set-up",
            statistics.median(base),
            statistics.median(cand),
            ratio,
            min(cand) / min(base),
            "<= 1.00x",
            ratio <= 1.0,
            f"median of {len(base)} interleaved spawns each",
            unit="ms",
        )
    )
    if min(cpu[HAND]) > 0:
        row = info(
            "S",
            "the same runs, CPU time (user + system)",
            "hand-written set-up",
            statistics.median(cpu[HAND]),
            statistics.median(cpu[OBSKIT]),
            note="less sensitive than wall time to other processes on the machine",
            unit="ms",
        )
        row.ratio = _ratio(cpu[HAND], cpu[OBSKIT])
        row.min_ratio = min(cpu[OBSKIT]) / min(cpu[HAND])
        rows.append(row)
    for (hand, ours), name, baseline in (
        (imports, "imports only (no set-up)", "the hand-written imports"),
        (clients, "start and exit, httpx and requests imported", "hand-written (no client spans)"),
    ):
        if hand not in times:
            continue
        row = info(
            "S",
            name,
            baseline,
            statistics.median(times[hand]),
            statistics.median(times[ours]),
            unit="ms",
        )
        row.ratio = _ratio(times[hand], times[ours])
        row.min_ratio = min(times[ours]) / min(times[hand])
        if hand.startswith(CLIENTS):
            row.note = (
                "obskit instruments both clients (their instrumentations: about 25 ms); the baseline does not"
            )
        rows.append(row)
    return rows


if __name__ == "__main__":
    from _harness import table

    print(table(run(Config.make("--quick" in sys.argv))))
