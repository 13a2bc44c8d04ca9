"""What a log record carries out of the process, on every log path alike (promises 5 and 9).

The paths: the JSON formatter's direct path (plain records) and general path (anything else),
the console format, structlog through stdlib (``obskit.get_logger``) and structlog's own
processors (``structlog_processors()``), and exported records (the handler behind OTLP and
Azure). A lone surrogate, an int too long to print or an object whose ``str()`` raises loses
its own field only; secrets nested in fields and credentials in free text (messages,
exception messages and stacks, field values) are hidden everywhere.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

import obskit
import procs
from logcapture import strict_loads
from obskit._core import state as _state
from obskit._core.redact import REDACTED
from obskit._export.logexport import ObskitLoggingHandler
from obskit._recording.loghandler import ObskitHandler
from obskit.logging import structlog_processors

LOGGER = "tests.log_values"
BAD = "bad \ud800"
ESCAPED = "bad \\ud800"


class Unprintable:
    """A value whose ``str()`` and ``repr()`` both raise."""

    def __str__(self) -> str:
        raise RuntimeError("no text for you")

    __repr__ = __str__


class Output:
    """obskit configured with console logs on stdout plus an exporting handler kept in memory."""

    def __init__(self, capsys: pytest.CaptureFixture[str], log_format: str) -> None:
        self.capsys = capsys
        obskit.configure(
            logs_exporter="console", log_format=log_format, traces_exporter="none", metrics_exporter="none"
        )
        self.exporter = InMemoryLogRecordExporter()
        provider = LoggerProvider(shutdown_on_exit=False)
        provider.add_log_record_processor(SimpleLogRecordProcessor(self.exporter))
        self.handler = ObskitLoggingHandler(logging.DEBUG, provider, _state.STATE.redactor)
        logging.getLogger().addHandler(self.handler)
        self.logger = logging.getLogger(LOGGER)
        capsys.readouterr()

    def log(self) -> logging.Logger:
        """The test logger, with obskit's handlers alone (call it in the test itself).

        pytest's own handlers would keep the records raw (surrogates included) for its report,
        which pytest-xdist then cannot send; it attaches them to each test phase's loggers.
        """
        root = logging.getLogger()
        self.logger.handlers[:] = [
            h for h in root.handlers if type(h) in (ObskitHandler, ObskitLoggingHandler)
        ]
        self.logger.propagate = False
        return self.logger

    def close(self) -> None:
        self.logger.handlers.clear()
        self.logger.propagate = True
        obskit.shutdown(timeout=2)

    def stdout(self) -> str:
        """What was written to stdout since the last call, checked to be valid UTF-8."""
        out = self.capsys.readouterr().out
        out.encode("utf-8")
        return out

    def lines(self) -> list[dict[str, Any]]:
        return [strict_loads(line) for line in self.stdout().split("\n") if line.strip()]

    def exported(self) -> list[tuple[Any, dict[str, Any]]]:
        """(body, attributes) of each exported record so far, checked to be valid UTF-8."""
        records = [r.log_record for r in self.exporter.get_finished_logs()]
        self.exporter.clear()
        for record in records:
            json.dumps([record.body, dict(record.attributes or {})], ensure_ascii=False).encode("utf-8")
        return [(r.body, dict(r.attributes or {})) for r in records]


@pytest.fixture
def json_out(capsys: pytest.CaptureFixture[str]) -> Iterator[Output]:
    output = Output(capsys, "json")
    yield output
    output.close()


@pytest.fixture
def console_out(capsys: pytest.CaptureFixture[str]) -> Iterator[Output]:
    output = Output(capsys, "console")
    yield output
    output.close()


def structlog_line(message: str, **fields: Any) -> dict[str, Any]:
    """The line structlog_processors() render for one event (structlog writing itself)."""
    logger = structlog.wrap_logger(structlog.ReturnLogger(), processors=structlog_processors())
    line = logger.info(message, **fields)
    line.encode("utf-8")
    return strict_loads(line)


def log_everywhere(output: Output, message: str, fields: dict[str, Any], exc_info: Any = None) -> None:
    """The same record through stdlib logging and through obskit's structlog logger."""
    output.log().info(message, extra=fields, exc_info=exc_info)
    obskit.get_logger(LOGGER).info(message, exc_info=exc_info, **fields)


