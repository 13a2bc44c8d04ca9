"""A real push gateway behind a URL with a password: up, down, up again.

The password reaches the gateway (as HTTP basic auth) and nowhere else: not the warning while the
gateway is down, not the line when pushes work again, not a traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import PUSHGATEWAY, free_port, http_get, needs_pushgateway, running, wait_until

import obskit
import obskit.prometheus

pytestmark = [pytest.mark.integration, needs_pushgateway]

SECRET = "Gateway-pa55word"


@contextlib.contextmanager
def gateway(port: int, tmp_path: Path) -> Iterator[str]:
    assert PUSHGATEWAY is not None
    args = [PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file=", "--log.level=warn"]
    log = tmp_path / f"pushgateway-{port}.log"
    with running(args, log, cwd=tmp_path) as process:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_get(f"{url}/-/ready")[0] == 200, "the push gateway", 30, process, log)
        yield url


def test_a_password_in_the_push_gateway_url_is_sent_as_basic_auth_and_written_nowhere(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    obskit.configure(
        service_name="quiet-push",
        metrics_exporter="prometheus",
        prometheus_port=0,
        traces_exporter="none",
        logs_exporter="console",
        pushgateway_url=f"http://ci:{SECRET}@127.0.0.1:{port}",
        push_on="shutdown",
        shutdown_timeout=3.0,
    )
    counter = obskit.MetricsCollector().counter("quiet_push_events", "Events")
    with gateway(port, tmp_path) as url:
        counter.inc()
        assert obskit.prometheus.push(timeout=5.0) is True
        assert "quiet_push_events_total" in http_get(f"{url}/metrics")[1]
    assert obskit.prometheus.push(timeout=2.0) is False  # the gateway is gone
    assert obskit.prometheus.push(timeout=2.0) is False  # warned about once
    with gateway(port, tmp_path):
        assert obskit.prometheus.push(timeout=5.0) is True
        obskit.shutdown()
    out, err = capfd.readouterr()
    failed = [line for line in err.splitlines() if "pushing metrics to the Prometheus push gateway" in line]
    assert len(failed) == 1, err
    assert f"http://[REDACTED]@127.0.0.1:{port} failed" in failed[0]
    recovered = [line for line in err.splitlines() if "work again" in line]
    assert len(recovered) == 1, err
    assert "exports to the Prometheus push gateway work again (metrics): 2 failed exports" in recovered[0]
    assert SECRET not in out + err
