"""Under ``opentelemetry-instrument`` with OpenTelemetry's logging handler on: each record exported once.

A real script runs under the launcher (``--logs_exporter otlp``) with an OpenTelemetry
``LoggingHandler`` on the root logger: the SDK's (``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true``)
or opentelemetry-instrumentation-logging's (its default when installed, as
``opentelemetry-bootstrap`` installs it), and calls ``obskit.configure(logs_exporter="otlp")``.
Both would export the root's records to the same collector, OpenTelemetry's copy unredacted;
obskit takes that handler off, so the real OTLP receiver gets the record once, with its password
hidden.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from otlp_receiver import receiver

pytestmark = pytest.mark.integration

SRC = Path(__file__).resolve().parents[2] / "src"
LAUNCHER = Path(sys.executable).parent / "opentelemetry-instrument"

SCRIPT = """
import logging

import obskit

obskit.configure(logs_exporter="otlp", shutdown_timeout=5)
logging.getLogger("app").warning("login for ada with password=hunter2 failed")
"""


#: Whose handler the launcher puts on the root: the environment that asks for it, and its class.
HANDLERS = {
    "sdk": ({"OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true"}, "opentelemetry.sdk._logs"),
    "instrumentation": ({}, "opentelemetry.instrumentation.logging.handler"),
}


@pytest.mark.parametrize("handler", list(HANDLERS))
@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_record_reaches_the_collector_once_and_redacted(
    protocol: str, handler: str, tmp_path: Path
) -> None:
    if not LAUNCHER.exists():
        pytest.skip("opentelemetry-instrument is not installed")
    installed = importlib.util.find_spec("opentelemetry.instrumentation.logging") is not None
    if handler == "instrumentation" and not installed:
        pytest.skip('opentelemetry-instrumentation-logging is not installed: pip install "obskit[test]"')
    wanted, module = HANDLERS[handler]
    (tmp_path / "app.py").write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSKIT_", "OTEL_", "PYTEST_"))}
    with receiver(protocol) as collector:
        env.update(
            PYTHONPATH=str(SRC),
            OTEL_SERVICE_NAME="launched-logs",
            **wanted,
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        )
        args = [str(LAUNCHER), "--traces_exporter", "none", "--metrics_exporter", "none"]
        args += ["--logs_exporter", "otlp", sys.executable, "app.py"]
        done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-3000:]
        bodies = [record.body.string_value for record in collector.store.log_records()]
    logins = [body for body in bodies if body.startswith("login for ada")]
    assert logins == ["login for ada with password=[REDACTED] failed"], (bodies, done.stderr[-3000:])
    assert not any("hunter2" in body for body in bodies)
    # obskit says why the handler is off, once.
    assert done.stderr.count(f"took {module}.LoggingHandler off the root logger") == 1
    assert "WARNING" not in done.stderr, done.stderr[-3000:]
