"""Two obskit services in two real uvicorn processes chain into one trace over httpx."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import peers
import pytest

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
SPAN = re.compile(
    r"^\[obskit span\] (?P<name>.+?) [\d.]+ms \S+ "
    r"trace=(?P<trace>\w+) span=(?P<span>\w+) parent=(?P<parent>\S+)"
)


def _start(port: int, service: str, tmp_path: Path, **env: str) -> tuple[subprocess.Popen[bytes], Path]:
    err = tmp_path / f"{service}.stderr"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OBSKIT_", "OTEL_"))}
    environment.update(CHAIN_SERVICE=service, OTEL_METRICS_EXPORTER="none", PYTHONUNBUFFERED="1", **env)
    args = [str(Path(sys.executable).parent / "uvicorn"), "chain_app:app", "--host", "127.0.0.1"]
    args += ["--port", str(port), "--no-access-log"]
    with err.open("wb") as stderr:
        process = subprocess.Popen(args, cwd=HERE, env=environment, stdout=subprocess.DEVNULL, stderr=stderr)
    return process, err


def _wait_up(base: str, err: Path) -> None:
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    pytest.fail(f"{base} did not come up: {err.read_text()[-2000:]}")


def _spans(err: Path) -> list[dict[str, str]]:
    return [m.groupdict() for line in err.read_text().splitlines() if (m := SPAN.match(line))]


def test_two_services_share_one_trace(tmp_path: Path) -> None:
    back_port, front_port = peers.free_port(), peers.free_port()
    back, back_err = _start(back_port, "backend", tmp_path)
    front, front_err = _start(front_port, "frontend", tmp_path, CHAIN_BACKEND=f"http://127.0.0.1:{back_port}")
    try:
        _wait_up(f"http://127.0.0.1:{back_port}", back_err)
        _wait_up(f"http://127.0.0.1:{front_port}", front_err)
        response = httpx.get(f"http://127.0.0.1:{front_port}/front", timeout=10)
        assert response.json() == {"backend": 200}
    finally:
        peers.stop(front)
        peers.stop(back)
    [server_front] = [s for s in _spans(front_err) if s["name"] == "GET /front"]
    [server_back] = [s for s in _spans(back_err) if s["name"] == "GET /back"]
    clients = [s for s in _spans(front_err) if s["name"] == "GET" and s["trace"] == server_front["trace"]]
    assert server_back["trace"] == server_front["trace"]
    assert len(clients) == 1
    assert clients[0]["parent"] == server_front["span"]
    assert server_back["parent"] == clients[0]["span"]
