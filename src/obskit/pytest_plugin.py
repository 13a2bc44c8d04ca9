"""pytest plugin (entry point ``pytest11``): the ``obskit_capture`` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from obskit.testing import Capture, capture


@pytest.fixture
def obskit_capture() -> Iterator[Capture]:
    """Spans, metrics and logs recorded during one test, isolated and restored afterwards."""
    with capture() as cap:
        yield cap
