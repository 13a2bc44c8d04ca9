"""Access-log lines written in runs instead of one write (and flush) each.

When obskit's console handler alone writes the access log and its stream is not a terminal, each
request's ``http.access`` line is rendered at once (its own context, ids and time) and kept; the
kept lines go out together, in one write:

- when :data:`BATCH` lines are waiting;
- before any other record the handler writes, so that the stream keeps the order of events;
- before an ERROR access line, which is written at once;
- when the oldest has waited ``access_log_flush_interval`` seconds (a background thread that
  sleeps while nothing waits);
- on the handler's ``flush()`` and ``close()`` (``shutdown()``, exit, reconfiguring) and before a
  fork, so that a child does not write its parent's lines again.

This is nginx's ``access_log ... buffer= flush=``: one system call and one trip through the I/O
stack per run instead of per request takes about 100,000 instructions and a fifth of obskit's
extra cache misses off each request (docs/performance.md), and the process reading the logs
(a container runtime, a log shipper) is woken once per run. On a terminal every line is written
at once, as Python line-buffers stdout there; ``access_log_flush_interval=0`` does the same
everywhere. A hard kill (``SIGKILL``, out of memory) loses at most the last interval's lines.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from obskit._core.errors import report_internal_error

__all__ = ["BATCH", "DeferredLines"]

#: Lines kept at most before they are written (about 30 KB of JSON).
BATCH = 64

#: Every live buffer, for the fork hooks.
_BUFFERS: weakref.WeakSet[DeferredLines] = weakref.WeakSet()


class DeferredLines:
    """The access lines waiting in one handler, and the thread that writes them when they are old.

    ``write(lines)`` writes lines to the stream; it is called with the handler's lock held, as is
    :meth:`write_locked`.
    """

    def __init__(
        self,
        lock: Any,
        interval: float,
        write: Callable[[list[str]], None],
        render: Callable[[Any], str] | None = None,
    ) -> None:
        self.interval = interval
        self._lock = lock
        self._write = write
        self._render = render
        self._pending: deque[str] = deque()
        self._start_lock = threading.Lock()
        self._new_thread_state()
        _BUFFERS.add(self)

    def _new_thread_state(self) -> None:
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()  # set when a line arrives in an empty buffer
        self._stop = threading.Event()  # cuts the thread's wait short at close

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, line: Any) -> None:
        """Keep one line (a ``str``, or what ``render`` turns into one); write the run when it is full."""
        pending = self._pending
        pending.append(line)
        waiting = len(pending)
        if waiting == 1:
            self._start_timer()
        elif waiting >= BATCH:
            self.write()

    def write(self) -> None:
        """Write every waiting line, under the handler's lock."""
        self._lock.acquire()
        try:
            self.write_locked()
        finally:
            self._lock.release()

    def write_locked(self) -> None:
        """:meth:`write`, for a caller that holds the handler's lock."""
        pending = self._pending
        if not pending:
            return
        lines = []
        render = self._render
        # Lines other threads add meanwhile are taken too; one writer at a time (the lock) keeps
        # them in the order they were added.
        while pending:
            try:
                line = pending.popleft()
            except IndexError:  # pragma: no cover - emptied by a fork hook in between
                break
            if line.__class__ is not str and render is not None:
                try:
                    line = render(line)
                except Exception as exc:  # a line that cannot be rendered is lost, not the run
                    report_internal_error("access log rendering", exc)
                    continue
            lines.append(line)
        if lines:
            self._write(lines)

    def close(self) -> None:
        """Write what waits and stop the thread (it ends by itself; nothing waits for it).

        Not final: ``logging.shutdown()``, which ``logging.config.dictConfig`` runs on every
        existing handler (uvicorn and gunicorn configure logging after the app is built), closes
        a handler that stays on the root logger; a later line starts a new thread.
        """
        with self._start_lock:
            self._stop.set()
            self._wake.set()
            self._new_thread_state()
        self.write()

    def _start_timer(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    thread = threading.Thread(target=self._run, name="obskit-access-log", daemon=True)
                    thread.start()
                    self._thread = thread
        self._wake.set()

    def _run(self) -> None:
        wake, stop = self._wake, self._stop
        while not stop.is_set():
            wake.wait()
            wake.clear()
            if stop.wait(self.interval):  # closed: close() wrote what waited
                return
            try:
                self.write()
            except Exception as exc:  # pragma: no cover - write_locked does not raise
                report_internal_error("access log", exc)

    def _before_fork(self) -> None:
        self.write()

    def _in_child(self) -> None:
        # The parent wrote its lines before forking; any that slipped in are the parent's.
        self._pending.clear()
        self._start_lock = threading.Lock()
        self._new_thread_state()


def _before_fork() -> None:
    for buffer in list(_BUFFERS):
        try:
            buffer._before_fork()
        except Exception as exc:
            report_internal_error("access log before fork", exc)


def _after_fork_in_child() -> None:
    for buffer in list(_BUFFERS):
        buffer._in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
