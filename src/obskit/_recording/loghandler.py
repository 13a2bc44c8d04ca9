"""The root-logger handler obskit installs, and the standard output it writes to.

Part of the recording layer (with ``obskit.logging``'s formatters, ``obskit._recording.logbuffer``'s
runs of access lines): the web layer writes access lines straight through it, and ``configure()``
installs it.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

from obskit._recording.logbuffer import DeferredLines
from obskit._recording.store import count_dropped

__all__ = ["ObskitHandler", "StdoutProxy"]


class ObskitHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root-logger handler obskit installs; recognised (and replaced) by type.

    When the reader of its stream goes away (``app | head``), it stops writing instead of
    printing a "Logging error" traceback per record; what it no longer writes is counted in
    ``obskit_telemetry_dropped_total{signal="logs",reason="export_failed"}``.
    """

    #: True once a write or flush met a broken pipe.
    broken = False
    #: Access lines waiting to be written together (obskit._recording.logbuffer), or None when each
    #: line is written at once.
    deferred: DeferredLines | None = None

    def defer_access_lines(
        self, interval: float, render: Callable[[logging.Handler, tuple[Any, ...]], str]
    ) -> None:
        """Write access lines in runs, each waiting at most ``interval`` seconds (0: at once).

        ``render`` makes a kept line's text (the web layer's ``render_kept_line``); it is given
        by ``configure()``, so that this layer does not import the one above it.
        """
        if interval > 0:
            self.deferred = DeferredLines(self.lock, interval, self._write_lines, partial(render, self))

    def defers(self) -> bool:
        """Whether an access line may wait now: runs are on and the stream is not a terminal."""
        stream = self.stream
        return self.deferred is not None and not (isinstance(stream, StdoutProxy) and stream.interactive())

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record (after the access lines waiting), unless the pipe is broken."""
        if self.deferred is not None and len(self.deferred):
            self.deferred.write_locked()  # handle() holds the lock
        if self.broken:
            _count_dropped_log()
            return
        super().emit(record)

    def _write_lines(self, lines: list[str]) -> None:
        """Write lines in one go (lock held); a broken pipe drops them, counted."""
        if self.broken:
            _count_dropped_log(len(lines))
            return
        try:
            self.stream.write(self.terminator.join(lines) + self.terminator)
            self._flush_stream()
        except BrokenPipeError:
            self.broken = True
            _count_dropped_log(len(lines))
        except Exception:
            self.handleError(logging.makeLogRecord({"name": "http.access", "msg": lines[0]}))

    def flush(self) -> None:
        """Write the access lines waiting, then flush (a stream closed at interpreter exit is ignored)."""
        if self.deferred is not None and len(self.deferred):
            self.deferred.write()
        self._flush_stream()

    def _flush_stream(self) -> None:
        try:
            super().flush()
        except ValueError:
            pass
        except BrokenPipeError:
            self.broken = True

    def close(self) -> None:
        """Write the access lines waiting and stop their thread."""
        if self.deferred is not None:
            self.deferred.close()
        super().close()

    def handleError(self, record: logging.LogRecord) -> None:
        """A broken pipe ends the writing quietly; any other error is reported as logging does."""
        if isinstance(sys.exc_info()[1], BrokenPipeError):
            self.broken = True
            _count_dropped_log()
            return
        super().handleError(record)


def _count_dropped_log(count: int = 1) -> None:
    count_dropped("logs", "export_failed", count)


class StdoutProxy:
    """Writes to whatever ``sys.stdout`` is at write time (pytest's capture swaps it)."""

    _seen: object = None
    _tty = False

    def write(self, text: str) -> int:
        try:
            return sys.stdout.write(text)
        except UnicodeEncodeError:
            # A lone surrogate (an undecodable file name, say) or a narrow stdout encoding:
            # write the same JSON with every non-ASCII character escaped instead of losing it.
            return sys.stdout.write(_ascii_json(text))

    def flush(self) -> None:
        sys.stdout.flush()

    def interactive(self) -> bool:
        """Whether ``sys.stdout`` is a terminal (asked once per stream object)."""
        stream = sys.stdout
        if stream is not self._seen:
            try:
                tty = bool(stream.isatty())
            except Exception:  # closed, or a replacement without isatty
                tty = False
            self._seen, self._tty = stream, tty
        return self._tty


def _ascii_json(text: str) -> str:
    try:
        return json.dumps(json.loads(text), ensure_ascii=True, separators=(",", ":")) + "\n"
    except ValueError:  # console format: not JSON
        return text.encode("ascii", "backslashreplace").decode("ascii")
