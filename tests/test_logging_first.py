"""Logging set up before obskit: the application's handlers, levels and framework handlers stay theirs.

- ``basicConfig()`` then ``configure()``: each record once on the console (obskit's JSON line in
  place of the plain one), the root level the application chose kept, all put back by shutdown().
- Flask's own handler keeps writing to ``wsgi.errors`` (Flask's ``test_wsgi_errors_stream`` and
  ``test_log_view_exception``, in our words), without a second console copy.
- An exception after the response (a background task failing after a 200, under a real uvicorn)
  is logged at ERROR once, with its stack and trace ids; the access line keeps the status sent.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from flask.logging import default_handler

import obskit
import procs
from obskit._recording.loghandler import ObskitHandler

SRC = str(Path(obskit.__file__).resolve().parents[1])
QUIET: dict[str, Any] = {"traces_exporter": "none", "metrics_exporter": "none"}


def run_script(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OBSKIT_", "OTEL_"))}
    environment.update(PYTHONPATH=SRC, **env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=True,
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _get_when_up(url: str, files: dict[str, Path]) -> httpx.Response:
    """GET ``url``, retrying while the worker is not listening yet."""
    end = time.monotonic() + 30
    while True:
        try:
            return httpx.get(url, timeout=10)
        except httpx.ConnectError:
            if time.monotonic() > end:
                pytest.fail(f"no answer from {url}: {files['stderr'].read_text()[-3000:]}")
            time.sleep(0.05)


def _wait_for(check: Any, what: str, files: dict[str, Path], timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}: {files['stderr'].read_text()[-3000:]}")
        time.sleep(0.05)


# -- basicConfig() first ------------------------------------------------------------------------------

BASIC_CONFIG_FIRST = """
    import logging, sys
    logging.basicConfig(level=logging.DEBUG)
    import obskit
    obskit.configure(traces_exporter="none", metrics_exporter="none")
    log = logging.getLogger("shop")
    log.debug("debug record")
    log.info("info record")
    log.warning("warning record")
    print("ROOT LEVEL", logging.getLogger().level, file=sys.stderr)
    obskit.shutdown()
    log.info("after shutdown")
    print("ROOT LEVEL AFTER", logging.getLogger().level, file=sys.stderr)
"""


def test_basic_config_then_configure_prints_each_record_once_and_keeps_the_root_level() -> None:
    result = run_script(BASIC_CONFIG_FIRST)
    lines = json_lines(result.stdout)
    assert [(line["level"], line["message"]) for line in lines] == [
        ("DEBUG", "debug record"),  # the root level the application set (DEBUG) still rules
        ("INFO", "info record"),
        ("WARNING", "warning record"),
    ]
    for message in ("debug record", "info record", "warning record"):
        assert message not in result.stderr  # no plain copy from basicConfig's handler
    assert "ROOT LEVEL 10" in result.stderr
    # shutdown() put basicConfig's handler and the level back: the application logs as before.
    assert "INFO:shop:after shutdown" in result.stderr
    assert "ROOT LEVEL AFTER 10" in result.stderr
    assert "after shutdown" not in result.stdout


def test_a_log_level_given_still_sets_the_root_level() -> None:
    result = run_script(BASIC_CONFIG_FIRST, OBSKIT_LOG_LEVEL="warning")
    assert [line["message"] for line in json_lines(result.stdout)] == ["warning record"]
    assert "ROOT LEVEL 30" in result.stderr
    assert "ROOT LEVEL AFTER 10" in result.stderr


def bare_root() -> logging.Logger:
    """The root without pytest's capture handlers, as in a program (conftest puts them back).

    Called in the test itself: pytest adds its handlers for the test's call after the fixtures.
    """
    root = logging.getLogger()
    root.handlers.clear()
    return root


def test_a_console_handler_is_replaced_and_put_back_a_file_handler_stays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = bare_root()
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING)
    to_file = logging.FileHandler(tmp_path / "app.log")
    root.addHandler(console)
    root.addHandler(to_file)
    root.setLevel(logging.INFO)
    obskit.configure(**QUIET)
    try:
        (ours,) = [h for h in root.handlers if isinstance(h, ObskitHandler)]
        assert console not in root.handlers
        assert to_file in root.handlers
        assert ours.level == logging.WARNING  # the console showed WARNING and up: it still does
        assert root.level == logging.INFO
        logging.getLogger("shop").info("to the file only")
        logging.getLogger("shop").warning("everywhere")
    finally:
        obskit.shutdown()
        to_file.close()
    out, err = capsys.readouterr()
    assert [line["message"] for line in json_lines(out)] == ["everywhere"]
    assert "everywhere" not in err
    assert (tmp_path / "app.log").read_text() == "to the file only\neverywhere\n"
    assert root.handlers == [to_file, console]


def test_an_untouched_root_gets_obskits_default_level() -> None:
    root = bare_root()
    root.setLevel(logging.WARNING)  # Python's default: nobody chose it
    obskit.configure(**QUIET)
    assert root.level == logging.INFO
    obskit.shutdown()
    assert root.level == logging.WARNING


# -- Flask's own handler --------------------------------------------------------------------------


@pytest.fixture
def flask_app() -> Iterator[Flask]:
    """A Flask app, its logger not used yet. Each test takes pytest's handlers off the root first,
    as Flask's suite does: they would count as a handler for the app's logger."""
    app = Flask("flask_first_app")
    app.config.update(TESTING=True)
    yield app
    obskit.shutdown()
    logging.getLogger(app.name).handlers.clear()


def test_the_app_logger_still_writes_to_wsgi_errors(
    flask_app: Flask, capsys: pytest.CaptureFixture[str]
) -> None:
    """Flask's test_wsgi_errors_stream: the app logger's record reaches the request's wsgi.errors."""

    @flask_app.route("/")
    def index() -> str:
        flask_app.logger.error("test")
        return ""

    bare_root()
    obskit.configure(flask_app, **QUIET)
    stream = StringIO()
    flask_app.test_client().get("/", errors_stream=stream)
    assert "ERROR in test_logging_first: test" in stream.getvalue()
    assert default_handler in flask_app.logger.handlers
    records = [line for line in json_lines(capsys.readouterr().out) if line["logger"] == flask_app.name]
    assert [line["message"] for line in records] == ["test"]


