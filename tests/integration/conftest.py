"""Fixtures starting real peers: a Prometheus server and a push gateway (skipped when not installed)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from azure_ingestion import Ingestion
from peers import PUSHGATEWAY, Prometheus, free_port, http_get, prometheus_server, running, wait_until

import obskit


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[str, str], Prometheus]]:
    """Start Prometheus (exemplar storage on) scraping one target; stopped after the test."""
    stack = contextlib.ExitStack()

    def start(target: str, metrics_path: str = "/metrics") -> Prometheus:
        return stack.enter_context(
            prometheus_server(tmp_path, target, metrics_path=metrics_path, exemplars=True, first_scrape=True)
        )

    with stack:
        yield start


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[str]:
    assert PUSHGATEWAY is not None
    port = free_port()
    log = tmp_path / "pushgateway.log"
    args = [PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file=", "--log.level=warn"]
    with running(args, log, cwd=tmp_path) as process:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_get(f"{url}/-/ready")[0] == 200, "the push gateway", 30, process, log)
        yield url


@pytest.fixture
def ingestion() -> Iterator[Ingestion]:
    """A loopback Application Insights ingestion endpoint (azure_ingestion.py); stopped after the test."""
    server = Ingestion()
    server.thread.start()
    try:
        yield server
    finally:
        obskit.shutdown(timeout=5)
        server.server.shutdown()
        server.server.server_close()
        server.thread.join(timeout=5)
    assert not server.errors, server.errors
