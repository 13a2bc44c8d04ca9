"""The exit: one budget, obskit's signal handlers in front of a server's, the flush at lifespan shutdown.

What a real server does with them (uvicorn's re-raised SIGTERM, gunicorn's workers) is proved
with real processes in tests/integration/test_exit_servers.py; these tests hold the pieces in one
process. The chained handler's SIGTERM block is replaced by a stub here: blocking SIGTERM in
the test runner's main thread would outlive the test.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import obskit
from obskit._core import exit as _exit
from obskit._runtime import lifecycle as _runtime

QUIET: dict[str, Any] = {"traces_exporter": "none", "metrics_exporter": "none", "logs_exporter": "none"}


@pytest.fixture
def no_block(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, set[int]]]:
    """Record what the chained handler would block instead of blocking it; no watchdog."""
    calls: list[tuple[int, set[int]]] = []
    monkeypatch.setattr(_exit.signal, "pthread_sigmask", lambda how, sigs: calls.append((how, set(sigs))))
    monkeypatch.setattr(_exit, "_start_watchdog", lambda signum: None)
    return calls


@pytest.fixture
def foreign_sigterm() -> Iterator[list[int]]:
    """A server's SIGTERM handler, installed before configure() (uvicorn --factory)."""
    seen: list[int] = []

    def server_handler(signum: int, frame: object) -> None:
        seen.append(signum)

    previous = signal.signal(signal.SIGTERM, server_handler)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_foreign_sigterm_handler_is_chained_and_put_back_at_shutdown(
    foreign_sigterm: list[int], no_block: list[tuple[int, set[int]]]
) -> None:
    server_handler = signal.getsignal(signal.SIGTERM)
    obskit.configure(**QUIET)
    chained = signal.getsignal(signal.SIGTERM)
    assert chained is not server_handler
    assert callable(chained)
    chained(signal.SIGTERM, None)
    assert foreign_sigterm == [signal.SIGTERM]  # the server still hears it
    assert _exit.exiting()
    assert no_block == []  # a server that does not raise it again: nothing held
    obskit.shutdown()
    assert signal.getsignal(signal.SIGTERM) is server_handler


