"""Health checks: a registry of named checks, a concurrent runner with timeouts, the endpoint contract.

Sync checks run in their own daemon thread rather than ``asyncio.to_thread``: the default executor
is joined by ``asyncio.run()`` and at interpreter exit, so one hung check would hang the sync
:meth:`HealthRegistry.handle` (which runs its own loop) and the process's exit. A sync check still
running from an earlier probe is awaited again instead of being started twice, so a hung check
holds one thread, not one per probe.

Under asyncio the checks run as asyncio tasks; under any other event loop (trio, as anyio
serves Starlette there) they run in an anyio task group, sync ones still in their own thread:
anyio is imported only then, never by obskit otherwise.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import dataclasses
import datetime
import functools
import inspect
import shutil
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Literal, TypeAlias, TypeVar

from obskit._core import state as _state
from obskit._core.errors import report_internal_error
from obskit._recording.families import CALL_DURATION_BUCKETS
from obskit._recording.handles import declare_spec
from obskit._recording.store import MetricSpec

__all__ = [
    "DEGRADED",
    "HEALTHY",
    "UNHEALTHY",
    "CheckOutcome",
    "CheckResult",
    "HealthRegistry",
    "HealthReport",
    "async_library",
    "callable_check",
    "disk_space_check",
    "health_specs",
    "tcp_check",
]

HEALTHY: Final = "healthy"
DEGRADED: Final = "degraded"
UNHEALTHY: Final = "unhealthy"
_STATUSES: Final = (HEALTHY, DEGRADED, UNHEALTHY)
_KINDS: Final = ("live", "ready", "full")

Kind: TypeAlias = Literal["live", "ready", "full"]
CheckFunction: TypeAlias = Callable[[], Any]
_C = TypeVar("_C", bound=CheckFunction)
_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """What a check may return to say more than yes or no.

    Args:
        status: ``"healthy"``, ``"degraded"`` or ``"unhealthy"`` (a bool or an Enum whose value is
            one of these is accepted too).
        detail: anything JSON-serialisable shown in the report (a message, a dict of figures).
    """

    status: str = HEALTHY
    detail: Any = None


@dataclasses.dataclass(frozen=True)
class CheckOutcome:
    """One check's result in a report."""

    name: str
    status: str
    critical: bool
    duration_ms: float
    error: str | None = None
    detail: Any = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form used in endpoint bodies."""
        body: dict[str, Any] = {
            "status": self.status,
            "critical": self.critical,
            "duration_ms": self.duration_ms,
            "error": self.error,
        }
        if self.detail is not None:
            body["detail"] = self.detail
        return body


@dataclasses.dataclass(frozen=True)
class HealthReport:
    """The result of running every check: the overall status and each check's outcome."""

    status: str
    checks: Mapping[str, CheckOutcome]
    timestamp: str
    duration_ms: float

    @property
    def ready(self) -> bool:
        """True when no critical check failed (the overall status is not unhealthy)."""
        return self.status != UNHEALTHY

    def checks_dict(self) -> dict[str, dict[str, Any]]:
        """Each check's JSON-ready outcome, by name."""
        return {name: outcome.to_dict() for name, outcome in self.checks.items()}


@dataclasses.dataclass(eq=False)
class _Check:
    name: str
    function: CheckFunction
    timeout: float
    critical: bool
    is_async: bool
    pending: concurrent.futures.Future[Any] | None = None
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


def overall_status(outcomes: Mapping[str, CheckOutcome]) -> str:
    """Unhealthy if a critical check is unhealthy, degraded if any other check is not healthy."""
    values = outcomes.values()
    if any(o.critical and o.status == UNHEALTHY for o in values):
        return UNHEALTHY
    if any(o.status != HEALTHY for o in values):
        return DEGRADED
    return HEALTHY