# -- one bad value costs its own field only --------------------------------------------------------


def test_a_lone_surrogate_becomes_its_escape_on_every_path(json_out: Output) -> None:
    log = json_out.log()
    log.info(BAD)  # the direct path
    log.info(BAD, extra={"v": "\udc80\udcff", "n": 1})  # the direct path with extra fields
    log_everywhere(json_out, BAD, {"v": "\udc80\udcff", "nested": {"k\udc80": [BAD]}})  # the general path
    try:
        raise ValueError(BAD)
    except ValueError:
        log.exception(BAD)
    lines = json_out.lines()
    assert [line["message"] for line in lines] == [ESCAPED] * 5
    assert lines[1]["v"] == lines[2]["v"] == lines[3]["v"] == "\\udc80\\udcff"
    assert lines[2]["nested"] == lines[3]["nested"] == {"k\\udc80": [ESCAPED]}
    assert lines[4]["exception"]["message"] == ESCAPED
    assert structlog_line(BAD, v=BAD)["v"] == ESCAPED

    exported = json_out.exported()
    assert [body for body, _ in exported] == [ESCAPED] * 5
    assert exported[1][1]["v"] == exported[2][1]["v"] == "\\udc80\\udcff"
    assert json.loads(exported[2][1]["nested"]) == {"k\\udc80": [ESCAPED]}
    assert exported[4][1]["exception.message"] == ESCAPED
    assert ESCAPED in exported[4][1]["exception.stacktrace"]


def test_a_lone_surrogate_in_a_console_line_becomes_its_escape(console_out: Output) -> None:
    console_out.log().info(BAD, extra={"v": "\udc80"})
    out = console_out.stdout()
    assert f"{ESCAPED}  " in out
    assert "v=\\udc80" in out


@pytest.mark.parametrize(
    ("value", "marker"),
    [(10**5000, "[unrenderable int]"), (Unprintable(), "[unrenderable Unprintable]")],
    ids=["int-too-long-to-print", "str-raises"],
)
def test_a_value_that_cannot_be_rendered_becomes_a_marker_on_every_path(
    json_out: Output, value: Any, marker: str
) -> None:
    log = json_out.log()
    log.info("kept", extra={"bad": value, "fine": 1})  # the direct path declines: general path
    log_everywhere(json_out, "kept", {"bad": value, "nested": {"deep": [value]}, "fine": 1})
    lines = json_out.lines()
    assert [(line["message"], line["bad"], line["fine"]) for line in lines] == [("kept", marker, 1)] * 3
    assert lines[1]["nested"] == lines[2]["nested"] == {"deep": [marker]}
    line = structlog_line("kept", bad=value, fine=1)
    assert (line["bad"], line["fine"]) == (marker, 1)

    exported = json_out.exported()
    assert [(body, a["bad"], a["fine"]) for body, a in exported] == [("kept", marker, 1)] * 3
    assert json.loads(exported[1][1]["nested"]) == {"deep": [marker]}


@pytest.mark.parametrize(
    ("value", "marker"),
    [(10**5000, "[unrenderable int]"), (Unprintable(), "[unrenderable Unprintable]")],
    ids=["int-too-long-to-print", "str-raises"],
)
def test_a_value_that_cannot_be_rendered_becomes_a_marker_in_a_console_line(
    console_out: Output, value: Any, marker: str
) -> None:
    console_out.log().info("kept", extra={"bad": value, "fine": 1})
    out = console_out.stdout()
    assert "kept" in out
    assert f"bad={marker} fine=1" in out


def test_ints_past_64_bits_are_exported_as_their_digits(json_out: Output) -> None:
    json_out.log().info("wide", extra={"wide": 2**70, "narrow": 2**62, "flags": [1, 2**64]})
    assert json_out.lines()[0]["wide"] == 2**70  # JSON takes any int it can print
    ((_, attributes),) = json_out.exported()
    assert (attributes["wide"], attributes["narrow"]) == (str(2**70), 2**62)
    assert json.loads(attributes["flags"]) == [1, str(2**64)]


# -- secrets: nested keys and credentials in free text ---------------------------------------------

