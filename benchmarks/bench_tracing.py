"""Benchmarks 1-3: track_job and trace_operation against the code they replace.

obskit runs as ``configure()`` sets it up (``_setup.configured``: its sampler, drop-counting and
batch processors, cleaning before export, exemplars), spans discarded at the end of its pipeline.
The hand-written side has its own ``TracerProvider`` (default sampler) whose ``BatchSpanProcessor``
(same queue and batch sizes) feeds the same kind of discarding exporter.

1. ``@track_job`` (sync and async, tracing on) against a hand-written equivalent: a span from
   ``tracer.start_as_current_span`` with the ``job.name`` attribute and status OK, plus
   prometheus_client children bound in advance (jobs counter, duration histogram observed with
   ``perf_counter``, in-progress gauge inc/dec).
2. ``@trace_operation`` (sync, async, and the ``with`` block) against a raw
   ``with tracer.start_as_current_span(name):`` on the hand-written provider.
3. Tracing off (``configure(traces_exporter="none")``): ``@track_job`` records metrics only,
   against the same three prometheus_client children; ``@trace_operation`` against a plain
   undecorated call.
C. Cleaning an ended span before export (on the export thread, once per span whatever the number
   of exporters): value patterns on (``redact_text=True``, the default) against off; attributes
   holding a credential against the same without; the string cache defeated (every value new);
   and what cleaning costs beside making the span itself.
"""

from __future__ import annotations

from typing import Any

from _harness import Config, Row, Side, async_loop, compare, loop
from _setup import (
    EXPORTERS,
    MAX_SPANS_PER_SAMPLE,
    PromJob,
    check_no_drops,
    configured,
    hand_written_provider,
    perf_counter,
)
from opentelemetry.trace import Status, StatusCode

import obskit
from obskit._core.redact import Redactor
from obskit._export.redacting import SpanCleaner

JOB = "bench_job"
OP = "bench_op"
_OK = Status(StatusCode.OK)


def work() -> int:
    return 1


async def awork() -> int:
    return 1


def _hand_written(tracer: Any, prom: PromJob) -> tuple[Any, Any]:
    """The job decorator users write by hand (as the seeds do), for sync and async bodies."""
    success, error, duration, in_progress = prom.success, prom.error, prom.duration, prom.in_progress
    attributes = {"job.name": JOB}

    def job() -> int:
        in_progress.inc()
        start = perf_counter()
        try:
            with tracer.start_as_current_span(JOB, attributes=attributes) as span:
                result = work()
                span.set_status(_OK)
        except BaseException:
            error.inc()
            raise
        else:
            success.inc()
        finally:
            duration.observe(perf_counter() - start)
            in_progress.dec()
        return result

    async def ajob() -> int:
        in_progress.inc()
        start = perf_counter()
        try:
            with tracer.start_as_current_span(JOB, attributes=attributes) as span:
                result = await awork()
                span.set_status(_OK)
        except BaseException:
            error.inc()
            raise
        else:
            success.inc()
        finally:
            duration.observe(perf_counter() - start)
            in_progress.dec()
        return result

    return job, ajob


def _hand_written_metrics(prom: PromJob) -> tuple[Any, Any]:
    """The same without a span: what a metrics-only job wrapper costs."""
    success, error, duration, in_progress = prom.success, prom.error, prom.duration, prom.in_progress

    def job() -> int:
        in_progress.inc()
        start = perf_counter()
        try:
            result = work()
        except BaseException:
            error.inc()
            raise
        else:
            success.inc()
        finally:
            duration.observe(perf_counter() - start)
            in_progress.dec()
        return result

    async def ajob() -> int:
        in_progress.inc()
        start = perf_counter()
        try:
            result = await awork()
        except BaseException:
            error.inc()
            raise
        else:
            success.inc()
        finally:
            duration.observe(perf_counter() - start)
            in_progress.dec()
        return result

    return job, ajob


def _raw_spans(tracer: Any) -> tuple[Any, Any]:
    def op() -> int:
        with tracer.start_as_current_span(OP):
            return work()

    async def aop() -> int:
        with tracer.start_as_current_span(OP):
            return await awork()

    return op, aop


def _obskit_functions() -> dict[str, Any]:
    @obskit.track_job(JOB)
    def job() -> int:
        return work()

    @obskit.track_job(JOB)
    async def ajob() -> int:
        return await awork()

    @obskit.trace_operation(OP)
    def op() -> int:
        return work()

    @obskit.trace_operation(OP)
    async def aop() -> int:
        return await awork()

    return {"job": job, "ajob": ajob, "op": op, "aop": aop}


