"""OpenTelemetry's own LoggingHandler on the root logger, beside obskit's exported logs.

``opentelemetry-instrument`` with ``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true`` puts
the SDK's ``LoggingHandler`` on the root. When obskit exports logs itself, that handler would
export every record a second time, unredacted: obskit takes it off while it runs and
``shutdown()`` puts it back. When obskit exports none, the SDK's handler is the only export and
stays. (The launcher itself, end to end: tests/integration/test_launcher_logs.py.)
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

import obskit

sys.path.insert(0, str(Path(__file__).parent / "integration"))
import otlp_receiver as rx

# The SDK deprecates its handler (for opentelemetry-instrumentation-logging's) but still installs it.
pytestmark = pytest.mark.filterwarnings(
    "ignore:`LoggingHandler` in `opentelemetry-sdk` is deprecated:DeprecationWarning"
)

#: A port nobody listens on: obskit's exporter fails quietly, the test only looks at the root.
CLOSED = "http://127.0.0.1:9"
AZURE_CLOSED = f"InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint={CLOSED}/"


class _SubclassedHandler(LoggingHandler):
    """An application's own subclass of the SDK's handler: it exports the same way."""


@pytest.fixture
def sdk_export() -> Iterator[InMemoryLogRecordExporter]:
    """The SDK's LoggerProvider and LoggingHandler on the root, as the launcher sets them up."""
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logging.getLogger().addHandler(LoggingHandler(level=logging.NOTSET, logger_provider=provider))
    yield exporter
    provider.shutdown()  # conftest puts the root's handlers back as they were


def _sdk_handlers() -> list[logging.Handler]:
    return [handler for handler in logging.getLogger().handlers if isinstance(handler, LoggingHandler)]


def _bodies(exporter: InMemoryLogRecordExporter) -> list[object]:
    return [data.log_record.body for data in exporter.get_finished_logs()]


@pytest.mark.parametrize("exported", ["otlp", "console,otlp", "azure"])
def test_obskit_exporting_logs_takes_the_sdk_handler_off_until_shutdown(
    exported: str, sdk_export: InMemoryLogRecordExporter
) -> None:
    (handler,) = _sdk_handlers()
    obskit.configure(
        traces_exporter="none",
        metrics_exporter="none",
        logs_exporter=exported,
        otlp_endpoint=CLOSED,
        azure_connection_string=AZURE_CLOSED,
    )
    assert _sdk_handlers() == []
    obskit.shutdown(timeout=1)
    assert _sdk_handlers() == [handler]
    logging.getLogger("app").warning("after shutdown")
    assert _bodies(sdk_export) == ["after shutdown"]


@pytest.mark.integration
def test_each_record_reaches_the_exporter_once_redacted(sdk_export: InMemoryLogRecordExporter) -> None:
    with rx.receiver("http/protobuf") as receiver:
        obskit.configure(
            traces_exporter="none",
            metrics_exporter="none",
            logs_exporter="otlp",
            otlp_protocol="http/protobuf",
            otlp_endpoint=receiver.endpoint,
            shutdown_timeout=5,
        )
        logging.getLogger("app").warning("login with password=hunter2 failed")
        obskit.shutdown()
        bodies = [record.body.string_value for record in receiver.store.log_records()]
    assert [body for body in bodies if body.startswith("login")] == ["login with password=[REDACTED] failed"]
    assert _bodies(sdk_export) == []  # the SDK's pipeline never saw it


def test_a_subclass_of_the_sdk_handler_is_taken_off_too(sdk_export: InMemoryLogRecordExporter) -> None:
    provider = LoggerProvider(shutdown_on_exit=False)
    subclassed = _SubclassedHandler(logger_provider=provider)
    logging.getLogger().addHandler(subclassed)
    obskit.configure(
        logs_exporter="otlp", traces_exporter="none", metrics_exporter="none", otlp_endpoint=CLOSED
    )
    assert _sdk_handlers() == []
    obskit.shutdown(timeout=1)
    assert subclassed in _sdk_handlers()
    assert len(_sdk_handlers()) == 2
    provider.shutdown()


def test_it_is_said_once_on_obskits_logger(
    sdk_export: InMemoryLogRecordExporter, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(2):
        obskit.configure(
            logs_exporter="otlp", traces_exporter="none", metrics_exporter="none", otlp_endpoint=CLOSED
        )
    obskit.shutdown(timeout=1)
    said = [line for line in capsys.readouterr().err.splitlines() if "LoggingHandler" in line]
    assert said == [
        "obskit INFO: took opentelemetry.sdk._logs.LoggingHandler off the root logger while obskit "
        "exports logs itself: it would export each record again, unredacted; shutdown() puts it back"
    ]


@pytest.mark.parametrize("exporter", ["console", "none"])
def test_without_exported_logs_the_sdk_handler_stays(
    exporter: str, sdk_export: InMemoryLogRecordExporter
) -> None:
    (handler,) = _sdk_handlers()
    obskit.configure(logs_exporter=exporter, traces_exporter="none", metrics_exporter="none")
    assert _sdk_handlers() == [handler]
    logging.getLogger("app").warning("the launcher's export is the only one")
    assert _bodies(sdk_export) == ["the launcher's export is the only one"]
    obskit.shutdown(timeout=1)
    assert _sdk_handlers() == [handler]
