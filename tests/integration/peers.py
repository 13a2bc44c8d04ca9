"""Real peers for the integration tests: finding the binaries, starting processes, waiting, parsing.

Every server binds to 127.0.0.1 on a free port and is stopped in a ``finally``; every wait is
bounded. The ``prometheus`` and ``pushgateway`` fixtures are in this directory's conftest.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from procs import Ok as Ok  # re-exported: the integration tests import them from here
from procs import free_port as free_port
from procs import http_server as http_server
from procs import stop as stop

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
PUSHGATEWAY = shutil.which("prometheus-pushgateway")
INSTALL_HINT = "(bash ../shared/ci/install-peers.sh installs it)"
needs_prometheus = pytest.mark.skipif(PROMETHEUS is None, reason=f"prometheus is not on PATH {INSTALL_HINT}")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason=f"promtool is not on PATH {INSTALL_HINT}")
needs_pushgateway = pytest.mark.skipif(
    PUSHGATEWAY is None, reason=f"prometheus-pushgateway is not on PATH {INSTALL_HINT}"
)
needs_gunicorn = pytest.mark.skipif(
    importlib.util.find_spec("gunicorn") is None,
    reason='gunicorn is not installed: pip install "obskit[test]"',
)

T = TypeVar("T")
QUIET: dict[str, Any] = {"traces_exporter": "none", "logs_exporter": "none"}


# -- helpers --------------------------------------------------------------------------------------


def http_get(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def wait_until(
    probe: Callable[[], T | None],
    what: str,
    timeout: float = 30.0,
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> T:
    """Call ``probe`` until it returns something truthy, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = probe()
        except OSError:  # the peer is not listening yet
            result = None
        if result:
            return result
        if process is not None and process.poll() is not None:
            output = log.read_text() if log is not None else ""
            pytest.fail(f"the process died (exit {process.returncode}) before {what}:\n{output[-3000:]}")
        if time.monotonic() > deadline:
            output = log.read_text() if log is not None else ""
            pytest.fail(f"timed out after {timeout}s waiting for {what}\n{output[-3000:]}")
        time.sleep(0.1)


@contextlib.contextmanager
def running(args: list[str], log: Path, **kwargs: Any) -> Iterator[subprocess.Popen[bytes]]:
    """Start a peer process, logging to ``log``; terminate it (then kill it) whatever happens."""
    with log.open("wb") as output:
        process = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT, **kwargs)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@contextlib.contextmanager
def serving(
    args: list[str], logs: Path, env: dict[str, str], cwd: Path | None = None
) -> Iterator[dict[str, Path]]:
    """Run a server process until the block ends (SIGTERM, then kill), its stdout and stderr in
    ``logs``/stdout.log and ``logs``/stderr.log; the two paths by name."""
    out, err = logs / "stdout.log", logs / "stderr.log"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(args, stdout=stdout, stderr=stderr, env=env, cwd=cwd or logs)
        try:
            yield {"stdout": out, "stderr": err}
        finally:
            stop(process)


def wait_until_up(base: str, files: dict[str, Path], timeout: float = 30.0) -> None:
    """Wait until ``base``/health/live answers 200; the server's stderr in the failure."""
    wait_until(
        lambda: http_get(f"{base}/health/live", timeout=1)[0] == 200,
        "/health/live",
        timeout,
        log=files["stderr"],
    )


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` with exactly ``labels`` in a text exposition.

    An empty label value counts as absent, as in Prometheus (a job label registered by another
    test in this process shows as ``tenant=""``).
    """
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if {k: v for k, v in found.items() if v} == {k: v for k, v in labels.items() if v}:
            return float(match.group(3))
    return None


class Prometheus:
    """A real Prometheus server scraping ``targets`` every second, queried over its HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, promql: str) -> list[dict[str, Any]]:
        status, body = http_get(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
        assert status == 200, body
        answer = json.loads(body)
        assert answer["status"] == "success", answer
        return answer["data"]["result"]  # type: ignore[no-any-return]

    def scalar(self, promql: str) -> float | None:
        """The value of a query answering one series, or None while it answers none."""
        result = self.query(promql)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def exemplars(self, promql: str) -> list[dict[str, Any]]:
        now = time.time()
        query = urllib.parse.urlencode({"query": promql, "start": now - 600, "end": now + 60})
        status, body = http_get(f"{self.url}/api/v1/query_exemplars?{query}")
        assert status == 200, body
        return json.loads(body)["data"]  # type: ignore[no-any-return]


@contextlib.contextmanager
def prometheus_server(
    directory: Path,
    target: str,
    *,
    job: str = "obskit",
    metrics_path: str = "/metrics",
    rules: Path | None = None,
    exemplars: bool = False,
    first_scrape: bool = False,
) -> Iterator[Prometheus]:
    """A real Prometheus on loopback scraping ``target`` (and evaluating ``rules``) every second.

    Ready when it is yielded; with ``first_scrape``, once ``target`` has answered one scrape too.
    Stopped when the block ends. Its files (config, storage, log) go in ``directory``.
    """
    assert PROMETHEUS is not None
    rule_files = f"rule_files: [{json.dumps(str(rules))}]" if rules is not None else ""
    config = directory / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 900ms\n"
        "  evaluation_interval: 1s\n"  # also the step of a subquery that gives none ([7d:])
        f"{rule_files}\n"
        "scrape_configs:\n"
        f"  - job_name: {job}\n"
        f"    metrics_path: {metrics_path}\n"
        "    static_configs:\n"
        f'      - targets: ["{target}"]\n'
    )
    port = free_port()
    log = directory / "prometheus.log"
    args = [
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={directory / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        *(["--enable-feature=exemplar-storage"] if exemplars else []),
        "--log.level=warn",
    ]
    with running(args, log, cwd=directory) as process:
        server = Prometheus(f"http://127.0.0.1:{port}")
        ready = f"{server.url}/-/ready"
        wait_until(lambda: http_get(ready)[0] == 200, "Prometheus to be ready", 60, process, log)
        if first_scrape:
            up = f'up{{job="{job}"}}'
            wait_until(lambda: server.scalar(up) == 1, "the first successful scrape", 60, process, log)
        yield server


def gateway_value(url: str, name: str, **labels: str) -> float | None:
    """The value of ``name`` with ``labels`` on the push gateway's own exposition."""
    return sample(http_get(f"{url}/metrics")[1], name, **labels)
