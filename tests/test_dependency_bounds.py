"""pyproject.toml's lower bounds are installable versions, which CI installs and tests.

noxfile.py's ``otel(oldest)`` session pins every runtime dependency, every library of a user's
extra (psutil, starlette, flask, django) and every OpenTelemetry requirement at its lower bound;
the set is only installable (and only means anything) when each has one lower bound and the
OpenTelemetry bounds belong together.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
#: Released in lockstep: the api, sdk and exporters 1.N.P, the contrib packages 0.(N + 21)bP.
_CORE = re.compile(r"opentelemetry-(api|sdk|exporter-otlp-proto-.*)")
_CONTRIB = re.compile(r"opentelemetry-instrumentation-.*")


def _opentelemetry_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"].values()
    specs = [*project["dependencies"], *(spec for extra in extras for spec in extra)]
    return [req for req in map(Requirement, specs) if "opentelemetry" in req.name]


def _lower_bounds() -> dict[str, str]:
    return {
        req.name: spec.version
        for req in _opentelemetry_requirements()
        for spec in req.specifier
        if spec.operator == ">="
    }


def test_every_opentelemetry_requirement_has_one_lower_bound() -> None:
    for req in _opentelemetry_requirements():
        assert [spec.operator for spec in req.specifier].count(">=") == 1, str(req)


def test_every_runtime_dependency_has_one_lower_bound() -> None:
    # What otel(oldest) pins: prometheus-client and structlog too, not only OpenTelemetry.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in map(Requirement, project["dependencies"]):
        assert [spec.operator for spec in req.specifier].count(">=") == 1, str(req)


def test_every_library_of_a_users_extra_has_one_lower_bound() -> None:
    # What otel(oldest) pins beside them: psutil, starlette, flask, django (noxfile.py DEVELOPER_EXTRAS).
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    user = [name for name in extras if name not in {"test", "bench", "lint", "docs"}]
    reqs = [req for name in user for req in map(Requirement, extras[name]) if req.name != "obskit"]
    assert {"psutil", "starlette", "flask", "django"} <= {req.name for req in reqs}
    for req in reqs:
        assert [spec.operator for spec in req.specifier].count(">=") == 1, str(req)


def test_core_and_instrumentation_lower_bounds_are_one_release_set() -> None:
    bounds = _lower_bounds()
    core = {name: bound for name, bound in bounds.items() if _CORE.fullmatch(name)}
    contrib = {name: bound for name, bound in bounds.items() if _CONTRIB.fullmatch(name)}
    assert {"opentelemetry-api", "opentelemetry-sdk"} <= set(core)
    assert len(set(core.values())) == 1, core
    major, minor, patch = (int(part) for part in (next(iter(core.values())) + ".0").split(".")[:3])
    assert major == 1
    assert set(contrib.values()) <= {f"0.{minor + 21}b{patch}"}, contrib
