"""After a fork the child's pipelines export, and its metrics are its own."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

CHILD_SCRIPT = textwrap.dedent(
    """
    import os, sys, obskit
    from obskit import track_job

    obskit.configure(service_name="forky", logs_exporter="none", metric_export_interval_ms=3_600_000)

    @track_job("forked_job")
    def work():
        return 1

    work()  # the parent's own run, before forking
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        work()
        obskit.shutdown()
        sys.stderr.flush()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    print("child-status", status, flush=True)
    """
)


@pytest.mark.skipif(not hasattr(sys.modules["os"], "fork"), reason="needs os.fork")
def test_forked_child_exports_its_own_spans_and_metrics() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHILD_SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    assert "child-status 0" in result.stdout
    err = result.stderr
    # The child flushed its own span and its own metric values on its shutdown; the parent's
    # exit flushed the parent's. Each process counted exactly its own single run.
    assert err.count("[obskit span] forked_job") == 2, err
    lines = [
        line for line in err.splitlines() if 'obskit_jobs_total{job="forked_job",status="success"}' in line
    ]
    assert lines, err
    assert all(line.endswith(" 1") for line in lines), lines
