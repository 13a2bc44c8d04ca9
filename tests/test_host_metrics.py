"""Host metrics: every real file system with used/free/reserved bytes, and network bytes.

Values are read from psutil at collection time; the tests freeze psutil's disk readings so
both sides see the same numbers on a disk other processes are writing to.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections import namedtuple
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import obskit
from obskit._core import state as _state

psutil = pytest.importorskip("psutil")

QUIET: dict[str, Any] = {"traces_exporter": "none", "logs_exporter": "none"}
Partition = namedtuple("Partition", "device mountpoint fstype opts")


def exposition() -> str:
    return generate_latest(_state.STATE.store.registry).decode()


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


@pytest.fixture
def frozen_disks(monkeypatch: pytest.MonkeyPatch) -> Any:
    usage = functools.cache(psutil.disk_usage)
    monkeypatch.setattr(psutil, "disk_usage", usage)
    return usage


def test_filesystems_match_psutil_for_the_same_mountpoints(frozen_disks: Any) -> None:
    obskit.configure(host_metrics=True, **QUIET)
    text = exposition()
    limits = samples(text, "system_filesystem_limit_bytes")
    assert {labels["mountpoint"] for labels, _ in limits} >= {"/"}
    for labels, value in limits:
        disk = frozen_disks(labels["mountpoint"])
        assert value == disk.total
        assert labels["device"]
        assert labels["fstype"]
    by_state = {
        (labels["mountpoint"], labels["state"]): value
        for labels, value in samples(text, "system_filesystem_usage_bytes")
    }
    for labels, total in limits:
        disk = frozen_disks(labels["mountpoint"])
        used = by_state[labels["mountpoint"], "used"]
        free = by_state[labels["mountpoint"], "free"]
        assert (used, free) == (disk.used, disk.free)
        assert used + free + by_state[labels["mountpoint"], "reserved"] == total
    # The seed's panel: used/total, not 1 - free/total (which counts reserved blocks as used).
    root = frozen_disks("/")
    assert by_state["/", "used"] / dict((labels["mountpoint"], value) for labels, value in limits)[
        "/"
    ] == pytest.approx(root.used / root.total)
    # The 0.x root-disk gauges stay, with the same values.
    assert samples(text, "system_disk_total_bytes") == [({}, float(root.total))]
    assert samples(text, "system_disk_free_bytes") == [({}, float(root.free))]


def test_pseudo_duplicate_and_unreadable_filesystems_are_skipped(
    monkeypatch: pytest.MonkeyPatch, frozen_disks: Any
) -> None:
    real_root = psutil.disk_usage("/")
    partitions = [
        Partition("proc", "/proc", "proc", "rw"),
        Partition("sysfs", "/sys", "sysfs", "rw"),
        Partition("cgroup2", "/sys/fs/cgroup", "cgroup2", "rw"),
        Partition("devtmpfs", "/dev", "devtmpfs", "rw"),
        Partition("tmpfs", "/dev/shm", "tmpfs", "rw"),
        Partition("overlay", "/", "overlay", "rw"),
        Partition("/dev/vda", "/", "ext4", "rw"),
        Partition("overlay", "/var/lib/docker/overlay2/abc/merged", "overlay", "rw"),
        Partition("tmpfs", "/run", "tmpfs", "rw"),
        Partition("server:/export", "/mnt/secret", "nfs4", "rw"),
    ]

    def usage(path: str) -> Any:
        if path == "/mnt/secret":
            raise PermissionError(13, "Permission denied", path)
        return real_root

    monkeypatch.setattr(psutil, "disk_partitions", lambda all=False: partitions)
    monkeypatch.setattr(psutil, "disk_usage", usage)
    obskit.configure(host_metrics=True, **QUIET)
    limits = samples(exposition(), "system_filesystem_limit_bytes")
    assert [(labels["mountpoint"], labels["fstype"]) for labels, _ in limits] == [
        ("/", "overlay"),
        ("/run", "tmpfs"),
    ]


def test_network_bytes_by_interface_match_psutil() -> None:
    obskit.configure(host_metrics=True, **QUIET)
    before = psutil.net_io_counters(pernic=True)
    values = {
        (labels["device"], labels["direction"]): value
        for labels, value in samples(exposition(), "system_network_io_bytes_total")
    }
    after = psutil.net_io_counters(pernic=True)
    assert {device for device, _ in values} == set(before)
    for device, nic in before.items():
        assert nic.bytes_recv <= values[device, "receive"] <= after[device].bytes_recv
        assert nic.bytes_sent <= values[device, "transmit"] <= after[device].bytes_sent


def test_host_exposition_passes_promtool() -> None:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool is not installed")
    obskit.configure(host_metrics=True, **QUIET)
    result = subprocess.run(
        [binary, "check", "metrics"], input=exposition(), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not result.stdout.strip(), result.stdout
    assert not result.stderr.strip(), result.stderr
