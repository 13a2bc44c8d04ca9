"""pytest plugin (entry point ``pytest11``): the ``obskit_capture`` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from obskit.testing import Capture, capture


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``obskit`` marker (its options for the ``obskit_capture`` fixture)."""
    config.addinivalue_line(
        "markers",
        "obskit(strict=True, deterministic=False): options of the obskit_capture fixture;"
        " strict=False logs mistakes in metric calls (undeclared labels, amounts that are no number)"
        " instead of raising them; deterministic=True gives ids counting from 1 and a ticking clock",
    )


@pytest.fixture
def obskit_capture(request: pytest.FixtureRequest) -> Iterator[Capture]:
    """Spans, metrics and logs recorded during one test, isolated and restored afterwards.

    Strict by default: a mistake in a metric call raises :class:`obskit.MetricUsageError` where
    it is made. ``@pytest.mark.obskit(strict=False)`` on a test turns that off;
    ``@pytest.mark.obskit(deterministic=True)`` gives ids and times that are the same on every
    run (see :func:`obskit.testing.capture`).
    """
    marker = request.node.get_closest_marker("obskit")
    options = dict(marker.kwargs) if marker is not None else {}
    with capture(
        strict=bool(options.get("strict", True)), deterministic=bool(options.get("deterministic", False))
    ) as cap:
        yield cap