#: A server span's usual attributes, and the same with two credentials in their values.
CLEAN_ATTRIBUTES: dict[str, Any] = {
    "http.request.method": "GET",
    "url.scheme": "http",
    "url.path": "/items/42",
    "http.route": "/items/{item_id}",
    "http.response.status_code": 200,
    "client.address": "127.0.0.1",
    "user_agent.original": "python-httpx/0.28.1",
    "url.full": "http://inventory:8080/items/42?page=2&size=10",
}
CREDENTIAL_ATTRIBUTES: dict[str, Any] = {
    **CLEAN_ATTRIBUTES,
    "url.full": "http://inventory:8080/items/42?page=2&api_key=k-8f2a9c",
    "db.statement": "connect host=db user=app password=hunter2",
}


def _ended_span(tracer: Any, attributes: dict[str, Any]) -> Any:
    with tracer.start_as_current_span("GET /items/{item_id}", attributes=attributes) as span:
        pass
    return span


def _cleaning_rows(config: Config, tracer: Any, flush: Any) -> list[Row]:
    """Benchmark C: SpanCleaner.span on an ended span (the attributes put back before each clean)."""
    on, off = SpanCleaner(Redactor()), SpanCleaner(Redactor(text=False))
    clean = _ended_span(tracer, CLEAN_ATTRIBUTES)
    secret = _ended_span(tracer, CREDENTIAL_ATTRIBUTES)
    clean_attributes, secret_attributes = clean._attributes, secret._attributes
    stmt = "s._attributes = a\nclean(s)"
    rows = [
        compare(
            "C",
            "span cleaning: value patterns on vs off",
            Side("redact_text=False", loop(stmt, {"s": clean, "a": clean_attributes, "clean": off.span})),
            Side("redact_text=True", loop(stmt, {"s": clean, "a": clean_attributes, "clean": on.span})),
            config,
            note="8 attributes, no credential, values seen before",
        ),
        compare(
            "C",
            "span cleaning: with a credential vs without",
            Side("no credential", loop(stmt, {"s": clean, "a": clean_attributes, "clean": on.span})),
            Side("2 credentials", loop(stmt, {"s": secret, "a": secret_attributes, "clean": on.span})),
            config,
            note="redact_text=True; the span's attributes copied and redacted",
        ),
    ]
    # Both memories cleared: the strings' cleaned forms and the (key, value) pairs found clean.
    uncached = "s._attributes = a\ntexts.clear()\npairs.clear()\nclean(s)"
    rows.append(
        compare(
            "C",
            "span cleaning: every value new (no cache)",
            Side(
                "redact_text=False",
                loop(
                    uncached,
                    {
                        "s": clean,
                        "a": clean_attributes,
                        "clean": off.span,
                        "texts": off._texts,
                        "pairs": off._clean,
                    },
                ),
            ),
            Side(
                "redact_text=True",
                loop(
                    uncached,
                    {
                        "s": clean,
                        "a": clean_attributes,
                        "clean": on.span,
                        "texts": on._texts,
                        "pairs": on._clean,
                    },
                ),
            ),
            config,
            note="the worst case: each string scrubbed",
        )
    )
    share = compare(
        "C",
        "span cleaning beside making the span",
        Side(
            "start_as_current_span",
            loop(
                "with tracer.start_as_current_span(N, attributes=a):\n    pass",
                {"tracer": tracer, "N": OP, "a": CLEAN_ATTRIBUTES},
            ),
            flush,
        ),
        Side("SpanCleaner.span", loop(stmt, {"s": clean, "a": clean_attributes, "clean": on.span})),
        config,
        max_iterations=MAX_SPANS_PER_SAMPLE,
    )
    share.note = f"cleaning is {share.ratio or 0:.0%} of a span's cost, off the request path"
    rows.append(share)
    return rows


def _check(state: Any, exporter: Any, expected_spans: bool) -> None:
    """The obskit side really recorded what the baseline records, and dropped nothing."""
    sample = state.store.registry.get_sample_value(
        "obskit_jobs_total", {"job_name": JOB, "status": "success"}
    )
    if not sample:
        raise RuntimeError("track_job recorded no jobs")
    if expected_spans:
        state.tracer_provider.force_flush()
        if not EXPORTERS or not EXPORTERS[-1].exported:
            raise RuntimeError("no obskit span reached the discarding exporter")
        if not exporter.exported:
            raise RuntimeError("no hand-written span reached the discarding exporter")
    check_no_drops(state)


