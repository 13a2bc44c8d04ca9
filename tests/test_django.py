"""Django: configure(app) with the project's handlers, and obskit's middleware in MIDDLEWARE.

In process with Django's test clients (the project in tests/django_project, set up once: Django's
settings are process-global), and served by real gunicorn (WSGI) and uvicorn (ASGI) processes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import pytest

django = pytest.importorskip("django", reason="Django is not installed (pip install obskit[django])")

from django.test import AsyncClient, Client, override_settings  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

import obskit  # noqa: E402
from obskit._web.django import django_route  # noqa: E402
from obskit.testing import Capture, capture  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent / "integration"))
from peers import free_port, serving, wait_until_up  # noqa: E402

PROJECT = Path(__file__).parent / "django_project"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
OBSKIT_FIRST = ["obskit.django.ObskitMiddleware", "django.middleware.common.CommonMiddleware"]


@pytest.fixture(scope="module", autouse=True)
def _project() -> Iterator[None]:
    """The test project, set up once for this process (Django's settings stay: they are global).

    What Django's set-up changed outside Django is put back for the rest of the suite: the
    settings variable, the import path, the warnings it sends to logging, its loggers' handlers.
    """
    loggers = {name: list(logging.getLogger(name).handlers) for name in ("django", "django.server")}
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(PROJECT))
        patch.setenv("DJANGO_SETTINGS_MODULE", "djproj.settings")
        django.setup()
        yield
    logging.captureWarnings(False)
    for name, handlers in loggers.items():
        logging.getLogger(name).handlers[:] = handlers


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as s:
        yield s


def server_spans(cap: Capture) -> list[Any]:
    return [s for s in cap.spans() if s.kind == SpanKind.SERVER]


def instrumented_client(stack: ExitStack, asynchronous: bool = False) -> Any:
    """A test client whose handler configure(app) instrumented, as get_wsgi_application()'s would be."""
    client = (
        AsyncClient(raise_request_exception=False) if asynchronous else Client(raise_request_exception=False)
    )
    obskit.configure(client.handler)
    return client


# -- routes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "template"),
    [
        ("", "/"),
        ("api/items/<int:item_id>/", "/api/items/{item_id}/"),
        ("api/^archive/(?P<year>[0-9]{4})/(?P<month>[0-9]{2})/$", "/api/^archive/{year}/{month}/"),
        ("^legacy/(?P<slug>[a-z]+)/$", "/legacy/{slug}/"),
        ("^nested/(?P<a>(x|y)+)/\\Z", "/nested/{a}/"),
        ("^users/(\\d+)/$", "/users/(\\d+)/"),
        ("async/<name>/", "/async/{name}/"),
    ],
)
def test_resolver_routes_become_url_templates(route: str, template: str) -> None:
    assert django_route(route) == template


# -- configure(app) in process ---------------------------------------------------------------------


def test_sync_view_gets_a_server_span_metrics_request_id_and_access_line(stack: ExitStack) -> None:
    client = instrumented_client(stack)
    cap = stack.enter_context(capture())
    response = client.get("/api/items/7/", headers={"traceparent": TRACEPARENT, "x-request-id": "req-7"})
    assert response.json() == {"id": 7}
    assert response["X-Request-ID"] == "req-7"
    [span] = server_spans(cap)
    assert span.name == "GET /api/items/{item_id}/"
    assert span.attributes["http.route"] == "/api/items/{item_id}/"
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["http.request.method"] == "GET"
    assert span.attributes["url.path"] == "/api/items/7/"
    assert span.attributes["url.scheme"] == "http"
    assert format(span.context.trace_id, "032x") == TRACE_ID
    cap.assert_counter(
        "http_server_requests_total", 1, method="GET", route="/api/items/{item_id}/", status_code=200
    )
    [view_line] = cap.logs(logger="djproj")
    assert view_line["request_id"] == "req-7"
    assert view_line["trace_id"] == TRACE_ID
    [access] = cap.logs(logger="http.access")
    assert access["route"] == "/api/items/{item_id}/"
    assert access["request_id"] == "req-7"


