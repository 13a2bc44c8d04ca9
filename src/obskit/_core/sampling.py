"""The sampler of new spans, built from the ``sampler`` and ``sampling_ratio`` settings."""

from __future__ import annotations

import os
from typing import Any

from obskit import environment_variables as env
from obskit._core.settings import SAMPLER_ENTRY_POINTS, Settings

__all__ = ["sampler_for"]


def sampler_for(settings: Settings) -> Any:
    """The OpenTelemetry sampler the settings name.

    ``parentbased_traceidratio`` and ``parentbased_always_on`` are both
    ``ParentBased(TraceIdRatioBased(ratio))`` (ratio 1 for the second: the same decisions), the
    shape the light server span recognises as "samples every root". Samplers from other
    packages are loaded through their entry point and given ``OTEL_TRACES_SAMPLER_ARG``, as the
    SDK does.
    """
    from opentelemetry.sdk.trace import sampling

    name = settings.sampler
    ratio = settings.sampling_ratio
    if name == "parentbased_traceidratio":
        return sampling.ParentBased(sampling.TraceIdRatioBased(ratio))
    if name == "parentbased_always_on":
        return sampling.ParentBased(sampling.TraceIdRatioBased(1.0))
    if name == "parentbased_always_off":
        return sampling.ParentBased(sampling.ALWAYS_OFF)
    if name == "traceidratio":
        return sampling.TraceIdRatioBased(ratio)
    if name == "always_on":
        return sampling.ALWAYS_ON
    if name == "always_off":
        return sampling.ALWAYS_OFF
    from importlib.metadata import entry_points

    (point,) = [p for p in entry_points(group=SAMPLER_ENTRY_POINTS) if p.name == name][:1]
    factory = point.load()
    return factory(os.environ.get(env.OTEL_TRACES_SAMPLER_ARG))
