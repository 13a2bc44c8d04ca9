"""The five seed services' hand-written monitoring, rewritten on obskit, in small form.

The seeds are the monitoring guides of five services (docs/migrating.md quotes them): a compliance
API on Azure, an LLM starter, a clustering service ("insights"), an anomaly detector
("pynomaly") and a media catalogue ("apollonia"). Each piece below replaces one of their
hand-written pieces as docs/migrating.md says. :func:`traffic` sends a known amount of traffic,
the numbers below, that tests/integration/test_seed_queries.py turns into the answer each of the
seeds' queries must give.
"""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import FastAPI

import obskit
from obskit import MetricsCollector, health, track_job
from obskit._core import state as _state
from obskit._recording.jobs import _Bound

with warnings.catch_warnings():  # starlette asks for httpx2, not installed here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

# -- the known traffic ----------------------------------------------------------------------------

ROUTE = "/api/media/{media_id}"
FAST_OK, SLOW_OK, FAILED = 3, 2, 2  # GET /api/media/... : 7 requests, 2 of them 500s
REQUESTS = FAST_OK + SLOW_OK + FAILED
SLOW = 1.2  # seconds: the slow requests land in the (1, 2.5] bucket, the others well below 1
JOB_SLEEP = 0.3  # seconds: each timed job lands in the (0.25, 0.5] bucket of the job histogram
CLUSTERING = [("kmeans", 0.71, False), ("kmeans", None, True), ("esn", 0.25, False)]  # method, score, fails
COMPLIANCE = [(500, False), (3000, False), (800, True)]  # article length, fails
MEDIA = [("mp3", False), ("mp3", False), ("flac", False)]  # format, fails
PREDICTIONS, PREDICTION_ERRORS = 4, 1
BACKUPS, BACKUP_ERRORS = 2, 1
CACHE_HITS, CACHE_MISSES = 3, 1
DB_CALLS = [("select_media", 0.004), ("select_media", 0.004), ("select_media", 0.004), ("insert_media", 0.2)]
AI_CALLS = [1.3, 1.3, 40.0]  # seconds: two in (1, 2.5], one in (30, 60]
DB_CONNECTIONS = 12
QUEUES = {"analyzer_queue": 120, "emails": 3}
USER_SESSIONS = 4
DATA_PROCESSED = [1500, 2500]  # bytes
AUTH_FAILURES = 3
MEDIA_FILES = {"mp3": 10, "flac": 5}
UPLOADS = [("mp3", 3_000_000), ("mp3", 5_000_000), ("flac", 40_000_000)]
#: When the successful backup set backup_last_success_timestamp_seconds (time.time()).
backup_times: list[float] = []


def length_bucket(length: int) -> str:
    """The compliance seed's own bucketing of article lengths: a bounded label value."""
    return "small" if length < 1000 else "medium" if length < 5000 else "large"


# -- the services, on obskit ----------------------------------------------------------------------

app = FastAPI(title="seeds")


@app.get(ROUTE)
def get_media(media_id: str) -> dict[str, str]:
    if media_id == "slow":
        time.sleep(SLOW)
    elif media_id == "bad":
        raise RuntimeError("media store unavailable")
    return {"media_id": media_id}


metrics = MetricsCollector()
database_connections = metrics.gauge("database_connections_active", "Active database connections")
queue_messages = metrics.gauge("queue_messages", "Messages waiting", labels=["queue_name"])
user_sessions = metrics.counter("user_sessions", "User sessions started")
data_processed = metrics.counter("data_processed", "Data processed", unit="bytes")
auth_failed = metrics.counter("authentication_failed", "Failed authentications")
circuit_breaker_open = metrics.gauge("circuit_breaker_open", "1 while a breaker is open", labels=["breaker"])
media_files = metrics.gauge("media_files", "Media files in the catalogue", labels=["format"])
upload_size = metrics.histogram(
    "media_upload_size_bytes", "Uploaded file sizes", labels=["format"], buckets=[1e5, 1e6, 1e7, 1e8]
)
last_backup = metrics.gauge("backup_last_success_timestamp_seconds", "When the last backup succeeded")


@track_job("clustering", labels=("method",), results=lambda r: {"silhouette_score": r})
def cluster(method: str, score: float | None) -> float:
    time.sleep(JOB_SLEEP)
    if score is None:
        raise ValueError("did not converge")
    return score


@track_job("compliance_check", labels={"article_length_bucket": lambda length, fail: length_bucket(length)})
def check_compliance(length: int, fail: bool) -> None:
    time.sleep(JOB_SLEEP)
    if fail:
        raise TimeoutError("guideline model timed out")


@track_job("media_processing", labels=("stage", "format"))
def process_media(stage: str, format: str, fail: bool) -> None:
    time.sleep(JOB_SLEEP)
    if fail:
        raise ValueError("unreadable file")


@track_job("ml_prediction", labels={"model_name": "genre_v2"})
def predict(fail: bool) -> None:
    if fail:
        raise ValueError("bad input")


@track_job("backup")
def backup(fail: bool) -> None:
    if fail:
        raise OSError("bucket unreachable")
    backup_times.append(time.time())
    last_backup.set(backup_times[-1])


def redis_ping() -> bool:
    return True


# -- series at zero -------------------------------------------------------------------------------