NESTED = {
    "nested": {"client_secret": "s3cr3t-nested", "ok": "visible"},
    "headers": {"Authorization": "Bearer eyJ-nested-token", "Accept": "json"},
}


def test_secrets_nested_in_fields_are_redacted_on_every_path(json_out: Output) -> None:
    log_everywhere(json_out, "request sent", NESTED)
    out = json.dumps(json_out.lines())
    exported = json_out.exported()
    line = structlog_line("request sent", **NESTED)
    for text in (out, json.dumps(exported), json.dumps(line)):
        assert "s3cr3t-nested" not in text
        assert "eyJ-nested-token" not in text
        assert "visible" in text
    for _, attributes in exported:  # JSON text, not a Python repr
        assert json.loads(attributes["nested"]) == {"client_secret": REDACTED, "ok": "visible"}
        assert json.loads(attributes["headers"]) == {"Authorization": REDACTED, "Accept": "json"}


CREDENTIALS = ["hunter2", "pw-in-url", "K9-query-key", "abc123-in-exception", "tok-in-field", "ctx-pass"]


def test_credentials_in_free_text_are_hidden_on_every_path(json_out: Output) -> None:
    fields = {"url": "http://bob:pw-in-url@db/x?api_key=K9-query-key", "note": "Bearer tok-in-field"}
    with obskit.LoggingContext(note_ctx="password=ctx-pass"):
        json_out.log().info("login password=hunter2 for bob")  # the direct path
        json_out.log().info("sent", extra=fields)  # the direct path with extra fields
        try:
            raise ValueError("token=abc123-in-exception rejected")
        except ValueError as error:
            log_everywhere(json_out, "login password=hunter2 failed", fields, exc_info=error)
        line = structlog_line("login password=hunter2", **fields)
    lines, exported = json_out.lines(), json_out.exported()
    everything = json.dumps([lines, exported, line], ensure_ascii=False)
    for secret in CREDENTIALS:
        assert secret not in everything
    assert lines[0]["message"] == f"login password={REDACTED} for bob"
    assert lines[1]["url"] == f"http://{REDACTED}@db/x?api_key={REDACTED}"
    assert lines[2]["exception"]["message"] == f"token={REDACTED} rejected"
    assert f"token={REDACTED} rejected" in lines[3]["exception"]["stack"]
    assert lines[0]["note_ctx"] == f"password={REDACTED}"
    assert exported[0][0] == f"login password={REDACTED} for bob"
    assert exported[2][1]["exception.message"] == f"token={REDACTED} rejected"
    assert f"token={REDACTED} rejected" in exported[2][1]["exception.stacktrace"]


def test_credentials_in_free_text_are_hidden_in_a_console_line(console_out: Output) -> None:
    try:
        raise ValueError("token=abc123-in-exception rejected")
    except ValueError:
        console_out.log().exception(
            "login password=hunter2", extra={"url": "http://bob:pw-in-url@db/?api_key=K9-query-key"}
        )
    out = console_out.stdout()
    assert f"login password={REDACTED}" in out
    for secret in CREDENTIALS:
        assert secret not in out


def test_text_scrubbing_can_be_turned_off(capsys: pytest.CaptureFixture[str]) -> None:
    obskit.configure(
        logs_exporter="console", traces_exporter="none", metrics_exporter="none", redact_text=False
    )
    logging.getLogger(LOGGER).info("login password=hunter2", extra={"nested": {"password": "p"}})
    obskit.shutdown(timeout=2)
    (line,) = [strict_loads(line) for line in capsys.readouterr().out.splitlines() if "login" in line]
    assert line["message"] == "login password=hunter2"
    assert line["nested"] == {"password": REDACTED}  # keys are redacted all the same


@pytest.fixture
def loopback() -> Iterator[int]:
    with procs.http_server(procs.Ok) as url:
        yield int(url.rsplit(":", 1)[1])


