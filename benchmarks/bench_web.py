"""Benchmark W: requests/s of a FastAPI app: bare, with prometheus-fastapi-instrumentator, with obskit.

Each variant of ``_web_app.py`` runs in its own real uvicorn process (one worker, a free
loopback port, uvicorn's access log off, stdout and stderr to /dev/null). ``wrk`` (one thread,
fixed connections, fixed duration, the two routes alternating) loads one server at a time; the
variants take turns round after round, the order rotating, so that drift hits them alike. Each
variant's figure is its median requests/s; a cost is ``1 - rps_variant / rps_bare`` within the
round, median over the rounds. Judged: obskit's cost is no more than the instrumentator's.

Needs ``wrk`` (Debian: ``apt-get install wrk``); without it the suite reports a skip. Opt-in
(``run.py --only web``): it takes about two minutes (25 s with ``--quick``). With
``OBSKIT_BENCH_WEB_DIAGNOSE=1`` it adds obskit variants with the access log and/or spans off.
Each note also gives the server's CPU time per request over bare's. With
``OBSKIT_BENCH_WEB_INSTRUCTIONS=1`` (needs Debian ``valgrind``; a few more minutes) it
counts each variant's server instructions and simulated L2 cache misses per request under
callgrind, which the machine's load does not move.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from _harness import Config, Row, info

HERE = Path(__file__).resolve().parent
VARIANTS = ("bare", "instrumentator", "obskit")
#: Set to 1 to add obskit variants with the access log and/or spans off (_web_app.DIAGNOSTIC).
DIAGNOSE = "OBSKIT_BENCH_WEB_DIAGNOSE"
#: Set to 1 to also count each variant's server instructions per request under callgrind
#: (Debian valgrind): a figure the machine's load does not move, unlike requests/s.
INSTRUCTIONS = "OBSKIT_BENCH_WEB_INSTRUCTIONS"
CONNECTIONS = 32
#: wrk takes one URL; this script alternates the two routes, with varying path parameters.
_LUA = """
local n = 0
request = function()
  n = n + 1
  if n % 2 == 0 then
    return wrk.format("GET", "/items/" .. (n % 1000))
  end
  return wrk.format("GET", "/users/u" .. (n % 100) .. "/orders")
end
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One uvicorn process serving one variant; ``error`` says why it did not come up."""

    def __init__(self, variant: str, log_dir: Path) -> None:
        self.variant = variant
        self.port = _free_port()
        self.error = ""
        self._stderr = log_dir / f"{variant}.stderr"
        with self._stderr.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, str(HERE / "_web_app.py"), variant, str(self.port)],
                cwd=HERE,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                lines = self._stderr.read_text(errors="replace").strip().splitlines()
                self.error = lines[-1] if lines else f"exited with {self.process.returncode}"
                return False
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/items/1", timeout=1) as response,
            ):
                if response.status == 200:
                    return True
            time.sleep(0.1)
        self.error = f"not ready within {timeout:.0f} s"
        return False

    def cpu_seconds(self) -> float:
        """CPU time (user + system, all threads) the server process has used so far."""
        import psutil

        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def servers(variants: tuple[str, ...]) -> Iterator[dict[str, Server]]:
    log_dir = Path(tempfile.mkdtemp(prefix="obskit-bench-web-"))
    started = {v: Server(v, log_dir) for v in variants}
    try:
        yield started
    finally:
        for server in started.values():
            server.stop()
        shutil.rmtree(log_dir, ignore_errors=True)


#: Connections under callgrind: the server is some 100 times slower there, and 32 waiting
#: connections would run into wrk's 2 s timeout; the per-request counts do not depend on it.
SIMULATED_CONNECTIONS = 4


def load(url: str, seconds: float, script: Path, connections: int = CONNECTIONS) -> tuple[float, int]:
    """Requests per second that ``wrk`` got from ``url`` in ``seconds``, and how many requests it
    sent (non-2xx is an error)."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", str(script), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors against {url}:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if match is None or total is None:
        raise RuntimeError(f"no Requests/sec in wrk output:\n{out}")
    return float(match.group(1)), int(total.group(1))


