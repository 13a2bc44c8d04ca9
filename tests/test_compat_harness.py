"""The harness that runs FastAPI's, Starlette's and Flask's own suites with obskit (compat/)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPAT = ROOT / "compat"

SUITE = """
import flask
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

FIRST = FastAPI()


@FIRST.get("/")
def hello():
    return "hi"


def test_every_app_built_is_served_through_obskit():
    second = Starlette(routes=[Route("/", lambda request: PlainTextResponse("hi"))])
    app = flask.Flask(__name__)
    app.add_url_rule("/", view_func=lambda: "hi")
    # The app built first (at import) is still instrumented after two more were built.
    for client in (TestClient(FIRST), TestClient(second), app.test_client()):
        assert client.get("/", headers={"X-Request-ID": "probe"}).headers.get("x-request-id") == "probe"
"""


def _run_suite(tmp_path: Path, exporter: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_suite.py").write_text(SUITE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSKIT_", "OTEL_", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(COMPAT), str(ROOT / "src")])
    env["OBSKIT_COMPAT_EXPORTER"] = exporter
    env["OBSKIT_COMPAT_PROBLEMS"] = str(tmp_path / "problems.json")
    args = ["-p", "obskit_compat_plugin", "-p", "no:randomly", "-p", "no:cacheprovider", "-q"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args, "test_suite.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("exporter", ["none", "console"])
def test_plugin_instruments_every_app_a_suite_builds(tmp_path: Path, exporter: str) -> None:
    result = _run_suite(tmp_path, exporter)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "problems.json").read_text() == "[]"


def _load_run() -> ModuleType:
    """compat/run.py under a name of its own: benchmarks/run.py may already be ``run`` here."""
    spec = importlib.util.spec_from_file_location("obskit_compat_run", COMPAT / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def test_junit_outcomes_and_allow_list_matching(tmp_path: Path) -> None:
    run = _load_run()
    junit = tmp_path / "report.xml"
    junit.write_text(
        '<testsuites><testsuite><testcase classname="tests.test_a" name="test_ok"/>'
        '<testcase classname="tests.test_a" name="test_bad[x]"><failure message="boom"/></testcase>'
        '<testcase classname="tests.test_a" name="test_skip"><skipped/></testcase>'
        '<testcase classname="tests.test_a" name="test_ok"><error message="in teardown"/></testcase>'
        "</testsuite></testsuites>"
    )
    assert run.outcomes(junit) == {
        "tests.test_a::test_ok": "error",  # failed in its teardown: the worse outcome
        "tests.test_a::test_bad[x]": "failed",
        "tests.test_a::test_skip": "skipped",
    }
    allow = {"tests.test_a::test_bad": "why"}
    assert run.is_allowed("tests.test_a::test_bad[x]", allow)
    assert not run.is_allowed("tests.test_a::test_ok", allow)
    # The allow-list holds only FastAPI's own telemetry tests, each with a reason.
    entries = run.allowed("fastapi")
    assert entries
    assert all(reason.strip() for reason in entries.values())
    assert run.allowed("flask") == run.allowed("starlette") == {}
