r"""Ended spans made safe to export, once, on the export thread (so user-set values are covered too).

What a span carries when it ends (its name, attributes, events with the ``exception.message`` and
``exception.stacktrace`` of a recorded exception, links, status description) is cleaned by one
:class:`SpanCleaner` shared by every span exporter of a configuration:

- the values of sensitive keys are ``[REDACTED]`` (at any nesting depth);
- credentials in free text are hidden (:meth:`Redactor.scrub`), and URL attributes (``url.full``,
  ``http.url``, ``url.query``...) lose their userinfo and sensitive query values whatever
  ``redact_text`` says (:meth:`Redactor.url`);
- a value no exporter can encode loses only itself (:func:`safe_value`): a lone surrogate becomes
  its ``\udXXX`` escape, an int outside OTLP's signed 64 bits its decimal text.

The first exporter to see a span cleans it in place and marks it; the others find the mark, so
the work is done once per span however many exporters there are. Strings are cleaned through a
bounded cache, so a value seen before (a route, a method, a job name) costs one dict lookup.

Most spans need nothing: their attributes are those earlier spans had (a method, a route, a
status code). The cleaner remembers the (key, value) attribute pairs it found needing nothing,
and passes over a span without events, links or status description, with a clean name and plain
``str``/``int``/``bool``/``float`` attribute values all remembered, after one set comparison run
in C, whatever the number of attributes; only pairs not seen before are checked one by one (see
:meth:`SpanCleaner.clean`). Everything else is walked in full, as before.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from itertools import filterfalse
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import Link, Status, StatusCode

from obskit._core.errors import report_internal_error
from obskit._core.redact import REDACTED, Redactor, safe_text, safe_value

__all__ = ["QUERY_KEYS", "URL_KEYS", "RedactingSpanExporter", "SpanCleaner"]

#: Attributes holding a whole URL (current and older semantic conventions, server and client).
URL_KEYS = frozenset({"url.full", "http.url", "http.target", "url.original"})
#: Attributes holding a URL's query alone.
QUERY_KEYS = frozenset({"url.query"})
_URLISH_KEYS = URL_KEYS | QUERY_KEYS
_MISS: Any = object()
#: The mark a cleaned span carries (set on the span object; read by the other exporters).
_MARK = "_obskit_clean"
_CACHE_LIMIT = 4096
#: Longer strings (stack traces, bodies) are cleaned each time rather than kept in the cache.
_CACHED_LENGTH = 512
_MAX_DEPTH = 32
_INT64 = (-(2**63), 2**63)
#: The value classes whose (key, value) pairs the cleaner remembers as needing nothing (a float
#: needs nothing whatever its value, so it is never remembered, only let through). Exact classes:
#: a subclass (an enum) equal to a remembered value is cleaned through its ``str()``, so it must
#: not take the quick way.
_PLAIN = frozenset({str, int, bool, float})
#: Fewer attributes than this are walked rather than filtered through the remembered pairs first
#: (the filter costs more than it saves on a few; :meth:`SpanCleaner.clean` remembers them).
_FILTERED_FROM = 4
#: Serialises cleaning between the exporters' threads: a span is cleaned by one of them only.
_LOCK = threading.Lock()
_fork_hook = False


def _new_lock_in_child() -> None:  # pragma: no cover - runs in a forked child (tested there)
    """A forked child starts with a free lock (an export thread may have held it at the fork)."""
    global _LOCK
    _LOCK = threading.Lock()


def _watch_forks() -> None:
    """Install :func:`_new_lock_in_child` once, when the first cleaner is made (not at import)."""
    global _fork_hook
    if not _fork_hook and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_new_lock_in_child)
        _fork_hook = True


class SpanCleaner:
    """Cleans ended spans in place for one redactor (see the module doc)."""

    __slots__ = ("_clean", "_pending", "_texts", "_urls", "redactor")

    def __init__(self, redactor: Redactor) -> None:
        _watch_forks()
        self.redactor = redactor
        #: Attributes (key, value) found needing nothing (see :meth:`attributes`).
        self._clean: set[tuple[str, Any]] = set()
        #: A span's attributes and their pairs not found needing nothing, from :meth:`clean`'s
        #: quick check to :meth:`attributes` (the span is cleaned next).
        self._pending: tuple[Mapping[str, Any], list[tuple[str, Any]]] | None = None
        #: text -> its cleaned form, or None when cleaning leaves it as it is.
        self._texts: dict[str, str | None] = {}
        #: URL -> its cleaned form.
        self._urls: dict[str, str] = {}

    def clean(self, spans: Iterable[ReadableSpan]) -> None:
        """Clean every span not cleaned yet; a span that cannot be cleaned loses its attributes.

        A span that needs nothing is passed over first, without being marked (the mark costs
        more than finding that again, for a second exporter): a span without events, links or
        status description, whose name was cleaned before and found clean, whose attribute
        values are all plain (:data:`_PLAIN`) and whose every (key, value) pair was found
        needing nothing before (one set comparison, in C; see :meth:`attributes`) or is found
        so now (:meth:`_fine`, for the pairs not seen before). This check is written inline and
        reads the private fields directly: a method call, or the properties and ``__len__`` of
        ``ReadableSpan``, ``BoundedList`` and ``Status``, would cost more than all the rest of
        it. :data:`_QUICK` says those fields are where it reads them.
        """
        texts = self._texts
        clean = self._clean
        known = clean.__contains__
        plain = _PLAIN.issuperset
        quick = _QUICK
        events: Any
        links: Any
        attributes: Any
        with _LOCK:
            for span in spans:
                if quick:
                    try:
                        events, links, attributes = span._events, span._links, span._attributes
                        if events.__class__ is BoundedList:
                            events = events._dq  # type: ignore[attr-defined]  # private (_QUICK)
                        if links.__class__ is BoundedList:
                            links = links._dq  # type: ignore[attr-defined]  # private (_QUICK)
                        if attributes.__class__ is BoundedAttributes:
                            attributes = attributes._dict
                        if (
                            not events
                            and not links
                            and not span._status._description
                            and texts.get(span._name, _MISS) is None
                        ):
                            if not attributes:
                                continue
                            if plain(map(type, attributes.values())):
                                if attributes.items() <= clean:
                                    continue
                                unknown = [*filterfalse(known, attributes.items())]
                                if self._fine(unknown):
                                    continue
                                self._pending = (attributes, unknown)  # for span(): not filtered twice
                    except Exception:  # pragma: no cover - an unusual span: the full walk decides
                        pass
                if not getattr(span, _MARK, False):
                    try:
                        self.span(span)
                    except Exception as exc:  # pragma: no cover - every value has a safe form
                        report_internal_error("span redaction", exc)
                        span._attributes, span._events, span._links = {}, (), ()  # nothing unchecked leaves
                        span._status = Status(span._status.status_code)
                    setattr(span, _MARK, True)
                    self._pending = None

    def _fine(self, pairs: list[tuple[str, Any]]) -> bool:
        """Whether none of ``pairs`` (plain values, not seen before) needs anything.

        Each is checked by the rules of :meth:`attributes`' loop and remembered when it needs
        nothing; one that needs something (or is not checked here: a key that is not ASCII, a
        long string) leaves the span to the full cleaning.
        """
        fine = True
        found = []
        for pair in pairs:
            key, value = pair
            cls = value.__class__
            if key.__class__ is not str or not key.isascii() or self.redactor.is_sensitive(key):
                fine = False
            elif cls is str:
                if len(value) <= _CACHED_LENGTH and self.value(key, value) == value:
                    found.append(pair)
                else:
                    fine = False
            elif cls is not int or _INT64[0] <= value < _INT64[1]:
                if cls is not float:
                    found.append(pair)
            else:
                fine = False
        self._remember(found)
        return fine

    def _remember(self, pairs: list[tuple[str, Any]]) -> None:
        """Remember ``pairs`` as needing nothing, within :data:`_CACHE_LIMIT`."""
        if pairs:
            clean = self._clean
            if len(clean) + len(pairs) > _CACHE_LIMIT:
                clean.clear()  # values come and go (ids, sizes); keep the recent ones
            clean.update(pairs)

    def span(self, span: ReadableSpan) -> None:
        """Clean one ended span's name, attributes, events, links and status description, in place."""
        name = span._name
        if name.__class__ is str and self._texts.get(name, _MISS) is not None:
            span._name = self.text(name)
        attributes = span._attributes
        if attributes:
            cleaned = self.attributes(attributes)
            if cleaned is not attributes:
                span._attributes = _like(attributes, cleaned)
        events = span._events
        if events:
            new_events = [self._event(event) for event in events]
            if any(new is not old for new, old in zip(new_events, events, strict=True)):
                span._events = _like_list(events, new_events)
        links = span._links
        if links:
            new_links = [self._link(link) for link in links]
            if any(new is not old for new, old in zip(new_links, links, strict=True)):
                span._links = _like_list(links, new_links)
        status = span._status
        description = status.description
        if description:
            cleaned_description = self.text(description)
            if cleaned_description is not description:
                span._status = Status(status.status_code, cleaned_description)

    def attributes(
        self, attributes: Mapping[str, Any], depth: int = 0, *, remember: bool = True
    ) -> Mapping[str, Any]:
        """``attributes`` itself when nothing needs hiding or replacing, else a cleaned copy.

        With ``remember`` (a span's own attributes; not nested ones, nor an event's, whose
        values are mostly new), :data:`_FILTERED_FROM` of them or more, and plain values only
        (:data:`_PLAIN`), the (key, value) pairs found needing nothing before are skipped in C
        and the others, once found needing nothing, remembered (floats, too varied, and long
        strings aside; the memory is bounded as the string cache is). The loop is written for
        the common case (an ASCII key that is not sensitive, a str value seen before, or a
        number), which costs two dict lookups per attribute.
        """
        # BoundedAttributes' own dict: its items() goes through the ABC and a lock per value.
        items: Mapping[str, Any] = (
            attributes._dict if attributes.__class__ is BoundedAttributes else attributes
        )
        out: dict[str, Any] | None = None
        known = self.redactor._cache  # key -> sensitive, filled by is_sensitive
        texts = self._texts
        clean = self._clean
        pairs: Iterable[tuple[Any, Any]] = items.items()
        found: list[tuple[str, Any]] | None = None
        pending = self._pending
        if pending is not None and pending[0] is items:
            self._pending = None
            pairs, found = pending[1], []
        elif (
            remember
            and not depth
            and len(items) >= _FILTERED_FROM
            and _PLAIN.issuperset(map(type, items.values()))
        ):
            pairs = filterfalse(clean.__contains__, pairs)
            found = []
        for key, value in pairs:
            cls = value.__class__
            if key.__class__ is not str or not key.isascii():
                safe_key: str = safe_text(key) if key.__class__ is str else str(safe_value(key))
                cleaned = self._one(safe_key, value, depth)
            else:
                safe_key = key
                sensitive = known.get(key)
                if sensitive is None:
                    sensitive = self.redactor.is_sensitive(key)
                if sensitive or depth > _MAX_DEPTH:
                    cleaned = REDACTED
                elif cls is str and key not in _URLISH_KEYS:
                    cleaned = texts.get(value, _MISS)
                    if cleaned is None:
                        if found is not None:  # in the text cache: not longer than the limit
                            found.append((key, value))
                        continue
                    if cleaned is _MISS:
                        cleaned = self.text(value)
                elif (cls is int and _INT64[0] <= value < _INT64[1]) or cls is float or cls is bool:
                    if found is not None and cls is not float:
                        found.append((key, value))
                    continue
                else:
                    cleaned = self.value(key, value, depth)
            if safe_key is not key or (cleaned is not value and cleaned != value):
                if out is None:
                    out = dict(items)
                if safe_key is not key:
                    del out[key]
                out[safe_key] = cleaned
            elif found is not None and cls is not float and (cls is not str or len(value) <= _CACHED_LENGTH):
                found.append((key, value))
        if found:
            self._remember(found)
        return attributes if out is None else out

    def _one(self, key: str, value: Any, depth: int) -> Any:
        if self.redactor.is_sensitive(key) or depth > _MAX_DEPTH:
            return REDACTED
        return self.value(key, value, depth)

    def value(self, key: str, value: Any, depth: int = 0) -> Any:
        """One attribute value as it may leave: redacted, scrubbed, or in its safe form."""
        cls = value.__class__
        if cls is str:
            if key in URL_KEYS:
                return self._url(value)
            if key in QUERY_KEYS:
                return self.redactor.query(safe_text(value))
            return self.text(value)
        if cls is bool or cls is float or cls is bytes or value is None:
            return value
        if cls is int:
            return value if _INT64[0] <= value < _INT64[1] else safe_value(value)
        if cls is tuple or cls is list:
            items = [self.value(key, item, depth + 1) for item in value]
            changed = any(new is not old for new, old in zip(items, value, strict=True))
            return tuple(items) if changed else value
        if isinstance(value, Mapping):
            return self.attributes(value, depth + 1)
        replaced = safe_value(value)
        return self.text(replaced) if replaced.__class__ is str else replaced

    def text(self, text: str) -> str:
        """``text`` with credentials hidden and lone surrogates escaped (the same object if clean)."""
        texts = self._texts
        try:
            cleaned = texts[text]
        except KeyError:
            cleaned = self.redactor.scrub(safe_text(text))
            if cleaned is text:
                cleaned = None
            if len(text) <= _CACHED_LENGTH:
                if len(texts) >= _CACHE_LIMIT:
                    texts.clear()  # values come and go (ids in routes); keep the recent ones
                texts[text] = cleaned
        return text if cleaned is None else cleaned

    def _url(self, url: str) -> str:
        """``url`` without userinfo and sensitive query values, through a cache as :meth:`text`."""
        urls = self._urls
        cleaned = urls.get(url, _MISS)
        if cleaned is _MISS:
            cleaned = self.redactor.url(safe_text(url))
            if len(url) <= _CACHED_LENGTH:
                if len(urls) >= _CACHE_LIMIT:
                    urls.clear()
                urls[url] = cleaned
        return cleaned  # type: ignore[no-any-return]  # a str once filled

    def _event(self, event: Event) -> Event:
        attributes = event.attributes
        name = self.text(event.name)
        cleaned = self.attributes(attributes, remember=False) if attributes else attributes
        if cleaned is attributes and name is event.name:
            return event
        return Event(name, cleaned, event.timestamp)

    def _link(self, link: Link) -> Link:
        attributes = link.attributes
        cleaned = self.attributes(attributes, remember=False) if attributes else attributes
        return link if cleaned is attributes else Link(link.context, cleaned)