class HealthRegistry:
    """A set of named health checks and the endpoints that run them.

    ``obskit.health``'s module functions use one default registry; make your own for isolation.
    Checks are sync or async callables taking no argument. They return ``True``/``None``
    (healthy), ``False`` (unhealthy), or a :class:`CheckResult` (or any object with ``status``
    and optional ``detail``); raising makes the check unhealthy with the error as message.
    """

    def __init__(self) -> None:
        self._checks: dict[str, _Check] = {}
        self._lock = threading.Lock()

    def register(self, name: str, check: _C, *, timeout: float = 5.0, critical: bool = True) -> _C:
        """Register ``check`` under ``name`` (replacing a check of that name) and return it.

        Args:
            name: the check's name in reports and in the ``check`` metric label.
            check: a sync or async callable taking no argument.
            timeout: seconds after which the check counts as unhealthy ("timed out after Xs").
            critical: whether its failure makes the service unhealthy (not ready) rather than degraded.

        Raises:
            ValueError: an empty name, a non-callable check or a timeout that is not positive.
        """
        if not name or not isinstance(name, str):
            raise ValueError(f"health check name must be a non-empty string, not {name!r}")
        if not callable(check):
            raise ValueError(f"health check {name!r} must be callable, not {check!r}")
        if not timeout > 0:
            raise ValueError(f"timeout of health check {name!r} must be positive, not {timeout!r}")
        entry = _Check(name, check, float(timeout), bool(critical), _is_async(check))
        with self._lock:
            self._checks[name] = entry
        return check

    def check(self, name: str, *, timeout: float = 5.0, critical: bool = True) -> Callable[[_C], _C]:
        """Decorator form of :meth:`register`: ``@registry.check("db", timeout=2)``."""

        def decorate(function: _C) -> _C:
            return self.register(name, function, timeout=timeout, critical=critical)

        return decorate

    def unregister(self, name: str) -> None:
        """Remove the check called ``name``; unknown names are ignored."""
        with self._lock:
            self._checks.pop(name, None)

    def clear(self) -> None:
        """Remove every check."""
        with self._lock:
            self._checks.clear()

    def names(self) -> list[str]:
        """The registered checks' names, in registration order."""
        with self._lock:
            return list(self._checks)

    async def run(self) -> HealthReport:
        """Run every check concurrently, each within its timeout, and record the health metrics."""
        with self._lock:
            checks = list(self._checks.values())
        started = time.perf_counter()
        library = async_library()
        if library == "asyncio":
            outcomes = list(await asyncio.gather(*(_run_one(c) for c in checks)))
        else:
            outcomes = await _run_all_anyio(checks, library)
        by_name = {o.name: o for o in outcomes}
        _record(outcomes)
        return HealthReport(
            status=overall_status(by_name),
            checks=by_name,
            timestamp=datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
            duration_ms=_ms(time.perf_counter() - started),
        )

    async def ahandle(self, kind: str) -> tuple[int, dict[str, Any]]:
        """Serve one health endpoint: ``(status_code, json_body)``; never raises.

        ``live``: 200 ``{"status": "alive"}``, running no check. ``ready``: 200 unless a critical
        check fails (503), with each check's outcome. ``full``: the whole report with the service's
        name, version and environment and a timestamp; 200 when healthy or degraded, 503 when
        unhealthy. An unknown kind answers 404.
        """
        if kind == "live":
            return 200, {"status": "alive"}
        if kind not in _KINDS:
            return 404, {"status": "unknown", "error": f"unknown health endpoint {kind!r}"}
        try:
            report = await self.run()
            return _response(kind, report)
        except Exception as exc:
            report_internal_error("health checks", exc)
            return 503, {"status": UNHEALTHY, "error": f"health checks failed to run: {exc!r}"}

    def handle(self, kind: str) -> tuple[int, dict[str, Any]]:
        """Sync :meth:`ahandle` for WSGI and other threads: runs the checks in a private event loop.

        Meant for threads without a running event loop; called from one anyway, it runs the
        checks on a helper thread and blocks that loop until they finish, so use ``ahandle`` there.
        """
        if kind == "live":
            return 200, {"status": "alive"}
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.ahandle(kind))
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="obskit-health") as pool:
            return pool.submit(asyncio.run, self.ahandle(kind)).result()


def _response(kind: str, report: HealthReport) -> tuple[int, dict[str, Any]]:
    code = 200 if report.ready else 503
    body: dict[str, Any] = {"status": report.status}
    if kind == "full":
        settings = _state.STATE.settings
        body.update(
            service=settings.service_name,
            version=settings.service_version,
            environment=settings.environment,
            timestamp=report.timestamp,
            duration_ms=report.duration_ms,
        )
    body["checks"] = report.checks_dict()
    return code, body


# -- running one check ----------------------------------------------------------------------------


async def _run_one(check: _Check) -> CheckOutcome:
    started = time.perf_counter()
    try:
        waitable = _start(check)
        done, _ = await asyncio.wait({waitable}, timeout=check.timeout)
        if not done:
            waitable.cancel()
            return _outcome(check, started, UNHEALTHY, f"timed out after {check.timeout:g}s")
        status, detail = _interpret(waitable.result())
        return _outcome(check, started, status, None, detail)
    except Exception as exc:
        return _outcome(check, started, UNHEALTHY, f"{type(exc).__name__}: {exc}")