#: The cache callgrind simulates as its last level: one core's L2 of the development machine
#: (AMD EPYC, 1 MiB, 8-way). A miss there goes to the L3 shared with the other tenants, or memory.
L2_CACHE = "--LL=1048576,8,64"


def server_instructions(variant: str, script: Path, seconds: float = 20.0) -> dict[str, float] | None:
    """Per request, ``variant``'s whole server process (all threads) under ``wrk``: instructions
    (``Ir``) and simulated L2 misses (``L2``: instruction and data misses of an L2-sized last level).

    The server runs under ``valgrind --tool=callgrind --cache-sim=yes``; after its start-up and a
    warm-up the counters are zeroed (``callgrind_control -z``), ``wrk`` loads it for ``seconds``,
    and the counters are dumped: start-up, imports and warm-up are left out. None when it did not
    run.
    """
    port = _free_port()
    work = Path(tempfile.mkdtemp(prefix="obskit-bench-ir-"))
    out = work / "callgrind.out"
    command = [
        "valgrind",
        "--tool=callgrind",
        "--cache-sim=yes",
        L2_CACHE,
        f"--callgrind-out-file={out}",
        sys.executable,
        str(HERE / "_web_app.py"),
        variant,
        str(port),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with (work / "stderr").open("w") as err:
        process = subprocess.Popen(command, cwd=HERE, stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/items/1", timeout=5):
                break
            time.sleep(1)
        else:
            return None
        try:
            load(url, 8.0, script, SIMULATED_CONNECTIONS)  # warm-up
            subprocess.run(["callgrind_control", "-z", str(process.pid)], check=True, capture_output=True)
            _, requests = load(url, seconds, script, SIMULATED_CONNECTIONS)
            subprocess.run(["callgrind_control", "-d", str(process.pid)], check=True, capture_output=True)
        except (RuntimeError, subprocess.CalledProcessError):  # reported as not run, with the others
            return None
        events: list[str] = []
        totals: dict[str, int] = {}
        for dump in work.glob("callgrind.out*"):
            for line in dump.read_text(errors="replace").splitlines():
                if line.startswith("events:"):
                    events = line.split()[1:]
                elif line.startswith("summary:"):
                    for event, value in zip(events, line.split()[1:], strict=False):
                        totals[event] = totals.get(event, 0) + int(value)
        if not requests or not totals.get("Ir"):
            return None
        misses = sum(totals.get(event, 0) for event in ("ILmr", "DLmr", "DLmw"))
        return {"Ir": totals["Ir"] / requests, "L2": misses / requests}
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(work, ignore_errors=True)


def _instruction_rows(variants: tuple[str, ...], script: Path) -> list[Row]:
    """One row per variant: server instructions per request against bare's, counted in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        return [_skip("instructions", "skipped: valgrind not installed (apt-get install valgrind)")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        counted = dict(
            zip(variants, pool.map(lambda v: server_instructions(v, script), variants), strict=True)
        )
    bare = counted.get("bare")
    if not bare:
        return [_skip("instructions", "skipped: the bare server did not run under callgrind")]
    #: (count, row name, unit, what the note says it is)
    figures = (
        ("Ir", "instructions", "instr/req", "instructions/request over bare (callgrind, whole server)"),
        ("L2", "L2 misses", "miss/req", "simulated L2 misses/request over bare (1 MiB, 8-way)"),
    )
    rows = []
    for variant, counts in counted.items():
        if variant == "bare" or counts is None:
            continue
        for key, name, unit, what in figures:
            note = f"+{counts[key] - bare[key]:,.0f} {what}"
            rows.append(
                info("W", f"web {name}, {variant}", "bare", bare[key], counts[key], note, variant, unit)
            )
    return rows


def _variants() -> tuple[str, ...]:
    if os.environ.get(DIAGNOSE) == "1":
        from _web_app import DIAGNOSTIC

        return VARIANTS + tuple(DIAGNOSTIC)
    return VARIANTS


def _cost(rps: float, bare: float) -> float:
    return 1 - rps / bare


def run(config: Config) -> list[Row]:
    if shutil.which("wrk") is None:
        return [_skip("all variants", "skipped: wrk not installed (apt-get install wrk)")]
    rounds, seconds = (3, 2.0) if config.quick else (7, 5.0)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(_LUA)
    script = Path(lua.name)
    try:
        with servers(_variants()) as started:
            ready = {v: s for v, s in started.items() if s.wait_ready()}
            skipped = [_skip(v, f"skipped: {s.error}") for v, s in started.items() if v not in ready]
            if "bare" not in ready:
                return skipped
            for server in ready.values():  # warm-up: first-request caches, lazily created series
                load(server.url, 1.0, script)
            rps: dict[str, list[float]] = {v: [] for v in ready}
            cpu: dict[str, list[float]] = {v: [] for v in ready}  # server CPU seconds per request
            order = list(ready)
            for index in range(rounds):
                turn = order[index % len(order) :] + order[: index % len(order)]
                for variant in turn:
                    before = ready[variant].cpu_seconds()
                    rate, requests = load(ready[variant].url, seconds, script)
                    rps[variant].append(rate)
                    cpu[variant].append((ready[variant].cpu_seconds() - before) / max(requests, 1))
            rows = _rows(rps, seconds, cpu) + skipped
        if os.environ.get(INSTRUCTIONS) == "1":
            rows += _instruction_rows(tuple(ready), script)
        return rows
    finally:
        script.unlink(missing_ok=True)


def _skip(variant: str, note: str) -> Row:
    return Row(
        "W", f"web throughput, {variant}", "bare", 0.0, 0.0, note=note, candidate=variant, unit="req/s"
    )


def _rows(rps: dict[str, list[float]], seconds: float, cpu: dict[str, list[float]]) -> list[Row]:
    """One row per variant against bare, and the judged obskit-vs-instrumentator row.

    Besides throughput, each note gives the server's CPU time per request over bare's (median of
    the rounds): less sensitive to the other processes on a shared machine than requests/s,
    though it does not see time the server spends waiting (for the GIL, say).
    """
    bare = rps["bare"]
    medians = {v: statistics.median(values) for v, values in rps.items()}
    extra_cpu = {
        v: statistics.median(c - b for c, b in zip(values, cpu["bare"], strict=True)) * 1e6
        for v, values in cpu.items()
    }
    costs = {v: statistics.median(map(_cost, values, bare)) for v, values in rps.items()}
    rows = []
    for variant in rps:
        if variant == "bare":
            continue
        row = info(
            "W",
            f"web throughput, {variant}",
            "bare",
            medians["bare"],
            medians[variant],
            note=f"throughput cost {costs[variant]:.1%}; server CPU +{extra_cpu[variant]:.0f} us/req; "
            f"wrk -c{CONNECTIONS}, {len(bare)}x{seconds:g} s",
            candidate=variant,
            unit="req/s",
        )
        row.ratio = statistics.median(c / b for b, c in zip(bare, rps[variant], strict=True))
        rows.append(row)
    if "obskit" in rps and "instrumentator" in rps:
        per_round = [
            _cost(o, b) - _cost(i, b)
            for b, i, o in zip(bare, rps["instrumentator"], rps["obskit"], strict=True)
        ]
        row = info(
            "W",
            "web throughput, obskit vs instrumentator",
            "instrumentator",
            medians["instrumentator"],
            medians["obskit"],
            note=f"cost {costs['obskit']:.1%} vs {costs['instrumentator']:.1%}, "
            f"CPU +{extra_cpu['obskit']:.0f} vs +{extra_cpu['instrumentator']:.0f} us/req "
            "(obskit also traces and logs)",
            unit="req/s",
        )
        row.ratio = statistics.median(
            o / i for i, o in zip(rps["instrumentator"], rps["obskit"], strict=True)
        )
        row.target = "cost <= instrumentator's"
        row.passed = statistics.median(per_round) <= 0
        rows.append(row)
    return rows


if __name__ == "__main__":
    from _harness import table

    print(table(run(Config.make("--quick" in sys.argv))))
