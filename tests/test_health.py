from __future__ import annotations

import asyncio
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest

import obskit
from obskit import health, testing
from obskit.health import CheckResult, HealthRegistry


class _Usage(NamedTuple):
    total: int
    used: int
    free: int


@pytest.fixture(autouse=True)
def _empty_default_registry() -> Iterator[None]:
    health.clear()
    yield
    health.clear()


@pytest.fixture
def registry() -> HealthRegistry:
    return HealthRegistry()


@pytest.fixture
def sleep_10s() -> Iterator[Any]:
    """A sync check sleeping 10 s, woken when the test ends so that no thread outlives it."""
    wake = threading.Event()
    yield lambda: wake.wait(10)
    wake.set()


def _failing() -> bool:
    return False


# -- registration ---------------------------------------------------------------------------------


def test_register_returns_the_check_and_lists_it(registry: HealthRegistry) -> None:
    def db() -> bool:
        return True

    assert registry.register("db", db) is db
    assert registry.names() == ["db"]


def test_decorator_registers_on_the_default_registry() -> None:
    @health.check("db", timeout=2, critical=False)
    def db() -> bool:
        return True

    assert health.names() == ["db"]
    assert db() is True


def test_unregister_and_clear_remove_checks(registry: HealthRegistry) -> None:
    registry.register("a", lambda: True)
    registry.register("b", lambda: True)
    registry.unregister("a")
    registry.unregister("unknown")
    assert registry.names() == ["b"]
    registry.clear()
    assert registry.names() == []


def test_registering_a_name_again_replaces_the_check(registry: HealthRegistry) -> None:
    registry.register("a", lambda: True)
    registry.register("a", _failing)
    report = asyncio.run(registry.run())
    assert report.checks["a"].status == "unhealthy"


@pytest.mark.parametrize(
    ("name", "check", "timeout"),
    [("", lambda: True, 1.0), ("x", "not callable", 1.0), ("x", lambda: True, 0.0)],
)
def test_register_rejects_bad_arguments(
    registry: HealthRegistry, name: str, check: Any, timeout: float
) -> None:
    with pytest.raises(ValueError, match="health check"):
        registry.register(name, check, timeout=timeout)


def test_module_functions_use_the_default_registry() -> None:
    health.register("x", lambda: True)
    assert health.default_registry.names() == ["x"]
    health.unregister("x")
    assert health.names() == []


# -- check results ----------------------------------------------------------------------------------


async def test_sync_and_async_checks_are_healthy(registry: HealthRegistry) -> None:
    async def async_check() -> None:
        await asyncio.sleep(0)

    registry.register("sync", lambda: True)
    registry.register("async", async_check)
    registry.register("none", lambda: None)
    report = await registry.run()
    assert report.status == "healthy"
    statuses = {n: o.status for n, o in report.checks.items()}
    assert statuses == dict.fromkeys(("sync", "async", "none"), "healthy")


async def test_sync_checks_run_off_the_event_loop_thread(registry: HealthRegistry) -> None:
    threads: list[int] = []
    registry.register("where", lambda: threads.append(threading.get_ident()))
    await registry.run()
    assert threads
    assert threads != [threading.get_ident()]


async def test_async_callable_object_is_awaited(registry: HealthRegistry) -> None:
    class Probe:
        async def __call__(self) -> bool:
            return False

    registry.register("probe", Probe())
    assert (await registry.run()).checks["probe"].status == "unhealthy"


async def test_raising_check_is_unhealthy_with_the_error(registry: HealthRegistry) -> None:
    def broken() -> bool:
        raise ConnectionError("refused")

    async def broken_async() -> bool:
        raise RuntimeError("boom")

    registry.register("sync", broken)
    registry.register("async", broken_async)
    report = await registry.run()
    assert report.checks["sync"].status == "unhealthy"
    assert report.checks["sync"].error == "ConnectionError: refused"
    assert report.checks["async"].error == "RuntimeError: boom"


