"""Benchmark 6: what ``import obskit`` costs against importing its core dependencies.

Fresh interpreters, alternately ``python -c "import obskit"`` and ``python -c "import
opentelemetry.sdk.trace, opentelemetry.trace, prometheus_client, structlog, wrapt"``, each
timed from spawn to exit; the ratio of the medians is judged. A bare ``python -c pass`` is timed
in the same rounds so that the table also shows the imports net of interpreter start-up.

Every child writes and reads its bytecode under one temporary ``PYTHONPYCACHEPREFIX``, warmed
before timing: an installed wheel has compiled ``.pyc`` files, while a source checkout run with
``PYTHONDONTWRITEBYTECODE`` would recompile obskit (and only obskit) in every process.
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

BARE = "pass"
OBSKIT = "import obskit"
DEPENDENCIES = "import opentelemetry.sdk.trace, opentelemetry.trace, prometheus_client, structlog, wrapt"


def _spawn(code: str, env: dict[str, str]) -> float:
    """Milliseconds from spawning a fresh interpreter running ``code`` to its exit."""
    start = time.perf_counter_ns()
    subprocess.run([sys.executable, "-c", code], check=True, env=env, stdout=subprocess.DEVNULL)
    return (time.perf_counter_ns() - start) / 1e6


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


def _run(config: Config, env: dict[str, str]) -> list[Row]:
    for code in (BARE, OBSKIT, DEPENDENCIES, OBSKIT, DEPENDENCIES):  # compile, warm caches, check
        _spawn(code, env)
    times: dict[str, list[float]] = {BARE: [], OBSKIT: [], DEPENDENCIES: []}
    for index in range(config.import_rounds):
        order = [DEPENDENCIES, OBSKIT, BARE] if index % 2 else [OBSKIT, DEPENDENCIES, BARE]
        for code in order:
            times[code].append(_spawn(code, env))
    bare, ours, deps = (statistics.median(times[c]) for c in (BARE, OBSKIT, DEPENDENCIES))
    modules = _loaded_modules(OBSKIT, env)
    heavy = sorted(m for m in ("opentelemetry.sdk", "structlog", "wrapt") if m in modules)
    note = f"obskit loads {len(modules)} modules; of sdk/structlog/wrapt: {', '.join(heavy) or 'none'}"
    total = Row(
        "6",
        "import time (whole process)",
        "import core dependencies",
        deps,
        ours,
        ours / deps,
        min(times[OBSKIT]) / min(times[DEPENDENCIES]),
        "<= 1.20x",
        ours / deps <= 1.2,
        note,
        unit="ms",
    )
    net = info(
        "6",
        "import time net of bare start-up",
        "import core dependencies",
        deps - bare,
        ours - bare,
        note=f"bare interpreter {bare:.1f} ms",
        unit="ms",
    )
    return [total, net]


if __name__ == "__main__":
    from _harness import table

    print(table(run(Config.make("--quick" in sys.argv))))
