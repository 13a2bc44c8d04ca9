"""Run every obskit benchmark and print one table of ratios against same-run baselines.

    python benchmarks/run.py            # full run (a few minutes on a 2-core box)
    python benchmarks/run.py --quick    # smoke run: fewer, shorter rounds
    python benchmarks/run.py --only logging,metrics --json results.json
    python benchmarks/run.py --only startup  # spawn-to-exit of a configured process vs by hand
    python benchmarks/run.py --only web # opt-in: uvicorn servers under wrk (about a minute)

Exits 0 whatever the verdicts (benchmarks on shared machines are reports, not gates) unless
``--strict`` is given, then 1 if any target fails. See docs/performance.md for the method.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Config, Row, close_event_loop, table

#: name -> module, in the order of the table.
SUITES = {
    "tracing": "bench_tracing",  # 1, 2, 3
    "metrics": "bench_metrics",  # 4, 7
    "logging": "bench_logging",  # 5
    "import": "bench_import",  # 6
    "startup": "bench_startup",  # S
    "memory": "bench_memory",  # M
    "web": "bench_web",  # W
}
#: Suites run only when named in --only: real servers under load take a minute or more.
OPT_IN = {"web"}
_ORDER = ["1", "2", "3", "C", "4", "5", "6", "S", "7", "M", "W"]
_PACKAGES = ["obskit", "opentelemetry-sdk", "prometheus-client", "python-json-logger", "structlog"]


def _versions() -> str:
    found = []
    for name in _PACKAGES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer and shorter rounds (a smoke run)")
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated suites among {', '.join(SUITES)} ({', '.join(OPT_IN)}: only when named)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any target fails")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()] or [s for s in SUITES if s not in OPT_IN]
    unknown = [s for s in chosen if s not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {unknown}; choose among {list(SUITES)}")

    config = Config.make(args.quick)
    print(
        f"obskit benchmarks ({'quick' if args.quick else 'full'}: {config.rounds} rounds of "
        f"~{config.sample_seconds * 1000:.0f} ms samples per side, medians)"
    )
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; {_versions()}")
    rows: list[Row] = []
    started = time.monotonic()
    for name in chosen:
        t0 = time.monotonic()
        rows.extend(importlib.import_module(SUITES[name]).run(config))
        print(f"  {name}: {time.monotonic() - t0:.1f} s", flush=True)
    close_event_loop()
    rows.sort(key=lambda r: _ORDER.index(r.group))
    print()
    print(table(rows))
    failed = [r for r in rows if r.passed is False]
    judged = [r for r in rows if r.passed is not None]
    print()
    print(
        f"{len(judged) - len(failed)}/{len(judged)} targets met in {time.monotonic() - started:.0f} s."
        + (f" FAILED: {'; '.join(f'{r.group} {r.name}' for r in failed)}" if failed else "")
    )
    if args.json:
        Path(args.json).write_text(json.dumps([dataclasses.asdict(r) for r in rows], indent=2) + "\n")
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
