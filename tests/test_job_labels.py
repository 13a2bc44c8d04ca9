"""track_job labels: per-call values, label sets per job, the ``job_name`` label, errors when decorating."""

from __future__ import annotations

import asyncio
import gc
import uuid
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import obskit
from obskit import MetricDeclarationError, MetricUsageError, track_job
from obskit._recording import store as _store
from obskit.testing import Capture, capture

JOBS = "obskit_jobs_total"
DURATION = "obskit_job_duration_seconds"
IN_PROGRESS = "obskit_jobs_in_progress"
RESULT = "obskit_job_result"


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def _series(cap: Capture, sample: str) -> list[dict[str, str]]:
    """The label sets of ``sample`` in the capture's exposition."""
    return [s.labels for f in cap.store.registry.collect() for s in f.samples if s.name == sample]


# -- the job's name is in job_name -------------------------------------------------------------------


def test_the_job_name_label_is_job_name_not_job(obskit_capture: Capture) -> None:
    track_job("nightly")(lambda: None)()
    assert _series(obskit_capture, JOBS) == [
        {"job_name": "nightly", "status": "success"},
        {"job_name": "nightly", "status": "error"},
    ]
    assert all("job" not in labels for labels in _series(obskit_capture, f"{DURATION}_count"))


@pytest.mark.parametrize("name", ["job", "instance", "job_name", "status", "result", "le"])
def test_a_reserved_label_name_fails_when_decorating(name: str) -> None:
    with pytest.raises(MetricDeclarationError, match=rf"track_job\('etl'\): label '{name}' is reserved"):
        track_job("etl", labels={name: "x"})
    with pytest.raises(MetricDeclarationError, match="reserved"):
        track_job("etl", labels=(name,))


def test_an_invalid_label_name_fails_when_decorating() -> None:
    with pytest.raises(MetricDeclarationError, match=r"track_job\('etl'\): invalid label name '1st'"):
        track_job("etl", labels={"1st": "x"})


# -- labels never vanish ------------------------------------------------------------------------------


def test_labels_of_a_job_declared_after_another_job_ran_are_recorded(obskit_capture: Capture) -> None:
    track_job("first")(lambda: None)()  # the jobs families now exist in this store

    @track_job("infer", labels={"model": "m1"})
    def infer() -> None:
        pass

    infer()
    obskit_capture.assert_counter(JOBS, 1, job_name="infer", model="m1", status="success")
    assert obskit_capture.histogram_count(DURATION, job_name="infer", model="m1") == 1
    # Each job's series carry its own labels only: "first" has no model label at all.
    assert {"job_name": "first", "status": "success"} in _series(obskit_capture, JOBS)


def test_different_label_sets_share_one_family_in_the_text_exposition(obskit_capture: Capture) -> None:
    track_job("plain")(lambda: None)()
    track_job("infer", labels={"model": "m1"})(lambda: None)()
    track_job("cluster", labels={"organization": "acme", "method": "kmeans"})(lambda: None)()
    text = generate_latest(obskit_capture.store.registry).decode()
    assert text.count("# TYPE obskit_jobs_total counter") == 1
    (jobs,) = [f for f in text_string_to_metric_families(text) if f.name == "obskit_jobs"]
    success = {tuple(sorted(s.labels.items())) for s in jobs.samples if s.labels.get("status") == "success"}
    assert success == {
        (("job_name", "plain"), ("status", "success")),
        (("job_name", "infer"), ("model", "m1"), ("status", "success")),
        (("job_name", "cluster"), ("method", "kmeans"), ("organization", "acme"), ("status", "success")),
    }


# -- per-call values from the call's arguments --------------------------------------------------------


def test_labels_take_values_from_the_calls_arguments(obskit_capture: Capture) -> None:
    seen: list[float | None] = []

    @track_job("clustering", labels=("organization", "method"))
    def cluster(organization: str, rows: int, method: str = "kmeans") -> int:
        seen.append(obskit_capture.gauge_value(IN_PROGRESS, job_name="clustering", organization=organization))
        return rows

    cluster("acme", 10)
    cluster(organization="globex", rows=5, method="dbscan")
    cluster("acme", 1, "dbscan")
    assert seen == [1, 1, 1]
    cap = obskit_capture
    cap.assert_counter(JOBS, 1, job_name="clustering", organization="acme", method="kmeans", status="success")
    cap.assert_counter(JOBS, 1, job_name="clustering", organization="acme", method="dbscan", status="success")
    cap.assert_counter(JOBS, 1, job_name="clustering", organization="globex", method="dbscan")
    assert cap.histogram_count(DURATION, job_name="clustering", organization="acme") == 2
    assert cap.gauge_value(IN_PROGRESS, job_name="clustering", organization="globex", method="dbscan") == 0
    spans = cap.spans("clustering")
    assert [(s.attributes or {}).get("job.organization") for s in spans] == ["acme", "globex", "acme"]
    assert [(s.attributes or {}).get("job.method") for s in spans] == ["kmeans", "dbscan", "dbscan"]


