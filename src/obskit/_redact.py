"""One shared list of sensitive key patterns, used for log fields, span attributes and recorded args."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

__all__ = ["DEFAULT_PATTERNS", "REDACTED", "Redactor"]

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
)
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

    __slots__ = ("_cache", "patterns")

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self.patterns = tuple(dict.fromkeys((*DEFAULT_PATTERNS, *extra)))
        self._cache: dict[str, bool] = {}

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

    def needs_work(self, keys: Iterable[str]) -> bool:
        """Whether any of ``keys`` is sensitive (cheap check before copying)."""
        return any(self.is_sensitive(k) for k in keys)