def test_a_call_made_by_a_view_carries_the_requests_trace(stack: ExitStack) -> None:
    client = instrumented_client(stack)
    cap = stack.enter_context(capture())
    sent = client.get("/outgoing/", headers={"traceparent": TRACEPARENT}).json()
    [span] = server_spans(cap)
    assert sent["traceparent"] == f"00-{TRACE_ID}-{span.context.span_id:016x}-01"


def test_djangos_urlconf_decides_who_serves_obskits_paths() -> None:
    from obskit._web.routes import FREE, TAKEN, AppRoutes, DjangoURLs

    routes = AppRoutes(DjangoURLs())
    assert routes.readable
    assert routes.owner("/api/items/1/") == TAKEN
    assert routes.owner("/api/items/1") == TAKEN  # APPEND_SLASH: CommonMiddleware redirects
    assert routes.owner("/legacy/abc/") == TAKEN
    assert routes.owner("/metrics") == FREE
    assert routes.owner("/health/live") == FREE


def test_invalid_request_id_is_replaced(stack: ExitStack) -> None:
    client = instrumented_client(stack)
    stack.enter_context(capture())
    response = client.get("/", headers={"x-request-id": "not valid!"})
    assert response["X-Request-ID"] != "not valid!"
    assert len(response["X-Request-ID"]) == 32


def test_regex_and_include_routes_are_joined(stack: ExitStack) -> None:
    client = instrumented_client(stack)
    cap = stack.enter_context(capture())
    assert client.get("/api/archive/2024/05/").status_code == 200
    assert client.get("/legacy/abc/").status_code == 200
    names = sorted(span.name for span in server_spans(cap))
    assert names == ["GET /api/archive/{year}/{month}/", "GET /legacy/{slug}/"]


def test_unmatched_path_has_one_route_and_the_method_as_span_name(stack: ExitStack) -> None:
    client = instrumented_client(stack)
    cap = stack.enter_context(capture())
    for i in range(3):
        assert client.get(f"/scan/{i}/admin.php").status_code == 404
    spans = server_spans(cap)
    assert {span.name for span in spans} == {"GET"}
    assert all("http.route" not in span.attributes for span in spans)
    cap.assert_counter("http_server_requests_total", 3, method="GET", route="__unmatched__", status_code=404)


def test_exception_django_turns_into_500_has_its_class_as_error_type(stack: ExitStack) -> None:
    client = instrumented_client(stack)
    cap = stack.enter_context(capture())
    assert client.get("/fail/").status_code == 500
    [span] = server_spans(cap)
    assert span.attributes["http.response.status_code"] == 500
    assert span.attributes["error.type"] == "djproj.views.Boom"
    assert span.status.status_code is StatusCode.ERROR
    [event] = span.events
    assert event.attributes["exception.type"] == "djproj.views.Boom"
    cap.assert_counter("http_server_requests_total", 1, method="GET", route="/fail/", status_code=500)
    # Django logs the error (django.request, at ERROR, with its stack); obskit's access line does
    # not log the stack a second time.
    [django_line] = cap.logs(logger="django.request")
    assert django_line["level"] == "ERROR"
    assert django_line["exception"]["type"] == "Boom"
    [access] = cap.logs(logger="http.access")
    assert access["level"] == "ERROR"
    assert "exception" not in access


def test_streaming_response_is_finished_when_its_body_is_read(stack: ExitStack) -> None:
    client = instrumented_client(stack)
    cap = stack.enter_context(capture())
    response = client.get("/stream/")
    assert server_spans(cap) == []  # not read yet: the request is still running
    assert b"".join(response.streaming_content) == b"chunk 0\nchunk 1\nchunk 2\n"
    [span] = server_spans(cap)
    assert span.name == "GET /stream/"
    chunk_lines = cap.logs(logger="djproj")
    assert len(chunk_lines) == 3
    assert {line["trace_id"] for line in chunk_lines} == {format(span.context.trace_id, "032x")}


