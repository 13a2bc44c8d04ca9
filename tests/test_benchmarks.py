"""The benchmarks measure what users get: obskit through configure(), baselines doing the same work.

Speed itself is in benchmarks/ (no timing here); these tests pin down the set-up the figures
come from, and that ``benchmarks/run.py --markdown`` can write them into docs/performance.md.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import obskit
from obskit._core import state as _state
from obskit._core.sampling import sampler_for
from obskit._export import backends
from obskit._export.pipeline import CountingSpanExporter, CountingSpanProcessor
from obskit._export.redacting import RedactingSpanExporter

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
PAGE = Path(__file__).resolve().parent.parent / "docs" / "performance.md"


def _load(name: str) -> ModuleType:
    """A module of benchmarks/ (which imports its siblings by their bare names)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def setup() -> Any:
    return _load("_setup")


def _pipeline(provider: TracerProvider) -> tuple[Any, ...]:
    # A database library an earlier test imported adds its metrics processor (instrument_libraries).
    processors = [
        p
        for p in provider._active_span_processor._span_processors
        if type(p).__module__ != "obskit._web.libraries"
    ]
    assert len(processors) == 1
    counting = processors[0]
    assert isinstance(counting, CountingSpanProcessor)
    batch = counting.inner
    assert isinstance(batch, BatchSpanProcessor)
    redacting = batch._batch_processor._exporter
    assert isinstance(redacting, RedactingSpanExporter)
    counted = redacting.inner
    assert isinstance(counted, CountingSpanExporter)
    assert type(counted.inner).__name__ == "DiscardingExporter"
    return counting, batch, redacting, counted


def test_configured_is_configure_with_only_the_span_destination_swapped(setup: Any) -> None:
    console = backends.SPAN_EXPORTERS["console"]
    made = len(setup.EXPORTERS)
    with setup.configured() as state:
        assert state is _state.STATE
        assert state.configured
        assert backends.SPAN_EXPORTERS["console"] == console  # swapped only while configure() built it
        provider = state.tracer_provider
        expected = sampler_for(state.settings)  # the settings' sampler, whatever it is built as
        assert type(provider.sampler) is type(expected)
        assert provider.sampler.get_description() == expected.get_description()
        _pipeline(provider)  # obskit's drop counting, batch processor, cleaning, export counting
        assert state.store.exemplars  # the Prometheus backend serves them
        assert len(setup.EXPORTERS) == made + 1
        with obskit.trace_operation("op", attributes={"password": "hunter2"}):
            pass
        provider.force_flush()
        assert setup.EXPORTERS[-1].exported == 1
        setup.check_no_drops(state)
    assert not _state.STATE.configured


def test_configured_starts_from_an_empty_store(setup: Any) -> None:
    with setup.configured():
        obskit.MetricsCollector().counter("left_behind", "Left.").inc()
    with setup.configured() as state:
        names = {family.name for family in state.store.registry.collect()}
    assert "left_behind" not in names


def test_hand_written_provider_batches_as_obskit_does(setup: Any) -> None:
    with setup.configured(export_queue_size=4096, export_batch_size=64) as state:
        provider, exporter = setup.hand_written_provider(state.settings)
        try:
            processors = provider._active_span_processor._span_processors
            assert len(processors) == 1
            ours = _pipeline(state.tracer_provider)[1]._batch_processor
            theirs = processors[0]._batch_processor
            assert (theirs._max_queue_size, theirs._max_export_batch_size) == (4096, 64)
            assert (ours._max_queue_size, ours._max_export_batch_size) == (4096, 64)
            with provider.get_tracer("t").start_as_current_span("s"):
                pass
            provider.force_flush()
            assert exporter.exported == 1
        finally:
            provider.shutdown()


def test_tracing_off_is_configure_with_no_tracer(setup: Any) -> None:
    with setup.configured(traces_exporter="none") as state:
        assert state.tracer is None


@pytest.mark.parametrize("size", ["small", "service"])
def test_scrape_baseline_answers_the_same_bytes(setup: Any, size: str) -> None:
    exposition = _load("bench_exposition")
    try:
        with setup.configured() as state:
            exposition.record(exposition.obskit_metrics(size), size)
            *_, lines = exposition.scrape_apps(state, size)
    finally:
        _load("_harness").close_event_loop()
    assert lines > 20


def test_markdown_replaces_only_the_marked_block(tmp_path: Path) -> None:
    run = _load("run")
    page = tmp_path / "page.md"
    page.write_text(f"intro\n\n{run.MARK_START}\nold table\n{run.MARK_END}\n\nafter\n")
    run._write_markdown(page, "conditions", "| table |", "1/1 targets met")
    text = page.read_text()
    assert "old table" not in text
    assert text.startswith("intro\n\n")
    assert text.endswith(f"{run.MARK_END}\n\nafter\n")
    assert "conditions\n\n| table |\n\n1/1 targets met" in text
    page.write_text("no markers")
    with pytest.raises(SystemExit):
        run._write_markdown(page, "c", "t", "s")


def test_performance_page_has_the_results_block() -> None:
    run = _load("run")
    text = PAGE.read_text()
    assert text.count(run.MARK_START) == 1
    assert text.count(run.MARK_END) == 1
    assert text.index(run.MARK_START) < text.index(run.MARK_END)
