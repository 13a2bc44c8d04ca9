"""The process's exit: one deadline for all obskit flushes on the way out, and the signals announcing it.

obskit learns that the process is ending from one of: a SIGTERM/SIGINT its handler sees (its own
in a process with the default action, or chained in front of a server's), the ASGI lifespan
``shutdown`` message (obskit._web.asgi), or the interpreter's exit hook. The first of them starts the
exit's one budget, ``shutdown_timeout`` seconds; every later flush or shutdown of the same exit
gets what is left of it (:func:`remaining`), never a fresh one.

A server that restores the default SIGTERM action and raises the signal again once it has shut
down (uvicorn >= 0.29, also under gunicorn's ``UvicornWorker``) would kill the process before the
exit hook flushes. Where obskit's ASGI middleware saw the app start, it flushes at the lifespan
shutdown, before that. Otherwise (``configure()`` inside the lifespan, or without an app), when
obskit's handler chained in front of such a server's sees SIGTERM it blocks SIGTERM in the main
thread: the server's
re-raised signal stays pending there. A watchdog thread (started before the block, so SIGTERM
can reach it) sees it pending, shuts obskit down within the budget and sends SIGTERM again: the
process dies by it (exit status -15), as it would have without obskit, only after the flush.
Without /proc to watch, the process ends normally instead, the exit hook flushes and
:func:`end_exit` unblocks the signal, which then kills the process. The price: threads and child
processes started after the signal inherit the block, and code that runs after the server
returns (a few milliseconds before the watchdog notices) gets to run.

This module sits below the runtime: :func:`watch` is given the runtime's ``shutdown`` and
``flush`` functions instead of importing them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from obskit._core.errors import report_internal_error

__all__ = [
    "after_fork_in_child",
    "begin_exit",
    "end_exit",
    "exiting",
    "flush_for_exit",
    "lifespan_started",
    "remaining",
    "reset",
    "stop_watching",
    "unwatch",
    "watch",
    "watch_signals",
]

#: What the signal handlers do once they have noted the exit: set by :func:`watch`.
_timeout = 5.0
_shutdown: Callable[[], None] | None = None
_flush: Callable[[float], None] | None = None

#: The exit under way: its deadline (monotonic), whether it is certain (SIGTERM, the exit hook)
#: or only probable (an ASGI lifespan shutdown, which a test client also sends; SIGINT), and
#: whether a flush already had its share of it.
_deadline: float | None = None
_budget = 5.0
_certain = False
_flushed = False

#: Signals blocked in the main thread by the chained SIGTERM handler (see the module docstring).
_held: set[int] = set()
#: Whether obskit's ASGI middleware saw the app start: it will flush at the lifespan shutdown,
#: so the chained handler need not hold SIGTERM (and the process ends exactly as without obskit).
_lifespan_flushes = False
#: (signal number, obskit's handler, the handler it replaced) for each handler obskit installed.
_mine: list[tuple[int, Any, Any]] = []

_HANDLED = ("SIGTERM", "SIGINT")


# -- the budget --------------------------------------------------------------------------------


def begin_exit(*, certain: bool = True) -> float:
    """Note that the process is exiting; return the exit's deadline (monotonic seconds).

    The first call starts the budget; later ones return the same deadline. A probable exit
    (lifespan shutdown) whose deadline passed without the process ending was not one: the next
    call starts afresh.
    """
    global _deadline, _budget, _certain, _flushed
    now = time.monotonic()
    if _deadline is None or (not _certain and now > _deadline):
        _deadline, _budget, _flushed = now + _timeout, _timeout, False
    _certain = _certain or certain
    return _deadline


def exiting() -> bool:
    """Whether the process is certainly exiting (SIGTERM was seen, or the exit hook runs)."""
    return _deadline is not None and _certain


def remaining(cap: float | None = None) -> float:
    """Seconds a flush or shutdown of the exit under way may take (``cap`` without one).

    A margin (a tenth of the budget, at most 0.2 s) is kept for the interpreter's own teardown.
    The exit's first flush gets at least a quarter of the budget (at most 1 s), even when the
    server's own graceful shutdown (waiting for long requests) used all of it: otherwise the
    telemetry of exactly those requests would be lost.
    """
    global _flushed
    if _deadline is None:
        return cap if cap is not None else _timeout
    now = time.monotonic()
    left = _deadline - min(0.2, _budget / 10) - now
    if not _flushed:
        left = max(left, min(1.0, _budget / 4))
        _flushed = True
    return max(0.0, left if cap is None else min(cap, left))


def end_exit() -> None:
    """The exit hook's last step: put back the handlers, then let a held signal end the process."""
    if not _held:
        return
    _flush_stdio()
    unwatch()
    held = set(_held)
    _held.clear()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, held)  # a pending SIGTERM kills the process here


