"""The one mutable global: what the instrumentation API records into right now.

``configure()``, ``shutdown()`` and ``obskit.testing.capture()`` replace :data:`STATE` as a
whole; the hot path reads it once per call. Nothing here creates a thread, file or socket.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from obskit._core.frozen import frozen_dataclass

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer, TracerProvider

    from obskit._core.redact import Redactor
    from obskit._core.settings import Settings
    from obskit._recording.store import Store

__all__ = ["STATE", "State", "set_state"]


@frozen_dataclass(eq=False)  # a frozen dataclass, its methods not compiled at import
class State:
    """A snapshot of the active set-up. ``tracer`` is None when no spans should be made."""

    settings: Settings
    store: Store
    redactor: Redactor
    tracer: Tracer | None = None
    tracer_provider: TracerProvider | None = None
    configured: bool = False
    log_fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: Mistakes in the calling code raise (``obskit.testing.capture()``) instead of being logged.
    strict: bool = False


#: The active set-up. Its first value (default settings, an empty store) is installed by
#: ``obskit._recording.store`` when it is imported, which ``import obskit`` does before anything
#: can record: a store is the recording layer's, and this module, at the bottom, imports no layer.
STATE: State

#: Called with the job name after every ``track_job`` run (the push gateway's ``push_on=job``).
#: Listeners must only signal their own thread: they run on the caller's.
JOB_LISTENERS: list[Callable[[str], None]] = []


def set_state(state: State) -> State:
    """Install ``state`` and return the one it replaces."""
    global STATE
    previous, STATE = STATE, state
    return previous