def _start(check: _Check) -> asyncio.Future[Any]:
    if check.is_async:
        task: asyncio.Future[Any] = asyncio.ensure_future(check.function())
        task.add_done_callback(_retrieve)
        return task
    return asyncio.wrap_future(_pending(check))


def _pending(check: _Check) -> concurrent.futures.Future[Any]:
    """The sync check's run in its thread: the one still going from an earlier probe, else a new one."""
    with check.lock:
        if check.pending is None or check.pending.done():
            check.pending = _in_thread(check)
        return check.pending


# -- other event loops (trio), through anyio ------------------------------------------------------


def async_library() -> str:
    """The async library running the current task: ``"asyncio"``, ``"trio"``, ...

    sniffio answers when it is imported (anyio and trio set it); else a running trio task is
    recognised through ``sys.modules``; else asyncio. Neither is imported here.
    """
    sniffio = sys.modules.get("sniffio")
    if sniffio is not None:
        with contextlib.suppress(Exception):
            return str(sniffio.current_async_library())
    trio = sys.modules.get("trio")
    if trio is not None:
        with contextlib.suppress(Exception):
            trio.lowlevel.current_task()
            return "trio"
    return "asyncio"


def _anyio(library: str) -> Any:
    try:
        import anyio
    except ImportError:
        raise RuntimeError(f"health checks under {library} need anyio (pip install anyio)") from None
    return anyio


async def _run_all_anyio(checks: list[_Check], library: str) -> list[CheckOutcome]:
    """Every check at once in an anyio task group: under trio, or any loop that is not asyncio."""
    anyio = _anyio(library)
    outcomes: dict[int, CheckOutcome] = {}

    async def run(index: int, check: _Check) -> None:
        outcomes[index] = await _run_one_anyio(anyio, check)

    async with anyio.create_task_group() as group:
        for index, check in enumerate(checks):
            group.start_soon(run, index, check)
    return [outcomes[index] for index in range(len(checks))]


async def _run_one_anyio(anyio: Any, check: _Check) -> CheckOutcome:
    started = time.perf_counter()
    timed_out = f"timed out after {check.timeout:g}s"
    try:
        if check.is_async:
            with anyio.move_on_after(check.timeout) as scope:
                value = await check.function()
            if scope.cancelled_caught:
                return _outcome(check, started, UNHEALTHY, timed_out)
        else:
            # The check runs in its own daemon thread (see the module's docstring); a worker of
            # anyio's waits for it, at most the timeout, so the event loop never blocks.
            future = _pending(check)
            wait = functools.partial(concurrent.futures.wait, (future,), check.timeout)
            done, _ = await _to_thread(anyio, wait)
            if not done:
                return _outcome(check, started, UNHEALTHY, timed_out)
            value = future.result()
        status, detail = _interpret(value)
        return _outcome(check, started, status, None, detail)
    except Exception as exc:
        return _outcome(check, started, UNHEALTHY, f"{type(exc).__name__}: {exc}")


async def _to_thread(anyio: Any, function: Callable[[], _T]) -> _T:
    try:
        result: _T = await anyio.to_thread.run_sync(function, abandon_on_cancel=True)
    except TypeError:  # anyio < 4.1 calls it ``cancellable``
        result = await anyio.to_thread.run_sync(function, cancellable=True)
    return result


def _in_thread(check: _Check) -> concurrent.futures.Future[Any]:
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    # Running from the start, so that a caller's timeout cannot cancel it under the thread's feet.
    future.set_running_or_notify_cancel()

    context = contextvars.copy_context()  # as asyncio.to_thread does: LoggingContext, current span

    def target() -> None:
        try:
            future.set_result(context.run(check.function))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=target, name=f"obskit-health-{check.name}", daemon=True).start()
    return future


def _retrieve(task: asyncio.Future[Any]) -> None:
    # A check cancelled after its timeout may still fail; fetch the error so asyncio does not log it.
    if not task.cancelled():
        task.exception()


def _interpret(value: Any) -> tuple[str, Any]:
    if value is None or value is True:
        return HEALTHY, None
    if value is False:
        return UNHEALTHY, None
    if not hasattr(value, "status"):
        raise TypeError(f"a check must return a bool, None or a CheckResult, not {type(value).__name__}")
    status = value.status
    status = getattr(status, "value", status)
    if isinstance(status, bool):
        status = HEALTHY if status else UNHEALTHY
    if status not in _STATUSES:
        raise ValueError(f"unknown check status {status!r}; allowed: {', '.join(_STATUSES)}")
    detail = getattr(value, "detail", None)
    if detail is None:
        detail = getattr(value, "message", None)
    return str(status), _jsonable(detail)