def start_at_zero() -> None:
    """Create, at zero, every counter and histogram series the traffic will move.

    rate() and increase() cannot see the first increment of a series born between two scrapes
    (Prometheus has no sample before it), which is why Prometheus advises exporting known
    series at 0 from the start. Doing so here makes every rate the seeds ask for exact, so the
    test can compare it with the traffic to the last digit. A service's own metrics do it with
    ``handle.labels(...)`` (and are at 0 from their declaration without labels); the built-in
    families have no public handle, hence the private names.
    """
    state = _state.STATE

    def zero(family: Any, **labels: str) -> None:
        family._child(labels)  # the series, created at 0 (a bound handle waits for its first value)

    for status, error_type in (("200", ""), ("500", "RuntimeError")):
        zero(MetricsCollector._family("http_requests"), method="GET", route=ROUTE, status_code=status)
        zero(MetricsCollector._family("http_duration"), method="GET", route=ROUTE, error_type=error_type)
    for result in ("hit", "miss"):
        zero(MetricsCollector._family("cache"), cache="guidelines", result=result)
    for operation in {op for op, _ in DB_CALLS}:
        zero(MetricsCollector._family("db_duration"), db="default", operation=operation, status="ok")
    zero(MetricsCollector._family("external_duration"), service="openai", operation="chat", status="ok")
    for kind in ("prompt", "completion"):
        zero(MetricsCollector._family("external_tokens"), service="openai", operation="chat", kind=kind)
    jobs: list[tuple[str, tuple[str, ...], dict[str, str]]] = [
        *[("clustering", ("method",), {"method": m}) for m in {m for m, _, _ in CLUSTERING}],
        *[
            ("compliance_check", ("article_length_bucket",), {"article_length_bucket": length_bucket(n)})
            for n, _ in COMPLIANCE
        ],
        *[
            ("media_processing", ("format", "stage"), {"format": f, "stage": "analyze"})
            for f in {f for f, _ in MEDIA}
        ],
        ("ml_prediction", ("model_name",), {"model_name": "genre_v2"}),
        ("backup", (), {}),
    ]
    for job, names, labels in jobs:
        _Bound(state, job, names, labels)  # the jobs' success and error counters and durations
    for file_format in MEDIA_FILES:
        upload_size.labels(format=file_format)  # the public way: a bound series exists at 0
    for counter in (user_sessions, data_processed, auth_failed):
        zero(counter)  # at 0 from their declaration, but in the store before this module's own


# -- the traffic ----------------------------------------------------------------------------------


@contextlib.contextmanager
def stuck_job() -> Iterator[None]:
    """A "reindex" run that never finishes while the block runs: what the JobsStuck alert is for."""
    release = threading.Event()
    started = threading.Event()

    def run() -> None:
        with track_job("reindex"):
            started.set()
            release.wait(60)

    thread = threading.Thread(target=run, name="stuck-reindex")
    thread.start()
    started.wait(10)
    try:
        yield
    finally:
        release.set()
        thread.join(10)


def _quietly(call: Any, *args: Any) -> None:
    with contextlib.suppress(ValueError, TimeoutError, OSError):  # the planned failures
        call(*args)


def traffic() -> None:
    """Send the known traffic: requests, jobs and the helpers' recordings."""
    client = TestClient(app, raise_server_exceptions=False)
    with ThreadPoolExecutor(max_workers=16) as pool:
        # The timed pieces run side by side: the wall time is one slow request, not seven.
        media_ids = ["a"] * FAST_OK + ["slow"] * SLOW_OK + ["bad"] * FAILED
        answers = pool.map(lambda media_id: client.get(f"/api/media/{media_id}").status_code, media_ids)
        jobs = [
            *[pool.submit(_quietly, cluster, method, score) for method, score, _ in CLUSTERING],
            *[pool.submit(_quietly, check_compliance, length, fail) for length, fail in COMPLIANCE],
            *[pool.submit(_quietly, process_media, "analyze", f, fail) for f, fail in MEDIA],
        ]
        statuses = sorted(answers)
        for job in jobs:
            job.result()
    assert statuses == [200] * (FAST_OK + SLOW_OK) + [500] * FAILED, statuses
    assert client.get("/health/ready").status_code == 200  # runs the redis check once
    for index in range(PREDICTIONS):
        _quietly(predict, index < PREDICTION_ERRORS)
    for index in range(BACKUPS):
        _quietly(backup, index < BACKUP_ERRORS)
    for index in range(CACHE_HITS + CACHE_MISSES):
        metrics.cache_access("guidelines", hit=index < CACHE_HITS)
    for operation, duration in DB_CALLS:
        metrics.db_call(operation, duration)
    for duration in AI_CALLS:
        metrics.external_call("openai", "chat", duration, tokens={"prompt": 120, "completion": 30})
    database_connections.set(DB_CONNECTIONS)
    for queue, depth in QUEUES.items():
        queue_messages.set(depth, queue_name=queue)
    user_sessions.inc(USER_SESSIONS)
    for amount in DATA_PROCESSED:
        data_processed.inc(amount)
    auth_failed.inc(AUTH_FAILURES)
    circuit_breaker_open.set(0, breaker="ai_service")
    for file_format, count in MEDIA_FILES.items():
        media_files.set(count, format=file_format)
    for file_format, size in UPLOADS:
        upload_size.observe(size, format=file_format)


def configure() -> None:
    """Set obskit up as the seeds' services would: the app, Prometheus, process and host metrics."""
    obskit.configure(
        app,
        service_name="seeds",
        traces_exporter="none",
        logs_exporter="none",
        metrics_exporter="prometheus",
        prometheus_port=0,
        runtime_metrics=True,
        host_metrics=True,
        access_log=False,
    )
    health.register("redis", redis_ping, timeout=2.0)


def teardown() -> None:
    """Undo :func:`configure` (the health check registry is process-wide)."""
    health.unregister("redis")
    obskit.shutdown(timeout=5)
