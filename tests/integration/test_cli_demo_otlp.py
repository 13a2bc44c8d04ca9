"""``obskit demo --otlp-endpoint``: the demo's telemetry reaches a real OTLP receiver, both protocols."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

try:  # a package if tests/integration gets an __init__.py, a rootdir module otherwise
    from . import otlp_receiver as rx
except ImportError:
    import otlp_receiver as rx  # type: ignore[no-redef]

pytestmark = pytest.mark.integration


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OBSKIT_", "OTEL_", "APPLICATIONINSIGHTS_"))
    }
    return {**env, **extra}


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_demo_exports_all_signals_to_the_otlp_endpoint(protocol: str) -> None:
    with rx.receiver(protocol) as receiver:
        done = subprocess.run(
            [sys.executable, "-m", "obskit", "demo", "--duration", "2", "--otlp-endpoint", receiver.endpoint],
            env=clean_env(OTEL_EXPORTER_OTLP_PROTOCOL=protocol),
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        store = receiver.store
        # shutdown() flushed before the process exited: everything is there already
        names = {span.name for span in store.spans()}
        assert {"GET /orders/{order_id}", "POST /orders/{order_id}/checkout", "charge_payment"} <= names
        assert {r["service.name"] for r in store.resources("traces")} == {"obskit-demo"}
        assert {"obskit_jobs_total", "http_server_requests_total", "demo_orders_paid_total"} <= set(
            store.metrics()
        )
        messages = {rx.value(record.body) for record in store.log_records()}
        assert {"order paid", "GET /reports/broken 500"} <= messages
    # the console streams stay on alongside OTLP
    assert "[obskit span] " in done.stderr
    assert f"OTLP       {receiver.endpoint} ({protocol})" in done.stderr
