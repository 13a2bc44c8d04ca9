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
        line
        for line in err.splitlines()
        if 'obskit_jobs_total{job_name="forked_job",status="success"}' in line
    ]
    assert lines, err
    assert all(line.endswith(" 1") for line in lines), lines


SIGTERM_SCRIPT = textwrap.dedent(
    """
    import sys, time, obskit
    from obskit import trace_operation

    obskit.configure(service_name="terminated", logs_exporter="none", metric_export_interval_ms=3_600_000)
    with trace_operation("before_sigterm"):
        pass
    print("ready", flush=True)
    time.sleep(30)
    """
)


def test_sigterm_flushes_before_the_process_dies() -> None:
    import signal

    process = subprocess.Popen(
        [sys.executable, "-c", SIGTERM_SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGTERM
    assert "[obskit span] before_sigterm" in err


PID_SCRIPT = textwrap.dedent(
    """
    import os, sys, obskit
    from opentelemetry import trace
    from obskit._runtime import lifecycle as _runtime
    from obskit._core import state as _state

    obskit.configure(
        service_name="forky", logs_exporter="otlp", otlp_endpoint="http://127.0.0.1:9",
        metrics_exporter="none", metric_export_interval_ms=3_600_000,
    )
    user_tracer = trace.get_tracer("user.code")  # made before the fork, used after it

    def pids():
        span = user_tracer.start_span("after")
        span.end()
        providers = [type(p).__name__ + "=" + str(p.resource.attributes["process.pid"])
                     for p in _runtime._pid_providers]
        return [str(_state.STATE.tracer.resource.attributes["process.pid"]),
                str(span.resource.attributes["process.pid"]), *providers]

    print("parent", os.getpid(), *pids(), flush=True)
    pid = os.fork()
    if pid == 0:
        print("child", os.getpid(), *pids(), flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
    obskit.shutdown(timeout=1)
    """
)


@pytest.mark.skipif(not hasattr(sys.modules["os"], "fork"), reason="needs os.fork")
def test_a_forked_childs_spans_and_logs_carry_its_own_pid() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PID_SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    lines = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()}
    for who in ("parent", "child"):
        own, *seen = lines[who]
        assert seen[0] == seen[1] == own, (who, lines)  # obskit's tracer, a user tracer's span
        assert sorted(p.split("=")[0] for p in seen[2:]) == ["LoggerProvider", "TracerProvider"]
        assert all(p.endswith(f"={own}") for p in seen[2:]), (who, lines)
    assert lines["parent"][0] != lines["child"][0]