def test_labels_from_arguments_count_failures_with_their_values(obskit_capture: Capture) -> None:
    @track_job("export", labels=("tenant",))
    def export(tenant: str) -> None:
        raise RuntimeError(tenant)

    with pytest.raises(RuntimeError, match="t1"):
        export("t1")
    obskit_capture.assert_counter(JOBS, 1, job_name="export", tenant="t1", status="error")


def test_labels_from_arguments_work_on_async_generator_and_method(obskit_capture: Capture) -> None:
    @track_job("a", labels=("org",))
    async def run_async(org: str) -> str:
        await asyncio.sleep(0)
        return org

    @track_job("g", labels=("org",))
    def run_gen(org: str) -> Iterator[int]:
        yield 1
        yield 2

    class Worker:
        @track_job("m", labels=("org",))
        def run(self, org: str) -> str:
            return org

        @track_job("c", labels=("org",))
        @classmethod
        def run_cls(cls, org: str) -> str:
            return org

    assert asyncio.run(run_async("x")) == "x"
    assert list(run_gen("y")) == [1, 2]
    assert Worker().run(org="z") == "z"
    assert Worker.run_cls("w") == "w"
    for job, org in (("a", "x"), ("g", "y"), ("m", "z"), ("c", "w")):
        obskit_capture.assert_counter(JOBS, 1, job_name=job, org=org, status="success")


def test_labels_from_keyword_arguments_collected_by_kwargs(obskit_capture: Capture) -> None:
    @track_job("kw", labels=("region",))
    def run(**options: Any) -> None:
        pass

    run(region="eu")
    obskit_capture.assert_counter(JOBS, 1, job_name="kw", region="eu", status="success")


def test_a_label_naming_no_parameter_fails_when_decorating() -> None:
    with pytest.raises(
        MetricDeclarationError, match=r"track_job\('clustering'\): label 'method' names no parameter"
    ):

        @track_job("clustering", labels=("organization", "method"))
        def cluster(organization: str) -> None:
            pass


def test_callable_labels_derive_values_from_the_arguments(obskit_capture: Capture) -> None:
    @track_job("bill", labels={"tier": lambda user, **_: user["tier"], "region": "eu"})
    def bill(user: dict[str, str], amount: int = 0) -> None:
        pass

    bill({"tier": "gold"}, amount=3)
    obskit_capture.assert_counter(JOBS, 1, job_name="bill", tier="gold", region="eu", status="success")
    obskit_capture.assert_span("bill", **{"job.tier": "gold", "job.region": "eu"})


def test_a_failing_label_callable_is_a_usage_error_and_the_job_still_runs() -> None:
    @track_job("bill", labels={"tier": lambda user: user.tier})
    def bill(user: object) -> int:
        return 7

    with capture(strict=False) as cap:
        assert bill(object()) == 7
        cap.assert_counter(JOBS, 1, job_name="bill", tier="", status="success")


def test_per_call_values_are_bounded_by_the_series_cap(obskit_capture: Capture) -> None:
    obskit_capture.store.series_cap = 3

    @track_job("tenant_job", labels=("tenant",))
    def run(tenant: str) -> None:
        pass

    for tenant in range(10):
        run(str(tenant))
    tenants = {labels.get("tenant") for labels in _series(obskit_capture, JOBS)}
    assert "__overflow__" in tenants
    assert len(tenants - {"__overflow__"}) <= 3
    assert obskit_capture.counter_value(JOBS, job_name="__overflow__") > 0
    assert obskit_capture.counter_value("obskit_telemetry_overflow_total", metric=JOBS) > 0


# -- per-call values in a with block ------------------------------------------------------------------


def test_set_labels_in_a_block_labels_the_counter_histogram_result_and_span(obskit_capture: Capture) -> None:
    cap = obskit_capture
    with track_job("clustering", labels=("organization", "method")) as job:
        job.set_labels(organization="acme")
        job.set_labels(method="kmeans")
        # The in-progress gauge keeps the values known at start: none here.
        assert cap.gauge_value(IN_PROGRESS, job_name="clustering", organization="", method="") == 1
        job.result("silhouette", 0.7)
    cap.assert_counter(JOBS, 1, job_name="clustering", organization="acme", method="kmeans", status="success")
    assert cap.histogram_count(DURATION, job_name="clustering", organization="acme", method="kmeans") == 1
    assert cap.gauge_value(RESULT, job_name="clustering", organization="acme", result="silhouette") == 0.7
    assert cap.gauge_value(IN_PROGRESS, job_name="clustering", organization="", method="") == 0
    cap.assert_span("clustering", status="ok", **{"job.organization": "acme", "job.method": "kmeans"})


