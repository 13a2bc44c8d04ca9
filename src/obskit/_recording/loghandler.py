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
from typing import TYPE_CHECKING, Any

from obskit._recording.store import count_dropped

if TYPE_CHECKING:
    from obskit._recording.logbuffer import DeferredLines

__all__ = [
    "ConsoleCopyFilter",
    "ConsoleHandler",
    "ConsoleStream",
    "ObskitHandler",
    "handled_without_obskit",
    "is_console",
    "writes_to_console",
]


class ObskitHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root-logger handler obskit installs; recognised (and replaced) by type.

    When the reader of its stream goes away (``app | head``), it stops writing instead of
    printing a "Logging error" traceback per record; what it no longer writes is counted in
    ``obskit_telemetry_dropped_total{signal="logs",reason="export_failed"}``.
    """

    #: True once a write or flush met a broken pipe.
    broken = False
    #: Access lines waiting to be written together (obskit._recording.logbuffer), or None when each
    #: line is written at once (or no access line came yet).
    deferred: DeferredLines | None = None
    #: (interval, render) of the runs asked for, until the first access line makes :attr:`deferred`.
    _runs: tuple[float, Callable[[tuple[Any, ...]], str]] | None = None

    def defer_access_lines(
        self, interval: float, render: Callable[[logging.Handler, tuple[Any, ...]], str]
    ) -> None:
        """Write access lines in runs, each waiting at most ``interval`` seconds (0: at once).

        ``render`` makes a kept line's text (the web layer's ``render_kept_line``); it is given
        by ``configure()``, so that this layer does not import the one above it. The buffer (and
        its module) is made for the first access line: a process without a web app never has one.
        """
        if interval > 0:
            self._runs = (interval, partial(render, self))

    def defers(self) -> bool:
        """Whether an access line may wait now: runs are on and the stream is not a terminal."""
        if self.deferred is None:
            if self._runs is None:
                return False
            self._start_runs(*self._runs)
        stream = self.stream
        return not (isinstance(stream, ConsoleStream) and stream.interactive())

    def _start_runs(self, interval: float, render: Callable[[tuple[Any, ...]], str]) -> None:
        from obskit._recording.logbuffer import DeferredLines

        with self.lock:  # type: ignore[union-attr]
            if self.deferred is None:
                self.deferred = DeferredLines(self.lock, interval, self._write_lines, render)

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


class ConsoleStream:
    """Writes to whatever ``sys.stdout`` (or ``sys.stderr``) is at write time.

    Looked up at each write, as :data:`logging.lastResort` does: pytest's capture, or a test,
    swaps the stream and later closes the one it swapped in. A closed (or missing) stream drops
    the text, counted for ``signal`` when one is given, and never raises: there is nowhere left
    to write it, and an error written about it would go to a console that is gone as well.
    """

    _seen: object = None
    _tty = False

    def __init__(self, name: str = "stdout", signal: str | None = None) -> None:
        self.name = name
        self.signal = signal
        self._stdout = name == "stdout"

    def write(self, text: str) -> int:
        stream = sys.stdout if self._stdout else sys.stderr
        try:
            return stream.write(text)
        except UnicodeEncodeError:
            # A lone surrogate (an undecodable file name, say) or a narrow stdout encoding:
            # write the same JSON with every non-ASCII character escaped instead of losing it.
            return self._retry(stream, _ascii_json(text))
        except (ValueError, AttributeError):
            if not _gone(stream):
                raise
            self._dropped(text)
            return 0

    def _retry(self, stream: Any, text: str) -> int:
        try:
            return int(stream.write(text))
        except (ValueError, AttributeError):
            if not _gone(stream):
                raise
            self._dropped(text)
            return 0

    def _dropped(self, text: str) -> None:
        if self.signal is not None:
            count_dropped(self.signal, "export_failed", max(1, text.count("\n")))

    def flush(self) -> None:
        stream = sys.stdout if self._stdout else sys.stderr
        try:
            stream.flush()
        except (ValueError, AttributeError):
            if not _gone(stream):
                raise

    def interactive(self) -> bool:
        """Whether the stream is a terminal (asked once per stream object)."""
        stream = sys.stdout if self._stdout else sys.stderr
        if stream is not self._seen:
            try:
                tty = bool(stream.isatty())
            except Exception:  # closed, or a replacement without isatty
                tty = False
            self._seen, self._tty = stream, tty
        return self._tty


def _gone(stream: Any) -> bool:
    """Whether ``stream`` is closed or missing (``sys.stdout`` is None under pythonw)."""
    if stream is None:
        return True
    try:
        return bool(stream.closed)
    except Exception:  # no ``closed``: not a file we can tell about
        return False


class ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A plain stream handler on ``sys.stderr`` (or ``sys.stdout``) as it is at write time.

    For obskit's own warnings: a handler made with ``StreamHandler(sys.stderr)`` keeps the stream
    of that moment, which pytest closes at the end of a run, and every later line then prints a
    "Logging error" traceback instead.
    """

    def __init__(self, name: str = "stderr") -> None:
        super().__init__(ConsoleStream(name))


