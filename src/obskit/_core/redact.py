"""What may leave the process: one shared redaction list, credential patterns and safe values.

Every exported byte goes through here once, where the value is made (a log line, an exported log
record, a span's attributes and events, a label value): keys matching the sensitive key patterns
have their values hidden (:meth:`Redactor.is_sensitive`), credentials in free text are hidden by
value patterns (:meth:`Redactor.scrub`), and a value no exporter can encode (a lone surrogate, an
int past what can be printed, an object whose ``str()`` raises) loses only itself
(:func:`safe_text`, :func:`safe_value`), never its record or the batch it travels in.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

__all__ = [
    "DEFAULT_PATTERNS",
    "REDACTED",
    "Redactor",
    "redactor_for",
    "safe_json",
    "safe_text",
    "safe_value",
    "unrenderable",
]

REDACTED = "[REDACTED]"
DEFAULT_PATTERNS: tuple[str, ...] = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "connection_string",
    "connectionstring",
    "private_key",
    "credential",
    "accountkey",
    "account_key",
    "sharedaccesskey",
    "sharedaccesssignature",
)
#: Keys that are credentials only in free text (``...&sig=<SAS signature>``): matched whole.
_TEXT_ONLY_KEYS = frozenset({"sig", "pwd", "pass"})
#: Authorization schemes whose next word is a credential (``Authorization: Bearer eyJ...``).
_SCHEMES = ("bearer", "basic", "digest", "negotiate")
_CACHE_LIMIT = 4096
_MAX_DEPTH = 32
_V = TypeVar("_V")


def _contains(key: str, pattern: str) -> bool:
    start = key.find(pattern)
    while start >= 0:
        rest = key[start + len(pattern) :]
        if not rest[:1].isalpha():
            return True
        if pattern != "token" and rest[:1] == "s" and not rest[1:2].isalpha():
            return True
        start = key.find(pattern, start + 1)
    return False


class Redactor:
    """Decides, once per distinct key, whether its value must be hidden.

    A key matches when, lower-cased and with ``-`` read as ``_``, it contains a pattern that is
    not followed by another letter (a plural ``s`` aside): ``X-Auth-Token``, ``userPassword``,
    ``db_passwords`` and ``session_cookie_v2`` match; ``secretary`` does not. Token *counts*
    (``tokens``, ``prompt_tokens``) are data, not credentials, so ``token`` takes no plural. The
    answer is cached per key, so the cost on the hot path is one dict lookup.
    """

    __slots__ = (
        "_cache",
        "_extra",
        "_free",
        "_starts",
        "_text",
        "_text_cache",
        "_trigger",
        "patterns",
        "scrub",
        "scrubs_text",
        "user_patterns",
    )
    # Compiled on first use by __getattr__ (about 1 ms, which a process that never meets text
    # with "=" or ":" need not pay); a slot once set is read directly, with no check.
    _free: re.Pattern[str]
    _trigger: Callable[[str], re.Match[str] | None]
    _starts: Callable[[str, int], re.Match[str] | None]

    def __init__(
        self, extra: Iterable[str] = (), *, text: bool = True, value_patterns: Iterable[str] = ()
    ) -> None:
        self.patterns = tuple(dict.fromkeys((*DEFAULT_PATTERNS, *extra)))
        self._cache: dict[str, bool] = {}
        self._text_cache: dict[str, bool] = {}
        self._extra = tuple(re.compile(p) for p in value_patterns)
        #: Whether the free-text rules apply (``redact_text``).
        self._text = text
        #: ``scrub(text)``: ``text`` with credentials hidden (the same object when none is found).
        #: Whether :attr:`scrub` can change text at all (False: it returns its argument).
        self.scrubs_text = bool(text or self._extra)
        #: Whether the user's ``redact_patterns`` apply (they can match anything anywhere).
        self.user_patterns = bool(self._extra)
        self.scrub: Callable[[str], str] = self._scrub if self.scrubs_text else _same

    def __getattr__(self, name: str) -> Any:
        """Compile the free-text patterns the first time one is needed (unset slots only)."""
        if name not in ("_free", "_trigger", "_starts"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        self._free = _free_text(self.patterns)
        self._trigger = _trigger(self.patterns)
        self._starts = _starts(self.patterns)
        return getattr(self, name)

    def is_sensitive(self, key: str) -> bool:
        """Whether values under ``key`` are redacted."""
        try:
            return self._cache[key]
        except KeyError:
            norm = key.lower().replace("-", "_")
            hit = any(_contains(norm, p) for p in self.patterns)
            if len(self._cache) < _CACHE_LIMIT:
                self._cache[key] = hit
            return hit

    def mapping(self, values: Mapping[str, _V]) -> dict[str, _V | str]:
        """A copy of ``values`` with sensitive entries replaced by ``[REDACTED]``, nested mappings too."""
        return {k: self.value(k, v) for k, v in values.items()}

    def value(self, key: str, value: Any, _depth: int = 0) -> Any:
        """``value`` itself, redacted if ``key`` is sensitive, with nested mappings and lists walked.

        Containers are copied (so a self-referencing one ends); past ``_MAX_DEPTH`` levels the rest
        is redacted rather than walked.
        """
        if self.is_sensitive(key) or _depth > _MAX_DEPTH:
            return REDACTED
        if isinstance(value, Mapping):
            return {str(k): self.value(str(k), v, _depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(key, v, _depth + 1) for v in value]
        return value

    def walk(self, key: str, value: Any, leaf: Callable[[Any], Any], _depth: int = 0) -> Any:
        """:meth:`value`, with ``leaf`` applied to every value that is not a mapping, list or tuple.

        ``leaf`` is, say, :meth:`text_value` (credentials in nested strings hidden too) or a
        function that also makes each value safe for an exporter.
        """
        if self.is_sensitive(key) or _depth > _MAX_DEPTH:
            return REDACTED
        if isinstance(value, Mapping):
            items = ((_key_text(k), v) for k, v in value.items())
            return {k: self.walk(k, v, leaf, _depth + 1) for k, v in items}
        if isinstance(value, list | tuple):
            return [self.walk(key, v, leaf, _depth + 1) for v in value]
        return leaf(value)

    def needs_work(self, keys: Iterable[str]) -> bool:
        """Whether any of ``keys`` is sensitive (cheap check before copying)."""
        return any(self.is_sensitive(k) for k in keys)

    def _text_key(self, key: str) -> bool:
        try:
            return self._text_cache[key]
        except KeyError:
            norm = key.lower().replace("-", "_")
            hit = norm in _TEXT_ONLY_KEYS or self.is_sensitive(norm)
            if len(self._text_cache) < _CACHE_LIMIT:
                self._text_cache[key] = hit
            return hit

    def _scrub(self, text: str) -> str:
        """Hide credentials in free text: URL userinfo, ``Bearer <token>``, ``password=...``.

        A value after a sensitive key (``key=value``, ``key: value``, ``"key": "value"``, a query
        parameter) is replaced, the key kept; so is the word after an authorization scheme and
        the user and password of a URL. The user's ``redact_patterns`` replace their whole match.
        One search of the lower-cased text for a trigger word decides that most text needs nothing;
        text without ``=`` or ``:`` can only hold a scheme's credential, which four plain
        substring tests rule out (about 0.1 us), and a single word (an id, an address) none.
        """
        if self._text:
            # A key's value needs "=" or ":" (so does a URL's "://"); without them, only a
            # scheme's credential can be there, and it needs a blank after the scheme.
            if "=" in text or ":" in text:
                lowered = text.lower()
                if self._trigger(lowered) is not None:
                    text = self._sub(text, lowered)
            elif " " in text or "\t" in text:
                lowered = text.lower()
                if _scheme_word(lowered):
                    text = self._sub(text, lowered)
        for pattern in self._extra:
            text = pattern.sub(REDACTED, text)
        return text

    def _sub(self, text: str, lowered: str) -> str:
        """``self._free.sub(self._replace, text)``, tried only where a match can start.

        Every match starts with ``://``, a scheme or a key word, which a search of the
        lower-cased text for those words finds without case folding, far faster than the
        case-insensitive pattern tried at every position (about 10x on long text).
        """
        if len(lowered) != len(text):  # a few characters lower-case to two: fold ASCII only
            lowered = text.translate(_ASCII_LOWER)
        find, match = self._starts, self._free.match
        parts: list[str] = []
        position = done = 0
        while (start := find(lowered, position)) is not None:
            position = start.start()
            found = match(text, position)
            if found is None:
                position += 1
                continue
            position = found.end()
            replaced = self._replace(found)
            if replaced is not None:
                parts += (text[done : found.start()], replaced)
                done = position
        if not parts:  # keys that are not sensitive leave the same object
            return text
        parts.append(text[done:])
        return "".join(parts)

    def _replace(self, match: re.Match[str]) -> str | None:
        """What replaces a match of the free-text pattern; None when it is to stay as it is."""
        last = match.lastgroup
        if last == "value":
            key, sep = match.group("key", "sep")
            return f"{key}{sep}{REDACTED}" if self._text_key(key) else None
        if last == "cred":
            return f"{match.group('auth')} {REDACTED}"
        return f"://{REDACTED}@"

    def url(self, url: str) -> str:
        """``url`` with its userinfo and the values of sensitive query parameters hidden.

        Query parameters are judged by name as keys are (``api_key``, ``token``, ``X-Sig``...),
        whatever ``redact_text`` says: a URL is structured data, not free text. The same object
        comes back when nothing is hidden; a few string searches decide that for most URLs.
        """
        scheme = url.find("://")
        at = url.find("@", scheme + 3) if scheme > 0 else -1
        if at > 0:
            authority = url[scheme + 3 : at]
            if not any(c in authority for c in "/?#") and authority != REDACTED:
                url = f"{url[: scheme + 3]}{REDACTED}{url[at:]}"
        head, mark, rest = url.partition("?")
        if not mark:
            return url
        query, hash_mark, fragment = rest.partition("#")
        hidden = self.query(query)
        return url if hidden is query else f"{head}?{hidden}{hash_mark}{fragment}"

    def query(self, query: str) -> str:
        """A URL query (``a=1&api_key=...``) with the values of sensitive parameters hidden."""
        if "=" not in query:
            return query
        params = query.split("&")
        changed = False
        for i, param in enumerate(params):
            name, eq, value = param.partition("=")
            if eq and value and value != REDACTED and self._text_key(_unquote(name)):
                params[i] = f"{name}={REDACTED}"
                changed = True
        return "&".join(params) if changed else query

    def text_value(self, value: Any) -> Any:
        """A field's value with credentials in its text hidden (strings only; others as they are)."""
        return self.scrub(value) if value.__class__ is str else value