async def test_check_result_status_and_detail_are_reported(registry: HealthRegistry) -> None:
    registry.register("slow_cache", lambda: CheckResult("degraded", {"latency_ms": 900}))
    report = await registry.run()
    outcome = report.checks["slow_cache"]
    assert (outcome.status, outcome.detail) == ("degraded", {"latency_ms": 900})
    assert outcome.to_dict()["detail"] == {"latency_ms": 900}


async def test_result_like_objects_with_enum_or_bool_status_are_accepted(registry: HealthRegistry) -> None:
    import enum

    class Status(enum.Enum):
        DEGRADED = "degraded"

    class Seeded(NamedTuple):
        status: Any
        message: Any

    registry.register("enum", lambda: Seeded(Status.DEGRADED, "slow"), critical=False)
    registry.register("bool", lambda: Seeded(True, object()))
    report = await registry.run()
    assert (report.checks["enum"].status, report.checks["enum"].detail) == ("degraded", "slow")
    assert report.checks["bool"].status == "healthy"
    assert isinstance(report.checks["bool"].detail, str)


async def test_unreadable_results_make_the_check_unhealthy(registry: HealthRegistry) -> None:
    registry.register("number", lambda: 42)
    registry.register("status", lambda: CheckResult("sort of"))
    report = await registry.run()
    assert report.checks["number"].status == "unhealthy"
    assert "CheckResult" in (report.checks["number"].error or "")
    assert "unknown check status" in (report.checks["status"].error or "")


# -- timeouts and concurrency ----------------------------------------------------------------------


async def test_timed_out_check_does_not_delay_the_others(registry: HealthRegistry, sleep_10s: Any) -> None:
    async def hangs() -> None:
        await asyncio.sleep(10)

    registry.register("sync_hang", sleep_10s, timeout=0.2)
    registry.register("async_hang", hangs, timeout=0.2)
    registry.register("fine", lambda: True)
    started = time.monotonic()
    report = await registry.run()
    assert time.monotonic() - started < 3  # far below the 10 s the hung checks would take
    assert report.checks["sync_hang"].error == "timed out after 0.2s"
    assert report.checks["async_hang"].error == "timed out after 0.2s"
    assert report.checks["fine"].status == "healthy"
    assert report.status == "unhealthy"


def test_sync_handle_returns_on_timeout_despite_a_hung_thread(
    registry: HealthRegistry, sleep_10s: Any
) -> None:
    registry.register("hang", sleep_10s, timeout=0.2)
    registry.register("fine", lambda: True)
    started = time.monotonic()
    code, body = registry.handle("ready")
    assert time.monotonic() - started < 3  # far below the 10 s the hung check would take
    assert code == 503
    assert body["checks"]["fine"]["status"] == "healthy"


async def test_hung_sync_check_is_not_started_twice(registry: HealthRegistry) -> None:
    calls: list[int] = []
    release = threading.Event()

    def hang() -> None:
        calls.append(1)
        release.wait(5)

    registry.register("hang", hang, timeout=0.1)
    try:
        await registry.run()
        await registry.run()
        assert len(calls) == 1
    finally:
        release.set()


async def test_checks_run_concurrently(registry: HealthRegistry) -> None:
    async def slow_async() -> None:
        await asyncio.sleep(0.6)

    registry.register("a", lambda: time.sleep(0.6))
    registry.register("b", lambda: time.sleep(0.6))
    registry.register("c", slow_async)
    started = time.monotonic()
    report = await registry.run()
    assert time.monotonic() - started < 1.5  # one after another they would take 1.8 s
    assert report.status == "healthy"
    assert all(o.duration_ms >= 550 for o in report.checks.values())


# -- overall status ---------------------------------------------------------------------------------


async def test_no_checks_is_healthy(registry: HealthRegistry) -> None:
    assert (await registry.run()).status == "healthy"


async def test_failing_non_critical_check_degrades(registry: HealthRegistry) -> None:
    registry.register("db", lambda: True)
    registry.register("cache", _failing, critical=False)
    report = await registry.run()
    assert report.status == "degraded"
    assert report.ready