def _private_fields_found() -> bool:
    """Whether the fields the quick check reads are where it reads them (see :meth:`SpanCleaner.clean`).

    ``Status._description``, ``BoundedList._dq`` and ``BoundedAttributes._dict``: without them
    every span takes the full cleaning, which reads only what :class:`ReadableSpan` offers.
    """
    events: BoundedList[Any] = BoundedList(maxlen=None)
    return (
        getattr(Status(StatusCode.ERROR, "x"), "_description", None) == "x"
        and getattr(events, "_dq", None) is not None
        and isinstance(getattr(BoundedAttributes(attributes={"k": 1}), "_dict", None), dict)
    )


#: Whether :meth:`SpanCleaner.clean` may pass over a span that needs nothing (see above).
_QUICK = _private_fields_found()


def _like(old: Mapping[str, Any], values: Mapping[str, Any]) -> Mapping[str, Any]:
    """``values``, as BoundedAttributes only when ``old`` counted dropped attributes.

    Exporters read a span's attributes as a mapping, and building BoundedAttributes checks every
    value again: a plain dict is what a span without dropped attributes needs.
    """
    if isinstance(old, BoundedAttributes) and old.dropped:
        new = BoundedAttributes(maxlen=None, attributes=values, immutable=True)
        new.dropped = old.dropped
        return new
    return values


def _like_list(old: Sequence[Any], items: list[Any]) -> Sequence[Any]:
    """``items`` in the kind of sequence ``old`` was, with its count of dropped items."""
    if isinstance(old, BoundedList):
        new: BoundedList[Any] = BoundedList(maxlen=None)
        new.extend(items)
        new.dropped = old.dropped
        return new
    return tuple(items)


class RedactingSpanExporter(SpanExporter):
    """Wraps an exporter; cleans each batch before handing it on (off the request path).

    Exporters of one configuration share one :class:`SpanCleaner`: each span is cleaned once.
    """

    def __init__(self, inner: SpanExporter, redactor: Redactor | SpanCleaner) -> None:
        self.inner = inner
        self.cleaner = redactor if isinstance(redactor, SpanCleaner) else SpanCleaner(redactor)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Clean, then export through the wrapped exporter."""
        self.cleaner.clean(spans)
        return self.inner.export(spans)

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        return self.inner.force_flush(timeout_millis)
