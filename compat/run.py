"""Run a web framework's own test suite without obskit and with it, and compare.

    python compat/run.py fastapi --exporter none --exporter console [--install] [-- pytest args]

For the framework at the version installed in this environment: download its sdist from PyPI
(``pip download --no-binary :all:``), unpack it, optionally install the suite's test
requirements (``--install``, the list below), run its tests once as they are (the baseline) and
once per exporter with ``-p obskit_compat_plugin``, which serves every app the suite builds
through obskit. A test that passes in the baseline and fails with obskit is a new failure; the
run fails on any that ``allowlist.txt`` does not list. Counts and new failures are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Suite:
    """How to run one framework's suite from its sdist."""

    dist: str
    #: The suite's test requirements this harness needs (from the sdist's dependency groups and
    #: test extras), without linters, type checkers, coverage, benchmarks and docs tooling.
    requirements: list[str]
    #: pytest arguments; the suites' own markers and skips stay as they are.
    args: list[str] = field(default_factory=list)


SUITES = {
    # pyproject [dependency-groups] tests (+ docs-tests, + the standard extra the tests import),
    # without linters, type checkers, coverage and benchmarks.
    "fastapi": Suite(
        "fastapi",
        [
            "opentelemetry-instrumentation-fastapi>=0.65b0",
            "logfire>=5.1.0",
            "sentry-sdk>=2.70.0",
            "opentelemetry-sdk>=1.44.0",
            "opentelemetry-exporter-otlp-proto-http>=1.44.0",
            "anyio[trio]>=4.1.0,<5.0.0",
            "dirty-equals>=0.9.0",
            "inline-snapshot>=0.21.1",
            "pwdlib[argon2]>=0.2.1",
            "pyjwt>=2.9.0",
            "pyyaml>=5.3.1,<7.0.0",
            "sqlmodel>=0.0.31",
            "strawberry-graphql>=0.200.0,<1.0.0",
            "typer>=0.26.1",
            "a2wsgi>=1.9.0,<=2.0.0",
            "pytest>=9.0.0,<9.2",
            "pytest-timeout>=2.4.0",
            "pytest-xdist[psutil]>=3.0.2",
            "python-slugify>=8.0.4",
            "httpx2>=2.0.0",
            "python-multipart>=0.0.18",
            "email-validator>=2.0.0",
            "pydantic-settings>=2.0.0",
            "pydantic-extra-types>=2.0.0",
            "jinja2>=3.1.5",
            "httpx>=0.23.0,<1.0.0",
            "uvicorn>=0.12.0",
            "orjson",
            "ujson",
        ],
        ["-n", "auto", "--dist", "loadgroup", "tests"],  # as FastAPI's scripts/test.sh runs it
    ),
    # pyproject [project.optional-dependencies] full + [dependency-groups] dev.
    "starlette": Suite(
        "starlette",
        [
            "pytest>=9.1.1",
            "httpx>=0.27.0",  # the extra caps it below 0.29; its OpenTelemetry tests run with 0.29 too
            "itsdangerous",
            "jinja2",
            "python-multipart>=0.0.18",
            "pyyaml",
            "httpx2[zstd]>=2.0.0",
            "blockbuster>=1.5.23",
            "importlib-metadata>=9.0.1",
            "trio>=0.34.0",
        ],
        ["tests"],
    ),
    # pyproject [dependency-groups] tests; its conftest.py needs pytest < 9 (``monkeypatch.notset``).
    "flask": Suite("Flask", ["pytest<9", "asgiref", "greenlet", "python-dotenv"], ["tests"]),
}
#: Options for both runs: the suite's own order and plugins (obskit's test extra brings pytest-randomly
#: and pytest-asyncio, which these suites do not use), no cache.
#: A test module that does not import here is left out of both runs (and shows in the baseline's log).
COMMON_ARGS = [
    *("-p", "no:randomly", "-p", "no:asyncio", "-p", "no:cacheprovider"),
    *("-q", "--no-header", "--continue-on-collection-errors"),
]


