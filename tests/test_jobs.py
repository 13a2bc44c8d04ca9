"""track_job: span, jobs counter by status, duration histogram, in-progress gauge, results."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import sys
import time
import traceback
import uuid
from typing import Any

import prometheus_client
import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import obskit
from obskit import track_job
from obskit._core import errors as _errors
from obskit._core import state as _state
from obskit.testing import Capture, capture

SLEEP = 0.1

JOBS = "obskit_jobs_total"
DURATION = "obskit_job_duration_seconds"
IN_PROGRESS = "obskit_jobs_in_progress"
RESULT = "obskit_job_result"


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def _assert_finished(cap: Capture, job: str, status: str, **labels: Any) -> None:
    """Exactly one run of ``job`` finished with ``status``, none with the other, and nothing runs."""
    other = "error" if status == "success" else "success"
    cap.assert_counter(JOBS, 1, job_name=job, status=status, **labels)
    cap.assert_counter(JOBS, 0, job_name=job, status=other, **labels)
    assert cap.histogram_count(DURATION, job_name=job, **labels) == 1
    assert cap.gauge_value(IN_PROGRESS, job_name=job, **labels) == 0


def _default_store_sample(sample: str, **values: str) -> float | None:
    """A sample of the current store, read from its registry."""
    return _state.STATE.store.registry.get_sample_value(sample, values)


def _raise_here(exc: BaseException, where: dict[str, Any]) -> None:
    where["line"] = sys._getframe().f_lineno + 1
    raise exc


# -- decorator: metrics and span ------------------------------------------------------------------


def test_successful_job_counts_success_observes_duration_and_ends_span_ok(obskit_capture: Capture) -> None:
    @track_job("etl")
    def etl(rows: int) -> int:
        return rows * 2

    assert etl(21) == 42
    _assert_finished(obskit_capture, "etl", "success")
    span = obskit_capture.assert_span("etl", status="ok")
    assert span.attributes["job.name"] == "etl"  # type: ignore[index]


def test_failing_job_counts_error_and_propagates_the_same_exception(obskit_capture: Capture) -> None:
    error = ValueError("bad input")
    where: dict[str, Any] = {}

    @track_job("etl_fail")
    def etl() -> None:
        _raise_here(error, where)

    with pytest.raises(ValueError, match="bad input") as info:
        etl()
    assert info.value is error
    last = traceback.extract_tb(info.value.__traceback__)[-1]
    assert (last.name, last.lineno) == ("_raise_here", where["line"])
    _assert_finished(obskit_capture, "etl_fail", "error")
    span = obskit_capture.assert_span("etl_fail", status="error")
    assert [e.name for e in span.events] == ["exception"]


def test_decorator_without_arguments_names_job_after_qualname(obskit_capture: Capture) -> None:
    @track_job
    def nightly() -> str:
        return "ok"

    assert nightly() == "ok"
    _assert_finished(obskit_capture, nightly.__qualname__, "success")
    obskit_capture.assert_span(nightly.__qualname__, status="ok")


def test_job_name_must_be_a_non_empty_string() -> None:
    with pytest.raises(TypeError):
        track_job("")
    with pytest.raises(TypeError):
        track_job(42)  # type: ignore[call-overload]


def test_decorated_job_keeps_signature_kind_and_metadata() -> None:
    async def fetch(url: str, *, timeout: float = 1.0) -> bytes:
        """Fetch a page."""
        return b""

    wrapped = track_job("fetch")(fetch)
    assert inspect.signature(wrapped) == inspect.signature(fetch)
    assert inspect.iscoroutinefunction(wrapped)
    assert wrapped.__name__ == "fetch"
    assert wrapped.__doc__ == "Fetch a page."
    assert wrapped.__wrapped__ is fetch


def test_in_progress_is_one_during_the_job_and_zero_after(obskit_capture: Capture) -> None:
    during: list[float] = []

    @track_job("busy")
    def busy() -> None:
        during.append(obskit_capture.gauge_value(IN_PROGRESS, job_name="busy"))
        during.append(obskit_capture.counter_value(JOBS, job_name="busy"))

    busy()
    assert during == [1, 0]
    assert obskit_capture.gauge_value(IN_PROGRESS, job_name="busy") == 0


def test_in_progress_returns_to_zero_after_failure(obskit_capture: Capture) -> None:
    during: list[float] = []

    @track_job("busy_fail")
    def busy() -> None:
        during.append(obskit_capture.gauge_value(IN_PROGRESS, job_name="busy_fail"))
        raise RuntimeError("x")

    with pytest.raises(RuntimeError):
        busy()
    assert during == [1]
    assert obskit_capture.gauge_value(IN_PROGRESS, job_name="busy_fail") == 0


def test_repeated_runs_accumulate(obskit_capture: Capture) -> None:
    @track_job("repeat")
    def run(fail: bool) -> None:
        if fail:
            raise KeyError("f")

    for fail in (False, True, False, False, True):
        with contextlib.suppress(KeyError):
            run(fail)
    obskit_capture.assert_counter(JOBS, 3, job_name="repeat", status="success")
    obskit_capture.assert_counter(JOBS, 2, job_name="repeat", status="error")
    assert obskit_capture.histogram_count(DURATION, job_name="repeat") == 5
    assert len(obskit_capture.spans("repeat")) == 5


def test_sync_job_duration_sum_is_at_least_the_sleep(obskit_capture: Capture) -> None:
    @track_job("sleepy")
    def sleepy() -> None:
        time.sleep(SLEEP)

    sleepy()
    assert obskit_capture.histogram_sum(DURATION, job_name="sleepy") >= SLEEP
    buckets = obskit_capture.histogram_buckets(DURATION, job_name="sleepy")
    assert buckets["0.05"] == 0  # seconds-scale buckets: a 100 ms job is above 50 ms
    assert buckets["+Inf"] == 1


# -- kinds of functions ---------------------------------------------------------------------------------


async def test_async_job_metrics_in_progress_and_duration(obskit_capture: Capture) -> None:
    during: list[float] = []

    @track_job("async_job")
    async def work() -> str:
        await asyncio.sleep(SLEEP)
        during.append(obskit_capture.gauge_value(IN_PROGRESS, job_name="async_job"))
        return "done"

    assert await work() == "done"
    assert during == [1]
    _assert_finished(obskit_capture, "async_job", "success")
    assert obskit_capture.histogram_sum(DURATION, job_name="async_job") >= SLEEP
    span = obskit_capture.assert_span("async_job", status="ok")
    assert span.end_time - span.start_time >= SLEEP * 1e9  # type: ignore[operator]


async def test_async_job_failure_counts_error(obskit_capture: Capture) -> None:
    error = TimeoutError("slow")

    @track_job("async_fail")
    async def work() -> None:
        await asyncio.sleep(0)
        raise error

    with pytest.raises(TimeoutError) as info:
        await work()
    assert info.value is error
    _assert_finished(obskit_capture, "async_fail", "error")


def test_generator_job_is_in_progress_while_suspended_and_times_whole_iteration(
    obskit_capture: Capture,
) -> None:
    @track_job("gen_job")
    def batches() -> Any:
        for i in range(4):
            time.sleep(SLEEP / 4)
            yield i
        return "all"

    gen = batches()
    assert next(gen) == 0
    assert obskit_capture.gauge_value(IN_PROGRESS, job_name="gen_job") == 1
    assert obskit_capture.counter_value(JOBS, job_name="gen_job") == 0
    assert gen.send("ignored") == 1
    assert next(gen) == 2
    assert next(gen) == 3
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value == "all"
    _assert_finished(obskit_capture, "gen_job", "success")
    assert obskit_capture.histogram_sum(DURATION, job_name="gen_job") >= SLEEP


def test_generator_job_closed_early_counts_success(obskit_capture: Capture) -> None:
    @track_job("gen_closed")
    def batches() -> Any:
        yield from range(10)

    for i in batches():
        if i == 2:
            break
    _assert_finished(obskit_capture, "gen_closed", "success")
    obskit_capture.assert_span("gen_closed", status="ok")


def test_generator_job_error_counts_error(obskit_capture: Capture) -> None:
    @track_job("gen_err")
    def batches() -> Any:
        yield 1
        raise ValueError("broken batch")

    with pytest.raises(ValueError, match="broken batch"):
        list(batches())
    _assert_finished(obskit_capture, "gen_err", "error")


def test_generator_job_throw_passes_through(obskit_capture: Capture) -> None:
    @track_job("gen_throw")
    def batches() -> Any:
        while True:
            try:
                yield "item"
            except LookupError as exc:
                yield exc

    gen = batches()
    next(gen)
    error = LookupError("retry")
    assert gen.throw(error) is error
    gen.close()
    _assert_finished(obskit_capture, "gen_throw", "success")


async def test_async_generator_job_in_progress_asend_and_duration(obskit_capture: Capture) -> None:
    received: list[Any] = []

    @track_job("agen_job")
    async def stream() -> Any:
        value = None
        for i in range(4):
            await asyncio.sleep(SLEEP / 4)
            value = yield i
            received.append(value)

    agen = stream()
    assert await agen.asend(None) == 0
    assert obskit_capture.gauge_value(IN_PROGRESS, job_name="agen_job") == 1
    for i in range(1, 4):
        assert await agen.asend(f"v{i}") == i
    with pytest.raises(StopAsyncIteration):
        await agen.asend("last")
    assert received == ["v1", "v2", "v3", "last"]
    _assert_finished(obskit_capture, "agen_job", "success")
    assert obskit_capture.histogram_sum(DURATION, job_name="agen_job") >= SLEEP


async def test_async_generator_job_athrow_unhandled_counts_error(obskit_capture: Capture) -> None:
    @track_job("agen_err")
    async def stream() -> Any:
        yield 1
        yield 2

    agen = stream()
    await agen.__anext__()
    error = ValueError("abort")
    with pytest.raises(ValueError, match="abort") as info:
        await agen.athrow(error)
    assert info.value is error
    _assert_finished(obskit_capture, "agen_err", "error")


async def test_async_generator_job_aclose_counts_success(obskit_capture: Capture) -> None:
    @track_job("agen_closed")
    async def stream() -> Any:
        yield 1
        yield 2

    agen = stream()
    await agen.__anext__()
    await agen.aclose()
    _assert_finished(obskit_capture, "agen_closed", "success")


async def test_jobs_on_methods_classmethods_and_staticmethods(obskit_capture: Capture) -> None:
    class Pipeline:
        @track_job("method")
        def method(self) -> Any:
            return self

        @track_job("cm_above")
        @classmethod
        def cm_above(cls) -> Any:
            return cls

        @classmethod
        @track_job("cm_below")
        async def cm_below(cls) -> Any:
            return cls

        @track_job
        @staticmethod
        def sm_above() -> int:
            return 1

        @staticmethod
        @track_job("sm_below")
        def sm_below() -> int:
            return 2

    p = Pipeline()
    assert p.method() is p
    assert Pipeline.cm_above() is Pipeline
    assert await p.cm_below() is Pipeline
    assert Pipeline.sm_above() == 1
    assert p.sm_below() == 2
    for job in ("method", "cm_above", "cm_below", "sm_below", Pipeline.sm_above.__qualname__):
        _assert_finished(obskit_capture, job, "success")
    assert Pipeline.sm_above.__qualname__.endswith("Pipeline.sm_above")


# -- labels and results --------------------------------------------------------------------------------


def test_extra_labels_appear_on_every_job_family_and_span(obskit_capture: Capture) -> None:
    @track_job("train", labels={"team": "ml", "shard": 3})
    def train() -> None:
        assert obskit_capture.gauge_value(IN_PROGRESS, job_name="train", team="ml", shard="3") == 1

    train()
    _assert_finished(obskit_capture, "train", "success", team="ml", shard="3")
    samples = [
        sample
        for family in obskit_capture.store.registry.collect()
        for sample in family.samples
        if sample.name.startswith(("obskit_jobs", "obskit_job_duration"))
        and sample.labels.get("job_name") == "train"
    ]
    assert samples
    assert all(s.labels["team"] == "ml" and s.labels["shard"] == "3" for s in samples)
    obskit_capture.assert_span(
        "train", status="ok", **{"job.team": "ml", "job.shard": "3", "job.name": "train"}
    )


def test_results_callable_sets_result_gauge_and_span_attribute(obskit_capture: Capture) -> None:
    @track_job(
        "cluster", results=lambda value: {"silhouette": value["score"], "clusters": len(value["labels"])}
    )
    def cluster() -> dict[str, Any]:
        return {"score": 0.71, "labels": [0, 1, 2]}

    result = cluster()
    assert result == {"score": 0.71, "labels": [0, 1, 2]}
    assert obskit_capture.gauge_value(RESULT, job_name="cluster", result="silhouette") == 0.71
    assert obskit_capture.gauge_value(RESULT, job_name="cluster", result="clusters") == 3
    obskit_capture.assert_span(
        "cluster", status="ok", **{"job.result.silhouette": 0.71, "job.result.clusters": 3}
    )


def test_results_callable_receives_the_exact_return_value(obskit_capture: Capture) -> None:
    seen: list[Any] = []
    marker = object()

    def results(value: Any) -> dict[str, float]:
        seen.append(value)
        return {}

    assert track_job("exact", results=results)(lambda: marker)() is marker
    assert seen == [marker]
    assert seen[0] is marker


def test_results_callable_gets_generator_return_value(obskit_capture: Capture) -> None:
    @track_job("gen_results", results=lambda total: {"total": total})
    def batches() -> Any:
        yield 1
        yield 2
        return 3.5

    assert list(batches()) == [1, 2]
    assert obskit_capture.gauge_value(RESULT, job_name="gen_results", result="total") == 3.5


def test_results_callable_not_called_when_job_fails(obskit_capture: Capture) -> None:
    calls: list[Any] = []

    @track_job("no_results", results=lambda v: calls.append(v) or {"x": 1})
    def fail() -> None:
        raise ValueError("x")

    with pytest.raises(ValueError, match="x"):
        fail()
    assert calls == []
    assert obskit_capture.gauge_value(RESULT, job_name="no_results") == 0


def test_with_block_job_result_sets_gauge_and_span_attribute(obskit_capture: Capture) -> None:
    with track_job("cluster_block") as job:
        assert isinstance(job, obskit.Job)
        assert job.span is trace.get_current_span()
        assert obskit_capture.gauge_value(IN_PROGRESS, job_name="cluster_block") == 1
        job.result("silhouette", 0.7)
    assert obskit_capture.gauge_value(RESULT, job_name="cluster_block", result="silhouette") == 0.7
    _assert_finished(obskit_capture, "cluster_block", "success")
    obskit_capture.assert_span("cluster_block", status="ok", **{"job.result.silhouette": 0.7})


def test_with_block_job_result_keeps_the_last_value(obskit_capture: Capture) -> None:
    for score in (0.1, 0.9, 0.4):
        with track_job("scores") as job:
            job.result("score", score)
    assert obskit_capture.gauge_value(RESULT, job_name="scores", result="score") == 0.4


def test_with_block_failure_counts_error_and_propagates(obskit_capture: Capture) -> None:
    error = RuntimeError("block failed")
    with pytest.raises(RuntimeError) as info, track_job("block_fail"):
        raise error
    assert info.value is error
    _assert_finished(obskit_capture, "block_fail", "error")
    obskit_capture.assert_span("block_fail", status="error")


async def test_async_with_block_job(obskit_capture: Capture) -> None:
    async with track_job("async_block") as job:
        await asyncio.sleep(SLEEP)
        job.result("rows", 10)
    _assert_finished(obskit_capture, "async_block", "success")
    assert obskit_capture.gauge_value(RESULT, job_name="async_block", result="rows") == 10
    assert obskit_capture.histogram_sum(DURATION, job_name="async_block") >= SLEEP


def test_job_span_is_child_of_current_span(obskit_capture: Capture) -> None:
    @obskit.trace_operation("step")
    def step() -> None:
        pass

    @track_job("parent_job")
    def job() -> None:
        step()

    with obskit.trace_operation("request") as request:
        job()
    job_span = obskit_capture.spans("parent_job")[0]
    step_span = obskit_capture.spans("step")[0]
    assert job_span.parent is not None
    assert job_span.parent.span_id == request.get_span_context().span_id
    assert step_span.parent is not None
    assert step_span.parent.span_id == job_span.context.span_id


# -- namespace -------------------------------------------------------------------------------------------


def test_custom_metric_namespace_names_the_job_families() -> None:
    obskit.configure(
        metric_namespace="acme", traces_exporter="none", metrics_exporter="none", logs_exporter="none"
    )

    @track_job("ns_job", results=lambda v: {"score": v})
    def job() -> float:
        return 0.5

    with capture() as cap:
        assert job() == 0.5
        with track_job("ns_block") as block:
            block.result("quality", 2)
    cap.assert_counter("acme_jobs_total", 1, job_name="ns_job", status="success")
    assert cap.histogram_count("acme_job_duration_seconds", job_name="ns_job") == 1
    assert cap.gauge_value("acme_jobs_in_progress", job_name="ns_job") == 0
    assert cap.gauge_value("acme_job_result", job_name="ns_job", result="score") == 0.5
    assert cap.gauge_value("acme_job_result", job_name="ns_block", result="quality") == 2
    names = cap.metric_names()
    assert {
        "acme_jobs_total",
        "acme_job_duration_seconds",
        "acme_jobs_in_progress",
        "acme_job_result",
    } <= names
    assert not any(n.startswith("obskit_job") for n in names)


# -- without a tracer -----------------------------------------------------------------------------------


def test_without_configure_metrics_go_to_default_store_and_no_span_is_made() -> None:
    assert _state.STATE.tracer is None
    name = _unique("unconfigured")
    during: list[Any] = []

    @track_job(name, results=lambda v: {"value": v})
    def job() -> int:
        during.append(trace.get_current_span().get_span_context().is_valid)
        during.append(_default_store_sample("obskit_jobs_in_progress", job_name=name))
        return 7

    assert job() == 7
    assert during == [False, 1.0]
    assert _default_store_sample("obskit_jobs_total", job_name=name, status="success") == 1.0
    assert _default_store_sample("obskit_job_duration_seconds_count", job_name=name) == 1.0
    assert _default_store_sample("obskit_jobs_in_progress", job_name=name) == 0.0
    assert _default_store_sample("obskit_job_result", job_name=name, result="value") == 7.0


def test_without_configure_with_block_yields_job_without_span() -> None:
    name = _unique("unconfigured_block")
    with track_job(name) as job:
        assert job.span is None
        job.result("r", 1.5)
    assert _default_store_sample("obskit_job_result", job_name=name, result="r") == 1.5
    assert _default_store_sample("obskit_jobs_total", job_name=name, status="success") == 1.0


def test_without_configure_failures_are_counted() -> None:
    name = _unique("unconfigured_fail")
    error = ValueError("x")

    @track_job(name)
    def job() -> None:
        raise error

    with pytest.raises(ValueError, match="x") as info:
        job()
    assert info.value is error
    assert _default_store_sample("obskit_jobs_total", job_name=name, status="error") == 1.0


def test_traces_exporter_none_still_records_metrics_in_configured_store() -> None:
    obskit.configure(traces_exporter="none", metrics_exporter="none", logs_exporter="none")
    assert _state.STATE.tracer is None
    name = _unique("configured_no_traces")

    @track_job(name)
    def job() -> str:
        return "x"

    assert job() == "x"
    assert _default_store_sample("obskit_jobs_total", job_name=name, status="success") == 1.0


# -- concurrency ----------------------------------------------------------------------------------------


async def test_concurrent_async_jobs_are_all_in_progress_and_parented_per_task(
    obskit_capture: Capture,
) -> None:
    n = 20
    all_started = asyncio.Event()
    started = 0
    peak: list[float] = []

    @track_job("parallel")
    async def job(i: int) -> int:
        nonlocal started
        started += 1
        if started == n:
            all_started.set()
        await all_started.wait()
        peak.append(obskit_capture.gauge_value(IN_PROGRESS, job_name="parallel"))
        return i

    async def request(i: int) -> tuple[int, int]:
        async with obskit.trace_operation("request") as span:
            return await job(i), span.get_span_context().span_id

    results = await asyncio.gather(*(request(i) for i in range(n)))
    assert [r for r, _ in results] == list(range(n))
    assert peak[0] == n
    obskit_capture.assert_counter(JOBS, n, job_name="parallel", status="success")
    assert obskit_capture.gauge_value(IN_PROGRESS, job_name="parallel") == 0
    request_ids = {span_id for _, span_id in results}
    parents = [s.parent.span_id for s in obskit_capture.spans("parallel") if s.parent is not None]
    assert sorted(parents) == sorted(request_ids)
    assert len(set(parents)) == n


# -- telemetry failures never reach user code ------------------------------------------------------------


@pytest.mark.usefixtures("swallow_internal_errors")
def test_raising_results_callable_keeps_return_value_and_success(obskit_capture: Capture) -> None:
    marker = object()

    def results(value: Any) -> dict[str, float]:
        raise ZeroDivisionError("bad results")

    @track_job("bad_results", results=results)
    def job() -> object:
        return marker

    assert job() is marker
    obskit_capture.assert_counter(JOBS, 1, job_name="bad_results", status="success")
    assert obskit_capture.gauge_value(IN_PROGRESS, job_name="bad_results") == 0
    obskit_capture.assert_span("bad_results", status="ok")


@pytest.mark.usefixtures("swallow_internal_errors")
def test_non_numeric_result_value_does_not_break_the_block(obskit_capture: Capture) -> None:
    with track_job("bad_value") as job:
        job.result("score", "not a number")  # type: ignore[arg-type]
        job.result("good", 1.0)
    assert obskit_capture.gauge_value(RESULT, job_name="bad_value", result="good") == 1.0
    obskit_capture.assert_counter(JOBS, 1, job_name="bad_value", status="success")


def test_raising_results_callable_raises_in_obskit_own_suite(obskit_capture: Capture) -> None:
    assert _errors.RAISE_INTERNAL_ERRORS

    def results(value: Any) -> dict[str, float]:
        raise ZeroDivisionError("bad results")

    @track_job("bad_results_raise", results=results)
    def job() -> int:
        return 1

    with pytest.raises(ZeroDivisionError, match="bad results"):
        job()


def _break_counter_inc(monkeypatch: pytest.MonkeyPatch) -> None:
    def inc(self: Any, amount: float = 1, exemplar: Any = None) -> None:
        raise RuntimeError("prometheus is broken")

    monkeypatch.setattr(prometheus_client.Counter, "inc", inc)


@pytest.mark.usefixtures("swallow_internal_errors")
async def test_broken_prometheus_counter_keeps_results_and_exceptions(
    obskit_capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    _break_counter_inc(monkeypatch)
    marker = object()
    error = ValueError("user")

    @track_job("broken_counter")
    def ok() -> object:
        return marker

    @track_job("broken_counter")
    async def aok() -> object:
        return marker

    @track_job("broken_counter")
    def fail() -> None:
        raise error

    @track_job("broken_counter")
    def gen() -> Any:
        value = yield 1
        return value

    assert ok() is marker
    assert await aok() is marker
    with pytest.raises(ValueError, match="user") as info:
        fail()
    assert info.value is error
    g = gen()
    next(g)
    with pytest.raises(StopIteration) as stop:
        g.send(marker)
    assert stop.value.value is marker
    with pytest.raises(ValueError, match="user") as info, track_job("broken_counter"):
        raise error
    assert info.value is error


def test_broken_prometheus_counter_raises_in_obskit_own_suite(
    obskit_capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    _break_counter_inc(monkeypatch)

    @track_job("broken_counter_raise")
    def ok() -> int:
        return 1

    with pytest.raises(RuntimeError, match="prometheus is broken"):
        ok()


def _break_start_span(monkeypatch: pytest.MonkeyPatch) -> None:
    def start_span(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tracer is broken")

    assert _state.STATE.tracer is not None
    monkeypatch.setattr(_state.STATE.tracer, "start_span", start_span)


@pytest.mark.usefixtures("swallow_internal_errors")
def test_broken_tracer_keeps_result_and_does_not_leave_job_in_progress(
    obskit_capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    _break_start_span(monkeypatch)
    error = KeyError("user")

    @track_job("broken_tracer")
    def ok() -> list[int]:
        return [1]

    @track_job("broken_tracer")
    def fail() -> None:
        raise error

    assert ok() == [1]
    with pytest.raises(KeyError) as info:
        fail()
    assert info.value is error
    with track_job("broken_tracer") as job:
        job.result("r", 1)
    assert obskit_capture.gauge_value(IN_PROGRESS, job_name="broken_tracer") == 0
    assert obskit_capture.spans() == []


def test_broken_tracer_raises_in_obskit_own_suite(
    obskit_capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    _break_start_span(monkeypatch)

    @track_job("broken_tracer_raise")
    def ok() -> int:
        return 1

    with pytest.raises(RuntimeError, match="tracer is broken"):
        ok()


def test_job_span_status_is_ok_or_error_matching_the_outcome(obskit_capture: Capture) -> None:
    @track_job("status_codes")
    def job(fail: bool) -> None:
        if fail:
            raise ValueError("f")

    job(False)
    with pytest.raises(ValueError, match="f"):
        job(True)
    codes = sorted(s.status.status_code.name for s in obskit_capture.spans("status_codes"))
    assert codes == [StatusCode.ERROR.name, StatusCode.OK.name]


@pytest.mark.usefixtures("swallow_internal_errors")
def test_broken_counter_still_ends_span_and_in_progress(
    obskit_capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    _break_counter_inc(monkeypatch)

    @track_job("broken_counter_cleanup")
    def ok() -> int:
        return 1

    assert ok() == 1
    assert obskit_capture.gauge_value("obskit_jobs_in_progress", job_name="broken_counter_cleanup") == 0
    obskit_capture.assert_span("broken_counter_cleanup", status="OK")


def test_every_run_past_the_series_cap_counts_as_overflow(obskit_capture: Capture) -> None:
    obskit_capture.store.series_cap = 2
    jobs = [track_job(f"capped_{i}") for i in range(3)]
    for _ in range(4):
        for job in jobs:
            with job:
                pass
    # capped_0 takes success+error series of the counter (2 = the cap), capped_1 and capped_2 overflow.
    assert obskit_capture.counter_value("obskit_telemetry_overflow", metric="obskit_jobs_total") >= 8
    assert obskit_capture.counter_value("obskit_jobs", job_name="__overflow__") == 8