def _flush_stdio() -> None:
    """What the process printed is written before a signal ends it (its buffers are not)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # closed or replaced: nothing to save
            stream.flush()


def after_fork_in_child() -> None:
    """A forked child is not exiting with its parent, and must not inherit a blocked SIGTERM."""
    reset()


def reset() -> None:
    """No exit under way and no signal held (a forked child; obskit's own tests)."""
    global _deadline, _certain, _flushed, _lifespan_flushes
    _deadline, _certain, _flushed, _lifespan_flushes = None, False, False, False
    if _held:
        held = set(_held)
        _held.clear()
        with contextlib.suppress(OSError, ValueError):  # pragma: no cover - refused in the child
            signal.pthread_sigmask(signal.SIG_UNBLOCK, held)


# -- flushing ------------------------------------------------------------------------------------


def flush_for_exit() -> tuple[threading.Event, float] | None:
    """Start flushing every pipeline for a probable exit: an event set when done, and the time allowed.

    The flush runs in a daemon thread (never the event loop's, never an executor that the
    event loop joins at its close), bounded by what is left of the exit's budget. None when
    nothing is configured.
    """
    flush = _flush
    if flush is None:
        return None
    begin_exit(certain=False)
    timeout = remaining()
    done = threading.Event()

    def run() -> None:
        try:
            flush(timeout)
        except Exception as exc:
            report_internal_error("flush at exit", exc)
        finally:
            done.set()

    threading.Thread(target=run, name="obskit-exit-flush", daemon=True).start()
    return done, timeout


# -- signals -------------------------------------------------------------------------------------


def lifespan_started() -> None:
    """The ASGI app started under obskit's middleware: chain onto the server's handlers (now set).

    The middleware flushes at the lifespan shutdown, so SIGTERM is not held from now on.
    """
    global _lifespan_flushes, _deadline, _flushed
    _lifespan_flushes = True
    if _deadline is not None and not _certain:
        # An app starting again (a test client's next lifespan): the probable exit of the last
        # lifespan shutdown was not one; the next gets the whole budget.
        _deadline, _flushed = None, False
    watch_signals()


def watch(timeout: float, shutdown: Callable[[], None], flush: Callable[[float], None]) -> None:
    """Record what an exit runs, and put obskit's handlers on SIGTERM and SIGINT (see watch_signals)."""
    global _timeout, _shutdown, _flush
    _timeout, _shutdown, _flush = timeout, shutdown, flush
    watch_signals()


def watch_signals() -> None:
    """Put obskit's handler on SIGTERM (and SIGINT) where the exit would otherwise go unseen.

    - SIGTERM with the default action: obskit's handler flushes within the budget, then dies by
      SIGTERM as the default action would (Python's default skips exit hooks).
    - A SIGTERM handler that is not obskit's (a server's, installed before obskit was configured:
      app factory, lifespan, worker hooks), and uvicorn's SIGINT handler: chained; obskit notes
      the exit, then calls it.
    - Anything else (ignored, set from C, SIGINT's KeyboardInterrupt or asyncio.run's SIGINT
      handler, which a program may catch and go on after) is left alone. Only from the main
      thread, where Python runs signal handlers.

    Called by configure() and again when the ASGI lifespan starts (the server's own handlers
    are in place by then).
    """
    if _shutdown is None or threading.current_thread() is not threading.main_thread():
        return
    for name in _HANDLED:
        signum = getattr(signal, name, None)
        if signum is not None:
            try:
                _watch_one(signum)
            except (ValueError, OSError) as exc:  # not allowed here
                report_internal_error(f"{name} handler", exc)


def _watch_one(signum: int) -> None:
    current = signal.getsignal(signum)
    if current is _terminate or isinstance(current, _Chained):
        return
    if current is signal.SIG_DFL and signum == signal.SIGTERM:
        handler: Any = _terminate
    elif callable(current) and (signum == signal.SIGTERM or _reasserting(current)):
        handler = _Chained(current)
    else:
        return
    signal.signal(signum, handler)
    _mine.append((signum, handler, current))


def stop_watching() -> None:
    """shutdown(): forget the runtime's functions and put back the handlers obskit replaced."""
    global _shutdown, _flush
    _shutdown = _flush = None
    unwatch()


def unwatch() -> None:
    """Put back, newest first, each handler obskit replaced and that is still obskit's."""
    if threading.current_thread() is not threading.main_thread():
        _mine.clear()
        return
    while _mine:
        signum, handler, previous = _mine.pop()
        try:
            if signal.getsignal(signum) is handler:
                signal.signal(signum, previous)
        except (ValueError, OSError) as exc:  # pragma: no cover - the main thread may set handlers
            report_internal_error("restore signal handler", exc)


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM with nobody else handling it: flush within the budget, then die by the signal."""
    try:
        begin_exit()
        if _shutdown is not None:
            _shutdown()
    except Exception as exc:
        report_internal_error("shutdown on SIGTERM", exc)
    finally:
        _flush_stdio()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


class _Chained:
    """obskit's handler in front of a server's: notes the exit, holds SIGTERM, calls the server's.

    SIGTERM is held only in front of a server that raises the signal again once it has shut
    down (:data:`REASSERTING`), and only when no lifespan flush is coming: the hold's side
    effects (see the module docstring) are paid only where the exit would otherwise be lost.
    """

    __slots__ = ("holds", "previous")

    def __init__(self, previous: Callable[[int, FrameType | None], Any]) -> None:
        self.previous = previous
        self.holds = _reasserting(previous)

    def __call__(self, signum: int, frame: FrameType | None) -> Any:
        try:
            # SIGTERM ends the process; SIGINT may be caught and the program go on.
            begin_exit(certain=signum == signal.SIGTERM)
            if self.holds and signum == signal.SIGTERM and _hold_needed():
                _held.add(signum)
                _start_watchdog(signum)  # before the block: the watchdog must be able to get SIGTERM
                signal.pthread_sigmask(signal.SIG_BLOCK, {signum})
        except Exception as exc:
            report_internal_error("signal handler", exc)
        return self.previous(signum, frame)


def _reasserting(handler: object) -> bool:
    """Whether ``handler`` is a method of a server that raises the signal again (:data:`REASSERTING`)."""
    owner = getattr(handler, "__self__", None)
    return owner is not None and type(owner).__module__.startswith(REASSERTING)


def _hold_needed() -> bool:
    """Whether holding SIGTERM is what saves the exit: configured, no lifespan flush, not yet held."""
    return _shutdown is not None and not _lifespan_flushes and signal.SIGTERM not in _held


#: Modules of the servers whose signal handler is a method of an object that, once the server
#: has shut down, restores the handlers it found and raises the signal again: uvicorn's
#: ``Server.capture_signals`` (0.29 and later; also under gunicorn's ``UvicornWorker``).
REASSERTING = ("uvicorn.",)


def _start_watchdog(signum: int) -> None:
    """Watch for the server's re-raised signal, held pending in the main thread: then end the exit.

    The server has shut down by then; without obskit the signal would have killed the process.
    The watchdog shuts obskit down (flushing within what is left of the budget) and sends the
    signal again, to the process: it reaches a thread that does not block it (the watchdog, at
    least), and the process dies by it as it would have. Whatever the main thread does meanwhile
    (waiting for a non-daemon thread that never ends, say) cannot hold the exit up. Linux only
    (the main thread's pending signals are read from /proc); elsewhere the exit hook does this.
    """
    main = threading.main_thread().native_id
    status = f"/proc/self/task/{main}/status"
    shutdown = _shutdown  # kept: the exit hook's shutdown() forgets it before it has finished
    if not os.path.exists(status) or shutdown is None:
        return

    def watch_pending() -> None:
        while signum in _held:
            if _pending(status, signum):
                _end_by_signal(signum, shutdown)
                return
            time.sleep(0.02)

    threading.Thread(target=watch_pending, name="obskit-exit-watchdog", daemon=True).start()


def _end_by_signal(signum: int, shutdown: Callable[[], None]) -> None:
    try:
        shutdown()  # waits for one the exit hook may be running (the runtime's lock), then does nothing
    except Exception as exc:
        report_internal_error("shutdown at exit", exc)
    finally:
        _flush_stdio()
        os.kill(os.getpid(), signum)  # this thread does not block it


def _pending(status: str, signum: int) -> bool:
    """Whether ``signum`` is pending for the thread whose /proc status file this is."""
    try:
        with open(status) as lines:
            for line in lines:
                if line.startswith("SigPnd:"):
                    return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except (OSError, ValueError):
        pass
    return False
