"""The exit: one budget, obskit's signal handlers in front of a server's, the flush at lifespan shutdown.

What a real server does with them (uvicorn's re-raised SIGTERM, gunicorn's workers) is proved
with real processes in tests/integration/test_exit_servers.py; these tests hold the pieces in one
process. The chained handler's SIGTERM block is replaced by a stub here: blocking SIGTERM in
the test runner's main thread would outlive the test.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

import obskit
from obskit import _exit, _runtime

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
    _runtime._flushers.append(lambda timeout: events.append(f"flushed within {timeout:.1f}"))
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
