"""Every example, run as a user runs it: in a subprocess of its own, with a timeout.

demo.py on the console default; batch_worker.py against a real push gateway; the user-style test
file test_telemetry_example.py under a pytest of its own, set up as in a user's project (and
broken copies of it, to show that its assertions bite). The web examples are served by real
servers elsewhere: fastapi_app.py and flask_app.py in test_web_servers.py, gunicorn_app.py in
test_prometheus_server.py; the last test here checks that no example is left out.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from peers import EXAMPLES, http_get, needs_pushgateway, sample

pytestmark = pytest.mark.integration

TIMEOUT = 120  # seconds: each example takes about one; the margin is for a loaded CI machine
#: A user's own pytest configuration, strict about warnings.
USER_INI = "[pytest]\nfilterwarnings =\n    error\n"


def example_env(**extra: str) -> dict[str, str]:
    """The environment a user's shell would give: none of the suite's obskit or pytest variables."""
    prefixes = ("OBSKIT_", "OTEL_", "PROMETHEUS_", "APPLICATIONINSIGHTS_", "PYTEST_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    # No __pycache__ left in examples/ by the runs (pytest's rewritten test modules included).
    env.update(PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1", **extra)
    return env


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``python <args>`` to completion; a run past the timeout is killed and fails the test."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=example_env(**env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def explain(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"


# -- demo.py --------------------------------------------------------------------------------------


def test_demo_logs_json_lines_and_prints_the_job_metrics(tmp_path: Path) -> None:
    result = run([str(EXAMPLES / "demo.py")], tmp_path)

    assert result.returncode == 0, explain(result)
    combined = result.stdout + result.stderr  # what .ci/run greps, in its words
    assert '"message":"article checked"' in combined
    assert 'obskit_jobs_total{job_name="compliance_check",status="success"} 3' in combined
    lines = json_lines(result.stdout)
    checked = [line for line in lines if line["message"] == "article checked"]
    assert len(checked) == 3
    assert all(line["trace_id"] and line["request_id"] and line["user_id"] for line in checked)
    [rejected] = [line for line in lines if line["message"] == "article rejected"]
    assert rejected["level"] == "ERROR"
    assert rejected["exception"]["type"] == "ValueError"
    assert 'obskit_jobs_total{job_name="compliance_check",status="error"} 1' in result.stderr
    assert "[obskit span] compliance_check " in result.stderr
    assert "code.args.api_key=[REDACTED]" in result.stderr
    assert "sk-demo-secret" not in combined


# -- batch_worker.py ------------------------------------------------------------------------------

BATCH_WORKER = str(EXAMPLES / "batch_worker.py")
# Its default batch: 20 records; 6, 13 and 20 have no customer; 5, 10 and 15 find the store busy once.
RECORDS, INVALID, RETRIED = 20, 3, 3


@needs_pushgateway
def test_batch_worker_leaves_its_final_numbers_at_the_push_gateway(pushgateway: str, tmp_path: Path) -> None:
    result = run(
        [BATCH_WORKER],
        tmp_path,
        OBSKIT_PUSHGATEWAY_URL=pushgateway,
        OBSKIT_PUSHGATEWAY_GROUPING="instance=worker-1",
    )

    assert result.returncode == 0, explain(result)
    assert "push gateway" not in result.stderr  # no failed-push warning
    [finished] = [line for line in json_lines(result.stdout) if line["message"] == "batch finished"]
    assert (finished["exported"], finished["invalid"]) == (RECORDS - INVALID, INVALID)

    # The process has exited: what the gateway holds now is what stays for Prometheus to scrape.
    text = http_get(f"{pushgateway}/metrics")[1]
    group = {"job": "nightly-export", "instance": "worker-1"}
    record, batch = {**group, "job_name": "export_record"}, {**group, "job_name": "nightly_export"}
    assert sample(text, "obskit_jobs_total", **record, status="success") == RECORDS - INVALID
    assert sample(text, "obskit_jobs_total", **record, status="error") == INVALID
    assert sample(text, "obskit_jobs_total", **batch, status="success") == 1
    assert sample(text, "obskit_jobs_total", **batch, status="error") == 0
    assert sample(text, "obskit_job_duration_seconds_count", **record) == RECORDS
    assert sample(text, "obskit_job_duration_seconds_bucket", **record, le="+Inf") == RECORDS
    assert sample(text, "obskit_job_duration_seconds_count", **batch) == 1
    assert sample(text, "obskit_jobs_in_progress", **batch) == 0
    assert sample(text, "obskit_job_result", **batch, result="records_exported") == RECORDS - INVALID
    assert sample(text, "obskit_job_result", **batch, result="records_invalid") == INVALID
    assert sample(text, "export_records_total", **group, outcome="exported") == RECORDS - INVALID
    assert sample(text, "export_records_total", **group, outcome="invalid") == INVALID
    assert sample(text, "export_retries_total", **group) == RETRIED
    assert sample(text, "export_record_bytes_count", **group) == RECORDS - INVALID
    assert sample(text, "push_time_seconds", **group)


@needs_pushgateway
def test_a_failed_batch_exits_1_and_the_gateway_shows_the_failed_job(
    pushgateway: str, tmp_path: Path
) -> None:
    result = run([BATCH_WORKER, "--pushgateway-url", pushgateway, "--store-down"], tmp_path)

    assert result.returncode == 1, explain(result)
    [failed] = [line for line in json_lines(result.stdout) if line["level"] == "ERROR"]
    assert failed["message"] == "batch failed"
    assert failed["exception"]["type"] == "StoreUnavailable"
    assert failed["trace_id"]
    text = http_get(f"{pushgateway}/metrics")[1]
    batch = {"job": "nightly-export", "job_name": "nightly_export"}
    assert sample(text, "obskit_jobs_total", **batch, status="error") == 1
    assert sample(text, "obskit_jobs_total", **batch, status="success") == 0
    assert (
        sample(text, "obskit_jobs_total", job="nightly-export", job_name="export_record", status="error") == 1
    )
    assert sample(text, "export_retries_total", job="nightly-export") == 2


def test_batch_worker_without_a_gateway_prints_its_metrics_at_exit(tmp_path: Path) -> None:
    result = run([BATCH_WORKER, "--records", "8"], tmp_path)

    assert result.returncode == 0, explain(result)
    assert 'obskit_jobs_total{job_name="export_record",status="success"} 7' in result.stderr
    assert 'obskit_jobs_total{job_name="nightly_export",status="success"} 1' in result.stderr
    assert 'export_records_total{outcome="invalid"} 1' in result.stderr
    assert "export_retries_total 1" in result.stderr
    assert len({line["request_id"] for line in json_lines(result.stdout)}) == 1  # one run, one id


# -- test_telemetry_example.py --------------------------------------------------------------------

TELEMETRY_TESTS = EXAMPLES / "test_telemetry_example.py"


def run_user_pytest(test_file: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """pytest on ``test_file`` as in a user's project: the user's ini, not obskit's pyproject.toml
    or tests/conftest.py; ``obskit_capture`` comes from the plugin obskit installs."""
    ini = tmp_path / "pytest.ini"
    ini.write_text(USER_INI)
    here = str(test_file.parent)
    args = ["-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider"]
    # pytest-asyncio is installed for obskit's own suite; under filterwarnings=error it fails at
    # start-up on its own unset option, which a project without it never sees.
    args += ["-p", "no:asyncio", "-c", str(ini), "--rootdir", here, "--confcutdir", here, str(test_file)]
    return run(args, tmp_path)


def test_the_user_style_telemetry_tests_pass_with_the_installed_plugin(tmp_path: Path) -> None:
    result = run_user_pytest(TELEMETRY_TESTS, tmp_path)

    assert result.returncode == 0, explain(result)
    assert re.search(r"^plugins: .*\bobskit-", result.stdout, re.MULTILINE), result.stdout
    assert re.search(r"^configfile: \S*pytest\.ini$", result.stdout, re.MULTILINE), result.stdout
    tests = TELEMETRY_TESTS.read_text().count("\ndef test_")
    assert re.search(rf"\b{tests} passed\b", result.stdout), result.stdout


@pytest.mark.parametrize(
    ("correct", "broken", "message"),
    [
        pytest.param(
            'outcome="exported")',
            'outcome="written")',
            "AssertionError: counter export_records_total{'outcome': 'written'} rose by 0.0, expected 1.0",
            id="counter-label",
        ),
        pytest.param(
            'assert_span("nightly_export", status="ERROR")',
            'assert_span("nightly_export", status="OK")',
            "AssertionError: no span 'nightly_export' with status=OK",
            id="span-status",
        ),
        pytest.param(
            'histogram_count("export_record_bytes") == 1',
            'histogram_count("export_record_bytes") == 2',
            "assert 1.0 == 2",
            id="histogram-count",
        ),
    ],
)
def test_a_wrong_expectation_in_the_telemetry_tests_fails_them(
    tmp_path: Path, correct: str, broken: str, message: str
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(EXAMPLES / "batch_worker.py", project)
    source = TELEMETRY_TESTS.read_text()
    assert correct in source, f"the example no longer says {correct!r}"
    (project / TELEMETRY_TESTS.name).write_text(source.replace(correct, broken, 1))  # in one test

    result = run_user_pytest(project / TELEMETRY_TESTS.name, tmp_path)

    assert result.returncode == 1, explain(result)
    assert message in result.stdout, result.stdout[-3000:]
    assert re.search(r"\b1 failed\b", result.stdout), result.stdout[-3000:]


# -- every example is run somewhere ---------------------------------------------------------------

RUN_HERE = {"demo.py", "batch_worker.py", "test_telemetry_example.py"}
#: Example -> (the integration test file serving it, what that file must say to run it).
SERVED_ELSEWHERE = {
    "fastapi_app.py": ("test_web_servers.py", '"fastapi_app:app"'),
    "flask_app.py": ("test_web_servers.py", '"flask_app:app"'),
    "gunicorn_app.py": ("test_prometheus_server.py", '"gunicorn_app:app"'),
    "gunicorn.conf.py": ("test_web_servers.py", '"gunicorn.conf.py"'),
}


def test_every_example_is_run_by_an_integration_test() -> None:
    assert {path.name for path in EXAMPLES.glob("*.py")} == RUN_HERE | set(SERVED_ELSEWHERE)
    here = Path(__file__).parent
    for example, (test_file, needle) in SERVED_ELSEWHERE.items():
        assert needle in (here / test_file).read_text(), f"{test_file} no longer runs {example}"
