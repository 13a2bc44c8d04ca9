"""The sampler built from the settings: a ratio of 1 is the always-on sampler, with the same decisions."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import sampling
from opentelemetry.trace import SpanContext, TraceFlags, TraceState

import obskit
from obskit._core import state as _state
from obskit._core.sampling import sampler_for
from obskit._core.settings import Settings


def _parent(flags: int, remote: bool) -> Context:
    context = SpanContext(
        0x1234, 0x99, is_remote=remote, trace_flags=TraceFlags(flags), trace_state=TraceState([("k", "v")])
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(context))


PARENTS: list[Context | None] = [
    None,
    Context(),
    _parent(1, remote=True),
    _parent(0, remote=True),
    _parent(1, remote=False),
    _parent(0, remote=False),
]
TRACE_IDS = [1, 2**64 - 1, 2**64, 2**127 + 5, 2**128 - 1]


def _decisions(sampler: Any) -> list[Any]:
    out = []
    for parent in PARENTS:
        for trace_id in TRACE_IDS:
            result = sampler.should_sample(parent, trace_id, "op", None, {"a": 1})
            attributes = dict(result.attributes) if result.attributes is not None else None
            state = tuple(result.trace_state.items()) if result.trace_state is not None else None
            out.append((result.decision, attributes, state))
    return out


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, lambda s: type(s) is sampling.ParentBased and s._root is sampling.ALWAYS_ON),
        (
            {"sampler": "parentbased_always_on"},
            lambda s: type(s) is sampling.ParentBased and s._root is sampling.ALWAYS_ON,
        ),
        ({"sampler": "traceidratio", "sampling_ratio": 1.0}, lambda s: s is sampling.ALWAYS_ON),
        (
            {"sampler": "parentbased_traceidratio", "sampling_ratio": 0.5},
            lambda s: type(s._root) is sampling.TraceIdRatioBased and s._root.rate == 0.5,
        ),
        (
            {"sampler": "traceidratio", "sampling_ratio": 0.25},
            lambda s: type(s) is sampling.TraceIdRatioBased and s.rate == 0.25,
        ),
    ],
)
def test_a_ratio_of_one_is_the_always_on_sampler(given: dict[str, Any], expected: Any) -> None:
    assert expected(sampler_for(Settings(**given)))


@pytest.mark.parametrize(
    ("given", "equivalent"),
    [
        ({}, sampling.ParentBased(sampling.TraceIdRatioBased(1.0))),
        ({"sampler": "parentbased_always_on"}, sampling.ParentBased(sampling.TraceIdRatioBased(1.0))),
        ({"sampler": "traceidratio", "sampling_ratio": 1.0}, sampling.TraceIdRatioBased(1.0)),
    ],
)
def test_the_always_on_sampler_decides_as_the_ratio_sampler_at_one(
    given: dict[str, Any], equivalent: Any
) -> None:
    assert _decisions(sampler_for(Settings(**given))) == _decisions(equivalent)


def test_configure_installs_it_and_the_environment_still_names_the_ratio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "1.0")
    settings = obskit.configure(traces_exporter="console", metrics_exporter="none", logs_exporter="none")
    assert (settings.sampler, settings.sampling_ratio) == ("parentbased_traceidratio", 1.0)
    sampler = _state.STATE.tracer_provider.sampler
    assert type(sampler) is sampling.ParentBased
    assert sampler._root is sampling.ALWAYS_ON
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.5")
    obskit.configure(traces_exporter="console", metrics_exporter="none", logs_exporter="none")
    assert _state.STATE.tracer_provider.sampler._root.rate == 0.5
