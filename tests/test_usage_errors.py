"""Mistakes in the calling code are reported as the caller's: where, what, and what was recorded."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

import obskit
from obskit import MetricsCollector, MetricUsageError
from obskit._core import errors as _errors
from obskit.testing import capture

metrics = MetricsCollector()
#: Subprocesses import the obskit under test, wherever it is.
ENV = {**os.environ, "PYTHONPATH": str(Path(obskit.__file__).parents[1])}


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture(autouse=True)
def _fresh_sites(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_errors, "_usage_sites", set())


APP = """
import obskit
from obskit import MetricsCollector

obskit.configure(service_name="shop", traces_exporter="none", metrics_exporter="none")
orders = MetricsCollector().counter("orders", "Orders.", labels=["status"])
latency = MetricsCollector().histogram("latency_seconds", "Latency.", buckets=[1])
for _ in range(3):
    orders.inc(status="ok", region="eu")   # line 9: undeclared label, three times
orders.inc()                               # line 10: missing label
orders.inc(region="us", status="ok")       # line 11: undeclared again, another site
orders.inc("3", status="ok")               # line 12: not a number
latency.observe("slow")                    # line 13: not a number
orders.inc(-1, status="ok")                # line 14: a counter going down
print("returned normally")
"""


def test_a_mistake_is_the_callers_once_per_call_site_with_what_was_recorded(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(APP)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False, env=ENV
    )
    assert done.returncode == 0, done.stderr
    assert "returned normally" in done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    at = f"{script}:"
    assert lines == [
        f"obskit WARNING: obskit: {at}9: orders_total: label 'region' not declared (declared: status);"
        " recorded without it",
        f"obskit WARNING: obskit: {at}10: orders_total: label 'status' not given (declared: status);"
        ' recorded with status=""',
        f"obskit WARNING: obskit: {at}11: orders_total: label 'region' not declared (declared: status);"
        " recorded without it",
        f"obskit WARNING: obskit: {at}12: orders_total.inc('3'): the value must be a number, not str;"
        " nothing recorded",
        f"obskit WARNING: obskit: {at}13: latency_seconds.observe('slow'): the value must be a number,"
        " not str; nothing recorded",
        f"obskit WARNING: obskit: {at}14: orders_total.inc(-1): a counter only goes up; nothing recorded",
    ], done.stderr
    assert "internal error" not in done.stderr
    assert "Traceback" not in done.stderr


def test_strict_capture_raises_at_the_faulty_call() -> None:
    orders = metrics.counter(unique("orders"), labels=["status"])
    with capture() as cap:
        orders.inc(status="ok")
        with pytest.raises(MetricUsageError, match=r"label 'region' not declared \(declared: status\)"):
            orders.inc(status="ok", region="eu")
        with pytest.raises(MetricUsageError, match=r"label 'status' not given"):
            orders.labels().inc()
        with pytest.raises(MetricUsageError, match=r"inc\('3'\): the value must be a number, not str"):
            orders.inc("3", status="ok")  # type: ignore[arg-type]
        with pytest.raises(MetricUsageError, match="a counter only goes up"):
            orders.labels(status="ok").inc(-2)
        cap.assert_counter(orders.name, 1, status="ok")


def test_strict_is_only_for_mistakes_the_value_is_still_recorded_when_not_strict(
    caplog: pytest.LogCaptureFixture,
) -> None:
    orders = metrics.counter(unique("orders"), labels=["status"])
    with capture(strict=False) as cap:
        orders.inc(status="ok", region="eu")
        orders.labels(status="ok").inc("x")  # type: ignore[arg-type]
        cap.assert_counter(orders.name, 1, status="ok")
    messages = [r.getMessage() for r in caplog.records if r.name == "obskit"]
    assert len(messages) == 2, messages
    assert all(m.startswith(f"obskit: {__file__}:") for m in messages)


def test_a_usage_error_never_raises_outside_strict_mode(swallow_internal_errors: None) -> None:
    orders = metrics.counter(unique("orders"), labels=["status"])
    obskit.configure(traces_exporter="none", metrics_exporter="none", logs_exporter="none")
    orders.inc("3")  # type: ignore[arg-type]
    orders.inc(status="ok", nope="x")


PLUGIN_TEST = """
import pytest
from obskit import MetricsCollector

orders = MetricsCollector().counter("plugin_orders", "Orders.", labels=["status"])


def test_strict_by_default(obskit_capture):
    orders.inc(status="ok", region="eu")


@pytest.mark.obskit(strict=False)
def test_opted_out(obskit_capture):
    orders.inc(status="ok", region="eu")
    obskit_capture.assert_counter("plugin_orders", 1, status="ok")
"""


def test_the_fixture_is_strict_by_default_and_a_marker_opts_out(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(PLUGIN_TEST))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:randomly",
            "-p",
            "no:xdist",
            "-p",
            "no:cacheprovider",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env=ENV,
    )
    assert "1 failed, 1 passed" in done.stdout, done.stdout
    assert "MetricUsageError: plugin_orders_total: label 'region' not declared" in done.stdout
    assert "test_inner.py:9" in done.stdout  # the faulty line is in the traceback