#: Where FastAPI's suite tests its built-in telemetry: the only tests allowlist.txt may list.
FASTAPI_TELEMETRY_TESTS = ("tests.test_telemetry.", "tests.test_tutorial.test_opentelemetry.")


def sdist(dist: str, ver: str, work: Path) -> Path:
    """The unpacked sdist of ``dist`` at ``ver`` (downloaded once into ``work``)."""
    for existing in work.glob("*/PKG-INFO"):
        if existing.parent.name.lower() == f"{dist}-{ver}".lower():
            return existing.parent
    pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]
    subprocess.run([*pip, "-d", str(work), f"{dist}=={ver}"], check=True)
    (archive,) = [p for p in work.glob("*.tar.gz") if p.name.lower().startswith(f"{dist}-{ver}".lower())]
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    return work / archive.name.removesuffix(".tar.gz")


def install(suite: Suite, dist_version: str) -> None:
    """The suite's test requirements, the framework itself held at the installed version."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as pins:
        pins.write(f"{suite.dist}=={dist_version}\n")
        for held in ("pydantic", "starlette", "flask", "werkzeug", "httpx", "anyio"):
            with contextlib.suppress(PackageNotFoundError):
                pins.write(f"{held}=={version(held)}\n")
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "-c", pins.name, *suite.requirements], check=True
        )
    finally:
        os.unlink(pins.name)


def outcomes(junit: Path) -> dict[str, str]:
    """Test id (``classname::name``) -> passed, failed, error or skipped, from a JUnit XML report."""
    result: dict[str, str] = {}
    for case in ET.parse(junit).iter("testcase"):
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        kinds = {child.tag for child in case}
        if "failure" in kinds:
            outcome = "failed"
        elif "error" in kinds:
            outcome = "error"
        elif "skipped" in kinds:
            outcome = "skipped"
        else:
            outcome = "passed"
        # A test failing in its teardown appears twice: the worse outcome wins.
        if result.get(test_id) not in ("failed", "error"):
            result[test_id] = outcome
    return result


def messages(junit: Path, ids: set[str]) -> dict[str, str]:
    """The first line of each listed test's failure or error message."""
    found: dict[str, str] = {}
    for case in ET.parse(junit).iter("testcase"):
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        if test_id in ids:
            for child in case:
                if child.tag in ("failure", "error"):
                    message = child.get("message") or ""
                    found.setdefault(test_id, message.splitlines()[0][:300] if message else "")
    return found


