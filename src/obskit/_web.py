"""configure(app): recognise the web application and instrument it (ASGI or WSGI)."""

from __future__ import annotations

from collections.abc import Callable

from obskit._errors import ConfigError
from obskit._settings import Settings

__all__ = ["check_app", "instrument"]

SUPPORTED = "a FastAPI/Starlette application (ASGI) or a Flask application (WSGI)"


def check_app(app: object) -> None:
    """Raise ConfigError unless ``app`` is a kind of application obskit can instrument."""
    raise ConfigError("app", type(app).__name__, SUPPORTED)


def instrument(app: object, settings: Settings) -> Callable[[float], None]:
    """Instrument ``app`` (once) and return the undo run by shutdown()."""
    raise ConfigError("app", type(app).__name__, SUPPORTED)
