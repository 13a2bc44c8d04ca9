"""psycopg and psycopg2 against a real PostgreSQL: CLIENT spans in the stable conventions, DB metrics.

The server is started for this module in a temporary directory, on 127.0.0.1 and a free port,
and stopped at the end. PostgreSQL refuses to run as root: as root, it runs as the ``postgres``
user (or ``nobody``) through ``runuser``. Without the binaries (Debian's ``postgresql`` package,
which .ci/run installs), the tests skip.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peers
import pytest
from opentelemetry.trace import SpanKind, StatusCode

import obskit
from obskit.testing import capture

_QUIET = {"metrics_exporter": "none", "logs_exporter": "none"}
_USER = "obskit"


def _binaries() -> Path | None:
    """The directory of initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found is not None and shutil.which("pg_ctl") is not None:
        return Path(found).parent
    for initdb in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        if os.access(initdb, os.X_OK) and os.access(Path(initdb).parent / "pg_ctl", os.X_OK):
            return Path(initdb).parent
    return None


def _unprivileged() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix to run the server with, and the user it runs as (None: this process's)."""
    if os.geteuid() != 0:
        return [], None
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip(
            "PostgreSQL refuses to run as root, and runuser is not installed to run it as another user"
        )
    for name in ("postgres", "nobody"):
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        return [runuser, "-u", name, "--"], user
    pytest.skip("PostgreSQL refuses to run as root, and there is no postgres or nobody user to run it as")


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        pytest.skip(f"PostgreSQL could not {what}: {(done.stderr or done.stdout).strip()[-500:]}")


@pytest.fixture(scope="module")
def postgres() -> Iterator[dict[str, Any]]:
    """A running PostgreSQL: the keyword arguments psycopg.connect takes to reach it."""
    binaries = _binaries()
    if binaries is None:
        pytest.skip("PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin)")
    prefix, user = _unprivileged()
    # In /tmp, not under pytest's tmp_path: its parents are private to this process's user.
    root = Path(tempfile.mkdtemp(prefix="obskit-pg-"))
    data = root / "data"
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    port = peers.free_port()
    started = False
    try:
        initdb = [str(binaries / "initdb"), "-D", str(data), "-U", _USER, "--auth=trust", "-E", "UTF8"]
        _run([*prefix, *initdb, "--no-sync", "--no-instructions"], "initialise a data directory")
        options = f"-h 127.0.0.1 -p {port} -k {root} -F -c fsync=off -c full_page_writes=off"
        start = [*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-o", options]
        _run([*start, "-w", "-t", "60", "start"], "start")
        started = True
        yield {"host": "127.0.0.1", "port": port, "user": _USER, "dbname": "postgres"}
    finally:
        if started:
            stop = [*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
            subprocess.run(stop, capture_output=True, timeout=60, check=False)
        shutil.rmtree(root, ignore_errors=True)


def _queries(postgres: dict[str, Any], which: str) -> None:
    """The calls compared: a table made, a row written and read, a query that fails."""
    if which == "psycopg2":
        import psycopg2

        connection = psycopg2.connect(**postgres)
        try:
            cursor = connection.cursor()
            cursor.execute("CREATE TEMP TABLE items (id int)")
            cursor.execute("INSERT INTO items VALUES (%s)", (1,))
            cursor.execute("SELECT id FROM items")
            assert cursor.fetchall() == [(1,)]
            with pytest.raises(psycopg2.errors.UndefinedTable):
                cursor.execute("SELECT * FROM no_such_table")
        finally:
            connection.close()
        return
    import psycopg

    with psycopg.connect(**postgres) as connection:
        connection.execute("CREATE TEMP TABLE items (id int)")
        connection.execute("INSERT INTO items VALUES (%s)", (1,))
        assert connection.execute("SELECT id FROM items").fetchall() == [(1,)]
        with pytest.raises(psycopg.errors.UndefinedTable):
            connection.execute("SELECT * FROM no_such_table")


def _shape(span: Any) -> dict[str, Any]:
    return {
        "name": span.name,
        "kind": span.kind.name,
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
        "schema_url": span.instrumentation_scope.schema_url if span.instrumentation_scope else None,
    }


REFERENCE = """
import json, sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import test_psycopg

postgres, which = json.loads(sys.argv[1]), sys.argv[2]
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
if which == "psycopg2":
    from opentelemetry.instrumentation.psycopg2 import Psycopg2Instrumentor as Instrumentor
else:
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor as Instrumentor
Instrumentor().instrument(tracer_provider=provider)
test_psycopg._queries(postgres, which)
print(json.dumps([test_psycopg._shape(span) for span in exporter.get_finished_spans()]))
"""


def _official_alone(postgres: dict[str, Any], which: str) -> list[dict[str, Any]]:
    """The spans of the official instrumentation alone, asked for the stable conventions."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OBSKIT_"))}
    env["OTEL_SEMCONV_STABILITY_OPT_IN"] = "database,http"
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), *sys.path])
    command = [sys.executable, "-c", REFERENCE, json.dumps(postgres), which]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stderr
    spans: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return spans


@pytest.mark.parametrize("which", ["psycopg", "psycopg2"])
def test_queries_are_client_spans_in_the_stable_conventions_and_feed_the_db_metrics(
    postgres: dict[str, Any], which: str
) -> None:
    pytest.importorskip(f"opentelemetry.instrumentation.{which}", reason="obskit[psycopg] not installed")
    pytest.importorskip(which)
    obskit.configure(traces_exporter="console", instrument_libraries=which, **_QUIET)
    with capture() as cap:
        _queries(postgres, which)
    spans = [s for s in cap.spans() if s.kind is SpanKind.CLIENT]
    assert [s.name for s in spans] == ["CREATE", "INSERT", "SELECT", "SELECT"]
    attributes = spans[1].attributes or {}
    assert attributes.get("db.system.name") == "postgresql"
    assert attributes.get("db.query.text") == "INSERT INTO items VALUES (%s)"
    assert attributes.get("server.port") == postgres["port"]
    assert not {"db.system", "db.statement", "net.peer.port"} & set(attributes)
    assert spans[3].status.status_code is StatusCode.ERROR
    # The same spans as the official instrumentation makes alone when asked for these conventions.
    assert [_shape(s) for s in spans] == _official_alone(postgres, which)

    name = "obskit_db_query_duration_seconds"
    for operation in ("CREATE", "INSERT"):
        assert cap.histogram_count(name, db="postgresql", operation=operation, status="ok") == 1
    assert cap.histogram_count(name, db="postgresql", operation="SELECT", status="ok") == 1
    assert cap.histogram_count(name, db="postgresql", operation="SELECT", status="error") == 1


def test_async_psycopg_queries_are_client_spans_too(postgres: dict[str, Any]) -> None:
    pytest.importorskip("opentelemetry.instrumentation.psycopg", reason="obskit[psycopg] not installed")
    psycopg = pytest.importorskip("psycopg")
    obskit.configure(traces_exporter="console", instrument_libraries="psycopg", **_QUIET)

    async def query() -> None:
        async with await psycopg.AsyncConnection.connect(**postgres) as connection:
            await connection.execute("SELECT 1")
            with pytest.raises(psycopg.errors.UndefinedTable):
                await connection.execute("SELECT * FROM no_such_table")

    with capture() as cap:
        asyncio.run(query())
    spans = [s for s in cap.spans() if s.kind is SpanKind.CLIENT]
    assert [(s.attributes or {}).get("db.system.name") for s in spans] == ["postgresql", "postgresql"]
    name = "obskit_db_query_duration_seconds"
    assert cap.histogram_count(name, db="postgresql", operation="SELECT", status="ok") == 1
    assert cap.histogram_count(name, db="postgresql", operation="SELECT", status="error") == 1


def test_the_users_opt_in_still_decides(postgres: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("opentelemetry.instrumentation.psycopg", reason="obskit[psycopg] not installed")
    psycopg = pytest.importorskip("psycopg")
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "database/dup")
    obskit.configure(traces_exporter="console", instrument_libraries="psycopg", **_QUIET)
    with capture() as cap, psycopg.connect(**postgres) as connection:
        connection.execute("SELECT 1")
    (span,) = [s for s in cap.spans() if s.kind is SpanKind.CLIENT]
    attributes = span.attributes or {}
    assert attributes.get("db.system.name") == attributes.get("db.system") == "postgresql"


def test_the_instrumentation_keeps_its_own_classes_and_shutdown_undoes_it(postgres: dict[str, Any]) -> None:
    pytest.importorskip("opentelemetry.instrumentation.psycopg", reason="obskit[psycopg] not installed")
    psycopg = pytest.importorskip("psycopg")
    from opentelemetry.instrumentation import psycopg as instrumentation

    before = instrumentation.DatabaseApiIntegration, instrumentation.DatabaseApiAsyncIntegration
    obskit.configure(traces_exporter="console", instrument_libraries="psycopg", **_QUIET)
    assert instrumentation.PsycopgInstrumentor().is_instrumented_by_opentelemetry
    assert (instrumentation.DatabaseApiIntegration, instrumentation.DatabaseApiAsyncIntegration) == before
    obskit.shutdown()
    assert not instrumentation.PsycopgInstrumentor().is_instrumented_by_opentelemetry
    with capture() as cap, psycopg.connect(**postgres) as connection:
        connection.execute("SELECT 1")
    assert cap.spans() == []
    assert "obskit_db_query_duration_seconds" not in cap.metric_names()