def allowed(framework: str) -> dict[str, str]:
    """allowlist.txt: ``framework test-id reason``; a test id without ``[...]`` covers every parameter set."""
    result = {}
    for line in (HERE / "allowlist.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, test_id, reason = line.split(maxsplit=2)
            if name != "fastapi" or not test_id.startswith(FASTAPI_TELEMETRY_TESTS):
                sys.exit(f"allowlist.txt may list only FastAPI's own telemetry tests, not {name} {test_id}")
            if name == framework:
                result[test_id] = reason
    return result


def is_allowed(test_id: str, allow: dict[str, str]) -> bool:
    """Whether the allow-list names the test, or its function (every parameter set)."""
    return test_id in allow or test_id.split("[", 1)[0] in allow


def run_suite(root: Path, suite: Suite, junit: Path, extra: list[str], exporter: str | None) -> float:
    """Run the suite in ``root`` (with the plugin when ``exporter`` is given); returns seconds taken."""
    env = dict(os.environ)
    args = [sys.executable, "-m", "pytest", *COMMON_ARGS, f"--junitxml={junit}", *suite.args, *extra]
    if exporter is not None:
        env["OBSKIT_COMPAT_EXPORTER"] = exporter
        env["OBSKIT_COMPAT_PROBLEMS"] = str(junit.with_suffix(".problems.json"))
        for old in junit.parent.glob(f"{junit.stem}.problems.json*"):
            old.unlink()
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
        args[3:3] = ["-p", "obskit_compat_plugin"]
    log = junit.with_suffix(".log")
    junit.unlink(missing_ok=True)  # never compare with the report of an earlier run
    started = time.monotonic()
    with log.open("w") as out:
        subprocess.run(args, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    took = time.monotonic() - started
    if not junit.exists():
        sys.exit(f"pytest wrote no report; see {log}")
    return took


def main() -> int:
    """Baseline, then one run per exporter; 1 when a new failure is not allowed."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("framework", choices=sorted(SUITES))
    parser.add_argument("--exporter", action="append", choices=["none", "console"], help="default: both")
    parser.add_argument(
        "--install", action="store_true", help="pip install the suite's test requirements first"
    )
    parser.add_argument("--show-allowed", action="store_true", help="list the allowed new failures too")
    parser.add_argument("--work", type=Path, help="where sdists and reports go (default: a temporary folder)")
    parser.add_argument("pytest_args", nargs="*", help="after --: extra pytest arguments for both runs")
    options = parser.parse_args()
    suite = SUITES[options.framework]
    ver = version(suite.dist)
    work = (options.work or Path(tempfile.mkdtemp(prefix="obskit-compat-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    root = sdist(suite.dist, ver, work)
    if options.install:
        install(suite, ver)
    print(f"== {options.framework} {ver}: {root}", flush=True)
    base_xml = work / f"{options.framework}-baseline.xml"
    took = run_suite(root, suite, base_xml, options.pytest_args, None)
    base = outcomes(base_xml)
    print(f"baseline: {summary(base)} in {took:.0f}s", flush=True)
    if not any(o == "passed" for o in base.values()):
        sys.exit(f"no test passed without obskit; see {base_xml.with_suffix('.log')}")
    allow = allowed(options.framework)
    failed = False
    for exporter in options.exporter or ["none", "console"]:
        xml = work / f"{options.framework}-{exporter}.xml"
        took = run_suite(root, suite, xml, options.pytest_args, exporter)
        with_obskit = outcomes(xml)
        broken = ("failed", "error", "missing")
        new = sorted(t for t, o in base.items() if o == "passed" and with_obskit.get(t, "missing") in broken)
        unexpected = [t for t in new if not is_allowed(t, allow)]
        counts = f"{summary(with_obskit)} in {took:.0f}s; new failures {len(new)}"
        print(
            f"with obskit (exporters {exporter}): {counts}, allowed {len(new) - len(unexpected)}", flush=True
        )
        why = messages(xml, set(new))
        for test_id in new:
            if options.show_allowed or not is_allowed(test_id, allow):
                tag = "allowed" if is_allowed(test_id, allow) else "NEW"
                print(f"  {tag}: {test_id} [{with_obskit.get(test_id, 'missing')}] {why.get(test_id, '')}")
        problems(xml.with_suffix(".problems.json"))
        failed = failed or bool(unexpected)
    print(f"reports and logs: {work}")
    return 1 if failed else 0


def problems(path: Path) -> None:
    """Print obskit's warnings and logging errors seen while the suite ran, counted by kind and text.

    obskit reports a repeated internal error at most once a minute: a count is a lower bound.
    """
    seen: dict[tuple[str, str], list[str]] = {}
    for part in [path, *path.parent.glob(f"{path.name}.gw*")]:  # xdist: one file per worker
        if part.exists():
            for problem in json.loads(part.read_text()):
                seen.setdefault((problem["kind"], problem["text"]), []).append(problem["test"])
    for (kind, text), tests in sorted(seen.items(), key=lambda item: -len(item[1])):
        print(f"  {kind} x{len(tests)} (first in {tests[0]}): {text}")


def summary(result: dict[str, str]) -> str:
    """Counts of each outcome."""
    counts = {k: sum(1 for o in result.values() if o == k) for k in ("passed", "failed", "error", "skipped")}
    return ", ".join(f"{n} {k}" for k, n in counts.items())


if __name__ == "__main__":
    sys.exit(main())