def test_an_http_client_s_request_line_arrives_redacted(json_out: Output, loopback: int) -> None:
    httpx = pytest.importorskip("httpx")
    with httpx.Client() as client:
        assert client.get(f"http://user:pw-in-url@127.0.0.1:{loopback}/x?api_key=K9-query-key").text == "ok"
    (line,) = [line for line in json_out.lines() if line["logger"] == "httpx"]
    (body,) = [body for body, attributes in json_out.exported() if attributes["logger.name"] == "httpx"]
    for message in (line["message"], body):
        assert message.startswith("HTTP Request: GET http://")
        assert f"api_key={REDACTED}" in message
        assert "pw-in-url" not in message
        assert "K9-query-key" not in message


# -- stdout bytes ----------------------------------------------------------------------------------

_SCRIPT = textwrap.dedent(
    """
    import logging, obskit
    obskit.configure(service_name="utf8", traces_exporter="none", metrics_exporter="none")
    log = logging.getLogger("app")
    log.info("bad \\udc80\\udcff")
    log.info("m", extra={"v": "\\udc80\\udcff"})
    log.info("m", extra={"v": {"k": "\\ud800"}, "n": 10**5000})
    obskit.get_logger("app").info("structlog \\udc80", v="\\udcff")
    try:
        raise ValueError("exc \\udc80")
    except ValueError:
        log.exception("failed \\udc80")
    log.info("é ☃ fine")
    obskit.shutdown()
    """
)


@pytest.mark.parametrize(
    "env",
    [{"PYTHONIOENCODING": "utf-8:surrogateescape"}, {"LC_ALL": "C", "LANG": "C"}],
    ids=["surrogateescape", "C-locale"],
)
def test_each_stdout_line_is_utf8_json(env: dict[str, str]) -> None:
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONIOENCODING", "LC_ALL", "LANG")}
    environ["PYTHONPATH"] = os.pathsep.join(sys.path)
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], env={**environ, **env}, capture_output=True, timeout=60, check=True
    )
    lines = [strict_loads(line) for line in done.stdout.decode("utf-8").splitlines()]
    assert [line["message"] for line in lines] == [
        "bad \\udc80\\udcff",
        "m",
        "m",
        "structlog \\udc80",
        "failed \\udc80",
        "é ☃ fine",
    ]
    assert lines[1]["v"] == "\\udc80\\udcff"
    assert (lines[2]["v"], lines[2]["n"]) == ({"k": "\\ud800"}, "[unrenderable int]")
    assert lines[3]["v"] == "\\udcff"
    assert lines[4]["exception"]["message"] == "exc \\udc80"


def test_a_message_that_cannot_be_made_keeps_its_record(json_out: Output) -> None:
    log = json_out.log()
    log.info("%d items", "not a number")
    log.info(Unprintable())
    lines = json_out.lines()
    assert [line["message"] for line in lines] == ["%d items", "[unrenderable Unprintable]"]
    assert [body for body, _ in json_out.exported()] == ["%d items", "[unrenderable Unprintable]"]


def test_a_structlog_event_whose_str_raises_keeps_its_line(json_out: Output) -> None:
    json_out.log()
    obskit.get_logger(LOGGER).info(Unprintable(), n=1)
    (line,) = json_out.lines()
    assert (line["message"], line["n"]) == ("[unrenderable Unprintable]", 1)
    assert structlog_line(Unprintable(), n=1)["message"] == "[unrenderable Unprintable]"  # type: ignore[arg-type]


def test_each_console_format_line_is_utf8() -> None:
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONIOENCODING", "LC_ALL", "LANG")}
    environ.update(
        PYTHONPATH=os.pathsep.join(sys.path),
        PYTHONIOENCODING="utf-8:surrogateescape",
        OBSKIT_LOG_FORMAT="console",
    )
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=environ, capture_output=True, timeout=60, check=True
    )
    text = done.stdout.decode("utf-8")
    assert "bad \\udc80\\udcff" in text
    assert "n=[unrenderable int]" in text
    assert "é ☃ fine" in text


def test_a_nested_key_whose_str_raises_costs_its_key_only(json_out: Output) -> None:
    json_out.log().info("kept", extra={"nested": {Unprintable(): 1, "ok": 2}})
    (line,) = json_out.lines()
    assert line["nested"] == {"[unrenderable Unprintable]": 1, "ok": 2}
    ((_, attributes),) = json_out.exported()
    assert json.loads(attributes["nested"]) == {"[unrenderable Unprintable]": 1, "ok": 2}
