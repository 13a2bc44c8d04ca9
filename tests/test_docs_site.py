"""The documentation site stays true to the code: the metric catalogue, the nav, the quickstart."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from obskit._recording.families import call_specs, job_specs
from obskit._recording.health import health_specs
from obskit._recording.store import DROPPED_METRIC, OVERFLOW_METRIC, MetricSpec, Store

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NS = "<ns>"  # how the catalogue writes the metric_namespace prefix
EXTRA_JOB_LABELS = "the job's labels"


# -- the metric catalogue -------------------------------------------------------------------------


def _catalogue() -> dict[str, tuple[str, list[str], str]]:
    """Family name -> (type cell, label names, unit), from the table in docs/metrics.md."""
    text = (DOCS / "metrics.md").read_text()
    section = text.split("## Ready-made families", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, list[str], str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) != 5 or not cells[0].startswith("`"):
            continue
        name, kind, labels, unit, _ = cells
        label_names = [re.sub(r"\(.*?\)", "", label).strip() for label in labels.split(",")]
        rows[name.strip("`")] = (kind, label_names, unit)
    return rows


def _declared() -> dict[str, tuple[MetricSpec, tuple[str, ...]]]:
    """Every family obskit declares, named as the catalogue names it, with its base label names."""
    jobs = job_specs(NS)
    extra = tuple(label for label in jobs[2].labels if label != "job_name")  # in-progress: job_name + extras
    families = {s.sample_name: (s, tuple(n for n in s.labels if n not in extra)) for s in jobs}
    for spec in (*call_specs(NS).values(), *health_specs(NS)):
        families[spec.sample_name] = (spec, spec.labels)
    store = Store()
    for name, metric in ((OVERFLOW_METRIC, store._overflow), (DROPPED_METRIC, store.dropped)):
        spec = MetricSpec("counter", name, "", tuple(metric._labelnames))
        families[spec.sample_name] = (spec, spec.labels)
    return families


def test_metric_catalogue_lists_exactly_the_declared_families() -> None:
    assert set(_catalogue()) == set(_declared())


@pytest.mark.parametrize("name", sorted(_declared()))
def test_metric_catalogue_row_matches_the_declaration(name: str) -> None:
    spec, labels = _declared()[name]
    kind, documented, unit = _catalogue()[name]
    assert kind.startswith(spec.kind)
    job_family = name.startswith(f"{NS}_job")
    assert (EXTRA_JOB_LABELS in documented) == job_family
    assert [label for label in documented if label != EXTRA_JOB_LABELS] == list(labels)
    assert unit == (spec.unit or "1")


def test_catalogue_parser_reads_the_labels_and_their_values() -> None:
    kind, labels, unit = _catalogue()[f"{NS}_jobs_total"]
    assert (kind, labels, unit) == ("counter", ["job_name", "status", EXTRA_JOB_LABELS], "1")


# -- the nav --------------------------------------------------------------------------------------


def _nav_pages() -> list[str]:
    text = (ROOT / "mkdocs.yml").read_text()
    nav_text = text.split("\nnav:\n", 1)[1]
    if importlib.util.find_spec("yaml") is not None:
        import yaml

        def walk(node: object) -> list[str]:
            if isinstance(node, str):
                return [node]
            if isinstance(node, dict):
                return [page for value in node.values() for page in walk(value)]
            if isinstance(node, list):
                return [page for item in node for page in walk(item)]
            return []

        return walk(yaml.safe_load("nav:\n" + nav_text)["nav"])
    # Without pyyaml (the `test` extra alone): every "- Title: page.md" line of the nav block.
    return re.findall(r"^\s*-\s*(?:[^:\n]+:\s*)?(\S+\.md)\s*$", nav_text, flags=re.M)


def _doc_pages() -> set[str]:
    return {path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md") if not path.name.startswith("_")}


def test_every_doc_page_is_in_the_nav() -> None:
    assert _doc_pages() - set(_nav_pages()) == set()


def test_every_nav_entry_is_a_doc_page() -> None:
    pages = _nav_pages()
    assert "index.md" in pages
    assert len(pages) == len(set(pages))
    assert [page for page in pages if not (DOCS / page).is_file()] == []


def test_helper_files_are_kept_out_of_the_site() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    assert "exclude_docs:" in config
    assert "_gen_configuration.py" not in _nav_pages()


# -- the quickstart -------------------------------------------------------------------------------

_BLOCK = re.compile(r"<!-- docs-test: (?P<mark>[^>]*?) -->\n```python\n(?P<code>.*?)^```", re.M | re.S)


def _quickstart_blocks() -> list[tuple[str, str]]:
    text = (DOCS / "index.md").read_text()
    blocks = [(m["mark"], m["code"]) for m in _BLOCK.finditer(text)]
    # Every python block carries a mark (run, requires=<modules>, skip): none is left untested by accident.
    assert len(blocks) == text.count("```python")
    return blocks


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "OBSKIT_", "PROMETHEUS_", "APPLICATIONINSIGHTS_"))
    }
    script = tmp_path / "snippet.py"
    script.write_text(code)
    return subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("index", range(len(_quickstart_blocks())))
def test_quickstart_code_block_runs(index: int, tmp_path: Path) -> None:
    mark, code = _quickstart_blocks()[index]
    if mark == "skip":
        pytest.skip("marked skip in docs/index.md")
    if mark.startswith("requires="):
        for module in mark.removeprefix("requires=").split(","):
            if importlib.util.find_spec(module.strip()) is None:
                pytest.skip(f"needs {module.strip()}")
    else:
        assert mark == "run"
    result = _run(code, tmp_path)
    assert result.returncode == 0, result.stderr


def _normalised(line: str) -> str:
    line = re.sub(r"\b[0-9a-f]{32}\b", "<trace>", line)
    line = re.sub(r"\b[0-9a-f]{16}\b", "<span>", line)
    return re.sub(r"\d+\.\d+(?:e-?\d+)?", "<n>", line)


def test_quickstart_shows_what_the_first_program_prints(tmp_path: Path) -> None:
    text = (DOCS / "index.md").read_text()
    section = text.split("## What you see", 1)[1].split("\n## ", 1)[0]
    shown_stdout = section.split("```json\n", 1)[1].split("```", 1)[0].splitlines()
    shown_stderr = section.split("```text\n", 1)[1].split("```", 1)[0].splitlines()
    result = _run(_quickstart_blocks()[0][1], tmp_path)
    assert result.returncode == 0, result.stderr
    printed = result.stdout.splitlines()
    documented, actual = json.loads(shown_stdout[0]), json.loads(printed[0])
    assert list(actual) == list(documented)
    for key in ("logger", "message", "service", "environment", "user_id", "who"):
        assert actual[key] == documented[key]
    assert printed[1:] == shown_stdout[1:]
    stderr = {_normalised(line) for line in result.stderr.splitlines()}
    assert [line for line in shown_stderr if _normalised(line) not in stderr] == []
