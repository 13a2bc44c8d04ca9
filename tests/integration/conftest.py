"""Fixtures starting real peers: a Prometheus server and a push gateway (skipped when not installed)."""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from azure_ingestion import Ingestion
from peers import PROMETHEUS, PUSHGATEWAY, Prometheus, free_port, http_get, running, wait_until

import obskit


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[str, str], Prometheus]]:
    """Start Prometheus (exemplar storage on) scraping one target; stopped after the test."""
    assert PROMETHEUS is not None
    stack = contextlib.ExitStack()

    def start(target: str, metrics_path: str = "/metrics") -> Prometheus:
        config = tmp_path / "prometheus.yml"
        config.write_text(
            textwrap.dedent(
                f"""
                global:
                  scrape_interval: 1s
                  scrape_timeout: 900ms
                  evaluation_interval: 1s
                scrape_configs:
                  - job_name: obskit
                    metrics_path: {metrics_path}
                    static_configs:
                      - targets: ["{target}"]
                """
            )
        )
        port = free_port()
        log = tmp_path / "prometheus.log"
        process = stack.enter_context(
            running(
                [
                    PROMETHEUS,  # type: ignore[list-item]
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--enable-feature=exemplar-storage",
                    "--log.level=warn",
                ],
                log,
                cwd=tmp_path,
            )
        )
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_get(f"{url}/-/ready")[0] == 200, "Prometheus to be ready", 60, process, log)
        server = Prometheus(url)
        wait_until(
            lambda: server.scalar('up{job="obskit"}') == 1, "the first successful scrape", 60, process, log
        )
        return server

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
