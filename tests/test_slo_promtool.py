"""``obskit rules --slo``: the generated rules pass ``promtool check rules`` and drive the alerts.

Each source in tests/slo/ (one per kind: a TOML file, a YAML file, a Python file) becomes a rules
file ``<stem>.rules.yml`` in a temporary directory, next to copies of the ``*.test.yml`` files:
``promtool test rules`` feeds them synthetic series and checks when each alert fires and what the
recorded series read (each file says what it drives). Skipped only when promtool is not installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from obskit import _cli
from obskit._recording import slo

HERE = Path(__file__).resolve().parent / "slo"
SOURCES = ("checkout.toml", "search.toml", "nightly_export.yaml", "llm.py")
UNIT_TESTS = sorted(p.name for p in HERE.glob("*.test.yml"))
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool (Prometheus' rules checker) is not on PATH: install the Prometheus package "
    "(Debian: prometheus) to check the SLO rules and run their unit tests",
)


@pytest.fixture(autouse=True)
def _keep_declared() -> Iterator[None]:
    """Objectives declared by a loaded module are forgotten after the test."""
    before = dict(slo._registry)
    yield
    slo._registry.clear()
    slo._registry.update(before)


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    for source in SOURCES:
        output = tmp_path / f"{Path(source).stem}.rules.yml"
        assert _cli.main(["rules", "--slo", str(HERE / source), "-o", str(output)]) == 0
    for name in UNIT_TESTS:
        shutil.copy(HERE / name, tmp_path / name)
    return tmp_path


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_each_kind_passes_promtool_check_rules(rules_dir: Path) -> None:
    for source in SOURCES:
        name = f"{Path(source).stem}.rules.yml"
        done = promtool("check", "rules", name, cwd=rules_dir)
        assert done.returncode == 0, f"{source}:\n{done.stdout}{done.stderr}"
        assert "SUCCESS" in done.stdout


def test_options_keep_the_rules_valid(tmp_path: Path) -> None:
    sources = [arg for source in SOURCES for arg in ("--slo", str(HERE / source))]
    options = ["--namespace", "acme", "--job-label", "task", "--selector", 'env=~"prod|staging"']
    options += ["--severity", "SLOBurnRatePage=info", "--label", "SLOBurnRateTicket:team=it's"]
    assert _cli.main(["rules", *sources, *options, "-o", str(tmp_path / "rules.yml")]) == 0
    done = promtool("check", "rules", "rules.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    text = (tmp_path / "rules.yml").read_text(encoding="utf-8")
    assert 'acme_jobs_total{task="nightly_export",env=~"prod|staging",status="error"}' in text


def test_every_unit_test_file_is_run() -> None:
    kinds = {"availability", "latency", "job", "external"}
    assert kinds <= {name.split("_")[0].split(".")[0] for name in UNIT_TESTS}


@pytest.mark.parametrize("name", UNIT_TESTS)
def test_promtool_unit_tests(rules_dir: Path, name: str) -> None:
    done = promtool("test", "rules", name, cwd=rules_dir)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_unit_test_in_the_docs_passes(tmp_path: Path) -> None:
    """docs/slo.md's promtool test, on the rules of its checkout objective."""
    page = (HERE.parent.parent / "docs" / "slo.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", page, re.S) if b.startswith("rule_files:"))
    (tmp_path / "slo_test.yml").write_text(block, encoding="utf-8")
    assert _cli.main(["rules", "--slo", str(HERE / "checkout.toml"), "-o", str(tmp_path / "rules.yml")]) == 0
    done = promtool("test", "rules", "slo_test.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