async def test_degraded_critical_check_degrades(registry: HealthRegistry) -> None:
    registry.register("db", lambda: CheckResult("degraded"))
    assert (await registry.run()).status == "degraded"


async def test_failing_critical_check_is_unhealthy(registry: HealthRegistry) -> None:
    registry.register("db", _failing)
    registry.register("cache", _failing, critical=False)
    report = await registry.run()
    assert report.status == "unhealthy"
    assert not report.ready


# -- endpoints --------------------------------------------------------------------------------------


def _counting(calls: list[int]) -> Any:
    def check() -> bool:
        calls.append(1)
        return True

    return check


async def test_live_runs_no_check(registry: HealthRegistry) -> None:
    calls: list[int] = []
    registry.register("counted", _counting(calls))
    assert await registry.ahandle("live") == (200, {"status": "alive"})
    assert registry.handle("live") == (200, {"status": "alive"})
    assert calls == []
    await registry.ahandle("ready")
    assert calls == [1]


@pytest.mark.parametrize(
    ("critical_ok", "other_ok", "code", "status"),
    [(True, True, 200, "healthy"), (True, False, 200, "degraded"), (False, True, 503, "unhealthy")],
)
async def test_ready_and_full_status_codes(
    registry: HealthRegistry, critical_ok: bool, other_ok: bool, code: int, status: str
) -> None:
    registry.register("db", lambda: critical_ok)
    registry.register("cache", lambda: other_ok, critical=False)
    for kind in ("ready", "full"):
        got_code, body = await registry.ahandle(kind)
        assert (got_code, body["status"]) == (code, status)
        assert set(body["checks"]) == {"db", "cache"}
        assert body["checks"]["cache"]["critical"] is False
    assert registry.handle("ready")[0] == code


async def test_full_report_names_the_service() -> None:
    obskit.configure(service_name="billing", service_version="1.2.3", environment="staging")
    health.register("db", lambda: True)
    code, body = await health.ahandle("full")
    assert code == 200
    assert (body["service"], body["version"], body["environment"]) == ("billing", "1.2.3", "staging")
    assert body["timestamp"].endswith("+00:00")
    assert set(body["checks"]["db"]) == {"status", "critical", "duration_ms", "error"}


def test_module_handle_serves_the_default_registry() -> None:
    health.register("db", _failing)
    assert health.handle("ready")[0] == 503
    assert health.handle("full")[1]["checks"]["db"]["status"] == "unhealthy"


async def test_unknown_kind_answers_404(registry: HealthRegistry) -> None:
    assert (await registry.ahandle("nope"))[0] == 404
    assert registry.handle("nope")[0] == 404


async def test_runner_failure_never_raises(
    registry: HealthRegistry, monkeypatch: pytest.MonkeyPatch, swallow_internal_errors: None
) -> None:
    async def broken_run() -> Any:
        raise RuntimeError("runner bug")

    monkeypatch.setattr(registry, "run", broken_run)
    code, body = await registry.ahandle("full")
    assert (code, body["status"]) == (503, "unhealthy")


async def test_handle_works_from_a_worker_thread_while_a_loop_runs(registry: HealthRegistry) -> None:
    async def async_check() -> bool:
        await asyncio.sleep(0.01)
        return True

    registry.register("async", async_check)
    registry.register("sync", lambda: True)
    code, body = await asyncio.to_thread(registry.handle, "full")
    assert (code, body["status"]) == (200, "healthy")


async def test_handle_called_inside_a_running_loop_still_answers(registry: HealthRegistry) -> None:
    registry.register("sync", lambda: True)
    assert registry.handle("ready")[0] == 200


# -- ready-made checks ----------------------------------------------------------------------------


async def test_callable_check_passes_arguments_and_keeps_async(registry: HealthRegistry) -> None:
    async def ping(expected: int) -> bool:
        return expected == 1

    registry.register("sync", health.callable_check(lambda a, b=0: a + b == 3, 1, b=2))
    registry.register("async", health.callable_check(ping, 1))
    registry.register("async_bad", health.callable_check(ping, 2), critical=False)
    report = await registry.run()
    assert [o.status for o in report.checks.values()] == ["healthy", "healthy", "unhealthy"]


