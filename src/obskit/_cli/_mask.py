"""Hiding secrets in what the CLI prints: connection strings, OTLP headers, URL credentials.

Each function returns the masked form and adds every secret it hid to ``found``, so that free
text (a problem line, an error message) can be scrubbed of the same strings afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from obskit._core.redact import REDACTED, Redactor

__all__ = ["REDACTED", "connection_string", "headers", "scrub", "setting_value", "url"]

#: Connection-string keys whose values are addresses, not credentials: shown.
_PUBLIC_KEYS = ("ingestionendpoint", "liveendpoint", "endpointsuffix", "location")
#: Secrets shorter than this are not scrubbed from free text: it would mangle ordinary words.
_MIN_SCRUB = 4


def connection_string(value: str, found: set[str]) -> str:
    """``InstrumentationKey=[REDACTED];IngestionEndpoint=https://...``: only the endpoints shown."""
    parts = []
    for part in value.split(";"):
        key, sep, val = part.partition("=")
        if sep and key.strip().lower() not in _PUBLIC_KEYS and val.strip():
            found.add(val.strip())
            parts.append(f"{key}={REDACTED}")
        else:
            parts.append(part)
    found.add(value)
    return ";".join(parts)


def headers(value: Mapping[str, str], found: set[str]) -> dict[str, str]:
    """Header names kept, every value hidden: OTLP headers are where API keys travel."""
    found.update(v for v in value.values() if v)
    return {key: REDACTED for key in value}


def url(value: str, redactor: Redactor, found: set[str]) -> str:
    """``value`` with the password (or a lone user name) and sensitive query values hidden."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        if colon:
            found.add(password)
            netloc = f"{user}:{REDACTED}@{host}"
        else:
            found.add(user)
            netloc = f"{REDACTED}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(redactor.is_sensitive(k) for k, _ in pairs):
            found.update(v for k, v in pairs if redactor.is_sensitive(k) and v)
            query = urlencode([(k, REDACTED if redactor.is_sensitive(k) else v) for k, v in pairs])
    if netloc == parts.netloc and query == parts.query:
        return value
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def setting_value(name: str, value: Any, redactor: Redactor, found: set[str]) -> Any:
    """A setting's value as it may be shown: JSON-able, secrets hidden."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if name == "azure_connection_string":
        return connection_string(str(value), found)
    if name.endswith("headers"):
        return headers(value, found)
    if isinstance(value, Mapping):
        shown = redactor.mapping(value)
        found.update(str(v) for k, v in value.items() if shown[k] == REDACTED and v)
        return shown
    if isinstance(value, tuple | list):
        return [setting_value(name, item, redactor, found) for item in value]
    if redactor.is_sensitive(name):
        found.add(str(value))
        return REDACTED
    return url(str(value), redactor, found) if "@" in str(value) or "?" in str(value) else value


def scrub(text: str, found: set[str]) -> str:
    """``text`` with every secret in ``found`` replaced by ``[REDACTED]`` (longest first)."""
    for secret in sorted(found, key=len, reverse=True):
        if len(secret) >= _MIN_SCRUB:
            text = text.replace(secret, REDACTED)
    return text