def redactor_for(settings: Any) -> Redactor:
    """The redactor a set of settings asks for (keys, free text, extra patterns)."""
    return Redactor(settings.redact_keys, text=settings.redact_text, value_patterns=settings.redact_patterns)


def _unquote(name: str) -> str:
    if "%" not in name and "+" not in name:
        return name
    from urllib.parse import unquote_plus

    return unquote_plus(name)


def _same(text: str) -> str:
    return text


def _words(patterns: Iterable[str]) -> list[str]:
    """Regular expressions for the key patterns as they appear in text (``_`` also ``-`` or nothing)."""
    return sorted({re.escape(p).replace("_", "[_-]?") for p in patterns} | set(_TEXT_ONLY_KEYS))


def _free_text(patterns: Iterable[str]) -> re.Pattern[str]:
    """URL userinfo, an authorization scheme's credential, a value after a key holding a pattern."""
    schemes = "|".join(_SCHEMES)
    # The match starts at a key word (what precedes it in the same word cannot change whether
    # the key is sensitive), so the search is linear in the text; the words that are keys only
    # when whole (``sig``) must start their word.
    whole = "|".join(sorted(_TEXT_ONLY_KEYS))
    keys = "|".join(w for w in _words(patterns) if w not in _TEXT_ONLY_KEYS)
    return re.compile(
        rf"""
        (?<=[a-z0-9+.\-])://(?P<userinfo>[^\s/?#@]+)@
        | (?<![A-Za-z0-9_])(?P<auth>{schemes})[ \t]+(?P<cred>[A-Za-z0-9\-._~+/]{{6,}}=*)
        | (?P<key>(?:(?<![A-Za-z0-9_.\-])(?:{whole})|{keys})[A-Za-z0-9_.\-]*)
          (?P<sep>["']?[ \t]*[=:][ \t]*["']?)
          (?!{re.escape(REDACTED)})(?P<value>(?:(?:{schemes})[ \t]+)?[^\s"'&;,)}}\]]+)
        """,
        re.IGNORECASE | re.VERBOSE,
    )


