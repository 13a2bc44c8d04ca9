"""The apps tests/integration/test_exit_servers.py serves, configured in the orders real services use.

``EXIT_APP_CONFIGURE`` says where ``obskit.configure(app)`` runs: ``import`` (module import),
``factory`` (inside ``create_app()``, for ``uvicorn --factory``), ``lifespan`` (in the FastAPI
lifespan's start-up) or ``never`` (the same app without obskit: the exit status to compare with).
Every other setting comes from the environment (OTLP endpoint, ``shutdown_timeout``).
``EXIT_APP_STUCK_THREAD=1`` starts a non-daemon thread that never ends.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import obskit

WHERE = os.environ.get("EXIT_APP_CONFIGURE", "import")


def _configure(app: Any) -> None:
    if WHERE != "never":
        obskit.configure(app, service_name="exit-test")


@asynccontextmanager
async def _lifespan(app: Any) -> AsyncIterator[None]:
    if WHERE == "lifespan":
        _configure(app)
    if os.environ.get("EXIT_APP_STUCK_THREAD"):
        # A non-daemon thread that never ends: the interpreter would wait for it at exit forever.
        threading.Thread(target=threading.Event().wait, name="stuck", daemon=False).start()
    yield


def _fastapi() -> Any:
    from fastapi import FastAPI

    app = FastAPI(lifespan=_lifespan)

    @app.get("/work/{n}")
    def work(n: int) -> dict[str, int]:
        return {"n": n}

    @app.get("/pid")
    def pid() -> dict[str, int]:
        return {"pid": os.getpid()}

    return app


def create_app() -> Any:
    """The app factory (``uvicorn --factory exit_apps:create_app``)."""
    app = _fastapi()
    if WHERE == "factory":
        _configure(app)
    return app


def _flask() -> Any:
    from flask import Flask

    flask_app = Flask("exit_apps")

    @flask_app.get("/work/<int:n>")
    def work(n: int) -> dict[str, int]:
        return {"n": n}

    @flask_app.get("/pid")
    def pid() -> dict[str, int]:
        return {"pid": os.getpid()}

    return flask_app


if os.environ.get("EXIT_APP_KIND") == "flask":
    flask_app = _flask()
    if WHERE == "import":
        _configure(flask_app)
elif os.environ.get("EXIT_APP_KIND") == "fastapi":
    app = _fastapi()
    if WHERE == "import":
        _configure(app)


def script(jobs: int) -> None:
    """A plain process: ``jobs`` tracked jobs, then wait for a signal (``python exit_apps.py N``)."""
    if WHERE != "never":
        obskit.configure(service_name="exit-test")

    @obskit.track_job("exit_job")
    def job(n: int) -> int:
        return n

    for n in range(jobs):
        job(n)
    print("ready", flush=True)
    time.sleep(60)


if __name__ == "__main__":
    script(int(sys.argv[1]))
