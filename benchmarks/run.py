"""Run every obskit benchmark and print one table of ratios against same-run baselines.

    python benchmarks/run.py            # full run (a few minutes on a 2-core box)
    python benchmarks/run.py --quick    # smoke run: fewer, shorter rounds
    python benchmarks/run.py --only logging,metrics --json results.json
    python benchmarks/run.py --only startup  # spawn-to-exit of a configured process vs by hand
    python benchmarks/run.py --only web # opt-in: uvicorn servers under wrk (about a minute)
    python benchmarks/run.py --markdown docs/performance.md  # full run, its table written into the page

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
import subprocess
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
    "exposition": "bench_exposition",  # P
    "logging": "bench_logging",  # 5
    "import": "bench_import",  # 6
    "startup": "bench_startup",  # S
    "memory": "bench_memory",  # M
    "web": "bench_web",  # W
}
#: Suites run only when named in --only: real servers under load take a minute or more.
OPT_IN = {"web"}
_ORDER = ["1", "2", "3", "C", "4", "P", "5", "6", "S", "7", "M", "W"]
#: The lines of a Markdown page between which ``--markdown`` writes the run's conditions and table.
MARK_START = "<!-- benchmarks/run.py --markdown: start -->"
MARK_END = "<!-- benchmarks/run.py --markdown: end -->"
_PACKAGES = ["obskit", "opentelemetry-sdk", "prometheus-client", "python-json-logger", "structlog"]


def _versions() -> str:
    found = []
    for name in _PACKAGES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except (AttributeError, OSError):  # not on Windows
        return "unknown"


def _commit() -> str:
    """The checkout's commit, with ``+changes`` when its tracked files differ from it; "" outside git."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=here, check=False).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return ""
    return f" at commit {sha}{'+changes' if dirty else ''}"


def _write_markdown(page: Path, conditions: str, results: str, summary: str) -> None:
    """Replace what lies between the page's two marker lines with this run's conditions and table."""
    text = page.read_text()
    start, end = text.find(MARK_START), text.find(MARK_END)
    if start < 0 or end < start:
        raise SystemExit(f"{page} has no {MARK_START!r} ... {MARK_END!r} block to write the results into")
    block = f"{MARK_START}\n\n{conditions}\n\n{results}\n\n{summary}\n\n"
    page.write_text(text[:start] + block + text[end:])


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
    parser.add_argument(
        "--markdown",
        metavar="PAGE",
        help=f"write the run's conditions and table into PAGE, between {MARK_START!r} and {MARK_END!r}",
    )
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()] or [s for s in SUITES if s not in OPT_IN]
    unknown = [s for s in chosen if s not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {unknown}; choose among {list(SUITES)}")

    config = Config.make(args.quick)
    kind = (
        f"{'quick' if args.quick else 'full'}: {config.rounds} rounds of "
        f"~{config.sample_seconds * 1000:.0f} ms samples per side, {config.import_rounds} rounds of "
        "fresh interpreters, medians"
    )
    machine = (
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; {_versions()}"
    )
    print(f"obskit benchmarks ({kind})")
    print(machine)
    load_before = _load()
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
    summary = (
        f"{len(judged) - len(failed)}/{len(judged)} targets met in {time.monotonic() - started:.0f} s."
        + (f" FAILED: {'; '.join(f'{r.group} {r.name}' for r in failed)}" if failed else "")
    )
    print()
    print(summary)
    if args.markdown:
        command = " ".join(["python", "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])])
        conditions = (
            f"Run `{command}`{_commit()} "
            f"on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} ({kind}); {machine}; "
            f"suites: {', '.join(chosen)}; load average (1 min) {load_before} before, {_load()} after."
        )
        _write_markdown(Path(args.markdown), conditions, table(rows), summary)
        print(f"wrote the results into {args.markdown}")
    if args.json:
        Path(args.json).write_text(json.dumps([dataclasses.asdict(r) for r in rows], indent=2) + "\n")
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