def test_a_view_exception_is_logged_to_wsgi_errors(
    flask_app: Flask, capsys: pytest.CaptureFixture[str]
) -> None:
    """Flask's test_log_view_exception: an unhandled exception is logged to wsgi.errors with its stack."""

    @flask_app.route("/")
    def index() -> str:
        raise Exception("test")

    bare_root()
    obskit.configure(flask_app, **QUIET)
    flask_app.testing = False
    stream = StringIO()
    response = flask_app.test_client().get("/", errors_stream=stream)
    assert response.status_code == 500
    assert response.data
    errors = stream.getvalue()
    assert "Exception on / [GET]" in errors
    assert "Exception: test" in errors


def test_flasks_copy_on_the_console_is_dropped_for_obskits_line(
    flask_app: Flask, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under a real server wsgi.errors is the process's stderr: one JSON line, no plain copy."""

    @flask_app.route("/")
    def index() -> str:
        flask_app.logger.warning("once")
        return ""

    bare_root()
    obskit.configure(flask_app, **QUIET)
    flask_app.test_client().get("/", errors_stream=sys.stderr)
    out, err = capsys.readouterr()
    assert "once" not in err
    assert [line["message"] for line in json_lines(out) if line["logger"] == flask_app.name] == ["once"]
    obskit.shutdown()
    flask_app.test_client().get("/", errors_stream=sys.stderr)  # Flask's handler alone again
    assert "WARNING in test_logging_first: once" in capsys.readouterr().err


def test_a_flask_handler_the_app_removed_stays_removed(flask_app: Flask) -> None:
    """Flask's documented way to drop its handler: obskit does not put it back."""
    bare_root()
    flask_app.logger.removeHandler(default_handler)
    obskit.configure(flask_app, **QUIET)
    assert default_handler not in flask_app.logger.handlers


def test_a_root_handler_added_after_configure_is_flasks_reason_to_add_none(flask_app: Flask) -> None:
    """Flask's test_existing_handler: the app logger gets no handler when the root has one."""
    bare_root()
    obskit.configure(flask_app, **QUIET)
    logging.root.addHandler(logging.StreamHandler())
    assert flask_app.logger.level == logging.NOTSET
    assert not flask_app.logger.handlers
    flask_app.test_client().get("/")  # serving does not change Flask's choice either
    assert not flask_app.logger.handlers


GUNICORN_FLASK_APP = """
import obskit
from flask import Flask

app = Flask("gunicorn_flask_app")


@app.get("/note")
def note() -> str:
    app.logger.warning("noted once")
    return "ok"


obskit.configure(app, traces_exporter="none", metrics_exporter="none", access_log_flush_interval=0)
"""


def test_under_gunicorn_the_app_loggers_record_is_one_json_line(tmp_path: Path) -> None:
    """gunicorn's wsgi.errors writes to its error log's stream (stderr): Flask's copy is dropped there."""
    (tmp_path / "gunicorn_flask_app.py").write_text(GUNICORN_FLASK_APP)
    port = procs.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSKIT_", "OTEL_"))}
    env.update(PYTHONPATH=os.pathsep.join([SRC, str(tmp_path)]), PYTHONUNBUFFERED="1")
    args = [sys.executable, "-m", "gunicorn", "gunicorn_flask_app:app", "-b", f"127.0.0.1:{port}"]
    files = {"stdout": tmp_path / "stdout.log", "stderr": tmp_path / "stderr.log"}
    with files["stdout"].open("wb") as out, files["stderr"].open("wb") as err:
        server = subprocess.Popen(args, stdout=out, stderr=err, env=env, cwd=tmp_path)
        try:
            _wait_for(lambda: "Booting worker" in files["stderr"].read_text(), "startup", files)
            response = _get_when_up(f"http://127.0.0.1:{port}/note", files)
            assert response.status_code == 200
            _wait_for(lambda: "GET /note 200" in files["stdout"].read_text(), "the access line", files)
        finally:
            procs.stop(server)
    stdout, stderr = files["stdout"].read_text(), files["stderr"].read_text()
    assert [line["message"] for line in json_lines(stdout) if line["logger"] == "gunicorn_flask_app"] == [
        "noted once"
    ]
    assert "noted once" not in stderr


# -- an exception after the response ---------------------------------------------------------------


def test_a_wsgi_body_failing_after_a_200_is_logged_at_error_with_the_status_sent() -> None:
    """The WSGI side of the same promise: the body's generator raises once the 200 went out."""
    from flask import Response

    from obskit.testing import capture

    app = Flask("flask_late_body")

    @app.get("/report")
    def report() -> Response:
        def rows() -> Iterator[bytes]:
            yield b"first row,"
            raise LookupError("row 2 vanished")

        return Response(rows(), mimetype="text/plain")

    obskit.configure(app, **QUIET)
    with capture() as cap:
        response = app.test_client().get("/report", buffered=False)
        assert response.status_code == 200
        with pytest.raises(LookupError):
            b"".join(response.response)
        response.close()
        (line,) = cap.logs(logger="http.access")
    assert line["level"] == "ERROR"
    assert line["status"] == 200
    assert line["exception"]["type"] == "LookupError"


BACKGROUND_APP = """
import obskit
from fastapi import BackgroundTasks, FastAPI

app = FastAPI()


class LateFailure(Exception):
    pass


def send_receipt() -> None:
    raise LateFailure("receipt service down")


@app.get("/order")
def order(tasks: BackgroundTasks) -> dict[str, str]:
    tasks.add_task(send_receipt)
    return {"status": "accepted"}


obskit.configure(app, traces_exporter="console", metrics_exporter="none", access_log_flush_interval=0)
"""


#: How to start each server on a port, and the line it writes once it serves.
SERVERS = {
    "uvicorn": (
        ["-m", "uvicorn", "late_app:app", "--host", "127.0.0.1", "--port"],
        "Application startup complete",
    ),
    "hypercorn": (["-m", "hypercorn", "late_app:app", "--bind"], "Running on"),
}


def _serve_once(tmp_path: Path, server_name: str, path: str) -> dict[str, Path]:
    """Serve the app with a real server, GET ``path`` once (a 200), wait for the error line, stop."""
    (tmp_path / "late_app.py").write_text(BACKGROUND_APP)
    port = procs.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSKIT_", "OTEL_"))}
    env.update(PYTHONPATH=os.pathsep.join([SRC, str(tmp_path)]), PYTHONUNBUFFERED="1")
    start, ready = SERVERS[server_name]
    where = f"127.0.0.1:{port}" if server_name == "hypercorn" else str(port)
    args = [sys.executable, *start, where]
    files = {"stdout": tmp_path / "stdout.log", "stderr": tmp_path / "stderr.log"}
    with files["stdout"].open("wb") as out, files["stderr"].open("wb") as err:
        server = subprocess.Popen(args, stdout=out, stderr=err, env=env, cwd=tmp_path)
        try:
            text = lambda: files["stdout"].read_text() + files["stderr"].read_text()  # noqa: E731
            _wait_for(lambda: ready in text(), "startup", files)
            response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10)
            assert response.status_code == 200
            _wait_for(lambda: "LateFailure" in files["stdout"].read_text(), "the error line", files)
        finally:
            procs.stop(server)
    return files


@pytest.mark.parametrize("server_name", list(SERVERS))
def test_a_background_task_failing_after_a_200_is_logged_at_error_once(
    tmp_path: Path, server_name: str
) -> None:
    files = _serve_once(tmp_path, server_name, "/order")
    stdout, stderr = files["stdout"].read_text(), files["stderr"].read_text()
    errors = [line for line in json_lines(stdout) if line["level"] == "ERROR"]
    assert len(errors) == 1, stdout
    (error,) = errors
    assert error["exception"]["type"] == "LateFailure"
    assert "receipt service down" in error["exception"]["stack"]
    assert len(error["trace_id"]) == 32
    assert error["span_id"]
    assert error["request_id"]
    (access,) = [line for line in json_lines(stdout) if line["logger"] == "http.access"]
    assert access["status"] == 200  # the response that was sent
    # The server's copy ("Exception in ASGI application", "Error in ASGI Framework"): dropped.
    assert "ASGI" not in stdout + stderr
    assert len([line for line in stdout.splitlines() if "LateFailure" in line]) == 1
    # On stderr only the span names it (its status is ERROR): no server line, no stack.
    assert all(line.startswith("[obskit span]") for line in stderr.splitlines() if "LateFailure" in line)