def test_a_stream_failing_after_its_200_is_logged_once_with_its_stack(stack: ExitStack) -> None:
    """Django does not see an exception raised while the server reads the body: obskit logs it."""
    from djproj.views import Boom

    client = instrumented_client(stack)
    cap = stack.enter_context(capture())
    response = client.get("/stream-fail/")
    assert response.status_code == 200
    with pytest.raises(Boom):
        b"".join(response.streaming_content)
    [span] = server_spans(cap)
    assert span.attributes["error.type"] == "djproj.views.Boom"
    assert span.attributes["http.response.status_code"] == 200
    [access] = cap.logs(logger="http.access")
    assert access["level"] == "ERROR"
    assert access["exception"]["type"] == "Boom"


async def test_an_async_stream_is_made_inside_the_request(stack: ExitStack) -> None:
    client = instrumented_client(stack, asynchronous=True)
    cap = stack.enter_context(capture())
    response = await client.get("/astream/", headers={"x-request-id": "req-s"})
    assert b"".join([chunk async for chunk in response.streaming_content]) == b"chunk 0\nchunk 1\nchunk 2\n"
    [span] = server_spans(cap)
    assert span.name == "GET /astream/"
    lines = cap.logs(logger="djproj")
    assert [line["message"] for line in lines] == [f"async chunk {i}" for i in range(3)]
    assert {(line["request_id"], line["trace_id"]) for line in lines} == {
        ("req-s", format(span.context.trace_id, "032x"))
    }


async def test_async_view_and_async_failure_under_the_async_client(stack: ExitStack) -> None:
    client = instrumented_client(stack, asynchronous=True)
    cap = stack.enter_context(capture())
    response = await client.get("/async/ada/", headers={"x-request-id": "req-a"})
    assert response.json() == {"name": "ada"}
    assert response["X-Request-ID"] == "req-a"
    failed = await client.get("/async-fail/")
    assert failed.status_code == 500
    ok, bad = sorted(server_spans(cap), key=lambda span: span.name)
    assert ok.name == "GET /async-fail/"  # sorted: async-fail before async/
    ok, bad = bad, ok
    assert ok.name == "GET /async/{name}/"
    assert bad.attributes["error.type"] == "djproj.views.Boom"
    [line] = cap.logs(logger="djproj")
    assert line["request_id"] == "req-a"
    assert line["trace_id"] == format(ok.context.trace_id, "032x")


def test_health_and_metrics_are_served_where_the_project_has_no_such_url(stack: ExitStack) -> None:
    client = Client()
    obskit.configure(client.handler, metrics_exporter="prometheus", prometheus_port=0)
    assert client.get("/health/live").json() == {"status": "alive"}
    client.get("/api/items/1/")
    scrape = client.get("/metrics")
    assert scrape.status_code == 200
    assert b"http_server_requests_total" in scrape.content


def test_project_url_at_obskits_path_is_not_shadowed(stack: ExitStack, monkeypatch: Any) -> None:
    from django.urls import clear_url_caches, path
    from djproj import urls, views

    monkeypatch.setattr(urls, "urlpatterns", [*urls.urlpatterns, path("metrics", views.own_metrics)])
    clear_url_caches()
    stack.callback(clear_url_caches)
    client = Client()
    obskit.configure(client.handler, metrics_exporter="prometheus", prometheus_port=0)
    assert client.get("/metrics").content == b"the project's own metrics"


def test_shutdown_leaves_a_pass_through(stack: ExitStack) -> None:
    client = instrumented_client(stack)
    obskit.shutdown()
    cap = stack.enter_context(capture())
    response = client.get("/")
    assert response.status_code == 200
    assert "X-Request-ID" not in response
    assert server_spans(cap) == []


# -- MIDDLEWARE ------------------------------------------------------------------------------------