def _starts(patterns: Iterable[str]) -> Callable[[str, int], re.Match[str] | None]:
    """A search of lower-cased text for where a :func:`_free_text` match can start."""
    words = {"://", *_SCHEMES, *(w.lower() for w in _words(patterns))}
    return re.compile("|".join(sorted(words, key=lambda w: (-len(w), w)))).search


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _scheme_word(lowered: str) -> bool:
    """Whether lower-cased text holds an authorization scheme's name (``bearer``, ...)."""
    return "bearer" in lowered or "basic" in lowered or "digest" in lowered or "negotiate" in lowered


def _trigger(patterns: Iterable[str]) -> Callable[[str], re.Match[str] | None]:
    """A search of lower-cased text that finds every text :func:`_free_text` could change.

    Short words (``pass`` for ``password``, ``key`` for ``api_key``) keep the alternation small,
    and without case folding the search skips ahead on the words' first letters: about 0.2 to
    0.5 us for a typical log message.
    """
    words = {"://", "pass", "pwd", "secret", "token", "key", "auth", "cookie", "connection", "credential"}
    words |= {"sharedaccess", "sig", *_SCHEMES}
    words |= {w for w in _words(patterns) if not any(short in w for short in words)}
    return re.compile("|".join(sorted(words))).search


#: What replaces a value no exporter can take. ``{}`` is the value's type name.
UNRENDERABLE = "[unrenderable {}]"
#: ints beyond this many digits cannot be printed (sys.set_int_max_str_digits).
_INT_MAX_DIGITS = sys.get_int_max_str_digits() or 4300