@pytest.fixture
def listening_port() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_tcp_check_against_listening_and_closed_ports(
    registry: HealthRegistry, listening_port: int, closed_port: int
) -> None:
    registry.register("open", health.tcp_check("127.0.0.1", listening_port, timeout=1))
    registry.register("closed", health.tcp_check("127.0.0.1", closed_port, timeout=1))
    report = await registry.run()
    assert report.checks["open"].status == "healthy"
    assert report.checks["closed"].status == "unhealthy"
    assert report.checks["closed"].error


@pytest.mark.parametrize(
    ("free", "kwargs", "status"),
    [
        (10, {}, "healthy"),
        (4, {}, "unhealthy"),
        (4, {"min_free_ratio": 0.01}, "healthy"),
        (50, {"min_free_ratio": None, "min_free_bytes": 60}, "unhealthy"),
        (50, {"min_free_ratio": None, "min_free_bytes": 40}, "healthy"),
    ],
)
def test_disk_space_check_thresholds(
    monkeypatch: pytest.MonkeyPatch, free: int, kwargs: dict[str, Any], status: str
) -> None:
    seen: list[str] = []

    def usage(path: str) -> _Usage:
        seen.append(path)
        return _Usage(100, 100 - free, free)

    monkeypatch.setattr(shutil, "disk_usage", usage)
    result = health.disk_space_check("/data", **kwargs)()
    assert result.status == status
    assert result.detail["free_bytes"] == free
    assert seen == ["/data"]


# -- metrics ----------------------------------------------------------------------------------------


async def test_check_results_are_exported_as_metrics(registry: HealthRegistry) -> None:
    registry.register("db", lambda: True)
    registry.register("cache", _failing, critical=False)
    with testing.capture() as cap:
        await registry.run()
        assert cap.gauge_value("obskit_health_check_status", check="db") == 1.0
        assert cap.gauge_value("obskit_health_check_status", check="cache") == 0.0
        assert cap.histogram_count("obskit_health_check_duration_seconds", check="db") == 1
        registry.unregister("cache")
        registry.register("db", _failing)
        await registry.run()
        assert cap.gauge_value("obskit_health_check_status", check="db") == 0.0
        assert cap.histogram_count("obskit_health_check_duration_seconds", check="db") == 2


def test_metrics_follow_the_configured_namespace() -> None:
    obskit.configure(metric_namespace="shop")
    health.register("db", lambda: True)
    with testing.capture() as cap:
        health.handle("ready")
        assert cap.gauge_value("shop_health_check_status", check="db") == 1.0


def test_public_names_are_exported_and_documented() -> None:
    import inspect

    assert len(set(health.__all__)) == len(health.__all__)  # ruff RUF022 keeps it sorted
    for name in health.__all__:
        value = getattr(health, name)
        if callable(value) and not isinstance(value, HealthRegistry):
            assert inspect.getdoc(value), name


async def test_module_run_returns_the_default_registry_report() -> None:
    health.register("db", lambda: True)
    report = await health.run()
    assert (report.status, list(report.checks)) == ("healthy", ["db"])


async def test_metric_failures_never_reach_the_endpoint(
    monkeypatch: pytest.MonkeyPatch, swallow_internal_errors: None
) -> None:
    from obskit._recording import health as _health

    def broken(*_: Any) -> Any:
        raise RuntimeError("store broken")

    monkeypatch.setattr(_health, "_HANDLES", {})
    monkeypatch.setattr(_health, "declare_spec", broken)
    health.register("db", lambda: True)
    assert (await health.ahandle("ready"))[0] == 200


async def test_sync_checks_see_the_callers_context(registry: HealthRegistry) -> None:
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: list[str] = []
    registry.register("ctx", lambda: seen.append(var.get()))
    var.set("request-1")
    await registry.run()
    assert seen == ["request-1"]