def test_middleware_in_settings_configures_obskit_and_instruments(stack: ExitStack) -> None:
    stack.enter_context(override_settings(MIDDLEWARE=OBSKIT_FIRST, OBSKIT={"service_name": "from-settings"}))
    client = Client(raise_request_exception=False)
    assert not obskit.is_configured()
    response = client.get("/api/items/3/", headers={"X-Request-ID": "r-1"})  # loads the middleware
    assert obskit.is_configured()
    from obskit._core import state

    assert state.STATE.settings.service_name == "from-settings"
    assert response["X-Request-ID"] == "r-1"
    assert "X-Request-ID" not in client.get("/api/items/3/")  # none sent: the response is the app's
    with capture() as cap:
        client.get("/legacy/abc/")
        [span] = server_spans(cap)
    assert span.name == "GET /legacy/{slug}/"
    from obskit._web.http import AlreadyLoggedFilter

    obskit.shutdown()  # what the middleware added to the servers' loggers goes too
    assert not [f for f in logging.getLogger("gunicorn.error").filters if isinstance(f, AlreadyLoggedFilter)]


def test_middleware_and_configure_app_make_one_server_span(stack: ExitStack) -> None:
    stack.enter_context(override_settings(MIDDLEWARE=OBSKIT_FIRST))
    client = Client(raise_request_exception=False)
    obskit.configure(client.handler)  # detected: MIDDLEWARE instruments already
    cap = stack.enter_context(capture())
    client.get("/api/items/1/")
    assert len(server_spans(cap)) == 1
    assert len(cap.logs(logger="http.access")) == 1


async def test_middleware_in_settings_under_the_async_client(stack: ExitStack) -> None:
    stack.enter_context(override_settings(MIDDLEWARE=OBSKIT_FIRST))
    obskit.configure()
    cap = stack.enter_context(capture())
    client = AsyncClient(raise_request_exception=False)
    response = await client.get("/async/bob/")
    assert response.status_code == 200
    [span] = server_spans(cap)
    assert span.name == "GET /async/{name}/"


# -- logging -----------------------------------------------------------------------------------------


