"""Benchmark 6: importing obskit and setting it up, against doing the same by hand.

``import obskit`` alone loads neither the OpenTelemetry SDK nor prometheus_client's HTTP server:
``configure()`` imports what the chosen backends need. So the judged figure is the import and
the set-up together, timed inside fresh interpreters from the script's first line until the
set-up returns (interpreter start and exit are the same for both and benchmark S has them):

* obskit: ``import obskit`` + ``obskit.configure(service_name=..., traces_exporter="console",
  metrics_exporter="prometheus", prometheus_port=0, logs_exporter="console")``;
* by hand: the OpenTelemetry SDK's ``TracerProvider`` (with a resource) +
  ``BatchSpanProcessor(ConsoleSpanExporter())`` set as the global provider, prometheus_client's
  ``start_http_server(0)`` and ``logging.basicConfig()``.

Reported beside it, as before: ``python -c "import obskit"`` against ``python -c "import
opentelemetry.sdk.trace, opentelemetry.trace, prometheus_client, structlog, wrapt"`` from spawn to
exit. That is not equal work (obskit's import leaves the SDK to ``configure()``), so it has no
target. Each round runs every script once, the order alternating; medians of the rounds.

Every child writes and reads its bytecode under one temporary ``PYTHONPYCACHEPREFIX``, warmed
before timing: an installed wheel has compiled ``.pyc`` files, while a source checkout run with
``PYTHONDONTWRITEBYTECODE`` would recompile obskit (and only obskit) in every process.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from _harness import Config, Row, info

BARE = "pass"
OBSKIT = "import obskit"
DEPENDENCIES = "import opentelemetry.sdk.trace, opentelemetry.trace, prometheus_client, structlog, wrapt"

HAND_SETUP = """\
import logging
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from prometheus_client import start_http_server
provider = TracerProvider(resource=Resource.create({"service.name": "bench-service"}))
provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
trace.set_tracer_provider(provider)
start_http_server(0, addr="127.0.0.1")
logging.basicConfig(level=logging.INFO)
"""
OBSKIT_SETUP = """\
import obskit
obskit.configure(
    service_name="bench-service",
    traces_exporter="console",
    metrics_exporter="prometheus",
    prometheus_port=0,
    logs_exporter="console",
)
"""
_TIMED = (
    "import time as _time\n_t0 = _time.perf_counter_ns()\n{code}"
    "print('BENCH_NS', _time.perf_counter_ns() - _t0)\n"
)
_NS = re.compile(r"^BENCH_NS (\d+)$", re.MULTILINE)


def _spawn(code: str, env: dict[str, str]) -> float:
    """Milliseconds from spawning a fresh interpreter running ``code`` to its exit."""
    start = time.perf_counter_ns()
    subprocess.run([sys.executable, "-c", code], check=True, env=env, stdout=subprocess.DEVNULL)
    return (time.perf_counter_ns() - start) / 1e6


def _timed(code: str, env: dict[str, str]) -> float:
    """Milliseconds ``code`` takes inside a fresh interpreter (its own clock, start and exit left out)."""
    done = subprocess.run(
        [sys.executable, "-c", _TIMED.format(code=code)], check=True, env=env, capture_output=True, text=True
    )
    found = _NS.search(done.stdout)
    if found is None:
        raise RuntimeError(f"the set-up script printed no time:\n{done.stdout}\n{done.stderr}")
    return int(found.group(1)) / 1e6


def _loaded_modules(code: str, env: dict[str, str]) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    ).stdout
    return set(out.split())


def run(config: Config) -> list[Row]:
    cache = tempfile.mkdtemp(prefix="obskit-bench-pycache-")
    try:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        return _run(config, {**env, "PYTHONPYCACHEPREFIX": cache})
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _ratio(base: list[float], cand: list[float]) -> float:
    return statistics.median(c / b for b, c in zip(base, cand, strict=True))


def _run(config: Config, env: dict[str, str]) -> list[Row]:
    for code in (HAND_SETUP, OBSKIT_SETUP):  # compile, warm caches, check
        _timed(code, env)
    for code in (BARE, OBSKIT, DEPENDENCIES):
        _spawn(code, env)
    setup: dict[str, list[float]] = {HAND_SETUP: [], OBSKIT_SETUP: []}
    times: dict[str, list[float]] = {BARE: [], OBSKIT: [], DEPENDENCIES: []}
    for index in range(config.import_rounds):
        pair = [HAND_SETUP, OBSKIT_SETUP] if index % 2 else [OBSKIT_SETUP, HAND_SETUP]
        for code in pair:
            setup[code].append(_timed(code, env))
        order = [DEPENDENCIES, OBSKIT, BARE] if index % 2 else [OBSKIT, DEPENDENCIES, BARE]
        for code in order:
            times[code].append(_spawn(code, env))
    hand, ours = setup[HAND_SETUP], setup[OBSKIT_SETUP]
    judged = _ratio(hand, ours)
    rows = [
        Row(
            "6",
            "import + set-up: import obskit + configure()",
            "OTel SDK + prometheus_client by hand",
            statistics.median(hand),
            statistics.median(ours),
            judged,
            min(ours) / min(hand),
            "<= 1.20x",
            judged <= 1.2,
            "in process: interpreter start and exit left out",
            unit="ms",
        )
    ]
    bare, alone, deps = (statistics.median(times[c]) for c in (BARE, OBSKIT, DEPENDENCIES))
    modules = _loaded_modules(OBSKIT, env)
    loaded = (
        ", ".join(sorted(m for m in ("opentelemetry.sdk", "structlog", "wrapt") if m in modules)) or "none"
    )
    whole = info(
        "6",
        "import obskit alone (whole process)",
        "import core dependencies",
        deps,
        alone,
        note=f"unequal work: configure() imports the SDK; sdk/structlog/wrapt loaded: {loaded}",
        unit="ms",
    )
    whole.ratio = _ratio(times[DEPENDENCIES], times[OBSKIT])
    whole.min_ratio = min(times[OBSKIT]) / min(times[DEPENDENCIES])
    net = info(
        "6",
        "import obskit alone, net of bare start-up",
        "import core dependencies",
        deps - bare,
        alone - bare,
        note=f"bare interpreter {bare:.1f} ms",
        unit="ms",
    )
    return [*rows, whole, net]


if __name__ == "__main__":
    from _harness import table

    print(table(run(Config.make("--quick" in sys.argv))))
