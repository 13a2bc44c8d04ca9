"""Developer sessions: tests (against the installed package), lint, typecheck, docs, bench, demo."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "venv"
PYTHON = ["3.11"]


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    # A non-editable install: the suite runs against the built package, not the source tree.
    session.install(".[test]")
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