def run_log_lines(tmp_path: Path, *args: str, **extra: str) -> tuple[list[str], dict[str, Any]]:
    """tests/django_project/log_lines.py run in its own process: its console lines, the loggers' state."""
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("__pycache__"))
    env = server_env(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", **extra)
    env.pop("OTEL_EXPORTER_PROMETHEUS_PORT")
    run = subprocess.run(
        [sys.executable, "log_lines.py", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [*run.stdout.splitlines(), *run.stderr.splitlines()]
    [state] = [json.loads(line[6:]) for line in lines if line.startswith("STATE ")]
    return [line for line in lines if not line.startswith("STATE ")], state


def count(lines: list[str], text: str) -> int:
    return sum(text in line for line in lines)


@pytest.mark.parametrize("way", ["configure", "middleware"])
def test_djangos_default_logging_writes_each_record_once(tmp_path: Path, way: str) -> None:
    """DEBUG on: Django's default LOGGING has a console handler on ``django``; obskit's line is the one."""
    middleware = way == "middleware"
    lines, state = run_log_lines(
        tmp_path,
        *(["--middleware"] if middleware else []),
        DJPROJ_DEBUG="1",
        DJPROJ_MIDDLEWARE=str(int(middleware)),
    )
    assert count(lines, "Internal Server Error: /fail/") == 1
    assert count(lines, "a django warning") == 1
    [error] = [json.loads(line) for line in lines if "Internal Server Error" in line]
    assert error["level"] == "ERROR"
    assert error["logger"] == "django.request"
    assert state["django"] == [logging.INFO, False]  # Django's level, left alone


def test_a_projects_logging_keeps_its_levels_and_writes_each_record_once(tmp_path: Path) -> None:
    lines, state = run_log_lines(tmp_path, DJPROJ_LOGGING="1")
    assert count(lines, "a project warning") == 1
    assert count(lines, "a project debug line") <= 1
    assert not any(line.startswith("PLAIN ") for line in lines if "project warning" in line)
    assert state["djproj"] == [logging.DEBUG, False]
    # LOGGING without disable_existing_loggers=False disabled obskit's logger: enabled again.
    assert state["obskit"][1] is False


# -- served by real servers --------------------------------------------------------------------------


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSKIT_", "OTEL_", "DJPROJ_"))}
    env.update(
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="prometheus",
        OTEL_EXPORTER_PROMETHEUS_PORT="0",
        PYTHONUNBUFFERED="1",
        DJANGO_SETTINGS_MODULE="djproj.settings",
        PYTHONPATH=os.pathsep.join([str(Path(obskit.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    )
    env.update(extra)
    return env


SERVERS = {
    # --preload: configure() runs in the arbiter, the worker is forked from it (fork safety).
    "gunicorn-wsgi": ["gunicorn", "djproj.wsgi:application", "--preload", "--workers", "1", "--bind"],
    "uvicorn-asgi": ["uvicorn", "djproj.asgi:application", "--host", "127.0.0.1", "--port"],
}


@pytest.mark.integration
@pytest.mark.parametrize("server", sorted(SERVERS))
@pytest.mark.parametrize("way", ["configure", "middleware"])
def test_project_served_by_a_real_server(server: str, way: str, tmp_path: Path) -> None:
    import httpx

    project = tmp_path / "project"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("__pycache__"))
    port = free_port()
    address = f"127.0.0.1:{port}" if server.startswith("gunicorn") else str(port)
    args = [str(Path(sys.executable).parent / SERVERS[server][0]), *SERVERS[server][1:], address]
    env = server_env(DJPROJ_MIDDLEWARE="1" if way == "middleware" else "0")
    base = f"http://127.0.0.1:{port}"
    with serving(args, project, env) as files:
        wait_until_up(base, files)
        with httpx.Client(base_url=base, timeout=10) as client:
            found = client.get("/api/items/5/", headers={"x-request-id": "req-5", "traceparent": TRACEPARENT})
            failed = client.get("/fail/")
            streamed = client.get("/stream/")
            asynchronous = client.get("/async/eve/")
            missing = client.get("/nowhere/admin.php")
            # The body breaks after its first chunk: the server cuts the response.
            with suppress(httpx.HTTPError):
                httpx.get(f"{base}/stream-fail/", timeout=10).read()
            scrape = client.get("/metrics").text
    assert found.json() == {"id": 5}
    assert found.headers["x-request-id"] == "req-5"
    assert failed.status_code == 500
    assert streamed.text == "chunk 0\nchunk 1\nchunk 2\n"
    assert asynchronous.json() == {"name": "eve"}
    assert missing.status_code == 404
    assert 'route="/api/items/{item_id}/",status_code="200"' in scrape
    assert 'route="__unmatched__",status_code="404"' in scrape
    stdout = files["stdout"].read_text()
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("logger") == "http.access"]
    assert {(line["route"], line["status"]) for line in access} >= {
        ("/api/items/{item_id}/", 200),
        ("/fail/", 500),
        ("/stream/", 200),
        ("/async/{name}/", 200),
        ("__unmatched__", 404),
    }
    [item_line] = [line for line in lines if line.get("logger") == "djproj" and "item" in line["message"]]
    assert item_line["request_id"] == "req-5"
    assert item_line["trace_id"] == TRACE_ID
    errors = [line for line in lines if line.get("logger") == "django.request"]
    # Each of Django's records once, at its level: the 500 and the 404.
    assert sorted((line["level"], line["message"]) for line in errors) == [
        ("ERROR", "Internal Server Error: /fail/"),
        ("WARNING", "Not Found: /nowhere/admin.php"),
    ]
    # A body failing after its 200: obskit's ERROR access line is its one log line, with the stack
    # (the server's own report of it is dropped).
    [broken] = [line for line in access if line["path"] == "/stream-fail/"]
    assert broken["level"] == "ERROR"
    assert broken["exception"]["type"] == "Boom"
    stderr = files["stderr"].read_text()
    assert "GET /api/items/{item_id}/" in stderr
    assert "djproj.views.Boom" in stderr  # the 500's error.type on the span
    for report in ("Error handling request", "Exception in ASGI application"):
        assert report not in stderr
        assert report not in stdout
    assert "Traceback" not in stderr


# -- Django's tutorial app -----------------------------------------------------------------------------


def run_polls_tests(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    project = tmp_path / "django_polls"
    shutil.copytree(
        Path(__file__).parent / "django_polls", project, ignore=shutil.ignore_patterns("__pycache__")
    )
    env = server_env(**extra)
    env.pop("DJANGO_SETTINGS_MODULE")
    return subprocess.run(
        [sys.executable, "manage.py", "test", "--noinput", "-v", "2"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.integration
def test_the_tutorials_polls_suite_passes_with_obskit_as_without(tmp_path: Path) -> None:
    """The polls app of Django's tutorial (parts 1-5): its tests.py gives the same results with obskit."""
    plain = run_polls_tests(tmp_path / "plain")
    instrumented = run_polls_tests(tmp_path / "obskit", POLLS_OBSKIT="middleware")
    for run in (plain, instrumented):
        assert run.returncode == 0, run.stderr[-3000:]
        assert "Ran 10 tests" in run.stderr
        assert "\nOK\n" in run.stderr

    def results(run: subprocess.CompletedProcess[str]) -> list[str]:
        return re.findall(r"\.\.\. (ok|FAIL|ERROR|skipped)", run.stderr)

    assert results(instrumented) == results(plain) == ["ok"] * 10
    assert "obskit WARNING" not in instrumented.stderr
    access = [json.loads(line) for line in instrumented.stdout.splitlines() if '"http.access"' in line]
    routes = {(line["route"], line["status"]) for line in access}
    assert ("/polls/", 200) in routes
    assert ("/polls/{pk}/", 404) in routes  # the future question's detail page
    assert "http.access" not in plain.stdout


# -- beside OpenTelemetry's contrib instrumentations ---------------------------------------------------


def test_database_queries_are_client_spans_under_the_request_with_the_sqlite3_instrumentation(
    stack: ExitStack,
) -> None:
    """opentelemetry-instrumentation-sqlite3, enabled by the project, records into obskit's pipeline."""
    sqlite3_instrumentation = pytest.importorskip(
        "opentelemetry.instrumentation.sqlite3",
        reason="opentelemetry-instrumentation-sqlite3 is not installed",
    )
    from django.db import connection

    instrumentor = sqlite3_instrumentation.SQLite3Instrumentor()
    instrumentor.instrument()
    stack.callback(instrumentor.uninstrument)
    connection.close()
    connection.connection = None  # an in-memory database stays open: connect again, instrumented
    stack.callback(setattr, connection, "connection", None)
    client = instrumented_client(stack)
    cap = stack.enter_context(capture())
    assert client.get("/query/").json() == {"value": 1}
    [server] = server_spans(cap)
    queries = [span for span in cap.spans() if span.kind == SpanKind.CLIENT]
    assert queries
    assert all(span.parent.span_id == server.context.span_id for span in queries)
    assert any(
        span.attributes.get("db.statement", span.attributes.get("db.query.text")) == "SELECT 1"
        for span in queries
    )


def test_beside_opentelemetrys_django_instrumentation_there_is_one_server_span(stack: ExitStack) -> None:
    """DjangoInstrumentor's middleware makes the request's server span; obskit makes none of its own."""
    official = pytest.importorskip(
        "opentelemetry.instrumentation.django", reason="opentelemetry-instrumentation-django is not installed"
    )
    stack.enter_context(override_settings(MIDDLEWARE=["django.middleware.common.CommonMiddleware"]))
    instrumentor = official.DjangoInstrumentor()
    instrumentor.instrument()
    stack.callback(instrumentor.uninstrument)
    client = instrumented_client(stack)
    cap = stack.enter_context(capture())
    assert client.get("/api/items/2/").status_code == 200
    [span] = server_spans(cap)
    assert span.instrumentation_scope.name.startswith("opentelemetry.instrumentation.django")
    cap.assert_counter(
        "http_server_requests_total", 1, method="GET", route="/api/items/{item_id}/", status_code=200
    )


@pytest.mark.integration
@pytest.mark.parametrize("way", ["configure", "middleware"])
def test_runserver_with_its_autoreloader_instruments_the_serving_process_only(
    tmp_path: Path, way: str
) -> None:
    """The autoreloader's parent watches files and never loads the handler; the child (RUN_MAIN) serves.

    Both would bind obskit's scrape port if both were configured: the parent first, leaving the
    serving child's metrics unscraped. The port answers with the served requests' series.
    """
    import httpx

    project = tmp_path / "project"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("__pycache__"))
    port, scrape_port = free_port(), free_port()
    env = server_env(
        DJPROJ_MIDDLEWARE="1" if way == "middleware" else "0", OTEL_EXPORTER_PROMETHEUS_PORT=str(scrape_port)
    )
    args = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"]
    base = f"http://127.0.0.1:{port}"
    with serving(args, project, env) as files:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            try:
                found = httpx.get(f"{base}/api/items/9/", headers={"X-Request-ID": "rs-1"}, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail(files["stderr"].read_text()[-3000:])
        assert found.headers["x-request-id"] == "rs-1"
        scrape = httpx.get(f"http://127.0.0.1:{scrape_port}/metrics", timeout=5).text
    assert 'route="/api/items/{item_id}/",status_code="200"' in scrape
    assert "Address already in use" not in files["stderr"].read_text()


@pytest.mark.skipif(
    django.VERSION < (5, 0),
    reason="Django 5.0 added cancelling the view on http.disconnect; 4.2 sees it only reading the body",
)
async def test_a_client_gone_before_the_answer_finishes_the_request_as_499(stack: ExitStack) -> None:
    """Django's ASGI handler cancels the view when the client disconnects: the request still ends."""
    import asyncio

    from django.core.asgi import get_asgi_application

    handler = get_asgi_application()
    obskit.configure(handler)
    cap = stack.enter_context(capture())
    messages = [{"type": "http.request", "body": b"", "more_body": False}, {"type": "http.disconnect"}]

    async def receive() -> dict[str, Any]:
        if len(messages) == 1:
            await asyncio.sleep(0.05)  # the view is waiting by now
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError(f"nothing is sent to a client that left: {message}")

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/slow/",
        "raw_path": b"/slow/",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "http_version": "1.1",
        "scheme": "http",
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    await asyncio.wait_for(handler(scope, receive, send), 10)
    [span] = server_spans(cap)
    assert span.name == "GET /slow/"
    assert span.attributes["http.response.status_code"] == 499
    assert cap.gauge_value("http_server_requests_in_progress", method="GET") == 0


# -- the example -----------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    "server",
    [
        ["gunicorn", "--chdir", "{dir}", "shop.wsgi:application", "--bind", "127.0.0.1:{port}"],
        ["uvicorn", "--app-dir", "{dir}", "shop.asgi:application", "--port", "{port}", "--no-access-log"],
    ],
    ids=["gunicorn", "uvicorn"],
)
def test_the_django_example_serves_as_its_docstrings_say(server: list[str], tmp_path: Path) -> None:
    import httpx

    example = tmp_path / "django_app"
    examples = Path(__file__).parents[1] / "examples" / "django_app"
    shutil.copytree(examples, example, ignore=shutil.ignore_patterns("__pycache__"))
    port = free_port()
    args = [arg.format(dir=example, port=port) for arg in server]
    args[0] = str(Path(sys.executable).parent / args[0])
    env = server_env()
    env.pop("DJANGO_SETTINGS_MODULE")
    base = f"http://127.0.0.1:{port}"
    with serving(args, tmp_path, env) as files:
        wait_until_up(base, files)
        with httpx.Client(base_url=base, timeout=10) as client:
            assert client.get("/items/3/").json() == {"id": 3, "name": "item 3"}
            assert client.get("/items/by-sku/ABC-12/").json() == {"sku": "ABC-12"}
            assert client.get("/prices/eur/").json()["currency"] == "eur"
            assert client.get("/export/").text == "row 0\nrow 1\nrow 2\n"
            assert client.get("/fail/").status_code == 500
            scrape = client.get("/metrics").text
    for route in ("/items/{item_id}/", "/items/by-sku/{sku}/", "/prices/{currency}/", "/export/"):
        assert f'route="{route}",status_code="200"' in scrape
    assert 'route="/fail/",status_code="500"' in scrape
    assert "error.type=RuntimeError" in files["stderr"].read_text()
    lines = [json.loads(line) for line in files["stdout"].read_text().splitlines() if line.startswith("{")]
    assert {line["service"] for line in lines} == {"shop"}


def test_opentelemetrys_django_middleware_in_settings_but_not_in_the_handler_leaves_obskits_span(
    stack: ExitStack,
) -> None:
    """DjangoInstrumentor run after the handler loaded its middleware: the handler does not have it."""
    official = pytest.importorskip(
        "opentelemetry.instrumentation.django", reason="opentelemetry-instrumentation-django is not installed"
    )
    stack.enter_context(override_settings(MIDDLEWARE=["django.middleware.common.CommonMiddleware"]))
    client = Client()
    client.handler.load_middleware()  # as get_wsgi_application() does
    instrumentor = official.DjangoInstrumentor()
    instrumentor.instrument()  # MIDDLEWARE gains its middleware; the handler's chain does not
    stack.callback(instrumentor.uninstrument)
    obskit.configure(client.handler)
    cap = stack.enter_context(capture())
    assert client.get("/api/items/2/").status_code == 200
    [span] = server_spans(cap)
    assert span.instrumentation_scope.name == "obskit"


def test_a_request_obskit_cannot_read_is_served_untouched(
    stack: ExitStack, monkeypatch: pytest.MonkeyPatch, swallow_internal_errors: None
) -> None:
    import obskit._web.django as obskit_django

    def broken(*args: Any) -> dict[str, Any]:
        raise RuntimeError("telemetry bug")

    monkeypatch.setattr(obskit_django, "server_attributes", broken)
    client = instrumented_client(stack)
    response = client.get("/api/items/4/")
    assert response.json() == {"id": 4}
    assert "X-Request-ID" not in response


def test_the_doctor_names_a_project_url_shadowing_obskits_path(stack: ExitStack, monkeypatch: Any) -> None:
    from django.urls import clear_url_caches, path
    from djproj import urls, views

    from obskit._web.routes import shadowed

    monkeypatch.setattr(urls, "urlpatterns", [*urls.urlpatterns, path("metrics", views.own_metrics)])
    clear_url_caches()
    stack.callback(clear_url_caches)
    obskit.configure(Client().handler, metrics_exporter="prometheus", prometheus_port=0)
    [line] = shadowed("/metrics", {"/health/live": "live"})
    assert "the application serves /metrics itself" in line


def test_the_span_has_the_attributes_a_flask_request_gets(stack: ExitStack) -> None:
    """The same request to Django and to Flask: the same semantic-convention attributes."""
    flask = pytest.importorskip("flask")
    app = flask.Flask("same_attributes")
    app.add_url_rule("/api/items/<int:item_id>/", view_func=lambda item_id: {"id": item_id})
    headers = {"Host": "shop.example:8080", "User-Agent": "probe/1.0", "traceparent": TRACEPARENT}
    client = instrumented_client(stack)
    cap = stack.enter_context(capture())
    client.get("/api/items/7/?q=1", headers=headers)
    [django_span] = server_spans(cap)
    obskit.configure(app)
    cap = stack.enter_context(capture())
    flask_client = app.test_client()
    flask_client.get(
        "/api/items/7/?q=1", headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.1"}, buffered=True
    )
    [flask_span] = server_spans(cap)
    assert dict(django_span.attributes) == dict(flask_span.attributes)
    assert django_span.name == flask_span.name == "GET /api/items/{item_id}/"