def is_console(stream: object) -> bool:
    """Whether ``stream`` writes to the process's console: standard output or standard error.

    The streams ``sys`` holds now and held at start, obskit's own console stream, a proxy
    resolving to one of them (Flask's ``wsgi_errors_stream``), and any file on descriptor 1 or 2.
    The two count as one console: a terminal, or a container's log, shows both.
    """
    resolve = getattr(stream, "_get_current_object", None)  # werkzeug's LocalProxy
    if resolve is not None:
        try:
            stream = resolve()
        except Exception:  # outside a request: Flask would use sys.stderr
            stream = sys.stderr
    if isinstance(stream, ConsoleStream):
        return True
    if stream is None:
        return False
    if any(stream is known for known in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)):
        return True
    inner = getattr(stream, "streams", None)  # gunicorn's wsgi.errors: its error log's streams
    if isinstance(inner, list | tuple) and inner:
        return all(is_console(each) for each in inner)
    try:
        return stream.fileno() in (1, 2)  # type: ignore[attr-defined]
    except Exception:  # closed, or not a file
        return False


def writes_to_console(handler: logging.Handler) -> bool:
    """Whether ``handler`` is someone's stream handler writing to the console (not a file's, not obskit's)."""
    return (
        isinstance(handler, logging.StreamHandler)
        and not isinstance(handler, logging.FileHandler | ObskitHandler)
        and is_console(handler.stream)
    )


class ConsoleCopyFilter(logging.Filter):
    """On a framework's own console handler: drops a record obskit's console handler writes too.

    Flask's ``default_handler`` writes the app logger's records to ``wsgi.errors``, which a real
    server points at the console (the development server at ``sys.stderr``, gunicorn at its error
    log's streams). Those records also reach obskit's handler on the root, so each would be on the
    console twice: once plain, once as JSON. This filter keeps the JSON line only; a ``wsgi.errors``
    elsewhere (a test client's buffer, a file) still gets its copy.
    """

    def __init__(self, handler: logging.StreamHandler) -> None:  # type: ignore[type-arg]
        super().__init__()
        self.handler = handler

    def filter(self, record: logging.LogRecord) -> bool:
        """False when the handler writes to the console and obskit's handler writes the record too."""
        try:
            return not (is_console(self.handler.stream) and _obskit_writes(record))
        except Exception:  # never in the way of the application's logging: keep the copy
            return True


def _obskit_writes(record: logging.LogRecord) -> bool:
    """Whether ``record`` reaches a working obskit console handler on the root, at its level."""
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None and logger is not logging.root:
        if not logger.propagate:
            return False
        logger = logger.parent
    return any(
        isinstance(handler, ObskitHandler) and not handler.broken and handler.level <= record.levelno
        for handler in logging.root.handlers
    )


def handled_without_obskit(logger: logging.Logger) -> bool:
    """Whether a handler other than obskit's handles ``logger``'s level (Flask's ``has_level_handler``).

    A framework that adds its own handler only when none would handle its logger's records
    (Flask) decides on this, as it would have without obskit.
    """
    level = logger.getEffectiveLevel()
    current: logging.Logger | None = logger
    while current is not None:
        if any(handler.level <= level and not _obskits(handler) for handler in current.handlers):
            return True
        if not current.propagate:
            return False
        current = current.parent
    return False


def _obskits(handler: logging.Handler) -> bool:
    """Whether obskit made ``handler`` (its console handler, its log exporter's, its test capture's)."""
    return type(handler).__module__.split(".", 1)[0] == "obskit"


def _ascii_json(text: str) -> str:
    try:
        return json.dumps(json.loads(text), ensure_ascii=True, separators=(",", ":")) + "\n"
    except ValueError:  # console format: not JSON
        return text.encode("ascii", "backslashreplace").decode("ascii")
