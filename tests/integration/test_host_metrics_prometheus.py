"""Host metrics scraped by a real Prometheus: the seed's disk panel (used / size) answers right."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from peers import QUIET, Prometheus, needs_prometheus, wait_until

import obskit
import obskit.prometheus

pytestmark = pytest.mark.integration
psutil = pytest.importorskip("psutil")


@needs_prometheus
def test_used_over_size_per_mountpoint_matches_psutil(prometheus: Callable[..., Prometheus]) -> None:
    obskit.configure(**QUIET, metrics_exporter="prometheus", prometheus_port=0, host_metrics=True)
    host, port = obskit.prometheus.server_address() or ("", 0)
    server = prometheus(f"{host}:{port}")
    query = (
        'system_filesystem_usage_bytes{state="used",mountpoint="/"}'
        ' / ignoring(state) system_filesystem_limit_bytes{mountpoint="/"}'
    )
    ratio = wait_until(lambda: server.scalar(query), "the root file system's series", 30)
    disk = psutil.disk_usage("/")
    assert ratio == pytest.approx(disk.used / disk.total, abs=0.01)
    devices = {series["metric"]["device"] for series in server.query("system_network_io_bytes_total")}
    assert devices == set(psutil.net_io_counters(pernic=True))
