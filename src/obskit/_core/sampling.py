"""The sampler of new spans, built from the ``sampler`` and ``sampling_ratio`` settings."""

from __future__ import annotations

import os
from typing import Any

from obskit import environment_variables as env
from obskit._core.settings import SAMPLER_ENTRY_POINTS, Settings

__all__ = ["sampler_for"]


def sampler_for(settings: Settings) -> Any:
    """The OpenTelemetry sampler the settings name.

    A ratio sampler at ratio 1 is built as the always-on sampler it equals: ``TraceIdRatioBased(1.0)``
    samples every trace id (its bound is past every id) and passes the parent's trace state on, as
    ``ALWAYS_ON`` does, but costs a comparison and a property read per span. So
    ``parentbased_traceidratio`` at ratio 1 (the default) and ``parentbased_always_on`` are both
    ``ParentBased(ALWAYS_ON)``, the shape the light server span recognises as "samples every
    root"; ``traceidratio`` at ratio 1 is ``ALWAYS_ON``. Samplers from other packages are loaded
    through their entry point and given ``OTEL_TRACES_SAMPLER_ARG``, as the SDK does.
    """
    from opentelemetry.sdk.trace import sampling

    name = settings.sampler
    ratio = settings.sampling_ratio
    if name == "parentbased_traceidratio":
        return sampling.ParentBased(sampling.ALWAYS_ON if ratio >= 1 else sampling.TraceIdRatioBased(ratio))
    if name == "parentbased_always_on":
        return sampling.ParentBased(sampling.ALWAYS_ON)
    if name == "parentbased_always_off":
        return sampling.ParentBased(sampling.ALWAYS_OFF)
    if name == "traceidratio":
        return sampling.ALWAYS_ON if ratio >= 1 else sampling.TraceIdRatioBased(ratio)
    if name == "always_on":
        return sampling.ALWAYS_ON
    if name == "always_off":
        return sampling.ALWAYS_OFF
    from importlib.metadata import entry_points

    (point,) = [p for p in entry_points(group=SAMPLER_ENTRY_POINTS) if p.name == name][:1]
    factory = point.load()
    return factory(os.environ.get(env.OTEL_TRACES_SAMPLER_ARG))
