"""Timing machinery shared by every benchmark: same-run baselines, interleaved rounds, medians.

A comparison times a *baseline* (the hand-written or third-party equivalent) and a *candidate*
(obskit) in the same process, alternating them round after round so that a noisy neighbour, a
frequency change or a warming cache hits both alike. Each sample runs a compiled ``for`` loop of
``n`` iterations (no per-iteration lambda call, the same loop overhead on both sides) and is
turned into nanoseconds per call. Each side's figure is its median over the rounds; the judged
ratio is the median over the rounds of candidate / baseline within the round (the two samples of
a round run back to back, so a slow drift cancels and a burst that hits one side is dropped as an
outlier); ``min ratio`` (fastest candidate sample over fastest baseline sample) is shown beside
it. Garbage collection is off inside a sample and run between samples, as ``timeit`` does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

Loop = Callable[[int], int]
"""Runs a body ``n`` times and returns the elapsed nanoseconds."""


@dataclasses.dataclass(frozen=True)
class Config:
    """How long to measure: ``quick`` is a smoke run, the default gives stable medians."""

    rounds: int = 21
    sample_seconds: float = 0.04
    import_rounds: int = 15
    quick: bool = False

    @classmethod
    def make(cls, quick: bool) -> Config:
        if quick:
            return cls(rounds=5, sample_seconds=0.01, import_rounds=4, quick=True)
        return cls()


@dataclasses.dataclass(frozen=True)
class Side:
    """One side of a comparison: a loop, what to run before each sample, and a label."""

    label: str
    loop: Loop
    prepare: Callable[[], None] | None = None


@dataclasses.dataclass
class Row:
    """One line of the results table."""

    group: str
    name: str
    baseline: str
    baseline_ns: float
    candidate_ns: float
    ratio: float | None = None
    min_ratio: float | None = None
    target: str = ""
    passed: bool | None = None
    note: str = ""
    candidate: str = "obskit"
    unit: str = "ns"

    @property
    def verdict(self) -> str:
        if self.passed is None:
            return "info"
        return "PASS" if self.passed else "FAIL"


def _identifier(name: str) -> bool:
    return name.isidentifier() and not name.startswith("__")


def loop(stmt: str, namespace: Mapping[str, Any]) -> Loop:
    """A function running ``stmt`` ``n`` times; names from ``namespace`` are bound as locals."""
    return _compile("def", stmt, namespace)


def async_loop(stmt: str, namespace: Mapping[str, Any]) -> Loop:
    """Like :func:`loop`, for a body that awaits; each sample runs in one event loop turn."""
    inner = _compile("async def", stmt, namespace)

    def run(n: int) -> int:
        return event_loop().run_until_complete(inner(n))  # type: ignore[no-any-return]

    return run


_EVENT_LOOP: list[asyncio.AbstractEventLoop] = []


def event_loop() -> asyncio.AbstractEventLoop:
    """The one event loop every async benchmark runs in (made on first use)."""
    if not _EVENT_LOOP:
        _EVENT_LOOP.append(asyncio.new_event_loop())
    return _EVENT_LOOP[0]


def close_event_loop() -> None:
    """Close the shared event loop, if one was made."""
    while _EVENT_LOOP:
        _EVENT_LOOP.pop().close()


def _compile(kind: str, stmt: str, namespace: Mapping[str, Any]) -> Any:
    names = [k for k in namespace if _identifier(k)]
    params = "".join(f", {k}={k}" for k in names)
    body = "\n".join(f"        {line}" for line in stmt.strip().splitlines())
    source = (
        f"{kind} __bench(__n, __clock=__clock{params}):\n"
        f"    __t0 = __clock()\n"
        f"    for __i in range(__n):\n"
        f"{body}\n"
        f"    return __clock() - __t0\n"
    )
    scope: dict[str, Any] = {**namespace, "__clock": time.perf_counter_ns}
    exec(compile(source, f"<bench: {stmt.strip().splitlines()[0]}>", "exec"), scope)
    return scope["__bench"]


def _sample(side: Side, n: int) -> float:
    if side.prepare is not None:
        side.prepare()
    gc.collect()
    gc.disable()
    try:
        elapsed = side.loop(n)
    finally:
        gc.enable()
    return elapsed / n


def _calibrate(sides: tuple[Side, ...], seconds: float) -> int:
    """Iterations per sample so that the slower side takes about ``seconds``."""
    n = 16
    while True:
        slowest = max(_sample(side, n) * n for side in sides)
        if slowest >= seconds * 1e9 * 0.2 or n >= 1 << 22:
            per_call = slowest / n
            return max(16, min(1 << 22, int(seconds * 1e9 / per_call)))
        n *= 4


def measure(
    baseline: Side, candidate: Side, config: Config, max_iterations: int | None = None
) -> tuple[list[float], list[float]]:
    """Per-call nanoseconds of each side, one sample per side per round, order alternating."""
    n = _calibrate((baseline, candidate), config.sample_seconds)
    if max_iterations is not None:
        n = min(n, max_iterations)
    _sample(baseline, n)  # warm-up: first-use caches, lazily created series
    _sample(candidate, n)
    base: list[float] = []
    cand: list[float] = []
    for index in range(config.rounds):
        order = ((baseline, base), (candidate, cand))
        for side, into in order if index % 2 == 0 else reversed(order):
            into.append(_sample(side, n))
    return base, cand


def compare(
    group: str,
    name: str,
    baseline: Side,
    candidate: Side,
    config: Config,
    *,
    max_ratio: float | None = None,
    min_speedup: float | None = None,
    max_iterations: int | None = None,
    note: str = "",
) -> Row:
    """Measure both sides and judge ``candidate / baseline`` (or its inverse for a speed-up)."""
    base, cand = measure(baseline, candidate, config, max_iterations)
    base_median, cand_median = statistics.median(base), statistics.median(cand)
    # The two samples of a round ran back to back: their ratio cancels what drifts slowly (load
    # from other processes, clock changes) and the median drops the rounds a burst hit unevenly.
    ratio = statistics.median(c / b for b, c in zip(base, cand, strict=True))
    min_ratio = min(cand) / min(base)
    row = Row(
        group,
        name,
        baseline.label,
        base_median,
        cand_median,
        ratio,
        min_ratio,
        note=note,
        candidate=candidate.label,
    )
    if max_ratio is not None:
        row.target = f"<= {max_ratio:.2f}x"
        row.passed = ratio <= max_ratio
    elif min_speedup is not None:
        row.target = f">= {min_speedup:.2f}x faster"
        row.passed = 1 / ratio >= min_speedup
        row.note = (row.note + "; " if row.note else "") + f"speed-up {1 / ratio:.2f}x"
    return row


def info(
    group: str,
    name: str,
    baseline: str,
    baseline_ns: float,
    candidate_ns: float,
    note: str = "",
    candidate: str = "obskit",
    unit: str = "ns",
) -> Row:
    """A reported figure with no target (``unit`` says what the two values are in)."""
    ratio = candidate_ns / baseline_ns if baseline_ns else None
    return Row(
        group,
        name,
        baseline,
        baseline_ns,
        candidate_ns,
        ratio,
        None,
        note=note,
        candidate=candidate,
        unit=unit,
    )


def _number(value: float) -> str:
    if value >= 100_000:
        return f"{value:,.0f}"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def table(rows: list[Row]) -> str:
    """The results as a fixed-width text table (also valid Markdown)."""
    header = (
        "#",
        "case",
        "baseline",
        "baseline",
        "candidate",
        "candidate",
        "ratio",
        "min ratio",
        "target",
        "result",
        "note",
    )
    lines = [
        (
            r.group,
            r.name,
            r.baseline,
            f"{_number(r.baseline_ns)} {r.unit}",
            r.candidate,
            f"{_number(r.candidate_ns)} {r.unit}",
            f"{r.ratio:.3f}" if r.ratio is not None else "",
            f"{r.min_ratio:.3f}" if r.min_ratio is not None else "",
            r.target,
            r.verdict,
            r.note,
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines, strict=True)]
    numeric = {3, 5, 6, 7}

    def fmt(cells: tuple[str, ...]) -> str:
        return (
            "| "
            + " | ".join(
                c.rjust(w) if i in numeric else c.ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
            + " |"
        )

    rule = (
        "|"
        + "|".join(("-" * (w + 1) + ":") if i in numeric else "-" * (w + 2) for i, w in enumerate(widths))
        + "|"
    )
    return "\n".join([fmt(header), rule, *(fmt(line) for line in lines)])