def test_set_labels_on_an_async_block_and_a_failing_run(obskit_capture: Capture) -> None:
    async def main() -> None:
        async with track_job("load", labels=("source",)) as job:
            job.set_labels(source="s3")
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        asyncio.run(main())
    obskit_capture.assert_counter(JOBS, 1, job_name="load", source="s3", status="error")


def test_set_labels_with_an_undeclared_name_is_a_usage_error_naming_job_and_declared() -> None:
    declared_source = r"track_job\(load\).set_labels: label 'model' not declared \(declared: source\)"
    with capture() as cap:
        with (
            pytest.raises(MetricUsageError, match=declared_source),
            track_job("load", labels=("source",)) as job,
        ):
            job.set_labels(model="m1")
        with (
            pytest.raises(MetricUsageError, match=r"label 'model' not declared \(declared: none\)"),
            track_job("plain") as job,
        ):
            job.set_labels(model="m1")
    assert cap.counter_value(JOBS, job_name="load") == 1  # the runs still counted


def test_set_labels_outside_strict_mode_keeps_the_declared_values(obskit_capture: Capture) -> None:
    with capture(strict=False) as cap:
        with track_job("load", labels=("source",)) as job:
            job.set_labels(source="s3", model="m1")
        cap.assert_counter(JOBS, 1, job_name="load", source="s3", status="success")
        assert all("model" not in labels for labels in _series(cap, JOBS))


def test_metrics_collector_job_shares_the_families_with_labelled_jobs(obskit_capture: Capture) -> None:
    track_job("infer", labels={"model": "m1"})(lambda: None)()
    obskit.MetricsCollector().job("nightly", 2.0)
    obskit_capture.assert_counter(JOBS, 1, job_name="nightly", status="success")
    obskit_capture.assert_counter(JOBS, 1, job_name="infer", model="m1", status="success")


def test_set_labels_on_a_fixed_label_is_a_usage_error() -> None:
    with capture() as cap:
        with (
            pytest.raises(MetricUsageError, match=r"label 'model' has a fixed value"),
            track_job("infer", labels={"model": "m1"}) as job,
        ):
            job.set_labels(model="m2")
        cap.assert_counter(JOBS, 1, job_name="infer", model="m1")  # the run (raising) still counted


def test_the_job_families_do_not_keep_a_finished_captures_store_alive() -> None:
    with capture() as cap:
        track_job("short_lived", labels={"model": "m1"})(lambda: None)()
        store = weakref.ref(cap.store)
    del cap
    gc.collect()
    assert store() is None


def test_labels_from_every_kind_of_parameter(obskit_capture: Capture) -> None:
    @track_job("kinds", labels=("a", "b", "c", "e"))
    def run(a: str, /, b: str, *rest: str, c: str = "dflt", **options: str) -> None:
        pass

    run("A", "B", "r1", "r2", e="E")
    run("A2", b="B2", c="C2")
    obskit_capture.assert_counter(JOBS, 1, job_name="kinds", a="A", b="B", c="dflt", e="E", status="success")
    obskit_capture.assert_counter(JOBS, 1, job_name="kinds", a="A2", b="B2", c="C2", e="", status="success")


def test_a_label_naming_the_star_args_parameter_fails_when_decorating() -> None:
    with pytest.raises(MetricDeclarationError, match="label 'rest' names no parameter"):

        @track_job("kinds", labels=("rest",))
        def run(*rest: str) -> None:
            pass


# -- the store's per-family settings reach every label set ---------------------------------------------


def test_a_labelled_job_uses_the_configured_job_buckets() -> None:
    obskit.configure(
        traces_exporter="none",
        logs_exporter="none",
        metrics_exporter="none",
        histogram_buckets={"job": [60, 600]},
    )

    @track_job("export", labels=("tenant",))
    def export(tenant: str) -> None:
        pass

    with capture() as cap:
        export("acme")
    (family,) = [f for f in cap.metrics_as_dicts() if f["name"] == DURATION]
    assert [s["labels"] for s in family["series"]] == [{"job_name": "export", "tenant": "acme"}]
    assert list(family["series"][0]["buckets"]) == ["60.0", "600.0", "+Inf"]


def test_a_labelled_jobs_duration_keeps_its_extremes_for_exporters_that_want_them(
    obskit_capture: Capture,
) -> None:
    _store.want_extremes()
    try:

        @track_job("extremes", labels=("tenant",))
        def run(tenant: str, seconds: float) -> None:
            pass

        run("acme", 0.0)
        extremes = _store.take_extremes(obskit_capture.store.registry)
    finally:
        _store.want_extremes(False)
    assert [key for key in extremes if key[0] == DURATION] == [
        (DURATION, (("job_name", "extremes"), ("tenant", "acme")))
    ]
