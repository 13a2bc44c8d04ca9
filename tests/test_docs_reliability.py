"""docs/reliability.md names the test behind each promise: every test it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "reliability.md"


def _named_tests() -> list[tuple[str, str]]:
    """(file, test) for each test the page names; ``::name`` alone means the file named before it."""
    named: list[tuple[str, str]] = []
    for row in PAGE.read_text().splitlines():
        current = None
        for path, name in re.findall(r"`(tests/[\w/]+\.py)?::(\w+)`", row):
            current = path or current
            assert current is not None, f"{name} has no file before it in: {row}"
            named.append((current, name))
    return named


def test_the_page_names_tests() -> None:
    assert len(_named_tests()) > 40


def test_every_test_the_page_names_exists() -> None:
    missing = [
        f"{path}::{name}"
        for path, name in _named_tests()
        if not re.search(rf"^(async )?def {name}\(", (ROOT / path).read_text(), re.MULTILINE)
    ]
    assert missing == []