def _jsonable(detail: Any) -> Any:
    if detail is None or isinstance(detail, str | int | float | bool | dict | list):
        return detail
    return str(detail)


def _outcome(
    check: _Check, started: float, status: str, error: str | None, detail: Any = None
) -> CheckOutcome:
    duration = _ms(time.perf_counter() - started)
    return CheckOutcome(check.name, status, check.critical, duration, error, detail)


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def _is_async(function: Callable[..., Any]) -> bool:
    call = getattr(function, "__call__", None)  # noqa: B004 - instances with an async __call__
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(call)


# -- metrics --------------------------------------------------------------------------------------

_HANDLES: dict[str, tuple[Any, Any]] = {}


def health_specs(namespace: str) -> tuple[MetricSpec, MetricSpec]:
    """The per-check status gauge and duration histogram specs.

    The gauge's multi-process mode is ``livemostrecent``: any worker may serve a probe, and the
    latest result among live workers is the one that describes the service now.
    """
    return (
        MetricSpec(
            "gauge",
            f"{namespace}_health_check_status",
            "Result of the latest run of each health check: 1 healthy, 0 degraded or unhealthy.",
            ("check",),
            multiprocess_mode="livemostrecent",
        ),
        MetricSpec(
            "histogram",
            f"{namespace}_health_check_duration_seconds",
            "Duration of each health check run, timeouts included.",
            ("check",),
            CALL_DURATION_BUCKETS,
            "s",
        ),
    )


def _record(outcomes: list[CheckOutcome]) -> None:
    try:
        namespace = _state.STATE.settings.metric_namespace
        handles = _HANDLES.get(namespace)
        if handles is None:
            gauge_spec, histogram_spec = health_specs(namespace)
            handles = _HANDLES[namespace] = (declare_spec(gauge_spec), declare_spec(histogram_spec))
        gauge, histogram = handles
        for outcome in outcomes:
            gauge.set(1.0 if outcome.status == HEALTHY else 0.0, check=outcome.name)
            histogram.observe(outcome.duration_ms / 1000.0, check=outcome.name)
    except Exception as exc:
        report_internal_error("health metrics", exc)


# -- ready-made checks ----------------------------------------------------------------------------


def callable_check(function: Callable[..., Any], *args: Any, **kwargs: Any) -> CheckFunction:
    """A check calling ``function(*args, **kwargs)``; its result is read like any check's.

    Keeps the kind of ``function``: an async function gives an async check.
    """
    if _is_async(function):

        async def run_async() -> Any:
            return await function(*args, **kwargs)

        return run_async

    def run() -> Any:
        return function(*args, **kwargs)

    return run


def tcp_check(host: str, port: int, timeout: float = 2.0) -> Callable[[], Awaitable[CheckResult]]:
    """An async check that opens (and closes) a TCP connection to ``host:port``.

    Healthy when the connection is accepted within ``timeout`` seconds; the error otherwise.
    """

    async def check() -> CheckResult:
        library = async_library()
        if library != "asyncio":  # trio: anyio's connect (asyncio's streams need asyncio's loop)
            anyio = _anyio(library)
            with anyio.fail_after(timeout):
                stream = await anyio.connect_tcp(host, port)
            with contextlib.suppress(OSError):
                await stream.aclose()
            return CheckResult(HEALTHY, f"connected to {host}:{port}")
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        writer.close()
        # The peer may reset a connection it accepted only to drop it; it did accept it.
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return CheckResult(HEALTHY, f"connected to {host}:{port}")

    return check


def disk_space_check(
    path: str = "/", *, min_free_ratio: float | None = 0.05, min_free_bytes: int | None = None
) -> Callable[[], CheckResult]:
    """A sync check that ``path``'s file system has enough free space.

    Unhealthy when the free fraction is below ``min_free_ratio`` or the free bytes below
    ``min_free_bytes`` (either may be None to skip it). The detail gives the figures.
    """

    def check() -> CheckResult:
        usage = shutil.disk_usage(path)
        ratio = usage.free / usage.total if usage.total else 0.0
        detail = {"path": path, "free_bytes": usage.free, "total_bytes": usage.total, "free_ratio": ratio}
        too_low = (min_free_ratio is not None and ratio < min_free_ratio) or (
            min_free_bytes is not None and usage.free < min_free_bytes
        )
        return CheckResult(UNHEALTHY if too_low else HEALTHY, detail)

    return check