class Server:
    """Stands for uvicorn's Server, whose handle_exit is the SIGTERM handler it installs."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def handle_exit(self, signum: int, frame: object) -> None:
        self.seen.append(signum)


Server.__module__ = "uvicorn.server"


def test_sigterm_is_held_in_front_of_a_server_that_raises_it_again(
    no_block: list[tuple[int, set[int]]],
) -> None:
    server = Server()
    previous = signal.signal(signal.SIGTERM, server.handle_exit)
    try:
        obskit.configure(**QUIET)
        signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)  # type: ignore[operator]
        assert server.seen == [signal.SIGTERM]
        assert no_block == [(signal.SIG_BLOCK, {signal.SIGTERM})]  # its re-raise will wait for the flush
        assert _exit._held == {signal.SIGTERM}
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_nothing_is_held_when_the_lifespan_will_flush(no_block: list[tuple[int, set[int]]]) -> None:
    server = Server()
    previous = signal.signal(signal.SIGTERM, server.handle_exit)
    try:
        obskit.configure(**QUIET)
        _exit.lifespan_started()
        signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)  # type: ignore[operator]
        assert server.seen == [signal.SIGTERM]
        assert no_block == []
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_configure_twice_chains_once(
    foreign_sigterm: list[int], no_block: list[tuple[int, set[int]]]
) -> None:
    server_handler = signal.getsignal(signal.SIGTERM)
    obskit.configure(**QUIET)
    obskit.configure(**QUIET)
    chained = signal.getsignal(signal.SIGTERM)
    assert getattr(chained, "previous", None) is server_handler
    chained(signal.SIGTERM, None)
    assert foreign_sigterm == [signal.SIGTERM]


def test_the_default_sigterm_action_gets_obskits_flushing_handler() -> None:
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        obskit.configure(**QUIET)
        assert signal.getsignal(signal.SIGTERM) is _exit._terminate
        obskit.shutdown()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_keyboard_interrupt_and_ignored_signals_are_left_alone() -> None:
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        obskit.configure(**QUIET)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # a program may catch it
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_the_first_notice_of_an_exit_starts_the_one_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_exit, "_timeout", 2.0)
    assert not _exit.exiting()
    assert _exit.remaining(7.0) == 7.0  # no exit: the caller's own timeout
    deadline = _exit.begin_exit()
    time.sleep(0.05)
    assert _exit.begin_exit() == deadline  # a later notice: the same deadline, not a fresh one
    first = _exit.remaining()
    assert 1.6 < first <= 1.8  # 2 s, less 0.2 s kept for the interpreter's teardown, less 0.05 s
    assert _exit.remaining(0.5) == 0.5


def test_the_exits_first_flush_gets_a_share_even_when_the_server_used_the_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_exit, "_timeout", 2.0)
    monkeypatch.setattr(_exit.time, "monotonic", lambda: 100.0)
    _exit.begin_exit()
    monkeypatch.setattr(_exit.time, "monotonic", lambda: 110.0)  # a long graceful drain
    assert _exit.remaining() == 0.5  # the first flush: a quarter of the budget
    assert _exit.remaining() == 0.0  # every later one: what is left


def test_a_lifespan_shutdown_without_an_exit_does_not_cap_later_shutdowns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_exit, "_timeout", 2.0)
    now = [100.0]
    monkeypatch.setattr(_exit.time, "monotonic", lambda: now[0])
    first = _exit.begin_exit(certain=False)  # a test client's lifespan shutdown, say
    assert not _exit.exiting()  # shutdown() keeps its own timeout
    now[0] = 200.0
    assert _exit.begin_exit() == 202.0  # long past: that was no exit; this one starts afresh
    assert first == 102.0
    assert _exit.exiting()


def test_an_app_starting_again_gives_its_next_lifespan_shutdown_the_whole_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Test clients run one lifespan after another in a few seconds: each shutdown is a probable
    # exit, and the next start says it was not one (before, the later flushes got 0 s).
    monkeypatch.setattr(_exit, "_timeout", 5.0)
    monkeypatch.setattr(_exit, "watch_signals", lambda: None)
    now = [100.0]
    monkeypatch.setattr(_exit.time, "monotonic", lambda: now[0])
    for _ in range(4):
        _exit.lifespan_started()
        assert _exit.begin_exit(certain=False) == now[0] + 5.0
        now[0] += 1.0
        assert _exit.remaining() == pytest.approx(3.8)  # the budget, less the time gone and the margin
        now[0] += 0.5


def test_a_certain_exit_is_not_undone_by_an_app_starting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_exit, "watch_signals", lambda: None)
    deadline = _exit.begin_exit()  # SIGTERM seen
    _exit.lifespan_started()
    assert _exit.exiting()
    assert _exit.begin_exit() == deadline


def test_shutdown_during_an_exit_takes_what_is_left(monkeypatch: pytest.MonkeyPatch) -> None:
    obskit.configure(**QUIET, shutdown_timeout=2)
    given: list[float] = []
    _runtime._installed.append(given.append)
    _exit.begin_exit()
    obskit.shutdown(timeout=30)
    assert 0 < given[0] <= 1.8


def test_the_exit_hook_unblocks_a_held_sigterm_last(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(_exit.signal, "pthread_sigmask", lambda how, sigs: calls.append((how, set(sigs))))
    monkeypatch.setattr(_runtime, "shutdown", lambda timeout=None: calls.append("shutdown"))
    monkeypatch.setattr(_exit, "_held", {signal.SIGTERM})
    _runtime._shutdown_at_exit()
    assert calls == ["shutdown", (signal.SIG_UNBLOCK, {signal.SIGTERM})]
    assert _exit._held == set()


def test_a_forked_child_starts_with_no_exit_and_no_held_signal(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(_exit.signal, "pthread_sigmask", lambda how, sigs: calls.append((how, set(sigs))))
    monkeypatch.setattr(_exit, "_held", {signal.SIGTERM})
    _exit.begin_exit()
    _exit.after_fork_in_child()
    assert not _exit.exiting()
    assert calls == [(signal.SIG_UNBLOCK, {signal.SIGTERM})]


async def test_lifespan_shutdown_flushes_every_pipeline_before_the_server_hears_complete() -> None:
    from starlette.applications import Starlette

    app = Starlette()
    obskit.configure(app, **QUIET)
    events: list[str] = []

    def slow_flush(timeout: float) -> None:
        time.sleep(0.03)  # the event loop goes on meanwhile
        events.append(f"flushed within {timeout:.1f}")

    _runtime._flushers.append(("slow flush", slow_flush))
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, Any]:
        return next(incoming)

    async def send(message: dict[str, Any]) -> None:
        events.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert events[0] == "lifespan.startup.complete"
    assert events[1].startswith("flushed within")
    assert events[2] == "lifespan.shutdown.complete"
    assert not _exit.exiting()  # probable only: a test client sends the same messages


async def test_lifespan_passes_through_when_obskit_is_off() -> None:
    from starlette.applications import Starlette

    app = Starlette()
    obskit.configure(app, **QUIET)
    obskit.shutdown()
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return next(incoming)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert _exit._deadline is None


def test_pending_reads_a_threads_pending_signals(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tuvicorn\nSigQ:\t1/1000\nSigPnd:\t0000000000004000\nShdPnd:\t0\n")
    assert _exit._pending(str(status), signal.SIGTERM)
    assert not _exit._pending(str(status), signal.SIGINT)
    assert not _exit._pending(str(tmp_path / "gone"), signal.SIGTERM)
    status.write_text("Name:\tuvicorn\n")
    assert not _exit._pending(str(status), signal.SIGTERM)


def test_the_watchdog_shuts_down_then_sends_the_held_signal_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    done = threading.Event()
    monkeypatch.setattr(_exit, "_shutdown", lambda: calls.append("shutdown"))
    monkeypatch.setattr(_exit, "_held", {signal.SIGTERM})
    checks = iter([False, True])
    monkeypatch.setattr(_exit, "_pending", lambda status, signum: next(checks))

    def kill(pid: int, signum: int) -> None:
        calls.append(signum)
        done.set()

    monkeypatch.setattr(_exit.os, "kill", kill)
    _exit._start_watchdog(signal.SIGTERM)
    assert done.wait(5)
    assert calls == ["shutdown", signal.SIGTERM]


def test_the_default_action_handler_shuts_down_then_dies_by_the_signal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(_exit, "_shutdown", lambda: calls.append(("shutdown", _exit.exiting())))
    monkeypatch.setattr(_exit.os, "kill", lambda pid, signum: calls.append(signum))
    previous = signal.getsignal(signal.SIGTERM)
    try:
        _exit._terminate(signal.SIGTERM, None)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the kill meets the default action
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert calls == [("shutdown", True), signal.SIGTERM]


def test_signals_are_left_alone_outside_the_main_thread(foreign_sigterm: list[int]) -> None:
    server_handler = signal.getsignal(signal.SIGTERM)
    obskit.configure(**QUIET)
    obskit.shutdown()
    _exit.watch(5.0, lambda: None, lambda timeout: None)
    signal.signal(signal.SIGTERM, server_handler)
    _exit._mine.clear()
    worker = threading.Thread(target=_exit.watch_signals)
    worker.start()
    worker.join(5)
    assert signal.getsignal(signal.SIGTERM) is server_handler
    _exit._mine.append((signal.SIGTERM, server_handler, signal.SIG_DFL))
    worker = threading.Thread(target=_exit.unwatch)  # cannot put handlers back: only forgets them
    worker.start()
    worker.join(5)
    assert _exit._mine == []
    assert signal.getsignal(signal.SIGTERM) is server_handler
    _exit.stop_watching()


def test_a_failing_handler_install_is_reported_not_raised(
    swallow_internal_errors: None, monkeypatch: pytest.MonkeyPatch, foreign_sigterm: list[int]
) -> None:
    def refuse(signum: int, handler: Any) -> None:
        raise ValueError("not here")

    with monkeypatch.context() as patched:
        patched.setattr(_exit.signal, "signal", refuse)
        obskit.configure(**QUIET)  # no exception
    assert _exit._mine == []


def test_a_failing_chained_handler_still_calls_the_servers(
    swallow_internal_errors: None, monkeypatch: pytest.MonkeyPatch, foreign_sigterm: list[int]
) -> None:
    obskit.configure(**QUIET)
    chained = signal.getsignal(signal.SIGTERM)

    def broken(**kwargs: Any) -> float:
        raise RuntimeError("bug")

    monkeypatch.setattr(_exit, "begin_exit", broken)
    chained(signal.SIGTERM, None)  # type: ignore[operator]
    assert foreign_sigterm == [signal.SIGTERM]


def test_the_exit_hook_end_with_nothing_held_does_nothing() -> None:
    _exit.end_exit()
    assert _exit._held == set()


def test_nothing_to_flush_before_configure() -> None:
    assert _exit.flush_for_exit() is None


def test_a_failing_flush_is_reported_and_still_ends(swallow_internal_errors: None) -> None:
    def broken(timeout: float) -> None:
        raise RuntimeError("bug")

    _exit.watch(2.0, lambda: None, broken)
    try:
        started = _exit.flush_for_exit()
        assert started is not None
        assert started[0].wait(5)
    finally:
        _exit.stop_watching()


def test_the_lifespan_flush_waits_in_place_outside_asyncio() -> None:
    from obskit._web.asgi import _flush_before_exit

    flushed: list[float] = []
    _exit.watch(2.0, lambda: None, flushed.append)
    try:
        coroutine = _flush_before_exit()
        with pytest.raises(StopIteration):  # ran to its end without awaiting: no event loop here
            coroutine.send(None)
    finally:
        _exit.stop_watching()
    assert len(flushed) == 1


async def test_the_lifespan_flush_has_nothing_to_do_unconfigured() -> None:
    from obskit._web.asgi import _flush_before_exit

    await _flush_before_exit()
    assert _exit._deadline is None


def test_a_failing_lifespan_step_is_reported_not_raised(swallow_internal_errors: None) -> None:
    from obskit._web.asgi import _guarded

    _guarded(lambda: 1 / 0)


def test_no_watchdog_without_a_shutdown_to_run() -> None:
    before = threading.active_count()
    _exit._start_watchdog(signal.SIGTERM)
    assert threading.active_count() == before


def test_a_failing_shutdown_still_ends_by_the_signal(
    swallow_internal_errors: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[int] = []
    monkeypatch.setattr(_exit.os, "kill", lambda pid, signum: sent.append(signum))

    def broken() -> None:
        raise RuntimeError("bug")

    _exit._end_by_signal(signal.SIGTERM, broken)
    assert sent == [signal.SIGTERM]


def test_a_handler_replaced_since_is_not_put_back(foreign_sigterm: list[int]) -> None:
    obskit.configure(**QUIET)

    def newer(signum: int, frame: object) -> None:
        return None

    signal.signal(signal.SIGTERM, newer)
    obskit.shutdown()
    assert signal.getsignal(signal.SIGTERM) is newer


async def test_a_failed_startup_passes_through_untouched() -> None:
    from starlette.applications import Starlette

    app = Starlette()
    obskit.configure(app, **QUIET)
    sent: list[dict[str, Any]] = []

    async def failing_app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    from obskit._web.asgi import ObskitASGIMiddleware

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    middleware = ObskitASGIMiddleware(failing_app, app._obskit_hub)  # type: ignore[attr-defined]
    await middleware({"type": "lifespan"}, receive, send)
    assert sent == [{"type": "lifespan.startup.failed", "message": "no database"}]
    assert not _exit._lifespan_flushes


@pytest.mark.parametrize("shutdown", [None, "broken"])
def test_the_default_action_handler_dies_by_the_signal_whatever_shutdown_does(
    shutdown: str | None, swallow_internal_errors: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> None:
        raise RuntimeError("bug")

    sent: list[int] = []
    monkeypatch.setattr(_exit, "_shutdown", broken if shutdown else None)
    monkeypatch.setattr(_exit.os, "kill", lambda pid, signum: sent.append(signum))
    previous = signal.getsignal(signal.SIGTERM)
    try:
        _exit._terminate(signal.SIGTERM, None)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert sent == [signal.SIGTERM]


async def test_a_failing_lifespan_flush_is_reported_not_raised(
    swallow_internal_errors: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from obskit._web.asgi import _flush_before_exit

    def broken() -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(_exit, "flush_for_exit", broken)
    await _flush_before_exit()


def test_sigint_is_chained_only_in_front_of_a_server_that_stops_on_it() -> None:
    server = Server()

    def application_handler(signum: int, frame: object) -> None:
        return None

    previous = signal.signal(signal.SIGINT, application_handler)  # asyncio.run's, say
    try:
        obskit.configure(**QUIET)
        assert signal.getsignal(signal.SIGINT) is application_handler
        obskit.shutdown()
        signal.signal(signal.SIGINT, server.handle_exit)
        obskit.configure(**QUIET)
        chained = signal.getsignal(signal.SIGINT)
        chained(signal.SIGINT, None)  # type: ignore[operator]
        assert server.seen == [signal.SIGINT]
        assert not _exit.exiting()  # a program may go on after SIGINT
        obskit.shutdown()
        assert signal.getsignal(signal.SIGINT) == server.handle_exit
    finally:
        signal.signal(signal.SIGINT, previous)
