"""Health checks and the liveness, readiness and full-report endpoints.

Register checks on the default registry and let the web integration serve them::

    from obskit import health

    @health.check("database", timeout=2.0)
    async def database() -> bool:
        return await pool.ping()

    health.register("disk", health.disk_space_check("/", min_free_ratio=0.05), critical=False)

    status_code, body = health.handle("ready")  # from sync code; ``await health.ahandle(...)`` in async

See docs/health.md for the endpoints' status codes, Kubernetes probes and the exported metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from obskit._recording.health import (
    DEGRADED,
    HEALTHY,
    UNHEALTHY,
    CheckOutcome,
    CheckResult,
    HealthRegistry,
    HealthReport,
    callable_check,
    disk_space_check,
    tcp_check,
)

__all__ = [
    "DEGRADED",
    "HEALTHY",
    "UNHEALTHY",
    "CheckOutcome",
    "CheckResult",
    "HealthRegistry",
    "HealthReport",
    "ahandle",
    "callable_check",
    "check",
    "clear",
    "default_registry",
    "disk_space_check",
    "handle",
    "names",
    "register",
    "run",
    "tcp_check",
    "unregister",
]

_C = TypeVar("_C", bound=Callable[[], Any])

#: The registry the module-level functions (and obskit's web integration) use.
default_registry = HealthRegistry()


def register(name: str, check: _C, *, timeout: float = 5.0, critical: bool = True) -> _C:
    """Register ``check`` on the default registry; see :meth:`HealthRegistry.register`."""
    return default_registry.register(name, check, timeout=timeout, critical=critical)


def check(name: str, *, timeout: float = 5.0, critical: bool = True) -> Callable[[_C], _C]:
    """Decorator registering a check on the default registry: ``@health.check("db", timeout=2)``."""
    return default_registry.check(name, timeout=timeout, critical=critical)


def unregister(name: str) -> None:
    """Remove a check from the default registry; unknown names are ignored."""
    default_registry.unregister(name)


def clear() -> None:
    """Remove every check from the default registry."""
    default_registry.clear()


def names() -> list[str]:
    """The names of the default registry's checks."""
    return default_registry.names()


async def run() -> HealthReport:
    """Run the default registry's checks concurrently; see :meth:`HealthRegistry.run`."""
    return await default_registry.run()


async def ahandle(kind: str) -> tuple[int, dict[str, Any]]:
    """Serve ``kind`` (``live``, ``ready`` or ``full``) from the default registry; never raises."""
    return await default_registry.ahandle(kind)


def handle(kind: str) -> tuple[int, dict[str, Any]]:
    """Sync :func:`ahandle` for threads without a running event loop (WSGI workers); never raises."""
    return default_registry.handle(kind)