def _key_text(key: object) -> str:
    """A mapping key as text: ``str(key)``, or the marker when that raises."""
    if key.__class__ is str:
        return key
    try:
        return str(key)
    except Exception:
        return unrenderable(key)


def unrenderable(value: object) -> str:
    """The marker that stands for ``value`` when it cannot be rendered."""
    return UNRENDERABLE.format(type(value).__name__)


def safe_text(text: str) -> str:
    r"""``text`` as valid UTF-8: a lone surrogate becomes its ``\udXXX`` escape (the rest kept)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


#: A lone surrogate; compiled (and cached by ``re``) the first time one is met, which is rare.
_SURROGATE = "[\ud800-\udfff]"


def safe_json(text: str) -> str:
    r"""JSON ``text`` as valid UTF-8: a lone surrogate becomes its ``\udXXX`` escape, as text.

    The escape's backslash is itself escaped, so the JSON parses to what :func:`safe_text` gives
    for the string it was in, never to a surrogate again. All-ASCII text (nearly all) is
    answered by one ``isascii()``.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return re.sub(_SURROGATE, _json_escape, text)
    return text


def _json_escape(match: re.Match[str]) -> str:
    return f"\\\\u{ord(match.group()):04x}"


def safe_value(value: Any) -> Any:
    """``value`` if every exporter can take it, else a safe stand-in.

    Strings lose lone surrogates (:func:`safe_text`); an int too long to print, or outside
    OTLP's signed 64 bits, becomes its text (or the marker past the printable limit); any other
    object becomes ``str(value)``, or the marker when that raises.
    """
    cls = value.__class__
    if cls is str:
        return safe_text(value)
    if cls is bool or cls is float or value is None:
        return value
    if cls is int:
        if -(2**63) <= value < 2**63:
            return value
        return str(value) if value.bit_length() < _INT_MAX_DIGITS * 3 else unrenderable(value)
    try:
        return safe_text(str(value))
    except Exception:
        return unrenderable(value)
