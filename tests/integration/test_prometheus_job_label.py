"""The queries a user writes for obskit's job families, against a real Prometheus with a stock scrape config.

Prometheus sets ``job`` (the scrape job) on every series it scrapes and renames a target's own
``job`` label ``exported_job`` (``honor_labels: false``, the default). obskit names the job in
``job_name`` so that ``obskit_jobs_total{job_name="nightly"}`` finds it. The scrape config is the
``prometheus`` fixture's: no ``honor_labels``, no relabelling.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from peers import QUIET, Prometheus, needs_prometheus, wait_until

import obskit
import obskit.prometheus
import obskit.testing

pytestmark = pytest.mark.integration


def _by(server: Prometheus, promql: str, *labels: str) -> dict[tuple[str, ...], float]:
    """The query's answer as {values of ``labels``: value}."""
    return {
        tuple(r["metric"].get(name, "") for name in labels): float(r["value"][1])
        for r in server.query(promql)
    }


@needs_prometheus
def test_queries_written_as_users_write_them_find_the_jobs(prometheus: Callable[..., Prometheus]) -> None:
    obskit.configure(**QUIET, service_name="labels", metrics_exporter="prometheus", prometheus_port=0)
    host, port = obskit.prometheus.server_address() or ("", 0)
    with obskit.testing.capture():  # a fresh store: Prometheus sees exactly this test's traffic
        # A job that ran before the labelled jobs were declared: their labels must still appear.
        @obskit.track_job("nightly")
        def nightly(fail: bool) -> None:
            if fail:
                raise RuntimeError("planned failure")

        for fail in (False, False, True):
            with contextlib.suppress(RuntimeError):
                nightly(fail)

        @obskit.track_job("clustering", labels=("organization", "method"))
        def cluster(organization: str, method: str = "kmeans") -> None:
            pass

        cluster("acme")
        cluster("acme")
        cluster("globex", method="dbscan")
        obskit.track_job("infer", labels={"model": "m1"})(lambda: None)()
        with obskit.track_job("load", labels=("source",)) as job:
            job.set_labels(source="s3")

        server = prometheus(f"{host}:{port}")
        query = 'sum by (job_name, status) (obskit_jobs_total{job_name="nightly"})'
        wait_until(lambda: server.query(query), "the jobs in Prometheus", 30)
        assert _by(server, query, "job_name", "status") == {
            ("nightly", "success"): 2,
            ("nightly", "error"): 1,
        }
        # The scrape job stays in `job`; nothing was renamed.
        assert server.query('obskit_jobs_total{exported_job!=""}') == []
        assert {r["metric"]["job"] for r in server.query("obskit_jobs_total")} == {"obskit"}

        per_call = 'sum by (organization, method) (obskit_jobs_total{job_name="clustering",status="success"})'
        assert _by(server, per_call, "organization", "method") == {
            ("acme", "kmeans"): 2,
            ("globex", "dbscan"): 1,
        }
        assert server.scalar('sum(obskit_jobs_total{job_name="infer",model="m1"})') == 1
        assert server.scalar('sum(obskit_jobs_total{source="s3",status="success"})') == 1
        assert server.scalar('sum(obskit_job_duration_seconds_count{organization="acme"})') == 2
        # Every job, whatever its labels, in one sum.
        everything = _by(server, "sum by (job_name) (obskit_jobs_total)", "job_name")
        assert everything == {("nightly",): 3, ("clustering",): 3, ("infer",): 1, ("load",): 1}