def run(config: Config) -> list[Row]:
    rows: list[Row] = []
    cap = MAX_SPANS_PER_SAMPLE

    with configured() as state:
        ob = _obskit_functions()
        ours = state.tracer_provider
        if state.settings.export_queue_size <= cap:
            raise RuntimeError("a sample could fill obskit's span queue")
        provider, exporter = hand_written_provider(state.settings)
        tracer = provider.get_tracer("bench")

        def spans(label: str, stmt: str, ns: dict[str, Any], is_async: bool = False) -> Side:
            # Both pipelines flushed before every sample of either side: each sample starts empty.
            def flush() -> None:
                provider.force_flush()
                ours.force_flush()

            return Side(label, (async_loop if is_async else loop)(stmt, ns), flush)

        job, ajob = _hand_written(tracer, PromJob(JOB))
        rows.append(
            compare(
                "1",
                "track_job, sync, traced",
                spans("start_as_current_span + prom children", "f()", {"f": job}),
                spans("obskit", "f()", {"f": ob["job"]}),
                config,
                max_ratio=0.9,
                max_iterations=cap,
            )
        )
        rows.append(
            compare(
                "1",
                "track_job, async, traced",
                spans("start_as_current_span + prom children", "await f()", {"f": ajob}, True),
                spans("obskit", "await f()", {"f": ob["ajob"]}, True),
                config,
                max_ratio=0.9,
                max_iterations=cap,
            )
        )
        op, aop = _raw_spans(tracer)
        rows.append(
            compare(
                "2",
                "trace_operation, sync",
                spans("with start_as_current_span", "f()", {"f": op}),
                spans("obskit", "f()", {"f": ob["op"]}),
                config,
                max_ratio=1.05,
                max_iterations=cap,
            )
        )
        rows.append(
            compare(
                "2",
                "trace_operation, async",
                spans("with start_as_current_span", "await f()", {"f": aop}, True),
                spans("obskit", "await f()", {"f": ob["aop"]}, True),
                config,
                max_ratio=1.05,
                max_iterations=cap,
            )
        )
        rows.append(
            compare(
                "2",
                "trace_operation, with-block",
                spans(
                    "with start_as_current_span",
                    "with tracer.start_as_current_span(OP):\n    work()",
                    {"tracer": tracer, "OP": OP, "work": work},
                ),
                spans(
                    "obskit",
                    "with trace_operation(OP):\n    work()",
                    {"trace_operation": obskit.trace_operation, "OP": OP, "work": work},
                ),
                config,
                max_ratio=1.05,
                max_iterations=cap,
                note="block built per use, as written inline",
            )
        )
        _check(state, exporter, expected_spans=True)
        rows += _cleaning_rows(config, tracer, provider.force_flush)
        provider.shutdown()

    with configured(traces_exporter="none") as state:
        if state.tracer is not None:
            raise RuntimeError("tracing should be off")
        ob = _obskit_functions()
        job, ajob = _hand_written_metrics(PromJob(JOB))
        rows.append(
            compare(
                "3",
                "track_job, sync, tracing off",
                Side("prom counter+histogram+gauge", loop("f()", {"f": job})),
                Side("obskit", loop("f()", {"f": ob["job"]})),
                config,
                max_ratio=1.2,
            )
        )
        rows.append(
            compare(
                "3",
                "track_job, async, tracing off",
                Side("prom counter+histogram+gauge", async_loop("await f()", {"f": ajob})),
                Side("obskit", async_loop("await f()", {"f": ob["ajob"]})),
                config,
                max_ratio=1.2,
            )
        )
        plain = compare(
            "3",
            "trace_operation, sync, tracing off",
            Side("plain call", loop("f()", {"f": work})),
            Side("obskit", loop("f()", {"f": ob["op"]})),
            config,
        )
        plain.note = f"adds {plain.candidate_ns - plain.baseline_ns:,.0f} ns per call"
        rows.append(plain)
        aplain = compare(
            "3",
            "trace_operation, async, tracing off",
            Side("plain call", async_loop("await f()", {"f": awork})),
            Side("obskit", async_loop("await f()", {"f": ob["aop"]})),
            config,
        )
        aplain.note = f"adds {aplain.candidate_ns - aplain.baseline_ns:,.0f} ns per call"
        rows.append(aplain)
        _check(state, None, expected_spans=False)
    return rows


if __name__ == "__main__":
    import sys

    from _harness import table

    print(table(run(Config.make("--quick" in sys.argv))))
