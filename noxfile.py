"""Developer sessions: tests (against the installed package), otel, lint, typecheck, docs, bench, demo."""

from __future__ import annotations

import tomllib
from pathlib import Path

import nox
from packaging.requirements import Requirement

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "venv"
PYTHON = ["3.11"]
#: The two ends of the dependency versions pyproject.toml allows, each proven by the whole suite.
DEPENDENCY_ENDS = ["oldest", "newest"]


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    # A non-editable install: the suite runs against the built package, not the source tree.
    session.install(".[test]")
    session.run("python", "-m", "pytest", "-n", "auto", *session.posargs)


#: The extras for obskit's own development (tools, test peers): not a promise to users, so not pinned.
DEVELOPER_EXTRAS = frozenset({"test", "bench", "lint", "docs"})


def bounded_requirements() -> list[Requirement]:
    """The requirements tested at both ends: every runtime dependency and every library of an extra.

    The runtime dependencies (prometheus-client, structlog, the OpenTelemetry api and sdk) are
    what obskit reads closely, private parts included (docs/design.md). Each extra a user installs
    names a library and the oldest version obskit claims to work with: psutil (host), starlette
    (fastapi), flask, django, and the OpenTelemetry exporters and instrumentations. The OpenTelemetry
    packages the tests alone use are released with the rest and pinned alongside.
    """
    project = tomllib.loads((Path(__file__).parent / "pyproject.toml").read_text())["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    runtime = [Requirement(spec) for spec in project["dependencies"]]
    optional = [Requirement(spec) for extra in extras.values() for spec in extra]
    otel = [req for req in optional if "opentelemetry" in req.name]
    user = [
        req
        for name, specs in extras.items()
        if name not in DEVELOPER_EXTRAS
        for req in map(Requirement, specs)
        if req.name != project["name"]  # obskit[...]: an extra made of other extras
    ]
    found = {req.name: req for req in [*otel, *user, *runtime]}
    return [found[name] for name in sorted(found)]


def lower_bound(req: Requirement) -> str:
    """The version ``req``'s ``>=`` names: the oldest it allows."""
    (bound,) = [spec.version for spec in req.specifier if spec.operator == ">="]
    return bound


@nox.session(python=PYTHON[0])  # one interpreter: the names stay otel(oldest) and otel(newest)
@nox.parametrize("end", DEPENDENCY_ENDS, ids=DEPENDENCY_ENDS)
def otel(session: nox.Session, end: str) -> None:
    # The suite against the oldest version of every dependency pyproject.toml allows: each
    # runtime dependency (prometheus-client, structlog, the OpenTelemetry api and sdk), each
    # library of a user's extra (psutil, starlette, flask, django) and every OpenTelemetry
    # exporter and instrumentation pinned at its lower bound, in one resolution with .[test] (a
    # set that cannot be installed together fails here); or against the newest release of each.
    # obskit reads private parts of these libraries (docs/design.md): this is what proves both
    # ends still work. The name is older than its scope: .ci/run calls otel(oldest).
    reqs = bounded_requirements()
    if end == "oldest":
        session.install(".[test]", *(f"{req.name}=={lower_bound(req)}" for req in reqs))
    else:
        session.install("--upgrade", ".[test]", *(str(req) for req in reqs))
    show = "import sys; from importlib.metadata import version; [print(n, version(n)) for n in sys.argv[1:]]"
    session.run("python", "-c", show, *(req.name for req in reqs), silent=False)
    session.run("python", "-m", "pytest", "-n", "auto", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", "src", "tests", "benchmarks", "examples", "noxfile.py", "docs")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "examples", "noxfile.py", "docs")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    session.install(".[test,host]", "mypy>=1.10")
    session.run("mypy", "--strict", "src/obskit")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """benchmarks/run.py; `-- --quick`: a smoke run; `-- --markdown docs/performance.md`: new figures."""
    session.install(".[bench]")
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    session.install(".")
    session.run("obskit", "demo", *session.posargs)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    # The site (mkdocs.yml): any warning, a broken link or anchor included, fails the build.
    session.install(".[docs]")
    session.run(
        "mkdocs",
        "build",
        "--strict",
        "--site-dir",
        "site",
        *session.posargs,
        env={"NO_MKDOCS_2_WARNING": "1"},
    )


#: The frameworks whose own test suites run with obskit on every app they build (compat/run.py).
COMPAT_FRAMEWORKS = ["fastapi", "starlette", "flask"]
COMPAT_EXPORTERS = ["none", "console"]


@nox.session(python=PYTHON[0])
@nox.parametrize("exporter", COMPAT_EXPORTERS, ids=COMPAT_EXPORTERS)
@nox.parametrize("framework", COMPAT_FRAMEWORKS, ids=COMPAT_FRAMEWORKS)
def compat(session: nox.Session, framework: str, exporter: str) -> None:
    # The framework's own suite, from its sdist at the version pyproject.toml's extras resolve
    # to, without obskit and then with every app it builds configured (compat/run.py). A test
    # that passes without obskit and fails with it fails the session, unless compat/allowlist.txt
    # lists it. Extra pytest arguments for both runs go after --.
    session.install(".[fastapi,flask]", "fastapi>=0.110")
    args = [framework, "--exporter", exporter, "--install", "--work", session.create_tmp()]
    session.run("python", "compat/run.py", *args, *(["--", *session.posargs] if session.posargs else []))
